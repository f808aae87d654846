import { check, checkInt } from '../errors.js';
import { KV_CACHE_DTYPES, type KVCacheDType } from '../../core/kv_dtype.js';

/**
 * Shape of a paged KV cache (after the reference's `KVCacheParams`).
 *
 * Storage per layer, K and V each: `[numPages, nKvHeads, pageSize, headDim]` elements of `dtype`
 * ("head-major pages": one page of one KV head is `pageSize * headDim` contiguous elements);
 * core/kv_dtype.ts says how each dtype packs (int8 adds a float32 scale per token and KV head).
 * A token at position `p` of a sequence lives in page `pageTable[floor(p / pageSize)]`,
 * slot `p % pageSize`.
 */
export interface KVCacheParams {
  /**
   * Storage dtype of K (after RoPE) and V (default 'float32'): 'float16', 'bfloat16' (round to
   * nearest even), 'int8' (one scale per token and KV head) or 'float8_e4m3' (per-tensor kScale/vScale).
   */
  dtype?: KVCacheDType;
  /** float8_e4m3 only: K is stored as e4m3(k / kScale) (default 1). */
  kScale?: number;
  /** float8_e4m3 only: V is stored as e4m3(v / vScale) (default 1). */
  vScale?: number;
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
    kScale: p.kScale ?? 1,
    vScale: p.vScale ?? 1,
    nKvHeads: p.nKvHeads,
    headDim: p.headDim,
    pageSize: p.pageSize ?? 128,
    numLayers: p.numLayers ?? 1,
    numPages: p.numPages,
  };
  checkKvDtype(r, where);
  checkInt(r.nKvHeads, where, 'nKvHeads', 1);
  checkInt(r.headDim, where, 'headDim', 1);
  checkInt(r.pageSize, where, 'pageSize', 1);
  checkInt(r.numLayers, where, 'numLayers', 1);
  checkInt(r.numPages, where, 'numPages', 1);
  return r;
}

/** Checks `dtype`, `kScale` and `vScale` (names prefixed with `prefix`, e.g. 'kvParams.'). */
export function checkKvDtype(p: Pick<KVCacheParams, 'dtype' | 'kScale' | 'vScale'>, where: string, prefix = ''): void {
  const dtype = p.dtype ?? 'float32';
  check(KV_CACHE_DTYPES.includes(dtype), where, () => `${prefix}dtype must be one of ${KV_CACHE_DTYPES.join(', ')}, got '${dtype}'`);
  for (const name of ['kScale', 'vScale'] as const) {
    const v = p[name] ?? 1;
    check(typeof v === 'number' && Number.isFinite(v) && v > 0, where, () => `${prefix}${name} (${v}) must be a finite number > 0`);
    check(v === 1 || dtype === 'float8_e4m3', where, () => `${prefix}${name} (${v}) is only used with dtype 'float8_e4m3', got dtype '${dtype}'`);
  }
}
