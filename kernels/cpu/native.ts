/**
 * The native CPU kernels (native/, built at install by scripts/build-native.cjs) as the kernels
 * see them, and the switch between them and the pure-TypeScript kernels. This file never loads
 * the addon itself (no Node built-in in the main entry's graph): the Node entry installs it
 * through `installNativeKernels` (lib/backends/native_node.ts, run by `tfjs-attention-rope/node`,
 * by the package's main entry under Node, and by the CLI, benchmarks and specs).
 *
 * `auto` (default) uses the addon when it is installed, else TypeScript. `TFJS_ATTENTION_CPU_IMPL=ts`
 * (or `setCpuKernelImpl('ts')`) forces TypeScript; `native` insists on the addon.
 */
import { check } from '../../core/errors.js';
import type { KVPool } from '../../core/kv_dtype.js';

/**
 * The addon's functions (see native/binding.cc for the argument order; `ints` blocks are indexed by
 * kernels/cpu/native_args.ts). Each checks every array's type and length against its integer
 * arguments and throws a RangeError naming the argument, so a forged call cannot reach out of bounds.
 */
export interface NativeKernels {
  /**
   * Pools of the cache's dtype (ints KV_DTYPE): Float32Array, Uint16Array (float16 / bfloat16), Int8Array (with
   * kRowScales / vRowScales) or Uint8Array (float8_e4m3, with kScale / vScale); rows are encoded as core/kv_dtype.ts does.
   */
  ropeSplitStore(
    qkv: Float32Array, qOut: Float32Array, kPool: KVPool, vPool: KVPool,
    cos: Float32Array, sin: Float32Array, qNormW: Float32Array | null, kNormW: Float32Array | null,
    ints: Int32Array, rowOffsets: Int32Array, startPositions: Int32Array, pageTable: Int32Array, eps: number,
    kRowScales?: Float32Array | null, vRowScales?: Float32Array | null, kScale?: number, vScale?: number,
  ): void;
  /** Pools and scales as ropeSplitStore's; compact rows are widened in the kernel (native/kv_codec.h). */
  flashAttention(
    q: Float32Array, out: Float32Array, kPool: KVPool, vPool: KVPool,
    rowOffsets: Int32Array, startPositions: Int32Array, numNewTokens: Int32Array, pageTable: Int32Array,
    ints: Int32Array, scale: number,
    kRowScales?: Float32Array | null, vRowScales?: Float32Array | null, kScale?: number, vScale?: number,
  ): void;
  /** out[M, N] = op(a) · op(b) (+ bias), see native/matmul.h; with `accumulate` 1, out += (older builds ignore it). */
  sgemm(
    a: Float32Array, b: Float32Array, bias: Float32Array | null, out: Float32Array,
    M: number, N: number, K: number, transposeA: number, transposeB: number, accumulate?: number,
  ): void;
  /**
   * FlashAttentionRagged of the training path (native/flash_train.h): forward when dy is null
   * (writes out, lse), else backward (reads out, lse; writes dq, dk, dv). ints: TRAIN_ARG.
   */
  flashTrain(
    q: Float32Array, k: Float32Array, v: Float32Array, rowOffsets: Int32Array, out: Float32Array, lse: Float32Array,
    dy: Float32Array | null, dq: Float32Array | null, dk: Float32Array | null, dv: Float32Array | null, ints: Int32Array, scale: number,
  ): void;
  /**
   * QuantMatMul (native/quant_matmul.h): out[T, N] = quantize(x) · widen(weight)ᵀ (+ bias), the weight
   * read packed. ints: kernels/cpu/QuantMatMul.ts nativeArgs. Absent from addons built before it.
   */
  quantMatMul?(
    x: Float32Array, weight: Int32Array, scale: Float32Array | null, zeros: Int32Array | null, gIdx: Int32Array | null,
    bias: Float32Array | null, out: Float32Array, ints: Int32Array, inputScale: number, weightScale2: number,
  ): void;
  /** The vector ISA the addon was compiled for (absent from builds before it). */
  isa?(): 'avx512' | 'avx2' | 'portable';
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
  /**
   * A zeroed ArrayBuffer of `bytes` on 2 MiB-aligned memory advised for transparent huge pages
   * (native/huge_pages.cc), unmapped when collected. Absent from addons built before it.
   */
  allocHuge?(bytes: number): ArrayBuffer;
  /** Removes `path`; false when it was already gone. */
  unlinkShared?(path: string): boolean;
}

export type CpuKernelImpl = 'auto' | 'native' | 'ts';

let loadError = 'not installed: import tfjs-attention-rope/node (or lib/backends/native_node.js) in Node';

/** The installed addon, or null (browser, no compiler at install, load failure). */
export let nativeKernels: NativeKernels | null = null;

/** Installs the addon (null with the reason when it could not load). The Node entry calls it once. */
export function installNativeKernels(addon: NativeKernels | null, reason = ''): void {
  nativeKernels = addon;
  loadError = addon === null ? reason : '';
}

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
