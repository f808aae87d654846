/**
 * The shared memory the kernel threads run on where tfjs-wasm's heap is not shared (Node; see
 * kernels/wasm/simd_thread_calls.ts): an instance of the shared-memory build for the calling thread, one stack
 * and one scratch per thread, then weights, then one call's activations.
 * - Weights (a GEMM's b, biases) are copied in once per tensor and kept, keyed by the tensor's dataId (tfjs
 *   never reuses one; `Variable.assign` gives a variable a new one). Each use re-reads 8 spread values of the
 *   tfjs copy and copies it again when any changed (a write into the tensor's heap in place).
 * - When the weights region has doubled since the last sweep, a sweep drops the weights whose tensor the
 *   backend no longer holds (disposed) and moves the rest down, so the memory stays near 2x the live weights.
 * - Activations and outputs are bump-allocated above the weights, per call (`beginCall`).
 */
import type { TensorInfo } from '@tensorflow/tfjs';

import { check } from '../../core/errors.js';
import type { WasmSimdExports } from './simd_module.js';
import { THREAD_STACK_BYTES } from './simd_threads.js';

const PAGE = 65536;
const SAMPLES = 8;
interface Staged { ptr: number; floats: number; src: number; sample: Int32Array; owner: { has(d: object): boolean } | null }

const align = (n: number) => Math.ceil(n / 64) * 64;

export class StagingHeap {
  readonly memory: WebAssembly.Memory;
  readonly exports: WasmSimdExports;
  /** Each thread's scratch offset (index 0: the calling thread). */
  readonly scratch: number[];
  private readonly weightsStart: number;
  private weightsTop: number;
  private sweptTop: number;
  private callTop = 0;
  private readonly weights = new Map<object, Staged>();

  /** sweepFloorBytes: the weights region may reach 2x this before the first sweep. */
  constructor(module: WebAssembly.Module, threads: number, maxChunkCols: number, private readonly sweepFloorBytes = 64 << 20) {
    const fixed = 1024 + threads * THREAD_STACK_BYTES;
    this.memory = new WebAssembly.Memory({ initial: Math.ceil((fixed + (16 << 20)) / PAGE), maximum: 65536, shared: true });
    this.exports = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as WasmSimdExports;
    this.exports.__stack_pointer.value = this.stackTop(0);
    const scratchBytes = align(4 * this.exports.sgemm_cols_scratch_floats(maxChunkCols));
    this.scratch = Array.from({ length: threads }, (_, i) => fixed + i * scratchBytes);
    this.weightsStart = this.weightsTop = this.sweptTop = fixed + threads * scratchBytes;
  }

  /** Thread i's stack top (16-aligned; stacks grow down). */
  stackTop(i: number): number { return 1024 + (i + 1) * THREAD_STACK_BYTES; }

  private f32(): Float32Array { return new Float32Array(this.memory.buffer); }

  private ensure(top: number): void {
    const have = this.memory.buffer.byteLength;
    if (top <= have) return;
    const pages = Math.ceil((Math.max(top, have * 1.25) - have) / PAGE);
    check(have / PAGE + pages <= 65536, 'wasmThreads', () => `the staging memory would need ${top} bytes (more than 4 GiB)`);
    this.memory.grow(pages);
  }

  /** Starts a call: drops its predecessor's activations; sweeps disposed weights when the region doubled. */
  beginCall(): void {
    if (this.weightsTop - this.weightsStart > 2 * Math.max(this.sweptTop - this.weightsStart, this.sweepFloorBytes)) this.sweep();
    this.callTop = 0;
  }

  /** `floats` floats for this call (after every weight() of the call). */
  alloc(floats: number): number {
    const p = align(Math.max(this.callTop, this.weightsTop));
    this.callTop = p + 4 * floats;
    this.ensure(this.callTop);
    return p;
  }

  /** Copies `floats` floats from `src` (tfjs-wasm's heap) at byte offset `at` for this call. */
  activation(src: Float32Array, at: number, floats: number): number {
    const p = this.alloc(floats);
    this.f32().set(src.subarray(at / 4, at / 4 + floats), p / 4);
    return p;
  }

  /** The staged copy of weight tensor `t` (at byte offset `at` of `src`), copied on first use or when it changed. */
  weight(t: TensorInfo, src: Float32Array, at: number, floats: number, owner: { has(d: object): boolean } | null = null): number {
    check(this.callTop === 0, 'wasmThreads', () => 'weights must be staged before the call\'s activations');
    const key = t.dataId as object, known = this.weights.get(key), sample = sampleOf(src, at, floats);
    if (known && known.floats === floats && known.src === at && sameInts(known.sample, sample)) return known.ptr;
    const ptr = known && known.floats >= floats ? known.ptr : this.weightsTop;
    if (ptr === this.weightsTop) { this.weightsTop = align(ptr + 4 * floats); this.ensure(this.weightsTop); }
    this.f32().set(src.subarray(at / 4, at / 4 + floats), ptr / 4);
    this.weights.set(key, { ptr, floats, src: at, sample, owner: owner ?? known?.owner ?? null });
    return ptr;
  }

  /** Copies this call's output at `p` back to `dst` (tfjs-wasm's heap) at byte offset `at`. */
  copyOut(p: number, dst: Float32Array, at: number, floats: number): void {
    dst.set(this.f32().subarray(p / 4, p / 4 + floats), at / 4);
  }

  /** Bytes held for weights (staged copies of live and not yet swept tensors). */
  get weightBytes(): number { return this.weightsTop - this.weightsStart; }

  private sweep(): void {
    const live = [...this.weights].filter(([k, s]) => s.owner?.has(k) ?? true).sort((x, y) => x[1].ptr - y[1].ptr);
    this.weights.clear();
    let top = this.weightsStart;
    const f = this.f32();
    for (const [k, s] of live) {
      if (s.ptr !== top) f.copyWithin(top / 4, s.ptr / 4, s.ptr / 4 + s.floats);
      this.weights.set(k, { ...s, ptr: top });
      top = align(top + 4 * s.floats);
    }
    this.weightsTop = this.sweptTop = top;
  }
}

function sampleOf(src: Float32Array, at: number, floats: number): Int32Array {
  const ints = new Int32Array(src.buffer, src.byteOffset, src.length), out = new Int32Array(SAMPLES);
  for (let i = 0; i < SAMPLES; i++) out[i] = ints[at / 4 + Math.floor(((floats - 1) * i) / (SAMPLES - 1))];
  return out;
}

const sameInts = (a: Int32Array, b: Int32Array) => a.every((v, i) => v === b[i]);
