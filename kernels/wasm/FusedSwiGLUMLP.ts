/**
 * FusedSwiGLUMLP for the `wasm` backend: the cpu kernel (native addon in Node, else TypeScript
 * loops) reading and writing the wasm heap in place (kernels/cpu/FusedSwiGLUMLP.ts).
 *
 * @example
 * tf.registerKernel(fusedSwiGluMlpWasmConfig);
 */
import type { KernelConfig } from '@tensorflow/tfjs';

import { makeFusedSwiGluKernel } from '../cpu/FusedSwiGLUMLP.js';
import { FusedSwiGLUMLP } from '../kernel_names.js';

export const fusedSwiGluMlpWasmConfig: KernelConfig = { kernelName: FusedSwiGLUMLP, backendName: 'wasm', kernelFunc: makeFusedSwiGluKernel('wasm') };
