/** Checks of a ragged call's arguments, all before anything is computed or stored. */
import * as tf from '@tensorflow/tfjs';
import { check } from '../errors.js';
import type { PagedKVCollection } from '../kv_cache/collection.js';
import type { RopeTables } from '../rope/rope_tables.js';
import type { AttentionWithRope } from './attention_with_rope.js';

const W = 'AttentionWithRope';

function rowOffsetsValues(r: tf.Tensor1D | Int32Array | number[]): ArrayLike<number> {
  if (r instanceof tf.Tensor) {
    check(r.dtype === 'int32', W, () => `inputRowOffsets must be int32, got ${r.dtype}`);
    check(r.rank === 1, W, () => `inputRowOffsets must be rank 1, got shape [${r.shape}]`);
    return r.dataSync() as Int32Array;
  }
  check(r instanceof Int32Array || Array.isArray(r), W, () => `inputRowOffsets must be an int32 tensor, Int32Array or number[], got ${typeof r}`);
  for (let i = 0; i < r.length; i++) {
    check(Number.isInteger(r[i]), W, () => `inputRowOffsets must be int32, got ${r[i]} at index ${i}`);
  }
  return r;
}

export function validateRaggedCall(layer: AttentionWithRope, layerIdx: number, hidden: tf.Tensor2D, kv: PagedKVCollection,
  tables: RopeTables, rowOffsets: tf.Tensor1D | Int32Array | number[] | undefined): void {
  const o = layer.opts;
  check(hidden instanceof tf.Tensor && hidden.rank === 2, W, () =>
    `hidden must be a [totalTokens, hiddenSize] tensor, got ${hidden instanceof tf.Tensor ? `shape [${hidden.shape}]` : typeof hidden}`);
  check(hidden.dtype === 'float32', W, () => `hidden must be float32, got ${hidden.dtype}`);
  check(hidden.shape[1] === o.hiddenSize, W, () => `hidden size (${hidden.shape[1]}) must equal hiddenSize (${o.hiddenSize})`);
  check(kv && kv.cache && kv.rowOffsets instanceof Int32Array, W, () => 'kv must be a PagedKVCollection from PagedKVCache.fetch');
  const p = kv.cache.params;
  check(Number.isInteger(layerIdx) && layerIdx >= 0 && layerIdx < p.numLayers, W, () =>
    `layerIdx (${layerIdx}) must be an integer in [0, ${p.numLayers}) (the cache's numLayers)`);
  check(p.nKvHeads === o.numKeyValueHeads && p.headDim === o.headDim, W, () =>
    `cache holds ${p.nKvHeads} KV heads of dim ${p.headDim}, the layer needs ${o.numKeyValueHeads} of dim ${o.headDim}`);
  kv.cache.validateCollection(kv, W);
  const total = kv.totalTokens;
  if (rowOffsets !== undefined) {
    const r = rowOffsetsValues(rowOffsets);
    const batch = kv.seqIds.length;
    check(r.length === batch + 1, W, () => `inputRowOffsets has length ${r.length}, must be batch + 1 (${batch + 1})`);
    check(r[0] === 0, W, () => `inputRowOffsets must start at 0, got ${r[0]}`);
    for (let i = 1; i < r.length; i++) {
      check(r[i] >= r[i - 1], W, () => `inputRowOffsets must not decrease, got ${r[i - 1]} then ${r[i]} at index ${i}`);
    }
    check(r[batch] === hidden.shape[0], W, () =>
      `inputRowOffsets must end at totalTokens (${hidden.shape[0]} rows of hidden), got ${r[batch]}`);
    for (let i = 0; i <= batch; i++) {
      check(r[i] === kv.rowOffsets[i], W, () =>
        `inputRowOffsets [${Array.from(r)}] disagree with the kv collection's [${Array.from(kv.rowOffsets)}] at index ${i}`);
    }
  }
  check(hidden.shape[0] === total, W, () => `hidden has ${hidden.shape[0]} rows, the kv collection brings ${total} new tokens`);
  check(kv.maxContext <= tables.maxPositions, W, () =>
    `positions up to ${kv.maxContext - 1} exceed the rope table's ${tables.maxPositions} positions (maxSeqLen)`);
  check(tables.headDim === o.headDim && tables.rotaryDim <= o.headDim, W, () =>
    `freqsCis covers rotary dim ${tables.rotaryDim} of head dim ${tables.headDim}, the layer's head dim is ${o.headDim}`);
}
