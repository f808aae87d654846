/**
 * Tensor-parallel prefill through WebGPU on 1 GPU vs 2 GPUs (issue 6): the whole layer (projections +
 * RoPE + paged store + attention + output projection) of ShardedAttention, `transport: 'process'`,
 * one worker process per device. With /dev/nvidia0 present each worker is started by
 * isolateNvidiaGpu (the other /dev/nvidiaN hidden), so `webgpu:0,webgpu:1` is two H200s.
 * After the workers start (and again after timing) it prints `nvidia-smi --query-gpu=index,memory.used`
 * to show which GPUs hold memory.
 *
 * Each device count runs with the data through shared memory (a /dev/shm mapping, the default where
 * the native addon loads) and through Node IPC (`sharedMemory: false`), SHM_MODES=shm,ipc picks;
 * per call it logs the time spent moving data (ShardedAttention.lastCallStats). PARTIALS=float32,float16
 * (default float32) also runs float16 partials (issue 16: half the bytes each partial moves) and
 * prints their error against the float32 2-device output.
 *
 * Shapes (argv, default `small`): small = prefill 1x512, hidden 1024, 16 q / 4 kv heads, d 64 (checked
 * against the unsharded layer on the main thread's cpu backend); large = prefill 1x4096, hidden 4096,
 * 32 q / 8 kv heads, d 128 (2 GPUs checked against 1 GPU).
 *
 *   bash bench/device/prepare_sharding.sh, then run(command="bash bench/device/run_sharding.sh", kind="nvidia-h200-x2",
 *     carry=[".device/b", ".device/node.xz", ".device/dawn.node.xz", ".device/debs", ".device/env.sh"])
 *   here: T=64 TFJS_ATTENTION_SHARD_WORKER=$PWD/.device/b/s/shard_worker.mjs node .device/b/s/sharding_gpu.mjs small cpu
 */
import { execSync } from 'node:child_process';
import '../../lib/backends/node_install.js'; // Dawn WebGPU and the native addon in this process (the in-process row)
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';

import { AttentionWithRope } from '../../lib/attention/attention_with_rope.js';
import { useBackend } from '../../lib/backends/select.js';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache.js';
import { parseDevices } from '../../lib/sharding/devices.js';
import { ShardedAttention, type ShardedAttentionOptions } from '../../lib/sharding/sharded_attention.js';
import { isolateNvidiaGpu } from '../../lib/sharding/shard_worker.js';

const SHAPES = {
  small: { hidden: 1024, nh: 16, nkv: 4, d: 64, T: 512, cpuRef: true },
  large: { hidden: 4096, nh: 32, nkv: 8, d: 128, T: 4096, cpuRef: false },
} as const;
const shapeName = (process.argv[2] ?? 'small') as keyof typeof SHAPES;
const backend = process.argv[3] ?? 'webgpu';
const S = { ...SHAPES[shapeName], T: Number(process.env.T ?? SHAPES[shapeName].T) }; // T=... shortens a local try
const PAGE = 128;
const iters = Number(process.env.ITERS ?? 10);

function smi(tag: string): void {
  if (!fs.existsSync('/dev/nvidia0')) return;
  try {
    const out = execSync('nvidia-smi --query-gpu=index,memory.used --format=csv,noheader', { encoding: 'utf8' });
    console.log(`nvidia-smi ${tag}: ${out.trim().split('\n').join(' | ')}`);
  } catch (e) { console.log(`nvidia-smi ${tag}: failed ${(e as Error).message.split('\n')[0]}`); }
}

function makeLayer(): AttentionWithRope {
  const layer = new AttentionWithRope({
    rope: { headDim: S.d, theta: 500000, maxSeqLen: S.T * 2 }, numAttentionHeads: S.nh, numKeyValueHeads: S.nkv, hiddenSize: S.hidden,
    kvParams: { nKvHeads: S.nkv, headDim: S.d, pageSize: PAGE, numLayers: 1, numPages: Math.ceil(S.T / PAGE) + 4 },
  });
  layer.build([null, S.hidden]); // glorot-uniform weights
  return layer;
}

async function prefill(tp: ShardedAttention, x: tf.Tensor2D): Promise<tf.Tensor2D> {
  const id = tp.addSequence();
  try { return await tp.callRagged(x, [id], [S.T]); } finally { tp.releaseSequence(id); }
}

async function maxDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> { // async reads: webgpu in Node has no readSync
  const [u, v] = await Promise.all([a.data(), b.data()]);
  let m = 0;
  for (let i = 0; i < u.length; i++) m = Math.max(m, Math.abs(u[i] - v[i]));
  return m;
}
const median = (s: number[]) => { const a = [...s].sort((x, y) => x - y), n = a.length; return n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2; };

