/**
 * ShardedAttention: runs an AttentionWithRope tensor-parallel over several devices, each shard in
 * its own worker thread (or process) with its own tfjs engine, backend and PagedKVCache shard.
 * Inputs are broadcast and partial outputs all-reduced (a reduce-scatter in the workers) through
 * SharedArrayBuffers (threads) or a shared /dev/shm mapping (processes), see protocol.ts.
 */
import { WorkerSequences } from './worker_sequences.js';
import * as tf from '@tensorflow/tfjs';
import type { AttentionWithRope } from '../attention/attention_with_rope.js';
import { check, checkInt } from '../errors.js';
import type { DevicePlacement } from '../types.js';
import { deviceName } from './devices.js';
import type { Reply, SeqAction } from './protocol.js';
import { SharedRegion, sharedMemoryUnavailable } from './shm_region.js';
import { type SpawnCommand, ShardWorker, type Transport } from './shard_worker.js';
import { type PartialDtype, reduceRange, reduceRows, slotView } from './partials.js';
import { hfWeightsOf, shardInfoOf } from './shard_layer.js';
import { workerScript } from './worker_script.js';

const W = 'ShardedAttention';

export interface ShardedAttentionOptions {
  /** Composite path only in every worker (no fused kernels). */
  unfused?: boolean;
  /**
   * CPU / wasm fused kernels (and the cpu projection sgemm) in the workers: 'auto' (default: the
   * native addon when it loaded, else the pure-TypeScript kernels), 'native' or 'ts'. Each worker
   * thread has its own native thread pool and scratch, so the workers' calls run at once.
   */
  cpuKernelImpl?: 'ts' | 'native' | 'auto';
  /** Native CPU kernel threads per worker (default 1: one core per worker, the workers side by side). */
  nativeThreads?: number;
  /**
   * 'thread' (default): worker threads, data through shared memory. 'process': one child process
   * per device (input and partials through a /dev/shm file mapped by every process, reduce-scattered
   * by the workers); with `spawnCommand: isolateNvidiaGpu` each sees one GPU, how `webgpu:0,webgpu:1`
   * reach two GPUs.
   */
  transport?: Transport;
  /**
   * Transport 'process': move data through shared memory (default true, where the native addon
   * loaded and /dev/shm is writable; see `dataPaths`), else over Node IPC (structured clone, a copy
   * each way). `false` or TFJS_ATTENTION_SHM=0 forces IPC.
   */
  sharedMemory?: boolean;
  /** How a process worker starts (transport 'process'); default: this Node on the worker script. */
  spawnCommand?: SpawnCommand;
  /**
   * Most ms a call waits for every device (default 120000: a first WebGPU call compiles its
   * shaders). A device that does not answer in time (hung, or a process stopped with SIGSTOP)
   * fails the call: it rejects naming the device, and no cache shard nor the sequence book moves.
   */
  callTimeoutMs?: number;
  /**
   * Precision of the partial outputs the workers write and sum (default 'float32', exact to the
   * unsharded layer within 1e-5). 'float16' halves the bytes each partial moves; the sum stays
   * float32 and its error is at most numDevices * 2^-11 * max|partial| (see partials.ts, README).
   */
  partialDtype?: PartialDtype;
  /**
   * Row chunks of the output projection per call (default: 4 on webgpu workers for calls of 512
   * rows or more, else 1): each chunk's readback overlaps the next chunk's compute.
   */
  readbackChunks?: number;
}

const DEFAULT_CALL_TIMEOUT_MS = 120_000;

/**
 * A tensor-parallel AttentionWithRope: `layer.shard(devices)` placed one shard per worker thread.
 * The sharded call equals the layer's `callRagged` (partial outputs summed). It owns its paged
 * cache: sequences are added, forked and released here and mirrored in every worker.
 *
 * @example
 * const tp = await ShardedAttention.create(layer, parseDevices('cpu,wasm'));
 * tp.addSequence(0);
 * const y = await tp.callRagged(hidden, [0], [hidden.shape[0]]); // [T, hidden], the cache stepped
 * await tp.dispose();
 */
