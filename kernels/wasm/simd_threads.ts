/**
 * Threads for the WebAssembly SIMD kernels' prefill GEMMs: worker threads that instantiate the shared-memory
 * build (wasm/*_shared.wasm) on one shared `WebAssembly.Memory` and take chunks of output columns of a job
 * while the calling thread takes chunks too (kernels/wasm/simd_worker_source.ts has the worker's side and the
 * control block's layout). Chunks are claimed one at a time (compareExchange on one word), so a thread that
 * the OS or a busy page holds back simply takes fewer; the caller then waits only for chunks already claimed.
 *
 * Workers come from a host: in browsers a `Worker` from a Blob URL (needs a cross-origin isolated page for
 * SharedArrayBuffer); in Node `worker_threads`, installed by the Node entry (lib/backends/wasm_threads_node.ts)
 * through `setWasmWorkerHost`. Without a host or SharedArrayBuffer, or with `TFJS_ATTENTION_WASM_THREADS=1`
 * (or `setWasmThreads(1)`), every kernel runs on the calling thread as before. Waits are bounded: the caller
 * spins (a page's main thread may not block) or Atomics.waits in 50 ms slices, and gives up after
 * THREAD_JOB_TIMEOUT_MS, after which the pool is off for good and the caller recomputes or throws.
 *
 * @example
 * setWasmThreads(2);                                  // before the first prefill (default: the core count, up to 8)
 * await startWasmThreads();                           // optional: spawn and wait for the workers now
 * wasmThreadsStatus();                                // { threads: 2, ready: 1, mode: 'staged' | 'heap', ... }
 */
import { check } from '../../core/errors.js';
import { envSwitch } from '../../core/env.js';
import { WASM_THREAD_WORKER_SOURCE } from './simd_worker_source.js';

/** A worker as the pool needs it, the same over browser Workers and worker_threads. */
export interface PortableWorker {
  postMessage(m: unknown): void;
  /** Its messages, and its uncaught errors as `{ error }`. */
  onMessage(fn: (m: { ready?: boolean; error?: string }) => void): void;
  terminate(): void;
}
/** Starts workers from a script's source; `cores`: the default thread count. */
export interface WasmWorkerHost { spawn(source: string): PortableWorker; cores: number }

/** Control block words (see simd_worker_source.ts). */
export const CTL = { WAKE: 2, DONE: 3, QUIT: 4, ERROR: 5, OP: 6, COLS: 7, ARGS: 8, SCRATCH: 32, WORDS: 64 } as const;
export const OP = { SGEMM_COLS: 1, SWIGLU_GATE_UP_COLS: 2, ATTENTION_ITEMS: 3 } as const;
export const MAX_THREADS = 16;
export const THREAD_JOB_TIMEOUT_MS = 60_000;
export const THREAD_STACK_BYTES = 1 << 17;

let host: WasmWorkerHost | null = null;
/** The Node entry's worker_threads host (browsers use their Worker without it); null removes it. */
export function setWasmWorkerHost(h: WasmWorkerHost | null): void { host = h; }

function browserHost(): WasmWorkerHost | null {
  if (typeof Worker === 'undefined' || typeof Blob === 'undefined' || typeof URL?.createObjectURL !== 'function') return null;
  return {
    cores: typeof navigator !== 'undefined' ? navigator.hardwareConcurrency ?? 1 : 1,
    spawn(source) {
      const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
      const w = new Worker(url);
      URL.revokeObjectURL(url);
      return {
        postMessage: (m) => w.postMessage(m), terminate: () => w.terminate(),
        onMessage: (fn) => { w.onmessage = (ev) => fn(ev.data); w.onerror = (ev) => fn({ error: ev.message }); },
      };
    },
  };
}

const envThreads = envSwitch('WASM_THREADS');
let requested: number | null = null;
/**
 * How many threads (the caller's included) the wasm SIMD kernels' prefill work uses: read when the pool starts
 * (the first prefill GEMM, or startWasmThreads); 1 turns the workers off at any time, a larger count turns them
 * back on. Default: the core count, up to 8 (`TFJS_ATTENTION_WASM_THREADS` in Node).
 *
 * @example
 * setWasmThreads(1);   // one thread, e.g. for an A/B
 */
