/**
 * Composite reference of ProjectionMatMul: `op(a) · op(b) (+ bias)` in plain tfjs ops, what every
 * backend without the fused kernel runs and what the kernel's specs compare against.
 *
 * @example
 * const y = projectionMatMulReference(x, w, { transposeA: false, transposeB: true }, bias); // [M, N]
 */
import * as tf from '@tensorflow/tfjs';

import type { ProjectionMatMulAttrs } from '../kernel_names.js';

export function projectionMatMulReference(a: tf.Tensor2D, b: tf.Tensor2D, attrs: ProjectionMatMulAttrs, bias?: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const y = tf.matMul(a, b, attrs.transposeA, attrs.transposeB) as tf.Tensor2D; // [M, N]
    return bias ? tf.add(y, bias) as tf.Tensor2D : y;
  });
}
