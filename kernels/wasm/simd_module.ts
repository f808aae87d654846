/**
 * The browser's WebAssembly SIMD kernels (native/wasm/, built by scripts/build-wasm-kernels.cjs and
 * carried as base64 in kernels/wasm/simd_bytes.ts: no fetch, no fs, so the main entry stays
 * browser-clean) running on tfjs-wasm's own memory: the module imports the backend's
 * `WebAssembly.Memory`, so kernel inputs and outputs are read and written in place by their heap offset,
 * like tfjs-wasm's own kernels. Its shadow stack and scratch come from the backend's malloc.
 *
 * Which implementation the `wasm` kernels run (kernels/cpu/* with backendName 'wasm'):
 * `TFJS_ATTENTION_WASM_IMPL` (or `setWasmKernelImpl`): `auto` (default): the native addon when the
 * Node entry installed it and `TFJS_ATTENTION_CPU_IMPL` is not `ts`, else this module, else TypeScript
 * loops; `simd`: this module even beside the addon (throws if it cannot load); `ts`: never this module.
 * The relaxed-SIMD build (fused multiply-add) is used where `WebAssembly.validate` accepts it
 * (Chrome 114+, Firefox 120+; Node 20 only with --experimental-wasm-relaxed-simd), else the SIMD128 build.
 * Where the page is cross-origin isolated, tfjs-wasm runs its threaded build on a shared memory; a memory
 * import must match that flag, so the `_shared` builds of both variants are used there.
 *
 * @example
 * setWasmKernelImpl('simd');                  // after tf.setBackend('wasm')
 * wasmSimdStatus();                           // { loaded: true, variant: 'relaxed' | 'simd128', ... }
 */
import * as tf from '@tensorflow/tfjs';

import { check } from '../../core/errors.js';
import { envSwitch } from '../../core/env.js';
import type { ThreadKernelExports } from './simd_threads.js';
import { WASM_KERNELS_RELAXED, WASM_KERNELS_RELAXED_SHARED, WASM_KERNELS_SIMD128, WASM_KERNELS_SIMD128_SHARED } from './simd_bytes.js';

export type WasmKernelImpl = 'auto' | 'simd' | 'ts';

/** The module's exports (native/wasm/: pointers are byte offsets into tfjs-wasm's heap). */
export interface WasmSimdExports extends ThreadKernelExports {
  __stack_pointer: WebAssembly.Global;
  sgemm(a: number, b: number, bias: number, out: number, M: number, N: number, K: number, tA: number, tB: number, scratch: number): void;
  sgemm_scratch_floats(M: number, N: number, K: number, tA: number): number;
  flash_attention(q: number, out: number, k: number, v: number, rowOffsets: number, startPositions: number, numNewTokens: number,
    pageTable: number, ints: number, scale: number, scratch: number): void;
  flash_scratch_floats(G: number, D: number, maxNew: number, variant: number): number;
  rms_norm(x: number, w: number, out: number, T: number, H: number, eps: number, center: number): void;
  swiglu(x: number, gate: number, up: number, down: number, gb: number, ub: number, db: number, residual: number, out: number,
    T: number, H: number, I: number, scratch: number): void;
  swiglu_scratch_floats(T: number, H: number, I: number): number;
}

/**
 * What the module uses of tfjs-backend-wasm (its Emscripten module): the memory is `asm.memory` in the
 * single-thread builds (exported) and `wasmMemory` in the threaded one (imported, shared).
 */
interface EmscriptenLike {
  asm?: { memory?: WebAssembly.Memory }; wasmMemory?: WebAssembly.Memory; _malloc(n: number): number; _free(p: number): void; HEAPU8: Uint8Array;
}
export interface WasmBackendHeap { wasm: EmscriptenLike; typedArrayFromHeap(t: tf.TensorInfo): ArrayBufferView }

/** One instance per backend, with its grow-only scratch on the backend's heap. */
export class WasmSimdInstance {
  private scratchPtr = 0;
  private scratchBytes = 0;

  constructor(readonly exports: WasmSimdExports, readonly backend: WasmBackendHeap, readonly memory: WebAssembly.Memory,
    readonly variant: Variant) {}

  /** Whether the module runs on a shared memory (tfjs-wasm's threaded build, cross-origin isolated pages). */
  get sharedMemory(): boolean { return isShared(this.memory); }

