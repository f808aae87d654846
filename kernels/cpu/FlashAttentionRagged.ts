/**
 * FlashAttentionRagged (the no-cache training attention, kernels/kernel_names.ts) for the `cpu`
 * backend: the native addon's tiled kernel when it loaded (flash_attention_ragged_native.ts), else
 * the TypeScript host kernel (flash_attention_ragged_ts.ts), on the backend's own buffers, no copies.
 * The wasm config (kernels/wasm/FlashAttentionRagged.ts) runs the same function with the host kernel.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { FlashAttentionRagged, type FlashAttentionRaggedAttrs } from '../kernel_names.js';
import { hostIo, type HostBackendName } from './backend_io.js';
import { nativeFlashTrain } from './flash_attention_ragged_native.js';
import { flashAttentionRaggedForward } from './flash_attention_ragged_ts.js';

/** The kernel function for `backendName`; outputs out `[T, nH*hd]` and lse `[T, nH]`. */
export function flashAttentionRaggedKernel(backendName: HostBackendName): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const a = attrs as unknown as FlashAttentionRaggedAttrs;
    const { q, k, v } = inputs as Record<string, TensorInfo>;
    const T = q.shape[0];
    const { outs, outValues, inValues } = hostIo(FlashAttentionRagged, backendName, backend, [q, k, v],
      [[T, a.nHeads * a.headDim], [T, a.nHeads]]);
    const impl = (backendName === 'cpu' ? nativeFlashTrain()?.forward : undefined) ?? flashAttentionRaggedForward;
    if (T > 0) impl({ q: inValues[0], k: inValues[1], v: inValues[2] }, outValues[0], outValues[1], a);
    return outs;
  };
}

export const flashAttentionRaggedCpuConfig: KernelConfig = {
  kernelName: FlashAttentionRagged, backendName: 'cpu', kernelFunc: flashAttentionRaggedKernel('cpu'),
};
