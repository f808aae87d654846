/**
 * Pipeline parallelism for whole decoder models: the layers split into stages, one worker (thread
 * or process) per device, only `[tokens, hidden]` activations crossing between stages, several
 * micro-batches in flight so every stage works at once (batched decode: groups of sequences; long
 * prefill: chunks of tokens). Suits WebGPU, which has no GPU-to-GPU copies: a stage's output goes
 * to the host once and up to the next GPU once, unlike tensor parallelism's per-layer all-reduce.
 */
import { WorkerSequences } from '../../lib/sharding/worker_sequences.js';
import * as tf from '@tensorflow/tfjs';
import type { DecoderForCausalLM } from '../decoder_lm.js';
import { check, checkInt } from '../../lib/errors.js';
import type { DevicePlacement } from '../../lib/types.js';
import { checkDevices } from '../../lib/sharding/devices.js';
import { type SpawnCommand, ShardWorker, type Transport } from '../../lib/sharding/shard_worker.js';
import { SharedRegion, sharedMemoryUnavailable } from '../../lib/sharding/shm_region.js';
import { workerScript } from '../../lib/sharding/worker_script.js';
import type { SeqAction } from '../../lib/sharding/protocol.js';
import { type MicroBatch, planMicroBatches } from './micro_batches.js';
import type { Activations, StageMsg, StageReply } from './protocol.js';
import { type StageSpec, splitLayers, stageSpecOf, stageSpecOfCheckpoint } from './stage_model.js';
import { type DecoderConfig, readDecoderConfig } from '../config.js';
import type { ModelBuildOptions } from '../decoder_lm.js';
import { expectedWeightShapes } from '../load.js';
import { familyOf } from '../registry.js';
import { checkTensorShapes, locateTensors, readHfConfig } from '../../lib/loaders/checkpoint.js';
import { ActivationBanks } from './activation_banks.js';

const W = 'PipelineModel';
type Stage = ShardWorker<StageReply, StageMsg>;

export interface PipelineOptions {
  /** One device per stage, e.g. `parseDevices('webgpu:0,webgpu:1')`. */
  devices: DevicePlacement[];
  /** Layers per stage (default: an even split, the remainder to the first stages); must sum to the model's layers. */
  layersPerStage?: number[];
  /** Micro-batches per call (default: the number of stages). */
  microBatches?: number;
  /** 'thread' (default) or 'process' (one process per device; with `spawnCommand: isolateNvidiaGpu` each sees one GPU). */
  transport?: Transport;
  spawnCommand?: SpawnCommand;
  /** Processes: activations through a /dev/shm mapping (default true where available), else in the messages. */
  sharedMemory?: boolean;
  /** Tokens per KV page and pages per stage cache (default: the model's). */
  pageSize?: number;
  numPages?: number;
  cpuKernelImpl?: 'ts' | 'native' | 'auto';
  /** Native CPU kernel threads per stage (default 1). */
  nativeThreads?: number;
  /** Most ms a call waits for a stage (default 120000). */
  callTimeoutMs?: number;
}

/** What `forward` returns per sequence of the call: logits of its last new row, or that row's greedy token. */
export type PipelineResult = { logits: tf.Tensor2D } | { tokens: Int32Array };

/**
 * A decoder model split into pipeline stages over `devices`. It owns its paged caches (one per
 * stage, in the stage workers); sequences are added, forked and released here.
 *
 * @example
 * const { model } = await loadPretrained('spec/fixtures/models/tiny_llama');
 * const pipe = await PipelineModel.create(model, { devices: parseDevices('cpu,cpu'), transport: 'process' });
 * const out = await pipe.generate([[1, 17, 42], [1, 5]], { maxNewTokens: 8 }); // greedy, as the whole model
 * await pipe.dispose();
 */
export class PipelineModel extends WorkerSequences {
  private nextId = 1;
  private busy = false;
  private disposed = false;
  private broken: string | null = null;
  /** ms of the last call: total and the busiest stage's compute. */
  private stats: { totalMs: number; stageMs: number[] } | null = null;

  private constructor(private readonly stages: Stage[], readonly layerRanges: [number, number][], readonly vocabSize: number,
    readonly hiddenSize: number, pageSize: number, numPages: number, private readonly microBatches: number,
    private readonly banks: ActivationBanks, private readonly timeoutMs: number) {
    super(pageSize, numPages);
  }

