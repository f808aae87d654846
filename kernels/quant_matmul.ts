/**
 * `quantMatMul(x, w, attrs)`: a projection with packed quantized (or half-precision) weights,
 * `quantize(x) · dequantize(W)ᵀ (+ bias)` -> `[T, outDim]`. Runs the QuantMatMul kernel where the
 * backend has one (cpu: native or TypeScript; wasm; webgpu) and `ATTENTION_ROPE_FORCE_COMPOSITE` is off,
 * else its composite reference (kernels/reference/QuantMatMul.ts).
 *
 * Gradient (QLoRA style): the packed weights are frozen (no gradient); x gets `dy · dequantize(W)`
 * (the activation quantizer passes gradients straight through), the bias `Σ_rows dy`.
 *
 * @example
 * const y = quantMatMul(x, { weight, scale }, { weightFormat: 'e4m3', weightScale: 'rowwise', blockRows: 0, blockCols: 0,
 *   activation: 'e4m3_token', actGroup: 0, inputScale: 0, weightScale2: 1, inDim: 256, outDim: 512 }); // [T, 512]
 */
import * as tf from '@tensorflow/tfjs';

import { check } from '../core/errors.js';
import { checkQuantMatMulInputs } from './cpu/QuantMatMul.js';
import { QuantMatMul, type QuantMatMulAttrs } from './kernel_names.js';
import { hasFusedKernel } from './ops.js';
import { dequantizeWeightReference, quantMatMulReference } from './reference/QuantMatMul.js';

const W = 'quantMatMul';

export interface QuantTensors {
  /** int32 packed words (layout: kernels/kernel_names.ts QuantMatMul). */
  weight: tf.Tensor;
  scale?: tf.Tensor;
  zeros?: tf.Tensor;
  gIdx?: tf.Tensor;
  bias?: tf.Tensor;
}

/** quantize(x `[T, inDim]`) · dequantize(W)ᵀ (+ bias) -> `[T, outDim]`. */
export function quantMatMul(x: tf.Tensor2D, w: QuantTensors, attrs: QuantMatMulAttrs): tf.Tensor2D {
  check(x instanceof tf.Tensor && x.dtype === 'float32', W, () => `x must be a float32 tensor, got ${x instanceof tf.Tensor ? x.dtype : typeof x}`);
  checkQuantMatMulInputs(W, x, { weight: w.weight, scale: w.scale, zeros: w.zeros, gIdx: w.gIdx, bias: w.bias }, attrs);
  check(w.weight.dtype === 'int32', W, () => `weight must hold int32 packed words, got ${w.weight.dtype}`);
  if (!hasFusedKernel(QuantMatMul)) return quantMatMulReference(x, w.weight, w.scale, w.zeros, w.gIdx, w.bias, attrs);
  // Every input present (a one-element placeholder where the format has none): the gradient saves them by name.
  const placeholders: tf.Tensor[] = [];
  const orPlaceholder = (t: tf.Tensor | undefined, dtype: 'float32' | 'int32') => {
    if (t) return t;
    const p = tf.zeros([1], dtype);
    placeholders.push(p);
    return p;
  };
  const inputs: tf.NamedTensorMap = { x, weight: w.weight, scale: orPlaceholder(w.scale, 'float32'),
    zeros: orPlaceholder(w.zeros, 'int32'), gIdx: orPlaceholder(w.gIdx, 'int32') };
  if (w.bias) inputs.bias = w.bias;
  try {
    return tf.engine().runKernel(QuantMatMul, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
  } finally {
    for (const p of placeholders) p.dispose();
  }
}

/** Straight-through gradient to x and the bias; the packed weights are frozen. */
export const quantMatMulGrad: tf.GradConfig = {
  kernelName: QuantMatMul,
  inputsToSave: ['weight', 'scale', 'zeros', 'gIdx'],
  gradFunc: (dys, saved, attrs) => {
    const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor2D; // [T, outDim]
    const a = attrs as unknown as QuantMatMulAttrs;
    const [weight, scale, zeros, gIdx] = saved;
    return {
      x: () => tf.matMul(dy, dequantizeWeightReference(weight, scale, zeros, gIdx, a), false, true), // [T, inDim]
      bias: () => tf.sum(dy, 0),
    };
  },
};
