/// <reference types="@webgpu/types" />
/**
 * RopeSplitStoreRagged on webgpu: one dispatch rotates q and k (optional qk RMSNorm first),
 * writes k and v into the cache's GPU pages in place (kernels/webgpu/kv_mirror.ts) and returns q.
 * WGSL and its layout: rope_split_store_wgsl.ts.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { check } from '../../core/errors.js';
import type { RopeTables } from '../../core/rope_tables.js';
import { RopeSplitStoreRagged, type RopeSplitStoreRaggedAttrs } from '../kernel_names.js';
import { submitBatch } from './DenseMatMul.js';
import { emptyOutput, newOutput, pipelineForKey, recordDispatches, scratchBuffer, tensorBuffer, type WebGpuBackendLike } from './gpu_util.js';
import { WebGpuKVMirror } from './kv_mirror.js';
import { ropeSplitStoreWgsl } from './rope_split_store_wgsl.js';

const W = 'RopeSplitStoreRagged';
const WG = 64;

const tableCache = new WeakMap<RopeTables, { device: GPUDevice; cos: GPUBuffer; sin: GPUBuffer }>();

/** The rope tables on the device, uploaded once per RopeTables object. */
function ropeBuffers(device: GPUDevice, rope: RopeTables): { cos: GPUBuffer; sin: GPUBuffer } {
  const hit = tableCache.get(rope);
  if (hit && hit.device === device) return hit;
  const make = (a: Float32Array) => {
    const b = device.createBuffer({ size: Math.max(16, a.byteLength), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(b, 0, a.buffer, a.byteOffset, a.byteLength);
    return b;
  };
  const e = { device, cos: make(rope.cos), sin: make(rope.sin) };
  tableCache.set(rope, e);
  return e;
}

/**
 * Per-token (position, slot offset) table. The op checked the attrs, the collection's freshness
 * and its pages (kernels/validate.ts); a page id is checked again here since the shader trusts it.
 */
export function ropeTokenTable(a: RopeSplitStoreRaggedAttrs, hasNorm: boolean): Int32Array {
  const { nKvHeads, headDim, collection: c } = a;
  const p = c.cache.params;
  check(a.qkNormEps < 0 || hasNorm, W, () => `qkNormEps (${a.qkNormEps}) >= 0 needs qNormWeight and kNormWeight inputs`);
  const T = c.totalTokens;
  const tok = new Int32Array(2 * (T + 1)); // [(T, 0), (pos, slotBase) per token]
  tok[0] = T;
  const { pageSize: ps, numPages } = p;
  for (let b = 0; b < c.seqIds.length; b++) {
    for (let r = c.rowOffsets[b]; r < c.rowOffsets[b + 1]; r++) {
      const pos = c.startPositions[b] + (r - c.rowOffsets[b]);
      const page = c.pageTable[b * c.maxPagesPerSeq + Math.floor(pos / ps)];
      check(page >= 0 && page < numPages, W, () => `pageTable[${b}][${Math.floor(pos / ps)}] (${page}) must be a page in [0, ${numPages})`);
      tok[2 * r + 2] = pos;
      tok[2 * r + 3] = (page * nKvHeads * ps + (pos % ps)) * headDim;
    }
  }
  return tok;
}

export const ropeSplitStoreRaggedWebGpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as RopeSplitStoreRaggedAttrs;
  const be = backend as unknown as WebGpuBackendLike;
  const { qkv, qNormWeight, kNormWeight } = inputs as Record<string, TensorInfo | undefined>;
  const norm = a.qkNormEps >= 0;
  const tok = ropeTokenTable(a, qNormWeight !== undefined && kNormWeight !== undefined);
  const { nHeads, nKvHeads, headDim, rope, collection: c } = a;
  if (norm) {
    for (const [n, w] of [['qNormWeight', qNormWeight!], ['kNormWeight', kNormWeight!]] as const) {
      check(w.shape.length === 1 && w.shape[0] === headDim, W, () => `${n} shape [${w.shape}] must be [headDim (${headDim})]`);
    }
  }
  const T = c.totalTokens;
  if (T === 0) return emptyOutput(be, [0, nHeads * headDim]);
  const out = newOutput(be, [T, nHeads * headDim]); // [T, nHeads * headDim]
  const mirror = WebGpuKVMirror.of(be, c.cache);
  const { cos, sin } = ropeBuffers(be.device, rope);
  const cfg = {
    nHeads, nKvHeads, headDim, rotaryDim: rope.rotaryDim, interleaved: rope.interleaved,
    pageSize: c.cache.params.pageSize, eps: norm ? a.qkNormEps : -1, wg: WG,
    kv: { dtype: c.cache.params.dtype, kScale: c.cache.params.kScale, vScale: c.cache.params.vScale },
  };
  const buffers = [tensorBuffer(be, qkv!), out.buffer, mirror.k[a.layerIdx], mirror.v[a.layerIdx], cos, sin, scratchBuffer(be, tok.byteLength, tok)];
  if (norm) {
    // [2, headDim]: q weights then k weights, copied side by side on the device.
    const w = scratchBuffer(be, 8 * headDim);
    be.ensureCommandEncoderReady();
    be.endComputePassEncoder();
    be.commandEncoder!.copyBufferToBuffer(tensorBuffer(be, qNormWeight!), 0, w, 0, 4 * headDim);
    be.commandEncoder!.copyBufferToBuffer(tensorBuffer(be, kNormWeight!), 0, w, 4 * headDim, 4 * headDim);
    buffers.push(w);
  }
  if (c.cache.params.dtype === 'int8') { buffers[8] = mirror.kScales[a.layerIdx]; buffers[9] = mirror.vScales[a.layerIdx]; }
  const slots = nHeads + 2 * nKvHeads;
  // Submitted with tfjs's batch (qkv, norm weights and q stay reserved until then).
  recordDispatches(be, [{
    pipeline: pipelineForKey(be.device, `${W}:${JSON.stringify(cfg)}`, () => ropeSplitStoreWgsl(cfg)), buffers,
    grid: [slots, Math.min(T, 65535), Math.ceil(T / 65535)],
  }], submitBatch(), [qkv!, out.info, ...(norm ? [qNormWeight!, kNormWeight!] : [])]);
  mirror.dirty = true;
  return out.info;
};

export const ropeSplitStoreRaggedWebGpuConfig: KernelConfig = {
  kernelName: RopeSplitStoreRagged,
  backendName: 'webgpu',
  kernelFunc: ropeSplitStoreRaggedWebGpu,
};
