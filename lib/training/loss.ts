/** Losses and metrics of next-token training over packed rows. */
import * as tf from '@tensorflow/tfjs';
import { check } from '../errors.js';

/**
 * Mean cross entropy of the rows whose weight is non-zero: logits `[T, vocab]`, targets `[T]`
 * (int32 token ids), weights `[T]` (0 to skip a row, e.g. prompt tokens).
 *
 * @example
 * const loss = maskedCrossEntropy(logits, targets, weights); // scalar
 */
export function maskedCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  const [T, vocab] = logits.shape;
  check(targets.shape[0] === T && weights.shape[0] === T, 'maskedCrossEntropy', () =>
    `targets [${targets.shape}] and weights [${weights.shape}] must have the ${T} rows of logits`);
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits); // [T, vocab]
    const nll = tf.neg(tf.sum(tf.mul(logp, tf.oneHot(targets, vocab)), 1)); // [T]
    return tf.div(tf.sum(tf.mul(nll, weights)), tf.maximum(tf.sum(weights), 1e-9)) as tf.Scalar;
  });
}

/** Fraction of weighted rows whose argmax is the target (host numbers). */
export function maskedAccuracy(logits: tf.Tensor2D, targets: Int32Array, weights: Float32Array): number {
  const pred = tf.tidy(() => tf.argMax(logits, 1).dataSync() as Int32Array);
  let hit = 0, n = 0;
  for (let i = 0; i < targets.length; i++) {
    if (weights[i] === 0) continue;
    n++;
    if (pred[i] === targets[i]) hit++;
  }
  return n === 0 ? 0 : hit / n;
}
