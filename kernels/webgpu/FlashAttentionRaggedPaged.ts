/// <reference types="@webgpu/types" />
/**
 * FlashAttentionRaggedPaged on webgpu: online-softmax attention over the cache's GPU pages
 * (kernels/webgpu/kv_mirror.ts). Two paths, chosen by flash_plan.ts `flashPath` (attrs.variant
 * 'auto') or forced ('prefill' / 'decode'):
 * - prefill: FlashAttention-2 tiles of TQ tokens x G query heads per workgroup (flash_prefill_wgsl.ts);
 * - decode: split-K over the keys, one workgroup per (token, KV head, split), then a merge pass
 *   (flash_decode_wgsl.ts).
 * - prefill on tensor cores (flash_prefill_sgmat_wgsl.ts) for float16 caches where the device has
 *   subgroup matrices (TFJS_ATTENTION_WEBGPU_PREFILL=sgmat|tile|scalar forces a kernel, flash_plan.ts);
 * - decode over a compact cache: 16-byte loads of packed words (flash_decode_packed_wgsl.ts);
 * - decode over any cache on 32+-lane subgroups: the streaming kernel (flash_decode_stream_wgsl.ts;
 *   TFJS_ATTENTION_WEBGPU_DECODE=stream|packed|subgroup|tiles forces one).
 * Head dims that are not a multiple of 4 take a plain scalar kernel instead (flash_scalar_wgsl.ts).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { FlashAttentionRaggedPaged, type FlashAttentionRaggedPagedAttrs } from '../kernel_names.js';
import { flashDecodePackedWgsl, packedDecodeLayout } from './flash_decode_packed_wgsl.js';
import { flashDecodeSubgroupWgsl } from './flash_decode_sg_wgsl.js';
import { flashDecodeStreamWgsl, streamDecodeLayout } from './flash_decode_stream_wgsl.js';
import { flashDecodeWgsl, flashMergeWgsl } from './flash_decode_wgsl.js';
import { buildMeta, chooseDecode, choosePrefill, choosePrefillKind, flashPath, type PrefillCaps, webgpuFlashTuning } from './flash_plan.js';
import { flashPrefillSgmatWgsl, sgmatPrefillSharedBytes } from './flash_prefill_sgmat_wgsl.js';
import { flashPrefillWgsl } from './flash_prefill_wgsl.js';
import { SCALAR_WG, flashScalarWgsl } from './flash_scalar_wgsl.js';
import {
  type Dispatch, emptyOutput, fixedSubgroupSize, newOutput, pipelineForKey, recordDispatches, scratchBuffer, subgroupLanes,
  tensorBuffer, type WebGpuBackendLike,
} from './gpu_util.js';
import { submitBatch } from './DenseMatMul.js';
import { WebGpuKVMirror } from './kv_mirror.js';

const W = 'FlashAttentionRaggedPaged';
const MAXG = 65535;

/** Subgroup matrices, shader-f16 and the subgroup size of this device (for the prefill choice). */
function prefillCaps(dev: GPUDevice): PrefillCaps {
  return {
    subgroupMatrix: dev.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName),
    shaderF16: dev.features.has('shader-f16'),
    subgroupSize: fixedSubgroupSize(dev),
    subgroupIdBuiltin: (globalThis as { navigator?: { gpu?: { wgslLanguageFeatures?: ReadonlySet<string> } } }).navigator?.gpu?.wgslLanguageFeatures?.has('subgroup_id') ?? false,
  };
}

export const flashAttentionRaggedPagedWebGpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as FlashAttentionRaggedPagedAttrs;
  const be = backend as unknown as WebGpuBackendLike;
  const q = (inputs as Record<string, TensorInfo>).q;
  const c = a.collection; // checked by the op (kernels/validate.ts)
  const { nHeads, nKvHeads, headDim } = a;
  const T = c.totalTokens;
  if (T === 0) return emptyOutput(be, [0, nHeads * headDim]);
  const mirror = WebGpuKVMirror.of(be, c.cache);
  const dev = be.device;
  const { dtype, kScale, vScale } = c.cache.params;
  const shape = { headDim, nHeads, nKvHeads, kv: { dtype, kScale, vScale } };
  const sharedLimit = dev.limits.maxComputeWorkgroupStorageSize;
  const kv = [mirror.k[a.layerIdx], mirror.v[a.layerIdx]];
  // int8 row scales at bindings 10 / 11 (holes in between are skipped when the bind group is made).
  const scales = dtype === 'int8' ? { 10: mirror.kScales[a.layerIdx], 11: mirror.vScales[a.layerIdx] } : {};
  const withScales = (bufs: GPUBuffer[]): GPUBuffer[] => Object.assign(bufs, scales);
  const qBuf = tensorBuffer(be, q);
  const dispatches: Dispatch[] = [];
  let out: ReturnType<typeof newOutput> | undefined;
  const output = () => (out ??= newOutput(be, [T, nHeads * headDim])); // [T, nHeads * headDim]
  const path = flashPath(a);
  const caps = prefillCaps(dev);
  let prefillKind = headDim % 4 !== 0 || path === 'prefill' ? choosePrefillKind(a, caps, dtype) : undefined;
  const sgid = webgpuFlashTuning.prefillSgmatSubgroupId;
  const sgmatCfg = {
    nsg: webgpuFlashTuning.prefillSgmatSubgroups, bn: webgpuFlashTuning.prefillSgmatKeys,
    sgid: sgid === 'auto' ? (caps.subgroupIdBuiltin ? 'builtin' as const : 'broadcast' as const) : sgid,
    emulate: webgpuFlashTuning.prefillSgmatEmulate, xchg: webgpuFlashTuning.prefillSgmatExchange, qReload: webgpuFlashTuning.prefillSgmatQReload,
  };
  if (prefillKind === 'sgmat' && sgmatPrefillSharedBytes(sgmatCfg, shape) > sharedLimit) prefillKind = 'tile';
  if (prefillKind === 'scalar') {
    const { meta, numTiles } = buildMeta(a, 1);
    const groups = Math.ceil((numTiles * nHeads) / SCALAR_WG);
    dispatches.push({
      pipeline: pipelineForKey(dev, `${W}:scalar:${headDim}:${nHeads}:${nKvHeads}`, () => flashScalarWgsl(headDim, nHeads, nKvHeads)),
      buffers: [qBuf, output().buffer, ...kv, scratchBuffer(be, meta.byteLength, meta)],
      grid: [Math.min(groups, MAXG), Math.ceil(groups / MAXG), 1],
    });
  } else if (prefillKind === 'sgmat') {
    const tq = (16 * sgmatCfg.nsg) / (nHeads / nKvHeads);
    const { meta, numTiles } = buildMeta(a, tq);
    if (numTiles > MAXG) throw new Error(`[${W}] ${numTiles} prefill tiles exceed the grid limit ${MAXG}`);
    dispatches.push({
      pipeline: pipelineForKey(dev, `${W}:prefill-sgmat:${JSON.stringify([sgmatCfg, shape])}`, () => (webgpuFlashTuning.prefillSgmatDebugEdit ?? ((w: string) => w))(flashPrefillSgmatWgsl(sgmatCfg, shape))),
      buffers: withScales([qBuf, output().buffer, ...kv, scratchBuffer(be, meta.byteLength, meta)]),
      grid: [numTiles, nKvHeads, 1],
    });
  } else if (path === 'prefill') {
    const cfg = choosePrefill(a, sharedLimit, subgroupLanes(dev), dev.limits.maxComputeInvocationsPerWorkgroup);
    const { meta, numTiles } = buildMeta(a, cfg.tq);
    if (numTiles > MAXG) throw new Error(`[${W}] ${numTiles} prefill tiles exceed the grid limit ${MAXG}`);
    dispatches.push({
      pipeline: pipelineForKey(dev, `${W}:prefill:${JSON.stringify([cfg, shape])}`, () => flashPrefillWgsl(cfg, shape)),
      buffers: withScales([qBuf, output().buffer, ...kv, scratchBuffer(be, meta.byteLength, meta)]),
      grid: [numTiles, nKvHeads, 1],
    });
  } else {
    const cfg = chooseDecode(a, sharedLimit, fixedSubgroupSize(dev), dtype);
    const keysPerBlock = cfg.kind === 'tiles' ? cfg.bcd : cfg.kind === 'packed' ? cfg.u * (packedDecodeLayout(dtype, headDim, cfg.sgs)?.kps ?? 1)
      : cfg.kind === 'stream' ? cfg.u * (streamDecodeLayout(dtype, headDim, cfg.sgs, cfg.cw, cfg.vec)?.kps ?? 1) : cfg.u;
    const t = webgpuFlashTuning;
    const target = dtype === 'int8' || dtype === 'float8_e4m3' ? t.decodeStreamTargetByteCodes : t.decodeStreamTarget;
    const split = cfg.kind === 'stream' ? { target, minKeys: t.decodeStreamMinSplitKeys } : undefined;
    const { meta, numTiles, numSplits } = buildMeta(a, 1, keysPerBlock, split);
    const metaBuf = scratchBuffer(be, meta.byteLength, meta);
    const d4 = headDim / 4;
    const part = scratchBuffer(be, numSplits > 1 ? 16 * numSplits * T * nHeads * (d4 + 1) : 16);
    dispatches.push({
      pipeline: pipelineForKey(dev, `${W}:decode-${cfg.kind}:${JSON.stringify([cfg, shape])}`, () => (cfg.kind === 'tiles'
        ? flashDecodeWgsl(cfg, shape) : cfg.kind === 'packed' ? flashDecodePackedWgsl(cfg, shape)
          : cfg.kind === 'stream' ? flashDecodeStreamWgsl(cfg, shape) : flashDecodeSubgroupWgsl(cfg, shape))),
      buffers: withScales([qBuf, output().buffer, ...kv, metaBuf, part]),
      grid: [Math.min(numTiles, MAXG), nKvHeads, numSplits * Math.ceil(numTiles / MAXG)],
    });
    if (numSplits > 1) {
      const rows = T * nHeads;
      dispatches.push({
        pipeline: pipelineForKey(dev, `${W}:merge:${headDim}:${nHeads}`, () => flashMergeWgsl(headDim, nHeads)),
        buffers: [part, output().buffer, metaBuf],
        grid: [Math.min(rows, MAXG), Math.ceil(rows / MAXG), 1],
      });
    }
  }
  // Submitted with tfjs's batch (q and the output stay reserved until then).
  recordDispatches(be, dispatches, submitBatch(), [q, output().info]);
  return output().info;
};

export const flashAttentionRaggedPagedWebGpuConfig: KernelConfig = {
  kernelName: FlashAttentionRaggedPaged,
  backendName: 'webgpu',
  kernelFunc: flashAttentionRaggedPagedWebGpu,
};
