/**
 * WebGPU attention bench (Dawn in Node): FlashAttentionRaggedPaged prefill and decode, and
 * RopeSplitStoreRagged, for several tile configs in one run; each config is checked against a
 * float64 reference on sampled rows before it is timed.
 *
 *   node dist/bench/attention_webgpu.js [--small] [--issue] [--json FILE]   (--issue: only issue 3's P1/P2/D1)
 *   (device machine: bench/device/run.sh bundles this with esbuild and runs it beside PyTorch)
 *
 * Shapes (issue 3): prefill 1 x 4096 tokens, 32 q / 8 kv heads, head_dim 128, causal;
 * decode 32 sequences x 4096 cached tokens, one new token each. --small shrinks both for a
 * software driver. Times: median over reps of (submit -> queue.onSubmittedWorkDone), ms.
 * Configs that lost are kept in flash_plan.ts's candidate list with the figures in the report.
 */
/// <reference types="@webgpu/types" />
import * as tf from '@tensorflow/tfjs';
import { writeFileSync } from 'node:fs';
import { FlashAttentionRaggedPaged, RopeSplitStoreRagged } from '../kernels/kernel_names.js';
import { webgpuFlashTuning, type NamedPrefill } from '../kernels/webgpu/flash_plan.js';
import { WebGpuKVMirror } from '../kernels/webgpu/kv_mirror.js';
import { registerAllKernels } from '../kernels/register_all.js';
import { initWebGpuNode, webGpuNodeStatus } from '../lib/backends/webgpu_node.js';
import type { PagedKVCollection } from '../lib/kv_cache/collection.js';
import { PagedKVCache } from '../lib/kv_cache/paged_kv_cache.js';
import type { MaskSpec } from '../lib/types.js';
import { batchMs, gpuDevice, median, passTimesMs, refRow, warmUp } from './webgpu_harness.js';

const args = process.argv.slice(2);
const small = args.includes('--small');
const jsonPath = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;
const causal: MaskSpec = { variant: 'causal', window: 0, chunk: 0 };
const NH = 32, NKV = 8, D = 128, PS = 128;
const HEADS = { nH: NH, nKv: NKV, D, pageSize: PS };
const rows: Record<string, unknown>[] = [];

function fillRandom(a: Float32Array, seed: number): void {
  const n = Math.min(a.length, 1 << 20);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; a[i] = (s / 4294967296) * 2 - 1; }
  // Shift each copy by a prime so rows differ.
  for (let off = n; off < a.length; off += n - 7) a.copyWithin(off, 7, Math.min(n, a.length - off + 7));
}

/**
 * Times `f`: `gpu` = median of the kernel passes' GPU timestamps (the number reported),
 * `wall` = median of submit -> onSubmittedWorkDone, `batch` = (reps calls, one wait) / reps.
 */
async function timeIt(f: () => tf.Tensor, reps: number, passes = 1): Promise<{ gpu: number; wall: number; batch: number }> {
  const dev = gpuDevice();
  await warmUp(f);
  const wall: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const t = f();
    await dev.queue.onSubmittedWorkDone();
    wall.push(performance.now() - t0);
    t.dispose();
  }
  const batch = await batchMs(f, reps);
  const gpu = await passTimesMs(f, reps, passes); // one sum per call of its `passes` kernel passes
  return { gpu: gpu ? median(gpu) : NaN, wall: median(wall), batch };
}

/** Worst relative error over sampled rows. */
function check(got: Float32Array, q: Float32Array, kPool: Float32Array, vPool: Float32Array, c: PagedKVCollection, samples: number): number {
  let worst = 0;
  const scale = 1 / Math.sqrt(D);
  for (let n = 0; n < samples; n++) {
    const b = n % c.seqIds.length;
    const nNew = c.numNewTokens[b];
    const r = c.rowOffsets[b] + ((n * 2654435761) >>> 0) % nNew;
    const h = (n * 7) % NH;
    const ref = refRow(q, kPool, vPool, c, b, r, h, scale, HEADS);
    let e = 0, m = 1e-6;
    for (let d = 0; d < D; d++) { e = Math.max(e, Math.abs(got[(r * NH + h) * D + d] - ref[d])); m = Math.max(m, Math.abs(ref[d])); }
    worst = Math.max(worst, e / m);
  }
  return worst;
}

