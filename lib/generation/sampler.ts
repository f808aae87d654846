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
  check(typeof p === 'object' && p !== null && !Array.isArray(p), where, () => `sampling must be an object, got ${JSON.stringify(p)}`);
  const t = p.temperature ?? 0;
  check(typeof t === 'number' && Number.isFinite(t) && t >= 0, where, () => `temperature must be >= 0, got ${JSON.stringify(p.temperature)}`);
  if (p.topK !== undefined) checkInt(p.topK, where, 'topK', 0);
  const topP = p.topP ?? 1;
  check(typeof topP === 'number' && topP > 0 && topP <= 1, where, () => `topP must be in (0, 1], got ${JSON.stringify(p.topP)}`);
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

/** Indices of the k largest values, largest first (ties: lower index first); O(vocab * log k). */
function topKIndices(logits: Float32Array, offset: number, vocab: number, k: number): number[] {
  const idx: number[] = [];
  const better = (a: number, b: number) => logits[offset + a] > logits[offset + b] || (logits[offset + a] === logits[offset + b] && a < b);
  for (let i = 0; i < vocab; i++) {
    if (idx.length === k && !better(i, idx[k - 1])) continue;
    let lo = 0, hi = idx.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (better(idx[mid], i)) lo = mid + 1; else hi = mid;
    }
    idx.splice(lo, 0, i);
    if (idx.length > k) idx.pop();
  }
  return idx;
}

/**
 * Picks a token from `logits[offset .. offset + vocab)`. Candidates are the top-k (when set),
 * sorted by logit when top-p needs the order; then one draw of `rng` picks among them.
 *
 * @example
 * sampleToken(logits, { temperature: 0.8, topK: 40, topP: 0.95 }, new SeededRng(1), 0, 32000);
 */
export function sampleToken(logits: Float32Array, p: SamplingParams, rng: SeededRng, offset = 0, vocab = logits.length - offset): number {
  const temperature = p.temperature ?? 0;
  if (temperature === 0) return argmax(logits, offset, vocab);
  const topP = p.topP ?? 1;
  const max = logits[offset + argmax(logits, offset, vocab)];
  const weight = (i: number) => Math.exp((logits[offset + i] - max) / temperature);
  let idx: number[];
  let total = 0; // normaliser of the distribution top-p reads (after top-k when set)
  if (p.topK && p.topK > 0 && p.topK < vocab) {
    idx = topKIndices(logits, offset, vocab, p.topK);
    for (const i of idx) total += weight(i);
  } else {
    for (let i = 0; i < vocab; i++) total += weight(i);
    if (topP >= 1) { // plain temperature: one walk in index order, no candidate list
      let r = rng.next() * total;
      for (let i = 0; i < vocab; i++) if ((r -= weight(i)) < 0) return i;
      return vocab - 1;
    }
    // the nucleus lies within the top k once their mass reaches topP: grow k until it does
    idx = [];
    for (let k = 64; k <= 4096 && k < vocab; k *= 8) {
      const top = topKIndices(logits, offset, vocab, k);
      let mass = 0;
      for (const i of top) mass += weight(i);
      if (mass / total >= topP) { idx = top; break; }
    }
    if (idx.length === 0) { // flat distribution: sort everything
      const order = Uint32Array.from({ length: vocab }, (_, i) => i).sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
      idx = Array.from(order);
    }
  }
  let keep = idx.length;
  if (topP < 1) {
    let acc = 0;
    for (let j = 0; j < idx.length; j++) {
      acc += weight(idx[j]) / total;
      if (acc >= topP) { keep = j + 1; break; }
    }
  }
  let kept = 0;
  for (let j = 0; j < keep; j++) kept += weight(idx[j]);
  let r = rng.next() * kept;
  for (let j = 0; j < keep; j++) if ((r -= weight(idx[j])) < 0) return idx[j];
  return idx[keep - 1];
}
