/**
 * FlashAttentionRagged and its backward FlashAttentionRaggedGrad for the `cpu` and `wasm`
 * backends (host TypeScript on the backends' own buffers, no copies; on `cpu` the native addon's
 * compiled twin when it loaded, flash_attention_ragged_native.ts).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { flashAttentionRaggedBackward, flashAttentionRaggedForward } from './flash_attention_ragged_ts.js';
import { nativeFlashTrain } from './flash_attention_ragged_native.js';
import { hostIo, type HostBackendName } from './io.js';
import { FlashAttentionRagged, type FlashAttentionRaggedAttrs, FlashAttentionRaggedGrad } from './names.js';

function forward(backendName: HostBackendName): KernelFunc {
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

function backward(backendName: HostBackendName): KernelFunc {
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

export const flashAttentionRaggedConfigs: KernelConfig[] = (['cpu', 'wasm'] as const).flatMap((b) => [
  { kernelName: FlashAttentionRagged, backendName: b, kernelFunc: forward(b) },
  { kernelName: FlashAttentionRaggedGrad, backendName: b, kernelFunc: backward(b) },
]);
