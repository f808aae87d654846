/**
 * PipelineModel on CPU stage workers (tiny Llama, 2 stages of 1 layer; a random 4-layer Qwen3 with a
 * tied head in 3 uneven stages): logits equal the whole
 * model in one process (<= 1e-5) for threads and processes, with the prefill split into
 * micro-batches by sequence and by token chunks (the chunks of one sequence must run in order on
 * each stage), greedy generation gives the same tokens as the whole model, and a stage that dies or
 * throws fails the call naming it while the caller's model and cache stay usable.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '../../lib/backends/node_install';
import { loadPretrained } from '../../models/load';
import { createModel } from '../../models/registry';
import type { DecoderForCausalLM } from '../../models/decoder_lm';
import { PipelineModel } from '../../models/pipeline/pipeline_model';
import { planMicroBatches } from '../../models/pipeline/micro_batches';
import { splitLayers } from '../../models/pipeline/stage_model';
import { parseDevices } from '../../lib/sharding/devices';
import { sharedMemoryUnavailable } from '../../lib/sharding/shm_region';

const TINY = path.join(__dirname, '..', 'fixtures', 'models', 'tiny_llama'); // 2 layers, hidden 64, vocab 256
const PROMPTS = [[1, 17, 42, 9, 100, 3, 77], [1, 5], [1, 200, 13, 13, 8]];
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** The whole model in this process: last-row logits of each sequence for one step. */
function wholeStep(model: DecoderForCausalLM, cache: ReturnType<DecoderForCausalLM['createCache']>, prompts: number[][], seqs: number[]): Float32Array {
  const kv = cache.fetch(seqs, prompts.map((p) => p.length));
  const last: number[] = [];
  let at = 0;
  for (const p of prompts) { at += p.length; last.push(at - 1); }
  const y = model.forwardRagged(prompts.flat(), kv, last);
  cache.step(kv);
  const out = y.dataSync() as Float32Array;
  y.dispose();
  return out;
}

/** Greedy tokens of the whole model in this process. */
function wholeGreedy(model: DecoderForCausalLM, prompts: number[][], n: number): number[][] {
  const cache = model.createCache();
  const seqs = prompts.map(() => cache.addSequence());
  const out: number[][] = prompts.map(() => []);
  let step = prompts;
  for (let i = 0; i < n; i++) {
    const logits = wholeStep(model, cache, step, seqs);
    const V = logits.length / prompts.length;
    const next = prompts.map((_, b) => { let best = 0; for (let v = 1; v < V; v++) if (logits[b * V + v] > logits[b * V + best]) best = v; return best; });
    next.forEach((t, b) => out[b].push(t));
    step = next.map((t) => [t]);
  }
  return out;
}

describe('micro-batch plans and layer splits', () => {
  it('groups sequences when there are enough, chunks tokens when not; every sequence yields its last row once', () => {
    expect(planMicroBatches([0, 1, 2, 3], [1, 1, 1, 1], 2).map((m) => [m.seqIds, m.rows, m.logitRows])).toEqual([
      [[0, 1], [[0, 1], [1, 2]], [0, 1]], [[2, 3], [[2, 3], [3, 4]], [0, 1]]]);
    const p = planMicroBatches([7, 8], [10, 3], 4); // 2 chunks of each
    expect(p.map((m) => [m.seqIds, m.numNewTokens, m.rows, m.logitRows, m.logitSeqs])).toEqual([
      [[7, 8], [5, 1], [[0, 5], [10, 11]], [], []],
      [[7, 8], [5, 2], [[5, 10], [11, 13]], [4, 6], [0, 1]]]);
    expect(planMicroBatches([7], [2], 4).map((m) => m.numNewTokens)).toEqual([[1], [1]]); // empty chunks dropped
    expect(planMicroBatches([1, 2], [0, 3], 1).map((m) => [m.seqIds, m.logitSeqs])).toEqual([[[2], [1]]]);
  });

  it('splits layers evenly, remainder first; rejects more stages than layers', () => {
    expect(splitLayers(16, 2)).toEqual([[0, 8], [8, 16]]);
    expect(splitLayers(5, 3)).toEqual([[0, 2], [2, 4], [4, 5]]);
    expect(() => splitLayers(2, 3, 'PipelineModel')).toThrow('[PipelineModel] stages (3) must be <= the model\'s layers (2)');
  });
});

