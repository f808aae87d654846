/**
 * Guarded loader of the native CPU kernels (native/, built at install by scripts/build-native.cjs)
 * and the switch between them and the pure-TypeScript kernels.
 *
 * `auto` (default) uses the addon when it loaded, else TypeScript. `TFJS_ATTENTION_CPU_IMPL=ts`
 * (or `setCpuKernelImpl('ts')`) forces TypeScript; `native` insists on the addon.
 * `TFJS_ATTENTION_NATIVE_PATH=/path/to/addon.node` loads that build instead of native/build/Release.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { check } from '../../lib/errors.js';
import { packageRoot } from '../../lib/util/package_root.js';

/** The addon's functions (see native/binding.cc for the argument order). */
export interface NativeKernels {
  ropeSplitStore(
    qkv: Float32Array, qOut: Float32Array, kPool: Float32Array, vPool: Float32Array,
    cos: Float32Array, sin: Float32Array, qNormW: Float32Array | null, kNormW: Float32Array | null,
    ints: Int32Array, rowOffsets: Int32Array, startPositions: Int32Array, pageTable: Int32Array, eps: number,
  ): void;
  flashAttention(
    q: Float32Array, out: Float32Array, kPool: Float32Array, vPool: Float32Array,
    rowOffsets: Int32Array, startPositions: Int32Array, numNewTokens: Int32Array, pageTable: Int32Array,
    ints: Int32Array, scale: number,
  ): void;
  /** out[M, N] = op(a) · op(b) (+ bias), see native/matmul.h. */
  sgemm(
    a: Float32Array, b: Float32Array, bias: Float32Array | null, out: Float32Array,
    M: number, N: number, K: number, transposeA: number, transposeB: number,
  ): void;
  /**
   * FlashAttentionRagged of the training path (native/flash_train.h): forward when dy is null
   * (writes out, lse), else backward (reads out, lse; writes dq, dk, dv).
   * ints = [batch, nHeads, nKv, headDim, maskCode, window, chunk].
   */
  flashTrain(
    q: Float32Array, k: Float32Array, v: Float32Array, rowOffsets: Int32Array, out: Float32Array, lse: Float32Array,
    dy: Float32Array | null, dq: Float32Array | null, dk: Float32Array | null, dv: Float32Array | null, ints: Int32Array, scale: number,
  ): void;
  /** out[T, H] = RMSNorm (LayerNorm with center) of x's rows times w (native/decoder_steps.h). Absent from older builds. */
  rmsNorm?(x: Float32Array, w: Float32Array | null, out: Float32Array, T: number, H: number, eps: number, center: number): void;
  /** out[T, H] = (residual +) down(silu(x · gate + gb) * (x · up + ub)) + db (native/decoder_steps.h). Absent from older builds. */
  swiglu?(x: Float32Array, gate: Float32Array, up: Float32Array, down: Float32Array, gateBias: Float32Array | null,
    upBias: Float32Array | null, downBias: Float32Array | null, residual: Float32Array | null, out: Float32Array,
    T: number, H: number, I: number): void;
  threads(): number;
  setThreads(n: number): void;
  /**
   * A MAP_SHARED mapping of file `path` (native/shm.cc), unmapped when the buffer is collected:
   * `create` makes (or truncates) it to `bytes` and reserves the pages, else the existing file is
   * opened and must hold `bytes`. Absent from addons built before it (check before use).
   */
  mapShared?(path: string, bytes: number, create: boolean): ArrayBuffer;
  /** Removes `path`; false when it was already gone. */
  unlinkShared?(path: string): boolean;
}

export type CpuKernelImpl = 'auto' | 'native' | 'ts';

let loadError = '';
function load(): NativeKernels | null {
  if (typeof process === 'undefined' || !process.versions?.node) return null;
  try {
    const req = createRequire(path.join(packageRoot, 'package.json'));
    const override = process.env?.TFJS_ATTENTION_NATIVE_PATH;  // another build of the addon (e.g. an AVX2-only one)
    return req(override ? path.resolve(override) : path.join(packageRoot, 'native', 'build', 'Release', 'tfjs_attention_native.node')) as NativeKernels;
  } catch (e) {
    loadError = (e as Error).message;
    return null;
  }
}

/** The loaded addon, or null (browser, no compiler at install, load failure). */
export const nativeKernels: NativeKernels | null = load();

let impl: CpuKernelImpl = (typeof process !== 'undefined' && (process.env?.TFJS_ATTENTION_CPU_IMPL as CpuKernelImpl)) || 'auto';

/** Chooses the CPU kernel implementation; `native` throws when the addon is not available. */
export function setCpuKernelImpl(which: CpuKernelImpl): void {
  check(which === 'auto' || which === 'native' || which === 'ts', 'setCpuKernelImpl', () => `which must be 'auto', 'native' or 'ts', got '${which}'`);
  check(which !== 'native' || nativeKernels !== null, 'setCpuKernelImpl',
    () => `which is 'native' but the native addon did not load (${loadError || 'not built'}); run \`node scripts/build-native.cjs\``);
  impl = which;
}

export function getCpuKernelImpl(): CpuKernelImpl { return impl; }

/** The addon when the current choice uses it, else null. */
export function activeNative(): NativeKernels | null {
  return impl === 'ts' ? null : nativeKernels;
}

/**
 * Threads the native kernels use (default: the machine's cores, or TFJS_ATTENTION_THREADS).
 * Returns the count in effect; a no-op returning 1 without the addon.
 */
export function setCpuKernelThreads(n: number): number {
  check(Number.isInteger(n) && n >= 1, 'setCpuKernelThreads', () => `n must be an integer >= 1, got ${n}`);
  if (!nativeKernels) return 1;
  nativeKernels.setThreads(n);
  return nativeKernels.threads();
}
