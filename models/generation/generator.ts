/**
 * Continuous batching over the paged KV cache. Each step packs, in one ragged batch, one token
 * of every decoding sequence and prefill chunks of new prompts up to a token budget; sequences
 * join (`submit`, at any time, even from a callback) and leave (stop token or length) between
 * steps, and a finished sequence's pages go back to the pool at once.
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderForCausalLM } from '../decoder_lm.js';
import { check, checkInt } from '../../lib/errors.js';
import type { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache.js';
import { type GenerationRequest, type SequenceHandle, SequenceState } from './request.js';
import { checkSampling, sampleToken } from '../../lib/generation/sampler.js';
import { argMaxRows } from '../../kernels/model_ops.js';
import { deviceArgMax } from '../fused_forward.js';

const W = 'Generator';

export interface GeneratorOptions {
  /**
   * Most tokens (decodes + prefill chunks) in one step (default 512). Larger steps read every
   * weight once for more rows (the native sgemm on cpu / wasm); was 256.
   */
  maxBatchTokens?: number;
  /** Most sequences running at once (default 64). */
  maxBatchSize?: number;
  /** Largest prefill chunk of one prompt in one step (default 512, llama.cpp's batch; was 128: 4 passes over the weights for a 512-token prompt). */
  prefillChunk?: number;
  /** Pages of the cache the generator makes (default: the model's). */
  numPages?: number;
  /** Default seed of requests (default 0). */
  seed?: number;
}

/** What one step did. */
export interface StepStats {
  tokens: number;
  decodes: number;
  prefillTokens: number;
  finished: SequenceHandle[];
}

/**
 * @example
 * const gen = new Generator(model);
 * const a = gen.submit({ promptIds: [1, 17, 42], maxNewTokens: 8, onToken: (t) => process.stdout.write(`${t} `) });
 * const b = gen.submit({ promptIds: [1, 5], maxNewTokens: 8, sampling: { temperature: 0.7, topP: 0.9 }, seed: 3 });
 * await gen.run();
 * console.log(await a.done, await b.done);
 * gen.dispose();
 */
export class Generator {
  readonly cache: PagedKVCache;
  private readonly waiting: SequenceState[] = [];
  private readonly running: SequenceState[] = [];
  private nextId = 0;
  private reservedPages = 0;
  private stepping = false;
  private readonly opts: Required<Omit<GeneratorOptions, 'numPages'>>;

  constructor(readonly model: DecoderForCausalLM, options: GeneratorOptions = {}) {
    this.opts = {
      maxBatchTokens: options.maxBatchTokens ?? 512,
      maxBatchSize: options.maxBatchSize ?? 64,
      prefillChunk: options.prefillChunk ?? 512,
      seed: options.seed ?? 0,
    };
    checkInt(this.opts.maxBatchTokens, W, 'maxBatchTokens', 1);
    checkInt(this.opts.maxBatchSize, W, 'maxBatchSize', 1);
    checkInt(this.opts.prefillChunk, W, 'prefillChunk', 1);
    this.cache = model.createCache(options.numPages !== undefined ? { numPages: options.numPages } : {});
  }

  /** Sequences waiting or running. */
  get pending(): number { return this.waiting.length + this.running.length; }

  private pagesFor(tokens: number): number { return Math.ceil(tokens / this.cache.params.pageSize); }

