/**
 * FlashAttentionRaggedPaged for the `cpu` backend (and, through kernels/wasm/, `wasm`): the native addon when loaded
 * (SIMD, its thread pool: TFJS_ATTENTION_THREADS, default every core), else the pure-TypeScript kernel. The addon reads K
 * and V from the cache pools in place for every kvParams.dtype (compact rows widened block by block, native/kv_codec.h);
 * without it a compact cache runs the TypeScript kernel on its decoded pages (kernels/cpu/packed_kv.ts).
 */
import type { KernelConfig, KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';

import { type FlashAttentionRaggedPagedAttrs, FlashAttentionRaggedPaged } from '../kernel_names.js';
import { attentionArgs, checkPools } from './args.js';
import { KernelIO } from './backend_io.js';
import { flashAttentionTs } from './flash_attention_ts.js';
import { activeNative } from './native.js';
import { decodedStep } from './packed_kv.js';

/** The kernel function for `backendName` (the wasm config, kernels/wasm/, runs it with 'wasm'). */
export function flashAttentionRaggedPagedKernel(backendName: 'cpu' | 'wasm'): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const a = attrs as unknown as FlashAttentionRaggedPagedAttrs;
    const qInfo = (inputs as NamedTensorInfoMap).q as TensorInfo;
    const ints = attentionArgs(a, qInfo.shape);
    const io: KernelIO = new KernelIO(FlashAttentionRaggedPaged, backendName, backend);
    const c = a.collection, params = c.cache.params;
    const packed = params.dtype !== 'float32';
    const native = activeNative();
    // The addon reads every dtype's pools in place (compact rows widened block by block, native/kv_codec.h);
    // the TypeScript kernel runs a compact cache on its decoded pages.
    const pools = native || !packed
      ? (packed ? c.cache.pools(a.layerIdx) : { k: c.cache.keys(a.layerIdx), v: c.cache.values(a.layerIdx), kRowScales: null, vRowScales: null })
      : null;
    if (pools) checkPools(FlashAttentionRaggedPaged, c, pools.k, pools.v, pools.kRowScales, pools.vRowScales);
    io.require(qInfo, 'q');
    const out = io.output([qInfo.shape[0], qInfo.shape[1]], native !== null); // [T, nHeads * headDim]
    if (qInfo.shape[0] === 0) return out;
    const q = io.input(qInfo, 'q');
    const o = io.outputValues();
    if (native) {
      native.flashAttention(q, o, pools!.k, pools!.v, c.rowOffsets, c.startPositions, c.numNewTokens, c.pageTable, ints, a.scale,
        pools!.kRowScales, pools!.vRowScales, params.kScale, params.vScale);
    } else if (packed) {
      o.fill(0);
      const d = decodedStep(a);
      flashAttentionTs(q, o, d.kPool, d.vPool, d.attrs);
    } else {
      o.fill(0);
      flashAttentionTs(q, o, pools!.k as Float32Array, pools!.v as Float32Array, a);
    }
    return out;
  };
}

export const flashAttentionRaggedPagedCpuConfig: KernelConfig = {
  kernelName: FlashAttentionRaggedPaged, backendName: 'cpu', kernelFunc: flashAttentionRaggedPagedKernel('cpu'),
};
