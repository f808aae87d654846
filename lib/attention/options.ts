import type * as tf from '@tensorflow/tfjs';
import { check, checkInt } from '../errors.js';
import { type KVCacheParams, checkKvDtype } from '../kv_cache/params.js';
import { RotaryEmbedding, type RotaryEmbeddingOptions } from '../rope/rotary_embedding.js';
import { ShardingStrategy } from '../sharding/strategy.js';
import { type DevicePlacement, MASK_VARIANTS, type MaskVariant } from '../types.js';
import { Linear, type LinearCls } from './linear.js';
import { type QuantConfig, type ResolvedQuantConfig, resolveQuantConfig } from './quant_config.js';
import { WEIGHT_DTYPES, type WeightDType } from './quant_linear.js';

/** Constructor options of AttentionWithRope (the reference API's parameters, camelCased). */
export interface AttentionWithRopeArgs {
  /** Rotary embedding (or its options / getConfig()). */
  rope: RotaryEmbedding | RotaryEmbeddingOptions;
  numAttentionHeads: number;
  /** Fewer than numAttentionHeads for GQA, 1 for MQA. */
  numKeyValueHeads: number;
  hiddenSize: number;
  /** The paged cache this layer writes into (nKvHeads and headDim must match the layer). */
  kvParams: KVCacheParams;
  shardingStrategy?: ShardingStrategy | { kind: 'replicate' | 'tensor_parallel'; numDevices: number };
  devices?: DevicePlacement[];
  /**
   * Storage of the projection weights: float32 (default), or float16 / bfloat16 kept packed at
   * that size and widened inside the QuantMatMul kernel (computation in float32).
   */
  dtype?: WeightDType;
  /** Projection class (default Linear). */
  linearCls?: LinearCls;
  /** One `qkv_proj` weight instead of three. */
  stackedQkv?: boolean;
  /** Softmax scale; default 1 / sqrt(headDim). */
  scale?: number;
  /** q/k/v projections have a bias. */
  hasBias?: boolean;
  /** The output projection has a bias (Hugging Face Llama `attention_bias`). */
  hasOutputBias?: boolean;
  /** Quantized projections (lib/attention/quant_config.ts): fp8_static, fp8_dynamic, fp8_block, nvfp4, int8_w8a8, gptq_int4. */
  quantConfig?: QuantConfig | null;
  /** Clamp to ±clipQkv: the q/k/v weights (default, the reference API) or activations (OLMo). */
  clipQkv?: number | null;
  clipQkvTarget?: 'weights' | 'activations';
  /** RMSNorm over headDim on q and k, before RoPE. */
  useQkNorm?: boolean;
  rmsNormEps?: number;
  maskVariant?: MaskVariant;
  slidingWindow?: number;
  chunkSize?: number;
  /** true: one fused rope + split + store op; false: separate rope, split and store ops. */
  fuseRopeAndStore?: boolean;
  name?: string;
  trainable?: boolean;
  /** tfjs LayerArgs, for the first layer of a tf.sequential model. */
  inputShape?: tf.Shape;
  batchInputShape?: tf.Shape;
}

export type ResolvedArgs = Required<Omit<AttentionWithRopeArgs, 'quantConfig' | 'clipQkv' | 'name' | 'trainable' | 'rope' | 'devices' | 'shardingStrategy' | 'inputShape' | 'batchInputShape'>> & {
  rope: RotaryEmbedding;
  headDim: number;
  clipQkv: number | null;
  devices: DevicePlacement[] | null;
  shardingStrategy: ShardingStrategy;
  quantConfig: ResolvedQuantConfig | null;
};

const W = 'AttentionWithRope';

