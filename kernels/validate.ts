/**
 * Argument checks of every custom kernel, run once by its op (kernels/ops.ts, train_ops.ts,
 * projection_matmul.ts) before dispatch, on every path (fused on any backend, or composite), so
 * the same bad call gets the same error everywhere and nothing is written before the checks pass.
 * Each error names the kernel, the argument and both values.
 *
 * What a paged op checks: the input tensors (live, float32, shaped for the collection), the attrs
 * (head counts, layer, mask, variant) against the cache, the collection's freshness through its
 * cache (a view whose sequence was released, re-fetched or stepped is rejected before any write;
 * a hand-built object never passes, since the cache only knows the views it made), and every page
 * and table row the kernel will touch, computed from the collection's arrays rather than trusted
 * summary fields (maxContext).
 */
import * as tf from '@tensorflow/tfjs';

import { check } from '../core/errors.js';
import type { PagedKVCollection } from '../core/paged_kv_store.js';
import type { RopeTables } from '../core/rope_tables.js';
import { MASK_CODE, type MaskSpec } from '../core/types.js';
import type { FlashAttentionRaggedAttrs, FlashAttentionRaggedPagedAttrs, RopeRaggedAttrs, RopeSplitStoreRaggedAttrs } from './kernel_names.js';

const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);

/** A live float32 tensor of rank 2 (or absent, when optional). */
export function checkTensor(where: string, name: string, t: unknown): asserts t is tf.Tensor2D {
  check(t instanceof tf.Tensor, where, () => `${name} must be a tf.Tensor, got ${t === null ? 'null' : typeof t}`);
  check(!t.isDisposed, where, () => `${name} (shape [${t.shape}]) was disposed before the call`);
  check(t.dtype === 'float32', where, () => `${name} must be float32, got ${t.dtype}`);
}

function checkHeads(where: string, a: { nHeads: number; nKvHeads: number; headDim: number }): void {
  check(isInt(a.nKvHeads) && a.nKvHeads >= 1 && isInt(a.nHeads) && a.nHeads % a.nKvHeads === 0 && a.nHeads >= 1, where,
    () => `nHeads (${a.nHeads}) must be a multiple of nKvHeads (${a.nKvHeads})`);
  check(isInt(a.headDim) && a.headDim >= 1, where, () => `headDim (${a.headDim}) must be an integer >= 1`);
}

export function checkMask(where: string, mask: MaskSpec): void {
  check(mask !== null && typeof mask === 'object' && MASK_CODE[mask.variant] !== undefined, where,
    () => `mask.variant must be one of ${Object.keys(MASK_CODE).join(', ')}, got '${mask?.variant}'`);
  if (mask.variant === 'sliding_window' || mask.variant === 'sliding_window_causal') {
    check(isInt(mask.window) && mask.window >= 1, where, () => `mask.window (${mask.window}) must be an integer >= 1 for '${mask.variant}'`);
  }
  if (mask.variant === 'chunked_causal') {
    check(isInt(mask.chunk) && mask.chunk >= 1, where, () => `mask.chunk (${mask.chunk}) must be an integer >= 1 for 'chunked_causal'`);
  }
}

/**
 * The collection: made by its cache's fetch and still live (`stepped: true` allows entries already
 * stepped, as attention and its gradient may read after the step), arrays long enough and
 * consistent, every page a step touches a page of the pool. Returns the largest start + new tokens.
 */