describe('PipelineModel with 3 uneven stages (a middle stage; tied head on the last)', () => {
  it('logits and greedy tokens equal the whole model', async () => {
    const model = createModel({
      model_type: 'qwen3', hidden_size: 32, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8,
      intermediate_size: 48, vocab_size: 97, max_position_embeddings: 256, rms_norm_eps: 1e-6, tie_word_embeddings: true, rope_theta: 10000,
    }, { pageSize: 4, numPages: 128 });
    let seed = 3;
    for (const v of model.trainableWeights) {
      const t = tf.randomNormal(v.shape as number[], v.shape.length === 1 ? 1 : 0, 0.3, 'float32', seed++);
      v.write(t);
      t.dispose();
    }
    const prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]];
    const want = wholeGreedy(model, prompts, 7);
    const pipe = await PipelineModel.create(model, { devices: parseDevices('cpu,cpu,cpu'), layersPerStage: [1, 2, 1], microBatches: 3, transport: 'process' });
    try {
      expect(pipe.layerRanges).toEqual([[0, 1], [1, 3], [3, 4]]);
      const cache = model.createCache();
      const seqs = prompts.map(() => cache.addSequence()), pseqs = prompts.map(() => pipe.addSequence());
      const ref = wholeStep(model, cache, prompts, seqs);
      const got = (await pipe.forward(prompts.flat(), pseqs, prompts.map((p) => p.length)) as { logits: tf.Tensor2D }).logits;
      expect(maxDiff(got.dataSync() as Float32Array, ref)).toBeLessThanOrEqual(1e-5);
      got.dispose();
      pseqs.forEach((q) => pipe.releaseSequence(q));
      expect(await pipe.generate(prompts, { maxNewTokens: 7 })).toEqual(want);
    } finally {
      await pipe.dispose();
      model.dispose();
    }
  });
});

