/**
 * FusedRMSNorm for the `wasm` backend: the cpu kernel's row pass (native addon in Node, else
 * TypeScript) reading and writing the wasm heap in place (kernels/cpu/FusedRMSNorm.ts).
 *
 * @example
 * tf.registerKernel(fusedRmsNormWasmConfig);
 */
import type { KernelConfig } from '@tensorflow/tfjs';

import { makeFusedRmsNormKernel } from '../cpu/FusedRMSNorm.js';
import { FusedRMSNorm } from '../kernel_names.js';

export const fusedRmsNormWasmConfig: KernelConfig = { kernelName: FusedRMSNorm, backendName: 'wasm', kernelFunc: makeFusedRmsNormKernel('wasm') };
