/**
 * Gradients of the custom kernels, registered with `tf.registerGradient`:
 * - FlashAttentionRagged (no-cache training path): the fused backward kernel
 *   FlashAttentionRaggedGrad where the backend has one, else the composite reference's gradient
 *   written out as ops (composite_grads.ts; a gradient function must not nest tf.grads).
 * - RopeRagged: RopeRagged with the inverse rotation (RopeRagged.ts).
 * - RopeSplitStoreRagged and FlashAttentionRaggedPaged (cached path): gradient with respect to
 *   their differentiable inputs only (qkv and the qk-norm weights; q). K and V reach attention
 *   through the cache's pages, which are not tensors, so no gradient flows through the cache:
 *   train on the no-cache paths (`layer.apply`, `attentionRaggedTrain`). The paged gradient reads
 *   the cache again in the backward pass, so the step's pages must still be there.
 */
import * as tf from '@tensorflow/tfjs';
import { FlashAttentionRaggedPaged, type FlashAttentionRaggedPagedAttrs, RopeSplitStoreRagged, type RopeSplitStoreRaggedAttrs } from '../../../kernels/kernel_names.js';
import { rowPositions } from '../../../kernels/reference/positions.js';
import { attentionBlockBackward, fromQueryBlocks, headRmsNormBackward, maskTensor, queryBlocks } from './composite_grads.js';
import { FlashAttentionRagged, type FlashAttentionRaggedAttrs, FlashAttentionRaggedGrad } from './names.js';
import { ropeRagged, ropeRaggedGrad } from './RopeRagged.js';

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
    const [dq, dk, dv] = flashAttentionRaggedCompositeGrad(q, k, v, dy, a);
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

/** dq, dk, dv of FlashAttentionRagged from the composite formulas (backends without the fused backward). */
function flashAttentionRaggedCompositeGrad(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, dy: tf.Tensor2D, a: FlashAttentionRaggedAttrs): tf.Tensor2D[] {
  const { nHeads, nKvHeads, headDim: hd, rowOffsets: r } = a;
  const g = nHeads / nKvHeads, kvW = nKvHeads * hd;
  const dqs: tf.Tensor2D[] = [], dks: tf.Tensor2D[] = [], dvs: tf.Tensor2D[] = [];
  for (let b = 0; b + 1 < r.length; b++) {
    const r0 = r[b], n = r[b + 1] - r0;
    if (n === 0) continue;
    const mask = maskTensor(a.mask, 0, n, g, n);
    const qs = queryBlocks(q.slice([r0, 0], [n, nHeads * hd]), nKvHeads, g, hd);
    const dys = queryBlocks(dy.slice([r0, 0], [n, nHeads * hd]), nKvHeads, g, hd);
    const kb = k.slice([r0, 0], [n, kvW]), vb = v.slice([r0, 0], [n, kvW]);
    const res = qs.map((qh, h) => attentionBlockBackward({
      q: qh, dy: dys[h], mask, scale: a.scale, k: kb.slice([0, h * hd], [n, hd]), v: vb.slice([0, h * hd], [n, hd]),
    }, true));
    dqs.push(fromQueryBlocks(res.map((x) => x.dq), n, g, hd));
    dks.push(tf.concat(res.map((x) => x.dk!), 1) as tf.Tensor2D);
    dvs.push(tf.concat(res.map((x) => x.dv!), 1) as tf.Tensor2D);
  }
  if (dqs.length === 0) return [tf.zerosLike(q), tf.zerosLike(k), tf.zerosLike(v)];
  const cat = (xs: tf.Tensor2D[]) => (xs.length === 1 ? xs[0] : tf.concat(xs, 0));
  return [cat(dqs), cat(dks), cat(dvs)];
}

let registered = false;

/** Registers the gradients (idempotent). */
export function registerTrainingGradients(): void {
  if (registered) return;
  registered = true;
  for (const g of [flashAttentionRaggedGrad, ropeRaggedGrad, ropeSplitStoreRaggedGrad, flashAttentionRaggedPagedGrad]) {
    if (tf.getGradient(g.kernelName) === undefined) tf.registerGradient(g);
  }
}
