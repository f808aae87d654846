/**
 * Tensor-parallel attention: the whole layer (projections + RoPE + paged store + attention + output
 * projection) on a prefill of 1 x 512 tokens, hidden 1024, 16 query heads, 4 KV heads, head_dim 64,
 * causal: ShardedAttention on 2 workers vs 1 worker of the same backend (cpu, wasm), and vs the
 * unsharded layer on the main thread. The sharded output is checked against the unsharded layer
 * before timing.
 *
 *   node dist/bench/run.js --only sharding [--quick]   (run.ts lists it; `node dist/bench/sharding.js` hits the import cycle)
 *   BENCH_SHARDING_BACKENDS=webgpu node dist/bench/run.js --only sharding
 *
 * webgpu runs one process per device with the other NVIDIA GPUs hidden (isolateNvidiaGpu): on a
 * machine with 2 GPUs, `webgpu:0,webgpu:1` is 2 GPUs vs `webgpu:0` alone (check the placement
 * with `nvidia-smi --query-gpu=index,memory.used --format=csv` while it runs).
 *
 * Process transport (cpu:0,cpu:1 as 2 child processes): data through a shared /dev/shm mapping vs
 * Node IPC (structured clone), timed in alternation, on 1x512 hidden 1024 and 1x2048 hidden 2048
 * (32 q / 8 kv heads, d 64); it logs the part of each call spent moving data (ShardedAttention's
 * lastCallStats: the call minus the slowest worker's compute minus the reduce), and float16 partials
 * against float32 ones (time and error). BENCH_SHARDING_PROCESS=0
 * skips these rows, BENCH_SHARDING_PROCESS=small runs the first shape only.
 */
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';

import { AttentionWithRope } from '../lib/attention/attention_with_rope.js';
import { useBackend } from '../lib/backends/select.js';
import { PagedKVCache } from '../lib/kv_cache/paged_kv_cache.js';
import { parseDevices } from '../lib/sharding/devices.js';
import { ShardedAttention, type ShardedAttentionOptions } from '../lib/sharding/sharded_attention.js';
import { isolateNvidiaGpu } from '../lib/sharding/shard_worker.js';
import { type BenchModule, type BenchOptions, type BenchRow, row, timeInterleaved, timeMs } from './harness.js';
import { addBenchModule, runBenches } from './run.js';

const HIDDEN = 1024, NH = 16, NKV = 4, D = 64, T = 512, PAGE = 128;

interface Shape { T: number; hidden: number; nh: number; nkv: number; d: number }
const SMALL: Shape = { T, hidden: HIDDEN, nh: NH, nkv: NKV, d: D };
const LARGE: Shape = { T: 2048, hidden: 2048, nh: 32, nkv: 8, d: 64 };

function makeLayer(s: Shape = SMALL): AttentionWithRope {
  const layer = new AttentionWithRope({
    rope: { headDim: s.d, theta: 500000, maxSeqLen: 2 * s.T }, numAttentionHeads: s.nh, numKeyValueHeads: s.nkv, hiddenSize: s.hidden,
    kvParams: { nKvHeads: s.nkv, headDim: s.d, pageSize: PAGE, numLayers: 1, numPages: Math.ceil(s.T / PAGE) + 4 },
  });
  layer.build([null, s.hidden]); // glorot-uniform weights
  return layer;
}

/** One prefill on a fresh sequence, released afterwards so every run starts alike. */
async function prefillSharded(tp: ShardedAttention, x: tf.Tensor2D): Promise<tf.Tensor2D> {
  const id = tp.addSequence();
  try { return await tp.callRagged(x, [id], [x.shape[0]]); } finally { tp.releaseSequence(id); }
}

const median = (xs: number[]) => { const a = [...xs].sort((p, q) => p - q), n = a.length; return n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2; };

