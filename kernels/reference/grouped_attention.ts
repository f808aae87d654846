/**
 * The one composite grouped-query attention block, called by every composite path: the
 * FlashAttentionRagged reference (training), the FlashAttentionRaggedPaged reference (kernel
 * fallback on the paged cache) and the layer's padded no-cache path (lib/attention/padded.ts).
 * The g = nHeads / nKvHeads query heads of KV head h (heads h*g .. h*g+g-1) form one
 * `[n*g, hd]` matrix (row i*g + gi) against that head's keys: no repeated K/V, one matMul per
 * KV head (unbatched 2-D for one sequence, which is what tfjs-wasm hands to XNNPACK; batched
 * over a leading dim for padded rows). Masking as in masked_attention.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { maskedAttention, maskedScores, type Visibility } from './masked_attention.js';

/** The keys and values of one KV head, `[..., len, hd]` each; or its keys pre-transposed, `kT [..., hd, len]`. */
export type KVHead = { k: tf.Tensor; v: tf.Tensor } | { kT: tf.Tensor; v: tf.Tensor };

export interface GroupedQueryArgs {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  scale: number;
  /** Which keys each grouped query row sees, `[n*g, len]`; null only with `additiveMask` and `kT`. */
  vis: Visibility | null;
  /**
   * Inference on keys and values known finite: the additive `[n*g, len]` mask (0 / -inf) instead of
   * masked_attention.ts's NaN-safe products; fewer ops, the same numbers.
   */
  additiveMask?: tf.Tensor2D | null;
}

/**
 * q `[..., n, nHeads*hd]` -> `[..., n, nHeads*hd]`, with `kvHead(h)` giving KV head h's keys and values.
 * With k (not kT) the scores come from maskedScores, whose autodiff never meets a masked NaN.
 *
 * @example
 * const vis = visibility({ kind: 'causal', window: 0 }, 0, n, nH / nKv, n); // [n*g, n]
 * const out = groupedQueryAttention(q, (h) => ({ k: k.slice([0, h * hd], [n, hd]), v: v.slice([0, h * hd], [n, hd]) }),
 *   { nHeads: nH, nKvHeads: nKv, headDim: hd, scale: hd ** -0.5, vis }); // [n, nH*hd]
 */
export function groupedQueryAttention(q: tf.Tensor, kvHead: (h: number) => KVHead, a: GroupedQueryArgs): tf.Tensor {
  const { nHeads, nKvHeads, headDim: hd, scale, vis } = a;
  const g = nHeads / nKvHeads;
  const lead = q.shape.slice(0, -2), n = q.shape[q.rank - 2];
  const visible = (): Visibility => {
    if (!vis) throw new Error('[groupedQueryAttention] vis (null) is needed without additiveMask or with k (not kT)');
    return vis;
  };
  return tf.tidy(() => {
    const qb = q.reshape([...lead, n, nKvHeads, g * hd]); // [..., n, nKv, g*hd]
    const begin = lead.map(() => 0);
    const heads: tf.Tensor[] = [];
    for (let h = 0; h < nKvHeads; h++) {
      const qh = qb.slice([...begin, 0, h, 0], [...lead, n, 1, g * hd]).reshape([...lead, n * g, hd]); // [..., n*g, hd]
      const kv = kvHead(h);
      const scores = 'kT' in kv ? tf.mul(tf.matMul(qh, kv.kT), scale) // [..., n*g, len]; masked scores are replaced, not added to
        : maskedScores(qh, kv.k, visible(), scale);
      const o = a.additiveMask ? tf.matMul(tf.softmax(tf.add(scores, a.additiveMask)), kv.v) // [..., n*g, hd]
        : maskedAttention(scores, kv.v, visible()); // masked keys cannot reach it, NaN included
      heads.push(o.reshape([...lead, n, g * hd])); // [..., n, g*hd]
    }
    return heads.length === 1 ? heads[0] : tf.concat(heads, -1); // [..., n, nH*hd]
  });
}
