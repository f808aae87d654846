/// <reference types="@webgpu/types" />
/**
 * QuantMatMul on webgpu, one compute pass of at most two dispatches:
 * 1. the activation quantizer for all T rows (quant_act_wgsl.ts) into a scratch buffer, unless
 *    the activation is 'none';
 * 2. the product on the packed u32 words. Decode (T <= 8): the vec4 GEMVs (quant_decode_wgsl.ts
 *    for e4m3 / int8 / nvfp4 / bf16 / f16, quant_gptq_wgsl.ts for gptq with groups in order), each
 *    weight read once for all rows in 16-byte loads; other shapes and prefill: the generic kernels
 *    (quant_generic_wgsl.ts).
 * Submits are left to tfjs's batching (gpu_util.ts recordDispatches), as DenseMatMul does.
 * `webgpuQuantTuning` holds the decode layout (the H200 sweep in bench/quant_webgpu.ts sets it).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { check } from '../../core/errors.js';
import { checkQuantMatMulInputs } from '../cpu/QuantMatMul.js';
import { QuantMatMul, type QuantMatMulAttrs } from '../kernel_names.js';
import { submitBatch } from './DenseMatMul.js';
import { type Dispatch, emptyOutput, fixedSubgroupSize, newOutput, pipelineForKey, recordDispatches, scratchBuffer, tensorBuffer,
  type WebGpuBackendLike } from './gpu_util.js';
import { quantActGrid, quantActWgsl } from './quant_act_wgsl.js';
import { decodeRowsPerGroup, quantDecodeFits, quantDecodeWgsl, type RowFormat } from './quant_decode_wgsl.js';
import { FORMATS, SCALES, WG, WGSL, WGSL_GPTQ, WGSL_ROWS } from './quant_generic_wgsl.js';
import { gptqDecodeFits, gptqDecodeWgsl } from './quant_gptq_wgsl.js';

/**
 * Decode layout: weight rows per lane group, units per loop step, gptq column quads (0: the measured
 * choice of decodeLayout), subgroups on / off, the decode kernels on / off.
 */
export const webgpuQuantTuning = { rows: 0, unroll: 0, gptqQuads: 0, subgroups: true, decode: true };

/**
 * The layout per format and row count, from the H200 sweep (bench/quant_webgpu.ts --sweep, README
 * "H200 (WebGPU) QuantMatMul"): few rows want fewer weight rows per lane group (more workgroups in
 * flight), eight rows want 4 (each x vec4 reused 4 times, 32 accumulators); halves (8 columns a unit)
 * want two units' loads in flight a step (bf16 T = 8: 0.065 ms against 0.091 with one).
 */
export function decodeLayout(fmt: string, T: number): { rows: number; unroll: number; gptqQuads: number } {
  const t = webgpuQuantTuning;
  const half = fmt === 'bf16' || fmt === 'f16';
  const auto = { rows: T <= 2 && (fmt === 'e4m3' || half) ? 2 : 4, unroll: half ? 2 : 1, gptqQuads: T <= 2 ? 4 : T <= 4 ? 8 : 16 };
  return { rows: t.rows || auto.rows, unroll: t.unroll || auto.unroll, gptqQuads: t.gptqQuads || auto.gptqQuads };
}

/** gptq g_idx tensors (by dataId) known to be `k / g` (groups in order), checked once while their values are on the host. */
const orderedGIdx = new WeakMap<object, boolean>();
function groupsInOrder(be: WebGpuBackendLike, gIdx: TensorInfo, g: number): boolean {
  const known = orderedGIdx.get(gIdx.dataId);
  if (known !== undefined) return known;
  const v = be.tensorMap.get(gIdx.dataId).values as Int32Array | null | undefined;
  if (!v) return false; // already on the GPU and never seen: the generic kernel (reads g_idx per k)
  let ok = true;
  for (let k = 0; k < v.length && ok; k++) ok = v[k] === Math.floor(k / g);
  orderedGIdx.set(gIdx.dataId, ok);
  return ok;
}

