/**
 * Compact KV caches (kvParams.dtype): the format conversions, the row codecs, and the cache
 * invariants per dtype: token-by-token equals one prefill (codes and scales bit for bit, attention
 * outputs), fork / copy-on-write keep the int8 scales with their pages, out-of-pages leaves the
 * cache unchanged, and bad options are named.
 */
import * as tf from '@tensorflow/tfjs';
import { E4M3_TABLE, F16_TABLE, bf16BitsToF32, f32ToBf16Bits, f32ToE4m3, f32ToF16Bits } from '../../core/fp_formats';
import { KV_CACHE_DTYPES, type KVCacheDType, decodeKvRow, encodeKvRow } from '../../core/kv_dtype';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import type { KVCacheParams } from '../../lib/kv_cache/params';
import { describeEachBackend } from '../support/backends';
import { randomArray } from '../support/random_layer';

const fmt = (dtype: KVCacheDType): Partial<KVCacheParams> => (dtype === 'float8_e4m3' ? { dtype, kScale: 0.05, vScale: 0.02 } : { dtype });

describe('fp formats', () => {
  it('e4m3: every code round-trips, midpoints tie to the even code, saturation at 448', () => {
    for (let c = 0; c < 256; c++) {
      const v = E4M3_TABLE[c];
      if (Number.isNaN(v)) { expect(c & 0x7f).toBe(0x7f); continue; }
      expect(E4M3_TABLE[f32ToE4m3(v)]).toBe(v);
    }
    for (let c = 0; c < 0x7e; c++) {
      const mid = (E4M3_TABLE[c] + E4M3_TABLE[c + 1]) / 2;
      expect(f32ToE4m3(mid)).toBe(c % 2 === 0 ? c : c + 1);
      expect(f32ToE4m3(-mid)).toBe(0x80 | (c % 2 === 0 ? c : c + 1));
    }
    expect(E4M3_TABLE[0x7e]).toBe(448);
    expect(f32ToE4m3(1e6)).toBe(0x7e);
    expect(f32ToE4m3(-1e6)).toBe(0xfe);
    expect(f32ToE4m3(2 ** -10)).toBe(0); // half the smallest subnormal ties to 0 (even)
    expect(E4M3_TABLE[f32ToE4m3(2 ** -10 * 3)]).toBe(2 ** -9 * 2); // 1.5 quanta ties to 2
  });

  it('float16 and bfloat16: nearest value, ties to even, subnormals and overflow', () => {
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    let seed = 7;
    for (let i = 0; i < 20000; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      u[0] = (seed ^ (seed << 7)) >>> 0;
      const x = f[0];
      if (!Number.isFinite(x) || Math.abs(x) > 65000) continue;
      const h = f32ToF16Bits(x), y = F16_TABLE[h];
      const up = F16_TABLE[(h & 0x7fff) === 0x7bff ? h : h + 1], down = F16_TABLE[(h & 0x7fff) === 0 ? h : h - 1];
      expect(Math.abs(y - x)).toBeLessThanOrEqual(Math.min(Math.abs(up - x), Math.abs(down - x)));
      const b = f32ToBf16Bits(x), z = bf16BitsToF32(b);
      expect(Math.abs(z - x)).toBeLessThanOrEqual(Math.min(Math.abs(bf16BitsToF32(b + 1) - x), Math.abs(bf16BitsToF32(b - 1) - x)));
    }
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(F16_TABLE[f32ToF16Bits(2 ** -24)]).toBe(2 ** -24);
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });

  it('int8 rows: scale max|row| / 127, round half to even, zero rows, NaN rows stay NaN', () => {
    const codes = new Int8Array(4), scales = new Float32Array(1), out = new Float32Array(4);
    encodeKvRow('int8', [127, -63.5, 0.5, 1.5], 0, 4, codes, 0, scales, 0, 1);
    expect(scales[0]).toBe(1);
    expect(Array.from(codes)).toEqual([127, -64, 0, 2]);
    encodeKvRow('int8', [0, 0, 0, 0], 0, 4, codes, 0, scales, 0, 1);
    decodeKvRow('int8', codes, 0, 4, scales, 0, 1, out, 0);
    expect(Array.from(out)).toEqual([0, 0, 0, 0]);
    encodeKvRow('int8', [1, NaN, 0, 0], 0, 4, codes, 0, scales, 0, 1);
    decodeKvRow('int8', codes, 0, 4, scales, 0, 1, out, 0);
    expect(out.every(Number.isNaN)).toBe(true);
  });
});

