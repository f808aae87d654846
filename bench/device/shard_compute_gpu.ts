/**
 * Where the time of process-transport tensor parallelism goes (issue 6), in one process on one GPU:
 * the unsharded layer vs each of its 2 shards (`layer.shard(...)`, half the heads each), as compute plus
 * readback on the current backend, and the IPC round trip of one [T, hidden] float32 message to a child
 * process (structured clone, as ShardWorker's 'process' transport sends input and partials).
 *
 *   node .device/b/s/shard_compute_gpu.mjs small|large [webgpu|cpu]     (bundled by prepare_sharding.sh)
 */
import { spawn } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';

import { AttentionWithRope } from '../../lib/attention/attention_with_rope.js';
import { useBackend } from '../../lib/backends/select.js';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache.js';
import { parseDevices } from '../../lib/sharding/devices.js';

const SHAPES = {
  small: { hidden: 1024, nh: 16, nkv: 4, d: 64, T: 512 },
  large: { hidden: 4096, nh: 32, nkv: 8, d: 128, T: 4096 },
} as const;
const shapeName = (process.argv[2] ?? 'small') as keyof typeof SHAPES;
const backend = process.argv[3] ?? 'webgpu';
const S = { ...SHAPES[shapeName], T: Number(process.env.T ?? SHAPES[shapeName].T) };
const iters = Number(process.env.ITERS ?? 10);
const median = (s: number[]) => { const a = [...s].sort((x, y) => x - y), n = a.length; return n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2; };

async function timeIt(fn: () => Promise<unknown>): Promise<string> {
  for (let i = 0; i < 2; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < iters; i++) { const s = performance.now(); await fn(); ms.push(performance.now() - s); }
  return `median ${median(ms).toFixed(2)} ms, min ${Math.min(...ms).toFixed(2)} ms`;
}

async function prefillTime(layer: AttentionWithRope, x: tf.Tensor2D): Promise<string> {
  const cache = new PagedKVCache({ ...layer.kvParams, numLayers: 1 });
  return timeIt(async () => {
    const id = cache.addSequence();
    const kv = cache.fetch([id], [S.T]);
    const y = layer.callRagged(0, x, kv); // [T, hidden]
    await y.data();
    y.dispose();
    cache.step(kv);
    cache.releaseSequence(id);
  });
}

async function ipcTime(): Promise<string> {
  const child = spawn(process.execPath, ['-e', "process.on('message', (m) => process.send(m))"],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  const msg = { op: 'call', input: new Float32Array(S.T * S.hidden) }; // [T, hidden]
  const r = await timeIt(() => new Promise((res) => { child.once('message', res); child.send(msg); }));
  child.kill();
  return r;
}

async function main(): Promise<void> {
  await useBackend('cpu');
  const layer = new AttentionWithRope({
    rope: { headDim: S.d, theta: 500000, maxSeqLen: S.T * 2 }, numAttentionHeads: S.nh, numKeyValueHeads: S.nkv, hiddenSize: S.hidden,
    kvParams: { nKvHeads: S.nkv, headDim: S.d, pageSize: 128, numLayers: 1, numPages: Math.ceil(S.T / 128) + 4 },
  });
  layer.build([null, S.hidden]);
  const shards = layer.shard(parseDevices('cpu:0,cpu:1')); // placement does not matter here: all run in this process
  const x = tf.randomNormal([S.T, S.hidden], 0, 1, 'float32', 7) as tf.Tensor2D; // [T, hidden]
  console.log(`shape ${shapeName}: 1x${S.T}, hidden ${S.hidden}, ${S.nh}/${S.nkv} heads, d ${S.d}`);
  console.log(`IPC round trip of one [${S.T}, ${S.hidden}] f32 message (${(S.T * S.hidden * 4 / 2 ** 20).toFixed(0)} MiB) to a child: ${await ipcTime()}`);
  await useBackend(backend);
  console.log(`unsharded layer in-process ${backend}: ${await prefillTime(layer, x)}`);
  for (const [i, s] of shards.entries()) console.log(`shard ${i} of 2 (${s.opts.numAttentionHeads} q heads) in-process ${backend}: ${await prefillTime(s, x)}`);
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
