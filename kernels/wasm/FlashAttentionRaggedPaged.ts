/**
 * FlashAttentionRaggedPaged for the `wasm` backend: the cpu kernel (kernels/cpu/FlashAttentionRaggedPaged.ts:
 * native addon when loaded, else TypeScript) reading q and writing its output on the wasm heap in place.
 */
import type { KernelConfig } from '@tensorflow/tfjs';

import { flashAttentionRaggedPagedKernel } from '../cpu/FlashAttentionRaggedPaged.js';
import { FlashAttentionRaggedPaged } from '../kernel_names.js';

export const flashAttentionRaggedPagedWasmConfig: KernelConfig = {
  kernelName: FlashAttentionRaggedPaged, backendName: 'wasm', kernelFunc: flashAttentionRaggedPagedKernel('wasm'),
};
