/** Helpers of the gradient specs: seeded layers, a host-summed loss, central finite differences. */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import type { AttentionWithRopeArgs } from '../../lib/attention/options';
import { randomArray } from '../support/random_layer';

/** A tiny layer (hidden 16, head dim 8) with seeded random weights, every weight trainable. */
export function tinyLayer(over: Partial<AttentionWithRopeArgs> & { rope?: AttentionWithRopeArgs['rope'] }, seed = 1): AttentionWithRope {
  const nH = over.numAttentionHeads ?? 4, nKv = over.numKeyValueHeads ?? 2, headDim = 8;
  const layer = new AttentionWithRope({
    rope: { headDim, theta: 10000, maxSeqLen: 32 }, numAttentionHeads: nH, numKeyValueHeads: nKv, hiddenSize: 16,
    kvParams: { nKvHeads: nKv, headDim, pageSize: 4, numLayers: 1, numPages: 16 }, ...over,
  });
  layer.build([null, 16]);
  tf.tidy(() => layer.weights.forEach((w, i) => {
    const n = w.shape.reduce((a, b) => a! * b!, 1)!;
    const isNorm = /norm/.test(w.name);
    w.write(tf.tensor(randomArray(n, seed * 100 + i, isNorm ? 0.3 : 0.4).map((x) => (isNorm ? 1 + x : x)), w.shape as number[]));
  }));
  return layer;
}

/** max |a - b| / max |b| */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / Math.max(den, 1e-12);
}

/** sum(out * R) on the host in float64 (so finite differences see only float32 rounding of out). */
export function hostLoss(out: tf.Tensor, R: Float32Array): number {
  const v = out.dataSync();
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * R[i];
  return s;
}

/**
 * Central finite differences of `f` along two directions of variable `x`: the analytic gradient's
 * own direction and a random one (zero where `dirMask` is 0). Returns the worst |fd - g·u| / (|g| |u|).
 */
export function fdCheck(f: () => number, x: tf.Variable | tf.LayerVariable, grad: Float32Array, seed: number, eps = 1e-2, dirMask?: Float32Array): number {
  const read = () => (x instanceof tf.Variable ? x : x.read()) as tf.Variable;
  const base = Float32Array.from(read().dataSync());
  const gNorm = Math.hypot(...grad);
  if (gNorm === 0) return 0;
  const dirs = [grad.map((g) => g / gNorm), randomArray(grad.length, seed, 1).map((u, i) => (dirMask ? u * dirMask[i] : u))];
  let worst = 0;
  for (const u of dirs) {
    const uNorm = Math.hypot(...u);
    const at = (s: number) => {
      read().assign(tf.tensor(base.map((b, i) => b + s * eps * u[i]), read().shape));
      return f();
    };
    const fd = (at(1) - at(-1)) / (2 * eps);
    let an = 0;
    for (let i = 0; i < grad.length; i++) an += grad[i] * u[i];
    worst = Math.max(worst, Math.abs(fd - an) / (gNorm * uNorm));
  }
  read().assign(tf.tensor(base, read().shape));
  return worst;
}
