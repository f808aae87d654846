/// <reference types="@webgpu/types" />
/**
 * The dispatch of one `x · wᵀ` product (DenseMatMul, and both steps of SwiGluMlp): the GEMV
 * (gemv_wgsl.ts) when M <= GEMV_MAX_M and K % 4 == 0, else the 128 x 128 tiled matmul
 * (matmul_nt_wgsl.ts). `rows` counts weight rows; `outCols` the output's columns (= rows for
 * `dense`, the intermediate size for `swiglu`).
 */
import { GEMV_MAX_M, gemvRows, gemvWgsl } from './gemv_wgsl.js';
import { type Dispatch, dimsBuffer, pipelineForKey, type WebGpuBackendLike } from './gpu_util.js';
import { MM_TILE, matmulNtWgsl } from './matmul_nt_wgsl.js';

export interface ProductArgs {
  mode: 'dense' | 'swiglu';
  M: number;
  K: number;
  rows: number;
  outCols: number;
  x: GPUBuffer;
  w: GPUBuffer;
  y: GPUBuffer;
  bias?: GPUBuffer;
  residual?: GPUBuffer;
}

/** Tuning knobs (a bench may change them): largest M served by the GEMV; K depth of the matmul tile. */
export const webgpuDenseTuning = { gemvMaxM: GEMV_MAX_M, matmulBk: 8 };

const MAXG = 65535;

export function productDispatch(be: WebGpuBackendLike, a: ProductArgs): Dispatch {
  const flags = { bias: a.bias !== undefined, residual: a.residual !== undefined };
  const buffers = [a.x, a.w, a.y];
  const tail = [...(a.bias ? [a.bias] : []), ...(a.residual ? [a.residual] : [])];
  const tag = `${a.mode}${flags.bias ? '+b' : ''}${flags.residual ? '+r' : ''}`;
  if (a.M <= Math.min(webgpuDenseTuning.gemvMaxM, GEMV_MAX_M) && a.K % 4 === 0) {
    const groups = Math.ceil(a.outCols / gemvRows(a.mode));
    const bound = [...buffers, dimsBuffer(be, [a.outCols, a.K / 4]), ...tail];
    return { pipeline: pipelineForKey(be.device, `gemv:${tag}:m${a.M}`, () => gemvWgsl({ m: a.M, mode: a.mode, ...flags })), buffers: bound, grid: [Math.min(groups, MAXG), Math.ceil(groups / MAXG), 1] };
  }
  const vec4 = a.K % 4 === 0;
  const bk = webgpuDenseTuning.matmulBk === 16 ? 16 : 8;
  const dims = dimsBuffer(be, [a.M, a.rows, a.K, a.outCols]);
  const bound = [...buffers, dims, ...tail];
  return { pipeline: pipelineForKey(be.device, `matmul:${tag}:${vec4}:bk${bk}`, () => matmulNtWgsl({ mode: a.mode, ...flags, vec4, bk })), buffers: bound, grid: [Math.ceil(a.rows / MM_TILE), Math.ceil(a.M / MM_TILE), 1] };
}
