/**
 * Tensor parallelism across MPI ranks (the `mpi` transport): each rank of `mpirun -np N` holds
 * its heads' weights (`layer.shard(...)[rank]`) and its KV cache shard; every call broadcasts
 * rank 0's input, each rank computes its partial output, and one allreduce sums the partials
 * (a failure flag riding along). Every rank calls the same methods with the same arguments in
 * the same order (SPMD), as with any MPI collective.
 *
 * Two-phase step: phase 1 checks the call (same arguments on every rank, cache room) and
 * computes; the allreduce is the barrier; only when no rank failed does every rank commit its
 * cache step. A rank that throws fails the call on every rank with no cache shard moved; a rank
 * that dies fails the others at the collective's timeout (or mpirun's SIGTERM), never a hang.
 */
import * as tf from '@tensorflow/tfjs';
import type { AttentionWithRope } from '../attention/attention_with_rope.js';
import { check } from '../errors.js';
import type { PagedKVCollection } from '../kv_cache/collection.js';
import { PagedKVCache } from '../kv_cache/paged_kv_cache.js';
import { MpiComm, type MpiCommOptions, fnv1a } from '../mpi/comm.js';
import { shardInfoOf } from './shard_layer.js';

const W = 'MpiShardedAttention';

export interface MpiShardedAttentionOptions extends MpiCommOptions {
  /** The communicator (default: `MpiComm.world(opts)`). */
  comm?: MpiComm;
}

/**
 * A tensor-parallel AttentionWithRope over the ranks of an MPI job.
 *
 * @example
 * // mpirun -np 2 --oversubscribe node serve.js   (every rank runs this)
 * const layer = new AttentionWithRope(args);        // same weights on every rank, e.g. one checkpoint
 * const tp = MpiShardedAttention.create(layer);     // keeps this rank's heads only
 * layer.dispose();
 * tp.addSequence(0);
 * const y = tp.callRagged(tp.isRoot ? hidden : null, [0], [7]); // [7, hidden] on every rank
 */
export class MpiShardedAttention {
  private readonly cache: PagedKVCache;
  private fault: 'throw' | 'kill' | null = null;
  private disposed = false;

  private constructor(readonly comm: MpiComm, private readonly shard: AttentionWithRope, readonly hiddenSize: number) {
    this.cache = new PagedKVCache({ ...shard.kvParams, numLayers: 1 });
  }

  /**
   * Shards `layer` over the ranks (tensor_parallel: query heads split, KV heads with them) and
   * keeps this rank's shard; `layer` itself is left to the caller. Collective: every rank calls it.
   */
  static create(layer: AttentionWithRope, opts: MpiShardedAttentionOptions = {}): MpiShardedAttention {
    const comm = opts.comm ?? MpiComm.world(opts);
    const heads = layer.opts.numAttentionHeads;
    check(heads >= comm.size, W, () => `numAttentionHeads (${heads}) must be >= the number of MPI ranks (${comm.size}): every rank needs a head`);
    const backend = tf.getBackend();
    check(['cpu', 'wasm', 'webgpu'].includes(backend), W, () => `the tfjs backend ('${backend}') must be cpu, wasm or webgpu`);
    const devices = Array.from({ length: comm.size }, (_, index) => ({ backend: backend as 'cpu', index }));
    if (!layer.built) layer.build([null, layer.opts.hiddenSize]);
    const { name: _name, ...config } = layer.getConfig(); // auto-numbered names may differ between ranks
    comm.agreeSame([new TextEncoder().encode(JSON.stringify(config)), ...layer.weights.map((w) => w.read().dataSync() as Float32Array)],
      W, 'the layer (config and weights; every rank must build the same one)');
    const shards = layer.shard(devices);
    check(shardInfoOf(shards[0])!.mode === 'tensor_parallel' || comm.size === 1, W, () =>
      `layer's shardingStrategy is replicate(${layer.shardingStrategy.numDevices}); MpiShardedAttention runs tensor_parallel only`);
    shards.forEach((s, i) => { if (i !== comm.rank) s.dispose(); });
    const tp = new MpiShardedAttention(comm, shards[comm.rank], layer.opts.hiddenSize);
    comm.barrier(); // every rank built its shard
    return tp;
  }

  get rank(): number { return this.comm.rank; }
  get size(): number { return this.comm.size; }
  get isRoot(): boolean { return this.comm.rank === 0; }
  /** Query heads this rank computes. */
  get localHeads(): number { return this.shard.opts.numAttentionHeads; }
  /** KV heads this rank's cache holds. */
  get localKvHeads(): number { return this.shard.opts.numKeyValueHeads; }
  get sequenceIds(): number[] { return this.cache.sequenceIds; }
  hasSequence(seqId: number): boolean { return this.cache.hasSequence(seqId); }
  cacheLength(seqId: number): number { return this.cache.cacheLength(seqId); }
  get numFreePages(): number { return this.cache.numFreePages; }

  /** Sequence bookkeeping: local on every rank (each rank makes the same calls). */
  addSequence(seqId?: number): number { this.checkUsable(); return this.cache.addSequence(seqId); }
  releaseSequence(seqId: number): void { this.checkUsable(); this.cache.releaseSequence(seqId); }
  forkSequence(srcId: number, dstId?: number): number { this.checkUsable(); return this.cache.forkSequence(srcId, dstId); }

  /**
   * The sharded ragged call: rank 0's `hidden` `[totalTokens, hidden]` (the other ranks may pass
   * null) goes to every rank; returns the summed output on every rank, the cache stepped. When any
   * rank fails, every rank throws and no cache shard has moved.
   */
  callRagged(hidden: tf.Tensor2D | Float32Array | null, seqIds: number[], numNewTokens: number[]): tf.Tensor2D {
    return this.run(hidden, seqIds, numNewTokens, false)!;
  }

