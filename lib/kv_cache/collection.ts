/**
 * One step's view of the paged cache for a ragged batch (the reference's `PagedCacheValues`):
 * which sequences run, where each starts, how many new tokens each brings, and the page table.
 * Made by `PagedKVCache.fetch`, consumed by the layer and the kernels, committed by `PagedKVCache.step`.
 */
export interface PagedKVCollection {
  /** The cache this view belongs to. */
  readonly cache: import('./paged_kv_cache.js').PagedKVCache;
  /** Sequence ids in batch order. */
  readonly seqIds: readonly number[];
  /** `[batch]` tokens each sequence already has in the cache (= position of its first new token). */
  readonly startPositions: Int32Array;
  /** `[batch]` new tokens each sequence brings this step. */
  readonly numNewTokens: Int32Array;
  /** `[batch + 1]` prefix sums of numNewTokens: the packed rows of each sequence. */
  readonly rowOffsets: Int32Array;
  /** `[batch, maxPagesPerSeq]` page ids, -1 past the pages a sequence owns (enough for start + new tokens). */
  readonly pageTable: Int32Array;
  readonly maxPagesPerSeq: number;
  /** Total new tokens (rowOffsets[batch]). */
  readonly totalTokens: number;
  /** Largest start + new over the batch. */
  readonly maxContext: number;
}