export function setWasmThreads(n: number): void {
  check(Number.isInteger(n) && n >= 1 && n <= MAX_THREADS, 'setWasmThreads', () => `n (${n}) must be an integer from 1 to ${MAX_THREADS}`);
  requested = n;
}

/** TFJS_ATTENTION_WASM_THREADS as a count (undefined: not set); throws naming a bad value. */
export function envThreadCount(): number | undefined {
  if (envThreads === undefined) return undefined;
  const n = Number(envThreads);
  check(Number.isInteger(n) && n >= 1 && n <= MAX_THREADS, 'wasmThreads', () => `TFJS_ATTENTION_WASM_THREADS ('${envThreads}') must be an integer from 1 to ${MAX_THREADS}`);
  return n;
}

/** False after setWasmThreads(1) (checked per call, so it also turns a started pool off until set above 1 again). */
export function wasmThreadsWanted(): boolean { return (requested ?? envThreadCount()) !== 1; }

/** The host, thread count and shared memory this environment allows, or why threads are off. */
export function threadPlan(): { host: WasmWorkerHost; threads: number } | string {
  if (typeof SharedArrayBuffer === 'undefined' || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) {
    return 'no SharedArrayBuffer (a page must be cross-origin isolated: COOP/COEP headers)';
  }
  const h = host ?? browserHost();
  if (!h) return 'no worker host (browsers: Worker; Node: import the Node entry)';
  const threads = requested ?? envThreadCount() ?? Math.max(1, Math.min(8, h.cores));
  return threads > 1 ? { host: h, threads } : 'one thread (TFJS_ATTENTION_WASM_THREADS / setWasmThreads, or one core)';
}

/** The exports a pool runs on the calling thread (the same module as the workers', on the same memory). */
export interface ThreadKernelExports {
  sgemm_cols(a: number, b: number, bias: number, residual: number, out: number, M: number, N: number, K: number, tB: number,
    n0: number, n1: number, scratch: number): void;
  swiglu_gate_up_cols(x: number, gate: number, up: number, gb: number, ub: number, g: number, u: number, T: number, H: number,
    I: number, n0: number, n1: number, scratch: number): void;
  sgemm_cols_scratch_floats(cols: number): number;
  flash_attention_items(q: number, out: number, k: number, v: number, rowOffsets: number, startPositions: number, numNewTokens: number,
    pageTable: number, ints: number, scale: number, scratch: number, i0: number, i1: number): void;
  flash_attention_item_count(numNewTokens: number, ints: number): number;
}

const bitsInts = new Int32Array(1), bitsView = new Float32Array(bitsInts.buffer);
/** A float passed through the control block as its bits. */
function intBitsFloat(bits: number): number { bitsInts[0] = bits; return bitsView[0]; }

/** Workers plus the calling thread on one shared memory. */
export class WasmThreadPool {
  readonly ctl = new Int32Array(new SharedArrayBuffer(4 * CTL.WORDS));
  private readonly claim = new BigInt64Array(this.ctl.buffer);
  private readonly workers: PortableWorker[] = [];
  private readonly readyWaiters: (() => void)[] = [];
  private tag = 0n;
  ready = 0;
  failed: string | null = null;
  /** Jobs run, their chunks, and the chunks the calling thread took (the rest went to workers). */
  readonly stats = { jobs: 0, chunks: 0, callerChunks: 0 };
  /** The calling thread may block (Node, workers) or must spin (a page's main thread). */
  private readonly canBlock: boolean;

  /** stackTop(i): a fresh stack's top for worker i (16-aligned, grows down). */
  constructor(readonly threads: number, readonly exports: ThreadKernelExports, module: WebAssembly.Module, memory: WebAssembly.Memory,
    h: WasmWorkerHost, stackTop: (i: number) => number) {
    let block = true;
    try { Atomics.wait(this.ctl, CTL.QUIT, 1, 0); } catch { block = false; }
    this.canBlock = block;
    for (let i = 1; i < threads; i++) {
      const w = h.spawn(WASM_THREAD_WORKER_SOURCE);
      w.onMessage((m) => {
        if (m.ready) this.ready++;
        else this.failed ??= `a worker could not start: ${m.error}`;
        if (this.ready + (this.failed ? 1 : 0) >= this.workers.length) for (const f of this.readyWaiters.splice(0)) f();
      });
      w.postMessage({ module, memory, ctl: this.ctl.buffer, stackTop: stackTop(i), index: i });
      this.workers.push(w);
    }
  }

