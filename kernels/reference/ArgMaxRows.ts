/** Composite reference of ArgMaxRows (kernels/kernel_names.ts): NaN made -inf, then tf.argMax (first index on ties). */
import * as tf from '@tensorflow/tfjs';

export function argMaxRowsReference(x: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const clean = tf.where(tf.isNaN(x), tf.fill(x.shape, -Infinity), x); // [R, V]
    return tf.argMax(clean, 1) as tf.Tensor1D; // [R] int32
  });
}