function checkCollection(where: string, c: PagedKVCollection, a: { nKvHeads: number; headDim: number; layerIdx: number }, stepped: boolean): number {
  check(c !== null && typeof c === 'object' && c.cache !== null && typeof c.cache?.validateCollection === 'function', where,
    () => 'collection must be a view made by PagedKVCache.fetch');
  const p = c.cache.params;
  check(isInt(a.layerIdx) && a.layerIdx >= 0 && a.layerIdx < p.numLayers, where,
    () => `layerIdx (${a.layerIdx}) must be an integer in [0, ${p.numLayers})`);
  check(p.nKvHeads === a.nKvHeads, where, () => `cache nKvHeads (${p.nKvHeads}) must equal attrs.nKvHeads (${a.nKvHeads})`);
  check(p.headDim === a.headDim, where, () => `cache headDim (${p.headDim}) must equal attrs.headDim (${a.headDim})`);
  const batch = c.seqIds.length;
  if (stepped) for (let b = 0; b < batch; b++) c.cache.validateCollection(c, where, b);
  else c.cache.validateCollection(c, where);
  const { pageSize, numPages } = p, mp = c.maxPagesPerSeq;
  check(c.startPositions.length >= batch && c.numNewTokens.length >= batch && c.rowOffsets.length >= batch + 1, where,
    () => `collection arrays are shorter than the batch (${batch})`);
  check(isInt(mp) && mp >= 0 && c.pageTable.length >= batch * mp, where,
    () => `collection.pageTable length (${c.pageTable.length}) must be >= batch * maxPagesPerSeq (${batch * mp})`);
  check(c.rowOffsets[0] === 0 && c.rowOffsets[batch] === c.totalTokens, where,
    () => `collection.rowOffsets must run from 0 to totalTokens (${c.totalTokens}), got ${c.rowOffsets[0]} .. ${c.rowOffsets[batch]}`);
  let maxContext = 0;
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
    maxContext = Math.max(maxContext, start + n);
  }
  return maxContext;
}

/** cos/sin tables of `rows` positions at least, for headDim. */
function checkTables(where: string, rope: RopeTables, headDim: number, rows: number): void {
  check(rope !== null && typeof rope === 'object' && rope.cos instanceof Float32Array && rope.sin instanceof Float32Array, where,
    () => 'rope must be RopeTables with Float32Array cos and sin');
  check(rope.headDim === headDim, where, () => `rope.headDim (${rope.headDim}) must equal headDim (${headDim})`);
  check(isInt(rope.rotaryDim) && rope.rotaryDim % 2 === 0 && rope.rotaryDim >= 0 && rope.rotaryDim <= headDim, where,
    () => `rope.rotaryDim (${rope.rotaryDim}) must be even and <= headDim (${headDim})`);
  check(rows <= rope.maxPositions, where, () => `positions up to ${rows - 1} need rope.maxPositions >= ${rows}, it is ${rope.maxPositions}`);
  const need = rows * (rope.rotaryDim / 2);
  check(rope.cos.length >= need && rope.sin.length >= need, where,
    () => `rope.cos / rope.sin hold ${rope.cos.length} / ${rope.sin.length} values, positions 0..${rows - 1} need ${need}`);
}

/** RopeSplitStoreRagged's inputs and attrs; throws before anything is written. */
export function validateRopeSplitStoreRagged(qkv: unknown, a: RopeSplitStoreRaggedAttrs, qNormWeight?: unknown, kNormWeight?: unknown): void {
  const W = 'RopeSplitStoreRagged';
  checkTensor(W, 'qkv', qkv);
  checkHeads(W, a);
  const c = a.collection;
  const maxContext = checkCollection(W, c, a, false);
  const width = (a.nHeads + 2 * a.nKvHeads) * a.headDim;
  check(qkv.rank === 2 && qkv.shape[0] === c.totalTokens && qkv.shape[1] === width, W,
    () => `qkv shape [${qkv.shape}] must be [totalTokens (${c.totalTokens}), ${width}]`);
  checkTables(W, a.rope, a.headDim, maxContext);
  check(typeof a.qkNormEps === 'number' && !Number.isNaN(a.qkNormEps), W, () => `qkNormEps (${a.qkNormEps}) must be a number (-1: no qk-norm)`);
  if (a.qkNormEps >= 0) {
    check(qNormWeight !== undefined && kNormWeight !== undefined, W, () => `qkNormEps (${a.qkNormEps}) >= 0 needs qNormWeight and kNormWeight inputs`);
    for (const [name, w] of [['qNormWeight', qNormWeight], ['kNormWeight', kNormWeight]] as const) {
      checkTensor(W, name, w);
      check(w.rank === 1 && w.shape[0] === a.headDim, W, () => `${name} shape [${w.shape}] must be [headDim (${a.headDim})]`);
    }
  }
}

