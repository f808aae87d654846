/**
 * The one composite grouped-query attention block, called by every composite path: the
 * FlashAttentionRagged reference (training), the FlashAttentionRaggedPaged reference (kernel
 * fallback on the paged cache) and the layer's padded no-cache path (lib/attention/padded.ts).
 * The g = nHeads / nKvHeads query heads of KV head h (heads h*g .. h*g+g-1) form one
 * `[n*g, hd]` matrix (row i*g + gi) against that head's keys: no repeated K/V, one matMul per
 * KV head for one sequence (unbatched 2-D, which is what tfjs-wasm hands to XNNPACK), one batched
 * product over batch x KV heads for padded rows. Masking as in masked_attention.ts.
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
 * Where the keys and values come from: whole tensors `k`, `v` `[..., len, nKv*hd]` (the KV heads
 * side by side, as projected), or `kvHead(h)` giving one KV head's at a time.
 */
export type GroupedKeys = { k: tf.Tensor; v: tf.Tensor } | { kvHead: (h: number) => KVHead };

/**
 * q `[..., n, nHeads*hd]` -> `[..., n, nHeads*hd]`. One sequence (2-D q) runs one 2-D product per
 * KV head; a leading batch dim (whole k / v) runs one batched product over batch x KV heads.
 * With k (not kT) the scores come from maskedScores, whose autodiff never meets a masked NaN.
 *
 * @example
 * const vis = visibility({ variant: 'causal', window: 0, chunk: 0 }, 0, n, nH / nKv, n); // [n*g, n]
 * const out = groupedQueryAttention(q, { k, v }, { nHeads: nH, nKvHeads: nKv, headDim: hd, scale: hd ** -0.5, vis }); // [n, nH*hd]
 */
export function groupedQueryAttention(q: tf.Tensor, keys: GroupedKeys, a: GroupedQueryArgs): tf.Tensor {
  const { nHeads, nKvHeads, headDim: hd } = a;
  const g = nHeads / nKvHeads;
  const lead = q.shape.slice(0, -2), n = q.shape[q.rank - 2];
  return tf.tidy(() => {
    if ('k' in keys && lead.length > 0) {
      // batched: [B*nKv, n*g, hd] queries against [B*nKv, len, hd] keys, one product (B = the lead dims)
      const B = lead.reduce((x, y) => x * y, 1), len = keys.k.shape[keys.k.rank - 2];
      const byHead = (t: tf.Tensor, rows: number, w: number) => t.reshape([B, rows, nKvHeads, w]).transpose([0, 2, 1, 3]).reshape([B * nKvHeads, rows * (w / hd), hd]);
      const out = block(byHead(q, n, g * hd), { k: byHead(keys.k, len, hd), v: byHead(keys.v, len, hd) }, a); // [B*nKv, n*g, hd]
      return out.reshape([B, nKvHeads, n, g * hd]).transpose([0, 2, 1, 3]).reshape([...lead, n, nHeads * hd]); // [..., n, nH*hd]
    }
    const kvHead = 'kvHead' in keys ? keys.kvHead : (h: number): KVHead => {
      const w = (t: tf.Tensor) => t.slice([...lead.map(() => 0), 0, h * hd], [...lead, t.shape[t.rank - 2], hd]);
      return { k: w(keys.k), v: w(keys.v) }; // [..., len, hd] each
    };
    const qb = q.reshape([...lead, n, nKvHeads, g * hd]); // [..., n, nKv, g*hd]
    const heads: tf.Tensor[] = [];
    for (let h = 0; h < nKvHeads; h++) {
      const qh = qb.slice([...lead.map(() => 0), 0, h, 0], [...lead, n, 1, g * hd]).reshape([...lead, n * g, hd]); // [..., n*g, hd]
      heads.push(block(qh, kvHead(h), a).reshape([...lead, n, g * hd])); // [..., n, g*hd]
    }
    return heads.length === 1 ? heads[0] : tf.concat(heads, -1); // [..., n, nH*hd]
  });
}

/** One KV head's block: queries `[..., n*g, hd]` (row i*g + gi) -> `[..., n*g, hd]`. */
function block(qh: tf.Tensor, kv: KVHead, a: GroupedQueryArgs): tf.Tensor {
  const visible = (): Visibility => {
    if (!a.vis) throw new Error('[groupedQueryAttention] vis (null) is needed without additiveMask or with k (not kT)');
    return a.vis;
  };
  const scores = 'kT' in kv ? tf.mul(tf.matMul(qh, kv.kT), a.scale) // [..., n*g, len]; masked scores are replaced, not added to
    : maskedScores(qh, kv.k, visible(), a.scale); // its autodiff never meets a masked NaN
  return a.additiveMask ? tf.matMul(tf.softmax(tf.add(scores, a.additiveMask)), kv.v) // [..., n*g, hd]
    : maskedAttention(scores, kv.v, visible()); // masked keys cannot reach it, NaN included
}
