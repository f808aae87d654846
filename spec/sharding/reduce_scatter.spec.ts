/**
 * The reduce-scatter of ShardedAttention (each worker sums one row range of every partial, threads
 * and /dev/shm processes alike), float16 partials (codes equal core/fp_formats' encoder; the
 * error against float32 partials measured and bounded), the chunked output-projection readback
 * (exact), and a worker failing halfway through its reduce rows: the call fails naming the device,
 * no cache shard nor the book moves, and a thrown fault's retry is exact.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { f32ToF16Bits } from '../../core/fp_formats';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { parseDevices } from '../../lib/sharding/devices';
import { reduceRange, reduceRows, writePartial } from '../../lib/sharding/partials';
import { ShardedAttention, type ShardedAttentionOptions } from '../../lib/sharding/sharded_attention';
import { sharedMemoryUnavailable } from '../../lib/sharding/shm_region';
import { fixtureWeights, layerArgsFromFixture } from '../../bin/conformance/attention_fixture';
import { loadAttentionFixture } from '../../bin/conformance/attention_fixture_files';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'attention');
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('partials: float16 codes and the row-range sum', () => {
  it('writes the same float16 codes as f32ToF16Bits (normals, subnormals, ties, overflow, NaN)', () => {
    const vals: number[] = [0, -0, 1, -1, 1 / 3, 65504, 65519.99, 65520, 1e6, -1e6, 2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1e-9, NaN, Infinity, -Infinity];
    for (let h = 0; h < 0x7c00; h += 7) { // midpoints and neighbours of float16 codes: the rounding ties
      const lo = f16(h), hi = f16(h + 1);
      vals.push((lo + hi) / 2, Math.fround(lo + (hi - lo) * 0.49), Math.fround(lo + (hi - lo) * 0.51), -(lo + hi) / 2);
    }
    for (let i = 0; i < 5000; i++) vals.push((Math.random() - 0.5) * 10 ** (Math.random() * 12 - 6));
    const src = Float32Array.from(vals);
    const buf = new ArrayBuffer(src.length * 2);
    writePartial(src, buf, 0, 0, 'float16');
    const got = Array.from(new Uint16Array(buf));
    const want = Array.from(src, (x) => f32ToF16Bits(x));
    const bad = got.map((g, i) => (g === want[i] || (Number.isNaN(src[i]) && (g & 0x7c00) === 0x7c00 && (g & 0x3ff) !== 0) ? -1 : i)).filter((i) => i >= 0);
    expect(bad.map((i) => [src[i], got[i], want[i]])).toEqual([]);
  });

  it('each worker sums its own rows; the ranges tile the output', () => {
    const T = 7, H = 3, n = 3;
    const slots = Array.from({ length: n }, (_, d) => Float32Array.from({ length: T * H }, (_, i) => i * (d + 1)));
    const out = new Float32Array(T * H).fill(NaN);
    for (let j = 0; j < n; j++) {
      const [r0, r1] = reduceRows(T, n, j);
      reduceRange(out, slots, r0 * H, r1 * H, 'float32');
    }
    expect(Array.from(out)).toEqual(Array.from({ length: T * H }, (_, i) => i * 6));
    expect([0, 1, 2].map((j) => reduceRows(T, n, j))).toEqual([[0, 2], [2, 4], [4, 7]]);
  });
});

/** The value of float16 code h (finite, non-negative). */
function f16(h: number): number {
  const e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  return e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
}

