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


export const QuantMatMul = 'QuantMatMul';

/** How a QuantMatMul weight is stored (packed little-endian into int32 words). */
export type QuantWeightFormat = 'e4m3' | 'int8' | 'nvfp4' | 'gptq' | 'bf16' | 'f16';
/**
 * How QuantMatMul quantizes its input rows before the product (emulated exactly, see
 * spec/fixtures/README.md "quant/"): none; e4m3 with the static `inputScale`; e4m3 per token
 * (`s = max|row| / 448`); e4m3 per token and `actGroup`-column group; int8 per token
 * (`s = max|row| / 127`); NVFP4 per token and 16-column block under the global `inputScale`.
 */
export type QuantActivation = 'none' | 'e4m3_static' | 'e4m3_token' | 'e4m3_group' | 'int8_token' | 'nvfp4';

/**
 * QuantMatMul: `quantize(x) · dequantize(W)ᵀ (+ bias)` with W `[outDim, inDim]` kept packed.
 * inputs: x `[T, inDim]` float32; weight int32 words: e4m3 / int8 `[outDim, ceil(inDim/4)]` (byte j of a row
 * in bits 8(j%4)..), nvfp4 `[outDim, ceil(inDim/8)]` (low nibble first), bf16 / f16 `[outDim, ceil(inDim/2)]`
 * (low half first), gptq `[inDim/8, outDim]` (GPTQ v1 qweight); scale float32: `[1]` (tensor), `[outDim]`
 * (rowwise), `[ceil(outDim/blockRows), ceil(inDim/blockCols)]` (block; nvfp4 `[outDim, inDim/16]`; gptq
 * `[inDim/g, outDim]`), absent for bf16 / f16; gptq also zeros int32 `[inDim/g, outDim/8]` (stored zero
 * minus one) and gIdx int32 `[inDim]`; optional bias `[outDim]`. output `[T, outDim]` float32.
 */
export interface QuantMatMulAttrs {
  weightFormat: QuantWeightFormat;
  /** How the weight scale applies: none (bf16/f16), one for all, one per output row, per block. */
  weightScale: 'none' | 'tensor' | 'rowwise' | 'block';
  /** Block of the `[out, in]` weight per scale (block granularity; gptq `[1, g]`; nvfp4 `[1, 16]`). */
  blockRows: number;
  blockCols: number;
  activation: QuantActivation;
  /** Columns per activation group (e4m3_group; nvfp4: 16). */
  actGroup: number;
  /** Static input scale (e4m3_static) or NVFP4's global activation scale; 0 when unused. */
  inputScale: number;
  /** NVFP4's global weight scale (weight_scale_2); 1 elsewhere. */
  weightScale2: number;
  inDim: number;
  outDim: number;
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

/**
 * The names of the kernels every backend registers (cpu, wasm; webgpu where it has them), for
 * listings and the registration spec. The webgpu-only whole-model kernels above (DenseMatMul,
 * RmsNorm, SwiGluMlp, ArgMaxRows) are not listed: their ops run the references elsewhere.
 */
export const KERNEL_NAMES = [
  RopeSplitStoreRagged, FlashAttentionRaggedPaged, ProjectionMatMul, FlashAttentionRagged, FlashAttentionRaggedGrad, RopeRagged, QuantMatMul,
  FusedRMSNorm, FusedSwiGLUMLP,
] as const;
