/**
 * Composite reference of FlashAttentionRaggedGrad (kernels/kernel_names.ts): dq, dk, dv of
 * FlashAttentionRagged written out as plain tfjs ops (attention_grads.ts), one sequence and KV
 * head at a time. The gradient of FlashAttentionRagged runs it on backends without the fused backward.
 */
import * as tf from '@tensorflow/tfjs';

import type { FlashAttentionRaggedAttrs } from '../kernel_names.js';
import { attentionBlockBackward, fromQueryBlocks, maskTensor, queryBlocks } from './attention_grads.js';

/** dq, dk, dv of FlashAttentionRagged from the composite formulas (backends without the fused backward). */
export function flashAttentionRaggedGradReference(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, dy: tf.Tensor2D, a: FlashAttentionRaggedAttrs): tf.Tensor2D[] {
  const { nHeads, nKvHeads, headDim: hd, rowOffsets: r } = a;
  const g = nHeads / nKvHeads, kvW = nKvHeads * hd;
  const dqs: tf.Tensor2D[] = [], dks: tf.Tensor2D[] = [], dvs: tf.Tensor2D[] = [];
  for (let b = 0; b + 1 < r.length; b++) {
    const r0 = r[b], n = r[b + 1] - r0;
    if (n === 0) continue;
    const mask = maskTensor(a.mask, 0, n, g, n);
    const qs = queryBlocks(q.slice([r0, 0], [n, nHeads * hd]), nKvHeads, g, hd);
    const dys = queryBlocks(dy.slice([r0, 0], [n, nHeads * hd]), nKvHeads, g, hd);
    const kb = k.slice([r0, 0], [n, kvW]), vb = v.slice([r0, 0], [n, kvW]);
    const res = qs.map((qh, h) => attentionBlockBackward({
      q: qh, dy: dys[h], mask, scale: a.scale, k: kb.slice([0, h * hd], [n, hd]), v: vb.slice([0, h * hd], [n, hd]),
    }, true));
    dqs.push(fromQueryBlocks(res.map((x) => x.dq), n, g, hd));
    dks.push(tf.concat(res.map((x) => x.dk!), 1) as tf.Tensor2D);
    dvs.push(tf.concat(res.map((x) => x.dv!), 1) as tf.Tensor2D);
  }
  if (dqs.length === 0) return [tf.zerosLike(q), tf.zerosLike(k), tf.zerosLike(v)];
  const cat = (xs: tf.Tensor2D[]) => (xs.length === 1 ? xs[0] : tf.concat(xs, 0));
  return [cat(dqs), cat(dks), cat(dvs)];
}

