/**
 * Zero-copy access to kernel inputs and outputs on the `cpu` and `wasm` backends.
 * cpu: the backend's data map holds the values array itself. wasm: inputs and outputs are views
 * on the wasm heap (taken after every output is allocated, since allocation may grow the heap).
 */
import type { TensorInfo } from '@tensorflow/tfjs';

import { check } from '../../core/errors.js';

/** What the kernels use of tfjs-backend-cpu. */
export interface CpuBackendLike {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}
/** What the kernels use of tfjs-backend-wasm. */
export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

type BufferLike = { allocUnsafeSlow(n: number): { buffer: ArrayBuffer; byteOffset: number } };
const NodeBuffer = (globalThis as unknown as { Buffer?: BufferLike }).Buffer;

function uninitializedFloat32(size: number): Float32Array {
  if (!NodeBuffer || size < 4096) return new Float32Array(size);
  const b = NodeBuffer.allocUnsafeSlow(size * 4);
  return new Float32Array(b.buffer, b.byteOffset, size);
}

/** Reads float32 inputs and makes one float32 output, on the backend named by `backendName`. */
export class KernelIO {
  private out: TensorInfo | null = null;
  private outValues: Float32Array | null = null;

  constructor(private readonly where: string, private readonly backendName: 'cpu' | 'wasm', private readonly backend: unknown) {}

  /**
   * Allocates the output (do this before reading inputs: on wasm it may move the heap).
   * `overwritten`: the kernel writes every element, so on `cpu` in Node the array may skip
   * zero-filling (Buffer.allocUnsafeSlow; saves a pass over a multi-megabyte output).
   */
  output(shape: number[], overwritten = false): TensorInfo {
    const size = shape.reduce((x, y) => x * y, 1);
    if (this.backendName === 'cpu') {
      this.outValues = overwritten ? uninitializedFloat32(size) : new Float32Array(size);
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

  /** Checks an input before anything is allocated (a throw after `output` would leak it). */
  require(t: TensorInfo | undefined, name: string): asserts t is TensorInfo {
    check(t !== undefined, this.where, () => `input ${name} is missing`);
    check(t.dtype === 'float32', this.where, () => `input ${name} must be float32, got ${t.dtype}`);
  }

  input(t: TensorInfo | undefined, name: string): Float32Array {
    this.require(t, name);
    if (this.backendName === 'cpu') return (this.backend as CpuBackendLike).data.get(t.dataId).values as Float32Array;
    return (this.backend as WasmBackendLike).typedArrayFromHeap(t);
  }
}

export type HostBackendName = 'cpu' | 'wasm';

/**
 * Several outputs (kernels with more than one, e.g. FlashAttentionRagged's out and lse): allocates
 * every output, then returns them with views on their values and on the float32 inputs. On wasm
 * every output is allocated before any heap view is taken, since an allocation may grow the heap.
 */
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
