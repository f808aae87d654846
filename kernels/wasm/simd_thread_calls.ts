/**
 * The prefill work of the WebAssembly SIMD kernels over worker threads (kernels/wasm/simd_threads.ts): ProjectionMatMul's
 * sgemm and FusedSwiGLUMLP split by output columns, every thread packing its own panels; attention by items
 * (kernels/wasm/simd_calls.ts lays its inputs out). Two modes:
 * - `heap`: tfjs-wasm runs its threaded build (a cross-origin isolated page), so its heap is a shared memory:
 *   the workers instantiate the module on it and read and write the tensors in place;
 * - `staged`: tfjs-wasm's heap is not shared (Node: tfjs-wasm turns its threads off there, and forcing
 *   WASM_HAS_MULTITHREAD_SUPPORT fails at its pthread pool's Blob-URL workers), so the kernels run on a shared
 *   memory of ours (kernels/wasm/simd_staging.ts): weights are copied there once and kept while their tensor
 *   lives, activations are copied in and the output back per call.
 * Results are bit-identical to the one-thread kernels (same 4x8 tile, K slices and order of additions).
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';

import { check } from '../../core/errors.js';
import type { SwiGluTensors } from './simd_calls.js';
import { sharedKernelModule, wasmSimdFor, type WasmSimdExports, type WasmSimdInstance } from './simd_module.js';
import { StagingHeap } from './simd_staging.js';
import { OP, THREAD_STACK_BYTES, threadPlan, wasmThreadsWanted, WasmThreadPool } from './simd_threads.js';

/** Rows above which a GEMM goes to the threads (the one-thread kernel's packed path starts there too). */
export const THREAD_MIN_ROWS = 16;
/** Multiply-adds below which a GEMM stays on the calling thread (a job's hand-off costs ~10-50 us). */
export const THREAD_MIN_MACS = 1 << 20;
const MLP_ROWS = 128; // as native/wasm/decoder_steps.c
const MAX_CHUNK_COLS = 128;

interface Threads { pool: WasmThreadPool; mode: 'heap' | 'staged'; exports: WasmSimdExports; scratch: number[]; staging: StagingHeap | null }
let staged: Threads | string | null = null; // one staging memory for every non-shared backend
const onHeap = new WeakMap<WasmSimdInstance, Threads | string>();

function startOnHeap(w: WasmSimdInstance): Threads | string {
  const plan = threadPlan();
  if (typeof plan === 'string') return plan;
  const c = sharedKernelModule();
  if (typeof c === 'string') return c;
  const scratchBytes = 4 * w.exports.sgemm_cols_scratch_floats(MAX_CHUNK_COLS);
  const malloc = (n: number) => { const p = w.backend.wasm._malloc(n + 16); if (!p) throw new Error(`[wasmThreads] the wasm heap could not allocate ${n} bytes`); return Math.ceil(p / 16) * 16; };
  const scratch = Array.from({ length: plan.threads }, () => malloc(scratchBytes));
  const pool = new WasmThreadPool(plan.threads, w.exports, c.module, w.memory, plan.host, () => malloc(THREAD_STACK_BYTES) + THREAD_STACK_BYTES);
  return { pool, mode: 'heap', exports: w.exports, scratch, staging: null };
}

function startStaged(): Threads | string {
  const plan = threadPlan();
  if (typeof plan === 'string') return plan;
  const c = sharedKernelModule();
  if (typeof c === 'string') return c;
  const staging = new StagingHeap(c.module, plan.threads, MAX_CHUNK_COLS);
  const pool = new WasmThreadPool(plan.threads, staging.exports, c.module, staging.memory, plan.host, (i) => staging.stackTop(i));
  return { pool, mode: 'staged', exports: staging.exports, scratch: staging.scratch, staging };
}

/** The threads for `w`'s kernels (started on first use), or null: off, not possible here, or stopped. */
export function threadsFor(w: WasmSimdInstance): Threads | null {
  if (!wasmThreadsWanted()) return null;
  let t: Threads | string | undefined;
  if (w.sharedMemory) {
    t = onHeap.get(w);
    if (t === undefined) { try { t = startOnHeap(w); } catch (e) { t = String(e); } onHeap.set(w, t); }
  } else {
    if (staged === null) { try { staged = startStaged(); } catch (e) { staged = String(e); } }
    t = staged;
  }
  return typeof t === 'string' || t.pool.failed ? null : t;
}