  /** Queues a request; it joins the batch at the next step with room for it. */
  submit(req: GenerationRequest): SequenceHandle {
    const where = `${W}.submit`;
    const vocab = this.model.config.vocabSize;
    check(Array.isArray(req.promptIds) && req.promptIds.length > 0, where, () => `promptIds must be a non-empty array, got ${JSON.stringify(req.promptIds)}`);
    req.promptIds.forEach((t, i) => check(Number.isInteger(t) && t >= 0 && t < vocab, where, () => `promptIds[${i}] (${t}) must be in [0, ${vocab})`));
    const maxNew = req.maxNewTokens ?? 32;
    checkInt(maxNew, where, 'maxNewTokens', 1);
    checkSampling(req.sampling ?? {}, where);
    checkRequestOptions(req, where);
    const seq = new SequenceState(this.nextId++, req, maxNew, req.seed ?? this.opts.seed);
    const maxPos = this.model.rope.maxSeqLen;
    check(seq.maxLength <= maxPos, where, () =>
      `prompt (${req.promptIds.length}) + maxNewTokens (${maxNew}) exceeds the model's ${maxPos} positions`);
    const pages = this.pagesFor(seq.maxLength);
    check(pages <= this.cache.params.numPages, where, () =>
      `prompt + maxNewTokens needs ${pages} pages, the cache has ${this.cache.params.numPages}`);
    this.waiting.push(seq);
    return seq;
  }

  /** Moves waiting requests into the batch while sequences and pages allow (pages reserved for their full length). */
  private admit(): void {
    while (this.waiting.length > 0 && this.running.length < this.opts.maxBatchSize) {
      const seq = this.waiting[0];
      const pages = this.pagesFor(seq.maxLength);
      if (this.reservedPages + pages > this.cache.params.numPages) break;
      this.waiting.shift();
      this.reservedPages += pages;
      seq.cacheId = this.cache.addSequence();
      this.running.push(seq);
    }
  }

  private finish(seq: SequenceState, reason: 'stop' | 'length' | 'error', error?: unknown): void {
    seq.finishReason = reason;
    this.cache.releaseSequence(seq.cacheId);
    this.reservedPages -= this.pagesFor(seq.maxLength);
    this.running.splice(this.running.indexOf(seq), 1);
    if (reason === 'error') seq.reject(error);
    else seq.resolve(seq.tokens.slice());
  }

  /**
   * Hands a sampled token to its request: the token is kept first, then the callback runs; a
   * callback that throws fails this request only (the others of the step keep their tokens).
   */
  private deliver(s: SequenceState, token: number, finished: SequenceHandle[]): void {
    s.tokens.push(token);
    try {
      s.req.onToken?.(token, s);
    } catch (e) {
      const message = `[${W}] onToken of sequence ${s.id} threw after token ${s.tokens.length - 1} (${token}): ${(e as Error)?.message ?? String(e)}`;
      const err = new Error(message, { cause: e });
      if (this.running.includes(s)) { this.finish(s, 'error', err); finished.push(s); }
      return;
    }
    if (!this.running.includes(s)) return; // the callback disposed the generator
    const stop = s.req.stopTokens?.includes(token) ?? false;
    if (stop || s.tokens.length >= s.maxNewTokens) { this.finish(s, stop ? 'stop' : 'length'); finished.push(s); }
  }

  /** Runs one ragged step; returns what it did (0 tokens when nothing is pending). */
  async step(): Promise<StepStats> {
    check(!this.stepping, `${W}.step`, () => 'a step is already running (await each step before the next)');
    this.stepping = true;
    try {
      return await this.stepOnce();
    } finally {
      this.stepping = false;
    }
  }

