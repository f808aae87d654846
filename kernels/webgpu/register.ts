/**
 * Registers the webgpu kernels with tfjs (backend name 'webgpu'). Call after the backend is
 * registered: in Node `await initWebGpuNode()` (lib/backends/webgpu_node.ts), in browsers after
 * importing @tensorflow/tfjs-backend-webgpu.
 *
 * @example
 * if (await initWebGpuNode()) { registerWebGpuKernels(); await tf.setBackend('webgpu'); }
 */
import * as tf from '@tensorflow/tfjs';
import { flashAttentionRaggedPagedWebGpuConfig } from './FlashAttentionRaggedPaged.js';
import { ropeSplitStoreRaggedWebGpuConfig } from './RopeSplitStoreRagged.js';

export { syncWebGpuKVCache } from './kv_mirror.js';
export { webgpuFlashTuning } from './flash_plan.js';

/** Registers every webgpu kernel once; later calls do nothing. */
export function registerWebGpuKernels(): void {
  for (const k of [ropeSplitStoreRaggedWebGpuConfig, flashAttentionRaggedPagedWebGpuConfig]) {
    if (tf.getKernel(k.kernelName, k.backendName) === undefined) tf.registerKernel(k);
  }
}