export class ShardedAttention extends WorkerSequences {
  private input = new SharedArrayBuffer(0);
  private partials = new SharedArrayBuffer(0);
  private capacity = 0;
  private nextId = 1;
  private busy = false;
  private disposed = false;
  /** Timing of the last call, see `lastCallStats`. */
  private stats: CallStats | null = null;

  /** Set when a device failed while committing: shards may disagree, so no further call is allowed. */
  private broken: string | null = null;

  private constructor(private readonly slots: ShardWorker[], readonly hiddenSize: number, kv: AttentionWithRope['kvParams'],
    private region: SharedRegion | null, private readonly paths: DataPath[], private readonly timeoutMs: number,
    private readonly partialDtype: PartialDtype, private readonly readbackChunks: number | undefined) {
    super(kv.pageSize, kv.numPages);
  }

  /**
   * Shards `layer` over `devices` (default: the layer's `devices` option) and starts one worker
   * per device. Each call is a whole step (fetch, compute, commit), so the sharded layer owns a
   * one-layer cache shard per device (`kvParams.numLayers` is taken as 1).
   */
  static async create(layer: AttentionWithRope, devices?: DevicePlacement[], opts: ShardedAttentionOptions = {}): Promise<ShardedAttention> {
    devices ??= layer.opts.devices ?? undefined;
    check(devices !== undefined, W, () => 'no devices: pass them or give the layer a `devices` option');
    const nativeThreads = opts.nativeThreads ?? 1;
    checkInt(nativeThreads, W, 'nativeThreads', 1);
    const timeoutMs = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    checkInt(timeoutMs, W, 'callTimeoutMs', 1);
    const partialDtype = opts.partialDtype ?? 'float32';
    check(partialDtype === 'float32' || partialDtype === 'float16', W, () => `partialDtype ('${partialDtype}') must be 'float32' or 'float16'`);
    if (opts.readbackChunks !== undefined) checkInt(opts.readbackChunks, W, 'readbackChunks', 1);
    const shards = layer.shard(devices);
    check(shardInfoOf(shards[0])!.mode === 'tensor_parallel', W, () =>
      `layer's shardingStrategy is replicate(${layer.shardingStrategy.numDevices}); ShardedAttention runs tensor_parallel only`);
    const script = await workerScript();
    const slots: ShardWorker[] = [];
    const transport = opts.transport ?? 'thread';
    const paths: DataPath[] = shards.map(() => (transport === 'thread' ? 'sab' : 'ipc'));
    let region: SharedRegion | null = null;
    if (transport === 'process' && opts.sharedMemory !== false && sharedMemoryUnavailable() === null) {
      try { region = new SharedRegion(16, layer.opts.hiddenSize, shards.length); } catch { region = null; } // IPC then
    }
    try {
      await Promise.all(shards.map(async (shard, i) => {
        const weights: Record<string, Float32Array> = {};
        for (const [k, v] of Object.entries(hfWeightsOf(shard))) weights[k] = v.data;
        const config = shard.getConfig();
        config.kvParams = { ...(config.kvParams as tf.serialization.ConfigDict), numLayers: 1 };
        shard.dispose();
        const slot = slots[i] = new ShardWorker(script, devices![i], i, transport, opts.spawnCommand);
        const r = await slot.request({
          op: 'init', id: 0, device: devices![i], config, weights, forceComposite: opts.unfused ?? false,
          cpuKernelImpl: opts.cpuKernelImpl ?? 'auto', nativeThreads, ...(region ? { shm: region.ref } : {}),
        }, slot.transport === 'thread' ? Object.values(weights).map((w) => w.buffer as ArrayBuffer) : []);
        check(r.ok, W, () => `${slot.name} failed to start: ${r.error}`);
        slot.backend = r.backend!;
        if (r.shm) paths[i] = 'shm';
      }));
    } catch (e) {
      region?.unlink();
      await Promise.all(slots.filter(Boolean).map((s) => s.terminate()));
      throw e;
    }
    region?.unlink(); // every worker that uses it has mapped it: the name is no longer needed
    if (!paths.includes('shm')) region = null;
    return new ShardedAttention(slots, layer.opts.hiddenSize, layer.kvParams, region, paths, timeoutMs, partialDtype, opts.readbackChunks);
  }