  /** The sharded `materializeKvFromHidden`: stores K/V of rank 0's `hidden` on every rank's shard. */
  materializeKvFromHidden(hidden: tf.Tensor2D | Float32Array | null, seqIds: number[], numNewTokens: number[]): void {
    this.run(hidden, seqIds, numNewTokens, true);
  }

  /** Testing: this rank throws after computing (before the allreduce) or kills itself (SIGKILL) in the next call. */
  injectFault(mode: 'throw' | 'kill'): void {
    check(mode === 'throw' || mode === 'kill', `${W}.injectFault`, () => `mode must be 'throw' or 'kill', got '${mode}'`);
    this.fault = mode;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.shard.dispose();
  }

  private run(hidden: tf.Tensor2D | Float32Array | null, seqIds: number[], counts: number[], materialize: boolean): tf.Tensor2D | null {
    this.checkUsable();
    const H = this.hiddenSize;
    // Phase 0: every rank checks its arguments and cache; rank 0's header (T, a hash of the
    // arguments and cache lengths) must match everyone's; any failure fails every rank.
    let kv: PagedKVCollection | null = null, localError: Error | null = null, rootData: Float32Array | null = null;
    try {
      kv = this.cache.fetch(seqIds, counts);
      if (this.isRoot) rootData = rootInput(hidden, kv.totalTokens, H);
    } catch (e) { localError = e as Error; }
    const T = kv?.totalTokens ?? -1;
    const sig = fnv1a(this.signature(seqIds, counts, materialize));
    const header = new Float32Array([T, sig >>> 16, sig & 0xffff]); // 16-bit halves: exact in float32
    const rootHeader = this.comm.broadcast(header.slice(), 0);
    const mismatch = !localError && (rootHeader[0] !== header[0] || rootHeader[1] !== header[1] || rootHeader[2] !== header[2]);
    this.comm.agree(localError !== null || mismatch, W, (n) => localError?.message
      ?? (mismatch ? `rank ${this.rank} was called with other sequences, token counts or cache lengths than rank 0 (every rank must make the same calls)`
        : `${n} of ${this.size} ranks rejected the call (see their error); nothing ran`));
    // Phase 1: rank 0's input to every rank, each computes its partial.
    const input = new Float32Array(T * H);
    if (rootData) input.set(rootData);
    this.comm.broadcast(input, 0);
    const partial = new Float32Array(T * H + 1); // the partial output, then the failure flag
    let failure: Error | null = null;
    const x = tf.tensor2d(input, [T, H]); // [T, hidden]
    try {
      if (materialize) this.shard.materializeKvFromHidden(0, x, kv!);
      else {
        const y = this.shard.callRagged(0, x, kv!); // [T, hidden], this rank's heads' part of the output
        partial.set(y.dataSync() as Float32Array);
        y.dispose();
      }
      if (this.fault) {
        const f = this.fault;
        this.fault = null;
        if (f === 'kill') process.kill(process.pid, 'SIGKILL');
        throw new Error('injected fault (after this rank wrote its K/V slots)');
      }
    } catch (e) {
      failure = e as Error;
      partial.fill(0);
      partial[T * H] = 1;
    } finally { x.dispose(); }
    // The allreduce: partial outputs summed, failures counted; it is also the barrier of the commit.
    try {
      this.comm.allreduceSum(materialize ? partial.subarray(T * H) : partial);
    } catch (e) { // a rank died or stopped answering: nothing committed here; MPI is unusable now
      throw new Error(`[${W}] rank ${this.rank}: the call failed, no cache shard moved on this rank (${(e as Error).message}); MPI is unusable, exit this rank`);
    }
    const failed = partial[T * H];
    if (failed > 0) {
      throw new Error(`[${W}] ${failure ? `rank ${this.rank} failed: ${failure.message}` : `${failed} of ${this.size} ranks failed`}; no cache shard moved`);
    }
    // Phase 2: commit on every rank.
    this.cache.step(kv!);
    return materialize ? null : tf.tensor2d(partial.subarray(0, T * H), [T, H]); // [T, hidden]
  }

  private signature(seqIds: number[], counts: number[], materialize: boolean): string {
    const lengths = seqIds.map((s) => (this.cache.hasSequence(s) ? this.cache.cacheLength(s) : -1));
    return `${materialize ? 'm' : 'c'}|${seqIds.join(',')}|${counts.join(',')}|${lengths.join(',')}`;
  }

  private checkUsable(): void {
    check(!this.disposed, W, () => 'disposed');
    const broken = this.comm.broken;
    check(!broken, W, () => `MPI is unusable after an earlier failure (${broken}); this rank must exit`);
  }
}

/** Rank 0's input rows, checked against `[T, H]`. */
function rootInput(hidden: tf.Tensor2D | Float32Array | null, T: number, H: number): Float32Array {
  check(hidden !== null, W, () => 'rank 0 must pass hidden [totalTokens, hiddenSize]');
  if (!(hidden instanceof Float32Array)) {
    check(hidden.rank === 2 && hidden.shape[1] === H, W, () => `hidden must be [totalTokens, ${H}], got [${hidden.shape}]`);
  }
  const data = hidden instanceof Float32Array ? hidden : hidden.dataSync() as Float32Array;
  check(data.length === T * H, W, () => `hidden has ${data.length} values, expected totalTokens * hiddenSize (${T} * ${H})`);
  return data;
}
