/**
 * `flashAttentionRagged(q, k, v, attrs)`: attention over packed ragged rows with no cache, the
 * differentiable core of the ragged training path. Runs the fused kernel where the active
 * backend has it (cpu, wasm) and the composite reference elsewhere, or everywhere when
 * `ATTENTION_ROPE_FORCE_COMPOSITE` is set (kernels/ops.ts).
 *
 * @example
 * const out = flashAttentionRagged(q, k, v, { nHeads: 4, nKvHeads: 2, headDim: 16, scale: 0.25,
 *   mask: { variant: 'causal', window: 0, chunk: 0 }, rowOffsets: new Int32Array([0, 5, 8]) }); // [8, 64]
 */
import * as tf from '@tensorflow/tfjs';
import { hasFusedKernel } from '../../../kernels/ops.js';
import { check } from '../../errors.js';
import { flashAttentionRaggedConfigs } from './FlashAttentionRagged.js';
import { registerTrainingGradients } from './gradients.js';
import { installMatMulGradient } from './matmul_grad.js';
import { ropeRaggedConfigs } from './RopeRagged.js';
import { FlashAttentionRagged, type FlashAttentionRaggedAttrs } from './names.js';
import { flashAttentionRaggedReference } from './reference.js';

/**
 * Registers the training kernels (FlashAttentionRagged, its backward and RopeRagged on cpu and
 * wasm), every training gradient, and the untransposed 2-D matMul gradient (matmul_grad.ts). Idempotent.
 */
export function registerTrainingKernels(): void {
  for (const k of [...flashAttentionRaggedConfigs, ...ropeRaggedConfigs]) {
    if (tf.getKernel(k.kernelName, k.backendName) === undefined) tf.registerKernel(k);
  }
  registerTrainingGradients();
  installMatMulGradient();
}

function checkAttrs(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, a: FlashAttentionRaggedAttrs): void {
  const W = 'flashAttentionRagged';
  const T = q.shape[0], r = a.rowOffsets;
  check(a.nHeads % a.nKvHeads === 0, W, () => `nHeads (${a.nHeads}) must be a multiple of nKvHeads (${a.nKvHeads})`);
  check(q.rank === 2 && q.shape[1] === a.nHeads * a.headDim, W, () => `q must be [T, ${a.nHeads * a.headDim}], got [${q.shape}]`);
  for (const [name, t] of [['k', k], ['v', v]] as const) {
    check(t.rank === 2 && t.shape[0] === T && t.shape[1] === a.nKvHeads * a.headDim, W, () =>
      `${name} must be [${T}, ${a.nKvHeads * a.headDim}], got [${t.shape}]`);
  }
  check(r instanceof Int32Array && r.length >= 1 && r[0] === 0 && r[r.length - 1] === T, W, () =>
    `rowOffsets must be an Int32Array from 0 to T (${T}), got [${Array.from(r ?? [])}]`);
  for (let i = 1; i < r.length; i++) check(r[i] >= r[i - 1], W, () => `rowOffsets must not decrease, got ${r[i - 1]} then ${r[i]} at index ${i}`);
}

/** Attention of each packed sequence over itself: `[T, nH*hd]`. Differentiable in q, k and v. */
export function flashAttentionRagged(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, attrs: FlashAttentionRaggedAttrs): tf.Tensor2D {
  checkAttrs(q, k, v, attrs);
  registerTrainingGradients();
  if (!hasFusedKernel(FlashAttentionRagged)) return flashAttentionRaggedReference(q, k, v, attrs);
  const [out, lse] = tf.engine().runKernel(FlashAttentionRagged, { q, k, v }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  lse.dispose();
  return out as tf.Tensor2D;
}
