/**
 * The tensor-core prefill (kernels/webgpu/flash_prefill_sgmat_wgsl.ts) through its plain-WGSL
 * emulation of the subgroup-matrix ops (subgroup_matrix_emulation.ts: each lane holds 8 elements of
 * a 16 x 16 matrix, as on hardware; layouts as the H200 does them, bench/device/sgmat_probe.ts), on
 * lavapipe, against a float64 reference from the cache's own decoded rows: float16 caches (the
 * kernel's case), a float32 cache narrowed on the fly, GQA 1 / 2 / 4 / 8, head dims 16 / 32 / 64 /
 * 128, masks, key tiles of 32 and 64, scrambled pages, rows whose max grows past the rescale
 * threshold, both twin-lane exchanges (shuffle, shared memory). Tolerance 5e-3: Q, K, V and P are rounded to f16
 * (half-precision flash attention's class; the f32 tiles pass at 2e-5).
 */
import * as tf from '@tensorflow/tfjs';
import type { KVCacheDType } from '../../core/kv_dtype';
import { FlashAttentionRaggedPaged, type FlashAttentionRaggedPagedAttrs } from '../../kernels/kernel_names';
import { webgpuFlashTuning } from '../../kernels/webgpu/flash_plan';
import type { MaskSpec } from '../../lib/types';
import { attentionRef, rand, relErr, scrambledCache, startWebGpu, stopWebGpu } from './webgpu_support';

const causal: MaskSpec = { variant: 'causal', window: 0, chunk: 0 };
const TOL = 5e-3;

interface Case { dtype: KVCacheDType; nH: number; nKv: number; D: number; ps: number; seqs: [number, number][]; mask: MaskSpec; qScale?: number }

/** Relative error of the prefill over `k` (the kernel chosen by the current flags) against float64. */
async function runCase(k: Case, seed: number): Promise<number> {
  const { nH, nKv, D, ps, seqs } = k;
  const need = seqs.reduce((n, [s, t]) => n + Math.ceil((s + t) / ps) + 1, 0);
  const cache = scrambledCache(nKv, D, ps, need + 2, 1, { dtype: k.dtype });
  const ids = seqs.map((_, b) => cache.addSequence(b));
  let sd = seed;
  const write = (counts: number[]) => {
    const c = cache.fetch(ids, counts);
    cache.writeTokens(0, c, rand(c.totalTokens * nKv * D, ++sd), rand(c.totalTokens * nKv * D, ++sd)); // [T, nKv * D] each
    return c;
  };
  cache.step(write(seqs.map(([s]) => s)));
  const c = write(seqs.map(([, t]) => t));
  const kv = seqs.map(([s, t], b) => { // readSequence gives [nKv, L, D]; the reference wants [L, nKv, D]
    const L = s + t, r = cache.readSequence(0, c, b, L);
    const k2 = new Float32Array(L * nKv * D), v2 = new Float32Array(L * nKv * D);
    for (let h = 0; h < nKv; h++) for (let j = 0; j < L; j++) {
      k2.set(r.k.subarray((h * L + j) * D, (h * L + j + 1) * D), (j * nKv + h) * D);
      v2.set(r.v.subarray((h * L + j) * D, (h * L + j + 1) * D), (j * nKv + h) * D);
    }
    return { k: k2, v: v2 };
  });
  const q = rand(c.totalTokens * nH * D, ++sd).map((v) => v * (k.qScale ?? 1)); // [T, nH * D]
  const attrs: FlashAttentionRaggedPagedAttrs = { nHeads: nH, nKvHeads: nKv, headDim: D, scale: 1 / Math.sqrt(D), mask: k.mask, collection: c, layerIdx: 0, variant: 'prefill' };
  const qt = tf.tensor2d(q, [c.totalTokens, nH * D]);
  const out = tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const got = await out.data();
  tf.dispose([qt, out]);
  cache.attachDeviceMirror(null);
  return relErr(got, attentionRef(q, c, kv, nH, nKv, D, attrs.scale, k.mask));
}

jest.setTimeout(600000);

describe('sgmat prefill [webgpu, emulated subgroup matrices]', () => {
  const t = webgpuFlashTuning;
  const saved = { ...t };
  beforeAll(async () => {
    await startWebGpu();
    process.env.TFJS_ATTENTION_WEBGPU_PREFILL = 'sgmat';
    Object.assign(t, { prefillSgmat: true, prefillSgmatEmulate: true });
  });
  afterAll(() => {
    delete process.env.TFJS_ATTENTION_WEBGPU_PREFILL;
    Object.assign(t, saved);
    stopWebGpu();
  });

  // short sequences: the emulation runs every product through workgroup memory (lavapipe is slow at it)
  const seqs: [number, number][] = [[21, 13], [0, 9], [5, 0]];
  const two = { prefillSgmatSubgroups: 2, prefillSgmatKeys: 32 };
  const cases: [string, Case, Partial<typeof t>][] = [
    ['f16 GQA 1 d16 sliding window 17, 64 keys, twin lanes through shared memory', { dtype: 'float16', nH: 2, nKv: 2, D: 16, ps: 16, seqs: [[0, 40], [17, 5]], mask: { variant: 'sliding_window_causal', window: 17, chunk: 0 } },
      { ...two, prefillSgmatKeys: 64, prefillSgmatExchange: 'shared' }],
    ['f16 GQA 4 d64 pages of 7, causal, 2 subgroups, 32 keys', { dtype: 'float16', nH: 4, nKv: 1, D: 64, ps: 7, seqs, mask: causal }, two],
    ['f16 GQA 8 d128 chunked 16', { dtype: 'float16', nH: 8, nKv: 1, D: 128, ps: 16, seqs: [[3, 20]], mask: { variant: 'chunked_causal', window: 0, chunk: 16 } }, two],
    ['f32 cache narrowed on the fly, GQA 2 d32 no mask, scores past the rescale threshold (q x 40)', { dtype: 'float32', nH: 2, nKv: 1, D: 32, ps: 16, seqs: [[10, 12], [40, 3]], mask: { variant: 'null', window: 0, chunk: 0 }, qScale: 40 }, two],
  ];
  // lavapipe compiles the emulated shader slowly (d16: ~1.5 min, d64: ~8 min on a loaded 2-core machine), so CI runs
  // the first case; TFJS_ATTENTION_SPEC_SGMAT_ALL=1 runs them all. The real kernel is checked on the H200 for every
  // shape by bench/device/sgmat_prefill_check.ts (bench/device/NOTES.md, session 6).
  const all = process.env.TFJS_ATTENTION_SPEC_SGMAT_ALL === '1';
  cases.forEach(([name, k, tune], i) => {
    (i === 0 || all ? it : it.skip)(name, async () => {
      const before = { ...t };
      Object.assign(t, tune);
      try {
        expect(await runCase(k, 40 + i)).toBeLessThan(TOL);
      } finally {
        Object.assign(t, before);
      }
    });
  });
});
