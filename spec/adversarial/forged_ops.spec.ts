/**
 * Hostile calls of the exported low-level ops (issue 14, item 2), on every path: cpu (native addon
 * and TypeScript), wasm, webgpu (Dawn on the software Vulkan driver) and the composite references.
 * Each call must be rejected before any write with an error naming the argument, the same text on
 * every path, and leave the cache byte-identical. Then the native entry points called directly
 * with forged arrays: a RangeError naming the array, never an out-of-bounds read or write.
 */
import * as tf from '@tensorflow/tfjs';

import { setCpuKernelImpl, nativeKernels } from '../../kernels/cpu/native';
import { ATTN_ARG, packInts, ROPE_ARG, TRAIN_ARG } from '../../kernels/cpu/native_args';
import type { FlashAttentionRaggedPagedAttrs, RopeSplitStoreRaggedAttrs } from '../../kernels/kernel_names';
import { flashAttentionRaggedPaged, ropeSplitStoreRagged } from '../../kernels/ops';
import { projectionMatMul } from '../../kernels/projection_matmul';
import { flashAttentionRagged, ropeRagged } from '../../kernels/train_ops';
import { syncWebGpuKVCache } from '../../kernels/webgpu/kv_mirror';
import { useBackend } from '../../lib/backends/select';
import type { PagedKVCollection } from '../../lib/kv_cache/collection';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { rand, ropeTables, startWebGpu, stopWebGpu } from '../kernels/webgpu_support';

const NH = 4, NKV = 2, D = 16, PS = 4, PAGES = 8;
const causal = { variant: 'causal' as const, window: 0, chunk: 0 };
const PATHS = ['cpu-native', 'cpu-ts', 'wasm', 'webgpu', 'composite'] as const;
type Path = typeof PATHS[number];

async function enter(path: Path): Promise<void> {
  tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', path === 'composite');
  setCpuKernelImpl(path === 'cpu-native' && nativeKernels ? 'native' : path === 'cpu-native' ? 'auto' : 'ts');
  if (path === 'webgpu') await startWebGpu();
  else await useBackend(path === 'wasm' ? 'wasm' : 'cpu');
}

/** A cache with sequence 0 (6 tokens committed) and sequence 1 (3), and a snapshot of its pools. */
function world() {
  const cache = new PagedKVCache({ nKvHeads: NKV, headDim: D, pageSize: PS, numPages: PAGES, numLayers: 1 });
  const rope = ropeTables(D, D, 64, false);
  cache.addSequence(0); cache.addSequence(1);
  const c0 = cache.fetch([0, 1], [6, 3]);
  const qkv = tf.tensor2d(rand(9 * (NH + 2 * NKV) * D, 3), [9, (NH + 2 * NKV) * D]);
  const attrs = (c: PagedKVCollection): RopeSplitStoreRaggedAttrs => ({ nHeads: NH, nKvHeads: NKV, headDim: D, rope, qkNormEps: -1, collection: c, layerIdx: 0 });
  ropeSplitStoredDispose(qkv, attrs(c0));
  cache.step(c0);
  qkv.dispose();
  const snapshot = async () => {
    await syncWebGpuKVCache(cache);  // webgpu: bring the device's K/V back first (no-op elsewhere)
    return [Float32Array.from(cache.keys(0)), Float32Array.from(cache.values(0))];
  };
  return { cache, rope, attrs, snapshot };
}

function ropeSplitStoredDispose(qkv: tf.Tensor2D, a: RopeSplitStoreRaggedAttrs): void {
  ropeSplitStoreRagged(qkv, a).dispose();
}

/** The error message of `fn` (it must throw). */
function messageOf(fn: () => unknown): string {
  try { fn(); } catch (e) { return (e as Error).message; }
  throw new Error('expected the call to throw');
}

interface Case { name: string; expect: RegExp; run: (w: ReturnType<typeof world>) => void }

