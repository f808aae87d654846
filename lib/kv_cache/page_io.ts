/**
 * Copies between packed token rows and the page pools. Pools are
 * `[numPages, nKvHeads, pageSize, headDim]`; the caller has validated every index.
 */
import type { PagedKVCollection } from './collection.js';
import type { ResolvedKVCacheParams } from './params.js';

/**
 * Writes packed rows `src` (`[totalTokens, nKvHeads, headDim]`) into `pool`: row
 * `rowOffsets[b] + i` lands at position `startPositions[b] + i` of batch entry b.
 */
export function writeRows(pool: Float32Array, src: Float32Array, c: PagedKVCollection, p: ResolvedKVCacheParams): void {
  const { nKvHeads, headDim, pageSize } = p;
  const rowStride = nKvHeads * headDim;
  const headStride = pageSize * headDim;
  const pageStride = nKvHeads * headStride;
  const batch = c.seqIds.length;
  for (let b = 0; b < batch; b++) {
    const start = c.startPositions[b];
    const row0 = c.rowOffsets[b];
    const n = c.numNewTokens[b];
    const tableRow = b * c.maxPagesPerSeq;
    for (let i = 0; i < n; i++) {
      const pos = start + i;
      const page = c.pageTable[tableRow + Math.floor(pos / pageSize)];
      const slotBase = page * pageStride + (pos % pageSize) * headDim;
      const srcBase = (row0 + i) * rowStride;
      for (let h = 0; h < nKvHeads; h++) {
        const d0 = slotBase + h * headStride;
        const s0 = srcBase + h * headDim;
        for (let d = 0; d < headDim; d++) pool[d0 + d] = src[s0 + d]; // [headDim]
      }
    }
  }
}

/**
 * Copies the first `length` positions of batch entry `b` out of `pool`, head-major:
 * returns `[nKvHeads, length, headDim]`. One `set` per (page, head): a page row of one head
 * is contiguous in the pool and in the output.
 */
export function readRows(pool: Float32Array, c: PagedKVCollection, b: number, length: number, p: ResolvedKVCacheParams): Float32Array {
  const { nKvHeads, headDim, pageSize } = p;
  const out = new Float32Array(nKvHeads * length * headDim); // [nKvHeads, length, headDim]
  const headStride = pageSize * headDim;
  const pageStride = nKvHeads * headStride;
  const tableRow = b * c.maxPagesPerSeq;
  const pages = Math.ceil(length / pageSize);
  for (let j = 0; j < pages; j++) {
    const page = c.pageTable[tableRow + j];
    const first = j * pageSize;
    const count = (Math.min(length, first + pageSize) - first) * headDim;
    for (let h = 0; h < nKvHeads; h++) {
      const s0 = page * pageStride + h * headStride;
      out.set(pool.subarray(s0, s0 + count), (h * length + first) * headDim);
    }
  }
  return out;
}

/** Copies page `src` onto page `dst` (all heads and slots) within one pool. */
export function copyPage(pool: Float32Array, src: number, dst: number, p: ResolvedKVCacheParams): void {
  const size = p.nKvHeads * p.pageSize * p.headDim;
  pool.copyWithin(dst * size, src * size, src * size + size);
}
