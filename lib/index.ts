/**
 * tfjs-attention-rope: modern LLM attention for TensorFlow.js. This entry reaches no Node
 * built-in (browsers bundle it as is); `tfjs-attention-rope/node` adds the file-system loaders
 * (`loadPretrained`, `saveHfCheckpoint`), the native CPU kernels, Dawn WebGPU and `ShardedAttention`.
 *
 * @example
 * import * as tf from '@tensorflow/tfjs';
 * import { AttentionWithRope, PagedKVCache, RotaryEmbedding, useBackend } from 'tfjs-attention-rope';
 * await useBackend('cpu');   // registers the fused kernels too
 * const rope = new RotaryEmbedding({ headDim: 64, theta: 500000, maxSeqLen: 8192 });
 * const attn = new AttentionWithRope({ rope, numAttentionHeads: 16, numKeyValueHeads: 4, hiddenSize: 1024,
 *   kvParams: { nKvHeads: 4, headDim: 64, pageSize: 128, numLayers: 1, numPages: 256 } });
 */
export { AttentionWithRope } from './attention/attention_with_rope.js';
export type { AttentionWithRopeArgs } from './attention/options.js';
export { Linear, registerLinearClass, type LinearCls, type LinearLike, type LinearOptions } from './attention/linear.js';
export { RotaryEmbedding, ropeOptionsFromHfConfig, type RotaryEmbeddingOptions } from './rope/rotary_embedding.js';
export type { RopeScaling, RopeType } from './rope/scaling.js';
export type { RopeTables } from './rope/rope_tables.js';
export { PagedKVCache } from './kv_cache/paged_kv_cache.js';
export type { KVDeviceMirror } from './kv_cache/device_mirror.js';
export type { KVCacheParams } from './kv_cache/params.js';
export { KV_CACHE_DTYPES, type KVCacheDType } from '../core/kv_dtype.js';
export type { PagedKVCollection } from './kv_cache/collection.js';
export { ShardingStrategy } from './sharding/strategy.js';
export { useBackend, registerFusedKernels } from './backends/select.js';
export { setWasmKernelImpl, getWasmKernelImpl, wasmSimdStatus, prepareWasmSimdKernels, type WasmKernelImpl } from '../kernels/wasm/simd_module.js';
export { setWasmThreads } from '../kernels/wasm/simd_threads.js';
export { startWasmThreads, stopWasmThreads, wasmThreadsStatus } from '../kernels/wasm/simd_thread_calls.js';
export { readSafetensors, writeSafetensors } from './loaders/safetensors.js';
export { AttentionRopeError } from './errors.js';
export type { DevicePlacement, MaskVariant } from './types.js';
export { flashAttentionRaggedPaged, ropeSplitStoreRagged } from '../kernels/ops.js';
export { attention, pagedAttention, projectionMatMul, raggedAttention, rope, type AttentionOptions, type ProjectionMatMulOptions } from './functional.js';
export { createModel, supportedModelTypes } from '../models/registry.js';
export * from './training/index.js';
// model-level code (models/ imports lib/, never the other way; only these entry files join them)
export { Generator, generate } from '../models/generation/generator.js';
export { modelRaggedTrain, swiGluTrain } from '../models/train_forward.js';
export { initializeWeights } from '../models/init.js';
export { exportHfWeights, exportLoRAAdapters } from '../models/export.js';
export { splitHeads, headCounts } from './sharding/head_split.js';
export { shardInfoOf } from './sharding/shard_layer.js';
