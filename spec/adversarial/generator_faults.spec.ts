/**
 * Generator under hostile callbacks and options: a throwing onToken fails its own request only
 * (the others keep every sampled token, identical to a clean run; pages and tensors all come
 * back), and option types are checked at submit with the option and value named.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Generator, generate } from '../../models/generation/generator';
import type { GenerationRequest } from '../../models/generation/request';
import type { DecoderForCausalLM } from '../../models/decoder_lm';
import { loadPretrained } from '../../models/load';
import { useBackend } from '../../lib/backends/select';

const DIR = path.join(__dirname, '..', 'fixtures', 'models', 'tiny_llama');
const PROMPTS = [[1, 17, 42, 5], [1, 5], [7, 7, 7, 100, 200, 31, 8], [250]];
const SMALL = { maxBatchTokens: 6, prefillChunk: 3 };

describe('generator: throwing callbacks and bad options', () => {
  let model: DecoderForCausalLM;
  let clean: number[][];
  beforeAll(async () => {
    await useBackend('cpu');
    ({ model } = await loadPretrained(DIR, { pageSize: 4, numPages: 64 }));
    clean = await generate(model, PROMPTS, { maxNewTokens: 8, sampling: { temperature: 0.8, topK: 20 }, seed: 5 }, SMALL);
  });
  afterAll(() => model.dispose());

  for (const failAt of [0, 1, 3]) {
    for (const victim of [0, 2]) {
      it(`onToken of request ${victim} throwing at token ${failAt} fails that request only (stepped by hand)`, async () => {
        const gen = new Generator(model, SMALL);
        const free = gen.cache.numFreePages;
        const before = tf.memory().numTensors;
        const handles = PROMPTS.map((p, i) => gen.submit({
          promptIds: p, maxNewTokens: 8, sampling: { temperature: 0.8, topK: 20 }, seed: 5,
          onToken: (_t, seq) => { if (i === victim && seq.tokens.length === failAt + 1) throw new Error('callback exploded'); },
        }));
        while (gen.pending > 0) await gen.step(); // the caller drives step(): no step may throw
        await expect(handles[victim].done).rejects.toThrow(
          new RegExp(`onToken of sequence ${handles[victim].id} threw after token ${failAt} .*callback exploded`));
        expect(handles[victim].finishReason).toBe('error');
        expect(handles[victim].tokens).toEqual(clean[victim].slice(0, failAt + 1));
        for (let i = 0; i < PROMPTS.length; i++) if (i !== victim) expect(await handles[i].done).toEqual(clean[i]);
        expect(gen.cache.numFreePages).toBe(free);
        expect(gen.cache.sequenceIds).toEqual([]);
        expect(tf.memory().numTensors).toBe(before);
      });
    }
  }

  it('run() finishes the other requests when one callback throws a non-Error value', async () => {
    const gen = new Generator(model, SMALL);
    const bad = gen.submit({ promptIds: PROMPTS[1], maxNewTokens: 8, onToken: () => { throw 'plain string'; } }); // eslint-disable-line no-throw-literal
    const good = gen.submit({ promptIds: PROMPTS[0], maxNewTokens: 8 });
    await gen.run();
    await expect(bad.done).rejects.toThrow(/onToken of sequence \d+ threw after token 0 .*plain string/);
    expect(await good.done).toEqual((await generate(model, [PROMPTS[0]], { maxNewTokens: 8 }))[0]);
  });

  const badOptions: [string, Partial<GenerationRequest> & Record<string, unknown>, RegExp][] = [
    ['stopTokens a number', { stopTokens: 5 as unknown as number[] }, /stopTokens must be an array of integer token ids, got 5/],
    ['stopTokens with a string', { stopTokens: ['2'] as unknown as number[] }, /stopTokens .* got \["2"\]/],
    ['stopTokens with a fraction', { stopTokens: [1.5] }, /stopTokens .* got \[1.5\]/],
    ['seed a string', { seed: '3' as unknown as number }, /seed must be a finite number, got "3"/],
    ['seed NaN', { seed: NaN }, /seed must be a finite number, got null/],
    ['onToken not a function', { onToken: 'print' as unknown as () => void }, /onToken must be a function, got string/],
    ['sampling not an object', { sampling: 3 as unknown as object }, /sampling must be an object, got 3/],
    ['temperature a string', { sampling: { temperature: '0.5' as unknown as number } }, /temperature must be >= 0, got "0.5"/],
    ['topP a string', { sampling: { topP: '0.5' as unknown as number } }, /topP must be in \(0, 1\], got "0.5"/],
    ['topK fractional', { sampling: { topK: 2.5 } }, /topK must be an integer >= 0, got 2.5/],
    ['maxNewTokens a string', { maxNewTokens: '4' as unknown as number }, /maxNewTokens must be an integer >= 1, got 4/],
    ['promptIds with a negative id', { promptIds: [1, -2] }, /promptIds\[1\] \(-2\) must be in \[0, /],
  ];
  for (const [what, opts, message] of badOptions) {
    it(`submit rejects ${what}, naming the option, and queues nothing`, () => {
      const gen = new Generator(model);
      const good = gen.submit({ promptIds: [1, 2], maxNewTokens: 2 });
      expect(() => gen.submit({ promptIds: [1, 2, 3], maxNewTokens: 4, ...opts })).toThrow(message);
      expect(gen.pending).toBe(1);
      gen.dispose();
      return expect(good.done).rejects.toThrow(/disposed/);
    });
  }
});
