/**
 * Peer (a): attention written the way a tfjs user would, per sequence: slice q/k/v out of the
 * packed rows, RoPE with gathered cos/sin and rotate-half, concat onto the past K/V tensors,
 * repeat KV heads with tf.tile, tf.matMul with transposeB, additive causal mask, softmax, matMul.
 */
import * as tf from '@tensorflow/tfjs';

export interface CompositeSeq { start: number; numNew: number; pastK: tf.Tensor3D | null; pastV: tf.Tensor3D | null }

function rotateHalf(x: tf.Tensor3D): tf.Tensor3D {
  const [x1, x2] = tf.split(x, 2, -1);
  return tf.concat([tf.neg(x2), x1], -1) as tf.Tensor3D;
}

/** cosFull / sinFull: `[maxPositions, headDim]` (each half repeated). Returns `[T, nHeads * D]`. */
export function compositeAttention(qkv: tf.Tensor2D, seqs: CompositeSeq[], cosFull: tf.Tensor2D, sinFull: tf.Tensor2D,
  nH: number, nKv: number, D: number): tf.Tensor2D {
  return tf.tidy(() => {
    const outs: tf.Tensor2D[] = [];
    const G = nH / nKv;
    let row = 0;
    for (const s of seqs) {
      const n = s.numNew, ctx = s.start + n;
      const rows = qkv.slice([row, 0], [n, -1]); // [n, (nH + 2 nKv) * D]
      row += n;
      const q = rows.slice([0, 0], [n, nH * D]).reshape([n, nH, D]).transpose([1, 0, 2]) as tf.Tensor3D; // [nH, n, D]
      const k = rows.slice([0, nH * D], [n, nKv * D]).reshape([n, nKv, D]).transpose([1, 0, 2]) as tf.Tensor3D; // [nKv, n, D]
      const v = rows.slice([0, (nH + nKv) * D], [n, nKv * D]).reshape([n, nKv, D]).transpose([1, 0, 2]) as tf.Tensor3D;
      const pos = tf.range(s.start, ctx, 1, 'int32');
      const cos = tf.gather(cosFull, pos).expandDims(0); // [1, n, D]
      const sin = tf.gather(sinFull, pos).expandDims(0);
      const qr = q.mul(cos).add(rotateHalf(q).mul(sin)) as tf.Tensor3D;
      const kr = k.mul(cos).add(rotateHalf(k).mul(sin)) as tf.Tensor3D;
      const kAll = s.pastK ? tf.concat([s.pastK, kr], 1) : kr; // [nKv, ctx, D]
      const vAll = s.pastV ? tf.concat([s.pastV, v], 1) : v;
      const kRep = tf.tile(kAll.expandDims(1), [1, G, 1, 1]).reshape([nH, ctx, D]); // repeat_kv
      const vRep = tf.tile(vAll.expandDims(1), [1, G, 1, 1]).reshape([nH, ctx, D]);
      const scores = tf.matMul(qr, kRep, false, true).mul(1 / Math.sqrt(D)); // [nH, n, ctx]
      const qPos = tf.range(s.start, ctx, 1, 'int32').expandDims(1); // [n, 1]
      const kPos = tf.range(0, ctx, 1, 'int32').expandDims(0); // [1, ctx]
      const mask = tf.where(tf.lessEqual(kPos, qPos), tf.zeros([n, ctx]), tf.fill([n, ctx], -1e9)); // [n, ctx]
      const p = tf.softmax(scores.add(mask)); // [nH, n, ctx]
      const o = tf.matMul(p, vRep); // [nH, n, D]
      outs.push(o.transpose([1, 0, 2]).reshape([n, nH * D]) as tf.Tensor2D);
    }
    return tf.concat(outs, 0) as tf.Tensor2D;
  });
}