const CASES: Case[] = [
  {
    name: 'stale view: its sequence released and the page reused by another sequence',
    expect: /\[PagedKVCache\] RopeSplitStoreRagged: stale collection: sequence seqIds\[0\] \(1\) was released since the fetch/,
    run: (w) => {
      const stale = w.cache.fetch([1], [1]);
      w.cache.releaseSequence(1);
      w.cache.addSequence(2);
      w.cache.step(w.cache.fetch([2], [3]));  // takes sequence 1's freed page
      const qkv = tf.zeros([1, (NH + 2 * NKV) * D]) as tf.Tensor2D;
      try { ropeSplitStoreRagged(qkv, w.attrs(stale)); } finally { qkv.dispose(); }
    },
  },
  {
    name: 'hand-built view whose maxContext understates its start positions',
    expect: /\[PagedKVCache\] RopeSplitStoreRagged: collection was not made by fetch of this cache/,
    run: (w) => {
      const c = w.cache.fetch([0], [1]);
      const forged = { ...c, startPositions: Int32Array.of(4000), maxContext: 1 } as PagedKVCollection;
      const qkv = tf.zeros([1, (NH + 2 * NKV) * D]) as tf.Tensor2D;
      try { ropeSplitStoreRagged(qkv, w.attrs(forged)); } finally { qkv.dispose(); }
    },
  },
  {
    name: 'attention over a hand-built view reaching past its pages',
    expect: /\[PagedKVCache\] FlashAttentionRaggedPaged: collection was not made by fetch of this cache/,
    run: (w) => {
      const c = w.cache.fetch([0], [1]);
      const forged = { ...c, startPositions: Int32Array.of(40) } as PagedKVCollection;
      const q = tf.zeros([1, NH * D]) as tf.Tensor2D;
      const a: FlashAttentionRaggedPagedAttrs = { nHeads: NH, nKvHeads: NKV, headDim: D, scale: 0.25, mask: causal, collection: forged, layerIdx: 0, variant: 'auto' };
      try { flashAttentionRaggedPaged(q, a); } finally { q.dispose(); }
    },
  },
  {
    name: 'cos/sin tables shorter than the positions written',
    expect: /\[RopeSplitStoreRagged\] rope.cos \/ rope.sin hold 16 \/ 16 values, positions 0..6 need 56/,
    run: (w) => {
      const c = w.cache.fetch([0], [1]);
      const short = { ...w.rope, cos: w.rope.cos.subarray(0, 16), sin: w.rope.sin.subarray(0, 16) };
      const qkv = tf.zeros([1, (NH + 2 * NKV) * D]) as tf.Tensor2D;
      try { ropeSplitStoreRagged(qkv, { ...w.attrs(c), rope: short }); } finally { qkv.dispose(); }
    },
  },
  {
    name: 'start position beyond the rope tables',
    expect: /\[RopeSplitStoreRagged\] positions up to 6 need rope.maxPositions >= 7, it is 4/,
    run: (w) => {
      const c = w.cache.fetch([0], [1]);
      const qkv = tf.zeros([1, (NH + 2 * NKV) * D]) as tf.Tensor2D;
      try { ropeSplitStoreRagged(qkv, { ...w.attrs(c), rope: { ...w.rope, maxPositions: 4 } }); } finally { qkv.dispose(); }
    },
  },
  {
    name: 'disposed qkv',
    expect: /\[RopeSplitStoreRagged\] qkv \(shape \[1,128\]\) was disposed before the call/,
    run: (w) => {
      const c = w.cache.fetch([0], [1]);
      const qkv = tf.zeros([1, (NH + 2 * NKV) * D]) as tf.Tensor2D;
      qkv.dispose();
      ropeSplitStoreRagged(qkv, w.attrs(c));
    },
  },
  {
    name: 'disposed q',
    expect: /\[FlashAttentionRaggedPaged\] q \(shape \[1,64\]\) was disposed before the call/,
    run: (w) => {
      const c = w.cache.fetch([0], [1]);
      const q = tf.zeros([1, NH * D]) as tf.Tensor2D;
      q.dispose();
      flashAttentionRaggedPaged(q, { nHeads: NH, nKvHeads: NKV, headDim: D, scale: 0.25, mask: causal, collection: c, layerIdx: 0, variant: 'auto' });
    },
  },
  {
    name: 'layer outside the cache',
    expect: /\[FlashAttentionRaggedPaged\] layerIdx \(3\) must be an integer in \[0, 1\)/,
    run: (w) => {
      const c = w.cache.fetch([0], [1]);
      const q = tf.zeros([1, NH * D]) as tf.Tensor2D;
      try { flashAttentionRaggedPaged(q, { nHeads: NH, nKvHeads: NKV, headDim: D, scale: 0.25, mask: causal, collection: c, layerIdx: 3, variant: 'auto' }); } finally { q.dispose(); }
    },
  },
  {
    name: 'training attention with a disposed k',
    expect: /\[flashAttentionRagged\] k \(shape \[3,32\]\) was disposed before the call/,
    run: () => {
      const q = tf.zeros([3, NH * D]) as tf.Tensor2D, k = tf.zeros([3, NKV * D]) as tf.Tensor2D, v = tf.zeros([3, NKV * D]) as tf.Tensor2D;
      k.dispose();
      try { flashAttentionRagged(q, k, v, { nHeads: NH, nKvHeads: NKV, headDim: D, scale: 0.25, mask: causal, rowOffsets: Int32Array.of(0, 3) }); } finally { tf.dispose([q, v]); }
    },
  },
  {
    name: 'ropeRagged positions past its tables',
    expect: /\[ropeRagged\] positions up to 99 need rope.maxPositions >= 100, it is 64/,
    run: (w) => {
      const x = tf.zeros([2, NH * D]) as tf.Tensor2D;
      try { ropeRagged(x, w.rope, Int32Array.of(0, 99)); } finally { x.dispose(); }
    },
  },
  {
    name: 'projectionMatMul with a disposed weight',
    expect: /\[projectionMatMul\] b \(shape \[4,2\]\) was disposed before the call/,
    run: () => {
      const a = tf.zeros([3, 4]) as tf.Tensor2D, b = tf.zeros([4, 2]) as tf.Tensor2D;
      b.dispose();
      try { projectionMatMul(a, b); } finally { a.dispose(); }
    },
  },
];

