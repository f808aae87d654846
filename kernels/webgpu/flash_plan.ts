/**
 * Host side of FlashAttentionRaggedPaged on webgpu: argument checks, the path choice
 * (prefill tiles or split-K decode), tile configs that fit the device, and the `meta` block
 * (layout in flash_common_wgsl.ts).
 */
import type { FlashAttentionRaggedPagedAttrs } from '../kernel_names.js';
import { MASK_CODE } from '../../core/types.js';
import type { KVCacheDType } from '../../core/kv_dtype.js';
import { keyRangeHost } from './flash_common_wgsl.js';
import { envSwitch } from '../../core/env.js';
import { sgmatPrefillFits } from './flash_prefill_sgmat_wgsl.js';
import { type PackedDecodeConfig, packedDecodeLayout, packedDecodeSharedBytes } from './flash_decode_packed_wgsl.js';
import { type StreamDecodeConfig, streamDecodeLayout, streamDecodeSharedBytes } from './flash_decode_stream_wgsl.js';
import { type SubgroupDecodeConfig, subgroupDecodeSharedBytes } from './flash_decode_sg_wgsl.js';
import { type DecodeConfig, decodeSharedBytes } from './flash_decode_wgsl.js';
import { type PrefillConfig, prefillDims, prefillSharedBytes } from './flash_prefill_wgsl.js';

const W = 'FlashAttentionRaggedPaged';

/** Prefill tile shapes in order of preference; the first that fits the device is used. */
export interface NamedPrefill { name: string; tq: number; bc: number; rm: number; tc: number; prefetch?: boolean }

/**
 * Tuning knobs (measured on an H200 by bench/attention_webgpu.ts; a bench may change them).
 * - prefill: candidate tiles, tq counted for G = 4 query heads per KV head (scaled by 4 / G).
 * - decode: keys per tile (largest that fits), threads, keys per split at least, target workgroups.
 * - decodeMaxNew: 'auto' takes the decode path when no sequence brings more new tokens than this.
 */
