/**
 * Zero-copy access to kernel inputs and outputs on the `cpu` and `wasm` backends.
 * cpu: the backend's data map holds the values array itself. wasm: inputs and outputs are views
 * on the wasm heap (taken after every output is allocated, since allocation may grow the heap).
 */
import type { TensorInfo } from '@tensorflow/tfjs';

import { check } from '../../lib/errors.js';

interface CpuBackendLike {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

/** Reads float32 inputs and makes one float32 output, on the backend named by `backendName`. */
export class KernelIO {
  private out: TensorInfo | null = null;
  private outValues: Float32Array | null = null;

  constructor(private readonly where: string, private readonly backendName: 'cpu' | 'wasm', private readonly backend: unknown) {}

  /** Allocates the output (do this before reading inputs: on wasm it may move the heap). */
  output(shape: number[]): TensorInfo {
    const size = shape.reduce((x, y) => x * y, 1);
    if (this.backendName === 'cpu') {
      this.outValues = new Float32Array(size);
      this.out = (this.backend as CpuBackendLike).makeTensorInfo(shape, 'float32', this.outValues);
    } else {
      this.out = (this.backend as WasmBackendLike).makeOutput(shape, 'float32');
    }
    return this.out;
  }

  /** The output's values (a heap view on wasm). */
  outputValues(): Float32Array {
    if (this.backendName === 'cpu') return this.outValues as Float32Array;
    return (this.backend as WasmBackendLike).typedArrayFromHeap(this.out as TensorInfo);
  }

  input(t: TensorInfo | undefined, name: string): Float32Array {
    check(t !== undefined, this.where, () => `input ${name} is missing`);
    check(t.dtype === 'float32', this.where, () => `input ${name} must be float32, got ${t.dtype}`);
    if (this.backendName === 'cpu') return (this.backend as CpuBackendLike).data.get(t.dataId).values as Float32Array;
    return (this.backend as WasmBackendLike).typedArrayFromHeap(t);
  }
}
