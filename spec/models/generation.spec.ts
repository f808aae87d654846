import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { generate, Generator } from '../../models/generation/generator';
import { SeededRng } from '../../lib/generation/rng';
import { argmax, sampleToken } from '../../lib/generation/sampler';
import type { DecoderForCausalLM } from '../../models/decoder_lm';
import { loadPretrained } from '../../models/load';
import { describeEachBackend } from '../support/backends';

const DIR = path.join(__dirname, '..', 'fixtures', 'models', 'tiny_llama');
const EXPECTED = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8')) as { prompts: number[][]; greedy: number[][] };
const PROMPTS = [...EXPECTED.prompts, [7, 7, 7, 100, 200, 31, 8, 9, 10, 11, 12], [250], [1, 2, 3, 4]];
const SMALL = { maxBatchTokens: 6, prefillChunk: 3 }; // forces chunked prefill beside running decodes

describeEachBackend('continuous batching generation', () => {
  let model: DecoderForCausalLM;
  beforeAll(async () => { ({ model } = await loadPretrained(DIR, { pageSize: 4, numPages: 64 })); });
  afterAll(() => model.dispose());

  it('a batch of prompts gives the same tokens as each prompt alone (greedy), matching transformers', async () => {
    const alone = [];
    for (const p of PROMPTS) alone.push((await generate(model, [p], { maxNewTokens: 12 }))[0]);
    const together = await generate(model, PROMPTS, { maxNewTokens: 12 }, SMALL);
    expect(together).toEqual(alone);
    expect(together.slice(0, 2)).toEqual(EXPECTED.greedy);
  });

  it('sampling: the same seed gives the same tokens batched or alone; topK 1 is greedy', async () => {
    const sampling = { temperature: 0.9, topK: 50, topP: 0.9 };
    const alone = [];
    for (const p of PROMPTS) alone.push((await generate(model, [p], { maxNewTokens: 10, sampling, seed: 7 }))[0]);
    expect(await generate(model, PROMPTS, { maxNewTokens: 10, sampling, seed: 7 }, SMALL)).toEqual(alone);
    expect(await generate(model, PROMPTS, { maxNewTokens: 10, sampling, seed: 8 })).not.toEqual(alone);
    const top1 = await generate(model, EXPECTED.prompts, { maxNewTokens: 12, sampling: { temperature: 2, topK: 1 } });
    expect(top1).toEqual(EXPECTED.greedy);
  });

  it('sequences join between steps, stop on a stop token, stream tokens, and give their pages back', async () => {
    const gen = new Generator(model, SMALL);
    const free = gen.cache.numFreePages;
    const before = tf.memory().numTensors;
    const streamed: number[] = [];
    let late: ReturnType<Generator['submit']> | undefined;
    const stop = EXPECTED.greedy[0][2];
    const first = gen.submit({
      promptIds: EXPECTED.prompts[0], maxNewTokens: 12, stopTokens: [stop],
      onToken: (t, seq) => {
        streamed.push(t);
        if (seq.tokens.length === 1) late = gen.submit({ promptIds: EXPECTED.prompts[1], maxNewTokens: 12 });
      },
    });
    await gen.run();
    expect(await first.done).toEqual(EXPECTED.greedy[0].slice(0, 3));
    expect(first.finishReason).toBe('stop');
    expect(streamed).toEqual(EXPECTED.greedy[0].slice(0, 3));
    expect(await late!.done).toEqual(EXPECTED.greedy[1]);
    expect(late!.finishReason).toBe('length');
    expect(gen.pending).toBe(0);
    expect(gen.cache.numFreePages).toBe(free);
    expect(gen.cache.sequenceIds).toEqual([]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('waits for pages when the pool is short and still finishes everything', async () => {
    const out = await generate(model, PROMPTS, { maxNewTokens: 12 }, { numPages: 6 });
    const alone = [];
    for (const p of PROMPTS) alone.push((await generate(model, [p], { maxNewTokens: 12 }))[0]);
    expect(out).toEqual(alone);
  });

  it('rejects bad requests naming the argument', () => {
    const gen = new Generator(model);
    expect(() => gen.submit({ promptIds: [] })).toThrow('[Generator.submit] promptIds must be a non-empty array');
    expect(() => gen.submit({ promptIds: [1, 256] })).toThrow('[Generator.submit] promptIds[1] (256) must be in [0, 256)');
    expect(() => gen.submit({ promptIds: [1], maxNewTokens: 0 })).toThrow('maxNewTokens must be an integer >= 1, got 0');
    expect(() => gen.submit({ promptIds: [1], sampling: { topP: 0 } })).toThrow('topP must be in (0, 1], got 0');
    expect(() => gen.submit({ promptIds: [1], maxNewTokens: 5000 })).toThrow(/exceeds the model's 512 positions/);
  });

  it('refuses overlapping steps', async () => {
    const gen = new Generator(model);
    gen.submit({ promptIds: [1, 2], maxNewTokens: 2 });
    const first = gen.step();
    await expect(gen.step()).rejects.toThrow('[Generator.step] a step is already running');
    await first;
    await gen.run();
  });
});

describe('sampler', () => {
  it('argmax takes the first maximum; top-p keeps the nucleus only', () => {
    expect(argmax(Float32Array.from([1, 3, 3, 2]))).toBe(1);
    const logits = Float32Array.from([0, 10, 9.5, -5]);
    const rng = new SeededRng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(sampleToken(logits, { temperature: 1, topP: 0.5 }, rng));
    expect([...seen]).toEqual([1]);
    for (let i = 0; i < 200; i++) seen.add(sampleToken(logits, { temperature: 1, topK: 2 }, rng));
    expect([...seen].sort()).toEqual([1, 2]);
  });

  it('top-p draws only from the nucleus, on peaked and on flat distributions', () => {
    for (const spread of [0.05, 3]) {
      const V = 5000;
      const logits = Float32Array.from({ length: V }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1 * spread * 10);
      const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
      const w = order.map((i) => Math.exp(logits[i] / 0.7));
      const z = w.reduce((a, b) => a + b, 0);
      let acc = 0, n = 0;
      while (acc < 0.8) acc += w[n++] / z;
      const nucleus = new Set(order.slice(0, n));
      const rng = new SeededRng(3);
      for (let i = 0; i < 100; i++) expect(nucleus.has(sampleToken(logits, { temperature: 0.7, topP: 0.8 }, rng))).toBe(true);
    }
  });
});