  /** A scratch region of `bytes` (16-aligned; valid until the next call; may grow the heap: take views after). */
  scratch(bytes: number): number {
    if (bytes > this.scratchBytes) {
      if (this.scratchPtr) this.backend.wasm._free(this.scratchPtr);
      const size = Math.max(bytes, this.scratchBytes * 2, 1 << 16);
      this.scratchPtr = this.backend.wasm._malloc(size + 16);
      check(this.scratchPtr !== 0, 'wasmSimd', () => `the wasm heap could not allocate ${size} bytes of scratch`);
      this.scratchBytes = size;
    }
    return Math.ceil(this.scratchPtr / 16) * 16;
  }

  /** The heap offset of a float32 tensor on this backend. */
  ptr(t: tf.TensorInfo): number { return this.backend.typedArrayFromHeap(t).byteOffset; }

  /**
   * The heap as floats / ints (fresh views of the memory's current buffer: the heap may have grown, and on a
   * shared memory Emscripten's HEAPU8 is refreshed only lazily).
   */
  heapF32(): Float32Array { return new Float32Array(this.memory.buffer); }
  heapI32(): Int32Array { return new Int32Array(this.memory.buffer); }
}

const STACK_BYTES = 1 << 18;
let impl: WasmKernelImpl = 'auto';
const envImpl = envSwitch('WASM_IMPL');
const envImplValid = envImpl === undefined || envImpl === 'auto' || envImpl === 'simd' || envImpl === 'ts';
if (envImplValid && envImpl !== undefined) impl = envImpl as WasmKernelImpl;

type Variant = 'relaxed' | 'simd128';
export interface Compiled { module: WebAssembly.Module; variant: Variant }
/** Per memory kind (index 0: plain, 1: shared): the compiled module, or why it cannot be. */
const compiled: (Compiled | null)[] = [null, null];
const compileError = ['', ''];
const instances = new WeakMap<object, WasmSimdInstance | string>();

