/**
 * ProjectionMatMul for the `cpu` backend: the native sgemm (native/matmul.cc: packed panels, an
 * AVX-512 register-tiled micro-kernel, the addon's thread pool; ~400 GFLOP/s on 2 threads on 1024x256x512 against tfjs-cpu's
 * ~1) reading the inputs and writing the output in place. Without the addon (or with
 * `TFJS_ATTENTION_CPU_IMPL=ts`) it runs tfjs-cpu's own BatchMatMul and Add kernels.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { check } from '../../core/errors.js';
import { ProjectionMatMul, type ProjectionMatMulAttrs } from '../kernel_names.js';
import { KernelIO } from './backend_io.js';
import { activeNative, type NativeKernels } from './native.js';
import { simdSgemm } from '../wasm/simd_calls.js';
import { wasmSimdFor } from '../wasm/simd_module.js';

/**
 * Checks the shapes of `op(a) · op(b) (+ bias)` and returns `[M, N, K]`.
 * Throws naming the argument and both values, e.g.
 * `[projectionMatMul] a's inner dimension (5, a [3,5] transposeA=false) must equal b's (7, b [7,2] transposeB=false)`.
 */
export function projectionMatMulDims(where: string, aShape: readonly number[], bShape: readonly number[],
  biasShape: readonly number[] | undefined, attrs: ProjectionMatMulAttrs): [number, number, number] {
  const { transposeA: tA, transposeB: tB } = attrs;
  check(aShape.length === 2, where, () => `a must be 2-D, got shape [${aShape}]`);
  check(bShape.length === 2, where, () => `b must be 2-D, got shape [${bShape}]`);
  const [M, Ka] = tA ? [aShape[1], aShape[0]] : [aShape[0], aShape[1]];
  const [Kb, N] = tB ? [bShape[1], bShape[0]] : [bShape[0], bShape[1]];
  check(Ka === Kb, where, () =>
    `a's inner dimension (${Ka}, a [${aShape}] transposeA=${tA}) must equal b's (${Kb}, b [${bShape}] transposeB=${tB})`);
  if (biasShape !== undefined) {
    check(biasShape.length === 1 && biasShape[0] === N, where, () =>
      `bias must be [${N}] (the output's columns), got shape [${biasShape}]`);
  }
  return [M, N, Ka];
}

/** The addon's sgemm when the current CPU implementation choice uses the addon and it has one. */
export function nativeSgemm(): NativeKernels['sgemm'] | null {
  const n = activeNative();
  return n !== null && typeof n.sgemm === 'function' ? n.sgemm : null;
}

interface BackendDisposer { disposeIntermediateTensorInfo?(t: TensorInfo): void; disposeData(dataId: object): boolean }

/** The backend's own kernels: BatchMatMul, then Add for the bias. */
function viaBackendKernels(backendName: 'cpu' | 'wasm', a: TensorInfo, b: TensorInfo, bias: TensorInfo | undefined,
  backend: unknown, attrs: ProjectionMatMulAttrs): TensorInfo {
  const mm = tf.getKernel('BatchMatMul', backendName)!.kernelFunc;
  const y = mm({ inputs: { a, b }, backend: backend as tf.KernelBackend,
    attrs: { transposeA: attrs.transposeA, transposeB: attrs.transposeB } }) as TensorInfo; // [M, N]
  if (!bias) return y;
  const add = tf.getKernel('Add', backendName)!.kernelFunc;
  const out = add({ inputs: { a: y, b: bias }, backend: backend as tf.KernelBackend, attrs: {} }) as TensorInfo;
  const d = backend as BackendDisposer;
  if (d.disposeIntermediateTensorInfo) d.disposeIntermediateTensorInfo(y); else d.disposeData(y.dataId);
  return out;
}

function floats(io: KernelIO, t: TensorInfo, name: string): Float32Array {
  const v = io.input(t, name) as unknown;
  return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
}

/**
 * The kernel for `cpu` or `wasm` (on wasm the addon reads and writes the wasm heap in place; the
 * output is allocated before the input views are taken, as allocation may grow the heap).
 */
export function makeProjectionMatMulKernel(backendName: 'cpu' | 'wasm'): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const at = attrs as unknown as ProjectionMatMulAttrs;
    const { a, b, bias } = inputs as { a?: TensorInfo; b?: TensorInfo; bias?: TensorInfo };
    const io: KernelIO = new KernelIO(ProjectionMatMul, backendName, backend);
    io.require(a, 'a');
    io.require(b, 'b');
    if (bias !== undefined) io.require(bias, 'bias');
    const [M, N, K] = projectionMatMulDims(ProjectionMatMul, a.shape, b.shape, bias?.shape, at);
    const sgemm = nativeSgemm();
    const simd = wasmSimdFor(backendName, backend, sgemm !== null);
    if (simd) { // wasm without the addon: the WebAssembly SIMD sgemm / GEMV (native/wasm/sgemm.c)
      const out = io.output([M, N], true); // [M, N], every element written
      if (M * N > 0) simdSgemm(simd, a, b, bias ?? null, out, M, N, K, at.transposeA, at.transposeB);
      return out;
    }
    if (sgemm === null) return viaBackendKernels(backendName, a, b, bias, backend, at);
    const out = io.output([M, N], true); // [M, N], every element written
    if (M * N === 0) return out;
    sgemm(floats(io, a, 'a'), floats(io, b, 'b'), bias ? floats(io, bias, 'bias') : null, io.outputValues(),
      M, N, K, at.transposeA ? 1 : 0, at.transposeB ? 1 : 0);
    return out;
  };
}

export const projectionMatMulCpuConfig: KernelConfig = { kernelName: ProjectionMatMul, backendName: 'cpu', kernelFunc: makeProjectionMatMulKernel('cpu') };
