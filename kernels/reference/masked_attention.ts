/**
 * Masking for the composite (plain tfjs op) attention paths such that masked keys cannot affect
 * a query's output, NaN and Inf included:
 * - masked scores are replaced (tf.where), never added to -inf (NaN + -inf is NaN);
 * - a product `weights · X` whose weights are 0 at masked keys (P·V, dS·K, Pᵀ·dO, dSᵀ·Q) uses X
 *   with its non-finite entries zeroed (0 · NaN is NaN), and then puts NaN in the output rows
 *   that do see a non-finite row of X, so a NaN the query is allowed to see still propagates
 *   (row-wise: such a row comes out all NaN).
 * Every op used has a tfjs gradient, so the differentiable references stay differentiable.
 */
import * as tf from '@tensorflow/tfjs';
import type { MaskSpec } from '../../core/types.js';
import { keyVisible } from './mask.js';

/** Visibility `[n * group, len]` (row i*group + g) as 0/1 float32 and as bool. */
export interface Visibility { f32: tf.Tensor2D; bool: tf.Tensor2D }

/** Which keys 0..len-1 each of n queries at positions start..start+n-1 (each repeated `group` times) sees. */
export function visibility(mask: MaskSpec, start: number, n: number, group: number, len: number): Visibility {
  const out = new Float32Array(n * group * len);
  for (let i = 0; i < n; i++) {
    const row = out.subarray(i * group * len, (i * group + 1) * len);
    for (let j = 0; j < len; j++) if (keyVisible(mask, start + i, j)) row[j] = 1;
    for (let g = 1; g < group; g++) out.copyWithin((i * group + g) * len, i * group * len, (i * group + 1) * len);
  }
  const f32 = tf.tensor2d(out, [n * group, len]);
  return { f32, bool: tf.cast(f32, 'bool') as tf.Tensor2D };
}

/** softmax over the visible scores only: `[..., M, len]`, masked entries exactly 0. */
export function maskedSoftmax(scores: tf.Tensor, vis: Visibility): tf.Tensor {
  return tf.softmax(tf.where(vis.bool, scores, tf.scalar(-Infinity)));
}

/**
 * `w · x` (or `wᵀ · x` with `transposeW`) where `w [..., M, len]` is 0 wherever `visibleF`
 * (`[M, len]`, or `[len, M]` transposed alike) is 0: non-finite rows of `x [..., len, d]` reach only
 * the output rows that see them, as NaN.
 */
export function maskedMatMul(w: tf.Tensor, x: tf.Tensor, visibleF: tf.Tensor2D, transposeW = false): tf.Tensor {
  const finite = tf.isFinite(x);
  const clean = tf.matMul(w, tf.where(finite, x, tf.scalar(0)), transposeW, false);
  const badRow = tf.max(tf.where(finite, tf.scalar(0), tf.scalar(1)), -1, true); // [..., len, 1]
  const vis = x.rank > 2 ? visibleF.reshape([1, ...visibleF.shape]) : visibleF;
  const hits = tf.matMul(vis, badRow, transposeW, false); // [..., M, 1]
  return tf.where(tf.greaterEqual(hits, 0.5), tf.scalar(NaN), clean);
}

/** Non-finite rows of `x [..., R, d]` as 1, others 0: `[..., R, 1]`, and x with those entries zeroed. */
function splitNonFinite(x: tf.Tensor): { clean: tf.Tensor; badRow: tf.Tensor } {
  const finite = tf.isFinite(x);
  return { clean: tf.where(finite, x, tf.scalar(0)), badRow: tf.max(tf.where(finite, tf.scalar(0), tf.scalar(1)), -1, true) };
}

/**
 * `scale · q · kᵀ` (`q [..., M, d]`, `k [..., len, d]`) for a differentiable path: computed from q
 * and k with their non-finite entries zeroed, then NaN put back where a non-finite q row meets a
 * visible key or a query sees a non-finite k row. Autodiff of the plain product would give
 * dQ = dS · K and dK = dSᵀ · Q, where dS = 0 at masked pairs meets a masked NaN (0 · NaN).
 */
export function maskedScores(q: tf.Tensor, k: tf.Tensor, vis: Visibility, scale: number): tf.Tensor {
  const qs = splitNonFinite(q), ks = splitNonFinite(k);
  const scores = tf.mul(tf.matMul(qs.clean, ks.clean, false, true), scale); // [..., M, len]
  const bad = tf.add(qs.badRow, tf.matMul(tf.onesLike(qs.badRow), ks.badRow, false, true)); // [..., M, len]: badQ_i + badK_j
  return tf.where(tf.greaterEqual(tf.mul(bad, vis.f32), 0.5), tf.scalar(NaN), scores); // (mul, not logicalAnd: that has no gradient)
}

/** Attention of one block: softmax(scale · scores) over visible keys, times v. `scores [.., M, len]`. */
export function maskedAttention(scores: tf.Tensor, v: tf.Tensor, vis: Visibility): tf.Tensor {
  return maskedMatMul(maskedSoftmax(scores, vis), v, vis.f32);
}
