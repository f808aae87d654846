/**
 * `AttentionWithRope.shard(devices)`: one layer per device holding its slice of the weights
 * (see strategy.ts for the weight strategies and head_split.ts for the head split) and its own
 * KV cache params (`nKvHeads` of that shard).
 */
import * as tf from '@tensorflow/tfjs';
import type { AttentionWithRope } from '../attention/attention_with_rope.js';
import type { AttentionWithRopeArgs } from '../attention/options.js';
import { attentionHfTensors } from '../attention/hf_export.js';
import type { HfWeights } from '../attention/weights.js';
import { check } from '../errors.js';
import type { DevicePlacement } from '../types.js';
import { checkDevices } from './devices.js';
import type { ShardHeads } from './head_split.js';
import { type HostTensor, ShardingStrategy } from './strategy.js';

const W = 'AttentionWithRope.shard';

/** What a shard layer is a shard of. */
export interface ShardInfo {
  index: number;
  numDevices: number;
  device: DevicePlacement;
  /** `tensor_parallel`: partial outputs sum to the layer's output; `replicate`: each is the whole output. */
  mode: 'tensor_parallel' | 'replicate';
  /** The head split of this device (tensor_parallel only). */
  heads: ShardHeads | null;
  /** Query / KV heads of the unsharded layer. */
  numHeads: number;
  numKvHeads: number;
}

const infos = new WeakMap<AttentionWithRope, ShardInfo>();

/** The shard description of a layer made by `shard()`, or null. */
export function shardInfoOf(layer: AttentionWithRope): ShardInfo | null { return infos.get(layer) ?? null; }

/** The layer's weights in Hugging Face layout (`[out, in]`), own copies: the one exporter, attentionHfTensors. */
export function hfWeightsOf(layer: AttentionWithRope): Record<string, HostTensor> {
  return Object.fromEntries(attentionHfTensors(layer));
}

/**
 * Splits `layer` over `devices`. Tensor-parallel unless the layer's strategy is `replicate` over
 * more than one device (then each shard is a full copy). Shard `i` computes query heads
 * `heads.qStart..qEnd` (remainder to the first devices), holds KV heads `kvStart..kvEnd`, and its
 * output is a partial sum: the shards' outputs add up to the layer's.
 *
 * @example
 * const [a, b] = layer.shard([{ backend: 'cpu', index: 0 }, { backend: 'cpu', index: 1 }]);
 * // a.callRagged(...) + b.callRagged(...) == layer.callRagged(...), each with its own cache
 */
export function shardLayer(layer: AttentionWithRope, devices: DevicePlacement[]): AttentionWithRope[] {
  checkDevices(devices, W);
  if (!layer.built) layer.build([null, layer.opts.hiddenSize]);
  const o = layer.opts, n = devices.length;
  const s = o.shardingStrategy;
  check(s.kind === 'replicate' || s.kind === 'tensor_parallel', W, () =>
    `the layer's shardingStrategy must be 'replicate' or 'tensor_parallel', got the weight strategy '${s.kind}'`);
  const replicate = s.kind === 'replicate' && s.numDevices > 1;
  check(replicate || s.kind === 'replicate' || s.numDevices === n, W, () =>
    `devices.length (${n}) must equal shardingStrategy.numDevices (${s.numDevices})`);
  check(replicate ? s.numDevices === n : true, W, () => `devices.length (${n}) must equal shardingStrategy.numDevices (${s.numDevices})`);
  const headsLayout = { numHeads: o.numAttentionHeads, numKvHeads: o.numKeyValueHeads, headDim: o.headDim };
  const ws = (replicate ? ShardingStrategy.replicate(n) : ShardingStrategy.tensorParallel(n)).weightStrategies(headsLayout);
  const split = replicate ? null : ws.q.split;
  const full = hfWeightsOf(layer);
  const Ctor = layer.constructor as new (a: AttentionWithRopeArgs) => AttentionWithRope;
  return devices.map((device, i) => {
    const h = split ? split[i] : null;
    const nH = h ? h.localHeads.length : o.numAttentionHeads;
    const nKv = h ? h.kvEnd - h.kvStart : o.numKeyValueHeads;
    const weights: HfWeights = {};
    for (const [name, w] of Object.entries(full)) {
      const part = name.startsWith('q_proj.') ? ws.q : name.startsWith('k_proj.') || name.startsWith('v_proj.') ? ws.kv
        : name.startsWith('qkv_proj.') ? ws.qkv : name.startsWith('o_proj.') ? ws.o : ws.norm;
      const t = part.shard(w, i);
      if (t) weights[name] = t.data;
    }
    const { headDim: _hd, shardingStrategy: _s, devices: _d, ...rest } = o;
    const shard = new Ctor({
      ...rest,
      numAttentionHeads: nH, numKeyValueHeads: nKv, kvParams: { ...o.kvParams, nKvHeads: nKv },
      hasOutputBias: o.hasOutputBias && weights['o_proj.bias'] !== undefined,
      devices: [device], shardingStrategy: ShardingStrategy.replicate(1),
      name: `${layer.name}_shard${i}`, trainable: layer.trainable,
    });
    shard.setHfWeights(weights);
    infos.set(shard, {
      index: i, numDevices: n, device: { ...device }, mode: replicate ? 'replicate' : 'tensor_parallel', heads: h,
      numHeads: o.numAttentionHeads, numKvHeads: o.numKeyValueHeads,
    });
    return shard;
  });
}