describe('forged calls of the exported ops, every path', () => {
  const seen = new Map<string, Map<Path, string>>();
  afterAll(() => {
    tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', false);
    setCpuKernelImpl('auto');
    stopWebGpu();
  });

  for (const path of PATHS) {
    describe(path, () => {
      beforeAll(async () => { await enter(path); });
      it.each(CASES.map((c) => [c.name, c] as const))('%s: rejected before any write, cache unchanged, no tensor leaked', async (_n, c) => {
        const w = world();
        const before = await w.snapshot(), tensors = tf.memory().numTensors;
        const msg = messageOf(() => c.run(w));
        expect(msg).toMatch(c.expect);
        const after = await w.snapshot();
        expect([Buffer.from(after[0].buffer).equals(Buffer.from(before[0].buffer)), Buffer.from(after[1].buffer).equals(Buffer.from(before[1].buffer))]).toEqual([true, true]);
        expect(tf.memory().numTensors).toBe(tensors);
        if (!seen.has(c.name)) seen.set(c.name, new Map());
        seen.get(c.name)!.set(path, msg);
      });
    });
  }

  it('each bad call gets the same error text on every path', () => {
    for (const [name, byPath] of seen) {
      expect([name, byPath.size]).toEqual([name, PATHS.length]);
      expect([name, new Set(byPath.values()).size]).toEqual([name, 1]);
    }
  });
});

