/**
 * The ragged no-cache training path of one attention layer (the model-level forward is
 * `modelRaggedTrain` in models/train_forward.ts): sequences of different lengths packed one after another
 * (`[T, hidden]` rows plus `[batch + 1]` row offsets), positions 0.. in each, the layer's mask
 * within each sequence, no padding and no cache. Differentiable end to end: projections and
 * RoPE in plain ops, attention through `flashAttentionRagged` (fused kernel with a registered
 * gradient on cpu/wasm, composite elsewhere). Same weights and numbers as `layer.apply` on
 * each sequence alone.
 */
import * as tf from '@tensorflow/tfjs';
import { headRmsNorm } from '../../kernels/reference/rope.js';
import type { AttentionWithRope } from '../attention/attention_with_rope.js';
import { check } from '../errors.js';
import { flashAttentionRagged, ropeRagged } from '../../kernels/train_ops.js';

const W = 'attentionRaggedTrain';

/** Checks row offsets against T rows and returns them as an Int32Array. */
export function checkRowOffsets(rowOffsets: Int32Array | readonly number[], T: number, where = W): Int32Array {
  const r = Int32Array.from(rowOffsets);
  check(r.length >= 2, where, () => `rowOffsets must have batch + 1 >= 2 entries, got ${r.length}`);
  check(r[0] === 0, where, () => `rowOffsets must start at 0, got ${r[0]}`);
  for (let i = 1; i < r.length; i++) check(r[i] >= r[i - 1], where, () => `rowOffsets must not decrease, got ${r[i - 1]} then ${r[i]} at index ${i}`);
  check(r[r.length - 1] === T, where, () => `rowOffsets must end at the number of rows (${T}), got ${r[r.length - 1]}`);
  return r;
}

/** Position of every packed row within its own sequence: 0 .. n-1. `[T]` */
export function positionsFromOffsets(r: Int32Array): Int32Array {
  const pos = new Int32Array(r[r.length - 1]);
  for (let b = 0; b + 1 < r.length; b++) for (let i = r[b]; i < r[b + 1]; i++) pos[i] = i - r[b];
  return pos;
}

/**
 * One AttentionWithRope layer over packed rows, no cache: `[T, hidden]` -> `[T, hidden]`.
 *
 * @example
 * const y = attentionRaggedTrain(attn, tf.randomNormal([8, 64]), [0, 5, 8]); // two sequences: 5 and 3 rows
 * const g = tf.grad((x) => attentionRaggedTrain(attn, x as tf.Tensor2D, [0, 5, 8]).sum())(x);
 */
export function attentionRaggedTrain(layer: AttentionWithRope, hidden: tf.Tensor2D, rowOffsets: Int32Array | readonly number[]): tf.Tensor2D {
  check(hidden instanceof tf.Tensor && hidden.rank === 2, W, () => `hidden must be [T, hiddenSize], got ${hidden instanceof tf.Tensor ? `[${hidden.shape}]` : typeof hidden}`);
  const o = layer.opts;
  check(hidden.shape[1] === o.hiddenSize, W, () => `hidden size (${hidden.shape[1]}) must equal hiddenSize (${o.hiddenSize})`);
  const r = checkRowOffsets(rowOffsets, hidden.shape[0]);
  const tables = layer.rope.tables();
  let longest = 0;
  for (let b = 0; b + 1 < r.length; b++) longest = Math.max(longest, r[b + 1] - r[b]);
  check(longest <= tables.maxPositions, W, () => `a sequence of ${longest} rows exceeds the rope table's ${tables.maxPositions} positions`);
  if (!layer.built) layer.build([null, o.hiddenSize]);
  return tf.tidy(() => {
    let [q, k, v] = layer.projectQkvParts(hidden); // [T, nH*hd], [T, nKv*hd] x2
    if (o.useQkNorm) {
      q = headRmsNorm(q, layer.qNormWeight!.read() as tf.Tensor1D, o.headDim, o.rmsNormEps);
      k = headRmsNorm(k, layer.kNormWeight!.read() as tf.Tensor1D, o.headDim, o.rmsNormEps);
    }
    const positions = positionsFromOffsets(r);
    q = ropeRagged(q, tables, positions);
    k = ropeRagged(k, tables, positions);
    const attn = flashAttentionRagged(q, k, v, {
      nHeads: o.numAttentionHeads, nKvHeads: o.numKeyValueHeads, headDim: o.headDim, scale: o.scale, mask: layer.mask, rowOffsets: r,
    }); // [T, nH*hd]
    return layer.oProj!.apply(attn); // [T, hidden]
  });
}
