/// <reference types="@webgpu/types" />
/** ArgMaxRows on webgpu: one workgroup per row (row_ops_wgsl.ts); greedy decoding reads back ids, not logits. */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { ArgMaxRows } from '../kernel_names.js';
import { submitBatch } from './DenseMatMul.js';
import { dimsBuffer, pipelineForKey, recordDispatches, tensorBuffer, type WebGpuBackendLike } from './gpu_util.js';
import { argMaxRowsWgsl } from './row_ops_wgsl.js';

export const argMaxRowsWebGpu: KernelFunc = ({ inputs, backend }) => {
  const be = backend as unknown as WebGpuBackendLike;
  const { x } = inputs as Record<string, TensorInfo>;
  const [R, V] = x.shape;
  const info = (be.makeTensorInfo as (s: number[], d: string) => TensorInfo)([R], 'int32'); // [R]
  if (R === 0) {
    be.tensorMap.get(info.dataId).values = new Int32Array(0);
    return info;
  }
  recordDispatches(be, [{
    pipeline: pipelineForKey(be.device, 'ArgMaxRows', argMaxRowsWgsl),
    buffers: [tensorBuffer(be, x), tensorBuffer(be, info), dimsBuffer(be, [R, V])],
    grid: [Math.min(R, 65535), Math.ceil(R / 65535), 1],
  }], submitBatch(), [x, info]);
  return info;
};

export const argMaxRowsWebGpuConfig: KernelConfig = { kernelName: ArgMaxRows, backendName: 'webgpu', kernelFunc: argMaxRowsWebGpu };