async function setup(batch: number, ctx: number, newTokens: number) {
  const pagesPer = Math.ceil((ctx + newTokens) / PS);
  const cache = new PagedKVCache({ nKvHeads: NKV, headDim: D, pageSize: PS, numPages: batch * pagesPer, numLayers: 1 });
  const ids = Array.from({ length: batch }, (_, b) => cache.addSequence(b));
  if (ctx > 0) cache.step(cache.fetch(ids, ids.map(() => ctx)));
  const c = cache.fetch(ids, ids.map(() => newTokens));
  const kPool = cache.keys(0), vPool = cache.values(0);
  fillRandom(kPool, 1);
  fillRandom(vPool, 2);
  const q = new Float32Array(c.totalTokens * NH * D);
  fillRandom(q, 3);
  return { cache, c, kPool, vPool, q };
}

async function prefill(): Promise<void> {
  const T = small ? 512 : 4096;
  const { c, kPool, vPool, q } = await setup(1, 0, T);
  const qt = tf.tensor2d(q, [T, NH * D]);
  const flops = 4 * NH * D * (T * (T + 1)) / 2;
  const all: NamedPrefill[] = [...webgpuFlashTuning.prefill];
  const cfgs: NamedPrefill[] = [
    { name: 'm64b16r2', tq: 16, bc: 16, rm: 2, tc: 8 },
    { name: 'm64b16r2t4', tq: 16, bc: 16, rm: 2, tc: 4 },
    { name: 'm64b16r2-noprefetch', tq: 16, bc: 16, rm: 2, tc: 8, prefetch: false },
    { name: 'm64b8r2', tq: 16, bc: 8, rm: 2, tc: 8 },
    { name: 'm48b32r3', tq: 12, bc: 32, rm: 3, tc: 8 },
    { name: 'm64b16', tq: 16, bc: 16, rm: 4, tc: 8 },
  ];
  for (const cfg of small ? all.slice(4, 6) : cfgs) {
    webgpuFlashTuning.prefill = [cfg];
    const attrs = { nHeads: NH, nKvHeads: NKV, headDim: D, scale: 1 / Math.sqrt(D), mask: causal, collection: c, layerIdx: 0, variant: 'prefill' };
    const run = () => tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    try {
      const out = run();
      const err = check(await out.data() as Float32Array, q, kPool, vPool, c, 8);
      out.dispose();
      const t = await timeIt(run, small ? 3 : 10);
      const ms = Number.isNaN(t.gpu) ? t.batch : t.gpu;
      rows.push({ name: `prefill 1x${T} ${cfg.name}`, ms, ...t, tflops: flops / ms / 1e9, err });
      console.log(`prefill 1x${T} ${cfg.name}: ${ms.toFixed(3)} ms (wall ${t.wall.toFixed(3)}, batch ${t.batch.toFixed(3)}), ${(flops / ms / 1e9).toFixed(2)} TFLOP/s, rel err ${err.toExponential(2)}`);
    } catch (e) {
      console.log(`prefill ${cfg.name}: failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  webgpuFlashTuning.prefill = all;
  {
    const attrs = { nHeads: NH, nKvHeads: NKV, headDim: D, scale: 1 / Math.sqrt(D), mask: causal, collection: c, layerIdx: 0, variant: 'auto' };
    const run = () => tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    const t = await timeIt(run, small ? 3 : 10);
    const ms = Number.isNaN(t.gpu) ? t.batch : t.gpu;
    rows.push({ name: `prefill 1x${T} auto (defaults)`, ms, ...t, tflops: flops / ms / 1e9 });
    console.log(`prefill 1x${T} auto (defaults): ${ms.toFixed(3)} ms (wall ${t.wall.toFixed(3)}, batch ${t.batch.toFixed(3)}), ${(flops / ms / 1e9).toFixed(2)} TFLOP/s`);
  }
  qt.dispose();
}

async function rope(): Promise<void> {
  const T = small ? 512 : 4096;
  const pagesPer = Math.ceil(T / PS);
  const cache = new PagedKVCache({ nKvHeads: NKV, headDim: D, pageSize: PS, numPages: pagesPer, numLayers: 1 });
  cache.addSequence(0);
  const c = cache.fetch([0], [T]);
  const half = D / 2;
  const cos = new Float32Array(T * half).fill(0.5), sin = new Float32Array(T * half).fill(0.25);
  const qkv = new Float32Array(T * (NH + 2 * NKV) * D);
  fillRandom(qkv, 4);
  const x = tf.tensor2d(qkv, [T, (NH + 2 * NKV) * D]);
  const attrs = { nHeads: NH, nKvHeads: NKV, headDim: D, rope: { cos, sin, headDim: D, rotaryDim: D, maxPositions: T, interleaved: false }, qkNormEps: -1, collection: c, layerIdx: 0 };
  const run = () => tf.engine().runKernel(RopeSplitStoreRagged, { qkv: x }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const t = await timeIt(run, small ? 3 : 10);
  const ms = Number.isNaN(t.gpu) ? t.batch : t.gpu;
  const bytes = 4 * T * (NH + 2 * NKV) * D * 2;
  rows.push({ name: `rope_split_store 1x${T}`, ms, ...t, tbps: bytes / ms / 1e9 });
  console.log(`rope_split_store 1x${T}: ${ms.toFixed(3)} ms (wall ${t.wall.toFixed(3)}, batch ${t.batch.toFixed(3)}), ${(bytes / ms / 1e9).toFixed(2)} TB/s`);
  x.dispose();
}

async function decode(): Promise<void> {
  const B = small ? 8 : 32, ctx = small ? 1024 : 4096;
  const { c, kPool, vPool, q } = await setup(B, ctx, 1);
  const qt = tf.tensor2d(q, [B, NH * D]);
  const bytes = 2 * B * (ctx + 1) * NKV * D * 4;
  const t = webgpuFlashTuning;
  const saved = { ...t };
  // sg: subgroup kernel (nw subgroups, u keys per block); else shared-memory tiles (bc keys, wg threads).
  const cfgs = [
    { sg: true, nw: 4, u: 8, split: 256, target: 4096 },
    { sg: true, nw: 4, u: 8, split: 256, target: 2048 },
    { sg: true, nw: 4, u: 8, split: 512, target: 4096 },
    { sg: true, nw: 4, u: 8, split: 128, target: 4096 },
    { sg: true, nw: 4, u: 8, split: 128, target: 8192 },
    { sg: false, bc: [16], wg: 128, split: 128, target: 8192 },
  ];
  for (const cf of small ? cfgs.slice(0, 2) : cfgs) {
    Object.assign(t, { decodeSubgroup: cf.sg, decodeSubgroupWarps: cf.nw ?? 4, decodeSubgroupKeys: cf.u ?? 8, decodeBc: cf.bc ?? [16],
      decodeWg: cf.wg ?? 128, decodeMinSplitKeys: cf.split, decodeTargetWorkgroups: cf.target });
    const name = `decode ${B}x${ctx} ${cf.sg ? `subgroup nw${cf.nw} u${cf.u}` : `tiles bc${cf.bc![0]} wg${cf.wg}`} split${cf.split} target${cf.target}`;
    const attrs = { nHeads: NH, nKvHeads: NKV, headDim: D, scale: 1 / Math.sqrt(D), mask: causal, collection: c, layerIdx: 0, variant: 'decode' };
    const run = () => tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    try {
      const out = run();
      const err = check(await out.data() as Float32Array, q, kPool, vPool, c, 8);
      out.dispose();
      const tm = await timeIt(run, small ? 5 : 30);
      const ms = Number.isNaN(tm.gpu) ? tm.batch : tm.gpu;
      rows.push({ name, ms, ...tm, tbps: bytes / ms / 1e9, err });
      console.log(`${name}: ${ms.toFixed(3)} ms (wall ${tm.wall.toFixed(3)}, batch ${tm.batch.toFixed(3)}), ${(bytes / ms / 1e9).toFixed(2)} TB/s of K/V, rel err ${err.toExponential(2)}`);
    } catch (e) {
      console.log(`${name}: failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  Object.assign(t, saved);
  {
    const attrs = { nHeads: NH, nKvHeads: NKV, headDim: D, scale: 1 / Math.sqrt(D), mask: causal, collection: c, layerIdx: 0, variant: 'auto' };
    const run = () => tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    const tm = await timeIt(run, small ? 5 : 30);
    const ms = Number.isNaN(tm.gpu) ? tm.batch : tm.gpu;
    rows.push({ name: `decode ${B}x${ctx} auto (defaults)`, ms, ...tm, tbps: bytes / ms / 1e9 });
    console.log(`decode ${B}x${ctx} auto (defaults): ${ms.toFixed(3)} ms (wall ${tm.wall.toFixed(3)}, batch ${tm.batch.toFixed(3)}), ${(bytes / ms / 1e9).toFixed(2)} TB/s of K/V`);
  }
  qt.dispose();
}

/**
 * Issue 3's bench shapes on webgpu (attention core: RoPE + paged store + attention, hidden 1024,
 * 16 q / 4 kv heads, head_dim 64, theta 500000, causal): P1 prefill 1x512, P2 ragged prefill
 * 64/128/192/256, D1 decode 8 x (1024 cached + 1), with a pool of 1,000 and of 64,000 pages of 16.
 */
async function issueShapes(): Promise<void> {
  const nH = 16, nKv = 4, hd = 64, ps = 16;
  const half = hd / 2;
  const maxPos = 2048;
  const cos = new Float32Array(maxPos * half), sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) for (let i = 0; i < half; i++) {
    const a = p * Math.pow(500000, (-2 * i) / hd);
    cos[p * half + i] = Math.cos(a);
    sin[p * half + i] = Math.sin(a);
  }
  const rope = { cos, sin, headDim: hd, rotaryDim: hd, maxPositions: maxPos, interleaved: false };
  /** A cache with `ctx` tokens per sequence already stored, `news` new ones fetched, and one step's runner. */
  const prepare = (numPages: number, ctx: number[], news: number[]) => {
    const cache = new PagedKVCache({ nKvHeads: nKv, headDim: hd, pageSize: ps, numPages, numLayers: 1 });
    const ids = ctx.map((_, b) => cache.addSequence(b));
    if (ctx.some((x) => x > 0)) cache.step(cache.fetch(ids, ctx));
    fillRandom(cache.keys(0), 5);
    fillRandom(cache.values(0), 6);
    const c = cache.fetch(ids, news);
    const T = c.totalTokens;
    const qkvData = new Float32Array(T * (nH + 2 * nKv) * hd);
    fillRandom(qkvData, 7);
    const qkv = tf.tensor2d(qkvData, [T, (nH + 2 * nKv) * hd]); // [T, (nH + 2 nKv) hd]
    const ra = { nHeads: nH, nKvHeads: nKv, headDim: hd, rope, qkNormEps: -1, collection: c, layerIdx: 0 };
    const fa = { nHeads: nH, nKvHeads: nKv, headDim: hd, scale: 1 / 8, mask: causal, collection: c, layerIdx: 0, variant: 'auto' };
    const ropeOnly = () => tf.engine().runKernel(RopeSplitStoreRagged, { qkv }, ra as unknown as tf.NamedAttrMap) as tf.Tensor;
    const attnOnly = (q: tf.Tensor) => tf.engine().runKernel(FlashAttentionRaggedPaged, { q }, fa as unknown as tf.NamedAttrMap) as tf.Tensor;
    const run = () => {
      const q = ropeOnly();
      const o = attnOnly(q);
      q.dispose();
      return o;
    };
    return { cache, run, ropeOnly, attnOnly, dispose: () => qkv.dispose() };
  };
  const core = async (name: string, numPages: number, ctx: number[], news: number[]) => {
    const p = prepare(numPages, ctx, news);
    const t = await timeIt(p.run, small ? 3 : 30, 2);
    rows.push({ name, ms: t.gpu, ...t });
    console.log(`${name}: ${t.gpu.toFixed(3)} ms GPU (wall ${t.wall.toFixed(3)}, batch ${t.batch.toFixed(3)})`);
    p.dispose();
  };
  await core('issue P1 prefill 1x512 (rope+store+attention)', 64, [0], [512]);
  await core('issue P2 ragged prefill 64,128,192,256', 64, [0, 0, 0, 0], [64, 128, 192, 256]);
  // D1 on pools of several sizes: every cache is built (and its host pools filled, seconds for the
  // big ones, while the GPU idles and clocks down) before any timing; then rounds that alternate
  // the pools, so each pool is timed at the same GPU clocks. Median over the rounds.
  const pools = small ? [1000] : [1000, 4000, 16000, 64000];
  const preps = pools.map((pages) => prepare(pages, Array(8).fill(1024), Array(8).fill(1)));
  const timeD1 = async (p: ReturnType<typeof prepare>) => {
    const all = (await timeIt(p.run, small ? 3 : 30, 2)).gpu;
    const rope = (await timeIt(p.ropeOnly, 30)).gpu;
    const q = p.ropeOnly();
    const attn = (await timeIt(() => p.attnOnly(q), 30)).gpu;
    q.dispose();
    return { all, rope, attn };
  };
  const res: { all: number; rope: number; attn: number }[][] = pools.map(() => []);
  for (let round = 0; round < (small ? 1 : 5); round++) {
    for (let i = 0; i < pools.length; i++) res[i].push(await timeD1(preps[i]));
  }
  const med = (r: { all: number; rope: number; attn: number }[], k: 'all' | 'rope' | 'attn') => median(r.map((x) => x[k]));
  pools.forEach((pages, i) => {
    const name = `issue D1 decode 8x1024, pool ${pages} pages`;
    const ms = med(res[i], 'all');
    rows.push({ name, ms, gpu: ms, rounds: res[i].map((x) => x.all) });
    console.log(`${name}: ${ms.toFixed(3)} ms GPU (rounds ${res[i].map((x) => x.all.toFixed(3)).join(' ')}); ` +
      `rope alone ${med(res[i], 'rope').toFixed(3)} ms, attention alone ${med(res[i], 'attn').toFixed(3)} ms`);
  });
  if (small) { preps.forEach((p) => p.dispose()); return; }
  const ratio = med(res[3], 'all') / med(res[0], 'all');
  rows.push({ name: 'issue D1 pool 64000 vs 1000 pages (time ratio)', ratio });
  console.log(`issue D1 pool 64000 vs 1000 pages: ${ratio.toFixed(3)}x the time`);
  // What a device copy of the whole pool did (as before it followed pageHighWater): 2 x 1 GiB
  // buffers. Timed last, since once they exist every pool's kernels are slower.
  const big = preps[3];
  (big.cache.deviceMirror as WebGpuKVMirror).ensureCapacity(64000);
  const fullBig = await timeD1(big), fullSmall = await timeD1(preps[0]);
  console.log(`issue D1 after growing the 64000-page pool's device copy to all pages (1 GiB per buffer): ` +
    `that pool ${fullBig.all.toFixed(3)} ms, the 1000-page pool ${fullSmall.all.toFixed(3)} ms GPU`);
  preps.forEach((p) => p.dispose());
}

async function main(): Promise<void> {
  // Dawn quantizes timestamps unless told not to.
  if (!(await initWebGpuNode(['disable-dawn-features=timestamp_quantization']))) throw new Error(`webgpu unavailable: ${webGpuNodeStatus().reason}`);
  registerAllKernels();
  await tf.setBackend('webgpu');
  const st = webGpuNodeStatus();
  console.log(`adapter: ${JSON.stringify(st.adapter)}; subgroups: ${st.features.includes('subgroups')}`);
  if (!args.includes('--issue')) {
    await decode();
    await prefill();
    await rope();
  }
  await issueShapes();
  if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify({ rows }, null, 2)}\n`);
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
