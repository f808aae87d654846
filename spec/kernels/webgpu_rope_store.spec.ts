/**
 * RopeSplitStoreRagged on webgpu against an exact float64 reference (both rope layouts, partial
 * rotary, qk RMSNorm, page sizes 1 / 16 / 128 with scrambled pages, empty and one-token
 * sequences), the K/V it stores read back through the cache, and a prefill + decode pipeline
 * (with a forked sequence, so copy-on-write runs on the device) through both webgpu kernels.
 */
import type { RopeSplitStoreRaggedAttrs } from '../../kernels/kernel_names';
import { ropeSplitStoreRagged } from '../../kernels/ops';
import * as tf from '@tensorflow/tfjs';
import {
  FlashAttentionRaggedPaged, type FlashAttentionRaggedPagedAttrs, RopeSplitStoreRagged, type RopeSplitStoreRaggedAttrs,
} from '../../kernels/kernel_names';
import { syncWebGpuKVCache } from '../../kernels/webgpu/kv_mirror';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { WebGpuKVMirror } from '../../kernels/webgpu/kv_mirror';
import type { PagedKVCollection } from '../../lib/kv_cache/collection';
import type { MaskSpec } from '../../lib/types';
import { attentionRef, rand, relErr, ropeRef, ropeTables, scrambledCache, startWebGpu, stopWebGpu } from './webgpu_support';

jest.setTimeout(600000);

interface Cfg { nH: number; nKv: number; D: number; rot: number; interleaved: boolean; eps: number; ps: number }

/** Per sequence, K and V rows `[len, nKv, D]` as the reference computes them. */
type Model = { k: number[]; v: number[] }[];

