/**
 * Copies between packed float32 token rows and the page pools, encoding to / decoding from the
 * cache's dtype (core/kv_dtype.ts). Pools are `[numPages, nKvHeads, pageSize, headDim]` codes;
 * int8 row scales `[numPages, nKvHeads, pageSize]`. The caller has validated every index.
 */
import { type KVPool, decodeKvRow, encodeKvRow } from '../../core/kv_dtype.js';
import type { PagedKVCollection } from './collection.js';
import type { ResolvedKVCacheParams } from './params.js';

/** One of K or V of a layer: codes, int8 row scales (else null), per-tensor scale (1 unless float8_e4m3). */
export interface PoolSide { codes: KVPool; rowScales: Float32Array | null; scale: number }

/**
 * Writes packed rows `src` (`[totalTokens, nKvHeads, headDim]`) into the pool: row
 * `rowOffsets[b] + i` lands at position `startPositions[b] + i` of batch entry b.
 */
export function writeRows(pool: PoolSide, src: Float32Array, c: PagedKVCollection, p: ResolvedKVCacheParams): void {
  const { nKvHeads, headDim, pageSize, dtype } = p;
  const rowStride = nKvHeads * headDim;
  const batch = c.seqIds.length;
  for (let b = 0; b < batch; b++) {
    const start = c.startPositions[b];
    const row0 = c.rowOffsets[b];
    const n = c.numNewTokens[b];
    const tableRow = b * c.maxPagesPerSeq;
    for (let i = 0; i < n; i++) {
      const pos = start + i;
      const page = c.pageTable[tableRow + Math.floor(pos / pageSize)];
      const srcBase = (row0 + i) * rowStride;
      for (let h = 0; h < nKvHeads; h++) {
        const slot = (page * nKvHeads + h) * pageSize + (pos % pageSize); // [numPages, nKvHeads, pageSize]
        encodeKvRow(dtype, src, srcBase + h * headDim, headDim, pool.codes, slot * headDim, pool.rowScales, slot, pool.scale);
      }
    }
  }
}

/**
 * Copies the first `length` positions of batch entry `b` out of the pool, decoded and head-major:
 * returns `[nKvHeads, length, headDim]` float32. A page row of one head is contiguous in the pool
 * and in the output.
 */
export function readRows(pool: PoolSide, c: PagedKVCollection, b: number, length: number, p: ResolvedKVCacheParams): Float32Array {
  const { nKvHeads, headDim, pageSize, dtype } = p;
  const out = new Float32Array(nKvHeads * length * headDim); // [nKvHeads, length, headDim]
  const tableRow = b * c.maxPagesPerSeq;
  const pages = Math.ceil(length / pageSize);
  for (let j = 0; j < pages; j++) {
    const page = c.pageTable[tableRow + j];
    const first = j * pageSize;
    const count = Math.min(length, first + pageSize) - first;
    for (let h = 0; h < nKvHeads; h++) {
      const slot0 = (page * nKvHeads + h) * pageSize;
      if (dtype === 'float32') {
        const s0 = slot0 * headDim;
        out.set((pool.codes as Float32Array).subarray(s0, s0 + count * headDim), (h * length + first) * headDim);
        continue;
      }
      for (let i = 0; i < count; i++) {
        decodeKvRow(dtype, pool.codes, (slot0 + i) * headDim, headDim, pool.rowScales, slot0 + i, pool.scale, out, (h * length + first + i) * headDim);
      }
    }
  }
  return out;
}

/** Decodes whole pages `pages` into `[pages.length, nKvHeads, pageSize, headDim]` float32. */
export function decodePages(pool: PoolSide, pages: Int32Array, p: ResolvedKVCacheParams): Float32Array {
  const { nKvHeads, headDim, pageSize, dtype } = p;
  const rows = nKvHeads * pageSize, pageSize1 = rows * headDim;
  const out = new Float32Array(pages.length * pageSize1); // [pages, nKvHeads, pageSize, headDim]
  for (let i = 0; i < pages.length; i++) {
    const r0 = pages[i] * rows;
    for (let r = 0; r < rows; r++) {
      decodeKvRow(dtype, pool.codes, (r0 + r) * headDim, headDim, pool.rowScales, r0 + r, pool.scale, out, (i * rows + r) * headDim);
    }
  }
  return out;
}

/** Copies page `src` onto page `dst` (all heads and slots, codes and row scales) within one pool. */
export function copyPage(pool: PoolSide, src: number, dst: number, p: ResolvedKVCacheParams): void {
  const rows = p.nKvHeads * p.pageSize, size = rows * p.headDim;
  pool.codes.copyWithin(dst * size, src * size, src * size + size);
  pool.rowScales?.copyWithin(dst * rows, src * rows, src * rows + rows);
}
