/**
 * ProjectionMatMul for the `wasm` backend: in Node the native sgemm / small-M GEMV
 * (native/matmul.cc, native/gemv.cc) reads the inputs and writes the output on the wasm heap in
 * place; without the addon it runs tfjs-wasm's own BatchMatMul (XNNPACK) and Add kernels.
 * `projectionMatMul` (kernels/projection_matmul.ts) only calls it when the addon is loaded, so
 * without it a wasm user gets exactly `tf.matMul` + `tf.add`.
 *
 * @example
 * tf.registerKernel(projectionMatMulWasmConfig);
 * const y = tf.engine().runKernel('ProjectionMatMul', { a, b }, { transposeA: false, transposeB: true }); // [M, N]
 */
import type { KernelConfig } from '@tensorflow/tfjs';

import { makeProjectionMatMulKernel } from '../cpu/ProjectionMatMul.js';
import { ProjectionMatMul } from '../kernel_names.js';

export const projectionMatMulWasmConfig: KernelConfig = {
  kernelName: ProjectionMatMul, backendName: 'wasm', kernelFunc: makeProjectionMatMulKernel('wasm'),
};
