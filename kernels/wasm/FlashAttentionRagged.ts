/**
 * FlashAttentionRagged for the `wasm` backend: the cpu kernel's host TypeScript (kernels/cpu/FlashAttentionRagged.ts) reading
 * and writing the wasm heap in place; the native training kernel serves `cpu` only.
 */
import type { KernelConfig } from '@tensorflow/tfjs';

import { flashAttentionRaggedKernel } from '../cpu/FlashAttentionRagged.js';
import { FlashAttentionRagged } from '../kernel_names.js';

export const flashAttentionRaggedWasmConfig: KernelConfig = { kernelName: FlashAttentionRagged, backendName: 'wasm', kernelFunc: flashAttentionRaggedKernel('wasm') };
