/// <reference types="@webgpu/types" />
/**
 * SwiGluMlp on webgpu, two dispatches: gate and up products with silu(g) * u in the epilogue
 * (the blocked packing puts a unit's gate and up rows in one GEMV workgroup / matmul tile), into
 * a scratch `[M, I]`; then the down product with bias and residual (dense_plan.ts).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { SwiGluMlp, type SwiGluMlpAttrs } from '../kernel_names.js';
import { productDispatch } from './dense_plan.js';
import { submitBatch } from './DenseMatMul.js';
import { emptyOutput, newOutput, recordDispatches, scratchBuffer, tensorBuffer, type WebGpuBackendLike } from './gpu_util.js';

export const swiGluMlpWebGpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as SwiGluMlpAttrs;
  const be = backend as unknown as WebGpuBackendLike;
  const { x, gateUp, down, gateUpBias, downBias, residual } = inputs as Record<string, TensorInfo | undefined>;
  const [M, H] = x!.shape;
  const I = a.intermediateSize;
  if (M === 0) return emptyOutput(be, [0, H]);
  const out = newOutput(be, [M, H]); // [M, H]
  const act = scratchBuffer(be, 4 * M * I); // [M, I] silu(gate) * up
  const used = [x!, gateUp!, down!, out.info, ...(a.hasBias ? [gateUpBias!, downBias!] : []), ...(a.hasResidual ? [residual!] : [])];
  recordDispatches(be, [
    productDispatch(be, {
      mode: 'swiglu', M, K: H, rows: gateUp!.shape[0], outCols: I,
      x: tensorBuffer(be, x!), w: tensorBuffer(be, gateUp!), y: act, bias: a.hasBias ? tensorBuffer(be, gateUpBias!) : undefined,
    }),
    productDispatch(be, {
      mode: 'dense', M, K: I, rows: H, outCols: H, x: act, w: tensorBuffer(be, down!), y: out.buffer,
      bias: a.hasBias ? tensorBuffer(be, downBias!) : undefined, residual: a.hasResidual ? tensorBuffer(be, residual!) : undefined,
    }),
  ], submitBatch(), used);
  return out.info;
};

export const swiGluMlpWebGpuConfig: KernelConfig = { kernelName: SwiGluMlp, backendName: 'webgpu', kernelFunc: swiGluMlpWebGpu };
