/**
 * Node-only entry point (`tfjs-attention-rope/node`): everything in the main entry plus the
 * native CPU kernels and Dawn WebGPU (installed on import), the file-system loaders
 * (`loadPretrained`, `saveHfCheckpoint`), the tensor-parallel runtime and the pipeline-parallel
 * `PipelineModel` (worker threads and child processes). Under Node the package's main entry resolves here too (package.json "node").
 *
 * @example
 * import { ShardedAttention, parseDevices } from 'tfjs-attention-rope/node';
 * const sharded = await ShardedAttention.create(layer, parseDevices('cpu,wasm'));
 */
import './backends/node_install.js';  // the native CPU kernels and Dawn WebGPU
export * from './index.js';
export { loadNativeKernels } from './backends/native_node.js';
export { loadPretrained } from '../models/load.js';
export { saveHfCheckpoint } from '../models/save_checkpoint.js';
export { ShardedAttention, type ShardedAttentionOptions } from './sharding/sharded_attention.js';
export { parseDevices, checkDevices, deviceName } from './sharding/devices.js';
export { isolateNvidiaGpu, type Transport } from './sharding/shard_worker.js';
export { PipelineModel, type PipelineOptions, type PipelineResult } from '../models/pipeline/pipeline_model.js';
export { planMicroBatches, type MicroBatch } from '../models/pipeline/micro_batches.js';
export { MpiComm, type MpiCommOptions, type ThreadLevel } from './mpi/comm.js';
export { mpiUnavailable, MPI_INSTALL_HINT } from './mpi/binding.js';
export { DataParallel, DataParallelOptimizer } from './training/data_parallel.js';
export { MpiShardedAttention, type MpiShardedAttentionOptions } from './sharding/mpi_sharded_attention.js';
