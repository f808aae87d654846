/**
 * Names, inputs and attributes of the project's custom kernels, after the reference's custom
 * ops (`mo.rope_split_store.ragged.paged`, `mo.mha.ragged.paged`). One place for all of them.
 *
 * Layout conventions (all float32, row-major):
 * - packed qkv rows `[totalTokens, (nHeads + 2 * nKvHeads) * headDim]`: q heads, then k heads, then v heads.
 * - cache pools per layer `[numPages, nKvHeads, pageSize, headDim]` (see lib/kv_cache/params.ts).
 * - query row r of batch entry b (rowOffsets[b] <= r < rowOffsets[b+1]) sits at absolute position
 *   startPositions[b] + (r - rowOffsets[b]); it may see keys 0 .. startPositions[b] + numNewTokens[b] - 1
 *   subject to the mask (lib/types.ts MaskVariant).
 */
import type { PagedKVCollection } from '../core/paged_kv_store.js';
import type { RopeTables } from '../core/rope_tables.js';
import type { MaskSpec } from '../core/types.js';

export const RopeSplitStoreRagged = 'RopeSplitStoreRagged';
export const FlashAttentionRaggedPaged = 'FlashAttentionRaggedPaged';

/**
 * RopeSplitStoreRagged: from packed qkv rows, optionally RMS-normalise each q and k head over
 * headDim (qk-norm), rotate q and k, write k and v into their pages, return rotated q.
 * inputs: qkv `[T, (nHeads + 2 nKvHeads) * headDim]`; with qk-norm also qNormWeight, kNormWeight `[headDim]`.
 * output: q `[T, nHeads * headDim]`.
 */
export interface RopeSplitStoreRaggedAttrs {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** cos/sin tables; position p of the sequence uses row p. */
  rope: RopeTables;
  /** RMSNorm epsilon for qk-norm, or -1 when the layer has no qk-norm. */
  qkNormEps: number;
  collection: PagedKVCollection;
  layerIdx: number;
}

/** Which FlashAttentionRaggedPaged path to take; `auto` picks by heuristic. */
export type FlashAttentionVariant = 'auto' | 'prefill' | 'decode';

/**
 * FlashAttentionRaggedPaged: online-softmax attention of each query row over its sequence's
 * paged keys and values (GQA: query head h reads KV head floor(h / (nHeads / nKvHeads))).
 * inputs: q `[T, nHeads * headDim]` (already rotated). output `[T, nHeads * headDim]`.
 */
export interface FlashAttentionRaggedPagedAttrs {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  scale: number;
  mask: MaskSpec;
  collection: PagedKVCollection;
  layerIdx: number;
  variant: FlashAttentionVariant;
}

export const ProjectionMatMul = 'ProjectionMatMul';

/**
 * ProjectionMatMul: a dense projection's product, `op(a) · op(b) (+ bias)`, op = transpose when
 * the attr says so (the forward `x · W` and both gradients `dY · Wᵀ`, `xᵀ · dY` without
 * materialized transposes).
 * inputs: a `[M, K]` (`[K, M]` with transposeA), b `[K, N]` (`[N, K]` with transposeB), optional bias `[N]`.
 * output `[M, N]`. Has a gradient (kernels/projection_matmul.ts) that runs the same op.
 */
export interface ProjectionMatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

export const FlashAttentionRagged = 'FlashAttentionRagged';
export const FlashAttentionRaggedGrad = 'FlashAttentionRaggedGrad';

/**
 * Kernels of the training path: attention over packed ragged rows with no cache, q, k and v as
 * explicit (differentiable) inputs. Each sequence b owns rows rowOffsets[b] .. rowOffsets[b+1]-1
 * at positions 0 .. n-1; query i sees key j of its own sequence when the mask allows
 * (MaskVariant with start 0). The visible keys of a query are always one contiguous range that
 * includes the query itself (kernels/reference/mask.ts visibleRange).
 *
 * - `FlashAttentionRagged`: inputs q `[T, nH*hd]`, k, v `[T, nKv*hd]`; outputs
 *   out `[T, nH*hd]` and the log-sum-exp of each query head's scores `[T, nH]` (kept for the backward).
 * - `FlashAttentionRaggedGrad`: inputs dy, q, k, v, out, lse; outputs dq, dk, dv (FlashAttention-2's
 *   backward: probabilities recomputed from lse, no `[T, T]` matrix stored).
 */
export interface FlashAttentionRaggedAttrs {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  scale: number;
  mask: MaskSpec;
  /** `[batch + 1]` packed row offsets (int32, non-decreasing, last = T). */
  rowOffsets: Int32Array;
}

export const RopeRagged = 'RopeRagged';

/**
 * RopeRagged: rotates packed rows x `[T, H*hd]` at given positions (row r at positions[r]) with
 * the host cos/sin tables; `inverse` rotates by minus the angle (its own gradient: a rotation's
 * transpose is its inverse). inputs: x `[T, H*hd]`. output `[T, H*hd]`.
 */
export interface RopeRaggedAttrs {
  tables: RopeTables;
  /** `[T]` position of each row. */
  positions: Int32Array;
  inverse: boolean;
}

/** The names of every kernel above, for listings and the registration spec. */
export const KERNEL_NAMES = [
  RopeSplitStoreRagged, FlashAttentionRaggedPaged, ProjectionMatMul, FlashAttentionRagged, FlashAttentionRaggedGrad, RopeRagged,
] as const;
