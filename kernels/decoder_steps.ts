/**
 * Fused decoder-block steps at inference: `fusedRmsNorm` (FusedRMSNorm) and `fusedSwiGluMlp`
 * (FusedSwiGLUMLP, the gated MLP with its residual). On `cpu` and `wasm` with the native addon (on `wasm`
 * without it: the WebAssembly SIMD module, kernels/wasm/simd_module.ts),
 * while no gradient is being recorded and `ATTENTION_ROPE_FORCE_COMPOSITE` is off, each is one
 * kernel call; otherwise the plain tfjs composite (kernels/reference/), so training and every
 * other backend keep gradients and their own kernels.
 *
 * @example
 * const n = fusedRmsNorm(h, w, { eps: 1e-5, center: false });            // [T, H]
 * const h2 = fusedSwiGluMlp({ x: n, gate, up, down, residual: h });        // [T, H] = h + mlp(n)
 */
import * as tf from '@tensorflow/tfjs';

import { activeNative } from './cpu/native.js';
import { FusedRMSNorm, type FusedRMSNormAttrs, FusedSwiGLUMLP } from './kernel_names.js';
import { hasFusedKernel } from './ops.js';
import { registerAllKernels } from './register_all.js';
import { projectionMatMul } from './projection_matmul.js';
import { wasmSimdActive } from './wasm/simd_module.js';
import { fusedRmsNormReference } from './reference/FusedRMSNorm.js';
import type { SwiGLUInputs } from './reference/FusedSwiGLUMLP.js';

/** Registers the cpu and wasm kernels (kernels/register_all.ts; idempotent, the ops do it on first use). */
export function registerDecoderStepKernels(): void {
  registerAllKernels();
}

/** True while tfjs records operations for a gradient (tf.grad, optimizer.minimize, model.fit). */
function recordingGradients(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}

/** True when `kernelName` runs fused here: cpu or wasm, the addon's function present, composite not forced, no gradient taped. */
export function decoderStepFused(kernelName: typeof FusedRMSNorm | typeof FusedSwiGLUMLP): boolean {
  registerDecoderStepKernels();
  const backend = tf.getBackend();
  if (backend !== 'cpu' && backend !== 'wasm') return false;
  const native = activeNative();
  const fn = kernelName === FusedRMSNorm ? native?.rmsNorm : native?.swiglu;
  const compiled = typeof fn === 'function' || wasmSimdActive(typeof fn === 'function'); // the addon, or wasm's SIMD module
  return compiled && hasFusedKernel(kernelName) && !recordingGradients();
}

const allFloat = (ts: (tf.Tensor | null | undefined)[]) => ts.every((t) => !t || t.dtype === 'float32');

/** RMSNorm (LayerNorm with `center`) over the last axis of x (any rank); weight `[H]` or null. */
export function fusedRmsNorm(x: tf.Tensor, weight: tf.Tensor | null, attrs: FusedRMSNormAttrs): tf.Tensor {
  if (x.rank < 1 || !allFloat([x, weight]) || !decoderStepFused(FusedRMSNorm)) return fusedRmsNormReference(x, weight, attrs);
  const H = x.shape[x.rank - 1];
  return tf.tidy(() => {
    const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, H]); // [T, H]
    const inputs: tf.NamedTensorMap = weight ? { x: x2, weight } : { x: x2 };
    const y = tf.engine().runKernel(FusedRMSNorm, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor; // [T, H]
    return x.rank === 2 ? y : tf.reshape(y, x.shape);
  });
}

/** `residual + down(silu(x · gate + gateBias) * (x · up + upBias)) + downBias`, x `[T, H]`. */
export function fusedSwiGluMlp(i: SwiGLUInputs): tf.Tensor2D {
  const ts = [i.x, i.gate, i.up, i.down, i.gateBias, i.upBias, i.downBias, i.residual];
  if (!allFloat(ts) || !decoderStepFused(FusedSwiGLUMLP)) {
    // differentiable path: projectionMatMul (native sgemm on cpu / wasm, gradient registered)
    return tf.tidy(() => {
      const g = projectionMatMul(i.x, i.gate, { bias: i.gateBias }); // [T, I]
      const h = tf.mul(tf.mul(g, tf.sigmoid(g)), projectionMatMul(i.x, i.up, { bias: i.upBias })) as tf.Tensor2D; // [T, I] silu(gate) * up
      const y = projectionMatMul(h, i.down, { bias: i.downBias }); // [T, H]
      return i.residual ? tf.add(i.residual, y) as tf.Tensor2D : y;
    });
  }
  const inputs: tf.NamedTensorMap = { x: i.x, gate: i.gate, up: i.up, down: i.down };
  for (const k of ['gateBias', 'upBias', 'downBias', 'residual'] as const) if (i[k]) inputs[k] = i[k]!;
  return tf.engine().runKernel(FusedSwiGLUMLP, inputs, {}) as tf.Tensor2D;
}