/**
 * Ends the kernel threads (the staged pool with its memory, and the current backend's heap pool); the next
 * prefill starts them again unless setWasmThreads(1).
 *
 * @example
 * stopWasmThreads();   // e.g. after a benchmark, to free the staged weights' memory in Node
 */
export function stopWasmThreads(): void {
  if (staged !== null && typeof staged !== 'string') staged.pool.stop('stopped by stopWasmThreads()');
  staged = null;
  const w = currentInstance(), t = w ? onHeap.get(w) : undefined;
  if (w && t !== undefined) {
    if (typeof t !== 'string') t.pool.stop('stopped by stopWasmThreads()');
    onHeap.delete(w);
  }
}

/** The current wasm backend's SIMD kernels (null: another backend, or the module cannot run here). */
function currentInstance(): WasmSimdInstance | null {
  return tf.getBackend() === 'wasm' ? wasmSimdFor('wasm', tf.backend(), false) : null;
}

/**
 * Starts the kernel threads for the current `wasm` backend now (they otherwise start at the first prefill
 * GEMM and join once running) and waits up to timeoutMs for the workers; resolves to wasmThreadsStatus().
 *
 * @example
 * await useBackend('wasm');
 * const st = await startWasmThreads();   // { threads: 2, ready: 1, mode: 'heap' } on an isolated 2-core page
 */
export async function startWasmThreads(timeoutMs = 10_000): Promise<WasmThreadsStatus> {
  const w = currentInstance(), t = w ? threadsFor(w) : null;
  if (t) await t.pool.whenReady(timeoutMs);
  return wasmThreadsStatus();
}

export interface WasmThreadsStatus {
  /** Threads a prefill GEMM runs on (1: the calling thread only). */
  threads: number;
  /** Workers running (threads - 1 when all started). */
  ready: number;
  /** `heap`: on tfjs-wasm's shared heap; `staged`: on a shared memory of ours (weights copied once). */
  mode?: 'heap' | 'staged';
  /** Jobs run, their chunks, chunks the calling thread took; bytes of weights staged. */
  jobs?: number; chunks?: number; callerChunks?: number; stagedWeightBytes?: number;
  /** Why there is one thread (no SharedArrayBuffer, no worker host, asked for one, a stopped pool). */
  reason?: string;
}

/**
 * Whether the current `wasm` backend's prefill work runs on threads, how many, in which mode, and why not.
 *
 * @example
 * wasmThreadsStatus();   // { threads: 1, ready: 0, reason: 'no SharedArrayBuffer (a page must be cross-origin isolated: ...)' }
 */
export function wasmThreadsStatus(): WasmThreadsStatus {
  const w = currentInstance();
  if (!w) return { threads: 1, ready: 0, reason: 'the WebAssembly SIMD kernels are not active on a wasm backend' };
  if (!wasmThreadsWanted()) return { threads: 1, ready: 0, reason: 'one thread asked (setWasmThreads(1) or TFJS_ATTENTION_WASM_THREADS=1)' };
  const t = w.sharedMemory ? onHeap.get(w) : staged;
  if (t === undefined || t === null) return { threads: 1, ready: 0, reason: 'not started yet (they start at the first prefill GEMM)' };
  if (typeof t === 'string') return { threads: 1, ready: 0, reason: t };
  const s = t.pool.stats;
  return {
    threads: t.pool.failed ? 1 : t.pool.threads, ready: t.pool.ready, mode: t.mode, jobs: s.jobs, chunks: s.chunks, callerChunks: s.callerChunks,
    stagedWeightBytes: t.staging?.weightBytes, ...(t.pool.failed ? { reason: t.pool.failed } : {}),
  };
}

/**
 * Chunk width: a multiple of 8, about CHUNKS_PER_THREAD chunks a thread, at most MAX_CHUNK_COLS. A job ends with
 * one thread finishing the last chunk alone, so narrow chunks balance better; a claim costs ~1 us.
 */
