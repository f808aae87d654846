import { check, checkInt } from '../errors.js';
import type { DType } from '../types.js';

/**
 * Shape of a paged KV cache (after the reference's `KVCacheParams`).
 *
 * Storage per layer, K and V each: `[numPages, nKvHeads, pageSize, headDim]` float32
 * ("head-major pages": one page of one KV head is `pageSize * headDim` contiguous floats).
 * A token at position `p` of a sequence lives in page `pageTable[floor(p / pageSize)]`,
 * slot `p % pageSize`.
 */
export interface KVCacheParams {
  /** Storage dtype; float32 only. */
  dtype?: DType;
  nKvHeads: number;
  headDim: number;
  /** Tokens per page (default 128). */
  pageSize?: number;
  /** Number of attention layers sharing this cache (default 1). */
  numLayers?: number;
  /** Size of the page pool shared by all sequences. */
  numPages: number;
}

/** KVCacheParams with every default filled in and validated. */
export type ResolvedKVCacheParams = Required<KVCacheParams>;

export function resolveKVCacheParams(p: KVCacheParams, where = 'KVCacheParams'): ResolvedKVCacheParams {
  const r: ResolvedKVCacheParams = {
    dtype: p.dtype ?? 'float32',
    nKvHeads: p.nKvHeads,
    headDim: p.headDim,
    pageSize: p.pageSize ?? 128,
    numLayers: p.numLayers ?? 1,
    numPages: p.numPages,
  };
  check(r.dtype === 'float32', where, () => `dtype must be 'float32', got '${r.dtype}'`);
  checkInt(r.nKvHeads, where, 'nKvHeads', 1);
  checkInt(r.headDim, where, 'headDim', 1);
  checkInt(r.pageSize, where, 'pageSize', 1);
  checkInt(r.numLayers, where, 'numLayers', 1);
  checkInt(r.numPages, where, 'numPages', 1);
  return r;
}