const decodeRows = new WeakMap<GPUDevice, Map<number, GPUBuffer>>();
/**
 * The quantized decode rows' buffer, one per device and size, kept: every use is in queue order (the
 * quantizer writes it, the GEMV after it reads it, the next call's quantizer after that), so calls
 * share it, and their bind groups stay cached (a pooled scratch buffer per call cost ~50 us of CPU).
 */
function decodeRowsBuffer(device: GPUDevice, bytes: number): GPUBuffer {
  let m = decodeRows.get(device);
  if (!m) decodeRows.set(device, (m = new Map()));
  let b = m.get(bytes);
  if (!b) m.set(bytes, (b = device.createBuffer({ size: Math.max(16, bytes), usage: GPUBufferUsage.STORAGE })));
  return b;
}

/** The lanes of a decode lane group and whether subgroupAdd sums them. */
function laneLayout(device: GPUDevice): { lanes: number; subgroups: boolean } {
  const sg = webgpuQuantTuning.subgroups ? fixedSubgroupSize(device) : 0;
  return sg >= 4 && sg <= 128 && 256 % sg === 0 ? { lanes: sg, subgroups: true } : { lanes: 32, subgroups: false };
}

/** Buffers in binding order, unused bindings left as holes (skipped by the bind group). */
function withHoles(bs: (GPUBuffer | undefined)[]): GPUBuffer[] {
  const out = new Array<GPUBuffer>(bs.length);
  bs.forEach((b, i) => { if (b) out[i] = b; });
  return out;
}

/** The product dispatch of the decode kernels, or null where they do not fit. */
function decodeDispatch(be: WebGpuBackendLike, a: QuantMatMulAttrs, T: number, x: GPUBuffer, ins: Record<string, GPUBuffer | undefined>,
  y: GPUBuffer): Dispatch | null {
  const K = a.inDim, N = a.outDim;
  if (!webgpuQuantTuning.decode || T > 8) return null;
  const t = decodeLayout(a.weightFormat, T);
  if (a.weightFormat === 'gptq') {
    if (!gptqDecodeFits(K, N, a.blockCols)) return null;
    const c = { T, K, N, group: a.blockCols, bias: !!ins.bias, quads: t.gptqQuads };
    const key = `quant-gptq:${JSON.stringify(c)}`;
    const buffers = withHoles([x, ins.weight, ins.scale, ins.zeros, ins.bias, y]);
    return { pipeline: pipelineForKey(be.device, key, () => gptqDecodeWgsl(c)), buffers, grid: [Math.ceil(N / 4 / t.gptqQuads), 1, 1] };
  }
  const fmt = a.weightFormat as RowFormat;
  if (!quantDecodeFits(fmt, a.weightScale, K, a.blockCols)) return null;
  const lanes = laneLayout(be.device);
  // without subgroups the partial sums meet in workgroup memory: 1 KiB per (row, x row)
  const rows = lanes.subgroups ? t.rows : Math.max(1, Math.min(t.rows, Math.floor(be.device.limits.maxComputeWorkgroupStorageSize / (1024 * T))));
  const c = { fmt, scale: a.weightScale, T, K, N, blockRows: a.blockRows, blockCols: a.blockCols, weightScale2: a.weightScale2,
    bias: !!ins.bias, ...lanes, rows, unroll: t.unroll };
  const key = `quant-decode:${JSON.stringify(c)}`;
  const hasScale = fmt !== 'bf16' && fmt !== 'f16';
  const buffers = withHoles([x, ins.weight, hasScale ? ins.scale : undefined, ins.bias, y]);
  return { pipeline: pipelineForKey(be.device, key, () => quantDecodeWgsl(c)), buffers, grid: [Math.ceil(N / decodeRowsPerGroup(c)), 1, 1] };
}

