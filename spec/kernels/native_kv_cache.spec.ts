/**
 * The native addon on compact KV caches (kvParams.dtype float16 / bfloat16 / int8 / float8_e4m3;
 * native/kv_codec.h, kv_widen.h) against the TypeScript kernels on the same steps:
 * - the store writes the codes and int8 row scales core/kv_dtype.ts encodeKvRow gives for the same
 *   float rows, bit for bit (round to nearest even, saturation, NaN rules), for prefill and decode
 *   steps, values beyond e4m3's range included; V codes equal the TypeScript store's;
 * - attention (prefill items, decode rows for head dims 16/32/64/128 (int8 / float8 also 192, 3 query heads per
 *   KV head: native/attention_decode_kv.cc), the generic item for others)
 *   matches within 2e-5 (relative above magnitude 1; 2e-4 for inputs up to 6, whose logits reach ~100) with
 *   identical NaN positions; a NaN stored in one token's V stays causal
 *   (only rows that see that token become NaN) on both paths;
 * - token-by-token decode on the addon stores what one prefill stores and attends alike.
 */
import * as tf from '@tensorflow/tfjs';

import { type KVCacheDType, type KVPool, encodeKvRow } from '../../core/kv_dtype';
import type { MaskVariant } from '../../core/types';
import type { RopeTables } from '../../core/rope_tables';
import { nativeKernels, setCpuKernelImpl } from '../../kernels/cpu/native';
import { flashAttentionRaggedPaged, ropeSplitStoreRagged } from '../../kernels/ops';
import { registerAllKernels } from '../../kernels/register_all';
import type { PagedKVCollection } from '../../lib/kv_cache/collection';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { randomArray, rng } from './cpu_fixture';

const DTYPES: Exclude<KVCacheDType, 'float32'>[] = ['float16', 'bfloat16', 'int8', 'float8_e4m3'];
const withAddon = nativeKernels !== null ? describe : describe.skip;  // skip reason: the addon did not build here

function ropeTables(D: number, maxPos: number): RopeTables {
  const half = D / 2, cos = new Float32Array(maxPos * half), sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(10000, (-2 * i) / D);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin, headDim: D, rotaryDim: D, maxPositions: maxPos, interleaved: false };
}

interface Shape { nH: number; nKv: number; D: number; pageSize: number }

/** One cache per impl, driven through the same steps; returns the outputs of every step. */
class Twin {
  readonly cache: PagedKVCache;
  private readonly rope: RopeTables;
  readonly ids: number[];
  constructor(readonly s: Shape, dtype: KVCacheDType, batch: number, readonly impl: 'native' | 'ts',
    readonly mask: { variant: MaskVariant; window: number; chunk: number } = { variant: 'causal', window: 0, chunk: 0 }) {
    const fp8 = dtype === 'float8_e4m3' ? { kScale: 0.01, vScale: 0.004 } : {};
    this.cache = new PagedKVCache({ nKvHeads: s.nKv, headDim: s.D, pageSize: s.pageSize, numPages: 64, dtype, ...fp8 });
    this.ids = Array.from({ length: batch }, (_, i) => this.cache.addSequence(i));
    this.rope = ropeTables(s.D, 256);
  }

  /** Store + attention of `news[b]` new tokens per sequence (rows `qkv`); returns the attention output. */
  step(news: number[], qkv: Float32Array, variant: 'auto' | 'prefill' | 'decode' = 'auto', ids = this.ids): Float32Array {
    const { nH, nKv, D } = this.s;
    setCpuKernelImpl(this.impl);
    const kv: PagedKVCollection = this.cache.fetch(ids, news);
    const T = kv.totalTokens;
    const x = tf.tensor2d(qkv, [T, (nH + 2 * nKv) * D]);
    const q = ropeSplitStoreRagged(x, { nHeads: nH, nKvHeads: nKv, headDim: D, rope: this.rope, qkNormEps: -1, collection: kv, layerIdx: 0 });
    const o = flashAttentionRaggedPaged(q, { nHeads: nH, nKvHeads: nKv, headDim: D, scale: 1 / Math.sqrt(D),
      mask: this.mask, collection: kv, layerIdx: 0, variant });
    const out = o.dataSync() as Float32Array;
    tf.dispose([x, q, o]);
    this.cache.step(kv);
    setCpuKernelImpl('auto');
    return out;
  }

