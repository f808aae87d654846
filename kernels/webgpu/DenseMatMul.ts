/// <reference types="@webgpu/types" />
/**
 * DenseMatMul on webgpu: `x · wᵀ (+ bias) (+ residual)` in one dispatch, GEMV for M <= 8
 * (decode: each weight read once for the whole batch) or a 128 x 128 tiled matmul
 * (dense_plan.ts). Submits are left to tfjs's batching (gpu_util.ts recordDispatches).
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { DenseMatMul, type DenseMatMulAttrs } from '../kernel_names.js';
import { productDispatch } from './dense_plan.js';
import { emptyOutput, newOutput, recordDispatches, tensorBuffer, type WebGpuBackendLike } from './gpu_util.js';

/** Dispatches per queue submit for the model kernels (tfjs's own default is 15). */
export const submitBatch = (): number => tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE');

export const denseMatMulWebGpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as DenseMatMulAttrs;
  const be = backend as unknown as WebGpuBackendLike;
  const { x, w, bias, residual } = inputs as Record<string, TensorInfo | undefined>;
  const [M, K] = x!.shape;
  const N = w!.shape[0];
  if (M === 0 || N === 0) return emptyOutput(be, [M, N]);
  const out = newOutput(be, [M, N]); // [M, N]
  if (K === 0) throw new Error(`[DenseMatMul] K (0) must be >= 1 on webgpu`);
  const used = [x!, w!, out.info, ...(a.hasBias ? [bias!] : []), ...(a.hasResidual ? [residual!] : [])];
  recordDispatches(be, [productDispatch(be, {
    mode: 'dense', M, K, rows: N, outCols: N,
    x: tensorBuffer(be, x!), w: tensorBuffer(be, w!), y: out.buffer,
    bias: a.hasBias ? tensorBuffer(be, bias!) : undefined,
    residual: a.hasResidual ? tensorBuffer(be, residual!) : undefined,
  })], submitBatch(), used);
  return out.info;
};

export const denseMatMulWebGpuConfig: KernelConfig = { kernelName: DenseMatMul, backendName: 'webgpu', kernelFunc: denseMatMulWebGpu };
