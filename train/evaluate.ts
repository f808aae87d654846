/**
 * Held-out evaluation through the serving path: every prompt submitted at once to the
 * continuous-batching Generator over the paged KV cache (greedy, stop at EOS); sequences of
 * different lengths join and leave the running batch between steps.
 */
import type { DecoderForCausalLM } from '../models/decoder_lm.js';
import { Generator } from '../models/generation/generator.js';
import { EOS, type Example } from './task.js';

export interface EvalResult {
  exactMatch: number;
  correct: number;
  total: number;
  generatedTokens: number;
  seconds: number;
  tokensPerSecond: number;
  samples: { prompt: number[]; expected: number[]; got: number[] }[];
}

export async function evaluateHeldOut(model: DecoderForCausalLM, examples: Example[], maxBatchSize = 64): Promise<EvalResult> {
  const gen = new Generator(model, { maxBatchSize, maxBatchTokens: 1024 });
  const t0 = performance.now();
  const handles = examples.map((e) => gen.submit({ promptIds: e.prompt, maxNewTokens: e.answer.length + 1, stopTokens: [EOS] }));
  await gen.run();
  const outs = await Promise.all(handles.map((h) => h.done));
  const seconds = (performance.now() - t0) / 1000;
  let correct = 0, generatedTokens = 0;
  const samples: EvalResult['samples'] = [];
  outs.forEach((got, i) => {
    generatedTokens += got.length;
    const want = examples[i].answer;
    if (got.length === want.length && got.every((t, j) => t === want[j])) correct++;
    samples.push({ prompt: examples[i].prompt, expected: want, got });
  });
  return {
    exactMatch: correct / examples.length, correct, total: examples.length, generatedTokens, seconds,
    tokensPerSecond: generatedTokens / seconds, samples,
  };
}