/** A copy of every layer's codes and row scales. */
function snapshot(cache: PagedKVCache): unknown[] {
  const out: unknown[] = [];
  for (let l = 0; l < cache.params.numLayers; l++) {
    const p = cache.pools(l);
    out.push(Array.from(p.k), Array.from(p.v), p.kRowScales && Array.from(p.kRowScales), p.vRowScales && Array.from(p.vRowScales));
  }
  return out;
}

describe('PagedKVCache with a compact dtype', () => {
  const base = { nKvHeads: 2, headDim: 8, pageSize: 4, numLayers: 2, numPages: 12 };
  for (const dtype of KV_CACHE_DTYPES) {
    it(`${dtype}: pools, memoryBytes, readSequence within a quantum`, () => {
      const cache = new PagedKVCache({ ...base, ...fmt(dtype) });
      const per = { float32: 32, float16: 16, bfloat16: 16, int8: 8 + 4, float8_e4m3: 8 }[dtype];
      expect(cache.memoryBytes).toBe(2 * 2 * 12 * 4 * 2 * per);
      const p = cache.pools(1);
      expect(p.k.length).toBe(12 * 2 * 4 * 8);
      expect(p.kRowScales?.length ?? 0).toBe(dtype === 'int8' ? 12 * 2 * 4 : 0);
      if (dtype !== 'float32') expect(() => cache.keys(0)).toThrow(/'.*' cache hold packed codes.*use pools/);
      const id = cache.addSequence();
      const c = cache.fetch([id], [6]);
      const k = randomArray(6 * 16, 3), v = randomArray(6 * 16, 4);
      cache.writeTokens(1, c, k, v);
      const r = cache.readSequence(1, c, 0, 6); // [nKv, 6, D]
      const rel = { float32: 0, float16: 2 ** -11, bfloat16: 2 ** -8, int8: 1 / 254, float8_e4m3: 2 ** -4 }[dtype];
      for (let t = 0; t < 6; t++) for (let h = 0; h < 2; h++) for (let d = 0; d < 8; d++) {
        const want = k[(t * 2 + h) * 8 + d], got = r.k[(h * 6 + t) * 8 + d];
        // float8: scale 0.05, values < 1 -> codes < 20, relative 2^-4 of the value or a subnormal quantum
        expect(Math.abs(got - want)).toBeLessThanOrEqual(rel * Math.max(Math.abs(want), dtype === 'int8' ? 1 : 0) + (dtype === 'float8_e4m3' ? 0.05 * 2 ** -10 : 0) + 1e-7);
      }
    });

    it(`${dtype}: fork and copy-on-write keep codes and scales with their pages; out of pages changes nothing`, () => {
      const cache = new PagedKVCache({ ...base, numPages: 5, ...fmt(dtype) });
      const a = cache.addSequence();
      let c = cache.fetch([a], [6]);
      for (let l = 0; l < 2; l++) cache.writeTokens(l, c, randomArray(96, 10 + l), randomArray(96, 20 + l));
      cache.step(c);
      const before = cache.readSequence(0, cache.fetch([a], [0]), 0, 6);
      const b = cache.forkSequence(a);
      c = cache.fetch([b], [1]); // writes into the shared second page: copy on write
      expect(cache.pagesOf(b)[1]).not.toBe(cache.pagesOf(a)[1]);
      for (let l = 0; l < 2; l++) cache.writeTokens(l, c, randomArray(16, 30 + l, 50), randomArray(16, 40 + l, 50));
      cache.step(c);
      const forked = cache.readSequence(0, cache.fetch([b], [0]), 0, 6);
      expect(Array.from(forked.k)).toEqual(Array.from(before.k)); // same decoded values: scales came along
      expect(Array.from(cache.readSequence(0, cache.fetch([a], [0]), 0, 6).v)).toEqual(Array.from(before.v));
      const snap = snapshot(cache), free = cache.numFreePages, lens = [cache.cacheLength(a), cache.cacheLength(b)];
      expect(() => cache.fetch([a, b], [8, 8])).toThrow(/out of pages/);
      expect(snapshot(cache)).toEqual(snap);
      expect(cache.numFreePages).toBe(free);
      expect([cache.cacheLength(a), cache.cacheLength(b)]).toEqual(lens);
    });
  }

  it('names bad dtype and scale options', () => {
    expect(() => new PagedKVCache({ ...base, dtype: 'int4' as KVCacheDType })).toThrow(/dtype must be one of float32, float16, bfloat16, int8, float8_e4m3, got 'int4'/);
    expect(() => new PagedKVCache({ ...base, dtype: 'float8_e4m3', kScale: 0 })).toThrow(/kScale \(0\) must be a finite number > 0/);
    expect(() => new PagedKVCache({ ...base, dtype: 'float8_e4m3', vScale: NaN })).toThrow(/vScale \(NaN\) must be a finite number > 0/);
    expect(() => new PagedKVCache({ ...base, dtype: 'int8', kScale: 2 })).toThrow(/kScale \(2\) is only used with dtype 'float8_e4m3', got dtype 'int8'/);
    const cache = new PagedKVCache({ ...base, dtype: 'float16' });
    expect(() => cache.decodePages(0, Int32Array.of(0, 12))).toThrow(/decodePages: pages\[1\] \(12\) must be an integer in \[0, 12\)/);
  });
});

