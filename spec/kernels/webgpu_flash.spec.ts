/**
 * FlashAttentionRaggedPaged on webgpu (Dawn over the software Vulkan driver in CI) against an
 * exact float64 reference: page sizes 1, 16, 128 with scrambled pages, contexts crossing pages,
 * empty and one-token sequences, GQA ratios, every mask, both paths (prefill tiles and split-K
 * decode), with and without subgroup reductions, several head sizes (and the scalar kernel of
 * head dims that are not a multiple of 4); and against the composite
 * reference (kernels/reference) run on the cpu backend.
 */
import * as tf from '@tensorflow/tfjs';
import { FlashAttentionRaggedPaged, type FlashAttentionRaggedPagedAttrs, type FlashAttentionVariant } from '../../kernels/kernel_names';
import { flashAttentionRaggedPaged } from '../../kernels/ops';
import { flashAttentionRaggedPagedReference } from '../../kernels/reference/FlashAttentionRaggedPaged';
import { webgpuFlashTuning } from '../../kernels/webgpu/flash_plan';
import type { MaskSpec } from '../../lib/types';
import { attentionRef, rand, relErr, scrambledCache, startWebGpu, stopWebGpu } from './webgpu_support';

interface Case {
  nH: number; nKv: number; D: number; ps: number;
  /** per sequence: tokens already cached, new tokens this step */
  seqs: [number, number][];
  mask: MaskSpec;
  variant: FlashAttentionVariant;
}

const causal: MaskSpec = { variant: 'causal', window: 0, chunk: 0 };

async function runCase(k: Case, seed: number): Promise<number> {
  const { nH, nKv, D, ps, seqs } = k;
  const need = seqs.reduce((n, [s, t]) => n + Math.ceil((s + t) / ps) + 1, 0);
  const cache = scrambledCache(nKv, D, ps, need + 2);
  const ids = seqs.map((_, b) => cache.addSequence(b));
  const model = seqs.map(() => ({ k: [] as number[], v: [] as number[] }));
  let sd = seed;
  const writeStep = (counts: number[]) => {
    const c = cache.fetch(ids, counts);
    const kRows = rand(c.totalTokens * nKv * D, ++sd); // [T, nKv, D]
    const vRows = rand(c.totalTokens * nKv * D, ++sd);
    cache.writeTokens(0, c, kRows, vRows);
    for (let b = 0; b < ids.length; b++) {
      const from = c.rowOffsets[b] * nKv * D, to = c.rowOffsets[b + 1] * nKv * D;
      model[b].k.push(...kRows.subarray(from, to));
      model[b].v.push(...vRows.subarray(from, to));
    }
    return c;
  };
  cache.step(writeStep(seqs.map(([s]) => s)));
  const c = writeStep(seqs.map(([, t]) => t));
  const T = c.totalTokens;
  const q = rand(T * nH * D, ++sd); // [T, nH * D]
  const scale = 1 / Math.sqrt(D);
  const attrs: FlashAttentionRaggedPagedAttrs = { nHeads: nH, nKvHeads: nKv, headDim: D, scale, mask: k.mask, collection: c, layerIdx: 0, variant: k.variant };
  const qt = tf.tensor2d(q, [T, nH * D]);
  const out = tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  expect(out.shape).toEqual([T, nH * D]);
  const got = await out.data();
  tf.dispose([qt, out]);
  const kv = model.map((m) => ({ k: Float32Array.from(m.k), v: Float32Array.from(m.v) }));
  // The composite reference (kernels/reference) on the cpu backend agrees too.
  await tf.setBackend('cpu');
  const qc = tf.tensor2d(q, [T, nH * D]);
  const composite = flashAttentionRaggedPagedReference(qc, attrs);
  const viaComposite = await composite.data();
  tf.dispose([qc, composite]);
  await tf.setBackend('webgpu');
  expect(relErr(got, viaComposite)).toBeLessThan(1e-4);
  return relErr(got, attentionRef(q, c, kv, nH, nKv, D, scale, k.mask));
}

const TOL = 2e-5;

// Shader compiles on the software driver take seconds to a minute each; pipelines are cached.
jest.setTimeout(600000);

