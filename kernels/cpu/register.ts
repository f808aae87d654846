/**
 * Registers the fused CPU kernels with tfjs: `RopeSplitStoreRagged` and `FlashAttentionRaggedPaged`
 * for backend `cpu`, and for `wasm` too (inputs and outputs are read in place on the wasm heap; the
 * native addon runs there as well when loaded); `ProjectionMatMul`, `FusedRMSNorm` and
 * `FusedSwiGLUMLP` for `cpu` (their wasm configs live in kernels/wasm/ and are registered by
 * kernels/projection_matmul.ts and kernels/decoder_steps.ts on first use). Idempotent.
 *
 * @example
 * import { registerCpuKernels } from './kernels/cpu/register.js';
 * registerCpuKernels();   // then tf.engine().runKernel('FlashAttentionRaggedPaged', { q }, attrs)
 */
import * as tf from '@tensorflow/tfjs';

import { flashAttentionRaggedPagedCpuConfig, flashAttentionRaggedPagedWasmConfig } from './FlashAttentionRaggedPaged.js';
import { fusedRmsNormCpuConfig } from './FusedRMSNorm.js';
import { fusedSwiGluMlpCpuConfig } from './FusedSwiGLUMLP.js';
import { projectionMatMulCpuConfig } from './ProjectionMatMul.js';
import { ropeSplitStoreRaggedCpuConfig, ropeSplitStoreRaggedWasmConfig } from './RopeSplitStoreRagged.js';

const CONFIGS: tf.KernelConfig[] = [
  ropeSplitStoreRaggedCpuConfig,
  flashAttentionRaggedPagedCpuConfig,
  projectionMatMulCpuConfig,
  fusedRmsNormCpuConfig,
  fusedSwiGluMlpCpuConfig,
  ropeSplitStoreRaggedWasmConfig,
  flashAttentionRaggedPagedWasmConfig,
];

export function registerCpuKernels(): void {
  for (const k of CONFIGS) {
    if (tf.getKernel(k.kernelName, k.backendName) === undefined) tf.registerKernel(k);
  }
}

export { getCpuKernelImpl, nativeKernels, setCpuKernelImpl, setCpuKernelThreads } from './native.js';
