/**
 * Gradients of the custom kernels, registered with `tf.registerGradient`:
 * - FlashAttentionRagged (no-cache training path): the fused backward kernel
 *   FlashAttentionRaggedGrad where the backend has one, else the composite reference's gradient
 *   written out as ops (reference/FlashAttentionRaggedGrad.ts; a gradient function must not nest tf.grads).
 * - RopeRagged: RopeRagged with the inverse rotation (a rotation's transpose is its inverse).
 * - ProjectionMatMul: the same op with the transposes passed as attrs (no materialized transpose).
 * - RopeSplitStoreRagged and FlashAttentionRaggedPaged (cached path): gradient with respect to
 *   their differentiable inputs only (qkv and the qk-norm weights; q). K and V reach attention
 *   through the cache's pages, which are not tensors, so no gradient flows through the cache:
 *   train on the no-cache paths (`layer.apply`, `attentionRaggedTrain`). The paged gradient reads
 *   the cache again in the backward pass, so the step's pages must still be there.
 */
import * as tf from '@tensorflow/tfjs';
import {
  FlashAttentionRagged, type FlashAttentionRaggedAttrs, FlashAttentionRaggedGrad, FlashAttentionRaggedPaged, type FlashAttentionRaggedPagedAttrs,
  ProjectionMatMul, type ProjectionMatMulAttrs, RopeRagged, type RopeRaggedAttrs, RopeSplitStoreRagged, type RopeSplitStoreRaggedAttrs,
} from './kernel_names.js';
import { projectionMatMul } from './projection_matmul.js';
import { quantMatMulGrad } from './quant_matmul.js';
import { attentionBlockBackward, fromQueryBlocks, headRmsNormBackward, maskTensor, queryBlocks } from './reference/attention_grads.js';
import { flashAttentionRaggedGradReference } from './reference/FlashAttentionRaggedGrad.js';
import { rowPositions } from './reference/positions.js';
import { ropeRagged } from './train_ops.js';

const flashAttentionRaggedGrad: tf.GradConfig = {
  kernelName: FlashAttentionRagged,
  inputsToSave: ['q', 'k', 'v'],
  outputsToSave: [true, true],
  gradFunc: (dys, saved, attrs) => {
    const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor2D; // [T, nH*hd]; lse's dy is ignored (not a model output)
    const [q, k, v, out, lse] = saved as tf.Tensor2D[];
    if (tf.getKernel(FlashAttentionRaggedGrad, tf.getBackend()) !== undefined) {
      // Computed here, not in the thunks: the tape runs each thunk in its own tidy.
      const [dq, dk, dv] = tf.engine().runKernel(FlashAttentionRaggedGrad, { dy, q, k, v, out, lse }, attrs) as tf.Tensor[];
      return { q: () => dq, k: () => dk, v: () => dv };
    }
    const [dq, dk, dv] = flashAttentionRaggedGradReference(q, k, v, dy, attrs as unknown as FlashAttentionRaggedAttrs);
    return { q: () => dq, k: () => dk, v: () => dv };
  },
};

const ropeSplitStoreRaggedGrad: tf.GradConfig = {
  kernelName: RopeSplitStoreRagged,
  inputsToSave: ['qkv', 'qNormWeight', 'kNormWeight'],
  gradFunc: (dys, saved, attrs): Record<string, () => tf.Tensor> => {
    const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor2D; // [T, nH*hd]: gradient of rotated q
    const [qkv, qw, kw] = saved as [tf.Tensor2D, tf.Tensor1D?, tf.Tensor1D?];
    const a = attrs as unknown as RopeSplitStoreRaggedAttrs;
    const T = qkv.shape[0], qDim = a.nHeads * a.headDim;
    // undo the rotation (a rotation's transpose is its inverse), then the qk-norm
    let dq = ropeRagged(dy, a.rope, rowPositions(a.collection), true); // [T, qDim]
    let dqw: tf.Tensor1D | undefined;
    if (a.qkNormEps >= 0) {
      const q = qkv.slice([0, 0], [T, qDim]) as tf.Tensor2D;
      const r = headRmsNormBackward(q, qw!, dq, a.headDim, a.qkNormEps);
      dq = r.dx; dqw = r.dw;
    }
    // k and v columns reach attention only through the cache: no gradient
    const dqkv = tf.concat([dq, tf.zeros([T, qkv.shape[1] - qDim])], 1);
    if (a.qkNormEps < 0) return { qkv: () => dqkv };
    return { qkv: () => dqkv, qNormWeight: () => dqw!, kNormWeight: () => tf.zerosLike(kw!) };
  },
};

