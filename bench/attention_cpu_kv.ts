/**
 * Compact KV caches on the CPU (issue 13): the attention_cpu scenarios (16 query / 4 KV heads, head_dim 64, causal)
 * with the cache in each kvParams.dtype, against the same scenario on a float32 cache, all in one process.
 *   P1: prefill 1 x 512   P2: ragged prefill 64 / 128 / 192 / 256   D1: decode 8 x 1 over 1024 cached
 * Two rows per (scenario, dtype): the attention kernel alone (native addon called on the pools in place) and the whole
 * step through tfjs (RoPE + paged store + attention). Every side is timed in alternation with float32 (harness
 * timeInterleaved), so load from other processes falls on both alike; ratio = float32 ms / dtype ms (above 1: the
 * compact cache is faster). Targets: D1 float16 >= 1.6x, int8 / float8 >= 2.5x; P1 no slower than 1.2x float32
 * (ratio >= 0.83). Without the addon the module logs that and returns no rows (the TypeScript kernel decodes pages).
 *
 *   npm run bench -- --only attention_cpu_kv      (also run by --only attention_cpu)
 *   KV_BENCH_CASES=D1 npm run bench -- --only attention_cpu_kv      (only the scenarios whose names start so)
 */
import { loadavg } from 'node:os';

import * as tf from '@tensorflow/tfjs';

import { attentionArgs } from '../kernels/cpu/args.js';
import { nativeKernels, setCpuKernelImpl } from '../kernels/cpu/native.js';
import { FlashAttentionRaggedPaged, RopeSplitStoreRagged } from '../kernels/kernel_names.js';
import { registerAllKernels } from '../kernels/register_all.js';
import { KV_CACHE_DTYPES, type KVCacheDType, kvBytesPerElement } from '../core/kv_dtype.js';
import type { PagedKVCollection } from '../lib/kv_cache/collection.js';
import { PagedKVCache } from '../lib/kv_cache/paged_kv_cache.js';
import type { RopeTables } from '../lib/rope/rope_tables.js';
import { type BenchModule, type BenchRow, row, timeInterleaved } from './harness.js';

const NH = 16, NKV = 4, D = 64, THETA = 500000, W = (NH + 2 * NKV) * D, MAXPOS = 2048;

interface Scenario { name: string; past: number[]; news: number[] }
const SCENARIOS: Scenario[] = [
  { name: 'P1 prefill 1x512', past: [0], news: [512] },
  { name: 'P2 prefill 64/128/192/256', past: [0, 0, 0, 0], news: [64, 128, 192, 256] },
  { name: 'D1 decode 8x1 @1024', past: Array(8).fill(1024), news: Array(8).fill(1) },
];

function rand(n: number, seed: number, amp = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = (s / 4294967296 * 2 - 1) * amp; }
  return a;
}

function ropeTables(): RopeTables {
  const half = D / 2, cos = new Float32Array(MAXPOS * half), sin = new Float32Array(MAXPOS * half);
  for (let p = 0; p < MAXPOS; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(THETA, (-2 * i) / D);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin, headDim: D, rotaryDim: D, maxPositions: MAXPOS, interleaved: false };
}

/** A `dtype` cache holding each sequence's past tokens (the same random K/V for every dtype), and the step's view. */
function makeCache(sc: Scenario, dtype: KVCacheDType): { cache: PagedKVCache; kv: PagedKVCollection } {
  const fp8 = dtype === 'float8_e4m3' ? { kScale: 1 / 256, vScale: 1 / 256 } : {};
  const cache = new PagedKVCache({ nKvHeads: NKV, headDim: D, pageSize: 128, numPages: 1000, dtype, ...fp8 });
  const ids = sc.past.map((_, i) => cache.addSequence(i));
  const pastTotal = sc.past.reduce((a, b) => a + b, 0);
  if (pastTotal > 0) {
    const pre = cache.fetch(ids, sc.past);
    cache.writeTokens(0, pre, rand(pastTotal * NKV * D, 11), rand(pastTotal * NKV * D, 12));
    cache.step(pre);
  }
  return { cache, kv: cache.fetch(ids, sc.news) };
}

const attnAttrs = (kv: PagedKVCollection) => ({ nHeads: NH, nKvHeads: NKV, headDim: D, scale: 1 / Math.sqrt(D),
  mask: { variant: 'causal' as const, window: 0, chunk: 0 }, collection: kv, layerIdx: 0, variant: 'auto' as const });

