/** Composite reference of DenseMatMul (kernels/kernel_names.ts): `x · wᵀ (+ bias) (+ residual)` in plain tfjs ops. */
import * as tf from '@tensorflow/tfjs';

export function denseMatMulReference(x: tf.Tensor2D, w: tf.Tensor2D, bias?: tf.Tensor1D, residual?: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    let y = tf.matMul(x, w, false, true) as tf.Tensor2D; // [M, N]
    if (bias) y = tf.add(y, bias);
    if (residual) y = tf.add(residual, y);
    return y;
  });
}
