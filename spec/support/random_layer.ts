import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import type { AttentionWithRopeArgs } from '../../lib/attention/options';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';

/** Deterministic pseudo-random floats in [-scale, scale). */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

export interface SmallSetup {
  layer: AttentionWithRope;
  cache: PagedKVCache;
  hidden: number;
}

/** A small layer with random weights (seeded) and a cache to go with it. */
export function smallLayer(over: Partial<AttentionWithRopeArgs> = {}, cacheOver: { pageSize?: number; numPages?: number } = {}): SmallSetup {
  const nHeads = over.numAttentionHeads ?? 4, nKv = over.numKeyValueHeads ?? 2, headDim = 16, hidden = over.hiddenSize ?? 32;
  const args: AttentionWithRopeArgs = {
    rope: { headDim, theta: 10000, maxSeqLen: 512 },
    numAttentionHeads: nHeads, numKeyValueHeads: nKv, hiddenSize: hidden,
    kvParams: { nKvHeads: nKv, headDim, pageSize: cacheOver.pageSize ?? 4, numLayers: 2, numPages: cacheOver.numPages ?? 256 },
    ...over,
  };
  const layer = new AttentionWithRope(args);
  const q = nHeads * headDim, kv = nKv * headDim;
  const w: Record<string, Float32Array> = {
    'q_proj.weight': randomArray(q * hidden, 1, 0.3), 'k_proj.weight': randomArray(kv * hidden, 2, 0.3),
    'v_proj.weight': randomArray(kv * hidden, 3, 0.3), 'o_proj.weight': randomArray(hidden * q, 4, 0.3),
  };
  if (args.hasBias) { w['q_proj.bias'] = randomArray(q, 5, 0.1); w['k_proj.bias'] = randomArray(kv, 6, 0.1); w['v_proj.bias'] = randomArray(kv, 7, 0.1); }
  if (args.hasOutputBias) w['o_proj.bias'] = randomArray(hidden, 8, 0.1);
  if (args.useQkNorm) { w['q_norm.weight'] = randomArray(headDim, 9, 1).map((x) => 1 + x / 2); w['k_norm.weight'] = randomArray(headDim, 10, 1).map((x) => 1 + x / 2); }
  layer.setHfWeights(w);
  return { layer, cache: new PagedKVCache(args.kvParams), hidden };
}

/** Rows `[n, hidden]` of seeded random input. */
export function rows(n: number, hidden: number, seed: number): tf.Tensor2D {
  return tf.tensor2d(randomArray(n * hidden, seed), [n, hidden]);
}

export function maxRelDiff(a: Float32Array | number[], b: Float32Array | number[]): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return d / (m || 1);
}
