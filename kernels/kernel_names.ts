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

export const FusedRMSNorm = 'FusedRMSNorm';

/**
 * FusedRMSNorm: `y = (x - mean) / sqrt(mean((x - mean)²) + eps) · weight` over the last axis, with
 * mean = 0 unless `center` (Hugging Face LlamaRMSNorm; `center` without weight is OLMo's LayerNorm).
 * inputs: x `[T, H]`, optional weight `[H]`. output `[T, H]`. Inference only (no gradient: the
 * op layer, kernels/decoder_steps.ts, runs the reference while gradients are recorded).
 */
export interface FusedRMSNormAttrs {
  eps: number;
  center: boolean;
}

export const FusedSwiGLUMLP = 'FusedSwiGLUMLP';

/**
 * FusedSwiGLUMLP: the gated MLP of the Llama family with its residual,
 * `y = residual + (silu(x · gate + gateBias) * (x · up + upBias)) · down + downBias`.
 * inputs: x `[T, H]`, gate `[H, I]`, up `[H, I]`, down `[I, H]`; optional gateBias `[I]`, upBias `[I]`,
 * downBias `[H]`, residual `[T, H]`. output `[T, H]`. No attrs. Inference only (see FusedRMSNorm).
 */
export type FusedSwiGLUMLPAttrs = Record<string, never>;