/** The product dispatch of the generic kernels (any shape). */
function genericDispatch(be: WebGpuBackendLike, a: QuantMatMulAttrs, T: number, x: GPUBuffer, ins: Record<string, GPUBuffer | undefined>,
  y: GPUBuffer): Dispatch {
  const N = a.outDim;
  const params = new Int32Array(9);
  params.set([T, a.inDim, N, FORMATS[a.weightFormat], SCALES[a.weightScale], a.blockRows, a.blockCols, ins.bias ? 1 : 0]);
  params[8] = new Int32Array(Float32Array.of(a.weightScale2).buffer)[0];
  const placeholder = () => scratchBuffer(be, 16);
  const buffers = [x, ins.weight!, ins.scale ?? placeholder(), ins.zeros ?? placeholder(), ins.gIdx ?? placeholder(), ins.bias ?? placeholder(),
    scratchBuffer(be, params.byteLength, params), y];
  const [code, grid]: [string, [number, number, number]] = T > 8 ? [WGSL, [Math.ceil(N / WG), T, 1]]
    : a.weightFormat === 'gptq' ? [WGSL_GPTQ, [Math.ceil(N / WG), 1, 1]] : [WGSL_ROWS, [Math.min(N, 32768), Math.ceil(N / 32768), 1]];
  if (code === WGSL_ROWS) { delete buffers[3]; delete buffers[4]; } // zeros / g_idx unused: holes leave them out of the bind group
  return { pipeline: pipelineForKey(be.device, `quant-generic:${T > 8 ? 'prefill' : a.weightFormat === 'gptq' ? 'gptq' : 'rows'}`, () => code), buffers, grid };
}

const kernelFunc: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as QuantMatMulAttrs;
  const be = backend as unknown as WebGpuBackendLike;
  const { x, weight, scale, zeros, gIdx, bias } = inputs as Record<string, TensorInfo | undefined>;
  check(x !== undefined && x.dtype === 'float32', QuantMatMul, () => `input x must be a float32 tensor, got ${x?.dtype}`);
  checkQuantMatMulInputs(QuantMatMul, x, { weight, scale, zeros, gIdx, bias }, a);
  const T = x.shape[0], K = a.inDim;
  if (T * a.outDim === 0) return emptyOutput(be, [T, a.outDim]);
  const out = newOutput(be, [T, a.outDim]); // [T, outDim]
  const dispatches: Dispatch[] = [];
  let xBuf = tensorBuffer(be, x);
  if (a.activation !== 'none' && T * K > 0) {
    const c = { activation: a.activation, T, K, group: a.activation === 'nvfp4' ? 16 : a.actGroup, inputScale: a.inputScale };
    const xq = T <= 8 ? decodeRowsBuffer(be.device, 4 * T * K) : scratchBuffer(be, 4 * T * K); // [T, K] quantized rows
    dispatches.push({ pipeline: pipelineForKey(be.device, `quant-act:${JSON.stringify(c)}`, () => quantActWgsl(c)), buffers: [xBuf, xq], grid: quantActGrid(c) });
    xBuf = xq;
  }
  const inOrder = a.weightFormat !== 'gptq' || groupsInOrder(be, gIdx!, a.blockCols); // before g_idx is uploaded
  const used = [x, weight!, out.info];
  const buf = (t: TensorInfo | undefined) => { if (t) used.push(t); return t ? tensorBuffer(be, t) : undefined; };
  const fmtUses = (name: string) => (name === 'scale' ? a.weightFormat !== 'bf16' && a.weightFormat !== 'f16' : a.weightFormat === 'gptq');
  const ins = { weight: tensorBuffer(be, weight!), scale: fmtUses('scale') ? buf(scale) : undefined, zeros: fmtUses('zeros') ? buf(zeros) : undefined,
    gIdx: fmtUses('gIdx') ? buf(gIdx) : undefined, bias: buf(bias) };
  const product = (inOrder ? decodeDispatch(be, a, T, xBuf, ins, out.buffer) : null) ?? genericDispatch(be, a, T, xBuf, ins, out.buffer);
  dispatches.push(product);
  recordDispatches(be, dispatches, submitBatch(), used);
  return out.info;
};

export const quantMatMulWebGpuConfig: KernelConfig = { kernelName: QuantMatMul, backendName: 'webgpu', kernelFunc };
