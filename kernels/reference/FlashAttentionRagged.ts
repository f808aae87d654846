/**
 * Composite reference of FlashAttentionRagged (kernels/kernel_names.ts) in plain tfjs ops: one sequence at a
 * time through the one composite GQA block (grouped_attention.ts).
 * Differentiable, so it also gives the gradient where no fused backward is registered.
 */
import * as tf from '@tensorflow/tfjs';
import type { FlashAttentionRaggedAttrs } from '../kernel_names.js';
import { groupedQueryAttention } from './grouped_attention.js';
import { visibility } from './masked_attention.js';

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
      const qb = q.slice([r0, 0], [n, nHeads * hd]); // [n, nH*hd]
      const kb = k.slice([r0, 0], [n, nKvHeads * hd]), vb = v.slice([r0, 0], [n, nKvHeads * hd]); // [n, nKv*hd]
      outs.push(groupedQueryAttention(qb, { k: kb, v: vb }, { nHeads, nKvHeads, headDim: hd, scale, vis }) as tf.Tensor2D); // [n, nH*hd]
    }
    if (outs.length === 0) return tf.zeros([q.shape[0], nHeads * hd]) as tf.Tensor2D;
    return (outs.length === 1 ? outs[0] : tf.concat(outs, 0)) as tf.Tensor2D;
  });
}
