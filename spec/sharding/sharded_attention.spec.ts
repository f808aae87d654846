/**
 * ShardedAttention: shards in worker threads (own tfjs engine and backend each), sharded ≡
 * unsharded (<= 1e-5) on every golden attention fixture for 1..4 devices where heads allow, cpu+cpu
 * and cpu+wasm mixes (cpu+webgpu when a WebGPU adapter is available); a device that throws or
 * dies fails the call with its error and leaves no cache shard moved.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { parseDevices } from '../../lib/sharding/devices';
import { ShardedAttention } from '../../lib/sharding/sharded_attention';
import { fixtureWeights, layerArgsFromFixture } from '../../bin/conformance/attention_fixture';
import { loadAttentionFixture } from '../../bin/conformance/attention_fixture_files';
import { runShardedFixture } from '../../bin/conformance/sharded_fixture';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'attention');
const DIRS = fs.readdirSync(FIXTURES).filter((d) => fs.existsSync(path.join(FIXTURES, d, 'config.json'))).sort();
const headsOf = (d: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, d, 'config.json'), 'utf8')).num_attention_heads as number;

/** A WebGPU adapter here? (null: yes; else the reason to skip) */
async function webgpuSkipReason(): Promise<string | null> {
  try {
    const m = await import('../../lib/backends/webgpu_node');
    return (await m.initWebGpuNode()) ? null : `no WebGPU adapter: ${m.webGpuNodeStatus().reason}`;
  } catch (e) {
    return `WebGPU for Node did not load: ${(e as Error).message.split('\n')[0]}`;
  }
}

const MIXES: [string, string[], (heads: number) => boolean][] = [
  ['cpu', ['cpu'], () => true],
  ['cpu+cpu', ['cpu', 'cpu'], (h) => h >= 2],
  ['cpu+wasm', ['cpu', 'wasm'], (h) => h >= 2],
  ['cpu x3', ['cpu', 'cpu', 'cpu'], (h) => h >= 3],
  ['cpu+wasm+cpu+wasm', ['cpu', 'wasm', 'cpu', 'wasm'], (h) => h >= 4],
];

describe('ShardedAttention on every attention fixture', () => {
  for (const d of DIRS) {
    it(`${d}`, async () => {
      const ran: string[] = [];
      for (const [name, devices, fits] of MIXES) {
        if (!fits(headsOf(d))) continue;
        const r = await runShardedFixture(path.join(FIXTURES, d), devices);
        expect({ mix: name, vsUnsharded: r.vsUnsharded <= 1e-5, golden: r.error <= 1e-4, detail: r.detail })
          .toEqual({ mix: name, vsUnsharded: true, golden: true, detail: r.detail });
        expect(r.backends).toEqual(devices);
        ran.push(name);
      }
      expect(ran.length).toBeGreaterThanOrEqual(2);
    });
  }

  it('cpu+webgpu where a WebGPU adapter is available', async () => {
    const skip = await webgpuSkipReason();
    if (skip) { console.log(`skip cpu+webgpu: ${skip}`); return; }
    for (const d of ['llama_gqa', 'qwen3_qknorm_mqa']) {
      const r = await runShardedFixture(path.join(FIXTURES, d), ['cpu', 'webgpu']);
      console.log(`cpu+webgpu ${d}: ${r.detail}`);
      expect({ d, ok: r.vsUnsharded <= 1e-5 && r.error <= 1e-4, detail: r.detail }).toEqual({ d, ok: true, detail: r.detail });
    }
  });
});

describe('ShardedAttention with one process per device', () => {
  it('matches the unsharded layer (cpu + wasm processes)', async () => {
    for (const d of ['llama_gqa', 'materialize_kv_from_hidden']) {
      const r = await runShardedFixture(path.join(FIXTURES, d), ['cpu', 'wasm'], { transport: 'process' });
      expect({ d, ok: r.vsUnsharded <= 1e-5 && r.error <= 1e-4, detail: r.detail }).toEqual({ d, ok: true, detail: r.detail });
    }
  });
});

