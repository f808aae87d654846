/**
 * RopeRagged for the `wasm` backend: the cpu kernel's host TypeScript (kernels/cpu/RopeRagged.ts) reading
 * and writing the wasm heap in place; the native training kernel serves `cpu` only.
 */
import type { KernelConfig } from '@tensorflow/tfjs';

import { ropeRaggedKernel } from '../cpu/RopeRagged.js';
import { RopeRagged } from '../kernel_names.js';

export const ropeRaggedWasmConfig: KernelConfig = { kernelName: RopeRagged, backendName: 'wasm', kernelFunc: ropeRaggedKernel('wasm') };