export const webgpuFlashTuning = {
  prefill: [
    // H200, 1x4096 causal, 32/8 heads, d 128 (bench/attention_webgpu.ts, GPU timestamps):
    { name: 'm64b16r2', tq: 16, bc: 16, rm: 2, tc: 8 }, //  7.9 ms, 17.3 TFLOP/s (PyTorch fp32 SDPA 12.3 ms)
    { name: 'm48b32r3', tq: 12, bc: 32, rm: 3, tc: 8 }, //  9.0 ms
    { name: 'm64b16', tq: 16, bc: 16, rm: 4, tc: 8 }, //    9.0 ms (14.0 without prefetch)
    { name: 'm32b32r2', tq: 8, bc: 32, rm: 2, tc: 8 }, // 10.8 ms
    { name: 'm32b16r2', tq: 8, bc: 16, rm: 2, tc: 8 }, // 11.2 ms; fits 32 KiB (software drivers)
    { name: 'm32b32', tq: 8, bc: 32, rm: 4, tc: 8 }, //   18.9 ms: 64 threads are too few
    { name: 'm16b32', tq: 4, bc: 32, rm: 4, tc: 8 },
    { name: 'm16b16', tq: 4, bc: 16, rm: 4, tc: 4 },
    { name: 'm8b8t8', tq: 2, bc: 8, rm: 2, tc: 8 }, // large heads in 32 KiB
    { name: 'm8b8', tq: 2, bc: 8, rm: 4, tc: 2 },
    { name: 'm4b4', tq: 1, bc: 4, rm: 2, tc: 1 },
  ] as NamedPrefill[],
  // H200 decode 32x4096 (shared-memory tiles, used without fixed-size subgroups): bc16 wg128 with
  // target 8192 0.84 ms (1.28 TB/s); bc32 wg256 target 2048 1.12 ms. The subgroup kernel: 0.48 ms.
  decodeBc: [16, 8, 4],
  decodeWg: 128,
  /** Decode: load the next K/V tile into registers while computing this one. */
  decodePrefetch: true,
  // Subgroup kernel, H200 32x4096: target 2048 0.42 ms (2.56 TB/s), 4096 0.45 ms, 8192 0.50 ms.
  decodeMinSplitKeys: 256,
  decodeTargetWorkgroups: 2048,
  decodeMaxNew: 4,
  /** Decode with the subgroup kernel (flash_decode_sg_wgsl.ts) where subgroups have a fixed size. */
  decodeSubgroup: true,
  decodeSubgroupWarps: 4,
  decodeSubgroupKeys: 8,
  /**
   * Compact caches: the packed kernel (flash_decode_packed_wgsl.ts, 16-byte loads) where the row
   * is a power-of-two number of 16-byte words; subgroups per workgroup and 16-byte K words in
   * flight per lane per block (keys per lane = words / words-per-lane-per-row).
   */
  decodePacked: true,
  // H200 32x4096 (bench/attention_webgpu_kv.ts, 3 alternating rounds): nw2 words4 0.423 ms f16,
  // nw4 words4 0.435, nw1 words4 0.430, nw2 words2 0.474; int8 0.611 / 0.679 / 0.671 / 0.723.
  decodePackedWarps: 2,
  decodePackedWords: 4,
  /**
   * The streaming kernel (flash_decode_stream_wgsl.ts: one page-table read per block of keys, no
   * masks inside a page, optional register prefetch of the next block, bit-trick widening) for
   * every cache dtype whose row is a power-of-two number of 16-byte words; subgroups per
   * workgroup, words of a row per lane, keys per lane per block, prefetch, int8 / fp8 widening,
   * and the workgroups the split aims at (keys per split at least decodeStreamMinSplitKeys).
   */
  // H200 32x4096 (bench/attention_webgpu_kv_decode.ts, call 3): f32 0.286 ms, f16 / bf16 0.187, int8
  // 0.162, e4m3 0.176 (subgroup / packed kernels 0.440 / 0.208 / 0.206 / 0.212 / 0.251).
  decodeStream: true,
  /**
   * Taken by default only with subgroups of at least this many lanes (GPUs; lavapipe's 8-lane
   * subgroups take the packed / subgroup kernels: same results, and its LLVM compiles the
   * unrolled streaming shaders slowly). Forcing it (TFJS_ATTENTION_WEBGPU_DECODE=stream) ignores this.
   */
  decodeStreamMinSubgroup: 32,
  decodeStreamFloat32: true,
  decodeStreamWarps: 2,
  decodeStreamWords: 1,
  decodeStreamFloat32Words: 2,
  decodeStreamVec: 4 as 2 | 4,
  decodeStreamReduce: 'xor' as 'xor' | 'scatter',
  decodeStreamQShared: false,
  decodeStreamKeys: 4,
  decodeStreamPrefetch: true,
  /** 'auto': conversions for int8 (0.176 vs 0.192 ms), bit tricks for e4m3 (0.189 vs 0.215). */
  decodeStreamWiden: 'auto' as 'auto' | 'cvt' | 'bits',
  decodeStreamTarget: 2048,
  /** Target for 1-byte codes (int8, e4m3): fewer, longer splits (H200 int8 0.162 ms at 1024 vs 0.175 at 2048). */
  decodeStreamTargetByteCodes: 1024,
  decodeStreamMinSplitKeys: 256,
  /**
   * Prefill on tensor cores (flash_prefill_sgmat_wgsl.ts) for float16 caches where the device has
   * subgroup matrices, shader-f16, 32-lane subgroups and WGSL's `subgroup_id`; subgroups (16 rows
   * each) and keys per tile. H200 (2026-12-03, bench/device/sgmat_prefill_check.ts): rel err
   * 2.6e-4 .. 4.9e-4 against float64 (f16 Q and P), 1x4096 32/8 d128 causal 9.11 ms vs 9.96 ms for
   * the f32 tiles; 4:32 10.09 ms, 2:64 29.5 ms, 1:32 39.2 ms. Versions that lost: before its
   * rescale flag was padded to 16 bytes it was wrong on the H200 (rel err ~2). false: never taken.
   */
  prefillSgmat: true,
  prefillSgmatSubgroups: 4,
  prefillSgmatKeys: 64,
  /** Subgroup index of the sgmat kernel: 'auto' (the builtin where WGSL offers `subgroup_id`), 'builtin', 'broadcast'. */
  prefillSgmatSubgroupId: 'auto' as 'auto' | 'builtin' | 'broadcast',
  /**
   * Specs: run the sgmat prefill as its plain-WGSL emulation on any device with shader-f16 and
   * subgroups; 'qk' / 'pv' (device diagnostics) emulate one product only (flash_prefill_sgmat_wgsl.ts).
   */
  prefillSgmatEmulate: false as boolean | 'qk' | 'pv',
  /** How the sgmat prefill's twin lanes combine row max and sum (flash_prefill_sgmat_wgsl.ts `xchg`). */
  prefillSgmatExchange: 'shuffle' as 'shuffle' | 'shared',
  /** The sgmat prefill's Q kept in its own workgroup array and reloaded per key tile (flash_prefill_sgmat_wgsl.ts `qReload`). */
  prefillSgmatQReload: false,
  /** Device diagnostics only (bench/device/sgmat_prefill_check.ts): rewrites the sgmat prefill's WGSL before it is compiled. */
  prefillSgmatDebugEdit: null as null | ((wgsl: string) => string),
  /** Prefill: load K/V tiles into registers ahead of use (per-config `prefetch` overrides). */
  prefillPrefetch: true,
  /** Use subgroup shuffles when the device has them (false forces the shared-memory path). */
  subgroups: true,
};

