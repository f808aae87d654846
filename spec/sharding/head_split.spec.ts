/**
 * The head split and the weight strategies, and sharded ≡ unsharded in one thread: each shard
 * layer runs with its own cache and the partial outputs are summed here (no workers), on every
 * golden attention fixture for 1 to 4 devices where the heads allow.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { parseDevices } from '../../lib/sharding/devices';
import { describeSplit, headCounts, splitHeads } from '../../lib/sharding/head_split';
import { shardInfoOf } from '../../lib/sharding/shard_layer';
import { ShardingStrategy } from '../../lib/sharding/strategy';
import { type FixtureStep, fixtureWeights, layerArgsFromFixture } from '../../bin/conformance/attention_fixture';
import { loadAttentionFixture } from '../../bin/conformance/attention_fixture_files';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'attention');

expect.extend({
  toBeWithin1e5(got: number) {
    return { pass: got <= 1e-5, message: () => `expected relative error ${got} <= 1e-5` };
  },
});
declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace jest { interface Expect { toBeWithin1e5(): unknown } }
}
const cpus = (n: number) => parseDevices(Array(n).fill('cpu'));

describe('splitHeads', () => {
  it('gives the remainder to the first devices: 30 heads on 4 devices -> 8, 8, 7, 7', () => {
    expect(headCounts(30, 4)).toEqual([8, 8, 7, 7]);
    const s = splitHeads(30, 30, 4);
    expect(s.map((d) => [d.qStart, d.qEnd])).toEqual([[0, 8], [8, 16], [16, 23], [23, 30]]);
    expect(s.map((d) => [d.kvStart, d.kvEnd])).toEqual([[0, 8], [8, 16], [16, 23], [23, 30]]);
    expect(s.every((d) => d.real.every(Boolean))).toBe(true);
  });

  it('splits KV heads evenly where they divide', () => {
    const s = splitHeads(16, 4, 2);
    expect(s.map((d) => [d.kvStart, d.kvEnd, d.group])).toEqual([[0, 2, 4], [2, 4, 4]]);
    expect(s[1].localHeads).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('replicates 1 KV head on 2 devices', () => {
    const s = splitHeads(4, 1, 2);
    expect(s.map((d) => [d.kvStart, d.kvEnd])).toEqual([[0, 1], [0, 1]]);
    expect(s.map((d) => d.localHeads)).toEqual([[0, 1], [2, 3]]);
  });

  it('puts a straddling KV head on both devices: 3 KV heads on 2 (6 heads), padding the short runs', () => {
    const s = splitHeads(6, 3, 2);
    expect(s.map((d) => [d.qStart, d.qEnd, d.kvStart, d.kvEnd])).toEqual([[0, 3, 0, 2], [3, 6, 1, 3]]);
    // device 0: KV 0 serves heads 0, 1; KV 1 serves head 2 (+1 padding copy of head 2)
    expect(s[0].localHeads).toEqual([0, 1, 2, 2]);
    expect(s[0].real).toEqual([true, true, true, false]);
    expect(s[1].localHeads).toEqual([3, 3, 4, 5]);
    expect(s[1].real).toEqual([true, false, true, true]);
    expect(describeSplit(s)).toContain('device 1: q heads [3, 6) kv heads [1, 3) (4 local, 1 padding)');
  });

  it('refuses only what no split can serve', () => {
    expect(() => splitHeads(2, 1, 3)).toThrow('[splitHeads] numDevices (3) must be <= numHeads (2): every device needs a query head');
    expect(() => splitHeads(6, 4, 2)).toThrow('[splitHeads] numHeads (6) must be a multiple of numKvHeads (4)');
    for (const [h, kv] of [[30, 6], [30, 5], [8, 2], [7, 7], [12, 3]]) {
      for (let d = 1; d <= Math.min(h, 5); d++) {
        const s = splitHeads(h, kv, d);
        const g = h / kv;
        const covered = s.flatMap((x) => x.localHeads.filter((_, j) => x.real[j]));
        expect(covered).toEqual(Array.from({ length: h }, (_, i) => i)); // every head exactly once
        for (const x of s) { // local head j uses local KV head floor(j / group): the right global KV head
          x.localHeads.forEach((hh, j) => expect(x.kvStart + Math.floor(j / x.group)).toBe(Math.floor(hh / g)));
          expect(x.localHeads.length).toBe(x.group * (x.kvEnd - x.kvStart));
        }
      }
    }
  });
});

describe('ShardingStrategy weight strategies', () => {
  const h = { numHeads: 6, numKvHeads: 3, headDim: 2 };
  const w = (rows: number, cols: number) => ({ data: Float32Array.from({ length: rows * cols }, (_, i) => i), shape: [rows, cols] });

  it('rowwise / columnwise split evenly, remainder first', () => {
    expect(ShardingStrategy.rowwise(2).shard(w(3, 2), 0)).toEqual({ data: Float32Array.from([0, 1, 2, 3]), shape: [2, 2] });
    expect(ShardingStrategy.columnwise(2).shard(w(2, 3), 1)).toEqual({ data: Float32Array.from([2, 5]), shape: [2, 1] });
  });

  it('q / kv rowwise by head, stacked qkv by thirds, GQA-aware', () => {
    const q = ShardingStrategy.qHeadRowwise(2, h).shard(w(12, 1), 0)!;
    expect(Array.from(q.data)).toEqual([0, 1, 2, 3, 4, 5, 4, 5]); // heads 0, 1, 2, padding copy of 2
    const kv = ShardingStrategy.kvHeadRowwise(2, h).shard(w(6, 1), 1)!;
    expect(Array.from(kv.data)).toEqual([2, 3, 4, 5]); // KV heads 1, 2
    const qkv = ShardingStrategy.stackedQkv(2, h).shard(w(24, 1), 1)!;
    expect(Array.from(qkv.data)).toEqual([6, 7, 6, 7, 8, 9, 10, 11, 14, 15, 16, 17, 20, 21, 22, 23]);
  });

  it('o_proj head-aware columnwise: padding columns zero, bias on device 0 only', () => {
    const o = ShardingStrategy.headAwareColumnwise(2, h).shard(w(1, 12), 1)!;
    expect(Array.from(o.data)).toEqual([6, 7, 0, 0, 8, 9, 10, 11]);
    const bias = { data: Float32Array.from([1, 2]), shape: [2] };
    expect(ShardingStrategy.headAwareColumnwise(2, h).shard(bias, 0)!.data).toEqual(bias.data);
    expect(ShardingStrategy.headAwareColumnwise(2, h).shard(bias, 1)).toBeNull();
  });

  it('tensorParallel implies the per-weight strategies; JSON round trip', () => {
    const ws = ShardingStrategy.tensorParallel(2).weightStrategies(h);
    expect([ws.q.kind, ws.kv.kind, ws.qkv.kind, ws.o.kind, ws.norm.kind])
      .toEqual(['q_head_rowwise', 'kv_head_rowwise', 'stacked_qkv', 'head_aware_columnwise', 'replicate']);
    expect(ShardingStrategy.fromJSON(ws.o.toJSON()).toJSON()).toEqual(ws.o.toJSON());
    expect(() => ShardingStrategy.tensorParallel(2).shard(w(2, 2), 0)).toThrow("'tensor_parallel' is a layer strategy");
    expect(() => ws.q.shard(w(10, 1), 0)).toThrow('weight dim 0 (10) must be 12');
  });
});

function sumShards(dir: string, n: number, stackedQkv: boolean): number {
  const f = loadAttentionFixture(dir);
  const args = { ...layerArgsFromFixture(f.config, 16), stackedQkv: stackedQkv && f.config.clip_qkv == null };
  const layer = new AttentionWithRope(args);
  layer.setHfWeights(fixtureWeights(f));
  const shards = layer.shard(cpus(n));
  const caches = shards.map((s) => new PagedKVCache(s.kvParams));
  let worst = 0;
  for (const s of f.config.steps as FixtureStep[]) {
    const ids = s.start_positions.map((_, b) => b);
    const counts = ids.map((b) => s.input_row_offsets[b + 1] - s.input_row_offsets[b]);
    for (const c of caches) for (const b of ids) if (!c.hasSequence(b)) c.addSequence(b);
    const x = f.tensors.get(s.input)!;
    const hidden = tf.tensor2d(x.data as Float32Array, x.shape as [number, number]);
    const kvs = caches.map((c) => c.fetch(ids, counts));
    if (s.materialize) shards.forEach((l, i) => l.materializeKvFromHidden(0, hidden, kvs[i]));
    else {
      const y = tf.tidy(() => tf.addN(shards.map((l, i) => l.callRagged(0, hidden, kvs[i]))));
      const got = y.dataSync(), want = f.tensors.get(s.expected!)!.data as Float32Array;
      let d = 0, m = 0;
      want.forEach((v, j) => { d = Math.max(d, Math.abs(got[j] - v)); m = Math.max(m, Math.abs(v)); });
      worst = Math.max(worst, d / m);
      y.dispose();
    }
    caches.forEach((c, i) => c.step(kvs[i]));
    hidden.dispose();
  }
  layer.dispose();
  shards.forEach((l) => l.dispose());
  return worst;
}

describe('layer.shard(devices): the shards sum to the layer (one thread)', () => {
  const dirs = fs.readdirSync(FIXTURES).filter((d) => fs.existsSync(path.join(FIXTURES, d, 'config.json'))).sort();
  for (const d of dirs) {
    it(`${d}: 1..4 devices, separate and stacked qkv`, () => {
      const heads = JSON.parse(fs.readFileSync(path.join(FIXTURES, d, 'config.json'), 'utf8')).num_attention_heads as number;
      // large_gqa (8 heads / 2 KV, hidden 512) is slow on the composite path: 2 (even) and 3 (straddling) devices
      const ns = d === 'large_gqa' ? [2, 3] : Array.from({ length: Math.min(4, heads) }, (_, i) => i + 1);
      for (const n of ns) {
        expect({ n, err: sumShards(path.join(FIXTURES, d), n, false) }).toEqual({ n, err: expect.toBeWithin1e5() });
        if (n === ns[ns.length - 1]) expect({ n, stacked: sumShards(path.join(FIXTURES, d), n, true) }).toEqual({ n, stacked: expect.toBeWithin1e5() });
      }
    });
  }

  it('each shard holds exactly its KV heads: cache params, o_proj bias on device 0 only', () => {
    const f = loadAttentionFixture(path.join(FIXTURES, 'llama_bias_mha')); // 3 heads, 3 KV heads, o_proj bias
    const layer = new AttentionWithRope(layerArgsFromFixture(f.config, 16));
    layer.setHfWeights(fixtureWeights(f));
    const shards = layer.shard(cpus(2));
    expect(shards.map((s) => [s.opts.numAttentionHeads, s.kvParams.nKvHeads, s.oProj!.bias !== null])).toEqual([[2, 2, true], [1, 1, false]]);
    expect(shardInfoOf(shards[1])!.heads).toMatchObject({ qStart: 2, qEnd: 3, kvStart: 2, kvEnd: 3 });
    expect(() => layer.shard([{ backend: 'tpu', index: 0 }])).toThrow("[AttentionWithRope.shard] devices[0].backend ('tpu') must be one of cpu, wasm, webgpu");
    expect(() => layer.shard(cpus(4))).toThrow('[splitHeads] numDevices (4) must be <= numHeads (3)');
    [layer, ...shards].forEach((l) => l.dispose());
  });
});
