/**
 * Node-only entry point (`tfjs-attention-rope/node`): everything in the main entry plus the
 * tensor-parallel runtime, which uses worker threads and child processes.
 *
 * @example
 * import { ShardedAttention, parseDevices } from 'tfjs-attention-rope/node';
 * const sharded = await ShardedAttention.create(layer, parseDevices('cpu,wasm'));
 */
export * from './index.js';
export { ShardedAttention, type ShardedAttentionOptions } from './sharding/sharded_attention.js';
export { parseDevices, checkDevices, deviceName } from './sharding/devices.js';
export { isolateNvidiaGpu, type Transport } from './sharding/shard_worker.js';
export { MpiComm, type MpiCommOptions, type ThreadLevel } from './mpi/comm.js';
export { mpiUnavailable, MPI_INSTALL_HINT } from './mpi/binding.js';
export { DataParallel, DataParallelOptimizer } from './training/data_parallel.js';
export { MpiShardedAttention, type MpiShardedAttentionOptions } from './sharding/mpi_sharded_attention.js';