  /** Splits `model` into stages and starts one worker per device (the model itself is not changed; its weights are copied to the stages). */
  static async create(model: DecoderForCausalLM, opts: PipelineOptions): Promise<PipelineModel> {
    return PipelineModel.start(model.config, model.kvParams, opts, ([a, b], o) => stageSpecOf(model, a, b, o));
  }

  /**
   * A pipeline over the checkpoint folder `dir`, each stage reading only its own layers' tensors
   * (and the embedding / norm / head); the config and every tensor's shape are checked here first.
   *
   * @example
   * const pipe = await PipelineModel.fromPretrained('ckpt/llama-1b', { devices: parseDevices('webgpu:0,webgpu:1'),
   *   transport: 'process', spawnCommand: isolateNvidiaGpu, microBatches: 4 });
   */
  static async fromPretrained(dir: string, opts: PipelineOptions & ModelBuildOptions): Promise<PipelineModel> {
    const raw = readHfConfig(dir);
    const config = readDecoderConfig(raw, familyOf(raw).traits);
    checkTensorShapes(locateTensors(dir), expectedWeightShapes(config), `${W}.fromPretrained`);
    const pageSize = opts.pageSize ?? 16;
    const kv = { pageSize, numPages: opts.numPages ?? Math.ceil(4096 / pageSize) };
    const maxSeqLen = opts.maxSeqLen ?? Math.min(config.maxPositionEmbeddings, 32768);
    return PipelineModel.start(config, kv, opts, ([a, b], o) => stageSpecOfCheckpoint(config, dir, a, b, { ...o, maxSeqLen }));
  }

  private static async start(config: DecoderConfig, kvDefaults: { pageSize: number; numPages: number }, opts: PipelineOptions,
    specOf: (range: [number, number], o: ModelBuildOptions) => StageSpec): Promise<PipelineModel> {
    check(opts && typeof opts === 'object', W, () => 'options {devices, ...} are required');
    checkDevices(opts.devices, W);
    const L = config.numHiddenLayers, S = opts.devices.length;
    const ranges = opts.layersPerStage ? rangesOf(opts.layersPerStage, L, S) : splitLayers(L, S, W);
    const micro = opts.microBatches ?? S;
    checkInt(micro, W, 'microBatches', 1);
    const timeoutMs = opts.callTimeoutMs ?? 120_000;
    checkInt(timeoutMs, W, 'callTimeoutMs', 1);
    const nativeThreads = opts.nativeThreads ?? 1;
    checkInt(nativeThreads, W, 'nativeThreads', 1);
    const pageSize = opts.pageSize ?? kvDefaults.pageSize, numPages = opts.numPages ?? kvDefaults.numPages;
    checkInt(pageSize, W, 'pageSize', 1);
    checkInt(numPages, W, 'numPages', 1);
    const transport = opts.transport ?? 'thread';
    const H = config.hiddenSize;
    let region: SharedRegion | null = null;
    if (transport === 'process' && opts.sharedMemory !== false && sharedMemoryUnavailable() === null) {
      try { region = new SharedRegion(16, H, 2 * micro - 1); } catch { region = null; }
    }
    const banks = new ActivationBanks(transport, region, H, micro);
    const script = await workerScript('stage');
    const stages: Stage[] = [];
    try {
      await Promise.all(opts.devices.map(async (device, s) => {
        const spec = specOf(ranges[s], { pageSize, numPages });
        const stage = stages[s] = new ShardWorker<StageReply, StageMsg>(script, device, s, transport, opts.spawnCommand, W, 'stage');
        const r = await stage.request({
          op: 'init', id: 0, device, spec, cpuKernelImpl: opts.cpuKernelImpl ?? 'auto', nativeThreads, ...(region ? { shm: region.ref } : {}),
        });
        check(r.ok, W, () => `${stage.name} failed to start: ${r.error}`);
        stage.backend = r.backend!;
        if (region && !r.shm) banks.fallBackToMessages();
      }));
    } catch (e) {
      region?.unlink();
      await Promise.all(stages.filter(Boolean).map((s) => s.terminate()));
      throw e;
    }
    region?.unlink();
    return new PipelineModel(stages, ranges, config.vocabSize, H, pageSize, numPages, micro, banks, timeoutMs);
  }

