/**
 * Composite reference of the RopeSplitStoreRagged kernel (kernels/kernel_names.ts): split the
 * packed qkv rows, qk RMSNorm, rotate q and k, store k and v into their pages, return q.
 * Every backend without the fused kernel runs this; `fuseRopeAndStore: false` runs its steps
 * as separate calls from the layer.
 */
import * as tf from '@tensorflow/tfjs';
import { check } from '../../core/errors.js';
import type { RopeSplitStoreRaggedAttrs } from '../kernel_names.js';
import { rowPositions } from './positions.js';
import { applyRope, headRmsNorm, ropeRows, splitQkv } from './rope.js';

/** Rotated, normed q and k `[T, H*hd]` and v `[T, nKv*hd]`, nothing stored. */
export function ropeSplitReference(
  qkv: tf.Tensor2D, attrs: Omit<RopeSplitStoreRaggedAttrs, 'layerIdx'>, qNormWeight?: tf.Tensor1D, kNormWeight?: tf.Tensor1D,
): { q: tf.Tensor2D; k: tf.Tensor2D; v: tf.Tensor2D } {
  return tf.tidy(() => {
    const { nHeads, nKvHeads, headDim, rope } = attrs;
    let [q, k, v] = splitQkv(qkv, nHeads, nKvHeads, headDim); // [T, nH*hd], [T, nKv*hd], [T, nKv*hd]
    if (attrs.qkNormEps >= 0) {
      q = headRmsNorm(q, qNormWeight!, headDim, attrs.qkNormEps);
      k = headRmsNorm(k, kNormWeight!, headDim, attrs.qkNormEps);
    }
    const { cos, sin } = ropeRows(rope, rowPositions(attrs.collection)); // [T, rot/2]
    return { q: applyRope(q, cos, sin, rope), k: applyRope(k, cos, sin, rope), v };
  });
}

/** Writes k and v `[T, nKv*hd]` into the collection's pages of layer `layerIdx`. */
export function storeKvReference(k: tf.Tensor2D, v: tf.Tensor2D, attrs: Pick<RopeSplitStoreRaggedAttrs, 'collection' | 'layerIdx'>): void {
  check(!(tf.getBackend() === 'webgpu' && typeof OffscreenCanvas === 'undefined'), 'AttentionWithRope', () =>
    'the composite K/V store (fuseRopeAndStore: false, or ATTENTION_ROPE_FORCE_COMPOSITE) reads K/V back synchronously, ' +
    "which backend 'webgpu' cannot do in Node; use the fused path there (fuseRopeAndStore: true)");
  attrs.collection.cache.writeTokens(attrs.layerIdx, attrs.collection, k.dataSync() as Float32Array, v.dataSync() as Float32Array);
}

export function ropeSplitStoreRaggedReference(
  qkv: tf.Tensor2D, attrs: RopeSplitStoreRaggedAttrs, qNormWeight?: tf.Tensor1D, kNormWeight?: tf.Tensor1D,
): tf.Tensor2D {
  const { q, k, v } = ropeSplitReference(qkv, attrs, qNormWeight, kNormWeight);
  storeKvReference(k, v, attrs);
  k.dispose();
  v.dispose();
  return q;
}
