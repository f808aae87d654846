/**
 * The eager functional API (lib/functional.ts) against naive attention in plain tfjs ops (keys
 * repeated per group, additive mask, softmax), forward and gradient, on each spec backend; the
 * ragged and paged forms against the padded one; rope against the rotation written out.
 */
import * as tf from '@tensorflow/tfjs';

import { keyVisible } from '../../kernels/reference/mask';
import type { MaskVariant } from '../../lib/types';
import { attention, pagedAttention, raggedAttention, rope } from '../../lib/functional';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { RotaryEmbedding } from '../../lib/rope/rotary_embedding';
import { describeEachBackend } from '../support/backends';

const B = 2, HQ = 4, HKV = 2, S = 7, D = 8;
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

/** softmax(q kᵀ · scale + mask) v with k, v repeated per query-head group: [B, Hq, S, D]. */
function naive(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, variant: MaskVariant, window = 0, chunk = 0): tf.Tensor {
  return tf.tidy(() => {
    const g = HQ / HKV;
    const rep = (t: tf.Tensor) => tf.stack(Array.from({ length: HQ }, (_, h) => t.slice([0, Math.floor(h / g), 0, 0], [B, 1, S, D]).squeeze([1])), 1);
    const m = new Float32Array(S * S);
    for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) if (!keyVisible({ variant, window, chunk }, i, j) || j >= S) m[i * S + j] = -Infinity;
    const scores = tf.add(tf.mul(tf.matMul(q, rep(k), false, true), 1 / Math.sqrt(D)), tf.tensor2d(m, [S, S]));
    return tf.matMul(tf.softmax(scores), rep(v));
  });
}

