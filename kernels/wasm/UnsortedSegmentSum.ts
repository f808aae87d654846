/**
 * UnsortedSegmentSum for the `wasm` backend, which tfjs-backend-wasm 4.22 lacks. It is the
 * gradient of tf.gather, so without it `model.fit` of any model with an embedding fails on wasm.
 * out[s, ...] = sum of x[i, ...] over i with segmentIds[i] == s (ids outside [0, numSegments) dropped).
 * Registered only where the backend has none, so a later tfjs-backend-wasm wins. Reference:
 * kernels/reference/UnsortedSegmentSum.ts.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmBackendLike } from '../cpu/backend_io.js';

interface Attrs { numSegments: number }

function unsortedSegmentSum(args: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: unknown }): tf.TensorInfo {
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = args.attrs as unknown as Attrs;
  const backend = args.backend as WasmBackendLike & { makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo };
  const ids = segmentIds.shape.reduce((a, b) => a * b, 1);
  const inner = ids === 0 ? 0 : x.shape.reduce((a, b) => a * b, 1) / ids;
  const out = backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype as 'float32');
  // Views after the output is allocated: allocation may grow (and move) the wasm heap.
  const o = backend.typedArrayFromHeap(out) as unknown as Float32Array | Int32Array;
  const xv = backend.typedArrayFromHeap(x) as unknown as Float32Array | Int32Array;
  const sv = backend.typedArrayFromHeap(segmentIds) as unknown as Int32Array;
  o.fill(0);
  for (let i = 0; i < ids; i++) {
    const s = sv[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner, dst = s * inner;
    for (let j = 0; j < inner; j++) o[dst + j] += xv[src + j];
  }
  return out;
}

/** Registered by kernels/register_all.ts only where the backend has none. */
export const unsortedSegmentSumWasmConfig: tf.KernelConfig = {
  kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc,
};
