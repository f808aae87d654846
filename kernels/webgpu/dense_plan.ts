/// <reference types="@webgpu/types" />
/**
 * The dispatch of one `x · wᵀ` product (DenseMatMul, and both steps of SwiGluMlp): the GEMV
 * (gemv_wgsl.ts) when M <= GEMV_MAX_M and K % 4 == 0; else the f32 tiled matmul
 * (matmul_nt_wgsl.ts), or, when asked for, the split-f16 tensor-core matmul
 * (matmul_split_f16_wgsl.ts; device with subgroup matrices, tensor_cores.ts, and K % 4 == 0).
 * `rows` counts weight rows; `outCols` the output's columns (= rows for `dense`, the intermediate
 * size for `swiglu`).
 *
 * Flag `ATTENTION_ROPE_WEBGPU_MATMUL` (tf.env(); environment switch `TFJS_ATTENTION_WEBGPU_MATMUL`):
 * 'auto' (default), 'f32' (the f32 tile) or 'split-f16' (the tensor-core kernel, an error where the
 * device lacks it; products with K % 4 != 0 still take the f32 tile). 'auto' takes the f32 tile unless
 * `webgpuDenseTuning.autoSplitF16`: on the H200 split-f16 (4x2 subgroups of 2x4 matrices, bk 32) runs
 * 1.7-2.1x faster than the f32 tile on the Llama-3.2-1B prefill shapes (56-62 TFLOP/s) but with
 * rel err 1e-5 .. 3.7e-5 against float64 where the f32 tile has 1.3e-6 .. 3.4e-6 (the tensor cores'
 * f32 accumulation); accumulator flushes bring it to 2e-6 and take the speed away (0.99-1.4x).
 * README "Whole model on the H200 through WebGPU" has the table.
 */
import * as tf from '@tensorflow/tfjs';
import { envSwitch } from '../../core/env.js';
import { GEMV_MAX_M, gemvRows, gemvWgsl } from './gemv_wgsl.js';
import { type Dispatch, dimsBuffer, pipelineForKey, type WebGpuBackendLike } from './gpu_util.js';
import { type F32Tile, matmulNtWgsl, tileSharedBytes } from './matmul_nt_wgsl.js';
import { matmulSplitF16Wgsl, splitF16Tile } from './matmul_split_f16_wgsl.js';
import { splitF16Supported } from './tensor_cores.js';

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

export type MatMulVariant = 'auto' | 'f32' | 'split-f16';
const FLAG = 'ATTENTION_ROPE_WEBGPU_MATMUL';
const env = tf.env();
if (!env.getFlags().hasOwnProperty(FLAG)) {
  try { env.registerFlag(FLAG, () => (envSwitch('WEBGPU_MATMUL') ?? 'auto') as unknown as boolean); } catch { /* registered by a twin module */ }
}

/**
 * Tuning knobs (a bench may change them): largest M served by the GEMV; the f32 tiles of `dense`
 * and `swiglu` products (matmul_nt_wgsl.ts; a tile whose shared memory exceeds the device's limit
 * falls back to SMALL_F32_TILE);
 * the split-f16 tile (subgroups and 16 x 16 matrices per subgroup along M and N, K depth) and the
 * power of two the weights are scaled by before the split (keeps their lo halves normal f16).
 */
export const webgpuDenseTuning = {
  gemvMaxM: GEMV_MAX_M,
  // H200, one layer's products at 2048 tokens (bench/device/prefill_profile.ts, GPU timestamps; session-5 tile 7.21 ms
  // = 34.6 TFLOP/s): dense bk32 one buffer pad 1 3.01 ms of qkv + o + down (bk8 3.15, bk16 double-buffered 4.06: the
  // second buffer costs occupancy); swiglu bk8 3.54 ms (bk32 3.54, bk16 double 5.05). Layer 6.55 ms = 38.0 TFLOP/s.
  // Both with the inner loop unrolled in the WGSL: the whole prefill 2048 took 137.7 ms so and 164.9 ms with the
  // same tiles as WGSL loops (NVIDIA's compiler did not unroll them); lavapipe compiles unrolled source ~4x slower.
  f32Tiles: {
    dense: { bm: 128, bn: 128, tm: 8, tn: 8, bk: 32, double: false, pad: 1, unroll: true } as F32Tile,
    swiglu: { bm: 128, bn: 128, tm: 8, tn: 8, bk: 8, double: false, pad: 0, unroll: true } as F32Tile,
  },
  splitF16: { sgM: 4, sgN: 2, tm: 2, tn: 4, bk: 32, flush: 0 } as { sgM: number; sgN: number; tm: number; tn: number; bk: number; flush?: number }, weightScale: 32,
  /**
   * 'auto' takes split-f16 where the device has it (tensor_cores.ts) and K % 4 == 0. On: the H200's whole-model
   * prefill 2048 took 103.4 ms so against 134.6 ms on the f32 tiles (PyTorch float32 127.3 ms, same greedy tokens;
   * bench/device/NOTES.md, session 6 integration run). Its products are within ~1e-5..4e-5 of max |y| (the tensor
   * cores' f32 accumulation) against 1.3e-6 for the f32 tile: `TFJS_ATTENTION_WEBGPU_MATMUL=f32` for the latter.
   */
  autoSplitF16: true,
  /** Specs: run 'split-f16' as its plain-WGSL emulation on any device (matmul_split_f16_wgsl.ts `emulate`). */
  emulateSplitF16: false,
};