function base64Bytes(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const isShared = (m: WebAssembly.Memory): boolean => typeof SharedArrayBuffer !== 'undefined' && m.buffer instanceof SharedArrayBuffer;

function pickVariant(shared: boolean): { bytes: Uint8Array<ArrayBuffer>; variant: Variant } | null {
  const i = shared ? 1 : 0;
  if (typeof WebAssembly === 'undefined') { compileError[i] = 'no WebAssembly'; return null; }
  const relaxed = base64Bytes(shared ? WASM_KERNELS_RELAXED_SHARED : WASM_KERNELS_RELAXED);
  if (WebAssembly.validate(relaxed)) return { bytes: relaxed, variant: 'relaxed' };
  const simd = base64Bytes(shared ? WASM_KERNELS_SIMD128_SHARED : WASM_KERNELS_SIMD128);
  if (WebAssembly.validate(simd)) return { bytes: simd, variant: 'simd128' };
  compileError[i] = shared ? 'this engine has no WebAssembly SIMD with threads (shared memory)' : 'this engine has no WebAssembly SIMD';
  return null;
}

/**
 * Compiles the module off the main thread's critical path (browsers refuse large synchronous
 * compiles on the main thread; ours is ~18 KB, so the synchronous fallback normally works too).
 * `useBackend('wasm')` awaits it (for a plain memory, and for a shared one where this page is
 * cross-origin isolated); calling it again is free.
 */
export async function prepareWasmSimdKernels(): Promise<boolean> {
  const kinds = [false, ...(globalThis.crossOriginIsolated === true ? [true] : [])];
  for (const shared of kinds) {
    const i = shared ? 1 : 0;
    if (compiled[i] || compileError[i]) continue;
    const pick = pickVariant(shared);
    if (!pick) continue;
    try { compiled[i] = { module: await WebAssembly.compile(pick.bytes as BufferSource), variant: pick.variant }; } catch (e) { compileError[i] = String(e); }
  }
  return compiled.some((c) => c !== null);
}

function compileSync(shared: boolean): void {
  const i = shared ? 1 : 0;
  if (compiled[i] || compileError[i]) return;
  const pick = pickVariant(shared);
  if (!pick) return;
  try { compiled[i] = { module: new WebAssembly.Module(pick.bytes as BufferSource), variant: pick.variant }; } catch (e) { compileError[i] = String(e); }
}

/** The shared-memory build (what the kernel threads instantiate: kernels/wasm/simd_threads.ts), or why it cannot load. */
export function sharedKernelModule(): Compiled | string {
  compileSync(true);
  return compiled[1] ?? (compileError[1] || 'not compiled');
}

/** The module instantiated on `backend`'s memory, or a reason it cannot be. */
function instanceFor(backend: WasmBackendHeap): WasmSimdInstance | string {
  const known = instances.get(backend);
  if (known !== undefined) return known;
  let result: WasmSimdInstance | string;
  const memory = backend.wasm?.asm?.memory ?? backend.wasm?.wasmMemory;
  if (!(memory instanceof WebAssembly.Memory)) result = 'tfjs-wasm does not expose its WebAssembly.Memory (backend.wasm.asm.memory or backend.wasm.wasmMemory)';
  else {
    const shared = isShared(memory), i = shared ? 1 : 0;
    compileSync(shared);
    const c = compiled[i];
    if (!c) result = compileError[i] || 'not compiled';
    else {
      try {
        const exports = new WebAssembly.Instance(c.module, { env: { memory } }).exports as unknown as WasmSimdExports;
        const stack = backend.wasm._malloc(STACK_BYTES);
        if (stack === 0) throw new Error(`the wasm heap could not allocate the kernels' ${STACK_BYTES}-byte stack`);
        exports.__stack_pointer.value = Math.floor((stack + STACK_BYTES) / 16) * 16; // grows down
        result = new WasmSimdInstance(exports, backend, memory, c.variant);
      } catch (e) { result = `instantiation failed: ${(e as Error).message ?? e}`; }
    }
  }
  instances.set(backend, result);
  return result;
}

/** Chooses the `wasm` kernels' implementation; `simd` throws when the module cannot run on the current wasm backend. */
export function setWasmKernelImpl(which: WasmKernelImpl): void {
  check(which === 'auto' || which === 'simd' || which === 'ts', 'setWasmKernelImpl', () => `which must be 'auto', 'simd' or 'ts', got '${which}'`);
  if (which === 'simd' && tf.getBackend() === 'wasm') {
    const r = instanceFor(tf.backend() as unknown as WasmBackendHeap);
    check(typeof r !== 'string', 'setWasmKernelImpl', () => `which is 'simd' but the WebAssembly SIMD kernels cannot run: ${r as string}`);
  }
  impl = which;
}

export function getWasmKernelImpl(): WasmKernelImpl { return impl; }

/**
 * The SIMD kernels for a `wasm` kernel call, or null (other backend, impl `ts`, or the addon wins
 * under `auto`: `nativeActive`). Under `simd` a module that cannot load throws with the reason.
 */
export function wasmSimdFor(backendName: 'cpu' | 'wasm', backend: unknown, nativeActive: boolean): WasmSimdInstance | null {
  if (backendName !== 'wasm') return null;
  check(envImplValid, 'wasmSimd', () => `TFJS_ATTENTION_WASM_IMPL ('${envImpl}') must be 'auto', 'simd' or 'ts'`);
  if (impl === 'ts' || (impl === 'auto' && nativeActive)) return null;
  const r = instanceFor(backend as WasmBackendHeap);
  if (typeof r === 'string') {
    check(impl !== 'simd', 'wasmSimd', () => `TFJS_ATTENTION_WASM_IMPL is 'simd' but the WebAssembly SIMD kernels cannot run: ${r}`);
    return null;
  }
  return r;
}

/** True when the current backend is `wasm` and its kernels would run this module (see wasmSimdFor). */
export function wasmSimdActive(nativeActive: boolean): boolean {
  return tf.getBackend() === 'wasm' && wasmSimdFor('wasm', tf.backend(), nativeActive) !== null;
}

/** Whether the module loaded on the current wasm backend, its variant, whether on a shared memory, and why not. */
export function wasmSimdStatus(): { impl: WasmKernelImpl; loaded: boolean; variant?: Variant; sharedMemory?: boolean; reason?: string } {
  if (tf.getBackend() !== 'wasm') return { impl, loaded: false, reason: `the backend is '${tf.getBackend()}', not 'wasm'` };
  const r = instanceFor(tf.backend() as unknown as WasmBackendHeap);
  return typeof r === 'string' ? { impl, loaded: false, reason: r } : { impl, loaded: true, variant: r.variant, sharedMemory: r.sharedMemory };
}