/** FlashAttentionRaggedPaged's input and attrs. */
export function validateFlashAttentionRaggedPaged(q: unknown, a: FlashAttentionRaggedPagedAttrs): void {
  const W = 'FlashAttentionRaggedPaged';
  checkTensor(W, 'q', q);
  checkHeads(W, a);
  const c = a.collection;
  checkCollection(W, c, a, true);
  check(q.rank === 2 && q.shape[0] === c.totalTokens && q.shape[1] === a.nHeads * a.headDim, W,
    () => `q shape [${q.shape}] must be [totalTokens (${c.totalTokens}), nHeads * headDim (${a.nHeads * a.headDim})]`);
  checkMask(W, a.mask);
  check(typeof a.scale === 'number' && Number.isFinite(a.scale), W, () => `scale (${a.scale}) must be a finite number`);
  check(['auto', 'prefill', 'decode', undefined].includes(a.variant), W, () => `variant must be 'auto', 'prefill' or 'decode', got '${a.variant}'`);
}

/** FlashAttentionRagged's inputs and attrs (the training attention). */
export function validateFlashAttentionRagged(q: unknown, k: unknown, v: unknown, a: FlashAttentionRaggedAttrs): void {
  const W = 'flashAttentionRagged';
  checkTensor(W, 'q', q);
  checkTensor(W, 'k', k);
  checkTensor(W, 'v', v);
  checkHeads(W, a);
  checkMask(W, a.mask);
  const T = q.shape[0], r = a.rowOffsets;
  check(q.rank === 2 && q.shape[1] === a.nHeads * a.headDim, W, () => `q must be [T, ${a.nHeads * a.headDim}], got [${q.shape}]`);
  for (const [name, t] of [['k', k], ['v', v]] as const) {
    check(t.rank === 2 && t.shape[0] === T && t.shape[1] === a.nKvHeads * a.headDim, W, () =>
      `${name} must be [${T}, ${a.nKvHeads * a.headDim}], got [${t.shape}]`);
  }
  check(r instanceof Int32Array && r.length >= 1 && r[0] === 0 && r[r.length - 1] === T, W, () =>
    `rowOffsets must be an Int32Array from 0 to T (${T}), got [${Array.from(r ?? [])}]`);
  for (let i = 1; i < r.length; i++) check(r[i] >= r[i - 1], W, () => `rowOffsets must not decrease, got ${r[i - 1]} then ${r[i]} at index ${i}`);
}

/** RopeRagged's input and attrs: one position per row, each a row of the tables. */
export function validateRopeRagged(x: unknown, a: RopeRaggedAttrs): void {
  const W = 'ropeRagged';
  checkTensor(W, 'x', x);
  const hd = a.tables?.headDim;
  check(x.rank === 2 && isInt(hd) && hd >= 1 && x.shape[1] % hd === 0, W, () => `x shape [${x.shape}] must be [T, heads * headDim (${hd})]`);
  check(a.positions instanceof Int32Array && a.positions.length === x.shape[0], W,
    () => `positions must be an Int32Array of one position per row (${x.shape[0]}), got length ${a.positions?.length}`);
  let max = -1;
  for (let i = 0; i < a.positions.length; i++) {
    const p = a.positions[i];
    check(p >= 0, W, () => `positions[${i}] (${p}) must be >= 0`);
    if (p > max) max = p;
  }
  checkTables(W, a.tables, hd, max + 1);
}