/** Prefill kernels; `TFJS_ATTENTION_WEBGPU_PREFILL` forces one where it applies. */
export type PrefillKind = 'sgmat' | 'tile' | 'scalar';

/** The forced prefill kernel (TFJS_ATTENTION_WEBGPU_PREFILL=sgmat|tile|scalar), or undefined. */
export function forcedPrefill(): PrefillKind | undefined {
  const v = envSwitch('WEBGPU_PREFILL');
  if (v === undefined || v === '' || v === 'auto') return undefined;
  if (v !== 'sgmat' && v !== 'tile' && v !== 'scalar') {
    throw new Error(`[${W}] TFJS_ATTENTION_WEBGPU_PREFILL (${v}) must be one of auto, sgmat, tile, scalar`);
  }
  return v;
}

/** What the device offers for the tensor-core prefill. */
export interface PrefillCaps { subgroupMatrix: boolean; shaderF16: boolean; subgroupSize: number; subgroupIdBuiltin?: boolean }

/**
 * Which prefill kernel: with `webgpuFlashTuning.prefillSgmat` (on: see there) the subgroup-matrix
 * one for a float16 cache where the device has subgroup matrices, shader-f16, 32-lane subgroups and `subgroup_id`
 * (the f16 rounding of Q and P is then the cache's own precision class), else the f32 tiles. Forced: `sgmat` for any cache dtype where
 * the device can (a float32 cache is narrowed to f16 on the fly), `scalar` (float32 caches: the
 * one-thread-per-row kernel), `tile`; a forced kernel that cannot run here falls back to the tiles.
 * Head dims that are not a multiple of 4 always take the scalar kernel.
 */
export function choosePrefillKind(a: FlashAttentionRaggedPagedAttrs, caps: PrefillCaps, dtype: KVCacheDType): PrefillKind {
  if (a.headDim % 4 !== 0) return 'scalar';
  const t = webgpuFlashTuning;
  const force = forcedPrefill();
  const shape = { headDim: a.headDim, nHeads: a.nHeads, nKvHeads: a.nKvHeads };
  // the matrix offsets must be subgroup-uniform: only `@builtin(subgroup_id)` gives that (a broadcast does not compile)
  const hw = caps.subgroupMatrix && caps.subgroupSize === 32 && caps.subgroupIdBuiltin !== false;
  const can = t.prefillSgmat && (hw || t.prefillSgmatEmulate === true) && caps.shaderF16 && t.subgroups &&
    sgmatPrefillFits({ nsg: t.prefillSgmatSubgroups, bn: t.prefillSgmatKeys, sgid: 'builtin' }, shape);
  if (force === 'sgmat' && can) return 'sgmat';
  if (force === 'scalar' && dtype === 'float32') return 'scalar';
  if (force === undefined && can && dtype === 'float16') return 'sgmat';
  return 'tile';
}

/** Largest power of two <= n dividing m. */
function pow2Dividing(m: number, n: number): number {
  let p = 1;
  while (p * 2 <= n && m % (p * 2) === 0) p *= 2;
  return p;
}

