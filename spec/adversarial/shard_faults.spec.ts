/**
 * ShardedAttention under faults: a call refused for bad input reserves nothing; a failed call
 * gives back every page it reserved (book and shards); a stopped (SIGSTOP) process worker fails
 * the call after callTimeoutMs with the device named and the cache as it was, and works again
 * once continued; a killed worker fails the call; no /dev/shm file outlives its mapping; workers
 * whose parent is killed exit quietly (no EPIPE trace).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { parseDevices } from '../../lib/sharding/devices';
import { ShardedAttention } from '../../lib/sharding/sharded_attention';
import { SHM_PREFIX, shmDir, sharedMemoryUnavailable } from '../../lib/sharding/shm_region';
import { workerScript } from '../../lib/sharding/worker_script';
import { packageRoot } from '../../lib/util/package_root.js';
import { useBackend } from '../../lib/backends/select';

const H = 32;
const KV = { nKvHeads: 2, headDim: 16, pageSize: 4, numLayers: 1, numPages: 8 }; // 32 tokens in all
const rows = (t: number, seed: number) => tf.tidy(() => tf.randomNormal([t, H], 0, 1, 'float32', seed)) as tf.Tensor2D;
const shmFilesOf = (pid: number) => fs.readdirSync(shmDir()).filter((f) => f.startsWith(`${SHM_PREFIX}${pid}.`));
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

function makeLayer(): AttentionWithRope {
  const layer = new AttentionWithRope({
    rope: { headDim: 16, theta: 10000, maxSeqLen: 64 }, numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: H, kvParams: KV,
  });
  layer.build([null, H]);
  return layer;
}

describe('ShardedAttention faults', () => {
  let layer: AttentionWithRope;
  beforeAll(async () => { await useBackend('cpu'); });
  beforeEach(() => { layer = makeLayer(); });
  afterEach(() => layer.dispose());

  async function unsharded(steps: [tf.Tensor2D, number[], number[]][]): Promise<Float32Array> {
    const ref = new PagedKVCache(KV);
    let out: Float32Array = new Float32Array(0);
    for (const [x, ids, counts] of steps) {
      for (const id of ids) if (!ref.hasSequence(id)) ref.addSequence(id);
      const kv = ref.fetch(ids, counts);
      const y = layer.callRagged(0, x, kv);
      ref.step(kv);
      out = y.dataSync() as Float32Array;
      y.dispose();
    }
    return out;
  }

  for (const transport of ['thread', 'process'] as const) {
    it(`${transport}: a call refused for a bad hidden size reserves no page; a failed call gives its pages back`, async () => {
      const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'), { transport });
      try {
        tp.addSequence(0); tp.addSequence(1);
        const bad = tf.zeros([32, H + 1]) as tf.Tensor2D;
        await expect(tp.callRagged(bad, [0], [32])).rejects.toThrow(`[ShardedAttention] hidden must be [totalTokens, ${H}], got [32,${H + 1}]`);
        await expect(tp.callRagged(new Float32Array(31 * H), [0], [32])).rejects.toThrow(`hidden has ${31 * H} values, expected totalTokens * hiddenSize (32 * ${H})`);
        await expect(tp.callRagged(new Float32Array(H), [0], [-1])).rejects.toThrow('numNewTokens must be an array of integers >= 0, got [-1]');
        tp.injectFault(1, 'throw');
        const x = rows(32, 1);
        await expect(tp.callRagged(x, [0], [32])).rejects.toThrow('device 1 (cpu:1) failed: injected fault');
        // all 8 pages are free again on the book and on both shards: sequence 1 can take every one
        expect((await tp.inspect()).map((s) => s.numFreePages)).toEqual([8, 8]);
        const y = await tp.callRagged(x, [1], [32]);
        const want = await unsharded([[x, [1], [32]]]);
        expect(Math.max(...Array.from(y.dataSync() as Float32Array, (v, i) => Math.abs(v - want[i])))).toBeLessThan(1e-5);
        expect(tp.cacheLength(0)).toBe(0);
        expect(tp.cacheLength(1)).toBe(32);
        tf.dispose([bad, x, y]);
      } finally { await tp.dispose(); }
    });
  }

  it('a stopped (SIGSTOP) process worker fails the call after callTimeoutMs, cache unchanged; continued, it works again', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'), { transport: 'process', callTimeoutMs: 1500 });
    const pid = tp.workerPids[1]!;
    try {
      tp.addSequence(0);
      const x0 = rows(5, 2), x1 = rows(3, 3);
      (await tp.callRagged(x0, [0], [5])).dispose();
      const before = await tp.inspect();
      process.kill(pid, 'SIGSTOP');
      const t0 = Date.now();
      await expect(tp.callRagged(x1, [0], [3])).rejects.toThrow(/\[ShardedAttention\] device 1 \(cpu:1\) did not answer 'call' \(call \d+\) within 1500 ms \(callTimeoutMs\)/);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(tp.cacheLength(0)).toBe(5);
      process.kill(pid, 'SIGCONT');
      expect((await tp.inspect()).map((s) => [[...s.lengths], s.numFreePages])).toEqual(before.map((s) => [[...s.lengths], s.numFreePages]));
      const y = await tp.callRagged(x1, [0], [3]);
      const want = await unsharded([[x0, [0], [5]], [x1, [0], [3]]]);
      expect(Math.max(...Array.from(y.dataSync() as Float32Array, (v, i) => Math.abs(v - want[i])))).toBeLessThan(1e-5);
      expect(shmFilesOf(process.pid)).toEqual([]);
      tf.dispose([x0, x1, y]);
    } finally {
      try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
      await tp.dispose();
    }
  });

  it('a killed (SIGKILL) process worker fails the call naming it; later calls refuse; no /dev/shm file stays', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'), { transport: 'process' });
    try {
      tp.addSequence(0);
      const x = rows(4, 4);
      (await tp.callRagged(x, [0], [4])).dispose();
      expect(shmFilesOf(process.pid)).toEqual([]); // unlinked as soon as both workers mapped it
      process.kill(tp.workerPids[0]!, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      await expect(tp.callRagged(x, [0], [4])).rejects.toThrow(/device 0 \(cpu:0\) (exited with code null \(SIGKILL\)|is gone)/);
      expect(tp.cacheLength(0)).toBe(4);
      expect(shmFilesOf(process.pid)).toEqual([]);
      x.dispose();
    } finally { await tp.dispose(); }
  });

  (sharedMemoryUnavailable() === null ? it : it.skip)('workers whose parent is killed exit quietly; the parent left no /dev/shm file', async () => {
    const esbuild = await import('esbuild');
    const dir = path.join(packageRoot, 'node_modules', '.cache', 'tfjs-attention-rope');
    fs.mkdirSync(dir, { recursive: true });
    const outfile = path.join(dir, `orphan_parent.${process.pid}.mjs`); // three levels under the root, as the worker bundle
    await esbuild.build({
      entryPoints: [path.join(__dirname, 'support', 'orphan_parent.ts')], outfile, bundle: true, platform: 'node', format: 'esm',
      target: 'node20', logLevel: 'error', external: ['@tensorflow/*', 'webgpu', 'onnxruntime-node', '@huggingface/*', 'esbuild'],
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    });
    const worker = await workerScript();
    const parent = spawn(process.execPath, [outfile], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TFJS_ATTENTION_SHARD_WORKER: worker } });
    let out = '', err = '';
    parent.stdout.on('data', (d) => { out += d; });
    parent.stderr.on('data', (d) => { err += d; });
    try {
      const deadline = Date.now() + 60_000;
      while (!/^ready /m.test(out) && Date.now() < deadline && parent.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      const [parentPid, ...workers] = /^ready (.*)$/m.exec(out)![1].split(' ').map(Number);
      expect(workers).toHaveLength(2);
      process.kill(parentPid, 'SIGKILL');
      const gone = Date.now() + 20_000;
      while (workers.some(alive) && Date.now() < gone) await new Promise((r) => setTimeout(r, 100));
      expect(workers.filter(alive)).toEqual([]);
      await new Promise((r) => setTimeout(r, 300));
      expect(err).not.toMatch(/EPIPE|Error|at /);
      expect(shmFilesOf(parentPid)).toEqual([]);
    } finally {
      parent.kill('SIGKILL');
      fs.rmSync(outfile, { force: true });
    }
  });
});
