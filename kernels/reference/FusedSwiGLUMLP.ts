/**
 * Composite reference of FusedSwiGLUMLP in plain tfjs ops:
 * `residual + (silu(x · gate + gateBias) * (x · up + upBias)) · down + downBias`.
 *
 * @example
 * const y = fusedSwiGluMlpReference({ x, gate, up, down }); // [T, H]
 */
import * as tf from '@tensorflow/tfjs';

import { projectionMatMulReference } from './ProjectionMatMul.js';

/** The inputs of FusedSwiGLUMLP (shapes in kernels/kernel_names.ts). */
export interface SwiGLUInputs {
  x: tf.Tensor2D;
  gate: tf.Tensor2D;
  up: tf.Tensor2D;
  down: tf.Tensor2D;
  gateBias?: tf.Tensor;
  upBias?: tf.Tensor;
  downBias?: tf.Tensor;
  residual?: tf.Tensor2D;
}

export function fusedSwiGluMlpReference(i: SwiGLUInputs): tf.Tensor2D {
  return tf.tidy(() => {
    const mm = (a: tf.Tensor2D, b: tf.Tensor2D, bias?: tf.Tensor) => projectionMatMulReference(a, b, bias, { transposeA: false, transposeB: false }, [a.shape[0], b.shape[1], a.shape[1]]);
    const g = mm(i.x, i.gate, i.gateBias); // [T, I]
    const h = tf.mul(tf.mul(g, tf.sigmoid(g)), mm(i.x, i.up, i.upBias)) as tf.Tensor2D; // [T, I] silu(gate) * up
    const y = mm(h, i.down, i.downBias); // [T, H]
    return i.residual ? tf.add(i.residual, y) as tf.Tensor2D : y;
  });
}
