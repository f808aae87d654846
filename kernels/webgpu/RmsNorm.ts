/// <reference types="@webgpu/types" />
/** RmsNorm on webgpu: one workgroup per row (row_ops_wgsl.ts). */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { RmsNorm, type RmsNormAttrs } from '../kernel_names.js';
import { submitBatch } from './DenseMatMul.js';
import { dimsBuffer, emptyOutput, newOutput, pipelineForKey, recordDispatches, tensorBuffer, type WebGpuBackendLike } from './gpu_util.js';
import { rmsNormWgsl } from './row_ops_wgsl.js';

export const rmsNormWebGpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { eps } = attrs as unknown as RmsNormAttrs;
  const be = backend as unknown as WebGpuBackendLike;
  const { x, weight } = inputs as Record<string, TensorInfo>;
  const [M, H] = x.shape;
  if (M === 0 || H === 0) return emptyOutput(be, [M, H]);
  const out = newOutput(be, [M, H]); // [M, H]
  const epsBits = new Uint32Array(new Float32Array([eps]).buffer)[0];
  recordDispatches(be, [{
    pipeline: pipelineForKey(be.device, 'RmsNorm', rmsNormWgsl),
    buffers: [tensorBuffer(be, x), out.buffer, dimsBuffer(be, [M, H, epsBits]), tensorBuffer(be, weight)],
    grid: [Math.min(M, 65535), Math.ceil(M / 65535), 1],
  }], submitBatch(), [x, weight, out.info]);
  return out.info;
};

export const rmsNormWebGpuConfig: KernelConfig = { kernelName: RmsNorm, backendName: 'webgpu', kernelFunc: rmsNormWebGpu };
