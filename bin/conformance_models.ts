/**
 * Model fixtures for `conformance`: a folder holding a Hugging Face checkpoint plus
 * `expected.json` / `expected.safetensors` (see the fixtures README). A fixture passes when
 * every prompt's teacher-forced logits (prompt + greedy continuation as one prefill) are within
 * 1e-4 x max|logits| and the greedy continuation, all prompts generated together, matches
 * token for token.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { generate } from '../models/generation/generator.js';
import { readSafetensorsFileF32 } from '../lib/loaders/checkpoint.js';
import { loadPretrained } from '../models/load.js';

export interface ModelFixtureResult {
  name: string;
  /** Largest max|got - expected| / max|expected| over the prompts. */
  error: number;
  passed: boolean;
  detail: string;
}

interface Expected {
  prompts: number[][];
  new_tokens: number;
  greedy: number[][];
}

export const MODEL_TOLERANCE = 1e-4;

/** True for a folder that holds a model fixture. */
export function isModelFixture(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'expected.json')) && fs.existsSync(path.join(dir, 'config.json'));
}

/** Runs one model fixture folder on the active backend. */
export async function runModelFixture(dir: string): Promise<ModelFixtureResult> {
  const name = path.basename(dir);
  const exp = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  const logits = readSafetensorsFileF32(path.join(dir, 'expected.safetensors'));
  const longest = Math.max(...exp.prompts.map((p) => p.length)) + exp.new_tokens;
  const { model } = await loadPretrained(dir, { pageSize: 4, numPages: Math.ceil(longest / 4) * exp.prompts.length + 1 });
  try {
    let error = 0;
    const notes: string[] = [];
    const cache = model.createCache();
    for (let i = 0; i < exp.prompts.length; i++) {
      const ids = [...exp.prompts[i], ...exp.greedy[i]];
      const want = logits.get(`logits.${i}`);
      if (!want) return { name, error: Infinity, passed: false, detail: `expected.safetensors lacks logits.${i}` };
      const seq = cache.addSequence();
      const kv = cache.fetch([seq], [ids.length]);
      const got = model.forwardRagged(ids, kv); // [len, vocab]
      cache.step(kv);
      const data = (await got.data()) as Float32Array;
      got.dispose();
      cache.releaseSequence(seq);
      let maxDiff = 0, maxRef = 0;
      for (let j = 0; j < want.data.length; j++) {
        maxDiff = Math.max(maxDiff, Math.abs(data[j] - want.data[j]));
        maxRef = Math.max(maxRef, Math.abs(want.data[j]));
      }
      const e = data.length === want.data.length ? maxDiff / maxRef : Infinity;
      error = Math.max(error, e);
      if (!(e <= MODEL_TOLERANCE)) notes.push(`prompt ${i}: logits error ${e.toExponential(2)}`);
    }
    const greedy = await generate(model, exp.prompts, { maxNewTokens: exp.new_tokens });
    greedy.forEach((g, i) => {
      const at = g.findIndex((t, j) => t !== exp.greedy[i][j]);
      if (at >= 0) notes.push(`prompt ${i}: greedy token ${at} is ${g[at]}, expected ${exp.greedy[i][at]}`);
    });
    const passed = notes.length === 0;
    const detail = passed
      ? `${exp.prompts.length} prompt(s), logits within ${MODEL_TOLERANCE} x max|logits|, ${exp.new_tokens} greedy tokens each match (${tf.getBackend()})`
      : notes.join('; ');
    return { name, error, passed, detail };
  } catch (e) {
    return { name, error: Infinity, passed: false, detail: (e as Error).message };
  } finally {
    model.dispose();
  }
}
