/**
 * RopeSplitStoreRagged for the `cpu` backend (and, through kernels/wasm/, `wasm`): the native addon when loaded (SIMD, 2
 * threads), else the pure-TypeScript kernel. The addon writes K and V into the cache pools in place for every
 * kvParams.dtype (encoding compact rows as core/kv_dtype.ts does); the TypeScript kernel on a compact cache hands float
 * rows to the cache, which encodes them itself.
 */
import type { KernelConfig, KernelFunc, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';

import { type RopeSplitStoreRaggedAttrs, RopeSplitStoreRagged } from '../kernel_names.js';
import { checkPools, ropeArgs } from './args.js';
import { KernelIO } from './backend_io.js';
import { activeNative } from './native.js';
import { ropeSplitStoreTs } from './rope_split_store_ts.js';

/** The kernel function for `backendName` (the wasm config, kernels/wasm/, runs it with 'wasm'). */
export function ropeSplitStoreRaggedKernel(backendName: 'cpu' | 'wasm'): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const a = attrs as unknown as RopeSplitStoreRaggedAttrs;
    const ins = inputs as NamedTensorInfoMap;
    const qkvInfo = ins.qkv as TensorInfo;
    const qNormInfo: TensorInfo | undefined = ins.qNormWeight;
    const kNormInfo: TensorInfo | undefined = ins.kNormWeight;
    const useNorm = a.qkNormEps >= 0;
    const ints = ropeArgs(a, qkvInfo.shape, qNormInfo !== undefined && kNormInfo !== undefined);
    const io: KernelIO = new KernelIO(RopeSplitStoreRagged, backendName, backend);
    const T = qkvInfo.shape[0], width = a.nHeads * a.headDim;
    const c = a.collection, params = c.cache.params;
    const packed = params.dtype !== 'float32';
    const native = activeNative();
    const kvRows = T * a.nKvHeads * a.headDim;
    // Native: K/V straight into the pools of any dtype (encoded there, native/kv_codec.h). TypeScript on a compact
    // cache: float rows [T, nKv * D], encoded by the cache.
    const tsRows = packed && !native;
    const pools = tsRows ? { k: new Float32Array(kvRows), v: new Float32Array(kvRows), kRowScales: null, vRowScales: null }
      : packed ? c.cache.pools(a.layerIdx) : { k: c.cache.keys(a.layerIdx), v: c.cache.values(a.layerIdx), kRowScales: null, vRowScales: null };
    if (packed) c.cache.validateCollection(c, RopeSplitStoreRagged);
    if (!tsRows) checkPools(RopeSplitStoreRagged, c, pools.k, pools.v, pools.kRowScales, pools.vRowScales);
    io.require(qkvInfo, 'qkv');
    if (useNorm) { io.require(qNormInfo, 'qNormWeight'); io.require(kNormInfo, 'kNormWeight'); }
    const out = io.output([T, width], native !== null); // [T, nHeads * headDim]
    if (T === 0) return out;
    const qkv = io.input(qkvInfo, 'qkv');
    const qw = useNorm ? io.input(qNormInfo, 'qNormWeight') : null;
    const kw = useNorm ? io.input(kNormInfo, 'kNormWeight') : null;
    const qOut = io.outputValues();
    if (native) {
      native.ropeSplitStore(qkv, qOut, pools.k, pools.v, a.rope.cos, a.rope.sin, qw, kw, ints, c.rowOffsets,
        c.startPositions, c.pageTable, a.qkNormEps, pools.kRowScales, pools.vRowScales, params.kScale, params.vScale);
    } else {
      ropeSplitStoreTs(qkv, qOut, pools.k as Float32Array, pools.v as Float32Array, a, qw, kw, packed);
      if (packed) c.cache.writeTokens(a.layerIdx, c, pools.k as Float32Array, pools.v as Float32Array);
    }
    return out;
  };
}

export const ropeSplitStoreRaggedCpuConfig: KernelConfig = {
  kernelName: RopeSplitStoreRagged, backendName: 'cpu', kernelFunc: ropeSplitStoreRaggedKernel('cpu'),
};
