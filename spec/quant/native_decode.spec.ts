/**
 * The native QuantMatMul decode kernels (native/quant_decode*.cc: T <= 8 rows, K a multiple of 64,
 * weights packed into the dot product) against the TypeScript kernel (kernels/cpu/quant_ts.ts,
 * float64 activation quantizers), for every format and 1 .. 8 rows: random packed words (every
 * e4m3 code but NaN, every e2m1 / int4 code), odd row counts (register-tile tails), bias, fp8
 * blocks and per-group activations, gptq with and without a sorted g_idx, and rows of zeros, NaN
 * and ±Infinity (which give what the TypeScript kernel gives, NaN in the same places). nvfp4 has two
 * kernels: K a multiple of 256 (16 blocks a step) and the 64-column one.
 */
import type { QuantMatMulAttrs } from '../../kernels/kernel_names';
import { nativeKernels } from '../../kernels/cpu/native';
import { nativeArgs } from '../../kernels/cpu/QuantMatMul';
import { quantMatMulTs } from '../../kernels/cpu/quant_ts';
import { randomArray } from '../support/random_layer';

const withAddon = nativeKernels?.quantMatMul ? describe : describe.skip;  // skip reason: the native addon did not build here

const base = (o: Partial<QuantMatMulAttrs>): QuantMatMulAttrs => ({ weightFormat: 'e4m3', weightScale: 'tensor', blockRows: 0, blockCols: 0,
  activation: 'none', actGroup: 0, inputScale: 0, weightScale2: 1, inDim: 0, outDim: 0, ...o });

/** Random words; e4m3 bytes with the NaN codes (0x7f, 0xff) replaced, halves kept finite. */
function words(n: number, fmt: string, seed: number): Int32Array {
  const w = new Int32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    let v = (s ^ (s >>> 15) ^ Math.imul(i, 0x9e3779b1)) | 0;
    if (fmt === 'e4m3') for (let b = 0; b < 4; b++) if (((v >>> (8 * b)) & 0x7f) === 0x7f) v ^= 1 << (8 * b);
    if (fmt === 'bf16' || fmt === 'f16') v &= 0x3bff3bff | (v & 0x80008000);
    w[i] = v;
  }
  return w;
}

type Case = [string, Partial<QuantMatMulAttrs>, number, number];
const K = 192;
const cases: Case[] = [
  ['int8 rowwise, int8 per token', { weightFormat: 'int8', weightScale: 'rowwise', activation: 'int8_token' }, K, 37],
  ['int8 per tensor, int8 per token', { weightFormat: 'int8', weightScale: 'tensor', activation: 'int8_token' }, K, 37],
  ['fp8 rowwise, per token', { weightFormat: 'e4m3', weightScale: 'rowwise', activation: 'e4m3_token' }, K, 37],
  ['fp8 per tensor, static', { weightFormat: 'e4m3', weightScale: 'tensor', activation: 'e4m3_static', inputScale: 0.004 }, K, 37],
  ['fp8 blocks 5x64, groups of 64', { weightFormat: 'e4m3', weightScale: 'block', blockRows: 5, blockCols: 64, activation: 'e4m3_group', actGroup: 64 }, K, 37],
  ['fp8 blocks 5x64, per token', { weightFormat: 'e4m3', weightScale: 'block', blockRows: 5, blockCols: 64, activation: 'e4m3_token' }, K, 37],
  ['fp8 rowwise, groups of 64', { weightFormat: 'e4m3', weightScale: 'rowwise', activation: 'e4m3_group', actGroup: 64 }, K, 37],
  ['nvfp4', { weightFormat: 'nvfp4', weightScale: 'block', blockRows: 1, blockCols: 16, activation: 'nvfp4', actGroup: 16, inputScale: 0.003, weightScale2: 0.7 }, K, 37],
  ['nvfp4, K a multiple of 256 (16 blocks a step)', { weightFormat: 'nvfp4', weightScale: 'block', blockRows: 1, blockCols: 16, activation: 'nvfp4', actGroup: 16, inputScale: 0.003, weightScale2: 0.7 }, 512, 21],
  ['bf16', { weightFormat: 'bf16', weightScale: 'none' }, K, 37],
  ['f16', { weightFormat: 'f16', weightScale: 'none' }, K, 37],
  ['gptq groups of 64', { weightFormat: 'gptq', weightScale: 'block', blockRows: 1, blockCols: 64 }, K, 48],
  ['gptq groups of 32, 272 columns (ranges of 128 and a tail)', { weightFormat: 'gptq', weightScale: 'block', blockRows: 1, blockCols: 32 }, K, 272],
];

