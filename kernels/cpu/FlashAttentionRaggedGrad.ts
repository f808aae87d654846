/**
 * FlashAttentionRaggedGrad (FlashAttention-2 backward of FlashAttentionRagged) for the `cpu`
 * backend: the native addon when it loaded, else the TypeScript host kernel. The wasm config
 * (kernels/wasm/FlashAttentionRaggedGrad.ts) runs the same function with the host kernel.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { type FlashAttentionRaggedAttrs, FlashAttentionRaggedGrad } from '../kernel_names.js';
import { hostIo, type HostBackendName } from './backend_io.js';
import { nativeFlashTrain } from './flash_attention_ragged_native.js';
import { flashAttentionRaggedBackward } from './flash_attention_ragged_ts.js';

/** The kernel function for `backendName`; inputs dy, q, k, v, out, lse; outputs dq, dk, dv. */
export function flashAttentionRaggedGradKernel(backendName: HostBackendName): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const a = attrs as unknown as FlashAttentionRaggedAttrs;
    const { dy, q, k, v, out, lse } = inputs as Record<string, TensorInfo>;
    const { outs, outValues: [dq, dk, dv], inValues: [dyV, qV, kV, vV, oV, lV] } = hostIo(FlashAttentionRaggedGrad, backendName, backend,
      [dy, q, k, v, out, lse] as TensorInfo[], [q.shape, k.shape, v.shape]);
    const impl = (backendName === 'cpu' ? nativeFlashTrain()?.backward : undefined) ?? flashAttentionRaggedBackward;
    if (q.shape[0] > 0) impl({ q: qV, k: kV, v: vV }, dyV, oV, lV, dq, dk, dv, a);
    return outs;
  };
}

export const flashAttentionRaggedGradCpuConfig: KernelConfig = {
  kernelName: FlashAttentionRaggedGrad, backendName: 'cpu', kernelFunc: flashAttentionRaggedGradKernel('cpu'),
};
