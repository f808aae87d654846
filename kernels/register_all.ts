/**
 * The one list of every custom kernel (per backend) and gradient this package registers with
 * tfjs. `useBackend` runs it, and every op runs it before its first dispatch (so a program that
 * calls `tf.setBackend` itself still gets the fused kernels, never silently the composite path).
 * Registering a kernel for a backend that is not loaded is harmless: tfjs keys kernels by name.
 * A kernel or gradient already registered (by tfjs or an earlier call) is left alone.
 *
 * @example
 * registerAllKernels();   // then tf.engine().runKernel('FlashAttentionRaggedPaged', { q }, attrs)
 */
import * as tf from '@tensorflow/tfjs';

import { flashAttentionRaggedCpuConfig } from './cpu/FlashAttentionRagged.js';
import { flashAttentionRaggedGradCpuConfig } from './cpu/FlashAttentionRaggedGrad.js';
import { flashAttentionRaggedPagedCpuConfig } from './cpu/FlashAttentionRaggedPaged.js';
import { fusedRmsNormCpuConfig } from './cpu/FusedRMSNorm.js';
import { fusedSwiGluMlpCpuConfig } from './cpu/FusedSwiGLUMLP.js';
import { projectionMatMulCpuConfig } from './cpu/ProjectionMatMul.js';
import { quantMatMulCpuConfig } from './cpu/QuantMatMul.js';
import { ropeRaggedCpuConfig } from './cpu/RopeRagged.js';
import { ropeSplitStoreRaggedCpuConfig } from './cpu/RopeSplitStoreRagged.js';
import { kernelGradients } from './gradients.js';
import { flashAttentionRaggedWasmConfig } from './wasm/FlashAttentionRagged.js';
import { flashAttentionRaggedGradWasmConfig } from './wasm/FlashAttentionRaggedGrad.js';
import { flashAttentionRaggedPagedWasmConfig } from './wasm/FlashAttentionRaggedPaged.js';
import { fusedRmsNormWasmConfig } from './wasm/FusedRMSNorm.js';
import { fusedSwiGluMlpWasmConfig } from './wasm/FusedSwiGLUMLP.js';
import { projectionMatMulWasmConfig } from './wasm/ProjectionMatMul.js';
import { quantMatMulWasmConfig } from './wasm/QuantMatMul.js';
import { ropeRaggedWasmConfig } from './wasm/RopeRagged.js';
import { ropeSplitStoreRaggedWasmConfig } from './wasm/RopeSplitStoreRagged.js';
import { unsortedSegmentSumWasmConfig } from './wasm/UnsortedSegmentSum.js';
import { argMaxRowsWebGpuConfig } from './webgpu/ArgMaxRows.js';
import { denseMatMulWebGpuConfig } from './webgpu/DenseMatMul.js';
import { flashAttentionRaggedPagedWebGpuConfig } from './webgpu/FlashAttentionRaggedPaged.js';
import { quantMatMulWebGpuConfig } from './webgpu/QuantMatMul.js';
import { rmsNormWebGpuConfig } from './webgpu/RmsNorm.js';
import { ropeSplitStoreRaggedWebGpuConfig } from './webgpu/RopeSplitStoreRagged.js';
import { swiGluMlpWebGpuConfig } from './webgpu/SwiGluMlp.js';

/**
 * Every kernel config, by backend. Built on call, not at module load: gradients.ts and the ops
 * import each other through this file, and a list built at load could see a half-loaded module.
 * webgpu has no training kernels (FlashAttentionRagged, its gradient, RopeRagged) and no
 * ProjectionMatMul: the ops run their composite references there.
 */
export function kernelConfigs(): tf.KernelConfig[] {
  return [
    // cpu
    ropeSplitStoreRaggedCpuConfig, flashAttentionRaggedPagedCpuConfig, projectionMatMulCpuConfig,
    flashAttentionRaggedCpuConfig, flashAttentionRaggedGradCpuConfig, ropeRaggedCpuConfig, quantMatMulCpuConfig,
    fusedRmsNormCpuConfig, fusedSwiGluMlpCpuConfig,
    // wasm (in Node the native addon runs on the wasm heap; without it these fall back to TypeScript / the reference)
    ropeSplitStoreRaggedWasmConfig, flashAttentionRaggedPagedWasmConfig, projectionMatMulWasmConfig, fusedRmsNormWasmConfig, fusedSwiGluMlpWasmConfig,
    flashAttentionRaggedWasmConfig, flashAttentionRaggedGradWasmConfig, ropeRaggedWasmConfig, unsortedSegmentSumWasmConfig, quantMatMulWasmConfig,
    // webgpu
    ropeSplitStoreRaggedWebGpuConfig, flashAttentionRaggedPagedWebGpuConfig, quantMatMulWebGpuConfig,
    // webgpu whole-model kernels (models/fused_forward.ts)
    denseMatMulWebGpuConfig, rmsNormWebGpuConfig, swiGluMlpWebGpuConfig, argMaxRowsWebGpuConfig,
  ];
}

let registered = false;

/** Registers every kernel and gradient of the list once; later calls return at once. */
export function registerAllKernels(): void {
  if (registered) return;
  registered = true;
  for (const k of kernelConfigs()) {
    if (tf.getKernel(k.kernelName, k.backendName) === undefined) tf.registerKernel(k);
  }
  for (const g of kernelGradients()) {
    if (tf.getGradient(g.kernelName) === undefined) tf.registerGradient(g);
  }
}