let chunksPerThread = 12;
function chunkCols(n: number, threads: number): number {
  return Math.min(MAX_CHUNK_COLS, Math.max(8, Math.ceil(n / (chunksPerThread * threads) / 8) * 8));
}

/** For benchmarks: chunks a thread aims at per job (default 12). */
export function setWasmThreadChunks(n: number): void {
  check(Number.isInteger(n) && n >= 1 && n <= 256, 'setWasmThreadChunks', () => `n (${n}) must be an integer from 1 to 256`);
  chunksPerThread = n;
}

function runCols(t: Threads, op: number, n: number, args: number[]): void {
  const cols = chunkCols(n, t.pool.threads);
  t.pool.run(op, cols, Math.ceil(n / cols), args, t.scratch);
}

/** out[M, N] = a[M, K] · op(b) (+ bias) over the threads; false when it did not run (the caller runs one thread). */
export function threadedSgemm(w: WasmSimdInstance, a: TensorInfo, b: TensorInfo, bias: TensorInfo | null, out: TensorInfo,
  M: number, N: number, K: number, tB: boolean): boolean {
  const t = threadsFor(w);
  if (!t || K === 0 || N === 0 || N > MAX_CHUNK_COLS * 0xffff) return false;
  if (t.mode === 'heap') {
    runCols(t, OP.SGEMM_COLS, N, [w.ptr(a), w.ptr(b), bias ? w.ptr(bias) : 0, 0, w.ptr(out), M, N, K, tB ? 1 : 0]);
    return true;
  }
  const s = t.staging!, src = w.heapF32(), owner = ownerOf(w);
  const staged = stage(t, () => {
    s.beginCall();
    const pb = s.weight(b, src, w.ptr(b), N * K, owner), pBias = bias ? s.weight(bias, src, w.ptr(bias), N, owner) : 0;
    return [pb, pBias, s.activation(src, w.ptr(a), M * K), s.alloc(M * N)];
  });
  if (!staged) return false;
  const [pb, pBias, pa, pOut] = staged;
  if (!runStaged(t, () => runCols(t, OP.SGEMM_COLS, N, [pa, pb, pBias, 0, pOut, M, N, K, tB ? 1 : 0]))) return false;
  s.copyOut(pOut, w.heapF32(), w.ptr(out), M * N);
  return true;
}

/** tfjs-wasm's table of live tensors (what a staged weight's sweep asks), where the backend has one. */
function ownerOf(w: WasmSimdInstance): { has(d: object): boolean } | null {
  const m = (w.backend as unknown as { dataIdMap?: { has(d: object): boolean } }).dataIdMap;
  return m && typeof m.has === 'function' ? m : null;
}

/**
 * Copies a call's tensors into the staging memory; null when it cannot grow (past 4 GiB, or the engine refuses
 * the memory): the pool is then off for good (wasmThreadsStatus says why) and the caller runs one thread.
 */
export function stage<T>(t: Threads, fn: () => T): T | null {
  try { return fn(); } catch (e) {
    t.pool.stop(`the staging memory could not hold a call's tensors: ${(e as Error).message ?? e}`);
    return null;
  }
}

/**
 * Runs a staged job; false when the pool timed out (it is off from now on): the workers only ever wrote our
 * staging memory, so the caller recomputes on one thread into tfjs's heap. A kernel trap still throws.
 */
function runStaged(t: Threads, job: () => void): boolean {
  try { job(); return true; } catch (e) {
    if (t.pool.failed) return false;
    throw e;
  }
}

/**
 * Attention items over the threads, its inputs already laid out on the pool's memory (kernels/wasm/simd_calls.ts):
 * args are flash_attention's first nine, each thread gets kernelBytes of scratch from kernelAt on. 'one item':
 * not run (a decode call: the caller runs it on the pool's memory); 'stopped': the staged pool timed out and is
 * off (the caller recomputes on one thread).
 */
