/**
 * ShardedAttention with one process per device, data through a shared /dev/shm mapping
 * (lib/sharding/shm_region.ts, native/shm.cc) or, as the fallback, Node IPC: sharded ≡ unsharded on
 * the fixtures (cpu + wasm processes), a call that grows the mapping, a worker that throws while the
 * mapping grows (no cache shard moves, the retry is exact), no /dev/shm file left at any point after
 * a call returns or after dispose, and the IPC fallback: forced by option, by TFJS_ATTENTION_SHM=0, and
 * taken when the directory is not writable.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { parseDevices } from '../../lib/sharding/devices';
import { ShardedAttention } from '../../lib/sharding/sharded_attention';
import type { SpawnCommand } from '../../lib/sharding/shard_worker';
import { SHM_PREFIX, shmDir, sharedMemoryUnavailable } from '../../lib/sharding/shm_region';
import { fixtureWeights, layerArgsFromFixture } from '../../bin/conformance/attention_fixture';
import { loadAttentionFixture } from '../../bin/conformance/attention_fixture_files';
import { runShardedFixture } from '../../bin/conformance/sharded_fixture';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'attention');
const skip = sharedMemoryUnavailable();
const itShm = skip ? it.skip : it;
if (skip) console.log(`skip the shared-memory specs: ${skip}`);

/** This process's region files in /dev/shm. */
const shmFiles = () => fs.readdirSync(shmDir()).filter((f) => f.startsWith(`${SHM_PREFIX}${process.pid}.`));