/**
 * Bytes of K and V (codes, plus int8's row scales) the attention kernel reads for a scenario: every key of every
 * sequence once per KV head. Decode at 8 x 1024 reads 16.8 MB from a float32 cache, which fits this machine's
 * 32 MB L3 when nothing else runs: the float32 side then runs from L3, not DRAM, and the ratios say how much
 * less work the compact kernels do per key, not only how many fewer bytes they move.
 */
function kvBytesRead(sc: Scenario, dtype: KVCacheDType): number {
  const keys = sc.past.reduce((a, p, i) => a + p + sc.news[i], 0) * NKV;
  return keys * (2 * D * kvBytesPerElement(dtype) + (dtype === 'int8' ? 8 : 0));
}

/** The whole step through tfjs, and the attention kernel alone on preallocated buffers. */
function sides(sc: Scenario, dtype: KVCacheDType, qkv: tf.Tensor2D, rope: RopeTables): { step: () => void; kernel: () => void } {
  const { cache, kv } = makeCache(sc, dtype);
  const ropeAttrs = { nHeads: NH, nKvHeads: NKV, headDim: D, rope, qkNormEps: -1, collection: kv, layerIdx: 0 };
  const step = (): void => {
    const q = tf.engine().runKernel(RopeSplitStoreRagged, { qkv }, ropeAttrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    const o = tf.engine().runKernel(FlashAttentionRaggedPaged, { q }, attnAttrs(kv) as unknown as tf.NamedAttrMap) as tf.Tensor;
    tf.dispose([q, o]);
  };
  step(); // stores the new tokens, so the kernel below reads a full context
  const T = qkv.shape[0], p = cache.pools(0), ints = attentionArgs(attnAttrs(kv), [T, NH * D]);
  const q = rand(T * NH * D, 5), out = new Float32Array(T * NH * D);
  const kernel = (): void => nativeKernels!.flashAttention(q, out, p.k, p.v, kv.rowOffsets, kv.startPositions, kv.numNewTokens,
    kv.pageTable, ints, 1 / Math.sqrt(D), p.kRowScales, p.vRowScales, cache.params.kScale, cache.params.vScale);
  return { step, kernel };
}

export const attentionCpuKvBench: BenchModule = {
  name: 'attention_cpu_kv',
  async run(opts) {
    await tf.setBackend('cpu');
    await tf.ready();
    registerAllKernels();
    if (!nativeKernels) { opts.log('  native kernels not loaded: no compact-cache rows'); return []; }
    setCpuKernelImpl('native');
    const rope = ropeTables();
    const load = (): string => loadavg().map((x) => x.toFixed(1)).join(' ');
    opts.log(`  ${nativeKernels.threads()} threads; load average before: ${load()}`);
    const rows: BenchRow[] = [];
    const t = opts.quick ? { warmup: 1, minIters: 3, maxIters: 6, minMs: 0, chunk: 3, skip: 1 }
      : { warmup: 5, minIters: 40, maxIters: 400, minMs: 2500, maxMs: 10000, chunk: 8, skip: 2 };
    const cases = process.env.KV_BENCH_CASES?.split(',').filter(Boolean);
    for (const sc of SCENARIOS.filter((c) => !cases || cases.some((p) => c.name.startsWith(p)))) {
      const T = sc.news.reduce((a, b) => a + b, 0);
      const qkv = tf.tensor2d(rand(T * W, 7), [T, W]);
      const all = KV_CACHE_DTYPES.map((dtype) => ({ dtype, ...sides(sc, dtype, qkv, rope) }));
      opts.log(`  ${sc.name}: K/V bytes read ${all.map((s) => `${s.dtype} ${(kvBytesRead(sc, s.dtype) / 1e6).toFixed(2)} MB`).join(', ')}`);
      for (const which of ['kernel', 'step'] as const) {
        const ms = await timeInterleaved(all.map((s) => s[which]), t);
        for (let i = 1; i < all.length; i++) {
          const label = `${sc.name} ${which === 'kernel' ? 'attention' : 'store+attention'}`;
          opts.log(`  ${label}: float32 ${ms[0].toFixed(3)} ms, ${all[i].dtype} ${ms[i].toFixed(3)} ms (${(ms[0] / ms[i]).toFixed(2)}x)`);
          rows.push(row(label, `cpu native ${all[i].dtype} cache`, ms[i], 'float32 cache', ms[0]));
        }
      }
      qkv.dispose();
    }
    setCpuKernelImpl('auto');
    opts.log(`  load average after: ${load()}`);
    return rows;
  },
};