export function threadedAttention(t: Threads, args: readonly number[], scale: number, kernelAt: number, kernelBytes: number,
  newPtr: number, intsPtr: number): 'done' | 'one item' | 'stopped' {
  const items = t.exports.flash_attention_item_count(newPtr, intsPtr);
  if (items < 2) return 'one item';
  const scratch = Array.from({ length: t.pool.threads }, (_, i) => kernelAt + i * kernelBytes);
  const per = Math.ceil(items / 4096); // items a chunk (a chunk count fits the claim word's 16 bits)
  const job = () => t.pool.run(OP.ATTENTION_ITEMS, per, Math.ceil(items / per), [...args, floatBits(scale), items], scratch);
  if (t.mode === 'heap') { job(); return 'done'; }
  return runStaged(t, job) ? 'done' : 'stopped';
}

const bitsView = new Float32Array(1), bitsInts = new Int32Array(bitsView.buffer);
function floatBits(x: number): number { bitsView[0] = x; return bitsInts[0]; }

/** FusedSwiGLUMLP over the threads (gate and up by columns of I, then down by columns of H); false: not run. */
export function threadedSwiGlu(w: WasmSimdInstance, x: SwiGluTensors, out: TensorInfo, T: number, H: number, I: number): boolean {
  const t = threadsFor(w);
  if (!t || Math.max(H, I) > MAX_CHUNK_COLS * 0xffff) return false;
  const p = (v: TensorInfo | undefined) => (v ? w.ptr(v) : 0);
  let ptr = { x: p(x.x), gate: p(x.gate), up: p(x.up), down: p(x.down), gb: p(x.gateBias), ub: p(x.upBias), db: p(x.downBias), r: p(x.residual), out: w.ptr(out) };
  const rows = Math.min(T, MLP_ROWS);
  let g: number, u: number, single: number;
  const singleFloats = t.exports.swiglu_scratch_floats(Math.min(T % MLP_ROWS || MLP_ROWS, MLP_ROWS), H, I);
  if (t.mode === 'heap') {
    const base = w.scratch(4 * (2 * rows * I + singleFloats) + 32), at = Math.ceil(base / 16) * 16;
    g = at; u = g + 4 * rows * I; single = u + 4 * rows * I;
  } else {
    const s = t.staging!, src = w.heapF32(), owner = ownerOf(w), from = ptr;
    const staged = stage(t, () => {
      s.beginCall();
      const wt = (v: TensorInfo | undefined, n: number) => (v ? s.weight(v, src, w.ptr(v), n, owner) : 0);
      const weights = { gate: wt(x.gate, H * I), up: wt(x.up, H * I), down: wt(x.down, I * H), gb: wt(x.gateBias, I), ub: wt(x.upBias, I), db: wt(x.downBias, H) };
      const p2 = { ...weights, x: s.activation(src, from.x, T * H), r: x.residual ? s.activation(src, from.r, T * H) : 0, out: s.alloc(T * H) };
      return { p2, g: s.alloc(rows * I), u: s.alloc(rows * I), single: s.alloc(singleFloats) };
    });
    if (!staged) return false;
    ({ p2: ptr, g, u, single } = staged);
  }
  const job = () => { for (let t0 = 0; t0 < T; t0 += MLP_ROWS) {
    const n = Math.min(MLP_ROWS, T - t0), row = (base: number, width: number) => (base ? base + 4 * t0 * width : 0);
    if (n <= THREAD_MIN_ROWS) { // a short last chunk: the one-thread kernel (its GEMV / in-place paths), as without threads
      t.exports.swiglu(row(ptr.x, H), ptr.gate, ptr.up, ptr.down, ptr.gb, ptr.ub, ptr.db, row(ptr.r, H), row(ptr.out, H), n, H, I, single);
      continue;
    }
    runCols(t, OP.SWIGLU_GATE_UP_COLS, I, [row(ptr.x, H), ptr.gate, ptr.up, ptr.gb, ptr.ub, g, u, n, H, I]);
    runCols(t, OP.SGEMM_COLS, H, [g, ptr.down, ptr.db, row(ptr.r, H), row(ptr.out, H), n, H, I, 0]);
  } };
  if (t.mode === 'heap') { job(); return true; }
  if (!runStaged(t, job)) return false;
  t.staging!.copyOut(ptr.out, w.heapF32(), w.ptr(out), T * H);
  return true;
}
