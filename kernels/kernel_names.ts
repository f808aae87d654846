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
import type { PagedKVCollection } from '../lib/kv_cache/collection.js';
import type { RopeTables } from '../lib/rope/rope_tables.js';
import type { MaskSpec } from '../lib/types.js';

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

/*
 * Whole-model inference kernels (issue 11). Weights are in Hugging Face layout `[out, in]`, so a
 * decode GEMV reads each output's weights as one contiguous row and the LM head uses a tied
 * embedding table `[vocab, hidden]` as it is.
 */
export const DenseMatMul = 'DenseMatMul';

/**
 * DenseMatMul: `y = x · wᵀ (+ bias) (+ residual)`.
 * inputs: x `[M, K]`, w `[N, K]`, bias `[N]` when `hasBias`, residual `[M, N]` when `hasResidual`.
 * output `[M, N]`.
 */
export interface DenseMatMulAttrs {
  hasBias: boolean;
  hasResidual: boolean;
}

export const RmsNorm = 'RmsNorm';

/** RmsNorm: `y = x / sqrt(mean(x²) + eps) * weight` per row. inputs: x `[M, H]`, weight `[H]`. output `[M, H]`. */
export interface RmsNormAttrs {
  eps: number;
}

export const SwiGluMlp = 'SwiGluMlp';

/** Rows of gate (then up) weights per block of the packed gate/up matrix (see SwiGluMlp). */
export const SWIGLU_BLOCK = 64;

/**
 * SwiGluMlp: `y = (silu(x · gateᵀ + gb) * (x · upᵀ + ub)) · downᵀ (+ db) (+ residual)`.
 * inputs: x `[M, H]`; gateUp `[2 * Ip, H]` with Ip = I rounded up to SWIGLU_BLOCK: block b holds
 * gate rows `[64b, 64b + 64)` then up rows `[64b, 64b + 64)` (rows past I are zero), so one matmul
 * tile or GEMV workgroup sees a gate column and its up column together (models/fused_weights.ts
 * `packGateUp` builds it); gateUpBias `[2 * Ip]` (same order) and downBias `[H]` when `hasBias`;
 * down `[H, I]`; residual `[M, H]` when `hasResidual`. output `[M, H]`.
 */
export interface SwiGluMlpAttrs {
  intermediateSize: number;
  hasBias: boolean;
  hasResidual: boolean;
}

export const ArgMaxRows = 'ArgMaxRows';

/**
 * ArgMaxRows: index of each row's largest value (first one on ties, NaN never wins; a row of
 * NaNs gives 0), as the host's greedy sampler. inputs: x `[R, V]`. output int32 `[R]`.
 */
export type ArgMaxRowsAttrs = Record<string, never>;
