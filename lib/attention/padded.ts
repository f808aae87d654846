/**
 * The layer's no-cache path on padded input `[batch, seq, hidden]` (each row one sequence,
 * positions 0 .. seq-1, mask within the row). Plain tfjs ops, so it is differentiable:
 * this is what `tf.sequential`, functional models and `model.fit` run.
 */
import * as tf from '@tensorflow/tfjs';
import { maskedAttention, maskedScores, visibility } from '../../kernels/reference/masked_attention.js';
import { applyRope, ropeRows } from '../../kernels/reference/rope.js';
import type { RopeTables } from '../rope/rope_tables.js';
import type { MaskSpec } from '../types.js';

export interface PaddedAttentionShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  scale: number;
  mask: MaskSpec;
  tables: RopeTables;
}

/** Rotates q `[B*S, H*hd]` and k at positions 0..S-1 of every row. */
export function ropePadded(q: tf.Tensor2D, k: tf.Tensor2D, batch: number, seq: number, tables: RopeTables): [tf.Tensor2D, tf.Tensor2D] {
  const positions = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) for (let s = 0; s < seq; s++) positions[b * seq + s] = s;
  const { cos, sin } = ropeRows(tables, positions); // [B*S, rot/2]
  return [applyRope(q, cos, sin, tables), applyRope(k, cos, sin, tables)];
}

/**
 * Attention over rotated q `[B*S, nH*hd]`, k and v `[B*S, nKv*hd]` -> `[B*S, nH*hd]`.
 * GQA groups the query heads of each KV head: scores `[B*nKv, S*g, S]`, no repeated K/V.
 */
export function attentionPadded(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, batch: number, seq: number, s: PaddedAttentionShape): tf.Tensor2D {
  return tf.tidy(() => {
    const { nHeads, nKvHeads, headDim } = s;
    const g = nHeads / nKvHeads;
    const qg = q.reshape([batch, seq, nKvHeads, g, headDim]).transpose([0, 2, 1, 3, 4])
      .reshape([batch * nKvHeads, seq * g, headDim]); // [B*nKv, S*g, hd]
    const kh = k.reshape([batch, seq, nKvHeads, headDim]).transpose([0, 2, 1, 3])
      .reshape([batch * nKvHeads, seq, headDim]); // [B*nKv, S, hd]
    const vh = v.reshape([batch, seq, nKvHeads, headDim]).transpose([0, 2, 1, 3])
      .reshape([batch * nKvHeads, seq, headDim]); // [B*nKv, S, hd]
    const vis = visibility(s.mask, 0, seq, g, seq); // [S*g, S]
    const scores = maskedScores(qg, kh, vis, s.scale); // [B*nKv, S*g, S]; its autodiff never meets a masked NaN
    const out = maskedAttention(scores, vh, vis); // [B*nKv, S*g, hd]; a later token's NaN cannot reach earlier ones
    return out.reshape([batch, nKvHeads, seq, g, headDim]).transpose([0, 2, 1, 3, 4])
      .reshape([batch * seq, nHeads * headDim]) as tf.Tensor2D; // [B*S, nH*hd]
  });
}
