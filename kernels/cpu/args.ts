/**
 * Argument checks shared by the CPU kernels (native and TypeScript): attrs against the input
 * shape, the cache's parameters and the collection, with errors naming kernel, argument and values.
 */
import { check } from '../../core/errors.js';
import { MASK_CODE } from '../../core/types.js';
import type { FlashAttentionRaggedPagedAttrs, RopeSplitStoreRaggedAttrs } from '../kernel_names.js';
import { ATTN_ARG, packInts, ROPE_ARG } from './native_args.js';

const VARIANT_CODE = { auto: 0, prefill: 1, decode: 2 } as const;

function checkCommon(where: string, a: { nHeads: number; nKvHeads: number; headDim: number; collection: RopeSplitStoreRaggedAttrs['collection'] },
  shape: readonly number[], width: number): void {
  const { nHeads, nKvHeads, headDim, collection } = a;
  check(nKvHeads >= 1 && nHeads % nKvHeads === 0, where, () => `nHeads (${nHeads}) must be a multiple of nKvHeads (${nKvHeads})`);
  check(shape.length === 2 && shape[0] === collection.totalTokens && shape[1] === width, where,
    () => `input shape [${shape}] must be [totalTokens (${collection.totalTokens}), ${width}]`);
  const p = collection.cache.params;
  check(p.nKvHeads === nKvHeads, where, () => `cache nKvHeads (${p.nKvHeads}) must equal attrs.nKvHeads (${nKvHeads})`);
  check(p.headDim === headDim, where, () => `cache headDim (${p.headDim}) must equal attrs.headDim (${headDim})`);
  checkCollection(where, collection);
}

/**
 * The native kernels index the pools through the collection without bounds checks, so every page
 * a step touches is checked here (cost: one pass over the batch's pages).
 */
function checkCollection(where: string, c: RopeSplitStoreRaggedAttrs['collection']): void {
  const batch = c.seqIds.length, { pageSize, numPages } = c.cache.params, mp = c.maxPagesPerSeq;
  check(c.startPositions.length >= batch && c.numNewTokens.length >= batch && c.rowOffsets.length >= batch + 1, where,
    () => `collection arrays are shorter than the batch (${batch})`);
  check(c.pageTable.length >= batch * mp, where, () => `collection.pageTable length (${c.pageTable.length}) must be >= batch * maxPagesPerSeq (${batch * mp})`);
  check(c.rowOffsets[0] === 0 && c.rowOffsets[batch] === c.totalTokens, where,
    () => `collection.rowOffsets must run from 0 to totalTokens (${c.totalTokens}), got ${c.rowOffsets[0]} .. ${c.rowOffsets[batch]}`);
  for (let b = 0; b < batch; b++) {
    const n = c.numNewTokens[b], start = c.startPositions[b];
    check(n >= 0 && start >= 0 && c.rowOffsets[b + 1] - c.rowOffsets[b] === n, where,
      () => `collection entry ${b}: numNewTokens (${n}) must equal rowOffsets[${b + 1}] - rowOffsets[${b}] (${c.rowOffsets[b + 1] - c.rowOffsets[b]}) and startPositions (${start}) be >= 0`);
    const pages = Math.ceil((start + n) / pageSize);
    check(pages <= mp, where, () => `collection entry ${b} needs ${pages} pages for ${start + n} tokens, maxPagesPerSeq is ${mp}`);
    for (let i = 0; i < pages; i++) {
      const page = c.pageTable[b * mp + i];
      check(page >= 0 && page < numPages, where, () => `collection.pageTable[${b}, ${i}] (${page}) must be a page id in [0, ${numPages})`);
    }
  }
}

/** The layer's pools must hold `[numPages, nKvHeads, pageSize, headDim]` floats each. */
export function checkPools(where: string, c: RopeSplitStoreRaggedAttrs['collection'], k: Float32Array, v: Float32Array): void {
  const p = c.cache.params, size = p.numPages * p.nKvHeads * p.pageSize * p.headDim;
  check(k.length >= size && v.length >= size, where, () => `cache pools hold ${k.length} / ${v.length} floats, need ${size}`);
}

/** Checks RopeSplitStoreRagged's attrs; returns the addon's int block. */
export function ropeArgs(a: RopeSplitStoreRaggedAttrs, shape: readonly number[], hasNormWeights: boolean): Int32Array {
  const W = 'RopeSplitStoreRagged';
  const { nHeads, nKvHeads, headDim, rope, collection: c } = a;
  checkCommon(W, a, shape, (nHeads + 2 * nKvHeads) * headDim);
  check(rope.headDim === headDim, W, () => `rope.headDim (${rope.headDim}) must equal headDim (${headDim})`);
  check(rope.rotaryDim % 2 === 0 && rope.rotaryDim <= headDim, W,
    () => `rope.rotaryDim (${rope.rotaryDim}) must be even and <= headDim (${headDim})`);
  check(c.maxContext <= rope.maxPositions, W, () => `collection.maxContext (${c.maxContext}) must be <= rope.maxPositions (${rope.maxPositions})`);
  check(a.qkNormEps < 0 || hasNormWeights, W, () => `qkNormEps (${a.qkNormEps}) >= 0 needs qNormWeight and kNormWeight inputs`);
  const p = c.cache.params;
  return packInts(ROPE_ARG, { T: shape[0], BATCH: c.seqIds.length, N_HEADS: nHeads, N_KV: nKvHeads, HEAD_DIM: headDim,
    ROTARY_DIM: rope.rotaryDim, INTERLEAVED: rope.interleaved ? 1 : 0, PAGE_SIZE: p.pageSize, MAX_PAGES: c.maxPagesPerSeq });
}

/** Checks FlashAttentionRaggedPaged's attrs; returns the addon's int block. */
export function attentionArgs(a: FlashAttentionRaggedPagedAttrs, shape: readonly number[]): Int32Array {
  const W = 'FlashAttentionRaggedPaged';
  const { nHeads, nKvHeads, headDim, mask, collection: c } = a;
  checkCommon(W, a, shape, nHeads * headDim);
  const code = MASK_CODE[mask.variant];
  check(code !== undefined, W, () => `mask.variant must be one of ${Object.keys(MASK_CODE).join(', ')}, got '${mask.variant}'`);
  if (mask.variant === 'sliding_window' || mask.variant === 'sliding_window_causal') {
    check(Number.isInteger(mask.window) && mask.window >= 1, W, () => `mask.window (${mask.window}) must be an integer >= 1 for '${mask.variant}'`);
  }
  if (mask.variant === 'chunked_causal') {
    check(Number.isInteger(mask.chunk) && mask.chunk >= 1, W, () => `mask.chunk (${mask.chunk}) must be an integer >= 1 for 'chunked_causal'`);
  }
  const variant = VARIANT_CODE[a.variant ?? 'auto'];
  check(variant !== undefined, W, () => `variant must be 'auto', 'prefill' or 'decode', got '${a.variant}'`);
  const p = c.cache.params;
  return packInts(ATTN_ARG, { BATCH: c.seqIds.length, N_HEADS: nHeads, N_KV: nKvHeads, HEAD_DIM: headDim, PAGE_SIZE: p.pageSize,
    MAX_PAGES: c.maxPagesPerSeq, MASK: code, WINDOW: mask.window | 0, CHUNK: mask.chunk | 0, VARIANT: variant });
}