describeEachBackend('compact caches through the layer', () => {
  const hidden = 32, nH = 4, nKv = 2, D = 16;
  const layerFor = (dtype: KVCacheDType): AttentionWithRope => {
    const layer = new AttentionWithRope({
      rope: { headDim: D, theta: 10000, maxSeqLen: 64 }, numAttentionHeads: nH, numKeyValueHeads: nKv, hiddenSize: hidden,
      kvParams: { nKvHeads: nKv, headDim: D, pageSize: 4, numLayers: 1, numPages: 16, ...fmt(dtype) },
    });
    layer.setHfWeights({
      'q_proj.weight': randomArray(nH * D * hidden, 1, 0.3), 'k_proj.weight': randomArray(nKv * D * hidden, 2, 0.3),
      'v_proj.weight': randomArray(nKv * D * hidden, 3, 0.3), 'o_proj.weight': randomArray(hidden * nH * D, 4, 0.3),
    });
    return layer;
  };

  for (const dtype of KV_CACHE_DTYPES) {
    it(`${dtype}: token-by-token decode stores the same codes and scales as one prefill, and attends alike`, async () => {
      const layer = layerFor(dtype);
      const T = 9, x = randomArray(T * hidden, 77);
      const one = new PagedKVCache(layer.kvParams), many = new PagedKVCache(layer.kvParams);
      const s1 = one.addSequence(), s2 = many.addSequence();
      const c1 = one.fetch([s1], [T]);
      const h1 = tf.tensor2d(x, [T, hidden]);
      const off1 = tf.tensor1d([0, T], 'int32'), offs = tf.tensor1d([0, 1], 'int32');
      const prefill = layer.callRagged(0, h1, c1, layer.rope.freqsCis, off1);
      one.step(c1);
      const last: Float32Array[] = [];
      for (let t = 0; t < T; t++) {
        const c = many.fetch([s2], [1]);
        const h = tf.tensor2d(x.subarray(t * hidden, (t + 1) * hidden), [1, hidden]);
        const out = layer.callRagged(0, h, c, layer.rope.freqsCis, offs);
        last.push(await out.data() as Float32Array);
        tf.dispose([h, out]);
        many.step(c);
      }
      expect(snapshot(many)).toEqual(snapshot(one));
      const want = await prefill.data() as Float32Array;
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < hidden; j++) expect(Math.abs(last[t][j] - want[t * hidden + j])).toBeLessThanOrEqual(1e-5);
      }
      tf.dispose([h1, off1, offs, prefill]);
      layer.dispose();
    });
  }
});
