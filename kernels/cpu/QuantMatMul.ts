/**
 * QuantMatMul for the `cpu` backend: the native kernel (native/quant_matmul.cc: the weight stays
 * packed and is widened in registers; a GEMV for decode rows, a tiled path for prefill) when the
 * addon has it, else the TypeScript kernel (kernels/cpu/quant_ts.ts). Both quantize the input rows
 * exactly as the fixtures' README defines (kernels/kernel_names.ts QuantMatMulAttrs).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { check } from '../../core/errors.js';
import { QuantMatMul, type QuantMatMulAttrs } from '../kernel_names.js';
import { KernelIO, type CpuBackendLike, type HostBackendName, type WasmBackendLike } from './backend_io.js';
import { activeNative } from './native.js';
import { quantMatMulTs, type QuantWeightArrays } from './quant_ts.js';

/** Shapes every input must have, from the attrs; throws naming the input and both shapes. */
export function quantMatMulShapes(a: QuantMatMulAttrs): Record<string, number[]> {
  const K = a.inDim, N = a.outDim;
  const weight = a.weightFormat === 'gptq' ? [K / 8, N] : a.weightFormat === 'nvfp4' ? [N, Math.ceil(K / 8)]
    : a.weightFormat === 'bf16' || a.weightFormat === 'f16' ? [N, Math.ceil(K / 2)] : [N, Math.ceil(K / 4)];
  const s: Record<string, number[]> = { weight };
  if (a.weightFormat === 'gptq') {
    s.scale = [K / a.blockCols, N]; s.zeros = [K / a.blockCols, N / 8]; s.gIdx = [K];
  } else if (a.weightFormat === 'nvfp4') s.scale = [N, K / 16];
  else if (a.weightScale === 'tensor') s.scale = [1];
  else if (a.weightScale === 'rowwise') s.scale = [N];
  else if (a.weightScale === 'block') s.scale = [Math.ceil(N / a.blockRows), Math.ceil(K / a.blockCols)];
  return s;
}

export function checkQuantMatMulInputs(where: string, x: { shape: number[] }, ins: Record<string, { shape: number[]; size?: number } | undefined>,
  a: QuantMatMulAttrs): void {
  check(x.shape.length === 2 && x.shape[1] === a.inDim, where, () => `x must be [T, ${a.inDim}] (inDim), got [${x.shape}]`);
  for (const [name, shape] of Object.entries(quantMatMulShapes(a))) {
    const t = ins[name]; // inputs the format does not use may be anything (the op passes placeholders)
    check(t !== undefined, where, () => `input ${name} ([${shape}]) is missing for weightFormat '${a.weightFormat}'`);
    const size = shape.reduce((p, q) => p * q, 1), got = t.shape.reduce((p, q) => p * q, 1);
    check(size === got, where, () => `input ${name} must hold [${shape}] (${size}) for weightFormat '${a.weightFormat}', got [${t.shape}]`);
  }
  const b = ins.bias;
  check(b === undefined || (b.shape.length === 1 && b.shape[0] === a.outDim), where, () => `bias must be [${a.outDim}], got [${b!.shape}]`);
}

function values(backendName: HostBackendName, backend: unknown, t: TensorInfo): Float32Array | Int32Array {
  if (backendName === 'cpu') return (backend as CpuBackendLike).data.get(t.dataId).values as Float32Array | Int32Array;
  const w = backend as WasmBackendLike & { typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array };
  return w.typedArrayFromHeap(t);
}

/** The kernel function for `cpu` or `wasm` (host TypeScript on the heap; native on cpu only). */
export function quantMatMulKernel(backendName: HostBackendName): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const a = attrs as unknown as QuantMatMulAttrs;
    const { x, weight, scale, zeros, gIdx, bias } = inputs as Record<string, TensorInfo | undefined>;
    check(x !== undefined && x.dtype === 'float32', QuantMatMul, () => `input x must be a float32 tensor, got ${x?.dtype}`);
    checkQuantMatMulInputs(QuantMatMul, x, { weight, scale, zeros, gIdx, bias }, a);
    const T = x.shape[0];
    const io = new KernelIO(QuantMatMul, backendName, backend);
    const out = io.output([T, a.outDim], true); // [T, outDim]
    if (T === 0) return out;
    const get = (t: TensorInfo | undefined) => (t ? values(backendName, backend, t) : undefined);
    const w: QuantWeightArrays = { weight: get(weight) as Int32Array, scale: get(scale) as Float32Array | undefined,
      zeros: get(zeros) as Int32Array | undefined, gIdx: get(gIdx) as Int32Array | undefined };
    const xv = get(x) as Float32Array, bv = (get(bias) as Float32Array | undefined) ?? null, y = io.outputValues();
    const native = backendName === 'cpu' ? activeNative() : null;
    if (native?.quantMatMul) native.quantMatMul(xv, w.weight, w.scale ?? null, w.zeros ?? null, w.gIdx ?? null, bv, y, nativeArgs(a, T), a.inputScale, a.weightScale2);
    else quantMatMulTs(xv, T, w, bv, a, y);
    return out;
  };
}

const WEIGHT_CODES = { e4m3: 0, int8: 1, nvfp4: 2, gptq: 3, bf16: 4, f16: 5 } as const;
const SCALE_CODES = { none: 0, tensor: 1, rowwise: 2, block: 3 } as const;
const ACT_CODES = { none: 0, e4m3_static: 1, e4m3_token: 2, e4m3_group: 3, int8_token: 4, nvfp4: 5 } as const;

/** The integer arguments of the native quantMatMul (native/quant_matmul.h QuantArgs, same order). */
export function nativeArgs(a: QuantMatMulAttrs, T: number): Int32Array {
  return Int32Array.from([T, a.inDim, a.outDim, WEIGHT_CODES[a.weightFormat], SCALE_CODES[a.weightScale], a.blockRows, a.blockCols,
    ACT_CODES[a.activation], a.actGroup]);
}

export const quantMatMulCpuConfig: KernelConfig = { kernelName: QuantMatMul, backendName: 'cpu', kernelFunc: quantMatMulKernel('cpu') };