  private async stepOnce(): Promise<StepStats> {
    this.admit();
    const seqs: SequenceState[] = [];
    const counts: number[] = [];
    const ids: number[] = [];
    const logitRows: number[] = [];
    const sampled: SequenceState[] = [];
    let budget = this.opts.maxBatchTokens;
    let decodes = 0;
    for (const s of this.running) {
      if (s.inPrefill || budget === 0) continue;
      seqs.push(s); counts.push(1); ids.push(s.tokens[s.tokens.length - 1]);
      logitRows.push(ids.length - 1); sampled.push(s);
      budget--; decodes++;
    }
    for (const s of this.running) {
      if (!s.inPrefill || budget === 0) continue;
      const n = Math.min(s.promptIds.length - s.prefilled, this.opts.prefillChunk, budget);
      seqs.push(s); counts.push(n);
      for (let i = 0; i < n; i++) ids.push(s.promptIds[s.prefilled + i]);
      if (s.prefilled + n === s.promptIds.length) { logitRows.push(ids.length - 1); sampled.push(s); }
      budget -= n;
    }
    if (seqs.length === 0) return { tokens: 0, decodes: 0, prefillTokens: 0, finished: [] };
    const kv = this.cache.fetch(seqs.map((s) => s.cacheId), counts);
    let logits: tf.Tensor2D | undefined;
    let picked: tf.Tensor1D | undefined;
    let rows: Float32Array | undefined;
    let greedyIds: Int32Array | undefined;
    // All greedy and the backend can argmax on the device: read back R ids, not R x vocab logits.
    const greedy = deviceArgMax() && sampled.every((s) => (s.req.sampling?.temperature ?? 0) === 0);
    try {
      logits = this.model.forwardRagged(ids, kv, logitRows); // [R, vocab]
      this.cache.step(kv);
      if (greedy) {
        picked = argMaxRows(logits); // [R] int32
        greedyIds = (await picked.data()) as Int32Array;
      } else rows = (await logits.data()) as Float32Array;
    } finally {
      logits?.dispose();
      picked?.dispose();
    }
    seqs.forEach((s, i) => { if (s.inPrefill) s.prefilled += counts[i]; });
    const vocab = this.model.config.vocabSize;
    const finished: SequenceHandle[] = [];
    // Sample every row before any callback runs, so no callback can change what another request gets.
    const tokens = sampled.map((s, r) => greedyIds ? greedyIds[r] : sampleToken(rows!, s.req.sampling ?? {}, s.rng, r * vocab, vocab));
    sampled.forEach((s, r) => this.deliver(s, tokens[r], finished));
    return { tokens: ids.length, decodes, prefillTokens: ids.length - decodes, finished };
  }

  /** Steps until no request is waiting or running. On an error every pending request is rejected with it. */
  async run(): Promise<void> {
    try {
      while (this.pending > 0) {
        const s = await this.step();
        check(s.tokens > 0 || this.pending === 0, W, () => `no progress: ${this.waiting.length} request(s) wait for pages`);
      }
    } catch (e) {
      for (const s of [...this.running, ...this.waiting]) s.reject(e);
      this.dispose();
      throw e;
    }
  }

  /** Releases every sequence still in the cache (their requests are rejected). */
  dispose(): void {
    for (const s of [...this.running, ...this.waiting]) {
      if (s.cacheId >= 0 && this.cache.hasSequence(s.cacheId)) this.cache.releaseSequence(s.cacheId);
      s.reject(new Error(`[${W}] disposed before sequence ${s.id} finished`));
    }
    this.running.length = 0;
    this.waiting.length = 0;
    this.reservedPages = 0;
  }
}

/** Types of the request's options that are only used mid-run, checked at submit. */
function checkRequestOptions(req: GenerationRequest, where: string): void {
  const stops = req.stopTokens;
  check(stops === undefined || (Array.isArray(stops) && stops.every((t) => Number.isInteger(t))), where, () =>
    `stopTokens must be an array of integer token ids, got ${JSON.stringify(stops)}`);
  check(req.seed === undefined || (typeof req.seed === 'number' && Number.isFinite(req.seed)), where, () =>
    `seed must be a finite number, got ${JSON.stringify(req.seed)}`);
  check(req.onToken === undefined || typeof req.onToken === 'function', where, () =>
    `onToken must be a function, got ${typeof req.onToken}`);
}

/**
 * Generates for several prompts together (continuous batching) and returns each one's new tokens.
 *
 * @example
 * const out = await generate(model, [[1, 17, 42], [1, 5]], { maxNewTokens: 12 }); // greedy
 */
export async function generate(model: DecoderForCausalLM, prompts: readonly (readonly number[])[],
  request: Omit<GenerationRequest, 'promptIds'> = {}, options: GeneratorOptions = {}): Promise<number[][]> {
  const gen = new Generator(model, options);
  const handles = prompts.map((p) => gen.submit({ ...request, promptIds: p }));
  await gen.run();
  return Promise.all(handles.map((h) => h.done));
}