/** Validates every option combination up front (constructor time) and fills defaults. */
export function resolveArgs(a: AttentionWithRopeArgs): ResolvedArgs {
  check(a && typeof a === 'object', W, () => 'options object is required');
  check(a.rope !== undefined, W, () => 'rope is required (a RotaryEmbedding or its options)');
  const rope = a.rope instanceof RotaryEmbedding ? a.rope : new RotaryEmbedding(a.rope);
  checkInt(a.numAttentionHeads, W, 'numAttentionHeads', 1);
  checkInt(a.numKeyValueHeads, W, 'numKeyValueHeads', 1);
  checkInt(a.hiddenSize, W, 'hiddenSize', 1);
  check(a.numAttentionHeads % a.numKeyValueHeads === 0, W, () =>
    `numAttentionHeads (${a.numAttentionHeads}) must be a multiple of numKeyValueHeads (${a.numKeyValueHeads})`);
  const headDim = rope.headDim;
  check(a.kvParams && typeof a.kvParams === 'object', W, () => 'kvParams is required');
  check(a.kvParams.nKvHeads === a.numKeyValueHeads, W, () =>
    `kvParams.nKvHeads (${a.kvParams.nKvHeads}) must equal numKeyValueHeads (${a.numKeyValueHeads})`);
  check(a.kvParams.headDim === headDim, W, () =>
    `kvParams.headDim (${a.kvParams.headDim}) must equal rope.headDim (${headDim})`);
  const dtype = a.dtype ?? 'float32';
  check(WEIGHT_DTYPES.includes(dtype), W, () => `dtype must be one of ${WEIGHT_DTYPES.join(', ')}, got '${dtype}'`);
  checkKvDtype(a.kvParams, W, 'kvParams.');
  const qDim = a.numAttentionHeads * headDim, kvDim = a.numKeyValueHeads * headDim;
  const quantConfig = a.quantConfig === undefined || a.quantConfig === null ? null : resolveQuantConfig(a.quantConfig, (a.stackedQkv
    ? [{ name: 'qkv_proj', inDim: a.hiddenSize, outDim: qDim + 2 * kvDim }]
    : [{ name: 'q_proj', inDim: a.hiddenSize, outDim: qDim }, { name: 'k_proj', inDim: a.hiddenSize, outDim: kvDim }, { name: 'v_proj', inDim: a.hiddenSize, outDim: kvDim }])
    .concat([{ name: 'o_proj', inDim: qDim, outDim: a.hiddenSize }]));
  check(quantConfig === null || dtype === 'float32', W, () =>
    `dtype ('${dtype}') must be 'float32' with quantConfig (format '${quantConfig!.format}' sets the weight storage)`);
  const clipQkv = a.clipQkv ?? null;
  check(clipQkv === null || (quantConfig === null && dtype === 'float32') || a.clipQkvTarget === 'activations', W, () =>
    `clipQkv (${clipQkv}) on weights cannot clip packed weights (${quantConfig ? `quantConfig format '${quantConfig.format}'` : `dtype '${dtype}'`}); use clipQkvTarget 'activations'`);
  check(clipQkv === null || (typeof clipQkv === 'number' && clipQkv > 0), W, () => `clipQkv must be > 0 or null, got ${clipQkv}`);
  const stackedQkv = a.stackedQkv ?? false;
  check(!(stackedQkv && clipQkv !== null), W, () => `clipQkv (${clipQkv}) is not supported with stackedQkv (true)`);
  const clipQkvTarget = a.clipQkvTarget ?? 'weights';
  check(clipQkvTarget === 'weights' || clipQkvTarget === 'activations', W, () =>
    `clipQkvTarget must be 'weights' or 'activations', got '${clipQkvTarget}'`);
  const maskVariant = a.maskVariant ?? 'causal';
  check(MASK_VARIANTS.includes(maskVariant), W, () => `maskVariant must be one of ${MASK_VARIANTS.join(', ')}, got '${maskVariant}'`);
  const sliding = maskVariant === 'sliding_window_causal' || maskVariant === 'sliding_window';
  check(!sliding || (Number.isInteger(a.slidingWindow) && a.slidingWindow! >= 1), W, () =>
    `maskVariant '${maskVariant}' needs slidingWindow >= 1, got ${a.slidingWindow}`);
  check(maskVariant !== 'chunked_causal' || (Number.isInteger(a.chunkSize) && a.chunkSize! >= 1), W, () =>
    `maskVariant 'chunked_causal' needs chunkSize >= 1, got ${a.chunkSize}`);
  const scale = a.scale ?? 1 / Math.sqrt(headDim);
  check(Number.isFinite(scale) && scale > 0, W, () => `scale must be a positive number, got ${a.scale}`);
  const rmsNormEps = a.rmsNormEps ?? 1e-6;
  check(rmsNormEps >= 0, W, () => `rmsNormEps must be >= 0, got ${rmsNormEps}`);
  const devices = a.devices ?? null;
  check(devices === null || (Array.isArray(devices) && devices.length >= 1), W, () => `devices must be a non-empty array, got ${JSON.stringify(devices)}`);
  const s = a.shardingStrategy;
  const shardingStrategy = s instanceof ShardingStrategy ? s
    : s ? new ShardingStrategy(s.kind, s.numDevices) : ShardingStrategy.replicate(devices?.length ?? 1);
  check(devices === null || shardingStrategy.numDevices === devices.length, W, () =>
    `shardingStrategy.numDevices (${shardingStrategy.numDevices}) must equal devices.length (${devices!.length})`);
  return {
    rope, headDim, numAttentionHeads: a.numAttentionHeads, numKeyValueHeads: a.numKeyValueHeads, hiddenSize: a.hiddenSize,
    kvParams: { ...a.kvParams }, shardingStrategy, devices, dtype, linearCls: a.linearCls ?? Linear, stackedQkv, scale,
    hasBias: a.hasBias ?? false, hasOutputBias: a.hasOutputBias ?? false, clipQkv, clipQkvTarget,
    useQkNorm: a.useQkNorm ?? false, rmsNormEps, maskVariant, slidingWindow: a.slidingWindow ?? 0, chunkSize: a.chunkSize ?? 0,
    fuseRopeAndStore: a.fuseRopeAndStore ?? true, quantConfig,
  };
}
