/**
 * Tensor-parallel attention: the whole layer (projections + RoPE + paged store + attention + output
 * projection) on a prefill of 1 x 512 tokens, hidden 1024, 16 query heads, 4 KV heads, head_dim 64,
 * causal: ShardedAttention on 2 workers vs 1 worker of the same backend (cpu, wasm), and vs the
 * unsharded layer on the main thread. The sharded output is checked against the unsharded layer
 * before timing.
 *
 *   node dist/bench/sharding.js [--quick]     (or add `shardingBench` to bench/run.ts's BENCH_MODULES)
 *   BENCH_SHARDING_BACKENDS=webgpu node dist/bench/sharding.js
 *
 * webgpu runs one process per device with the other NVIDIA GPUs hidden (isolateNvidiaGpu): on a
 * machine with 2 GPUs, `webgpu:0,webgpu:1` is 2 GPUs vs `webgpu:0` alone (check the placement
 * with `nvidia-smi --query-gpu=index,memory.used --format=csv` while it runs).
 */
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';

import { AttentionWithRope } from '../lib/attention/attention_with_rope.js';
import { useBackend } from '../lib/backends/select.js';
import { PagedKVCache } from '../lib/kv_cache/paged_kv_cache.js';
import { parseDevices } from '../lib/sharding/devices.js';
import { ShardedAttention, type ShardedAttentionOptions } from '../lib/sharding/sharded_attention.js';
import { isolateNvidiaGpu } from '../lib/sharding/shard_worker.js';
import { type BenchModule, type BenchOptions, type BenchRow, row, timeMs } from './harness.js';
import { addBenchModule, runBenches } from './run.js';

const HIDDEN = 1024, NH = 16, NKV = 4, D = 64, T = 512, PAGE = 128;

function makeLayer(): AttentionWithRope {
  const layer = new AttentionWithRope({
    rope: { headDim: D, theta: 500000, maxSeqLen: 1024 }, numAttentionHeads: NH, numKeyValueHeads: NKV, hiddenSize: HIDDEN,
    kvParams: { nKvHeads: NKV, headDim: D, pageSize: PAGE, numLayers: 1, numPages: 16 },
  });
  layer.build([null, HIDDEN]); // glorot-uniform weights
  return layer;
}

/** One prefill on a fresh sequence, released afterwards so every run starts alike. */
async function prefillSharded(tp: ShardedAttention, x: tf.Tensor2D): Promise<tf.Tensor2D> {
  const id = tp.addSequence();
  try { return await tp.callRagged(x, [id], [T]); } finally { tp.releaseSequence(id); }
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