/** The prefill config for this shape: first candidate that fits the shared memory limit. */
export function choosePrefill(a: FlashAttentionRaggedPagedAttrs, sharedLimit: number, lanes: number, threadLimit: number): PrefillConfig & { name: string } {
  const g = a.nHeads / a.nKvHeads;
  const d4 = a.headDim / 4;
  const shape = { headDim: a.headDim, nHeads: a.nHeads, nKvHeads: a.nKvHeads };
  for (const n of webgpuFlashTuning.prefill) {
    const tc = pow2Dividing(d4, n.tc);
    if (n.bc % tc !== 0) continue;
    const rm = a.headDim > 128 ? Math.min(n.rm, 2) : n.rm;
    const tq = Math.max(1, Math.round((n.tq * 4) / g));
    const sub = webgpuFlashTuning.subgroups && lanes >= tc && tc > 1;
    const cfg = { name: n.name, tq, bc: n.bc, rm, tc, subgroups: sub, prefetch: n.prefetch ?? webgpuFlashTuning.prefillPrefetch };
    if (prefillSharedBytes(cfg, shape) <= sharedLimit && prefillDims(cfg, shape).wg <= threadLimit) return cfg;
  }
  throw new Error(`[${W}] no prefill tile fits ${sharedLimit} bytes of workgroup memory for headDim ${a.headDim}, group ${g}`);
}

/** Decode kernels, fastest first; `TFJS_ATTENTION_WEBGPU_DECODE` forces one where it applies. */
export type DecodeKind = 'stream' | 'packed' | 'subgroup' | 'tiles';
export type ChosenDecode = ({ kind: 'tiles' } & DecodeConfig) | ({ kind: 'subgroup' } & SubgroupDecodeConfig) | ({ kind: 'packed' } & PackedDecodeConfig)
  | ({ kind: 'stream' } & StreamDecodeConfig);

/** The forced decode kernel (TFJS_ATTENTION_WEBGPU_DECODE=stream|packed|subgroup|tiles), or undefined. */
export function forcedDecode(): DecodeKind | undefined {
  const v = envSwitch('WEBGPU_DECODE');
  if (v === undefined || v === '' || v === 'auto') return undefined;
  if (v !== 'stream' && v !== 'packed' && v !== 'subgroup' && v !== 'tiles') {
    throw new Error(`[${W}] TFJS_ATTENTION_WEBGPU_DECODE (${v}) must be one of auto, stream, packed, subgroup, tiles`);
  }
  return v;
}

/**
 * Decode config: for a compact cache the packed kernel, else the subgroup kernel where subgroups
 * have a fixed size, else shared-memory tiles (each skipped when it does not apply or fit; a kernel
 * forced by TFJS_ATTENTION_WEBGPU_DECODE that cannot run here falls through to the next).
 */
export function chooseDecode(a: FlashAttentionRaggedPagedAttrs, sharedLimit: number, sgs = 0, dtype: KVCacheDType = 'float32'): ChosenDecode {
  const shape = { headDim: a.headDim, nHeads: a.nHeads, nKvHeads: a.nKvHeads };
  const t = webgpuFlashTuning;
  const force = forcedDecode();
  const cwWant = dtype === 'float32' ? t.decodeStreamFloat32Words : t.decodeStreamWords;
  const slay = t.subgroups && sgs > 0 ? streamDecodeLayout(dtype, a.headDim, sgs, cwWant, t.decodeStreamVec) : null;
  const streamAuto = t.decodeStream && sgs >= t.decodeStreamMinSubgroup && (dtype !== 'float32' || t.decodeStreamFloat32);
  if (slay && (force === 'stream' || (force === undefined && streamAuto))) {
    const g = a.nHeads / a.nKvHeads;
    const u = Math.max(1, Math.min(t.decodeStreamKeys, Math.floor(32 / g)));
    const cfg = { sgs, nw: t.decodeStreamWarps, cw: slay.cw, vec: t.decodeStreamVec, u, prefetch: t.decodeStreamPrefetch, widen: t.decodeStreamWiden === 'auto' ? (dtype === 'int8' ? 'cvt' as const : 'bits' as const) : t.decodeStreamWiden, reduce: t.decodeStreamReduce, qShared: t.decodeStreamQShared };
    if (streamDecodeSharedBytes(cfg, shape) <= sharedLimit) return { kind: 'stream', ...cfg };
  }
  const lay = t.subgroups && sgs > 0 ? packedDecodeLayout(dtype, a.headDim, sgs) : null;
  if (lay && (force === 'packed' || (force === undefined && t.decodePacked))) {
    const g = a.nHeads / a.nKvHeads;
    const u = Math.max(1, Math.min(Math.floor(t.decodePackedWords / lay.cw), Math.floor(32 / g)));
    const cfg = { sgs, nw: t.decodePackedWarps, u };
    if (packedDecodeSharedBytes(cfg, shape) <= sharedLimit) return { kind: 'packed', ...cfg };
  }
  if (force !== 'tiles' && t.decodeSubgroup && t.subgroups && sgs > 0) {
    // Fewer keys per block when lanes hold several columns (small subgroups): smaller shaders.
    const cpl = Math.ceil(a.headDim / 4 / sgs);
    const g = a.nHeads / a.nKvHeads;
    const u = Math.max(1, Math.min(Math.floor(t.decodeSubgroupKeys / cpl), Math.floor(32 / g)));
    const cfg = { sgs, nw: t.decodeSubgroupWarps, u };
    if (subgroupDecodeSharedBytes(cfg, shape) <= sharedLimit) return { kind: 'subgroup', ...cfg };
  }
  for (const bcd of webgpuFlashTuning.decodeBc) {
    const cfg = { bcd, wg: webgpuFlashTuning.decodeWg, prefetch: webgpuFlashTuning.decodePrefetch };
    if (decodeSharedBytes(cfg, shape) <= sharedLimit) return { kind: 'tiles', ...cfg };
  }
  throw new Error(`[${W}] no decode tile fits ${sharedLimit} bytes of workgroup memory for headDim ${a.headDim}`);
}

