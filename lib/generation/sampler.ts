/**
 * Token choice from one row of logits, on the host: greedy, or temperature then top-k then
 * top-p (nucleus) sampling, in Hugging Face's order.
 */
import { check, checkInt } from '../errors.js';
import type { SeededRng } from './rng.js';

export interface SamplingParams {
  /** 0 (default) means greedy. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set whose probability reaches p (1 = all). */
  topP?: number;
}

/** Validates sampling parameters; `where` names the caller in errors. */
export function checkSampling(p: SamplingParams, where: string): void {
  const t = p.temperature ?? 0;
  check(Number.isFinite(t) && t >= 0, where, () => `temperature must be >= 0, got ${p.temperature}`);
  if (p.topK !== undefined) checkInt(p.topK, where, 'topK', 0);
  const topP = p.topP ?? 1;
  check(topP > 0 && topP <= 1, where, () => `topP must be in (0, 1], got ${p.topP}`);
}

/** Index of the largest value; the first one on ties (as torch.argmax). */
export function argmax(row: Float32Array, offset = 0, n = row.length - offset): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = row[offset + i];
    if (v > bestV) { bestV = v; best = i; }
  }
  return best;
}

/**
 * Picks a token from `logits[offset .. offset + vocab)`.
 *
 * @example
 * sampleToken(logits, { temperature: 0.8, topK: 40, topP: 0.95 }, new SeededRng(1), 0, 32000);
 */
export function sampleToken(logits: Float32Array, p: SamplingParams, rng: SeededRng, offset = 0, vocab = logits.length - offset): number {
  const temperature = p.temperature ?? 0;
  if (temperature === 0) return argmax(logits, offset, vocab);
  const idx = Array.from({ length: vocab }, (_, i) => i);
  idx.sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
  const k = p.topK && p.topK > 0 ? Math.min(p.topK, vocab) : vocab;
  const max = logits[offset + idx[0]] / temperature;
  const probs = new Float64Array(k);
  let sum = 0;
  for (let i = 0; i < k; i++) sum += probs[i] = Math.exp(logits[offset + idx[i]] / temperature - max);
  const topP = p.topP ?? 1;
  let keep = k;
  if (topP < 1) {
    let acc = 0;
    for (let i = 0; i < k; i++) {
      acc += probs[i] / sum;
      if (acc >= topP) { keep = i + 1; break; }
    }
  }
  let total = 0;
  for (let i = 0; i < keep; i++) total += probs[i];
  let r = rng.next() * total;
  for (let i = 0; i < keep; i++) {
    r -= probs[i];
    if (r < 0) return idx[i];
  }
  return idx[keep - 1];
}