  get numStages(): number { return this.stages.length; }
  get backends(): string[] { return this.stages.map((s) => s.backend); }
  /** How activations move: 'sab' (threads), 'shm' (processes, shared mapping) or 'message'. */
  get dataPath(): Activations['kind'] { return this.banks.kind; }
  get workerPids(): (number | null)[] { return this.stages.map((s) => s.pid); }
  /** Where the time of the last call went: total ms and each stage's compute ms (summed over micro-batches). */
  get lastCallStats(): { totalMs: number; stageMs: number[] } | null { return this.stats && { ...this.stats, stageMs: [...this.stats.stageMs] }; }

  /**
   * One ragged step of the whole model: `ids` are the new tokens of `seqIds` (`numNewTokens[b]`
   * each, packed in order). Returns, per sequence with new tokens (in call order), the logits
   * `[B, vocab]` of its last row, or with `result: 'argmax'` its greedy token. The step is
   * committed on every stage; on a stage's failure the call rejects naming the stage, the book
   * does not move, and (once any stage has committed part of it) the pipeline refuses further
   * calls: the caller's model is untouched, build a new pipeline from it.
   */
  async forward(ids: Int32Array | readonly number[], seqIds: number[], numNewTokens: number[],
    result: 'logits' | 'argmax' = 'logits'): Promise<PipelineResult> {
    this.checkIdle('forward');
    this.busy = true;
    try {
      return await this.call(ids, seqIds, numNewTokens, result, 0, this.microBatches, true);
    } finally {
      this.banks.release();
      this.busy = false;
    }
  }

  /**
   * Greedy decode of `steps` tokens for every sequence, pipelined across steps: the sequences
   * split into `groups` (default: the micro-batches, at most that many) that advance independently,
   * so while the last stage finishes group g's step t the first stage already runs group h's
   * step t: every stage stays busy without waiting for the whole batch at each step.
   * `lastTokens[b]` is the token sequence b decodes from (its newest, not yet in the cache).
   * A sequence stops after a stop token. Returns the new tokens of each sequence.
   *
   * @example
   * const first = (await pipe.forward(prompt, [s], [prompt.length], 'argmax') as { tokens: Int32Array }).tokens;
   * const rest = await pipe.decode([s], [first[0]], 31); // [[31 greedy tokens]]
   */
  async decode(seqIds: number[], lastTokens: number[], steps: number, opts: { groups?: number; stopTokens?: number[] } = {}): Promise<number[][]> {
    this.checkIdle('decode');
    check(Array.isArray(seqIds) && Array.isArray(lastTokens) && seqIds.length === lastTokens.length, W, () =>
      `seqIds (${seqIds?.length}) and lastTokens (${lastTokens?.length}) must be arrays of one length`);
    checkInt(steps, W, 'steps', 1);
    const G = Math.min(opts.groups ?? this.microBatches, seqIds.length);
    checkInt(G, W, 'groups', 1);
    check(G <= this.microBatches, W, () => `groups (${G}) must be <= microBatches (${this.microBatches}): each group in flight needs its activation slots`);
    const stop = new Set(opts.stopTokens ?? []);
    const out: number[][] = seqIds.map(() => []);
    this.busy = true;
    try {
      this.banks.ensure(Math.ceil(seqIds.length / G));
      const group = async (g: number) => {
        let members = seqIds.map((_, b) => b).filter((b) => b % G === g);
        let last = members.map((b) => lastTokens[b]);
        for (let t = 0; t < steps && members.length > 0; t++) {
          const r = await this.call(last, members.map((b) => seqIds[b]), members.map(() => 1), 'argmax', g, 1, false);
          const tokens = (r as { tokens: Int32Array }).tokens;
          members.forEach((b, j) => out[b].push(tokens[j]));
          const keep = members.map((_, j) => !stop.has(tokens[j]));
          last = Array.from(tokens).filter((_, j) => keep[j]);
          members = members.filter((_, j) => keep[j]);
        }
      };
      const settled = await Promise.allSettled(Array.from({ length: G }, (_, g) => group(g)));
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      return out;
    } finally {
      this.banks.release();
      this.busy = false;
    }
  }