  /** Resolves once every worker started (or one failed), or after timeoutMs. */
  whenReady(timeoutMs: number): Promise<void> {
    if (this.ready + (this.failed ? 1 : 0) >= this.workers.length) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.readyWaiters.push(() => { clearTimeout(t); resolve(); });
    });
  }

  /**
   * Runs `chunks` chunks of `op` (chunk c: columns c * cols .. (c + 1) * cols) over every thread; scratch[i]:
   * thread i's scratch offset (0: the caller). Throws (and turns the pool off) when a chunk threw or the
   * workers' claimed chunks did not finish within THREAD_JOB_TIMEOUT_MS.
   */
  run(op: number, cols: number, chunks: number, args: number[], scratch: number[]): void {
    check(!this.failed, 'wasmThreads', () => `the thread pool is off: ${this.failed}`);
    check(chunks >= 1 && chunks < 0x10000 && args.length <= CTL.SCRATCH - CTL.ARGS, 'wasmThreads', () => `chunks (${chunks}) must be 1 .. 65535`);
    const ctl = this.ctl;
    Atomics.store(ctl, CTL.OP, op); Atomics.store(ctl, CTL.COLS, cols);
    args.forEach((v, i) => Atomics.store(ctl, CTL.ARGS + i, v));
    scratch.forEach((v, i) => Atomics.store(ctl, CTL.SCRATCH + i, v));
    Atomics.store(ctl, CTL.DONE, 0); Atomics.store(ctl, CTL.ERROR, 0);
    this.tag++;
    Atomics.store(this.claim, 0, (this.tag << 32n) | (BigInt(chunks) << 16n));
    Atomics.add(ctl, CTL.WAKE, 1);
    Atomics.notify(ctl, CTL.WAKE);
    let mine: unknown = null;
    for (;;) { // the caller's share, claimed like the workers'
      const v = Atomics.load(this.claim, 0), next = Number(v & 0xffffn);
      if (next >= chunks) break;
      if (Atomics.compareExchange(this.claim, 0, v, v + 1n) !== v) continue;
      try { this.runChunk(op, cols, next, args, scratch[0]); } catch (e) { mine ??= e; }
      Atomics.add(ctl, CTL.DONE, 1);
      this.stats.callerChunks++;
    }
    this.stats.jobs++; this.stats.chunks += chunks;
    const deadline = performance.now() + THREAD_JOB_TIMEOUT_MS;
    for (let done = Atomics.load(ctl, CTL.DONE); done < chunks; done = Atomics.load(ctl, CTL.DONE)) {
      if (performance.now() > deadline) {
        this.stop(`the workers' chunks of a job did not finish within ${THREAD_JOB_TIMEOUT_MS} ms`);
        check(false, 'wasmThreads', () => `${this.failed}; the pool is off (one thread from now on)`);
      }
      if (this.canBlock) Atomics.wait(ctl, CTL.DONE, done, 50);
    }
    if (mine) throw mine;
    check(Atomics.load(ctl, CTL.ERROR) === 0, 'wasmThreads', () => 'a worker\'s chunk threw (a kernel trap: out-of-bounds heap access?)');
  }

  private runChunk(op: number, cols: number, c: number, a: number[], scratch: number): void {
    const n0 = c * cols, e = this.exports;
    if (op === OP.SGEMM_COLS) e.sgemm_cols(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], n0, Math.min(a[6], n0 + cols), scratch);
    else if (op === OP.SWIGLU_GATE_UP_COLS) e.swiglu_gate_up_cols(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], n0, Math.min(a[9], n0 + cols), scratch);
    else e.flash_attention_items(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], intBitsFloat(a[9]), scratch, n0, Math.min(a[10], n0 + cols));
  }

  /** Ends the workers (their loops see QUIT within 1 s; terminate ends them at once). */
  stop(reason: string): void {
    this.failed ??= reason;
    Atomics.store(this.ctl, CTL.QUIT, 1);
    Atomics.add(this.ctl, CTL.WAKE, 1);
    Atomics.notify(this.ctl, CTL.WAKE);
    for (const w of this.workers) w.terminate();
  }
}