const flashAttentionRaggedPagedGrad: tf.GradConfig = {
  kernelName: FlashAttentionRaggedPaged,
  inputsToSave: ['q'],
  gradFunc: (dys, saved, attrs) => {
    const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor2D; // [T, nH*hd]
    const a = attrs as unknown as FlashAttentionRaggedPagedAttrs;
    const q = saved[0] as tf.Tensor2D;
    const { nHeads, nKvHeads, headDim: hd, collection: c } = a;
    const g = nHeads / nKvHeads;
    const parts: tf.Tensor2D[] = [];
    for (let b = 0; b < c.seqIds.length; b++) {
      const r0 = c.rowOffsets[b], n = c.rowOffsets[b + 1] - r0;
      if (n === 0) continue;
      const start = c.startPositions[b], len = start + n;
      const { k, v } = c.cache.readSequence(a.layerIdx, c, b, len); // [nKv, len, hd] each, host
      const mask = maskTensor(a.mask, start, n, g, len);
      const qs = queryBlocks(q.slice([r0, 0], [n, nHeads * hd]), nKvHeads, g, hd);
      const dys = queryBlocks(dy.slice([r0, 0], [n, nHeads * hd]), nKvHeads, g, hd);
      const dq = qs.map((qh, h) => attentionBlockBackward({
        q: qh, dy: dys[h], mask, scale: a.scale,
        k: tf.tensor2d(k.subarray(h * len * hd, (h + 1) * len * hd), [len, hd]),
        v: tf.tensor2d(v.subarray(h * len * hd, (h + 1) * len * hd), [len, hd]),
      }, false).dq);
      parts.push(fromQueryBlocks(dq, n, g, hd));
    }
    const dq = parts.length === 0 ? tf.zerosLike(q) : parts.length === 1 ? parts[0] : tf.concat(parts, 0);
    return { q: () => dq };
  },
};

const ropeRaggedGrad: tf.GradConfig = {
  kernelName: RopeRagged,
  gradFunc: (dy, _saved, attrs) => {
    const a = attrs as unknown as RopeRaggedAttrs;
    return { x: () => ropeRagged(dy as tf.Tensor2D, a.tables, a.positions, !a.inverse) };
  },
};

const projectionMatMulGrad: tf.GradConfig = {
  kernelName: ProjectionMatMul,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved, attrs) => {
    const [a, b] = saved as tf.Tensor2D[];
    const d = dy as tf.Tensor2D; // [M, N]
    const pm = (x: tf.Tensor2D, y: tf.Tensor2D, tA: boolean, tB: boolean) => projectionMatMul(x, y, { transposeA: tA, transposeB: tB });
    const { transposeA: tA, transposeB: tB } = attrs as unknown as ProjectionMatMulAttrs;
    const bias = () => tf.sum(d, 0);
    if (!tA && !tB) return { a: () => pm(d, b, false, true), b: () => pm(a, d, true, false), bias };
    if (!tA && tB) return { a: () => pm(d, b, false, false), b: () => pm(d, a, true, false), bias };
    if (tA && !tB) return { a: () => pm(b, d, false, true), b: () => pm(a, d, false, false), bias };
    return { a: () => pm(b, d, true, true), b: () => pm(d, a, true, true), bias };
  },
};

/** Every custom kernel's gradient (kernels/register_all.ts registers them). */
export function kernelGradients(): tf.GradConfig[] {
  return [flashAttentionRaggedGrad, ropeRaggedGrad, ropeSplitStoreRaggedGrad, flashAttentionRaggedPagedGrad, projectionMatMulGrad, quantMatMulGrad];
}