describe('FlashAttentionRaggedPaged [webgpu]', () => {
  beforeAll(startWebGpu);
  afterAll(stopWebGpu);

  const seqs: [number, number][] = [[37, 21], [0, 0], [5, 1], [0, 45], [130, 3]];
  for (const ps of [1, 7, 16, 128]) {
    for (const variant of ['prefill', 'decode', 'auto'] as const) {
      it(`causal, GQA 4, pageSize ${ps}, scrambled pages, ${variant}`, async () => {
        expect(await runCase({ nH: 8, nKv: 2, D: 64, ps, seqs, mask: causal, variant }, ps)).toBeLessThan(TOL);
      });
    }
  }

  const masks: MaskSpec[] = [
    { variant: 'null', window: 0, chunk: 0 },
    { variant: 'sliding_window_causal', window: 7, chunk: 0 },
    { variant: 'sliding_window', window: 9, chunk: 0 },
    { variant: 'chunked_causal', window: 0, chunk: 16 },
  ];
  for (const mask of masks) {
    for (const variant of ['prefill', 'decode'] as const) {
      it(`mask ${mask.variant}, ${variant}`, async () => {
        expect(await runCase({ nH: 8, nKv: 2, D: 64, ps: 16, seqs, mask, variant }, 11)).toBeLessThan(TOL);
      });
    }
  }

  for (const [nH, nKv, D] of [[4, 4, 32], [6, 2, 64], [8, 1, 16], [4, 2, 80], [2, 1, 256]] as const) {
    for (const variant of ['prefill', 'decode'] as const) {
      it(`nHeads ${nH}, nKvHeads ${nKv}, headDim ${D}, ${variant}`, async () => {
        expect(await runCase({ nH, nKv, D, ps: 16, seqs: [[20, 13], [3, 1], [0, 9]], mask: causal, variant }, D)).toBeLessThan(TOL);
      });
    }
  }

  // Head dims that are not a multiple of 4: the scalar kernel, every mask, page sizes 1 and 7.
  for (const [nH, nKv, D, ps] of [[4, 2, 6, 7], [3, 3, 10, 1], [8, 2, 2, 16], [2, 1, 33, 16]] as const) {
    for (const mask of [causal, ...masks]) {
      it(`headDim ${D} (scalar kernel), nHeads ${nH}/${nKv}, pageSize ${ps}, mask ${mask.variant}`, async () => {
        const cs: [number, number][] = [[37, 21], [0, 0], [5, 1], [0, 45], [130, 3]];
        expect(await runCase({ nH, nKv, D, ps, seqs: cs, mask, variant: 'auto' }, D + ps)).toBeLessThan(TOL);
      });
    }
  }

  it('decode splits long contexts across workgroups and merges them', async () => {
    const t = webgpuFlashTuning;
    const saved = [t.decodeMinSplitKeys, t.decodeTargetWorkgroups];
    t.decodeMinSplitKeys = 32;
    t.decodeTargetWorkgroups = 512;
    try {
      expect(await runCase({ nH: 8, nKv: 2, D: 64, ps: 16, seqs: [[300, 1], [17, 1], [0, 1], [200, 2]], mask: causal, variant: 'decode' }, 5)).toBeLessThan(TOL);
      const swc: MaskSpec = { variant: 'sliding_window_causal', window: 100, chunk: 0 };
      expect(await runCase({ nH: 8, nKv: 2, D: 64, ps: 16, seqs: [[300, 1], [150, 1]], mask: swc, variant: 'decode' }, 6)).toBeLessThan(TOL);
    } finally {
      [t.decodeMinSplitKeys, t.decodeTargetWorkgroups] = saved;
    }
  });

  it('without subgroups: row maxima in shared memory, decode with shared-memory tiles', async () => {
    webgpuFlashTuning.subgroups = false;
    try {
      expect(await runCase({ nH: 8, nKv: 2, D: 64, ps: 16, seqs, mask: causal, variant: 'prefill' }, 3)).toBeLessThan(TOL);
      expect(await runCase({ nH: 8, nKv: 2, D: 64, ps: 16, seqs, mask: causal, variant: 'decode' }, 4)).toBeLessThan(TOL);
      const sw: MaskSpec = { variant: 'sliding_window', window: 9, chunk: 0 };
      expect(await runCase({ nH: 6, nKv: 2, D: 80, ps: 16, seqs, mask: sw, variant: 'decode' }, 5)).toBeLessThan(TOL);
    } finally {
      webgpuFlashTuning.subgroups = true;
    }
  });

  it('rejects bad attrs naming the kernel and both values', () => {
    const cache = scrambledCache(2, 16, 4, 8);
    cache.addSequence(0);
    const c = cache.fetch([0], [3]);
    const q = tf.zeros([3, 4 * 16]);
    const attrs = { nHeads: 4, nKvHeads: 2, headDim: 16, scale: 1, mask: causal, collection: c, layerIdx: 0, variant: 'auto' };
    expect(() => flashAttentionRaggedPaged(q as tf.Tensor2D, { ...attrs, nHeads: 3 } as FlashAttentionRaggedPagedAttrs))
      .toThrow(/\[FlashAttentionRaggedPaged\] nHeads \(3\) must be a multiple of nKvHeads \(2\)/);
    expect(() => flashAttentionRaggedPaged(q as tf.Tensor2D, { ...attrs, layerIdx: 1 } as FlashAttentionRaggedPagedAttrs))
      .toThrow(/layerIdx \(1\) must be an integer in \[0, 1\)/);
    q.dispose();
  });
});
