/**
 * QuantMatMul for the `wasm` backend: the cpu kernel's host TypeScript (kernels/cpu/quant_ts.ts)
 * reading the packed weight and writing the output on the wasm heap in place.
 */
import type { KernelConfig } from '@tensorflow/tfjs';

import { quantMatMulKernel } from '../cpu/QuantMatMul.js';
import { QuantMatMul } from '../kernel_names.js';

export const quantMatMulWasmConfig: KernelConfig = { kernelName: QuantMatMul, backendName: 'wasm', kernelFunc: quantMatMulKernel('wasm') };