async function main(): Promise<void> {
  await useBackend('cpu');
  const t0 = performance.now();
  const layer = makeLayer();
  const x = tf.randomNormal([S.T, S.hidden], 0, 1, 'float32', 7) as tf.Tensor2D; // [T, hidden]
  let ref: tf.Tensor2D | null = null;
  if (S.cpuRef) {
    const cache = new PagedKVCache(layer.kvParams);
    const id = cache.addSequence();
    const kv = cache.fetch([id], [S.T]);
    ref = layer.callRagged(0, x, kv); // [T, hidden]
  }
  console.log(`shape ${shapeName}: prefill 1x${S.T}, hidden ${S.hidden}, ${S.nh} q / ${S.nkv} kv heads, d ${S.d}; backend ${backend}; setup ${(performance.now() - t0).toFixed(0)} ms`);
  const isolate = backend === 'webgpu' && fs.existsSync('/dev/nvidia0') && process.env.ISOLATE !== '0';
  const o: ShardedAttentionOptions = { transport: 'process', ...(isolate ? { spawnCommand: isolateNvidiaGpu } : {}) };
  const medians = new Map<string, number>();
  const modes = (process.env.SHM_MODES ?? 'shm,ipc').split(',').filter(Boolean);
  const partials = (process.env.PARTIALS ?? 'float32').split(',').filter(Boolean) as ('float32' | 'float16')[];
  let y1: tf.Tensor2D | null = null;
  let y2: tf.Tensor2D | null = null; // 2 devices, float32 partials
  for (const n of [1, 2]) for (const mode of modes) for (const partialDtype of n === 1 ? ['float32' as const] : partials) {
    const devs = Array.from({ length: n }, (_, i) => `${backend}:${i}`).join(',');
    const ts = performance.now();
    const tp = await ShardedAttention.create(layer, parseDevices(devs), { ...o, sharedMemory: mode === 'shm', partialDtype });
    const tag = `${devs} ${mode}${partialDtype === 'float16' ? ' f16' : ''}`;
    try {
      console.log(`${tag}: started in ${(performance.now() - ts).toFixed(0)} ms (isolated: ${isolate}), worker backends ${tp.backends.join(',')}, data paths ${tp.dataPaths.join(',')}`);
      const y = await prefill(tp, x);
      if (ref) console.log(`${tag}: max |sharded - unsharded cpu| = ${(await maxDiff(y, ref)).toExponential(2)}`);
      if (y1) console.log(`${tag}: max |this - first (1 device)| = ${(await maxDiff(y, y1)).toExponential(2)}`);
      else y1 = y;
      if (y2 && partialDtype === 'float16') {
        const m = (await y2.data() as Float32Array).reduce((acc: number, v: number) => Math.max(acc, Math.abs(v)), 0);
        console.log(`${tag}: float16 partials, max |f16 - f32| = ${(await maxDiff(y, y2)).toExponential(2)} (max |out| ${m.toExponential(2)})`);
      }
      if (n === 2 && partialDtype === 'float32' && !y2) y2 = y;
      else if (y !== y1) y.dispose();
      smi(`with ${devs} live`);
      for (let i = 0; i < 2; i++) (await prefill(tp, x)).dispose(); // warm-up
      const ms: number[] = [];
      const st: NonNullable<ShardedAttention['lastCallStats']>[] = [];
      for (let i = 0; i < iters; i++) {
        const s = performance.now();
        (await prefill(tp, x)).dispose();
        ms.push(performance.now() - s);
        st.push(tp.lastCallStats!);
      }
      medians.set(tag, median(ms));
      console.log(`${tag}: prefill median ${median(ms).toFixed(2)} ms, min ${Math.min(...ms).toFixed(2)} ms over ${iters} (${ms.map((v) => v.toFixed(1)).join(' ')})`);
      console.log(`${tag}: medians per call: moving data ${median(st.map((v) => v.moveMs)).toFixed(2)} ms, slowest worker ${median(st.map((v) => v.computeMs)).toFixed(2)} ms, ` +
        `reduce+commit ${median(st.map((v) => v.reduceMs)).toFixed(2)} ms`);
      smi(`after timing ${tag}`);
    } finally { await tp.dispose(); }
  }
  for (const mode of modes) {
    const one = medians.get(`${backend}:0 ${mode}`)!, two = medians.get(`${backend}:0,${backend}:1 ${mode}`)!;
    console.log(`RESULT ${shapeName} ${backend} ${mode}: 1 device ${one.toFixed(2)} ms, 2 devices ${two.toFixed(2)} ms, speed-up ${(one / two).toFixed(2)}x`);
    const f16 = medians.get(`${backend}:0,${backend}:1 ${mode} f16`);
    if (f16 !== undefined) console.log(`RESULT ${shapeName} ${backend} ${mode}: 2 devices, float16 partials ${f16.toFixed(2)} ms, vs 1 device ${(one / f16).toFixed(2)}x`);
  }
  if (backend !== 'cpu') {
    try { // the unsharded layer in this process (no IPC): what the process transport costs
      await useBackend(backend);
      const cache = new PagedKVCache(layer.kvParams);
      const run = async () => {
        const id = cache.addSequence();
        const kv = cache.fetch([id], [S.T]);
        const y = layer.callRagged(0, x, kv); // [T, hidden]
        await y.data();
        cache.step(kv);
        cache.releaseSequence(id);
        return y;
      };
      const y = await run();
      if (y1) console.log(`unsharded in-process ${backend}: max |vs 1 device worker| = ${(await maxDiff(y, y1)).toExponential(2)}`);
      y.dispose();
      for (let i = 0; i < 2; i++) (await run()).dispose();
      const ms: number[] = [];
      for (let i = 0; i < iters; i++) { const s = performance.now(); (await run()).dispose(); ms.push(performance.now() - s); }
      console.log(`unsharded in-process ${backend} (incl. readback): median ${median(ms).toFixed(2)} ms, min ${Math.min(...ms).toFixed(2)} ms`);
      for (const [tag, v] of medians) if (tag.includes(',')) console.log(`RESULT ${shapeName} ${tag} vs one ${backend} in one process: ${(median(ms) / v).toFixed(2)}x (target >= 1.6x)`);
    } catch (e) { console.log(`unsharded in-process ${backend}: failed: ${(e as Error).message}`); }
  }
  tf.dispose([x, ...(ref ? [ref] : []), ...(y1 ? [y1] : []), ...(y2 ? [y2] : [])]);
  layer.dispose();
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