  get numDevices(): number { return this.slots.length; }
  get devices(): DevicePlacement[] { return this.slots.map((s) => ({ ...s.device })); }
  /** The tfjs backend each worker runs. */
  get backends(): string[] { return this.slots.map((s) => s.backend); }
  /**
   * How each worker's input and partial move: 'sab' (thread, SharedArrayBuffer), 'shm' (process,
   * a shared /dev/shm mapping) or 'ipc' (process, copied in the messages).
   */
  get dataPaths(): DataPath[] { return [...this.paths]; }
  /** Process ids of process workers (null for thread workers), e.g. to watch or signal them. */
  get workerPids(): (number | null)[] { return this.slots.map((s) => s.pid); }
  /** Rows the shared /dev/shm region holds now (0: none; it grows with the largest call). */
  get sharedRows(): number { return this.region?.capacity ?? 0; }
  /** Precision of the partial outputs (see ShardedAttentionOptions.partialDtype). */
  get partialPrecision(): PartialDtype { return this.partialDtype; }
  /** Where the time of the last callRagged went (null before the first). */
  get lastCallStats(): CallStats | null { return this.stats && { ...this.stats }; }

  /**
   * The sharded ragged call: fetches room for `numNewTokens[b]` new tokens of each sequence,
   * runs every shard, commits the step on every cache shard only when all succeeded, and returns
   * the summed output `[totalTokens, hidden]`. On any device's failure (or no answer within
   * `callTimeoutMs`) it rejects with that device's error; no cache shard nor the book has moved
   * and the pages the call reserved are free again.
   */
  async callRagged(hidden: tf.Tensor2D | Float32Array, seqIds: number[], numNewTokens: number[]): Promise<tf.Tensor2D> {
    return (await this.run(hidden, seqIds, numNewTokens, false))!;
  }

  /** The sharded `materializeKvFromHidden`: stores K/V of `hidden` on every shard, no output. */
  async materializeKvFromHidden(hidden: tf.Tensor2D | Float32Array, seqIds: number[], numNewTokens: number[]): Promise<void> {
    await this.run(hidden, seqIds, numNewTokens, true);
  }

