/**
 * Composite reference of FusedRMSNorm in plain tfjs ops (also the differentiable path of the
 * RMSNorm layer): `(x - mean) / sqrt(mean((x - mean)²) + eps) · weight`, mean = 0 unless `center`.
 *
 * @example
 * const y = fusedRmsNormReference(tf.randomNormal([3, 64]), tf.ones([64]), { eps: 1e-5, center: false }); // [3, 64]
 */
import * as tf from '@tensorflow/tfjs';

import type { FusedRMSNormAttrs } from '../kernel_names.js';

export function fusedRmsNormReference(x: tf.Tensor, weight: tf.Tensor | null, attrs: FusedRMSNormAttrs): tf.Tensor {
  return tf.tidy(() => {
    let v = x; // [..., H]
    if (attrs.center) v = tf.sub(v, tf.mean(v, -1, true));
    const ms = tf.mean(tf.square(v), -1, true); // [..., 1]
    const y = tf.mul(v, tf.rsqrt(tf.add(ms, attrs.eps))); // [..., H]
    return weight ? tf.mul(y, weight) : y;
  });
}
