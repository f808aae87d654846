/**
 * Composite reference of FlashAttentionRaggedPaged (kernels/kernel_names.ts), in plain tfjs ops.
 * One sequence at a time (so a NaN stays in its own sequence). K and V are host arrays here, so
 * the plain additive mask runs while they are all finite (masked scores from finite keys are
 * finite, + -inf is -inf; 0 · finite V is 0), and masked_attention.ts, which keeps a later token's
 * NaN or Inf out of earlier tokens, only when they are not. GQA by grouping the query heads
 * of each KV head into one 2-D matMul per KV head (no repeated K/V; unbatched, untransposed
 * matMuls, which is what tfjs-wasm hands to XNNPACK).
 */
import * as tf from '@tensorflow/tfjs';
import type { FlashAttentionRaggedPagedAttrs } from '../kernel_names.js';
import { additiveMask } from './mask.js';
import { maskedAttention, visibility } from './masked_attention.js';

const allFinite = (a: Float32Array) => { for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false; return true; };

/** `[nKv, len, hd]` -> `[nKv, hd, len]` on the host. */
function transposeHeads(k: Float32Array, nKv: number, len: number, hd: number): Float32Array {
  const out = new Float32Array(k.length);
  for (let h = 0; h < nKv; h++) {
    const src = h * len * hd;
    for (let j = 0; j < len; j++) for (let d = 0; d < hd; d++) out[src + d * len + j] = k[src + j * hd + d];
  }
  return out;
}

export function flashAttentionRaggedPagedReference(q: tf.Tensor2D, attrs: FlashAttentionRaggedPagedAttrs): tf.Tensor2D {
  const { nHeads, nKvHeads, headDim, scale, mask, collection, layerIdx } = attrs;
  const group = nHeads / nKvHeads;
  const batch = collection.seqIds.length;
  return tf.tidy(() => {
    const outs: tf.Tensor2D[] = [];
    for (let b = 0; b < batch; b++) {
      const r0 = collection.rowOffsets[b], n = collection.rowOffsets[b + 1] - r0;
      if (n === 0) continue;
      const start = collection.startPositions[b], len = start + n;
      const { k, v } = collection.cache.readSequence(layerIdx, collection, b, len); // [nKv, len, hd] each
      const kT = transposeHeads(k, nKvHeads, len, headDim); // [nKv, hd, len]
      const finite = allFinite(k) && allFinite(v);
      const vis = finite ? null : visibility(mask, start, n, group, len); // [n*g, len]
      const maskT = finite ? tf.tensor2d(additiveMask(mask, start, n, group, len), [n * group, len]) : null; // [n*g, len]
      const qb = q.slice([r0, 0], [n, nHeads * headDim]).reshape([n, nKvHeads, group * headDim]); // [n, nKv, g*hd]
      const heads: tf.Tensor2D[] = [];
      for (let h = 0; h < nKvHeads; h++) {
        const qh = qb.slice([0, h, 0], [n, 1, group * headDim]).reshape([n * group, headDim]); // [n*g, hd]
        const kh = tf.tensor2d(kT.subarray(h * headDim * len, (h + 1) * headDim * len), [headDim, len]);
        const vh = tf.tensor2d(v.subarray(h * len * headDim, (h + 1) * len * headDim), [len, headDim]);
        const scores = tf.mul(tf.matMul(qh, kh), scale); // [n*g, len]; masked keys' scores are replaced, not added to
        const o = vis ? maskedAttention(scores, vh, vis) : tf.matMul(tf.softmax(tf.add(scores, maskT!)), vh); // [n*g, hd]
        heads.push(o.reshape([n, group * headDim])); // [n, g*hd]
      }
      outs.push(tf.concat(heads, 1)); // [n, nH*hd]
    }
    if (outs.length === 0) return tf.zeros([0, nHeads * headDim]) as tf.Tensor2D;
    return (outs.length === 1 ? outs[0] : tf.concat(outs, 0)) as tf.Tensor2D;
  });
}
