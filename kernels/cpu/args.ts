/**
 * The CPU kernels' integer-argument blocks for the addon (kernels/cpu/native_args.ts) and the one
 * check only they need: the pools' length. Every other argument was checked by the op
 * (kernels/validate.ts) before dispatch; the addon checks array lengths again itself.
 */
import { check } from '../../core/errors.js';
import { MASK_CODE } from '../../core/types.js';
import type { KVPool } from '../../core/kv_dtype.js';
import type { FlashAttentionRaggedPagedAttrs, RopeSplitStoreRaggedAttrs } from '../kernel_names.js';
import { ATTN_ARG, KV_DTYPE_CODE, packInts, ROPE_ARG } from './native_args.js';

const VARIANT_CODE = { auto: 0, prefill: 1, decode: 2 } as const;

/**
 * The layer's pools must hold `[numPages, nKvHeads, pageSize, headDim]` elements each (of the cache's dtype), and an
 * int8 cache's row scales one float per row.
 */
export function checkPools(where: string, c: RopeSplitStoreRaggedAttrs['collection'], k: KVPool, v: KVPool,
  kRowScales: Float32Array | null = null, vRowScales: Float32Array | null = null): void {
  const p = c.cache.params, rows = p.numPages * p.nKvHeads * p.pageSize, size = rows * p.headDim;
  check(k.length >= size && v.length >= size, where, () => `cache pools hold ${k.length} / ${v.length} elements, need ${size}`);
  if (p.dtype === 'int8') {
    check((kRowScales?.length ?? 0) >= rows && (vRowScales?.length ?? 0) >= rows, where, () =>
      `an int8 cache's row scales hold ${kRowScales?.length ?? 0} / ${vRowScales?.length ?? 0} floats, need ${rows}`);
  }
}

/** RopeSplitStoreRagged's int block for the addon (shape: qkv's). */
export function ropeArgs(a: RopeSplitStoreRaggedAttrs, shape: readonly number[], hasNormWeights: boolean): Int32Array {
  const { nHeads, nKvHeads, headDim, rope, collection: c } = a;
  check(a.qkNormEps < 0 || hasNormWeights, 'RopeSplitStoreRagged', () => `qkNormEps (${a.qkNormEps}) >= 0 needs qNormWeight and kNormWeight inputs`);
  const p = c.cache.params;
  return packInts(ROPE_ARG, { T: shape[0], BATCH: c.seqIds.length, N_HEADS: nHeads, N_KV: nKvHeads, HEAD_DIM: headDim,
    ROTARY_DIM: rope.rotaryDim, INTERLEAVED: rope.interleaved ? 1 : 0, PAGE_SIZE: p.pageSize, MAX_PAGES: c.maxPagesPerSeq,
    KV_DTYPE: KV_DTYPE_CODE[p.dtype] });
}

/** FlashAttentionRaggedPaged's int block for the addon (shape: q's). */
export function attentionArgs(a: FlashAttentionRaggedPagedAttrs, shape: readonly number[]): Int32Array {
  const { nHeads, nKvHeads, headDim, mask, collection: c } = a;
  const code = MASK_CODE[mask.variant], variant = VARIANT_CODE[a.variant ?? 'auto'];
  const p = c.cache.params;
  return packInts(ATTN_ARG, { BATCH: c.seqIds.length, N_HEADS: nHeads, N_KV: nKvHeads, HEAD_DIM: headDim, PAGE_SIZE: p.pageSize,
    MAX_PAGES: c.maxPagesPerSeq, MASK: code, WINDOW: mask.window | 0, CHUNK: mask.chunk | 0, VARIANT: variant,
    KV_DTYPE: KV_DTYPE_CODE[p.dtype] });
}
