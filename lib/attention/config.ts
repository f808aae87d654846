/** getConfig / fromConfig for AttentionWithRope: every option as plain JSON and back. */
import type * as tf from '@tensorflow/tfjs';
import { check } from '../errors.js';
import { ShardingStrategy } from '../sharding/strategy.js';
import type { DevicePlacement, MaskVariant } from '../types.js';
import { linearClassByName, linearClassName } from './linear.js';
import type { AttentionWithRopeArgs, ResolvedArgs } from './options.js';

export function layerConfig(o: ResolvedArgs): tf.serialization.ConfigDict {
  const linear = linearClassName(o.linearCls);
  check(linear !== undefined, 'AttentionWithRope.getConfig', () =>
    `linearCls ${o.linearCls.name} is not registered; call registerLinearClass(name, cls) to make it serializable`);
  const rope = o.rope.getConfig();
  return {
    rope: JSON.parse(JSON.stringify(rope)),
    numAttentionHeads: o.numAttentionHeads, numKeyValueHeads: o.numKeyValueHeads, hiddenSize: o.hiddenSize,
    kvParams: { ...o.kvParams } as unknown as tf.serialization.ConfigDict,
    shardingStrategy: o.shardingStrategy.toJSON(),
    devices: o.devices ? o.devices.map((d) => ({ ...d })) as unknown as tf.serialization.ConfigDictArray : null,
    linearCls: linear!, stackedQkv: o.stackedQkv, scale: o.scale, hasBias: o.hasBias, hasOutputBias: o.hasOutputBias,
    clipQkv: o.clipQkv, clipQkvTarget: o.clipQkvTarget, useQkNorm: o.useQkNorm, rmsNormEps: o.rmsNormEps,
    maskVariant: o.maskVariant, slidingWindow: o.slidingWindow, chunkSize: o.chunkSize, fuseRopeAndStore: o.fuseRopeAndStore,
    dtype: o.dtype, quantConfig: o.quantConfig ? JSON.parse(JSON.stringify(o.quantConfig)) : null,
  };
}

/** tfjs-layers' save/load snake_cases then camelCases string values: 'sliding_window' comes back 'slidingWindow'. */
function snake(v: unknown): string { return String(v).replace(/([A-Z])/g, (m) => `_${m.toLowerCase()}`); }

export function argsFromConfig(c: tf.serialization.ConfigDict): AttentionWithRopeArgs {
  const linear = linearClassByName(String(c.linearCls ?? 'Linear'));
  check(linear !== undefined, 'AttentionWithRope.fromConfig', () => `unknown linearCls '${c.linearCls}'; register it with registerLinearClass`);
  const s = c.shardingStrategy as { kind: 'replicate' | 'tensor_parallel'; numDevices: number } | undefined;
  return {
    ...(c as unknown as AttentionWithRopeArgs),
    rope: c.rope as unknown as AttentionWithRopeArgs['rope'],
    linearCls: linear,
    shardingStrategy: s ? ShardingStrategy.fromJSON({ kind: snake(s.kind) as 'replicate', numDevices: s.numDevices }) : undefined,
    devices: (c.devices as unknown as DevicePlacement[] | null) ?? undefined,
    maskVariant: (c.maskVariant === undefined ? undefined : snake(c.maskVariant)) as MaskVariant,
    clipQkv: (c.clipQkv as number | null) ?? null,
    quantConfig: c.quantConfig ? { ...(c.quantConfig as object), format: snake((c.quantConfig as { format: string }).format) } as AttentionWithRopeArgs['quantConfig'] : null,
    scale: (c.scale as number | null) ?? undefined,
    name: c.name as string | undefined,
    trainable: c.trainable as boolean | undefined,
  };
}
