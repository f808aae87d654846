/**
 * FlashAttentionRaggedPaged for the `cpu` backend (and, through kernels/wasm/, `wasm`): the native addon when loaded
 * (SIMD, its thread pool: TFJS_ATTENTION_THREADS, default every core), else the pure-TypeScript kernel. The addon reads K
 * and V from the cache pools in place for every kvParams.dtype (compact rows widened block by block, native/kv_codec.h);
 * without it a compact cache runs the TypeScript kernel on its decoded pages (kernels/cpu/packed_kv.ts).
 * On `wasm` without the addon: the WebAssembly SIMD kernel (kernels/wasm/simd_module.ts, native/wasm/attention.c), on
 * a compact cache's decoded pages.
 */
import type { KernelConfig, KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';

import { type FlashAttentionRaggedPagedAttrs, FlashAttentionRaggedPaged } from '../kernel_names.js';
import { attentionArgs, checkPools } from './args.js';
import { KernelIO } from './backend_io.js';
import { flashAttentionTs } from './flash_attention_ts.js';
import { activeNative } from './native.js';
import { decodedStep } from './packed_kv.js';
import { checkSimdAttention, simdFlashAttention } from '../wasm/simd_calls.js';
import { wasmSimdFor } from '../wasm/simd_module.js';

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
    const simd = wasmSimdFor(backendName, backend, native !== null);
    const d = !simd ? null : packed ? decodedStep(a) : { kPool: pools!.k as Float32Array, vPool: pools!.v as Float32Array, attrs: a };
    if (d) checkSimdAttention(qInfo, d.attrs.collection, attentionArgs(d.attrs, qInfo.shape), d.kPool, d.vPool);
    const out = io.output([qInfo.shape[0], qInfo.shape[1]], native !== null || simd !== null); // [T, nHeads * headDim]
    if (qInfo.shape[0] === 0) return out;
    if (simd && d) {
      simdFlashAttention(simd, qInfo, out, d.kPool, d.vPool, d.attrs.collection, attentionArgs(d.attrs, qInfo.shape), a.scale);
      return out;
    }
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
