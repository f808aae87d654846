/**
 * Composite reference of FlashAttentionRaggedPaged (kernels/kernel_names.ts), in plain tfjs ops.
 * One sequence at a time (so a NaN stays in its own sequence). K and V are host arrays here, so
 * the plain additive mask runs while they are all finite (masked scores from finite keys are
 * finite, + -inf is -inf; 0 · finite V is 0), and masked_attention.ts, which keeps a later token's
 * NaN or Inf out of earlier tokens, only when they are not. GQA through the one composite block
 * (grouped_attention.ts), keys pre-transposed on the host (unbatched, untransposed matMuls, which
 * is what tfjs-wasm hands to XNNPACK).
 */
import * as tf from '@tensorflow/tfjs';
import type { FlashAttentionRaggedPagedAttrs } from '../kernel_names.js';
import { additiveMask } from './mask.js';
import { groupedQueryAttention } from './grouped_attention.js';
import { visibility } from './masked_attention.js';

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
      const qb = q.slice([r0, 0], [n, nHeads * headDim]); // [n, nH*hd]
      const kvHead = (h: number) => ({
        kT: tf.tensor2d(kT.subarray(h * headDim * len, (h + 1) * headDim * len), [headDim, len]), // [hd, len]
        v: tf.tensor2d(v.subarray(h * len * headDim, (h + 1) * len * headDim), [len, headDim]), // [len, hd]
      });
      outs.push(groupedQueryAttention(qb, { kvHead }, { nHeads, nKvHeads, headDim, scale, vis, additiveMask: maskT }) as tf.Tensor2D); // [n, nH*hd]
    }
    if (outs.length === 0) return tf.zeros([0, nHeads * headDim]) as tf.Tensor2D;
    return (outs.length === 1 ? outs[0] : tf.concat(outs, 0)) as tf.Tensor2D;
  });
}