describe('ShardedAttention reduce-scatter, float16 partials, chunked readback', () => {
  const f = loadAttentionFixture(path.join(FIXTURES, 'llama_gqa')); // 4 heads, 2 KV heads, hidden 64
  const H = f.config.hidden_size as number;
  const rows = (t: number, seed: number) => tf.tidy(() => tf.randomNormal([t, H], 0, 1, 'float32', seed)) as tf.Tensor2D;
  let layer: AttentionWithRope;
  let ref: PagedKVCache;
  const shm = sharedMemoryUnavailable() === null;

  beforeEach(() => {
    const args = layerArgsFromFixture(f.config, 16);
    args.kvParams = { ...args.kvParams, numPages: 64 };
    layer = new AttentionWithRope(args);
    layer.setHfWeights(fixtureWeights(f));
    ref = new PagedKVCache(args.kvParams);
  });
  afterEach(() => layer.dispose());

  function unsharded(x: tf.Tensor2D, ids: number[], counts: number[]): Float32Array {
    const kv = ref.fetch(ids, counts);
    const y = layer.callRagged(0, x, kv);
    ref.step(kv);
    const out = y.dataSync() as Float32Array;
    y.dispose();
    return out;
  }

  const TRANSPORTS: [string, ShardedAttentionOptions][] = [['threads', {}], ['processes', { transport: 'process' }]];

  for (const [name, base] of TRANSPORTS) {
    it(`${name}: float32 exact (chunked readback too), float16 within n * 2^-11 * max|partial|`, async () => {
      const exact = await ShardedAttention.create(layer, parseDevices('cpu,cpu,cpu'), { ...base, readbackChunks: 3 });
      const half = await ShardedAttention.create(layer, parseDevices('cpu,cpu,cpu'), { ...base, partialDtype: 'float16' });
      try {
        if (name === 'processes' && shm) expect(exact.dataPaths).toEqual(['shm', 'shm', 'shm']);
        expect(half.partialPrecision).toBe('float16');
        for (const tp of [exact, half]) tp.addSequence(0);
        ref.addSequence(0);
        let worstRel = 0;
        for (const [n, seed] of [[37, 1], [1, 2], [20, 3]]) {
          const x = rows(n, seed);
          const want = unsharded(x, [0], [n]);
          const y32 = await exact.callRagged(x, [0], [n]), y16 = await half.callRagged(x, [0], [n]);
          expect(maxDiff(y32.dataSync() as Float32Array, want)).toBeLessThanOrEqual(1e-5);
          const err = maxDiff(y16.dataSync() as Float32Array, want);
          // Each partial is at most |sum| + the others; bound with 2x the output's range (3 partials).
          expect(err).toBeLessThanOrEqual(3 * 2 ** -11 * 2 * maxAbs(want) + 1e-6);
          expect(err).toBeGreaterThan(0); // float16 really rounded
          worstRel = Math.max(worstRel, err / maxAbs(want));
          tf.dispose([x, y32, y16]);
        }
        console.log(`${name}: float16 partials, 3 devices: max |err| / max |out| = ${worstRel.toExponential(2)}`);
      } finally { await Promise.all([exact.dispose(), half.dispose()]); }
    });
  }

  it('threads: a worker that throws halfway through its reduce rows fails the call; nothing moved; the retry is exact', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'));
    try {
      tp.addSequence(0); ref.addSequence(0);
      const x0 = rows(4, 4), x1 = rows(9, 5);
      (await tp.callRagged(x0, [0], [4])).dispose(); unsharded(x0, [0], [4]);
      const before = await tp.inspect();
      tp.injectFault(1, 'throw', 'reduce');
      await expect(tp.callRagged(x1, [0], [9])).rejects.toThrow('[ShardedAttention] device 1 (cpu:1) failed: injected fault (halfway through its reduce rows)');
      expect(tp.cacheLength(0)).toBe(4);
      const after = await tp.inspect();
      expect(after.map((s) => [...s.lengths])).toEqual([[[0, 4]], [[0, 4]]]);
      expect(after.map((s) => s.numFreePages)).toEqual(before.map((s) => s.numFreePages));
      const y = await tp.callRagged(x1, [0], [9]);
      expect(maxDiff(y.dataSync() as Float32Array, unsharded(x1, [0], [9]))).toBeLessThanOrEqual(1e-5);
      tf.dispose([x0, x1, y]);
    } finally { await tp.dispose(); }
  });

  (shm ? it : it.skip)('processes over shared memory: a worker that dies mid-reduce fails the call naming it; the others did not commit', async () => {
    const tp = await ShardedAttention.create(layer, parseDevices('cpu,cpu'), { transport: 'process' });
    try {
      expect(tp.dataPaths).toEqual(['shm', 'shm']);
      tp.addSequence(0);
      const x = rows(6, 6);
      (await tp.callRagged(x, [0], [6])).dispose();
      tp.injectFault(0, 'exit', 'reduce');
      await expect(tp.callRagged(x, [0], [6])).rejects.toThrow('[ShardedAttention] device 0 (cpu:0) exited with code 7');
      expect(tp.cacheLength(0)).toBe(6);
      expect(() => tp.addSequence(1)).toThrow('[ShardedAttention] device 0 (cpu:0) is gone');
      x.dispose();
    } finally { await tp.dispose(); }
  });

  it('rejects a bad partialDtype and readbackChunks, naming them', async () => {
    await expect(ShardedAttention.create(layer, parseDevices('cpu,cpu'), { partialDtype: 'bfloat16' as never }))
      .rejects.toThrow("[ShardedAttention] partialDtype ('bfloat16') must be 'float32' or 'float16'");
    await expect(ShardedAttention.create(layer, parseDevices('cpu,cpu'), { readbackChunks: 0 })).rejects.toThrow('readbackChunks');
  });
});