/** Which path to take. */
export function flashPath(a: FlashAttentionRaggedPagedAttrs): 'prefill' | 'decode' {
  if (a.variant === 'prefill' || a.variant === 'decode') return a.variant;
  let maxNew = 0;
  for (const n of a.collection.numNewTokens) maxNew = Math.max(maxNew, n);
  return maxNew <= webgpuFlashTuning.decodeMaxNew ? 'decode' : 'prefill';
}

/**
 * The meta block and its numbers: tiles of `tq` tokens (heaviest key ranges first), and for the
 * decode path (`bcd` set) the split count and keys per split.
 */
export function buildMeta(a: FlashAttentionRaggedPagedAttrs, tq: number, bcd?: number, split?: { target: number; minKeys: number }): { meta: Int32Array; numTiles: number; numSplits: number } {
  const c = a.collection;
  const batch = c.seqIds.length;
  const { window, chunk, variant } = a.mask;
  const tiles: [number, number, number][] = []; // (b, tq0, keys)
  let maxKeys = 0;
  for (let b = 0; b < batch; b++) {
    const start = c.startPositions[b];
    const L = start + c.numNewTokens[b];
    for (let t0 = 0; t0 < c.numNewTokens[b]; t0 += tq) {
      const i1 = start + Math.min(t0 + tq, c.numNewTokens[b]) - 1;
      const [lo, hi] = keyRangeHost(variant, window, chunk, start + t0, i1, L);
      tiles.push([b, t0, hi - lo]);
      maxKeys = Math.max(maxKeys, hi - lo);
    }
  }
  tiles.sort((x, y) => y[2] - x[2]);
  let numSplits = 1;
  let splitKeys = Math.max(1, maxKeys);
  if (bcd !== undefined) {
    const t = webgpuFlashTuning;
    const { target, minKeys } = split ?? { target: t.decodeTargetWorkgroups, minKeys: t.decodeMinSplitKeys };
    const want = Math.ceil(target / Math.max(1, tiles.length * a.nKvHeads));
    numSplits = Math.max(1, Math.min(want, Math.ceil(maxKeys / minKeys)));
    splitKeys = Math.ceil(Math.ceil(maxKeys / numSplits) / bcd) * bcd;
    numSplits = Math.max(1, Math.ceil(maxKeys / splitKeys));
  }
  const ps = c.cache.params.pageSize;
  const pagesOff = 16 + 4 * batch;
  const tilesOff = pagesOff + c.pageTable.length;
  const meta = new Int32Array(tilesOff + 2 * tiles.length);
  const f = new Float32Array(1);
  f[0] = a.scale * Math.LOG2E;
  meta.set([tiles.length, c.maxPagesPerSeq, window | 0, chunk | 0, batch, pagesOff, tilesOff, numSplits,
    new Int32Array(f.buffer)[0], c.totalTokens, splitKeys, MASK_CODE[variant], ps, (ps & (ps - 1)) === 0 ? Math.log2(ps) : -1]);
  for (let b = 0; b < batch; b++) meta.set([c.startPositions[b], c.numNewTokens[b], c.rowOffsets[b]], 16 + 4 * b);
  meta.set(c.pageTable, pagesOff);
  tiles.forEach(([b, t0], i) => { meta[tilesOff + 2 * i] = b; meta[tilesOff + 2 * i + 1] = t0; });
  return { meta, numTiles: tiles.length, numSplits };
}
