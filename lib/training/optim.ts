/** Training-loop helpers: global-norm gradient clipping and a warmup + cosine learning-rate schedule. */
import * as tf from '@tensorflow/tfjs';

/**
 * Scales every gradient by min(1, maxNorm / globalNorm); returns the clipped map and the norm.
 * Disposes the input gradients.
 */
export function clipByGlobalNorm(grads: tf.NamedTensorMap, maxNorm: number): { grads: tf.NamedTensorMap; norm: number } {
  const names = Object.keys(grads);
  const norm = tf.tidy(() => Math.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n])))).dataSync()[0]));
  if (!(norm > maxNorm)) return { grads, norm };
  const scale = maxNorm / norm;
  const out: tf.NamedTensorMap = {};
  for (const n of names) out[n] = tf.mul(grads[n], scale);
  tf.dispose(grads);
  return { grads: out, norm };
}

/** Linear warmup over `warmup` steps, then cosine decay to `floor` x peak at `total`. */
export function warmupCosine(step: number, total: number, peak: number, warmup: number, floor = 0.1): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const t = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return peak * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * t)));
}

/** Sets the learning rate of a tf.train optimizer (sgd, momentum, adam, adamax, rmsprop, adagrad). */
export function setLearningRate(opt: tf.Optimizer, lr: number): void {
  (opt as unknown as { learningRate: number }).learningRate = lr;
}
