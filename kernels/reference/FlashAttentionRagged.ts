/**
 * Composite reference of FlashAttentionRagged (kernels/kernel_names.ts) in plain tfjs ops: one sequence at a
 * time, the query heads of each KV head grouped into one 2-D matMul (no repeated K/V).
 * Differentiable, so it also gives the gradient where no fused backward is registered.
 */
import * as tf from '@tensorflow/tfjs';
import type { FlashAttentionRaggedAttrs } from '../kernel_names.js';
import { maskedAttention, maskedScores, visibility } from './masked_attention.js';

/** out `[T, nH*hd]` from rotated q `[T, nH*hd]`, k and v `[T, nKv*hd]`. */
export function flashAttentionRaggedReference(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, a: FlashAttentionRaggedAttrs): tf.Tensor2D {
  const { nHeads, nKvHeads, headDim: hd, scale, mask, rowOffsets } = a;
  const g = nHeads / nKvHeads;
  return tf.tidy(() => {
    const outs: tf.Tensor2D[] = [];
    for (let b = 0; b + 1 < rowOffsets.length; b++) {
      const r0 = rowOffsets[b], n = rowOffsets[b + 1] - r0;
      if (n === 0) continue;
      const vis = visibility(mask, 0, n, g, n); // [n*g, n]
      const qb = q.slice([r0, 0], [n, nHeads * hd]).reshape([n, nKvHeads, g * hd]); // [n, nKv, g*hd]
      const kb = k.slice([r0, 0], [n, nKvHeads * hd]), vb = v.slice([r0, 0], [n, nKvHeads * hd]); // [n, nKv*hd]
      const heads: tf.Tensor2D[] = [];
      for (let h = 0; h < nKvHeads; h++) {
        const qh = qb.slice([0, h, 0], [n, 1, g * hd]).reshape([n * g, hd]) as tf.Tensor2D; // [n*g, hd]
        const kh = kb.slice([0, h * hd], [n, hd]), vh = vb.slice([0, h * hd], [n, hd]); // [n, hd]
        const scores = maskedScores(qh, kh, vis, scale); // [n*g, n]; its autodiff never meets a masked NaN
        heads.push(maskedAttention(scores, vh, vis).reshape([n, g * hd])); // [n, g*hd]; masked keys cannot reach it, NaN included
      }
      outs.push(heads.length === 1 ? heads[0] : tf.concat(heads, 1)); // [n, nH*hd]
    }
    if (outs.length === 0) return tf.zeros([q.shape[0], nHeads * hd]) as tf.Tensor2D;
    return (outs.length === 1 ? outs[0] : tf.concat(outs, 0)) as tf.Tensor2D;
  });
}
