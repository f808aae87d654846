/**
 * Dispatch of the whole-model inference ops (issue 11): the kernel registered for the active
 * backend when there is one (and `ATTENTION_ROPE_FORCE_COMPOSITE` is off), else the composite
 * reference beside it (kernels/reference/<Name>.ts). Shapes are checked here, once for every backend.
 *
 * @example
 * const y = denseMatMul(x, w, { residual: h });   // [M, N] = h + x [M, K] · w [N, K]ᵀ
 * const ids = argMaxRows(logits);                 // int32 [R]
 */
import * as tf from '@tensorflow/tfjs';
import { check } from '../core/errors.js';
import {
  ArgMaxRows, DenseMatMul, type DenseMatMulAttrs, RmsNorm, type RmsNormAttrs, SWIGLU_BLOCK, SwiGluMlp, type SwiGluMlpAttrs,
} from './kernel_names.js';
import { hasFusedKernel } from './ops.js';
import { argMaxRowsReference } from './reference/ArgMaxRows.js';
import { denseMatMulReference } from './reference/DenseMatMul.js';
import { rmsNormReference } from './reference/RmsNorm.js';
import { swiGluMlpReference } from './reference/SwiGluMlp.js';

const shapeIs = (t: tf.Tensor, shape: number[]) => t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);

function checkShape(where: string, name: string, t: tf.Tensor | undefined, shape: number[]): void {
  if (t === undefined) return;
  check(t instanceof tf.Tensor && !t.isDisposed, where, () => `${name} must be a live tensor`);
  check(t.dtype === 'float32', where, () => `${name} dtype (${t.dtype}) must be float32`);
  check(shapeIs(t, shape), where, () => `${name} shape [${t.shape}] must be [${shape}]`);
}

/** `x [M, K] · w [N, K]ᵀ (+ bias [N]) (+ residual [M, N])` -> `[M, N]`. */
export function denseMatMul(x: tf.Tensor2D, w: tf.Tensor2D, o: { bias?: tf.Tensor1D; residual?: tf.Tensor2D } = {}): tf.Tensor2D {
  const W = 'denseMatMul';
  check(x instanceof tf.Tensor && x.rank === 2 && w instanceof tf.Tensor && w.rank === 2, W,
    () => `x and w must be 2-D tensors, got ranks ${x?.rank} and ${w?.rank}`);
  const [M, K] = x.shape;
  const N = w.shape[0];
  checkShape(W, 'x', x, [M, K]);
  checkShape(W, 'w', w, [N, K]);
  checkShape(W, 'bias', o.bias, [N]);
  checkShape(W, 'residual', o.residual, [M, N]);
  if (!hasFusedKernel(DenseMatMul)) return denseMatMulReference(x, w, o.bias, o.residual);
  const attrs: DenseMatMulAttrs = { hasBias: o.bias !== undefined, hasResidual: o.residual !== undefined };
  const inputs: tf.NamedTensorMap = { x, w };
  if (o.bias) inputs.bias = o.bias;
  if (o.residual) inputs.residual = o.residual;
  return tf.engine().runKernel(DenseMatMul, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/** Row-wise RMSNorm of x `[M, H]` with weight `[H]`. */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  const W = 'rmsNorm';
  check(x instanceof tf.Tensor && x.rank === 2, W, () => `x must be a 2-D tensor, got rank ${x?.rank}`);
  checkShape(W, 'x', x, x.shape);
  checkShape(W, 'weight', weight, [x.shape[1]]);
  check(Number.isFinite(eps) && eps >= 0, W, () => `eps (${eps}) must be a finite number >= 0`);
  if (!hasFusedKernel(RmsNorm)) return rmsNormReference(x, weight, eps);
  const attrs: RmsNormAttrs = { eps };
  return tf.engine().runKernel(RmsNorm, { x, weight }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

export interface SwiGluMlpOptions {
  gateUpBias?: tf.Tensor1D;
  downBias?: tf.Tensor1D;
  residual?: tf.Tensor2D;
}

/** `(residual +) down(silu(gate(x)) * up(x))` with the blocked gate/up packing of kernel_names.ts. */
export function swiGluMlp(x: tf.Tensor2D, gateUp: tf.Tensor2D, down: tf.Tensor2D, o: SwiGluMlpOptions = {}): tf.Tensor2D {
  const W = 'swiGluMlp';
  check(x instanceof tf.Tensor && x.rank === 2 && down instanceof tf.Tensor && down.rank === 2, W,
    () => `x and down must be 2-D tensors, got ranks ${x?.rank} and ${down?.rank}`);
  const [M, H] = x.shape;
  const I = down.shape[1];
  const Ip = Math.ceil(I / SWIGLU_BLOCK) * SWIGLU_BLOCK;
  checkShape(W, 'x', x, [M, H]);
  checkShape(W, 'gateUp', gateUp, [2 * Ip, H]);
  checkShape(W, 'down', down, [H, I]);
  check((o.gateUpBias === undefined) === (o.downBias === undefined), W, () => 'give both gateUpBias and downBias or neither');
  checkShape(W, 'gateUpBias', o.gateUpBias, [2 * Ip]);
  checkShape(W, 'downBias', o.downBias, [H]);
  checkShape(W, 'residual', o.residual, [M, H]);
  const attrs: SwiGluMlpAttrs = { intermediateSize: I, hasBias: o.gateUpBias !== undefined, hasResidual: o.residual !== undefined };
  if (!hasFusedKernel(SwiGluMlp)) return swiGluMlpReference(x, gateUp, down, attrs, o.gateUpBias, o.downBias, o.residual);
  const inputs: tf.NamedTensorMap = { x, gateUp, down };
  if (o.gateUpBias) { inputs.gateUpBias = o.gateUpBias; inputs.downBias = o.downBias!; }
  if (o.residual) inputs.residual = o.residual;
  return tf.engine().runKernel(SwiGluMlp, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/** Index of each row's largest value (int32 `[R]`; first on ties, NaN never wins). */
export function argMaxRows(x: tf.Tensor2D): tf.Tensor1D {
  const W = 'argMaxRows';
  check(x instanceof tf.Tensor && x.rank === 2, W, () => `x must be a 2-D tensor, got rank ${x?.rank}`);
  checkShape(W, 'x', x, x.shape);
  check(x.shape[1] > 0, W, () => `x must have at least one column, got shape [${x.shape}]`);
  if (!hasFusedKernel(ArgMaxRows)) return argMaxRowsReference(x);
  return tf.engine().runKernel(ArgMaxRows, { x }, {}) as tf.Tensor1D;
}
