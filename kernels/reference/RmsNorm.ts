/** Composite reference of RmsNorm (kernels/kernel_names.ts), the same ops as models/layers/norm.ts. */
import * as tf from '@tensorflow/tfjs';

export function rmsNormReference(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  return tf.tidy(() => {
    const ms = tf.mean(tf.square(x), -1, true); // [M, 1]
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight) as tf.Tensor2D; // [M, H]
  });
}
