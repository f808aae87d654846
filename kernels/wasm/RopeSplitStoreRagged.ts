/**
 * RopeSplitStoreRagged for the `wasm` backend: the cpu kernel (kernels/cpu/RopeSplitStoreRagged.ts:
 * native addon when loaded, else TypeScript) reading qkv and writing q on the wasm heap in place.
 */
import type { KernelConfig } from '@tensorflow/tfjs';

import { ropeSplitStoreRaggedKernel } from '../cpu/RopeSplitStoreRagged.js';
import { RopeSplitStoreRagged } from '../kernel_names.js';

export const ropeSplitStoreRaggedWasmConfig: KernelConfig = {
  kernelName: RopeSplitStoreRagged, backendName: 'wasm', kernelFunc: ropeSplitStoreRaggedKernel('wasm'),
};
