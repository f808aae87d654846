import type { PagedKVCollection } from './collection.js';
import { type KVCacheParams, type ResolvedKVCacheParams, resolveKVCacheParams } from './params.js';

/**
 * A pool of fixed-size pages shared by all sequences, a page table per sequence and its
 * cache length (the reference's paged KV cache manager).
 *
 * Storage: per layer one K and one V `Float32Array` of `[numPages, nKvHeads, pageSize, headDim]`,
 * allocated once. Appending writes only the new tokens' slots.
 *
 * @example
 * const cache = new PagedKVCache({ nKvHeads: 2, headDim: 16, pageSize: 16, numLayers: 1, numPages: 64 });
 * cache.addSequence(0);
 * const kv = cache.fetch([0], [5]);            // room for 5 new tokens of sequence 0
 * layer.callRagged(0, hidden, kv, undefined, kv.rowOffsets);
 * cache.step(kv);                              // sequence 0 now holds 5 tokens
 */
export class PagedKVCache {
  readonly params: ResolvedKVCacheParams;

  constructor(params: KVCacheParams) {
    this.params = resolveKVCacheParams(params, 'PagedKVCache');
    throw new Error('TODO');
  }

  /** Registers a new empty sequence; returns its id (the given one, or the next free id). */
  addSequence(seqId?: number): number { throw new Error('TODO'); }
  hasSequence(seqId: number): boolean { throw new Error('TODO'); }
  /** Frees the sequence's pages (pages shared with a fork stay until the last owner goes). */
  releaseSequence(seqId: number): void { throw new Error('TODO'); }
  /** New sequence sharing `srcId`'s tokens (prefix shared, copy on write). Returns its id. */
  forkSequence(srcId: number, dstId?: number): number { throw new Error('TODO'); }
  /** Tokens the sequence holds. */
  cacheLength(seqId: number): number { throw new Error('TODO'); }
  /** Page ids of the sequence, in order. */
  pagesOf(seqId: number): readonly number[] { throw new Error('TODO'); }
  get numFreePages(): number { throw new Error('TODO'); }
  get sequenceIds(): number[] { throw new Error('TODO'); }

  /**
   * Prepares a step: makes sure every sequence owns pages for `start + new` tokens (copying
   * shared pages that will be written) and returns the step's view. Atomic: on any error
   * (unknown sequence, duplicate id, out of pages) the cache is left exactly as it was.
   */
  fetch(seqIds: readonly number[], numNewTokens: readonly number[]): PagedKVCollection { throw new Error('TODO'); }
  /** Commits a fetched step: each sequence's length grows by its new tokens. */
  step(collection: PagedKVCollection): void { throw new Error('TODO'); }

  /** K pool of a layer: `[numPages, nKvHeads, pageSize, headDim]`. */
  keys(layerIdx: number): Float32Array { throw new Error('TODO'); }
  /** V pool of a layer: `[numPages, nKvHeads, pageSize, headDim]`. */
  values(layerIdx: number): Float32Array { throw new Error('TODO'); }

  /**
   * Writes the new tokens' K and V (`[totalTokens, nKvHeads, headDim]` each, packed in the
   * collection's row order) into their slots. Used by the composite store.
   */
  writeTokens(layerIdx: number, collection: PagedKVCollection, k: Float32Array, v: Float32Array): void { throw new Error('TODO'); }
  /**
   * Copies the first `length` tokens of batch entry `b` out of the pages, head-major:
   * returns `{k, v}` each `[nKvHeads, length, headDim]`. Used by the composite attention.
   */
  readSequence(layerIdx: number, collection: PagedKVCollection, b: number, length: number): { k: Float32Array; v: Float32Array } { throw new Error('TODO'); }
}