describe('ShardedAttention failures', () => {
  const f = loadAttentionFixture(path.join(FIXTURES, 'llama_gqa')); // 4 heads, 2 KV heads, hidden 64
  const H = f.config.hidden_size as number;
  const rows = (t: number, seed: number) => tf.tidy(() => tf.randomNormal([t, H], 0, 1, 'float32', seed)) as tf.Tensor2D;
  let layer: AttentionWithRope;
  let ref: PagedKVCache;

  beforeEach(() => {
    const args = layerArgsFromFixture(f.config, 16);
    layer = new AttentionWithRope(args);
    layer.setHfWeights(fixtureWeights(f));
    ref = new PagedKVCache(args.kvParams);
  });
  afterEach(() => layer.dispose());

  /** The unsharded layer's output for the same step. */
  function unsharded(x: tf.Tensor2D, ids: number[], counts: number[]): Float32Array {
    const kv = ref.fetch(ids, counts);
    const y = layer.callRagged(0, x, kv);
    ref.step(kv);
    const out = y.dataSync() as Float32Array;
    y.dispose();
    return out;
  }
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

  it('a device that throws fails the call with its error; no cache shard moved; the retry is exact', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'));
    try {
      tp.addSequence(0); ref.addSequence(0);
      const x0 = rows(5, 1), x1 = rows(1, 2);
      const y0 = await tp.callRagged(x0, [0], [5]);
      expect(maxDiff(y0.dataSync() as Float32Array, unsharded(x0, [0], [5]))).toBeLessThanOrEqual(1e-5);
      const before = await tp.inspect();
      tp.injectFault(1, 'throw');
      await expect(tp.callRagged(x1, [0], [1])).rejects.toThrow('[ShardedAttention] device 1 (cpu:1) failed: injected fault');
      expect(tp.cacheLength(0)).toBe(5);
      const after = await tp.inspect();
      expect(after.map((s) => [s.device, [...s.lengths]])).toEqual([['cpu:0', [[0, 5]]], ['cpu:1', [[0, 5]]]]);
      expect(after.map((s) => s.numFreePages)).toEqual(before.map((s) => s.numFreePages));
      const y1 = await tp.callRagged(x1, [0], [1]); // the same step again, no fault
      expect(maxDiff(y1.dataSync() as Float32Array, unsharded(x1, [0], [1]))).toBeLessThanOrEqual(1e-5);
      expect((await tp.inspect()).map((s) => s.lengths.get(0))).toEqual([6, 6]);
      tf.dispose([x0, x1, y0, y1]);
    } finally { await tp.dispose(); }
  });

  it('a device that dies fails the call with its error; the survivors did not commit; later calls refuse', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,wasm'));
    try {
      tp.addSequence(0);
      const x = rows(3, 3);
      (await tp.callRagged(x, [0], [3])).dispose();
      tp.injectFault(1, 'exit');
      await expect(tp.callRagged(x, [0], [3])).rejects.toThrow('[ShardedAttention] device 1 (wasm:0) exited with code 7');
      expect(tp.cacheLength(0)).toBe(3);
      expect(() => tp.addSequence(1)).toThrow('[ShardedAttention] device 1 (wasm:0) is gone');
      await expect(tp.callRagged(x, [0], [3])).rejects.toThrow('is gone');
      x.dispose();
    } finally { await tp.dispose(); }
  });

  it('a device process that dies fails the call; the others did not commit', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'), { transport: 'process' });
    try {
      tp.addSequence(0); ref.addSequence(0);
      const x = rows(3, 7);
      const y = await tp.callRagged(x, [0], [3]);
      expect(maxDiff(y.dataSync() as Float32Array, unsharded(x, [0], [3]))).toBeLessThanOrEqual(1e-5);
      tp.injectFault(0, 'exit');
      await expect(tp.callRagged(x, [0], [3])).rejects.toThrow('[ShardedAttention] device 0 (cpu:0) exited with code 7');
      expect(tp.cacheLength(0)).toBe(3);
      tf.dispose([x, y]);
    } finally { await tp.dispose(); }
  });

  it('bad input is refused before any worker moves', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'));
    try {
      tp.addSequence(0);
      const x = rows(4, 4);
      await expect(tp.callRagged(x, [7], [4])).rejects.toThrow('[PagedKVCache] seqIds[0] (7) is not a known sequence');
      await expect(tp.callRagged(x, [0], [3])).rejects.toThrow('[ShardedAttention] hidden has 256 values, expected totalTokens * hiddenSize (3 * 64)');
      expect((await tp.inspect()).map((s) => s.lengths.get(0))).toEqual([0, 0]);
      expect(() => tp.injectFault(2, 'throw')).toThrow('[ShardedAttention.injectFault] index (2) must be < numDevices (2)');
      const running = tp.callRagged(x, [0], [4]);
      expect(() => tp.releaseSequence(0)).toThrow('[ShardedAttention] releaseSequence while a call is running; await it first');
      (await running).dispose();
      x.dispose();
    } finally { await tp.dispose(); }
  });

  it('forked and ragged sequences stay mirrored on every shard', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu,cpu'));
    try {
      tp.addSequence(0); ref.addSequence(0);
      const x = rows(7, 5);
      (await tp.callRagged(x, [0], [7])).dispose(); unsharded(x, [0], [7]);
      expect(tp.forkSequence(0, 1)).toBe(1); ref.forkSequence(0, 1);
      const y = rows(3, 6);
      const got = await tp.callRagged(y, [0, 1], [1, 2]);
      expect(maxDiff(got.dataSync() as Float32Array, unsharded(y, [0, 1], [1, 2]))).toBeLessThanOrEqual(1e-5);
      tp.releaseSequence(0); ref.releaseSequence(0);
      expect((await tp.inspect()).map((s) => [...s.lengths])).toEqual([[[1, 9]], [[1, 9]], [[1, 9]]]);
      tf.dispose([x, y, got]);
    } finally { await tp.dispose(); }
  });
});