(nativeKernels ? describe : describe.skip)('native entry points with forged arrays (no addon: skipped, reason: it did not build here)', () => {
  const n = () => nativeKernels!;
  const f = (k: number) => new Float32Array(k);
  const attnInts = packInts(ATTN_ARG, { BATCH: 1, N_HEADS: 2, N_KV: 1, HEAD_DIM: 16, PAGE_SIZE: 4, MAX_PAGES: 2, MASK: 0, WINDOW: 0, CHUNK: 0, VARIANT: 0 });
  const pool = f(2 * 1 * 4 * 16);  // 2 pages

  it('flashAttention: q shorter than its rows', () => {
    expect(() => n().flashAttention(f(10), f(5 * 32), pool, pool, Int32Array.of(0, 5), Int32Array.of(0), Int32Array.of(5), Int32Array.of(0, 1), attnInts, 1))
      .toThrow(/\[native.flashAttention\] q has 10 elements, needs 160/);
  });
  it('flashAttention: start position past the page table (forged maxContext)', () => {
    expect(() => n().flashAttention(f(32), f(32), pool, pool, Int32Array.of(0, 1), Int32Array.of(4000), Int32Array.of(1), Int32Array.of(0, 1), attnInts, 1))
      .toThrow(/\[native.flashAttention\] entry 0 needs 1001 pages, more than maxPages/);
  });
  it('flashAttention: a page id outside the pool', () => {
    expect(() => n().flashAttention(f(32), f(32), pool, pool, Int32Array.of(0, 1), Int32Array.of(4), Int32Array.of(1), Int32Array.of(0, 7), attnInts, 1))
      .toThrow(/\[native.flashAttention\] pageTable entry of sequence 0 holds page 7/);
  });
  it('flashAttention: ints block too short, wrong array types', () => {
    expect(() => n().flashAttention(f(32), f(32), pool, pool, Int32Array.of(0, 1), Int32Array.of(0), Int32Array.of(1), Int32Array.of(0, 1), Int32Array.of(1, 2), 1))
      .toThrow(/ints has fewer than ATTN_COUNT values/);
    expect(() => n().flashAttention(f(32), f(32), pool, pool, Float32Array.of(0, 1) as never, Int32Array.of(0), Int32Array.of(1), Int32Array.of(0, 1), attnInts, 1))
      .toThrow(/bad argument types/);
  });
  it('ropeSplitStore: cos/sin shorter than the positions', () => {
    const ints = packInts(ROPE_ARG, { T: 1, BATCH: 1, N_HEADS: 2, N_KV: 1, HEAD_DIM: 16, ROTARY_DIM: 16, INTERLEAVED: 0, PAGE_SIZE: 4, MAX_PAGES: 2 });
    expect(() => n().ropeSplitStore(f(64), f(32), pool, pool, f(8), f(8), null, null, ints, Int32Array.of(0, 1), Int32Array.of(6), Int32Array.of(0, 1), -1))
      .toThrow(/\[native.ropeSplitStore\] cos has 8 elements, needs 56/);
  });
  it('ropeSplitStore: qk-norm weights missing or short', () => {
    const ints = packInts(ROPE_ARG, { T: 1, BATCH: 1, N_HEADS: 2, N_KV: 1, HEAD_DIM: 16, ROTARY_DIM: 16, INTERLEAVED: 0, PAGE_SIZE: 4, MAX_PAGES: 2 });
    expect(() => n().ropeSplitStore(f(64), f(32), pool, pool, f(64), f(64), f(3), f(16), ints, Int32Array.of(0, 1), Int32Array.of(0), Int32Array.of(0, 1), 1e-6))
      .toThrow(/qNormW has 3 elements, needs 16/);
  });
  it('sgemm: output too short', () => {
    expect(() => n().sgemm(f(12), f(8), null, f(5), 3, 2, 4, 0, 0)).toThrow(/\[native.sgemm\] out has 5 elements, needs 6/);
  });
  it('flashTrain: lse too short, rowOffsets decreasing', () => {
    const ints = packInts(TRAIN_ARG, { BATCH: 1, N_HEADS: 2, N_KV: 1, HEAD_DIM: 16, MASK: 0, WINDOW: 0, CHUNK: 0 });
    expect(() => n().flashTrain(f(96), f(48), f(48), Int32Array.of(0, 3), f(96), f(2), null, null, null, null, ints, 1))
      .toThrow(/\[native.flashTrain\] lse has 2 elements, needs 6/);
    const ints2 = packInts(TRAIN_ARG, { BATCH: 2, N_HEADS: 2, N_KV: 1, HEAD_DIM: 16, MASK: 0, WINDOW: 0, CHUNK: 0 });
    expect(() => n().flashTrain(f(96), f(48), f(48), Int32Array.of(0, 3, 1), f(96), f(6), null, null, null, null, ints2, 1))
      .toThrow(/rowOffsets decreases at entry 1/);
  });
});
