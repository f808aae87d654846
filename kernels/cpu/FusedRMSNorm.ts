/**
 * FusedRMSNorm for the `cpu` backend (and `wasm`, see kernels/wasm/FusedRMSNorm.ts): one pass per
 * row in the native addon (native/decoder_steps.cc, rows split over its threads), a TypeScript
 * loop without it. Replaces the five tfjs ops (and four intermediate tensors) of the composite.
 *
 * @example
 * const y = tf.engine().runKernel('FusedRMSNorm', { x, weight }, { eps: 1e-5, center: false }); // [T, H]
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { check } from '../../core/errors.js';
import { FusedRMSNorm, type FusedRMSNormAttrs } from '../kernel_names.js';
import { KernelIO } from './backend_io.js';
import { activeNative } from './native.js';
import { simdRmsNorm } from '../wasm/simd_calls.js';
import { wasmSimdFor } from '../wasm/simd_module.js';

/** Checks x `[T, H]` and weight `[H]`; returns `[T, H]`. */
export function fusedRmsNormDims(where: string, xShape: readonly number[], weightShape: readonly number[] | undefined): [number, number] {
  check(xShape.length === 2, where, () => `x must be 2-D [T, H], got shape [${xShape}]`);
  const [T, H] = xShape;
  if (weightShape) check(weightShape.length === 1 && weightShape[0] === H, where, () => `weight must be [${H}] (x's last axis), got shape [${weightShape}]`);
  return [T, H];
}

/** The same row pass in TypeScript (no addon). */
export function rmsNormRowsTs(x: Float32Array, w: Float32Array | null, out: Float32Array, T: number, H: number, eps: number, center: boolean): void {
  for (let t = 0; t < T; t++) {
    const o = t * H;
    let mean = 0;
    if (center) { for (let j = 0; j < H; j++) mean += x[o + j]; mean /= H; }
    let ss = 0;
    for (let j = 0; j < H; j++) { const d = x[o + j] - mean; ss += d * d; }
    const inv = 1 / Math.sqrt(ss / H + eps);
    for (let j = 0; j < H; j++) out[o + j] = (x[o + j] - mean) * inv * (w ? w[j] : 1);
  }
}

export function makeFusedRmsNormKernel(backendName: 'cpu' | 'wasm'): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { eps, center } = attrs as unknown as FusedRMSNormAttrs;
    const { x, weight } = inputs as { x?: TensorInfo; weight?: TensorInfo };
    const io: KernelIO = new KernelIO(FusedRMSNorm, backendName, backend);
    io.require(x, 'x');
    if (weight !== undefined) io.require(weight, 'weight');
    const [T, H] = fusedRmsNormDims(FusedRMSNorm, x.shape, weight?.shape);
    check(Number.isFinite(eps) && eps >= 0, FusedRMSNorm, () => `eps (${eps}) must be a finite number >= 0`);
    const out = io.output([T, H], true); // [T, H], every element written
    if (T * H === 0) return out;
    const simd = wasmSimdFor(backendName, backend, activeNative()?.rmsNorm !== undefined);
    if (simd) { simdRmsNorm(simd, x, weight ?? null, out, T, H, eps, center); return out; } // wasm without the addon
    const xv = io.input(x, 'x'), wv = weight ? io.input(weight, 'weight') : null, o = io.outputValues();
    const native = activeNative();
    if (native?.rmsNorm) native.rmsNorm(xv, wv, o, T, H, eps, center ? 1 : 0);
    else rmsNormRowsTs(xv, wv, o, T, H, eps, center);
    return out;
  };
}

export const fusedRmsNormCpuConfig: KernelConfig = { kernelName: FusedRMSNorm, backendName: 'cpu', kernelFunc: makeFusedRmsNormKernel('cpu') };
