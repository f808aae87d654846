/**
 * The layer's no-cache path on padded input `[batch, seq, hidden]` (each row one sequence,
 * positions 0 .. seq-1, mask within the row). Plain tfjs ops, so it is differentiable:
 * this is what `tf.sequential`, functional models and `model.fit` run.
 */
import * as tf from '@tensorflow/tfjs';
import { groupedQueryAttention } from '../../kernels/reference/grouped_attention.js';
import { visibility } from '../../kernels/reference/masked_attention.js';
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
 * GQA through the one composite block (kernels/reference/grouped_attention.ts): scores
 * `[B*nKv, S*g, S]` in one batched product, no repeated K/V. (Tried: one `[B, S*g, S]` product
 * per KV head, 1.3x slower on tfjs-cpu for B 4, S 64.)
 */
export function attentionPadded(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, batch: number, seq: number, s: PaddedAttentionShape): tf.Tensor2D {
  return tf.tidy(() => {
    const { nHeads, nKvHeads, headDim: hd } = s;
    const vis = visibility(s.mask, 0, seq, nHeads / nKvHeads, seq); // [S*g, S]
    const kb = k.reshape([batch, seq, nKvHeads * hd]), vb = v.reshape([batch, seq, nKvHeads * hd]); // [B, S, nKv*hd]
    const out = groupedQueryAttention(q.reshape([batch, seq, nHeads * hd]), { k: kb, v: vb }, { nHeads, nKvHeads, headDim: hd, scale: s.scale, vis }); // [B, S, nH*hd]
    return out.reshape([batch * seq, nHeads * hd]) as tf.Tensor2D; // [B*S, nH*hd]
  });
}
