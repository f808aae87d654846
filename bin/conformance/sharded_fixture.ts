/**
 * `conformance --devices cpu,cpu`: runs one golden attention fixture through the tensor-parallel
 * layer (ShardedAttention, one worker thread per device) and measures the error against the
 * fixture's expected outputs, and against the unsharded layer run here on the main thread.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope.js';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache.js';
import { parseDevices } from '../../lib/sharding/devices.js';
import { ShardedAttention } from '../../lib/sharding/sharded_attention.js';
import {
  type AttentionFixture, type FixtureResult, type FixtureStep, TOLERANCE, fixtureWeights, layerArgsFromFixture,
} from './attention_fixture.js';
import { loadAttentionFixture } from './attention_fixture_files.js';

export interface ShardedRunOptions {
  pageSize?: number;
  /** Composite path only, in the workers and for the unsharded reference. */
  unfused?: boolean;
  /** Worker threads (default) or one process per device. */
  transport?: 'thread' | 'process';
}

export interface ShardedFixtureResult extends FixtureResult {
  /** max |sharded - unsharded| / max |unsharded| over every output step. */
  vsUnsharded: number;
  /** The tfjs backend of each worker. */
  backends: string[];
}

function maxAbs(a: Float32Array): number { let m = 0; for (const x of a) m = Math.max(m, Math.abs(x)); return m; }
function relErr(got: Float32Array, want: Float32Array): number {
  let d = 0;
  for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i] - want[i]));
  return Number.isNaN(maxAbs(got)) ? Infinity : d / maxAbs(want);
}

/**
 * Runs fixture folder `dir` sharded over `devices` (`['cpu', 'wasm']`, or `cpu:1` style). Passes
 * when the error vs the golden outputs is <= TOLERANCE and vs the unsharded layer <= 1e-5.
 */
export async function runShardedFixture(dir: string | AttentionFixture, devices: string[], opts: ShardedRunOptions = {}): Promise<ShardedFixtureResult> {
  const f = typeof dir === 'string' ? loadAttentionFixture(dir) : dir;
  const steps = f.config.steps as FixtureStep[];
  const args = layerArgsFromFixture(f.config, opts.pageSize ?? 16);
  if (opts.unfused) args.fuseRopeAndStore = false;
  const layer = new AttentionWithRope(args);
  layer.setHfWeights(fixtureWeights(f));
  // A fixture with fewer query heads than devices runs on the first ones (every device needs a head).
  const heads = f.config.num_attention_heads as number;
  const used = devices.slice(0, Math.min(devices.length, heads));
  const tp = await ShardedAttention.create(layer, parseDevices(used), { unfused: opts.unfused, transport: opts.transport });
  const cache = new PagedKVCache(args.kvParams);
  const prevForce = tf.env().getBool('ATTENTION_ROPE_FORCE_COMPOSITE');
  if (opts.unfused) tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
  let worst = 0, worstRef = 0;
  const details: string[] = [];
  try {
    for (const [i, s] of steps.entries()) {
      const seqIds = s.seq_ids ?? s.start_positions.map((_, b) => b);
      for (const id of seqIds) if (!tp.hasSequence(id)) { tp.addSequence(id); cache.addSequence(id); }
      seqIds.forEach((id, b) => {
        if (tp.cacheLength(id) !== s.start_positions[b]) {
          throw new Error(`[conformance] ${f.name} step ${i}: sequence ${id} holds ${tp.cacheLength(id)} tokens, fixture says ${s.start_positions[b]}`);
        }
      });
      const counts = seqIds.map((_, b) => s.input_row_offsets[b + 1] - s.input_row_offsets[b]);
      const input = f.tensors.get(s.input)!;
      const hidden = tf.tensor2d(input.data as Float32Array, input.shape as [number, number]); // [T, hidden]
      const kv = cache.fetch(seqIds, counts);
      if (s.materialize) {
        await tp.materializeKvFromHidden(hidden, seqIds, counts);
        layer.materializeKvFromHidden(0, hidden, kv);
      } else {
        const out = await tp.callRagged(hidden, seqIds, counts); // [T, hidden]
        const ref = layer.callRagged(0, hidden, kv); // [T, hidden]
        const got = out.dataSync() as Float32Array;
        const err = relErr(got, f.tensors.get(s.expected!)!.data as Float32Array);
        const errRef = relErr(got, ref.dataSync() as Float32Array);
        details.push(`step${i}=${err.toExponential(1)}`);
        worst = Math.max(worst, err);
        worstRef = Math.max(worstRef, errRef);
        out.dispose(); ref.dispose();
      }
      cache.step(kv);
      hidden.dispose();
    }
  } finally {
    tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', prevForce);
    layer.dispose();
    await tp.dispose();
  }
  details.push(`vs unsharded ${worstRef.toExponential(1)} on ${tp.backends.join('+')}`);
  if (used.length < devices.length) details.push(`(${heads} heads: first ${used.length} of ${devices.length} devices)`);
  return {
    name: f.name, error: worst, passed: worst <= TOLERANCE && worstRef <= 1e-5,
    detail: details.join(' '), vsUnsharded: worstRef, backends: tp.backends,
  };
}