  /**
   * One step through every stage, in `micro` micro-batches on activation slots
   * `[slotBase, slotBase + micro)`. Calls in flight at once must hold disjoint sequences and slots.
   */
  private async call(ids: Int32Array | readonly number[], seqIds: number[], numNewTokens: number[], result: 'logits' | 'argmax',
    slotBase: number, micro: number, grow: boolean): Promise<PipelineResult> {
    check(result === 'logits' || result === 'argmax', W, () => `result ('${result}') must be 'logits' or 'argmax'`);
    check(Array.isArray(numNewTokens) && numNewTokens.every((n) => Number.isInteger(n) && n >= 0), W, () =>
      `numNewTokens must be an array of integers >= 0, got ${JSON.stringify(numNewTokens)}`);
    const T = numNewTokens.reduce((a, b) => a + b, 0);
    check(ids.length === T, W, () => `ids.length (${ids.length}) must equal the sum of numNewTokens (${T})`);
    for (let i = 0; i < ids.length; i++) {
      check(Number.isInteger(ids[i]) && ids[i] >= 0 && ids[i] < this.vocabSize, W, () => `ids[${i}] (${ids[i]}) must be in [0, ${this.vocabSize})`);
    }
    const kv = this.book.fetch(seqIds, numNewTokens); // validates ids, counts and pages before a stage moves
    const plan = planMicroBatches(seqIds, numNewTokens, micro);
    const t0 = performance.now();
    let committed = false;
    const stageMs = this.stages.map(() => 0);
    try {
      if (grow) this.banks.ensure(Math.max(0, ...plan.map((m) => m.totalTokens)));
      const flat = Int32Array.from(ids);
      const settled = await Promise.allSettled(plan.map((mb, k) => this.runMicroBatch(mb, slotBase + k, flat, result, stageMs, () => { committed = true; })));
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason; // every micro-batch has settled: no stage still reads a slot
      const outs = settled.map((r) => (r as PromiseFulfilledResult<StageReply>).value);
      this.book.step(kv);
      this.stats = { totalMs: performance.now() - t0, stageMs };
      return this.gather(plan, outs, seqIds.length, result);
    } catch (e) {
      this.book.abandon(kv);
      if (committed) this.broken ??= `${(e as Error).message}; stages committed part of that call, so their caches may disagree`;
      throw e;
    }
  }

  /** Micro-batch k through every stage in turn (stage s + 1 gets it as soon as stage s answers). */
  private async runMicroBatch(mb: MicroBatch, k: number, ids: Int32Array, result: 'logits' | 'argmax', stageMs: number[],
    onCommit: () => void): Promise<StageReply> {
    const mbIds = new Int32Array(mb.totalTokens);
    let at = 0;
    for (const [a, b] of mb.rows) { mbIds.set(ids.subarray(a, b), at); at += b - a; }
    let carried: Float32Array | undefined;
    let reply!: StageReply;
    for (let s = 0; s < this.stages.length; s++) {
      const last = s === this.stages.length - 1;
      const input = s === 0 ? undefined : this.banks.at(s % 2, k, carried);
      reply = await this.stages[s].request({
        op: 'run', id: this.nextId++, microBatch: k, seqIds: mb.seqIds, numNewTokens: mb.numNewTokens,
        ...(s === 0 ? { ids: mbIds } : { input }), ...(last ? {} : { output: this.banks.at((s + 1) % 2, k) }),
        result, ...(last ? { logitRows: Int32Array.from(mb.logitRows) } : {}),
      }, [], this.timeoutMs);
      check(reply.ok, W, () => `${this.stages[s].name} failed on micro-batch ${k}: ${reply.error}`);
      onCommit();
      stageMs[s] += reply.computeMs ?? 0;
      carried = reply.hidden;
    }
    return reply;
  }

  /** Per sequence of the call (those with new tokens, in call order): its logits row or token. */
  private gather(plan: MicroBatch[], outs: StageReply[], numSeqs: number, result: 'logits' | 'argmax'): PipelineResult {
    const V = this.vocabSize;
    const order: number[] = []; // call index of each sequence with output
    const rows = new Map<number, { k: number; r: number }>();
    plan.forEach((mb, k) => mb.logitSeqs.forEach((b, r) => rows.set(b, { k, r })));
    for (let b = 0; b < numSeqs; b++) if (rows.has(b)) order.push(b);
    if (result === 'argmax') return { tokens: Int32Array.from(order, (b) => outs[rows.get(b)!.k].tokens![rows.get(b)!.r]) };
    const data = new Float32Array(order.length * V);
    order.forEach((b, i) => { const { k, r } = rows.get(b)!; data.set(outs[k].logits!.subarray(r * V, (r + 1) * V), i * V); });
    return { logits: tf.tensor2d(data, [order.length, V]) }; // [B, vocab]
  }