describe('PipelineModel on CPU workers (tiny Llama, 2 stages)', () => {
  let model: DecoderForCausalLM;
  beforeAll(async () => { ({ model } = await loadPretrained(TINY)); });
  afterAll(() => model.dispose());

  const CASES: [string, { transport?: 'thread' | 'process'; microBatches: number; sharedMemory?: boolean }][] = [
    ['threads, 2 micro-batches', { microBatches: 2 }],
    ['processes, 3 micro-batches (one sequence each)', { transport: 'process', microBatches: 3 }],
    ['processes, 8 micro-batches (2 token chunks of each sequence)', { transport: 'process', microBatches: 8 }],
    ['processes over IPC, 6 micro-batches', { transport: 'process', microBatches: 6, sharedMemory: false }],
  ];
  for (const [name, o] of CASES) {
    it(`${name}: prefill and decode logits equal the whole model`, async () => {
      const pipe = await PipelineModel.create(model, { devices: parseDevices('cpu,cpu'), ...o });
      try {
        expect(pipe.layerRanges).toEqual([[0, 1], [1, 2]]);
        expect(pipe.dataPath).toBe(o.transport === 'process' ? (sharedMemoryUnavailable() || o.sharedMemory === false ? 'message' : 'shm') : 'sab');
        const cache = model.createCache();
        const seqs = PROMPTS.map(() => cache.addSequence());
        const pseqs = PROMPTS.map(() => pipe.addSequence());
        for (const step of [PROMPTS, [[4], [9], [250]], [[1, 2, 3], [7], [8, 8]]]) {
          const want = wholeStep(model, cache, step, seqs);
          const got = await pipe.forward(step.flat(), pseqs, step.map((p) => p.length));
          const logits = (got as { logits: tf.Tensor2D }).logits;
          expect(logits.shape).toEqual([3, 256]);
          expect(maxDiff(logits.dataSync() as Float32Array, want)).toBeLessThanOrEqual(1e-5);
          logits.dispose();
        }
        expect(pseqs.map((s) => pipe.cacheLength(s))).toEqual([11, 4, 8]);
        expect((await pipe.inspect()).map((s) => pseqs.map((q) => s.lengths.get(q)))).toEqual([[11, 4, 8], [11, 4, 8]]);
        const st = pipe.lastCallStats!;
        expect(st.stageMs.length).toBe(2);
      } finally { await pipe.dispose(); }
    });
  }

  it('greedy generation through 2 stage processes gives the whole model\'s tokens', async () => {
    const want = wholeGreedy(model, PROMPTS, 12);
    const pipe = await PipelineModel.create(model, { devices: parseDevices('cpu,cpu'), transport: 'process', microBatches: 3 });
    try {
      expect(await pipe.generate(PROMPTS, { maxNewTokens: 12 })).toEqual(want);
      expect(pipe.sequenceIds).toEqual([]); // released
      const stop = want[0][3];
      const cut = await pipe.generate([PROMPTS[0]], { maxNewTokens: 12, stopTokens: [stop] });
      expect(cut).toEqual([want[0].slice(0, want[0].indexOf(stop) + 1)]);
    } finally { await pipe.dispose(); }
  });

  it('decode: groups of sequences pipelined across steps give the lockstep tokens; stop tokens; bad groups named', async () => {
    const want = wholeGreedy(model, PROMPTS, 9);
    const pipe = await PipelineModel.create(model, { devices: parseDevices('cpu,cpu'), microBatches: 2 });
    try {
      const seqs = PROMPTS.map(() => pipe.addSequence());
      const first = (await pipe.forward(PROMPTS.flat(), seqs, PROMPTS.map((p) => p.length), 'argmax') as { tokens: Int32Array }).tokens;
      expect(Array.from(first)).toEqual(want.map((w) => w[0]));
      const stop = want[1][4];
      const more = await pipe.decode(seqs, Array.from(first), 8, { groups: 2, stopTokens: [stop] });
      const cut = (w: number[]) => { const i = w.indexOf(stop, 1); return i < 0 ? w.slice(1) : w.slice(1, i + 1); };
      expect(more).toEqual(want.map(cut));
      expect(seqs.map((q) => pipe.cacheLength(q))).toEqual(PROMPTS.map((p, b) => p.length + more[b].length));
      await expect(pipe.decode(seqs, [1, 2, 3], 1, { groups: 3 })).rejects.toThrow('[PipelineModel] groups (3) must be <= microBatches (2)');
      await expect(pipe.decode(seqs, [1, 2], 1)).rejects.toThrow('seqIds (3) and lastTokens (2) must be arrays of one length');
    } finally { await pipe.dispose(); }
  });

  it('fromPretrained: each stage reads its own layers from the checkpoint; the same tokens', async () => {
    const want = wholeGreedy(model, PROMPTS, 6);
    const pipe = await PipelineModel.fromPretrained(TINY, { devices: parseDevices('cpu,cpu'), microBatches: 2 });
    try {
      expect(await pipe.generate(PROMPTS, { maxNewTokens: 6 })).toEqual(want);
    } finally { await pipe.dispose(); }
    await expect(PipelineModel.fromPretrained(path.join(TINY, 'nope'), { devices: parseDevices('cpu,cpu') })).rejects.toThrow("checkpoint folder '" + path.join(TINY, 'nope') + "' does not exist");
  });

  it('a stage process that dies fails the call naming it; the book did not move; the caller\'s model still answers', async () => {
    const pipe = await PipelineModel.create(model, { devices: parseDevices('cpu,cpu'), transport: 'process', microBatches: 2 });
    const cache = model.createCache();
    try {
      const s = pipe.addSequence();
      await pipe.forward(PROMPTS[0], [s], [PROMPTS[0].length]);
      pipe.injectFault(1, 'exit');
      await expect(pipe.forward([5], [s], [1])).rejects.toThrow('[PipelineModel] stage 1 (cpu:1) exited with code 7');
      expect(pipe.cacheLength(s)).toBe(PROMPTS[0].length);
      expect(() => pipe.addSequence()).toThrow('[PipelineModel] stage 1 (cpu:1) is gone');
      await expect(pipe.forward([5], [s], [1])).rejects.toThrow('is gone');
      const q = cache.addSequence();
      const again = wholeStep(model, cache, [PROMPTS[0]], [q]); // the caller's model and cache are untouched
      expect(again.length).toBe(256);
    } finally { await pipe.dispose(); }
  });

  it('a stage that throws on a later micro-batch names the stage and micro-batch; the pipeline then refuses', async () => {
    const pipe = await PipelineModel.create(model, { devices: parseDevices('cpu,cpu'), microBatches: 2 });
    try {
      const seqs = PROMPTS.map(() => pipe.addSequence());
      pipe.injectFault(1, 'throw', 1);
      await expect(pipe.forward(PROMPTS.flat(), seqs, PROMPTS.map((p) => p.length)))
        .rejects.toThrow('[PipelineModel] stage 1 (cpu:1) failed on micro-batch 1: injected fault (micro-batch 1)');
      expect(seqs.map((q) => pipe.cacheLength(q))).toEqual([0, 0, 0]);
      expect(() => pipe.addSequence()).toThrow('[PipelineModel] unusable: [PipelineModel] stage 1 (cpu:1) failed on micro-batch 1');
    } finally { await pipe.dispose(); }
  });

  it('rejects bad options and calls naming the argument, before any stage moves', async () => {
    await expect(PipelineModel.create(model, { devices: parseDevices('cpu,cpu,cpu') })).rejects.toThrow("stages (3) must be <= the model's layers (2)");
    await expect(PipelineModel.create(model, { devices: parseDevices('cpu,cpu'), layersPerStage: [2, 1] })).rejects.toThrow('layersPerStage sums to 3, the model has 2 layers');
    await expect(PipelineModel.create(model, { devices: parseDevices('cpu,cpu'), microBatches: 0 })).rejects.toThrow('microBatches');
    const pipe = await PipelineModel.create(model, { devices: parseDevices('cpu,cpu') });
    try {
      const s = pipe.addSequence();
      await expect(pipe.forward([1, 2], [s], [3])).rejects.toThrow('[PipelineModel] ids.length (2) must equal the sum of numNewTokens (3)');
      await expect(pipe.forward([1, 999], [s], [2])).rejects.toThrow('[PipelineModel] ids[1] (999) must be in [0, 256)');
      await expect(pipe.forward([1], [s + 1], [1])).rejects.toThrow();
      expect(pipe.cacheLength(s)).toBe(0);
      const r = await pipe.forward([1, 2], [s], [2], 'argmax');
      expect((r as { tokens: Int32Array }).tokens.length).toBe(1);
    } finally { await pipe.dispose(); }
  });
});