/** Runs the webgpu kernel on random qkv for `c`; returns q and records the reference K/V in `model`. */
async function ropeStep(cfg: Cfg, cache: PagedKVCache, c: PagedKVCollection, model: Model, seed: number) {
  const { nH, nKv, D, eps } = cfg;
  const W = (nH + 2 * nKv) * D;
  const T = c.totalTokens;
  const qkv = rand(T * W, seed); // [T, (nH + 2 nKv) D]
  const rope = ropeTables(D, cfg.rot, 512, cfg.interleaved);
  const qw = eps >= 0 ? rand(D, seed + 1).map((x) => 1 + 0.5 * x) : undefined;
  const kw = eps >= 0 ? rand(D, seed + 2).map((x) => 1 + 0.5 * x) : undefined;
  const attrs: RopeSplitStoreRaggedAttrs = { nHeads: nH, nKvHeads: nKv, headDim: D, rope, qkNormEps: eps, collection: c, layerIdx: 0 };
  const inputs: tf.NamedTensorMap = { qkv: tf.tensor2d(qkv, [T, W]) };
  if (qw && kw) { inputs.qNormWeight = tf.tensor1d(qw); inputs.kNormWeight = tf.tensor1d(kw); }
  const out = tf.engine().runKernel(RopeSplitStoreRagged, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  expect(out.shape).toEqual([T, nH * D]);
  const q = (await out.data()) as Float32Array;
  tf.dispose([out, ...Object.values(inputs)]);
  const qRef = new Float64Array(T * nH * D);
  for (let b = 0; b < c.seqIds.length; b++) {
    for (let r = c.rowOffsets[b]; r < c.rowOffsets[b + 1]; r++) {
      const pos = c.startPositions[b] + r - c.rowOffsets[b];
      const head = (slot: number) => Float64Array.from(qkv.subarray(r * W + slot * D, r * W + (slot + 1) * D));
      for (let h = 0; h < nH; h++) qRef.set(ropeRef(head(h), pos, rope, qw, eps), (r * nH + h) * D);
      for (let h = 0; h < nKv; h++) model[b].k.push(...ropeRef(head(nH + h), pos, rope, kw, eps));
      for (let h = 0; h < nKv; h++) model[b].v.push(...head(nH + nKv + h));
    }
  }
  return { q, qRef };
}

/** Compares every sequence's cached K/V (read back on the host) with the model. */
async function expectCacheMatches(cache: PagedKVCache, ids: number[], model: Model, cfg: Cfg): Promise<void> {
  await syncWebGpuKVCache(cache);
  const c = cache.fetch(ids, ids.map(() => 0));
  ids.forEach((_, b) => {
    const len = model[b].k.length / (cfg.nKv * cfg.D);
    const { k, v } = cache.readSequence(0, c, b, len); // [nKv, len, D]
    const toHeadMajor = (rows: number[]) => {
      const out = new Float64Array(rows.length);
      for (let p = 0; p < len; p++) for (let h = 0; h < cfg.nKv; h++) for (let d = 0; d < cfg.D; d++)
        out[(h * len + p) * cfg.D + d] = rows[(p * cfg.nKv + h) * cfg.D + d];
      return out;
    };
    expect(relErr(k, toHeadMajor(model[b].k))).toBeLessThan(1e-5);
    expect(relErr(v, toHeadMajor(model[b].v))).toBeLessThan(1e-6);
  });
}

/** Causal attention of `q` over the cache on the device, checked against the float64 reference. */
async function attendAndCheck(cfg: Cfg, c: PagedKVCollection, q: Float32Array, m: Model): Promise<void> {
  const mask: MaskSpec = { variant: 'causal', window: 0, chunk: 0 };
  const attrs: FlashAttentionRaggedPagedAttrs = { nHeads: cfg.nH, nKvHeads: cfg.nKv, headDim: cfg.D, scale: 0.125, mask, collection: c, layerIdx: 0, variant: 'auto' };
  const qt = tf.tensor2d(q, [c.totalTokens, cfg.nH * cfg.D]); // [T, nH * D]
  const out = tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const got = await out.data();
  tf.dispose([qt, out]);
  const kv = m.map((x) => ({ k: Float32Array.from(x.k), v: Float32Array.from(x.v) }));
  expect(relErr(got, attentionRef(q, c, kv, cfg.nH, cfg.nKv, cfg.D, 0.125, mask))).toBeLessThan(2e-5);
}

describe('RopeSplitStoreRagged [webgpu]', () => {
  beforeAll(startWebGpu);
  afterAll(stopWebGpu);

  const cfgs: Cfg[] = [
    { nH: 8, nKv: 2, D: 64, rot: 64, interleaved: false, eps: -1, ps: 16 },
    { nH: 8, nKv: 2, D: 64, rot: 64, interleaved: true, eps: -1, ps: 1 },
    { nH: 4, nKv: 4, D: 32, rot: 16, interleaved: false, eps: 1e-6, ps: 128 },
    { nH: 6, nKv: 2, D: 64, rot: 32, interleaved: true, eps: 1e-5, ps: 16 },
  ];
  for (const cfg of cfgs) {
    const name = `${cfg.nH}/${cfg.nKv} heads, headDim ${cfg.D}, rotary ${cfg.rot}${cfg.interleaved ? ' interleaved' : ''}` +
      `${cfg.eps >= 0 ? ', qk-norm' : ''}, pageSize ${cfg.ps}`;
    it(`rotates q and k, stores k and v in scrambled pages (${name})`, async () => {
      const seqs: [number, number][] = [[19, 14], [0, 0], [4, 1], [0, 23]];
      const need = seqs.reduce((n, [s, t]) => n + Math.ceil((s + t) / cfg.ps) + 1, 0);
      const cache = scrambledCache(cfg.nKv, cfg.D, cfg.ps, need);
      const ids = seqs.map((_, b) => cache.addSequence(b));
      const model: Model = seqs.map(() => ({ k: [], v: [] }));
      // Prior context written on the host, then one step on the device.
      const c0 = cache.fetch(ids, seqs.map(([s]) => s));
      const k0 = rand(c0.totalTokens * cfg.nKv * cfg.D, 1), v0 = rand(c0.totalTokens * cfg.nKv * cfg.D, 2);
      cache.writeTokens(0, c0, k0, v0);
      ids.forEach((_, b) => {
        const [f, t] = [c0.rowOffsets[b] * cfg.nKv * cfg.D, c0.rowOffsets[b + 1] * cfg.nKv * cfg.D];
        model[b].k.push(...k0.subarray(f, t));
        model[b].v.push(...v0.subarray(f, t));
      });
      cache.step(c0);
      const c = cache.fetch(ids, seqs.map(([, t]) => t));
      const { q, qRef } = await ropeStep(cfg, cache, c, model, 3);
      expect(relErr(q, qRef)).toBeLessThan(1e-5);
      cache.step(c);
      await expectCacheMatches(cache, ids, model, cfg);
    });
  }

  it('prefill then decode through both kernels, with a forked sequence (copy on write on the device)', async () => {
    const cfg: Cfg = { nH: 8, nKv: 2, D: 64, rot: 64, interleaved: false, eps: -1, ps: 16 };
    const cache = scrambledCache(cfg.nKv, cfg.D, cfg.ps, 32);
    const ids = [cache.addSequence(0), cache.addSequence(1)];
    const model: Model = [{ k: [], v: [] }, { k: [], v: [] }];
    const attend = (c: PagedKVCollection, q: Float32Array, m: Model) => attendAndCheck(cfg, c, q, m);
    let c = cache.fetch(ids, [21, 37]); // prefill
    let r = await ropeStep(cfg, cache, c, model, 10);
    expect(relErr(r.q, r.qRef)).toBeLessThan(1e-5);
    await attend(c, r.q, model);
    cache.step(c);
    // Fork sequence 0 mid-page: its next token copies the shared page (on the GPU).
    ids.push(cache.forkSequence(0, 2));
    model.push({ k: [...model[0].k], v: [...model[0].v] });
    for (let step = 0; step < 3; step++) {
      c = cache.fetch(ids, [1, 1, 1]);
      r = await ropeStep(cfg, cache, c, model, 20 + step);
      expect(relErr(r.q, r.qRef)).toBeLessThan(1e-5);
      await attend(c, r.q, model);
      cache.step(c);
    }
    await expectCacheMatches(cache, ids, model, cfg);
  });

  it('the device copy holds the pages in use, not the pool, and grows on the GPU without losing K/V', async () => {
    const cfg: Cfg = { nH: 4, nKv: 2, D: 32, rot: 32, interleaved: false, eps: -1, ps: 4 };
    const cache = new PagedKVCache({ nKvHeads: cfg.nKv, headDim: cfg.D, pageSize: cfg.ps, numPages: 4000 });
    const capacity = () => (cache.deviceMirror as WebGpuKVMirror).capacityPages;
    const ids = [cache.addSequence(0)];
    const model: Model = [{ k: [], v: [] }];
    const run = async (c: PagedKVCollection, seed: number) => {
      const r = await ropeStep(cfg, cache, c, model, seed);
      expect(relErr(r.q, r.qRef)).toBeLessThan(1e-5);
      await attendAndCheck(cfg, c, r.q, model);
      cache.step(c);
    };
    await run(cache.fetch(ids, [254]), 40); // pages 0..63, the last one half full
    expect(cache.pageHighWater).toBe(64);
    expect(capacity()).toBe(64);
    // A fork shares page 63; the next token copies it to page 64 on the device: growth inside copyPage.
    ids.push(cache.forkSequence(0));
    model.push({ k: [...model[0].k], v: [...model[0].v] });
    await run(cache.fetch(ids, [1, 1]), 41);
    expect(capacity()).toBe(128);
    // A new sequence needs pages 65..139: growth when the kernel looks the mirror up.
    ids.push(cache.addSequence(2));
    model.push({ k: [], v: [] });
    await run(cache.fetch(ids, [1, 1, 300]), 42);
    expect(cache.pageHighWater).toBe(140);
    expect(capacity()).toBe(256);
    await run(cache.fetch(ids, [1, 1, 1]), 43);
    await expectCacheMatches(cache, ids, model, cfg);
  });

  it('host reads of a cache the GPU wrote need syncWebGpuKVCache first', async () => {
    const cfg: Cfg = { nH: 4, nKv: 2, D: 32, rot: 32, interleaved: false, eps: -1, ps: 16 };
    const cache = scrambledCache(cfg.nKv, cfg.D, cfg.ps, 4);
    cache.addSequence(0);
    const c = cache.fetch([0], [5]);
    await ropeStep(cfg, cache, c, [{ k: [], v: [] }], 30);
    expect(() => cache.keys(0)).toThrow(/syncWebGpuKVCache/);
  });

  it('rejects bad attrs naming the kernel and both values', () => {
    const cache = scrambledCache(2, 16, 4, 4);
    cache.addSequence(0);
    const c = cache.fetch([0], [3]);
    const attrs = { nHeads: 4, nKvHeads: 2, headDim: 16, rope: ropeTables(16, 16, 8, false), qkNormEps: -1, collection: c, layerIdx: 0 };
    const x = tf.zeros([3, 8 * 16]);
    const y = tf.zeros([3, 7 * 16]);
    expect(() => ropeSplitStoreRagged(y as tf.Tensor2D, attrs as RopeSplitStoreRaggedAttrs))
      .toThrow(/\[RopeSplitStoreRagged\] qkv shape \[3,112\] must be \[totalTokens \(3\), 128\]/);
    expect(() => ropeSplitStoreRagged(x as tf.Tensor2D, { ...attrs, qkNormEps: 1e-6 } as RopeSplitStoreRaggedAttrs))
      .toThrow(/qkNormEps \(0.000001\) >= 0 needs qNormWeight and kNormWeight inputs/);
    tf.dispose([x, y]);
  });
});