  /** The layer's pools: codes and (int8) row scales. */
  pools(): KVPool[] {
    const p = this.cache.pools(0);
    return [p.k, p.v, ...(p.kRowScales && p.vRowScales ? [p.kRowScales, p.vRowScales] : [])];
  }
}

/** The pools `float32` (a float32 twin's) encoded to `dtype` by core/kv_dtype.ts encodeKvRow, row by row. */
function encodedPools(float32: Twin, like: Twin): KVPool[] {
  const [k, v] = float32.pools() as Float32Array[], want = like.pools().map((a) => a.slice().fill(0));
  const { kScale, vScale, dtype, headDim: D } = like.cache.params;
  for (let row = 0; row < k.length / D; row++) {
    encodeKvRow(dtype, k, row * D, D, want[0], row * D, (want[2] ?? null) as Float32Array | null, row, kScale);
    encodeKvRow(dtype, v, row * D, D, want[1], row * D, (want[3] ?? null) as Float32Array | null, row, vScale);
  }
  return want;
}

/** Elements that differ (Object.is: NaN equals NaN, +0 differs from -0), and the first one. */
function mismatches(a: KVPool[], b: KVPool[]): { count: number; first: string } {
  let count = 0, first = '';
  a.forEach((x, j) => {
    for (let i = 0; i < x.length; i++) {
      if (Object.is(x[i], b[j][i])) continue;
      if (count++ === 0) first = `array ${j} [${i}]: ${x[i]} vs ${b[j][i]}`;
    }
  });
  return { count, first };
}

/** Max |a - b| / max(1, |b|) over finite pairs; NaN (fails) where one side is NaN and the other not. */
function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) !== Number.isNaN(b[i])) return NaN;
    if (!Number.isNaN(a[i])) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  }
  return m;
}

