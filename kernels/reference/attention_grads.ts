/**
 * Backward passes written as plain tfjs ops (no nested tape: a gradient function must not call
 * tf.grads, which would reset the tape of the backward pass it runs in). They are the composite
 * references' gradients, derived by hand:
 *   S = scale·Q·Kᵀ + M, P = softmax(S), O = P·V
 *   dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)), dQ = scale·dS·K, dK = scale·dSᵀ·Q
 *   y = x·w·r, r = (mean(x²) + eps)^-1/2:  dx = r·(w ⊙ g) − r³·x·mean(w ⊙ g ⊙ x),  dw = Σ g ⊙ x·r
 */
import * as tf from '@tensorflow/tfjs';
import type { MaskSpec } from '../../core/types.js';
import { maskedMatMul, maskedSoftmax, type Visibility, visibility } from './masked_attention.js';

export interface HeadBlock {
  /** `[n*g, hd]` queries of one KV head (row i*g + gi). */
  q: tf.Tensor2D;
  /** `[len, hd]` */
  k: tf.Tensor2D;
  v: tf.Tensor2D;
  /** `[n*g, hd]` gradient of the block's output. */
  dy: tf.Tensor2D;
  /** Which keys each query row sees `[n*g, len]`. */
  mask: Visibility;
  scale: number;
}

/**
 * dQ, dK, dV of one block. Masked pairs contribute exactly nothing, NaN and Inf included
 * (masked_attention.ts): dS is 0 there by tf.where, and each product by P or dS zeroes the
 * non-finite rows it must not see.
 */
export function attentionBlockBackward(b: HeadBlock, wantKv: boolean): { dq: tf.Tensor2D; dk?: tf.Tensor2D; dv?: tf.Tensor2D } {
  const vis = b.mask;
  const p = maskedSoftmax(tf.mul(tf.matMul(b.q, b.k, false, true), b.scale), vis) as tf.Tensor2D; // [n*g, len]
  const o = maskedMatMul(p, b.v, vis.f32); // [n*g, hd]
  const dp = tf.matMul(b.dy, b.v, false, true); // [n*g, len]
  const d = tf.sum(tf.mul(b.dy, o), 1, true); // [n*g, 1]
  const ds = tf.where(vis.bool, tf.mul(p, tf.sub(dp, d)), tf.scalar(0)) as tf.Tensor2D; // [n*g, len]
  const dq = tf.mul(maskedMatMul(ds, b.k, vis.f32), b.scale) as tf.Tensor2D; // [n*g, hd]
  if (!wantKv) return { dq };
  const visT = tf.transpose(vis.f32) as tf.Tensor2D; // [len, n*g]
  return {
    dq,
    dk: tf.mul(maskedMatMul(ds, b.q, visT, true), b.scale) as tf.Tensor2D, // [len, hd]
    dv: maskedMatMul(p, b.dy, visT, true) as tf.Tensor2D, // [len, hd]
  };
}

/** Visibility `[n*g, len]` of queries at start..start+n-1. */
export function maskTensor(mask: MaskSpec, start: number, n: number, g: number, len: number): Visibility {
  return visibility(mask, start, n, g, len);
}

/** `[n, nH*hd]` rows -> `[nKv]` blocks `[n*g, hd]`. */
export function queryBlocks(x: tf.Tensor2D, nKv: number, g: number, hd: number): tf.Tensor2D[] {
  const n = x.shape[0];
  const r = x.reshape([n, nKv, g * hd]);
  return Array.from({ length: nKv }, (_, h) => r.slice([0, h, 0], [n, 1, g * hd]).reshape([n * g, hd]) as tf.Tensor2D);
}

/** Inverse of queryBlocks: `[nKv]` blocks `[n*g, hd]` -> `[n, nH*hd]`. */
export function fromQueryBlocks(blocks: tf.Tensor2D[], n: number, g: number, hd: number): tf.Tensor2D {
  const parts = blocks.map((b) => b.reshape([n, g * hd]));
  return (parts.length === 1 ? parts[0] : tf.concat(parts, 1)) as tf.Tensor2D;
}

/** Backward of per-head RMSNorm y = x·r·w over `[T, H*hd]`: returns dx and dw. */
export function headRmsNormBackward(x: tf.Tensor2D, w: tf.Tensor1D, dy: tf.Tensor2D, hd: number, eps: number): { dx: tf.Tensor2D; dw: tf.Tensor1D } {
  const [t, width] = x.shape;
  const h = x.reshape([t, width / hd, hd]); // [T, H, hd]
  const g = dy.reshape([t, width / hd, hd]);
  const r = tf.rsqrt(tf.add(tf.mean(tf.square(h), -1, true), eps)); // [T, H, 1]
  const gw = tf.mul(g, w); // [T, H, hd]
  const dx = tf.sub(tf.mul(gw, r), tf.mul(tf.mul(h, tf.pow(r, 3)), tf.mean(tf.mul(gw, h), -1, true)));
  const dw = tf.sum(tf.mul(g, tf.mul(h, r)), [0, 1]) as tf.Tensor1D; // [hd]
  return { dx: dx.reshape([t, width]) as tf.Tensor2D, dw };
}