describe('ShardedAttention process transport, shared memory vs IPC', () => {
  const f = loadAttentionFixture(path.join(FIXTURES, 'llama_gqa')); // 4 heads, 2 KV heads, hidden 64
  const H = f.config.hidden_size as number;
  const rows = (t: number, seed: number) => tf.tidy(() => tf.randomNormal([t, H], 0, 1, 'float32', seed)) as tf.Tensor2D;
  let layer: AttentionWithRope;
  let ref: PagedKVCache;

  beforeEach(() => {
    const args = layerArgsFromFixture(f.config, 16);
    args.kvParams = { ...args.kvParams, numPages: 64 };
    layer = new AttentionWithRope(args);
    layer.setHfWeights(fixtureWeights(f));
    ref = new PagedKVCache(args.kvParams);
  });
  afterEach(() => {
    layer.dispose();
    expect(shmFiles()).toEqual([]);
  });

  function unsharded(x: tf.Tensor2D, ids: number[], counts: number[]): Float32Array {
    const kv = ref.fetch(ids, counts);
    const y = layer.callRagged(0, x, kv);
    ref.step(kv);
    const out = y.dataSync() as Float32Array;
    y.dispose();
    return out;
  }
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

  itShm('matches the unsharded layer on the fixtures (cpu + wasm processes over shared memory)', async () => {
    for (const d of ['llama_gqa', 'qwen3_qknorm_mqa', 'materialize_kv_from_hidden']) {
      const r = await runShardedFixture(path.join(FIXTURES, d), ['cpu', 'wasm'], { transport: 'process' });
      expect({ d, ok: r.vsUnsharded <= 1e-5 && r.error <= 1e-4, detail: r.detail }).toEqual({ d, ok: true, detail: r.detail });
      expect(shmFiles()).toEqual([]);
    }
  });

  itShm('a call that grows the mapping; no /dev/shm file after a call or after dispose', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'), { transport: 'process' });
    try {
      expect(tp.dataPaths).toEqual(['shm', 'shm']);
      expect(tp.sharedRows).toBe(16);
      expect(shmFiles()).toEqual([]); // unlinked once every worker mapped it
      tp.addSequence(0); ref.addSequence(0);
      const x0 = rows(5, 1), x1 = rows(40, 2), x2 = rows(1, 3);
      for (const [x, n] of [[x0, 5], [x1, 40], [x2, 1]] as [tf.Tensor2D, number][]) {
        const y = await tp.callRagged(x, [0], [n]);
        expect(maxDiff(y.dataSync() as Float32Array, unsharded(x, [0], [n]))).toBeLessThanOrEqual(1e-5);
        expect(shmFiles()).toEqual([]);
        y.dispose();
      }
      expect(tp.sharedRows).toBe(40);
      expect((await tp.inspect()).map((s) => s.lengths.get(0))).toEqual([46, 46]);
      const st = tp.lastCallStats!;
      expect(st.totalMs).toBeGreaterThanOrEqual(st.computeMs);
      tf.dispose([x0, x1, x2]);
    } finally { await tp.dispose(); }
    expect(shmFiles()).toEqual([]);
  });

  itShm('a worker that throws in the call that grows the mapping: the call fails, no cache shard moves, the retry is exact', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,wasm'), { transport: 'process' });
    try {
      expect(tp.dataPaths).toEqual(['shm', 'shm']);
      tp.addSequence(0); ref.addSequence(0);
      const x0 = rows(3, 4), x1 = rows(20, 5);
      (await tp.callRagged(x0, [0], [3])).dispose(); unsharded(x0, [0], [3]);
      tp.injectFault(1, 'throw');
      await expect(tp.callRagged(x1, [0], [20])).rejects.toThrow('[ShardedAttention] device 1 (wasm:0) failed: injected fault');
      expect(tp.cacheLength(0)).toBe(3);
      expect((await tp.inspect()).map((s) => s.lengths.get(0))).toEqual([3, 3]);
      const y = await tp.callRagged(x1, [0], [20]); // the grown region is still named: the retry maps it
      expect(maxDiff(y.dataSync() as Float32Array, unsharded(x1, [0], [20]))).toBeLessThanOrEqual(1e-5);
      expect(shmFiles()).toEqual([]);
      tf.dispose([x0, x1, y]);
    } finally { await tp.dispose(); }
  });

  it('the IPC fallback (sharedMemory: false) matches the unsharded layer and dies cleanly', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'), { transport: 'process', sharedMemory: false });
    try {
      expect(tp.dataPaths).toEqual(['ipc', 'ipc']);
      expect(tp.sharedRows).toBe(0);
      tp.addSequence(0); ref.addSequence(0);
      const x = rows(24, 6);
      const y = await tp.callRagged(x, [0], [24]);
      expect(maxDiff(y.dataSync() as Float32Array, unsharded(x, [0], [24]))).toBeLessThanOrEqual(1e-5);
      tp.injectFault(1, 'exit');
      await expect(tp.callRagged(x, [0], [24])).rejects.toThrow('[ShardedAttention] device 1 (cpu:1) exited with code 7');
      expect(tp.cacheLength(0)).toBe(24);
      tf.dispose([x, y]);
    } finally { await tp.dispose(); }
  });

  itShm('a worker process without the addon moves its data over IPC, the other through shared memory', async () => {
    const noAddon: SpawnCommand = (device, script) => (device.index === 1
      ? { command: 'env', args: ['TFJS_ATTENTION_NATIVE_PATH=/nonexistent/addon.node', process.execPath, script] }
      : { command: process.execPath, args: [script] });
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'), { transport: 'process', spawnCommand: noAddon });
    try {
      expect(tp.dataPaths).toEqual(['shm', 'ipc']);
      tp.addSequence(0); ref.addSequence(0);
      for (const [n, seed] of [[6, 9], [33, 10]]) { // the second grows the region
        const x = rows(n, seed);
        const y = await tp.callRagged(x, [0], [n]);
        expect(maxDiff(y.dataSync() as Float32Array, unsharded(x, [0], [n]))).toBeLessThanOrEqual(1e-5);
        tf.dispose([x, y]);
      }
      expect(tp.sharedRows).toBe(33);
    } finally { await tp.dispose(); }
  });

  it('a region directory that is not writable: IPC', async () => {
    const prev = process.env.TFJS_ATTENTION_SHM_DIR;
    process.env.TFJS_ATTENTION_SHM_DIR = path.join(__dirname, 'no such dir');
    try {
      expect(sharedMemoryUnavailable()).toMatch(/no such dir is not writable$/);
      const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'), { transport: 'process' });
      try {
        expect(tp.dataPaths).toEqual(['ipc', 'ipc']);
        tp.addSequence(0); ref.addSequence(0);
        const x = rows(4, 8);
        const y = await tp.callRagged(x, [0], [4]);
        expect(maxDiff(y.dataSync() as Float32Array, unsharded(x, [0], [4]))).toBeLessThanOrEqual(1e-5);
        tf.dispose([x, y]);
      } finally { await tp.dispose(); }
    } finally {
      if (prev === undefined) delete process.env.TFJS_ATTENTION_SHM_DIR; else process.env.TFJS_ATTENTION_SHM_DIR = prev;
    }
  });

  it('TFJS_ATTENTION_SHM=0 forces IPC; the fixtures still match (cpu + wasm processes)', async () => {
    const prev = process.env.TFJS_ATTENTION_SHM;
    process.env.TFJS_ATTENTION_SHM = '0';
    try {
      const tp = await ShardedAttention.create(layer, parseDevices('cpu,wasm'), { transport: 'process' });
      expect(tp.dataPaths).toEqual(['ipc', 'ipc']);
      await tp.dispose();
      const r = await runShardedFixture(path.join(FIXTURES, 'llama_gqa'), ['cpu', 'wasm'], { transport: 'process' });
      expect({ ok: r.vsUnsharded <= 1e-5 && r.error <= 1e-4, detail: r.detail }).toEqual({ ok: true, detail: r.detail });
    } finally {
      if (prev === undefined) delete process.env.TFJS_ATTENTION_SHM; else process.env.TFJS_ATTENTION_SHM = prev;
    }
  });
});