  private async run(hidden: tf.Tensor2D | Float32Array, seqIds: number[], counts: number[], materialize: boolean): Promise<tf.Tensor2D | null> {
    this.checkIdle(materialize ? 'materializeKvFromHidden' : 'callRagged');
    const t0 = performance.now();
    const H = this.hiddenSize;
    // The whole call is validated before the book reserves a page.
    check(Array.isArray(counts) && counts.every((n) => Number.isInteger(n) && n >= 0), W, () =>
      `numNewTokens must be an array of integers >= 0, got ${JSON.stringify(counts)}`);
    const T = counts.reduce((a, b) => a + b, 0);
    if (!(hidden instanceof Float32Array)) {
      check(hidden instanceof tf.Tensor && hidden.rank === 2 && hidden.shape[1] === H, W, () =>
        `hidden must be [totalTokens, ${H}], got [${(hidden as tf.Tensor)?.shape}]`);
    }
    const data = hidden instanceof Float32Array ? hidden : hidden.dataSync() as Float32Array;
    check(data.length === T * H, W, () => `hidden has ${data.length} values, expected totalTokens * hiddenSize (${T} * ${H})`);
    const kv = this.book.fetch(seqIds, counts); // validates ids, counts and pages before any worker moves
    const threads = this.slots[0].transport === 'thread';
    if (threads) {
      this.ensureCapacity(T);
      new Float32Array(this.input, 0, T * H).set(data); // the broadcast: one write, read in place by every worker
    } else {
      this.ensureRegion(T);
      this.region?.input(T * H).set(data); // the same, through the shared mapping
    }
    const region = this.region;
    const id = this.nextId++;
    const dtype = this.partialDtype;
    this.busy = true;
    let phase: 'call' | 'commit' = 'call';
    try {
      const slotFloats = this.capacity * H;
      let replies: Reply[];
      try {
        replies = await this.all((s, i) => s.request({
          op: 'call', id, layerIdx: 0, seqIds: Array.from(seqIds), numNewTokens: Array.from(counts), materialize, slotFloats,
          partialDtype: dtype, chunkRows: this.chunkRows(s, T),
          ...(this.paths[i] === 'sab' ? { input: this.input, partials: this.partials }
            : this.paths[i] === 'shm' ? { input: null, partials: null, shm: region!.ref }
              : { input: data.slice(0, T * H), partials: null }),
        }, [], this.timeoutMs));
      } finally {
        region?.unlink(); // every worker mapped it, or failed: a grown region is named in this call only
      }
      const computeMs = Math.max(...replies.map((r) => r.computeMs ?? 0));
      const tReduce = performance.now();
      let out: Float32Array | null = null;
      if (!materialize) {
        const n = this.slots.length;
        if (this.paths.every((p) => p !== 'ipc')) {
          // Reduce-scatter in the workers: worker j sums rows reduceRows(T, n, j) of every slot
          // (threads into a fresh buffer the output wraps; processes into the region's input area).
          const sab = threads ? new SharedArrayBuffer(T * H * 4) : null;
          await this.all((s, j) => {
            const [rowStart, rowEnd] = reduceRows(T, n, j);
            return s.request({
              op: 'reduce', id, partials: threads ? this.partials : null, out: sab, slotFloats, numSlots: n,
              rowStart, rowEnd, hidden: H, partialDtype: dtype,
            }, [], this.timeoutMs);
          });
          out = sab ? new Float32Array(sab) : region!.input(T * H).slice(); // the region is reused: the output owns a copy
        } else {
          out = new Float32Array(T * H); // some partials came over IPC: the main thread sums
          const slotBytes = (d: number) => (1 + d) * region!.capacity * H * 4;
          reduceRange(out, replies.map((r, i) => (this.paths[i] === 'shm' ? slotView(region!.buffer, slotBytes(i), T * H, dtype) : r.partial!)), 0, T * H, dtype);
        }
      }
      const reduceMs = performance.now() - tReduce;
      phase = 'commit'; // nothing is committed until every worker computed and reduced
      await this.all((s) => s.request({ op: 'commit', id }, [], this.timeoutMs));
      this.book.step(kv);
      const totalMs = performance.now() - t0;
      this.stats = { totalMs, computeMs, reduceMs, moveMs: Math.max(0, totalMs - computeMs - reduceMs) };
      return out ? tf.tensor2d(out, [T, H]) : null; // [T, hidden]
    } catch (e) {
      if (phase === 'call') {
        // Nothing was committed anywhere: every shard and the book give back what this call reserved
        // (a stopped worker does so when it resumes: its messages run in order).
        this.book.abandon(kv);
        for (const s of this.slots) s.post({ op: 'abort', id });
      } else {
        this.broken = `${(e as Error).message} while committing call ${id}: the cache shards may disagree`;
      }
      throw e;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Sends to every worker, waits for every answer (so none still reads shared memory), throws the
   * first device's error (a worker's own error, its death, or its timeout).
   */
  private async all(send: (s: ShardWorker, i: number) => Promise<Reply>): Promise<Reply[]> {
    const results = await Promise.allSettled(this.slots.map((s, i) => send(s, i)));
    return results.map((r, i) => {
      if (r.status === 'rejected') throw r.reason as Error;
      check(r.value.ok, W, () => `${this.slots[i].name} failed: ${r.value.error}`);
      return r.value;
    });
  }

  /** Each worker's cache state: sequence lengths and free pages (for checks and tests). */
  async inspect(): Promise<{ device: string; lengths: Map<number, number>; numFreePages: number }[]> {
    this.checkUsable();
    const id = this.nextId++;
    const rs = await Promise.all(this.slots.map((s) => s.request({ op: 'inspect', id })));
    return rs.map((r, i) => ({ device: deviceName(this.slots[i].device), lengths: new Map(r.lengths), numFreePages: r.numFreePages! }));
  }

  /**
   * Testing: makes device `index` throw or exit during the next call, in its compute (after
   * writing its K/V) or halfway through its reduce-scatter rows.
   */
  injectFault(index: number, mode: 'throw' | 'exit', phase: 'call' | 'reduce' = 'call'): void {
    checkInt(index, `${W}.injectFault`, 'index', 0);
    check(index < this.slots.length, `${W}.injectFault`, () => `index (${index}) must be < numDevices (${this.slots.length})`);
    this.slots[index].post({ op: 'fault', mode, phase });
  }

  /** Rows per output-projection chunk for worker `s` on a call of T rows (0: one piece). */
  private chunkRows(s: ShardWorker, T: number): number {
    const chunks = this.readbackChunks ?? (s.backend === 'webgpu' && T >= 512 ? 4 : 1);
    return chunks <= 1 ? 0 : Math.ceil(T / chunks);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.region?.unlink();
    this.region = null;
    await Promise.all(this.slots.map((s) => s.terminate()));
  }

  private checkUsable(): void {
    check(!this.disposed, W, () => 'disposed');
    check(this.broken === null, W, () => `unusable: ${this.broken}; create a new ShardedAttention`);
    const dead = this.slots.findIndex((s) => s.dead);
    check(dead < 0, W, () => `${this.slots[dead].name} is gone (${this.slots[dead].dead!.message}); its cache shard is lost, create a new ShardedAttention`);
  }

  protected checkIdle(what: string): void {
    this.checkUsable();
    check(!this.busy, W, () => `${what} while a call is running; await it first`);
  }

  protected broadcastSeq(seq: SeqAction): void {
    for (const s of this.slots) s.post({ op: 'seq', seq });
  }

  /** Grows the shared region (a new file, named to the workers in the next call) to hold T rows. */
  private ensureRegion(T: number): void {
    const r = this.region;
    if (!r || T <= r.capacity) return;
    try {
      this.region = new SharedRegion(Math.max(T, 2 * r.capacity), this.hiddenSize, this.slots.length);
    } catch (e) { // /dev/shm full, say: the data moves over IPC from now on
      this.region = null;
      this.paths.forEach((p, i) => { if (p === 'shm') this.paths[i] = 'ipc'; });
      console.warn(`[${W}] shared memory could not grow to ${T} rows (${(e as Error).message}); moving data over IPC from now on`);
    }
    r.unlink();
  }

  private ensureCapacity(T: number): void {
    if (T <= this.capacity && this.capacity > 0) return;
    this.capacity = Math.max(T, 2 * this.capacity, 16);
    this.input = new SharedArrayBuffer(this.capacity * this.hiddenSize * 4);
    this.partials = new SharedArrayBuffer(this.slots.length * this.capacity * this.hiddenSize * 4);
  }
}

/** Per worker: how its input and partial move (see ShardedAttention.dataPaths). */
export type DataPath = 'sab' | 'shm' | 'ipc';

/**
 * Where the time of one call went, in ms: `computeMs` the slowest worker's call handler (compute
 * and writing its partial), `reduceMs` the reduce-scatter round trip (in the workers; on the main
 * thread where partials came over IPC), `moveMs` the rest (the commit round trip,
 * placing the input, the call messages and replies, their payloads on the IPC path).
 */
export interface CallStats { totalMs: number; computeMs: number; reduceMs: number; moveMs: number }
