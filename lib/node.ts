/**
 * Node-only entry point (`tfjs-attention-rope/node`): everything in the main entry plus the
 * tensor-parallel runtime, which uses worker threads and child processes.
 *
 * @example
 * import { ShardedAttention, parseDevices } from 'tfjs-attention-rope/node';
 * const sharded = await ShardedAttention.create(layer, parseDevices('cpu,wasm'));
 */
import './backends/native_node.js';  // the native CPU kernels
export * from './index.js';
export { loadNativeKernels } from './backends/native_node.js';
export { ShardedAttention, type ShardedAttentionOptions } from './sharding/sharded_attention.js';
export { parseDevices, checkDevices, deviceName } from './sharding/devices.js';
export { isolateNvidiaGpu, type Transport } from './sharding/shard_worker.js';
