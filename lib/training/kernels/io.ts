/**
 * Zero-copy float32 inputs and several outputs for kernels on the `cpu` and `wasm` backends
 * (after kernels/cpu/backend_io.ts, which makes one output). On wasm every output is allocated
 * before any heap view is taken, since an allocation may grow (and move) the heap.
 */
import type { TensorInfo } from '@tensorflow/tfjs';
import type { CpuBackendLike, WasmBackendLike } from '../../../kernels/cpu/backend_io.js';
import { check } from '../../errors.js';

export type HostBackendName = 'cpu' | 'wasm';

/** Allocates the outputs, then returns them with views on their values and on the inputs. */
export function hostIo(where: string, backendName: HostBackendName, backend: unknown, inputs: (TensorInfo | undefined)[], outShapes: number[][]):
  { outs: TensorInfo[]; outValues: Float32Array[]; inValues: Float32Array[] } {
  inputs.forEach((t, i) => {
    check(t !== undefined, where, () => `input ${i} is missing`);
    check(t.dtype === 'float32', where, () => `input ${i} must be float32, got ${t.dtype}`);
  });
  if (backendName === 'cpu') {
    const cpu = backend as CpuBackendLike;
    const outValues = outShapes.map((s) => new Float32Array(s.reduce((x, y) => x * y, 1)));
    const outs = outShapes.map((s, i) => cpu.makeTensorInfo(s, 'float32', outValues[i]));
    return { outs, outValues, inValues: inputs.map((t) => cpu.data.get(t!.dataId).values as Float32Array) };
  }
  const wasm = backend as WasmBackendLike;
  const outs = outShapes.map((s) => wasm.makeOutput(s, 'float32'));
  return { outs, outValues: outs.map((o) => wasm.typedArrayFromHeap(o)), inValues: inputs.map((t) => wasm.typedArrayFromHeap(t!)) };
}