withAddon('native compact KV caches', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    registerAllKernels();
  });
  afterAll(() => setCpuKernelImpl('auto'));

  const SHAPES: Shape[] = [
    { nH: 8, nKv: 2, D: 64, pageSize: 4 },    // decode rows, 4 query heads per KV head
    { nH: 4, nKv: 4, D: 128, pageSize: 16 },  // decode rows, MHA, head dim 128
    { nH: 9, nKv: 3, D: 64, pageSize: 16 },   // 3 query heads per KV head (SmolLM2); int8 / fp8: lanes along keys
    { nH: 4, nKv: 2, D: 192, pageSize: 8 },   // int8 / fp8 decode rows at three 64-column blocks of codes
    { nH: 6, nKv: 2, D: 24, pageSize: 8 },    // head dim outside the row kernel: generic item
    { nH: 2, nKv: 1, D: 16, pageSize: 3 },    // pages shorter than a key block
  ];
  for (const dtype of DTYPES) {
    for (const s of SHAPES) {
      it(`${dtype} nH ${s.nH} nKv ${s.nKv} D ${s.D} page ${s.pageSize}: codes and scales of encodeKvRow, attention as TypeScript within 2e-5 / 2e-4`, () => {
        const W = (s.nH + 2 * s.nKv) * s.D, r = rng(s.D * 7 + s.pageSize);
        const nat = new Twin(s, dtype, 3, 'native'), ts = new Twin(s, dtype, 3, 'ts'), f32 = new Twin(s, 'float32', 3, 'native');
        // Prefill of three lengths (values up to 6: beyond e4m3's 448 * kScale = 4.48, saturating),
        // then decode steps, forced decode over several rows, and one more ragged prefill.
        const steps: [number[], 'auto' | 'prefill' | 'decode', number][] = [
          [[9, 21, 2], 'auto', 6], [[1, 1, 1], 'auto', 3], [[1, 1, 1], 'decode', 1], [[2, 1, 3], 'decode', 2], [[5, 0, 7], 'prefill', 1],
        ];
        for (const [news, variant, amp] of steps) {
          const qkv = randomArray(news.reduce((a, b) => a + b, 0) * W, r, amp);
          const a = nat.step(news, qkv, variant), b = ts.step(news, qkv, variant);
          f32.step(news, qkv, variant);
          // Summation order differs (SIMD vs scalar), an error that grows with the logits: amp^2 * D / sqrt(D).
          const diff = maxDiff(a, b), tol = amp > 3 ? 2e-4 : 2e-5;
          expect({ news, variant, diff, ok: diff <= tol }).toEqual({ news, variant, diff, ok: true });
        }
        // The addon's rotated K rows can differ from TypeScript's by an ulp (fused multiply-adds), so the codes are
        // checked against encodeKvRow applied to the addon's own float32 rows (a float32 twin); V rows match outright.
        expect(mismatches(nat.pools(), encodedPools(f32, nat))).toEqual({ count: 0, first: '' });
        expect(mismatches(nat.pools().slice(1, 2), ts.pools().slice(1, 2))).toEqual({ count: 0, first: '' });
      });
    }
  }

  for (const dtype of DTYPES) {
    it(`${dtype}: sliding-window and chunked masks through prefill and the decode rows, as TypeScript within 2e-5`, () => {
      const s: Shape = { nH: 8, nKv: 2, D: 64, pageSize: 8 }, W = (s.nH + 2 * s.nKv) * s.D, r = rng(31);
      const masks = [{ variant: 'sliding_window_causal' as const, window: 5, chunk: 0 }, { variant: 'chunked_causal' as const, window: 0, chunk: 7 },
        { variant: 'sliding_window' as const, window: 6, chunk: 0 }];
      for (const mask of masks) {
        const nat = new Twin(s, dtype, 2, 'native', mask), ts = new Twin(s, dtype, 2, 'ts', mask);
        // Prefill past a few key blocks' worth of window, single-token decode, then forced decode over several rows.
        for (const [news, variant] of [[[150, 9], 'auto'], [[1, 1], 'auto'], [[3, 2], 'decode']] as const) {
          const qkv = randomArray(news[0] * W + news[1] * W, r);
          const diff = maxDiff(nat.step([...news], qkv, variant), ts.step([...news], qkv, variant));
          expect({ mask: mask.variant, news, diff, ok: diff <= 2e-5 }).toEqual({ mask: mask.variant, news, diff, ok: true });
        }
      }
    });

    it(`${dtype}: V rows of edge values (zeros, subnormals, ties, range limits, infinities, NaN) encode as TypeScript does`, () => {
      const s: Shape = { nH: 2, nKv: 2, D: 32, pageSize: 4 }, W = (s.nH + 2 * s.nKv) * s.D;
      const edge = [0, -0, 1e-45, -1e-45, 2 ** -10, 3 * 2 ** -12, 0.01 * 2 ** -7, 0.004 * 2 ** -9 * 1.5, 4.48, -4.48, 4.4800005, 1.792,
        1.7919999, 1.8, 65504, 65520, -65520, 3.4e38, 1 / 3, -2 / 3, 127.5, 0.5, 1.5, 2.5, 1e-8, -1e-30, 7, -7, 100, 1e5, 2.0000002, 0.0049];
      const rows: number[][] = [edge, edge.map((x) => -x), edge.map((x) => x * 0.01), [...edge.slice(0, 31), Infinity],
        [...edge.slice(0, 30), -Infinity, 1], [...edge.slice(0, 29), NaN, 2, 3]];
      const qkv = randomArray(rows.length * W, rng(31));
      rows.forEach((r, t) => { for (let h = 0; h < s.nKv; h++) qkv.set(r, t * W + (s.nH + s.nKv + h) * s.D); });
      const nat = new Twin(s, dtype, 1, 'native'), ts = new Twin(s, dtype, 1, 'ts');
      nat.step([rows.length], qkv);
      ts.step([rows.length], qkv);
      const [, vN, , vsN] = nat.pools(), [, vT, , vsT] = ts.pools();
      expect(mismatches([vN, ...(vsN ? [vsN] : [])], [vT, ...(vsT ? [vsT] : [])])).toEqual({ count: 0, first: '' });
    });
  }

  it('forged addon calls on compact pools get a named RangeError (pool type, row scales, tensor scales, dtype code)', () => {
    const n = nativeKernels!, D = 16, ps = 4, rows = 2 * ps;  // 2 pages, 1 KV head
    const q = new Float32Array(2 * D), out = new Float32Array(2 * D);
    const call = (code: number, k: unknown, v: unknown, ks: unknown, vs: unknown, kS?: number, vS?: number): void => {
      const ints = Int32Array.of(1, 2, 1, D, ps, 2, 0, 0, 0, 0, code);  // ATTN_ARG order
      n.flashAttention(q, out, k as never, v as never, Int32Array.of(0, 1), Int32Array.of(3), Int32Array.of(1), Int32Array.of(1, 0), ints, 0.25,
        ks as never, vs as never, kS, vS);
    };
    const u16 = new Uint16Array(rows * D), i8 = new Int8Array(rows * D), sc = new Float32Array(rows);
    expect(() => call(1, new Float32Array(rows * D), u16, null, null)).toThrow(/kPool must be a Uint16Array for kvDtype code 1/);
    expect(() => call(3, i8, i8, null, null)).toThrow(/an int8 cache needs kRowScales and vRowScales/);
    expect(() => call(3, i8, i8, sc, new Float32Array(rows - 1))).toThrow(/vRowScales/);
    expect(() => call(4, new Uint8Array(rows * D), new Uint8Array(rows * D), null, null, 0, 1)).toThrow(/float8_e4m3 kScale and vScale must be finite and > 0/);
    expect(() => call(7, u16, u16, null, null)).toThrow(/kvDtype code \(7\) must be in \[0, 4\]/);
    expect(() => call(1, u16, new Uint16Array(rows * D - 1), null, null)).toThrow(/kPool and vPool differ in length/);
    call(3, i8, i8, sc, sc);  // well-formed: runs (zero codes, zero scales)
    expect(Array.from(out.subarray(0, 2 * D)).every((x) => x === 0)).toBe(true);
  });

  for (const dtype of DTYPES) {
    it(`${dtype}: a NaN in one token's V reaches only the rows that see it, on both paths`, () => {
      const s: Shape = { nH: 4, nKv: 2, D: 64, pageSize: 4 }, W = (s.nH + 2 * s.nKv) * s.D;
      const nat = new Twin(s, dtype, 1, 'native'), ts = new Twin(s, dtype, 1, 'ts');
      const T = 10, bad = 6, qkv = randomArray(T * W, rng(5));
      qkv[bad * W + (s.nH + s.nKv) * s.D + 3] = NaN;  // token 6, KV head 0's V
      const a = nat.step([T], qkv), b = ts.step([T], qkv);
      expect(maxDiff(a, b)).toBeLessThanOrEqual(2e-5);
      const G = s.nH / s.nKv;
      // The same step forced through the decode rows (20 query rows of one key block, not all seeing token 6).
      const viaDecode = new Twin(s, dtype, 1, 'native').step([T], qkv, 'decode');
      expect(maxDiff(viaDecode, b)).toBeLessThanOrEqual(2e-5);
      for (const [path, out] of [['prefill', a], ['decode', viaDecode]] as const) {
        for (let t = 0; t < T; t++) {
          for (let h = 0; h < s.nH; h++) {
            const row = out.subarray((t * s.nH + h) * s.D, (t * s.nH + h + 1) * s.D);
            const sees = t >= bad && Math.floor(h / G) === 0;
            expect({ path, t, h, nan: row.some(Number.isNaN) }).toEqual({ path, t, h, nan: sees });
          }
        }
      }
      // Decode over the poisoned context: the new token sees it (NaN on KV head 0 only).
      const d = nat.step([1], randomArray(W, rng(6))), e = ts.step([1], randomArray(W, rng(6)));
      expect(maxDiff(d, e)).toBeLessThanOrEqual(2e-5);
      expect([d.subarray(0, G * s.D).some(Number.isNaN), d.subarray(G * s.D).some(Number.isNaN)]).toEqual([true, false]);
    });
  }

  for (const dtype of DTYPES) {
    it(`${dtype}: a fork decoding on the addon copies the shared page with its scales; the source keeps its codes`, () => {
      const s: Shape = { nH: 4, nKv: 2, D: 32, pageSize: 4 }, W = (s.nH + 2 * s.nKv) * s.D;
      const nat = new Twin(s, dtype, 1, 'native'), ts = new Twin(s, dtype, 1, 'ts');
      const qkv = randomArray(6 * W, rng(21), 2);
      nat.step([6], qkv);
      ts.step([6], qkv);
      const before = nat.pools().map((a) => a.slice());
      const forkN = nat.cache.forkSequence(nat.ids[0]), forkT = ts.cache.forkSequence(ts.ids[0]);
      const x = randomArray(W, rng(22), 2);
      const a = nat.step([1], x, 'auto', [forkN]), b = ts.step([1], x, 'auto', [forkT]);
      expect(maxDiff(a, b)).toBeLessThanOrEqual(2e-5);
      // Nothing the source wrote changed: every row that differs now was empty (a fresh page: the fork's copy of
      // the shared last page, codes and int8 scales, plus its new token).
      const { D } = s, after = nat.pools();
      let changed = 0;
      for (let j = 0; j < after.length; j++) {
        const per = j < 2 ? D : 1;
        for (let r = 0; r < after[j].length / per; r++) {
          const was = before[j].subarray(r * per, (r + 1) * per), now = after[j].subarray(r * per, (r + 1) * per);
          if (was.every((x, i) => Object.is(x, now[i]))) continue;
          changed++;
          expect({ j, r, wasEmpty: was.every((x) => x === 0) }).toEqual({ j, r, wasEmpty: true });
        }
      }
      expect(changed).toBeGreaterThan(s.nKv * 2);  // at least the copied rows of both heads, K and V
      // Source and fork attend alike over the shared prefix (the source steps the same token now).
      const c = nat.step([1], x, 'auto', [nat.ids[0]]);
      expect(maxDiff(c, a)).toBe(0);
    });

    it(`${dtype}: token-by-token decode on the addon stores what one prefill stores and attends alike`, () => {
      const s: Shape = { nH: 8, nKv: 2, D: 64, pageSize: 4 }, W = (s.nH + 2 * s.nKv) * s.D;
      const one = new Twin(s, dtype, 1, 'native'), many = new Twin(s, dtype, 1, 'native');
      const T = 19, qkv = randomArray(T * W, rng(9), 2);
      const want = one.step([T], qkv);
      for (let t = 0; t < T; t++) {
        const got = many.step([1], qkv.subarray(t * W, (t + 1) * W));
        expect({ t, diff: maxDiff(got, want.subarray(t * s.nH * s.D, (t + 1) * s.nH * s.D)) <= 1e-5 }).toEqual({ t, diff: true });
      }
      expect(mismatches(many.pools(), one.pools())).toEqual({ count: 0, first: '' });
    });
  }
});