  /**
   * Greedy generation of every prompt at once: the prompts' prefill in one micro-batched call,
   * then `decode` (groups of sequences pipelined across steps; a sequence stops at a stop token).
   * Returns the new tokens of each prompt; the sequences are released afterwards.
   */
  async generate(prompts: number[][], opts: { maxNewTokens: number; stopTokens?: number[] }): Promise<number[][]> {
    checkInt(opts?.maxNewTokens, W, 'maxNewTokens', 1);
    check(Array.isArray(prompts) && prompts.length > 0 && prompts.every((p) => Array.isArray(p) && p.length > 0), W, () =>
      'prompts must be a non-empty array of non-empty token arrays');
    const stop = new Set(opts.stopTokens ?? []);
    const seqs = prompts.map(() => this.addSequence());
    try {
      const first = (await this.forward(prompts.flat(), seqs, prompts.map((p) => p.length), 'argmax') as { tokens: Int32Array }).tokens;
      const out = Array.from(first, (t) => [t]);
      const go = seqs.map((_, b) => b).filter((b) => !stop.has(first[b]));
      if (opts.maxNewTokens > 1 && go.length > 0) {
        const more = await this.decode(go.map((b) => seqs[b]), go.map((b) => first[b]), opts.maxNewTokens - 1, { stopTokens: opts.stopTokens });
        go.forEach((b, j) => out[b].push(...more[j]));
      }
      return out;
    } finally {
      if (!this.broken && !this.disposed && this.stages.every((s) => !s.dead)) for (const s of seqs) this.releaseSequence(s);
    }
  }

  /** Each stage's cache state (for checks and tests). */
  async inspect(): Promise<{ stage: number; lengths: Map<number, number>; numFreePages: number }[]> {
    this.checkUsable();
    const rs = await Promise.all(this.stages.map((s) => s.request({ op: 'inspect', id: this.nextId++ }, [], this.timeoutMs)));
    return rs.map((r, i) => ({ stage: i, lengths: new Map(r.lengths), numFreePages: r.numFreePages! }));
  }

  /** Testing: stage `index` throws or exits at its `afterRuns + 1`-th micro-batch from now. */
  injectFault(index: number, mode: 'throw' | 'exit', afterRuns = 0): void {
    checkInt(index, `${W}.injectFault`, 'index', 0);
    check(index < this.stages.length, `${W}.injectFault`, () => `index (${index}) must be < numStages (${this.stages.length})`);
    this.stages[index].post({ op: 'fault', mode, afterRuns });
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.banks.dispose();
    await Promise.all(this.stages.map((s) => s.terminate()));
  }

  private checkUsable(): void {
    check(!this.disposed, W, () => 'disposed');
    const dead = this.stages.findIndex((s) => s.dead);
    check(dead < 0, W, () => `${this.stages[dead].name} is gone (${this.stages[dead].dead!.message}); its layers' cache is lost, create a new PipelineModel`);
    check(this.broken === null, W, () => `unusable: ${this.broken}; create a new PipelineModel`);
  }

  protected checkIdle(what: string): void {
    this.checkUsable();
    check(!this.busy, W, () => `${what} while a call is running; await it first`);
  }

  protected broadcastSeq(seq: SeqAction): void { for (const s of this.stages) s.post({ op: 'seq', seq }); }
}

/** `[start, end)` per stage from layer counts, checked against the model. */
function rangesOf(counts: number[], L: number, S: number): [number, number][] {
  check(Array.isArray(counts) && counts.length === S, W, () => `layersPerStage has ${counts?.length} entries, expected one per device (${S})`);
  counts.forEach((n, i) => checkInt(n, W, `layersPerStage[${i}]`, 1));
  const sum = counts.reduce((a, b) => a + b, 0);
  check(sum === L, W, () => `layersPerStage sums to ${sum}, the model has ${L} layers`);
  let start = 0;
  return counts.map((n) => [start, (start += n)] as [number, number]);
}
