/**
 * Composite reference of SwiGluMlp (kernels/kernel_names.ts): unpacks the blocked gate/up matrix
 * and runs the same ops as models/layers/swiglu_mlp.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { SWIGLU_BLOCK, type SwiGluMlpAttrs } from '../kernel_names.js';

/** Gate and up rows `[I, H]` each (or `[I]` biases) out of the blocked packing. */
export function unpackGateUp<T extends tf.Tensor>(gateUp: T, intermediateSize: number): [T, T] {
  return tf.tidy(() => {
    const rest = gateUp.shape.slice(1);
    const blocks = gateUp.shape[0] / (2 * SWIGLU_BLOCK);
    const b = gateUp.reshape([blocks, 2, SWIGLU_BLOCK, ...rest]); // [blocks, 2, 64, ...]
    const part = (i: number) => tf.slice(tf.gather(b, i, 1).reshape([blocks * SWIGLU_BLOCK, ...rest]), 0, intermediateSize) as T;
    return [part(0), part(1)];
  });
}

export function swiGluMlpReference(
  x: tf.Tensor2D, gateUp: tf.Tensor2D, down: tf.Tensor2D, attrs: SwiGluMlpAttrs,
  gateUpBias?: tf.Tensor1D, downBias?: tf.Tensor1D, residual?: tf.Tensor2D,
): tf.Tensor2D {
  return tf.tidy(() => {
    const [gw, uw] = unpackGateUp(gateUp, attrs.intermediateSize); // [I, H] each
    let g = tf.matMul(x, gw, false, true) as tf.Tensor2D; // [M, I]
    let u = tf.matMul(x, uw, false, true) as tf.Tensor2D; // [M, I]
    if (gateUpBias) {
      const [gb, ub] = unpackGateUp(gateUpBias, attrs.intermediateSize); // [I] each
      g = tf.add(g, gb); u = tf.add(u, ub);
    }
    const h = tf.mul(tf.mul(g, tf.sigmoid(g)), u) as tf.Tensor2D; // [M, I] silu(gate) * up
    let y = tf.matMul(h, down, false, true) as tf.Tensor2D; // [M, H]
    if (downBias) y = tf.add(y, downBias);
    return residual ? tf.add(residual, y) as tf.Tensor2D : y;
  });
}
