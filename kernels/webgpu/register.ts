/**
 * Registers the webgpu kernels with tfjs (backend name 'webgpu'). Call after the backend is
 * registered: in Node `await initWebGpuNode()` (lib/backends/webgpu_node.ts), in browsers after
 * importing @tensorflow/tfjs-backend-webgpu.
 *
 * @example
 * if (await initWebGpuNode()) { registerWebGpuKernels(); await tf.setBackend('webgpu'); }
 */
import * as tf from '@tensorflow/tfjs';
import { argMaxRowsWebGpuConfig } from './ArgMaxRows.js';
import { denseMatMulWebGpuConfig } from './DenseMatMul.js';
import { flashAttentionRaggedPagedWebGpuConfig } from './FlashAttentionRaggedPaged.js';
import { rmsNormWebGpuConfig } from './RmsNorm.js';
import { ropeSplitStoreRaggedWebGpuConfig } from './RopeSplitStoreRagged.js';
import { swiGluMlpWebGpuConfig } from './SwiGluMlp.js';

export { syncWebGpuKVCache } from './kv_mirror.js';
export { webgpuFlashTuning } from './flash_plan.js';

/** Registers every webgpu kernel once; later calls do nothing. */
export function registerWebGpuKernels(): void {
  for (const k of [ropeSplitStoreRaggedWebGpuConfig, flashAttentionRaggedPagedWebGpuConfig, denseMatMulWebGpuConfig, rmsNormWebGpuConfig,
    swiGluMlpWebGpuConfig, argMaxRowsWebGpuConfig]) {
    if (tf.getKernel(k.kernelName, k.backendName) === undefined) tf.registerKernel(k);
  }
}
