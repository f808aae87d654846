/**
 * RopeSplitStoreRagged for the `cpu` backend (and, through kernels/wasm/, `wasm`): the native addon when loaded (SIMD, 2
 * threads), else the pure-TypeScript kernel. Writes K and V into the cache pools in place; a compact cache
 * (kvParams.dtype other than float32) gets them from the TypeScript kernel as rows and encodes them itself.
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
    const c = a.collection;
    const packed = c.cache.params.dtype !== 'float32';
    const kvRows = T * a.nKvHeads * a.headDim;
    const kPool = packed ? new Float32Array(kvRows) : c.cache.keys(a.layerIdx); // packed: [T, nKv * D]
    const vPool = packed ? new Float32Array(kvRows) : c.cache.values(a.layerIdx);
    if (packed) c.cache.validateCollection(c, RopeSplitStoreRagged);
    else checkPools(RopeSplitStoreRagged, c, kPool, vPool);
    io.require(qkvInfo, 'qkv');
    if (useNorm) { io.require(qNormInfo, 'qNormWeight'); io.require(kNormInfo, 'kNormWeight'); }
    const native = packed ? null : activeNative();
    const out = io.output([T, width], native !== null); // [T, nHeads * headDim]
    if (T === 0) return out;
    const qkv = io.input(qkvInfo, 'qkv');
    const qw = useNorm ? io.input(qNormInfo, 'qNormWeight') : null;
    const kw = useNorm ? io.input(kNormInfo, 'kNormWeight') : null;
    const qOut = io.outputValues();
    if (native) {
      native.ropeSplitStore(qkv, qOut, kPool, vPool, a.rope.cos, a.rope.sin, qw, kw, ints, c.rowOffsets,
        c.startPositions, c.pageTable, a.qkNormEps);
    } else {
      ropeSplitStoreTs(qkv, qOut, kPool, vPool, a, qw, kw, packed);
      if (packed) c.cache.writeTokens(a.layerIdx, c, kPool, vPool);
    }
    return out;
  };
}

export const ropeSplitStoreRaggedCpuConfig: KernelConfig = {
  kernelName: RopeSplitStoreRagged, backendName: 'cpu', kernelFunc: ropeSplitStoreRaggedKernel('cpu'),
};