describeEachBackend('functional API', () => {
  const q = () => tf.randomNormal([B, HQ, S, D], 0, 1, 'float32', 1);
  const k = () => tf.randomNormal([B, HKV, S, D], 0, 1, 'float32', 2);
  const v = () => tf.randomNormal([B, HKV, S, D], 0, 1, 'float32', 3);

  it.each([['causal', 0, 0], ['null', 0, 0], ['sliding_window_causal', 3, 0], ['sliding_window', 2, 0], ['chunked_causal', 0, 3]] as const)(
    'attention (%s) equals naive GQA attention, forward and gradient', (mask, window, chunk) => {
      const [Q, K, V] = [q(), k(), v()];
      const opts = { mask: mask as MaskVariant, slidingWindow: window || undefined, chunk: chunk || undefined };
      const before = tf.memory().numTensors;
      const y = attention(Q, K, V, opts);
      expect(tf.memory().numTensors).toBe(before + 1); // the output only: no intermediate leaked
      const ref = naive(Q, K, V, mask, window, chunk);
      expect(y.shape).toEqual([B, HQ, S, D]);
      expect(maxDiff(y, ref)).toBeLessThan(1e-5);
      const w = tf.randomNormal([B, HQ, S, D], 0, 1, 'float32', 4);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(attention(a, b, c, opts), w)))([Q, K, V]);
      const gr = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(naive(a, b, c, mask, window, chunk), w)))([Q, K, V]);
      for (let i = 0; i < 3; i++) expect(maxDiff(g[i], gr[i])).toBeLessThan(1e-4);
      tf.dispose([Q, K, V, y, ref, w, ...g, ...gr]);
    });

  it('raggedAttention of packed sequences equals attention of each', () => {
    const [Q, K, V] = [q(), k(), v()];
    const rows = (t: tf.Tensor, b: number) => t.slice([b, 0, 0, 0], [1, t.shape[1], t.shape[2], D]).squeeze([0]).transpose([1, 0, 2]); // [S, H, D]
    const packed = (t: tf.Tensor) => tf.concat([rows(t, 0).slice([0, 0, 0], [5, t.shape[1], D]), rows(t, 1)], 0); // lengths 5 and 7
    const y = raggedAttention(packed(Q), packed(K), packed(V), [0, 5, 12]);
    const first = attention(Q.slice([0, 0, 0, 0], [1, HQ, 5, D]), K.slice([0, 0, 0, 0], [1, HKV, 5, D]), V.slice([0, 0, 0, 0], [1, HKV, 5, D]));
    const second = attention(Q.slice([1, 0, 0, 0], [1, HQ, S, D]), K.slice([1, 0, 0, 0], [1, HKV, S, D]), V.slice([1, 0, 0, 0], [1, HKV, S, D]));
    expect(maxDiff(y.slice([0, 0, 0], [5, HQ, D]), rows(first, 0))).toBeLessThan(1e-5);
    expect(maxDiff(y.slice([5, 0, 0], [7, HQ, D]), rows(second, 0))).toBeLessThan(1e-5);
    tf.dispose([Q, K, V, y, first, second]);
  });

  it('pagedAttention over a cache holding K and V equals attention', () => {
    const [Q, K, V] = [q(), k(), v()];
    const cache = new PagedKVCache({ nKvHeads: HKV, headDim: D, pageSize: 3, numPages: 16 });
    cache.addSequence(0); cache.addSequence(1);
    const c = cache.fetch([0, 1], [S, S]);
    const rows = (t: tf.Tensor) => t.transpose([0, 2, 1, 3]).reshape([B * S, t.shape[1], D]); // [B*S, H, D]
    cache.writeTokens(0, c, rows(K).dataSync() as Float32Array, rows(V).dataSync() as Float32Array);
    const y = pagedAttention(rows(Q), c, 0, { mask: 'causal' });
    cache.step(c);
    expect(maxDiff(y, rows(attention(Q, K, V)))).toBeLessThan(1e-5);
    tf.dispose([Q, K, V, y]);
  });

  it('rope on [B, H, S, D] rotates each position as the tables say (and packed [T, H, D] the same)', () => {
    const rotary = new RotaryEmbedding({ headDim: D, theta: 10000, maxSeqLen: 32 });
    const t = rotary.tables();
    const x = q();
    const pos = [3, 0, 9, 1, 2, 5, 4];
    const y = rope(x, pos, rotary).arraySync() as number[][][][];
    const xs = x.arraySync() as number[][][][];
    const half = D / 2;
    let err = 0;
    for (let b = 0; b < B; b++) for (let h = 0; h < HQ; h++) for (let s = 0; s < S; s++) for (let i = 0; i < half; i++) {
      const c = t.cos[pos[s] * half + i], sn = t.sin[pos[s] * half + i], a = xs[b][h][s][i], bb = xs[b][h][s][i + half];
      err = Math.max(err, Math.abs(y[b][h][s][i] - (a * c - bb * sn)), Math.abs(y[b][h][s][i + half] - (bb * c + a * sn)));
    }
    expect(err).toBeLessThan(1e-5);
    const packed = x.slice([0, 0, 0, 0], [1, HQ, S, D]).squeeze([0]).transpose([1, 0, 2]); // [S, H, D]
    expect(maxDiff(rope(packed, pos, t), tf.tensor(y[0]).transpose([1, 0, 2]))).toBeLessThan(1e-6);
    tf.dispose([x, packed]);
  });

  it('bad calls name the function and both values', () => {
    const [Q, K] = [q(), k()];
    expect(() => attention(Q, K, K.slice([0, 0, 0, 0], [B, HKV, 5, D]))).toThrow(/\[attention\] k and v must be \[2, 2, 7, 8\]/);
    expect(() => attention(Q, Q.slice([0, 0, 0, 0], [B, 3, S, D]), Q.slice([0, 0, 0, 0], [B, 3, S, D]))).toThrow('[attention] q heads (4) must be a multiple of k heads (3)');
    expect(() => attention(Q, K, K, { mask: 'diagonal' as MaskVariant })).toThrow(/\[attention\] mask must be one of causal, null/);
    tf.dispose([Q, K]);
  });
});