/** 2 cpu worker processes, shared memory vs IPC, on one shape: rows and a log of the data-moving part. */
async function processRows(opts: BenchOptions, s: Shape): Promise<BenchRow[]> {
  const layer = makeLayer(s);
  const x = tf.randomNormal([s.T, s.hidden], 0, 1, 'float32', 11) as tf.Tensor2D; // [T, hidden]
  const tag = `1x${s.T} (h${s.hidden} ${s.nh}q/${s.nkv}kv)`;
  const tps: ShardedAttention[] = [];
  try {
    for (const [sharedMemory, partialDtype] of [[true, 'float32'], [false, 'float32'], [true, 'float16']] as const) {
      tps.push(await ShardedAttention.create(layer, parseDevices('cpu:0,cpu:1'), { transport: 'process', sharedMemory, partialDtype }));
    }
    opts.log(`process transport ${tag}: data paths ${tps.map((t) => t.dataPaths.join('+')).join(' vs ')}`);
    const [a, b, h] = await Promise.all(tps.map(async (tp) => prefillSharded(tp, x)));
    opts.log(`process transport ${tag}: max |shm - ipc| = ${maxDiff(a, b).toExponential(2)}; float16 partials: max |f16 - f32| = ` +
      `${maxDiff(h, a).toExponential(2)} (max |out| ${tf.tidy(() => tf.max(tf.abs(a)).dataSync()[0]).toExponential(2)})`);
    tf.dispose([a, b, h]);
    const stats = tps.map(() => [] as { totalMs: number; computeMs: number; reduceMs: number; moveMs: number }[]);
    const fns = tps.map((tp, k) => async () => { (await prefillSharded(tp, x)).dispose(); stats[k].push(tp.lastCallStats!); });
    const q = opts.quick;
    const ms = await timeInterleaved(fns, { warmup: 1, minIters: q ? 2 : 8, maxIters: q ? 3 : 30, minMs: q ? 0 : 3000, maxMs: q ? 5000 : 30000, chunk: 2, skip: 0 });
    ['shared memory', 'IPC', 'shared memory, float16 partials'].forEach((name, k) => {
      const st = stats[k].slice(1); // the warm-up call
      opts.log(`process transport ${tag}, ${name}: ${ms[k].toFixed(1)} ms per call; medians: moving data ${median(st.map((v) => v.moveMs)).toFixed(1)} ms, ` +
        `slowest worker ${median(st.map((v) => v.computeMs)).toFixed(1)} ms, reduce+commit ${median(st.map((v) => v.reduceMs)).toFixed(1)} ms (${st.length} calls)`);
    });
    return [row(`TP prefill ${tag}: 2 processes, shared memory`, 'cpu', ms[0], '2 processes, IPC', ms[1]),
      row(`TP prefill ${tag}: 2 processes, shm, float16 partials`, 'cpu', ms[2], 'float32 partials', ms[0])];
  } finally {
    await Promise.all(tps.map((tp) => tp.dispose()));
    x.dispose();
    layer.dispose();
  }
}

function prefillLocal(layer: AttentionWithRope, cache: PagedKVCache, x: tf.Tensor2D): tf.Tensor2D {
  const id = cache.addSequence();
  const kv = cache.fetch([id], [T]);
  const y = layer.callRagged(0, x, kv);
  cache.step(kv);
  cache.releaseSequence(id);
  return y;
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

async function run(opts: BenchOptions): Promise<BenchRow[]> {
  await useBackend('cpu');
  const layer = makeLayer();
  const cache = new PagedKVCache(layer.kvParams);
  const x = tf.randomNormal([T, HIDDEN], 0, 1, 'float32', 7) as tf.Tensor2D; // [T, hidden]
  const timing = opts.quick ? { warmup: 1, minIters: 2, maxIters: 3, minMs: 0 } : { warmup: 1, minIters: 5, maxIters: 11, minMs: 2000 };
  const ref = prefillLocal(layer, cache, x);
  const local = await timeMs(() => prefillLocal(layer, cache, x).dispose(), timing);
  opts.log(`unsharded, main thread (cpu): ${local.toFixed(1)} ms`);
  const rows: BenchRow[] = [];
  const backends = (process.env.BENCH_SHARDING_BACKENDS ?? 'cpu,wasm').split(',').filter(Boolean);
  for (const backend of backends) {
    const ms: number[] = [];
    const o: ShardedAttentionOptions = backend === 'webgpu' ? { transport: 'process', spawnCommand: isolateNvidiaGpu } : {};
    for (const n of [1, 2]) {
      const tp = await ShardedAttention.create(layer, parseDevices(Array.from({ length: n }, (_, i) => `${backend}:${i}`)), o);
      try {
        const y = await prefillSharded(tp, x);
        opts.log(`${n} ${backend} worker(s): max |sharded - unsharded| = ${maxDiff(y, ref).toExponential(2)}`);
        y.dispose();
        ms.push(await timeMs(async () => (await prefillSharded(tp, x)).dispose(), timing));
        opts.log(`${n} ${backend} worker(s): ${ms[ms.length - 1].toFixed(1)} ms`);
      } finally { await tp.dispose(); }
    }
    const what = backend === 'webgpu' ? '2 GPU processes' : '2 workers';
    rows.push(row(`TP prefill 1x${T} (h${HIDDEN} 16q/4kv): ${what}`, backend, ms[1], backend === 'webgpu' ? '1 GPU process' : '1 worker', ms[0]));
    if (backend === 'cpu') rows.push(row(`TP prefill 1x${T} (h${HIDDEN} 16q/4kv): 2 workers`, backend, ms[1], 'unsharded main thread', local));
  }
  tf.dispose([x, ref]);
  layer.dispose();
  const proc = process.env.BENCH_SHARDING_PROCESS ?? 'small,large';
  if (proc !== '0') for (const s of proc.includes('large') ? [SMALL, LARGE] : [SMALL]) rows.push(...(await processRows(opts, s)));
  return rows;
}

export const shardingBench: BenchModule = { name: 'sharding (tensor-parallel workers)', run };

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  addBenchModule(shardingBench);
  runBenches({ only: /^sharding/, quick: process.argv.includes('--quick') }).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
