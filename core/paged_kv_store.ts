/**
 * What the kernels need from a paged KV cache, and one step's view of it. `PagedKVCache`
 * (lib/kv_cache/paged_kv_cache.ts) implements it; kernels see only this interface, so the
 * bottom layer (core/, kernels/) never imports the cache's bookkeeping.
 *
 * Storage per layer, K and V each: `[numPages, nKvHeads, pageSize, headDim]` elements of `params.dtype`
 * (core/kv_dtype.ts; int8 adds `[numPages, nKvHeads, pageSize]` float32 row scales). A token at
 * position `p` of a sequence lives in page `pageTable[floor(p / pageSize)]`, slot `p % pageSize`.
 */
import type { KVDeviceMirror } from './device_mirror.js';
import type { KVCacheDType, KVPool } from './kv_dtype.js';

/** The cache's shape, every default resolved. */
export interface KVStoreParams {
  readonly dtype: KVCacheDType;
  /** float8_e4m3: K = e4m3 code * kScale (1 for other dtypes). */
  readonly kScale: number;
  /** float8_e4m3: V = e4m3 code * vScale (1 for other dtypes). */
  readonly vScale: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly pageSize: number;
  readonly numLayers: number;
  readonly numPages: number;
}

/** The pools and checks kernels use; every method names `where` in its errors. */
export interface PagedKVStore {
  readonly params: KVStoreParams;
  /** K pool of a float32 cache `[numPages, nKvHeads, pageSize, headDim]` (syncs and drops a device mirror; other dtypes: pools). */
  keys(layerIdx: number): Float32Array;
  /** A layer's packed pools of any dtype, and int8's row scales `[numPages, nKvHeads, pageSize]` (syncs and drops a device mirror). */
  pools(layerIdx: number): KVLayerPools;
  /**
   * The pages `pages` of a layer decoded to float32, packed in that order: `{k, v}` each
   * `[pages.length, nKvHeads, pageSize, headDim]` (page `pages[i]` becomes page i).
   */
  decodePages(layerIdx: number, pages: Int32Array): { k: Float32Array; v: Float32Array };
  /** V pool of a layer, as keys. */
  values(layerIdx: number): Float32Array;
  /** Writes the new tokens' K and V (`[totalTokens, nKvHeads * headDim]` each, packed rows) into their slots. */
  writeTokens(layerIdx: number, collection: PagedKVCollection, k: Float32Array, v: Float32Array): void;
  /** The first `length` tokens of batch entry `b`, head-major: `{k, v}` each `[nKvHeads, length, headDim]`. */
  readSequence(layerIdx: number, collection: PagedKVCollection, b: number, length: number): { k: Float32Array; v: Float32Array };
  /**
   * Throws unless `collection` is a live view made by this store's latest fetch of its sequences
   * (none released, re-fetched or stepped since; with `b`, only entry b, which may be stepped).
   */
  validateCollection(collection: PagedKVCollection, where: string, b?: number): void;
  /** One more than the largest page id handed out so far. */
  readonly pageHighWater: number;
  /** The attached device mirror, if any. */
  readonly deviceMirror: KVDeviceMirror | null;
  /**
   * True while the host pools are still all zeros as allocated: no pool array handed out (keys,
   * values, pools), no writeTokens, no device mirror attached yet. A first mirror may then skip
   * uploading them (device buffers start zeroed). Optional: stores without it are uploaded.
   */
  readonly hostPoolsUntouched?: boolean;
  /** Makes `m` the authority on pool contents (null: sync back and detach). */
  attachDeviceMirror(m: KVDeviceMirror | null): void;
}

/** One layer's storage. `kRowScales` / `vRowScales` are non-null for int8 only. */
export interface KVLayerPools {
  readonly k: KVPool;
  readonly v: KVPool;
  readonly kRowScales: Float32Array | null;
  readonly vRowScales: Float32Array | null;
}

/**
 * One step's view of the paged cache for a ragged batch (the reference's `PagedCacheValues`):
 * which sequences run, where each starts, how many new tokens each brings, and the page table.
 * Made by `PagedKVCache.fetch`, consumed by the layer and the kernels, committed by `PagedKVCache.step`.
 */
export interface PagedKVCollection {
  /** The cache this view belongs to. */
  readonly cache: PagedKVStore;
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