const MAXG = 65535;

/** The tile taken where the chosen one needs more shared memory than the device has (8.25 KiB). */
export const SMALL_F32_TILE: F32Tile = { bm: 128, bn: 128, tm: 8, tn: 8, bk: 8, double: false, pad: 0 };

const tileKey = (t: F32Tile) => `${t.bm}x${t.bn}:${t.tm}x${t.tn}:bk${t.bk}:${t.double ? 'db' : 'sb'}:p${t.pad}${t.unroll ? ':u' : ''}`;

/** The matmul variant a product of depth K takes on this device (after the GEMV cut). */
export function matmulVariantFor(device: GPUDevice, K: number): 'f32' | 'split-f16' {
  const want = tf.env().get(FLAG) as unknown as MatMulVariant;
  if (want !== 'auto' && want !== 'f32' && want !== 'split-f16') throw new Error(`[webgpu] ${FLAG} (${String(want)}) must be 'auto', 'f32' or 'split-f16'`);
  if (want === 'auto') return webgpuDenseTuning.autoSplitF16 && K % 4 === 0 && splitF16Supported(device) ? 'split-f16' : 'f32';
  if (want !== 'split-f16') return 'f32';
  if (!webgpuDenseTuning.emulateSplitF16 && !splitF16Supported(device)) throw new Error(`[webgpu] ${FLAG} is 'split-f16' but the device has no f16 subgroup matrices of 16x16x16 with 32-lane subgroups`);
  return K % 4 === 0 ? 'split-f16' : 'f32'; // the split kernel loads vec4 rows
}

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
  if (matmulVariantFor(be.device, a.K) === 'split-f16') {
    const t = webgpuDenseTuning.splitF16;
    const emulate = webgpuDenseTuning.emulateSplitF16;
    const c = { mode: a.mode, ...flags, ...t, emulate };
    const { bm, bn } = splitF16Tile(c);
    const scaleBits = new Uint32Array(new Float32Array([webgpuDenseTuning.weightScale]).buffer)[0];
    const dims = dimsBuffer(be, [a.M, a.rows, a.K, a.outCols, scaleBits]);
    const key = `splitf16:${tag}:${t.sgM}x${t.sgN}:${t.tm}x${t.tn}:bk${t.bk}:f${t.flush ?? 0}${emulate ? ':emulated' : ''}`;
    return { pipeline: pipelineForKey(be.device, key, () => matmulSplitF16Wgsl(c)), buffers: [...buffers, dims, ...tail], grid: [Math.ceil(a.rows / bn), Math.ceil(a.M / bm), 1] };
  }
  const vec4 = a.K % 4 === 0;
  let tile = webgpuDenseTuning.f32Tiles[a.mode];
  if (tileSharedBytes(tile) > be.device.limits.maxComputeWorkgroupStorageSize) tile = SMALL_F32_TILE;
  const dims = dimsBuffer(be, [a.M, a.rows, a.K, a.outCols]);
  const bound = [...buffers, dims, ...tail];
  const key = `matmul:${tag}:${vec4}:${tileKey(tile)}`;
  return { pipeline: pipelineForKey(be.device, key, () => matmulNtWgsl({ mode: a.mode, ...flags, vec4, tile })), buffers: bound, grid: [Math.ceil(a.rows / tile.bn), Math.ceil(a.M / tile.bm), 1] };
}
