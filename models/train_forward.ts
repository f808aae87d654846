/**
 * The no-cache training forward of a decoder LM over packed sequences: the model-level half of
 * the ragged training path (lib/training/ragged_train.ts holds the attention layer's half). Each
 * block runs its one packed forward (`DecoderBlock.forwardPacked`), the same code as generation.
 */
import * as tf from '@tensorflow/tfjs';
import { projectionMatMul } from '../kernels/projection_matmul.js';
import { check } from '../lib/errors.js';
import { checkRowOffsets } from '../lib/training/ragged_train.js';
import type { DecoderForCausalLM } from './decoder_lm.js';
import type { SwiGLUMLP } from './layers/swiglu_mlp.js';

/**
 * A whole decoder LM over packed token ids, no cache: logits `[T, vocab]` of every row.
 * The embedding is a one-hot matMul, whose gradient every backend has (wasm lacks the
 * UnsortedSegmentSum that gather's gradient needs).
 *
 * @example
 * const logits = modelRaggedTrain(model, new Int32Array([1, 5, 6, 2, 1, 7, 2]), [0, 4, 7]); // [7, vocab]
 */
export function modelRaggedTrain(model: DecoderForCausalLM, ids: Int32Array | readonly number[], rowOffsets: Int32Array | readonly number[]): tf.Tensor2D {
  const vocab = model.config.vocabSize;
  for (let i = 0; i < ids.length; i++) {
    check(Number.isInteger(ids[i]) && ids[i] >= 0 && ids[i] < vocab, 'modelRaggedTrain', () => `ids[${i}] (${ids[i]}) must be in [0, ${vocab})`);
  }
  const r = checkRowOffsets(rowOffsets, ids.length, 'modelRaggedTrain');
  return tf.tidy(() => {
    const oneHot = tf.oneHot(tf.tensor1d(Int32Array.from(ids), 'int32'), vocab); // [T, vocab]
    let h = projectionMatMul(oneHot as tf.Tensor2D, model.embedTable.read() as tf.Tensor2D); // [T, hidden]
    for (const block of model.blocks) h = block.callRaggedTrain(h, r); // [T, hidden]
    const head = tf.transpose(model.lmHead.weight.read()) as tf.Tensor2D; // [hidden, vocab]
    return projectionMatMul(model.norm.call(h) as tf.Tensor2D, head); // [T, vocab]
  });
}

/**
 * Kept name: the MLP's own packed call `x [T, hidden]` -> `[T, hidden]` (projectionMatMul ops, with
 * their gradients, under a gradient tape). It was a second copy of the MLP forward for training.
 */
export function swiGluTrain(mlp: SwiGLUMLP, x: tf.Tensor2D): tf.Tensor2D {
  return mlp.callWithResidual(x);
}