function inputs(a: QuantMatMulAttrs, seed: number) {
  const K = a.inDim, N = a.outDim, fmt = a.weightFormat;
  const nWords = fmt === 'gptq' ? (K / 8) * N : fmt === 'nvfp4' ? N * (K / 8) : fmt === 'bf16' || fmt === 'f16' ? N * (K / 2) : N * (K / 4);
  const groups = K / (a.blockCols || 1);
  const scale = fmt === 'gptq' ? Float32Array.from({ length: groups * N }, (_, i) => 0.01 + (i % 7) / 100)
    : fmt === 'nvfp4' ? Float32Array.from({ length: N * K / 16 }, (_, i) => 0.5 + (i % 5) / 4)
      : a.weightScale === 'tensor' ? Float32Array.of(0.5) : a.weightScale === 'rowwise' ? Float32Array.from({ length: N }, (_, i) => 0.1 + i / 50)
        : a.weightScale === 'block' ? Float32Array.from({ length: Math.ceil(N / a.blockRows) * Math.ceil(K / a.blockCols) }, (_, i) => 0.2 + i / 10) : undefined;
  return {
    weight: words(nWords, fmt, seed), scale,
    zeros: fmt === 'gptq' ? words(groups * N / 8, 'gptq', seed + 1) : undefined,
    gIdx: fmt === 'gptq' ? Int32Array.from({ length: K }, (_, k) => Math.floor(k / a.blockCols)) : undefined,
  };
}

/** Native vs TypeScript on x [T, K]; NaN in the same places, elsewhere within 1e-5 of the largest |y|. */
function compare(a: QuantMatMulAttrs, x: Float32Array, T: number, w: ReturnType<typeof inputs>, bias: Float32Array | null): void {
  const N = a.outDim;
  const got = new Float32Array(T * N), want = new Float32Array(T * N);
  nativeKernels!.quantMatMul!(x, w.weight, w.scale ?? null, w.zeros ?? null, w.gIdx ?? null, bias, got, nativeArgs(a, T), a.inputScale, a.weightScale2);
  quantMatMulTs(x, T, w, bias, a, want);
  let maxY = 0, err = 0;
  for (let i = 0; i < want.length; i++) {
    expect([i, Number.isNaN(got[i])]).toEqual([i, Number.isNaN(want[i])]);
    if (Number.isFinite(want[i])) { maxY = Math.max(maxY, Math.abs(want[i])); err = Math.max(err, Math.abs(got[i] - want[i])); }
  }
  expect(maxY).toBeGreaterThan(0);
  expect(err / maxY).toBeLessThanOrEqual(1e-5);
}

withAddon('native QuantMatMul decode kernels', () => {
  for (const [title, o, k, n] of cases) {
    it(`${title}: [T, ${k}] x [${k}, ${n}], T = 1 .. 8, with and without bias`, () => {
      const a = base({ ...o, inDim: k, outDim: n });
      const w = inputs(a, 7);
      for (let T = 1; T <= 8; T++) {
        const x = randomArray(T * k, 100 + T, 2);
        compare(a, x, T, w, T % 2 ? null : randomArray(n, 5));
      }
    });
  }

  it('gptq with an unsorted g_idx (act order) gives the same as the TypeScript kernel', () => {
    const a = base({ weightFormat: 'gptq', weightScale: 'block', blockRows: 1, blockCols: 64, inDim: K, outDim: 48 });
    const w = inputs(a, 3);
    w.gIdx = Int32Array.from({ length: K }, (_, k) => (k * 5) % 3);
    compare(a, randomArray(3 * K, 9), 3, w, null);
  });

  for (const [title, o, k, n] of cases) {
    it(`${title}: rows of zeros, a NaN, +Infinity, -Infinity and a tiny value`, () => {
      const a = base({ ...o, inDim: k, outDim: n });
      const w = inputs(a, 11);
      const T = 6, K = k, x = randomArray(T * K, 17);
      x.fill(0, 0, K);                // row 0: zeros
      x[K + 70] = NaN;                // row 1
      x[2 * K + 5] = Infinity;        // row 2
      x[3 * K + 130] = -Infinity;     // row 3
      x.fill(1e-30, 4 * K, 5 * K);    // row 4: tiny (e4m3 / int8 codes from a tiny scale)
      compare(a, x, T, w, null);
    });
  }
});
