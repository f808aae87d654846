/**
 * Gradients of the custom kernels, registered with `tf.registerGradient`:
 * - FlashAttentionRagged (no-cache training path): the fused backward kernel
 *   FlashAttentionRaggedGrad where the backend has one, else the composite reference's gradient.
 * - RopeRagged: RopeRagged with the inverse rotation (RopeRagged.ts).
 * - RopeSplitStoreRagged and FlashAttentionRaggedPaged (cached path): gradient with respect to
 *   their differentiable inputs only (qkv and the qk-norm weights; q). K and V reach attention
 *   through the cache's pages, which are not tensors, so no gradient flows through the cache:
 *   train on the no-cache paths (`layer.apply`, `attentionRaggedTrain`). The paged gradient reads
 *   the cache again in the backward pass, so the step's pages must still be there.
 */
import * as tf from '@tensorflow/tfjs';
import { FlashAttentionRaggedPaged, type FlashAttentionRaggedPagedAttrs, RopeSplitStoreRagged, type RopeSplitStoreRaggedAttrs } from '../../../kernels/kernel_names.js';
import { flashAttentionRaggedPagedReference } from '../../../kernels/reference/FlashAttentionRaggedPaged.js';
import { ropeSplitReference } from '../../../kernels/reference/RopeSplitStoreRagged.js';
import { FlashAttentionRagged, type FlashAttentionRaggedAttrs, FlashAttentionRaggedGrad } from './names.js';
import { flashAttentionRaggedReference } from './reference.js';
import { ropeRaggedGrad } from './RopeRagged.js';

const flashAttentionRaggedGrad: tf.GradConfig = {
  kernelName: FlashAttentionRagged,
  inputsToSave: ['q', 'k', 'v'],
  outputsToSave: [true, true],
  gradFunc: (dys, saved, attrs) => {
    const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor2D; // [T, nH*hd]; lse's dy is ignored (not a model output)
    const [q, k, v, out, lse] = saved as tf.Tensor2D[];
    const a = attrs as unknown as FlashAttentionRaggedAttrs;
    if (tf.getKernel(FlashAttentionRaggedGrad, tf.getBackend()) !== undefined) {
      // Computed here, not in the thunks: the tape runs each thunk in its own tidy.
      const [dq, dk, dv] = tf.engine().runKernel(FlashAttentionRaggedGrad, { dy, q, k, v, out, lse }, attrs) as tf.Tensor[];
      return { q: () => dq, k: () => dk, v: () => dv };
    }
    const g = tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
      flashAttentionRaggedReference(qq as tf.Tensor2D, kk as tf.Tensor2D, vv as tf.Tensor2D, a));
    const [dq, dk, dv] = g([q, k, v], dy);
    return { q: () => dq, k: () => dk, v: () => dv };
  },
};

const ropeSplitStoreRaggedGrad: tf.GradConfig = {
  kernelName: RopeSplitStoreRagged,
  inputsToSave: ['qkv', 'qNormWeight', 'kNormWeight'],
  gradFunc: (dys, saved, attrs): Record<string, () => tf.Tensor> => {
    const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor2D; // [T, nH*hd]
    const [qkv, qw, kw] = saved as [tf.Tensor2D, tf.Tensor1D?, tf.Tensor1D?];
    const a = attrs as unknown as RopeSplitStoreRaggedAttrs;
    if (a.qkNormEps < 0) {
      return { qkv: () => tf.grad((x: tf.Tensor) => ropeSplitReference(x as tf.Tensor2D, a).q)(qkv, dy) };
    }
    const [dqkv, dqw, dkw] = tf.grads((x: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor) =>
      ropeSplitReference(x as tf.Tensor2D, a, w1 as tf.Tensor1D, w2 as tf.Tensor1D).q)([qkv, qw!, kw!], dy);
    return { qkv: () => dqkv, qNormWeight: () => dqw, kNormWeight: () => dkw };
  },
};

const flashAttentionRaggedPagedGrad: tf.GradConfig = {
  kernelName: FlashAttentionRaggedPaged,
  inputsToSave: ['q'],
  gradFunc: (dys, saved, attrs) => {
    const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor2D;
    const a = attrs as unknown as FlashAttentionRaggedPagedAttrs;
    return { q: () => tf.grad((x: tf.Tensor) => flashAttentionRaggedPagedReference(x as tf.Tensor2D, a))(saved[0], dy) };
  },
};

let registered = false;

/** Registers the gradients (idempotent). */
export function registerTrainingGradients(): void {
  if (registered) return;
  registered = true;
  for (const g of [flashAttentionRaggedGrad, ropeRaggedGrad, ropeSplitStoreRaggedGrad, flashAttentionRaggedPagedGrad]) {
    if (tf.getGradient(g.kernelName) === undefined) tf.registerGradient(g);
  }
}
