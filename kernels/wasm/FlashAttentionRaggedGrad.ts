/**
 * FlashAttentionRaggedGrad for the `wasm` backend: the cpu kernel's host TypeScript (kernels/cpu/FlashAttentionRaggedGrad.ts) reading
 * and writing the wasm heap in place; the native training kernel serves `cpu` only.
 */
import type { KernelConfig } from '@tensorflow/tfjs';

import { flashAttentionRaggedGradKernel } from '../cpu/FlashAttentionRaggedGrad.js';
import { FlashAttentionRaggedGrad } from '../kernel_names.js';

export const flashAttentionRaggedGradWasmConfig: KernelConfig = { kernelName: FlashAttentionRaggedGrad, backendName: 'wasm', kernelFunc: flashAttentionRaggedGradKernel('wasm') };
