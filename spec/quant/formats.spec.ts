/**
 * The number formats (core/fp_formats.ts) on their grids' edge values, the packing order of the
 * QuantMatMul words, odd shapes and blocks at the matrix edge (kernel vs composite reference vs a
 * float product of the dequantized weight), and the constructor errors of quantConfig / dtype.
 */
import * as tf from '@tensorflow/tfjs';
import {
  bf16ToF32, E4M3_TABLE, f16ToF32, f32ToBf16, f32ToE2m1, f32ToE4m3, f32ToF16, roundE2m1, roundE4m3, roundHalfEven,
} from '../../core/fp_formats';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import type { QuantMatMulAttrs } from '../../kernels/kernel_names';
import { quantMatMul } from '../../kernels/quant_matmul';
import { dequantizeWeight, quantizeActivations } from '../../kernels/cpu/quant_ts';
import { quantizeActivationsReference, roundE2m1Tensor, roundE4m3Tensor } from '../../kernels/reference/QuantMatMul';
import { describeEachBackend } from '../support/backends';
import { randomArray } from '../support/random_layer';

describe('fp formats', () => {
  it('e4m3: max finite, saturation, subnormals, ties to even, NaN', () => {
    expect(E4M3_TABLE[0x7e]).toBe(448);
    expect(f32ToE4m3(448)).toBe(0x7e);
    expect(f32ToE4m3(1e9)).toBe(0x7e);           // saturates
    expect(f32ToE4m3(-Infinity)).toBe(0xfe);
    expect(f32ToE4m3(464)).toBe(0x7e);
    expect(E4M3_TABLE[1]).toBe(2 ** -9);          // smallest subnormal
    expect(f32ToE4m3(2 ** -10)).toBe(0);          // tie between 0 and 2^-9: even code 0
    expect(f32ToE4m3(3 * 2 ** -10)).toBe(2);      // tie between codes 1 and 2: even
    expect(roundE4m3(1.0625)).toBe(1);            // tie between 1 (code 0x38) and 1.125 (0x39): even
    expect(roundE4m3(1.1875)).toBe(1.25);         // tie between 1.125 (0x39) and 1.25 (0x3a): even
    expect(roundE4m3(-0.3)).toBe(-0.3125);
    expect(Number.isNaN(E4M3_TABLE[0x7f])).toBe(true);
    expect(f32ToE4m3(NaN)).toBe(0x7f);
    expect(Number.isNaN(roundE4m3(NaN))).toBe(true);
    for (let c = 0; c < 127; c++) expect(f32ToE4m3(E4M3_TABLE[c])).toBe(c); // every code round-trips
    for (let c = 128; c < 255; c++) if (c !== 128) expect(f32ToE4m3(E4M3_TABLE[c])).toBe(c);
  });

  it('e2m1: grid, ties to even, saturation, NaN refused as a code and kept as a value', () => {
    expect([0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 7, 100].map(roundE2m1)).toEqual([0, 0, 1, 1, 2, 2, 4, 4, 6, 6]);
    expect(f32ToE2m1(-6)).toBe(0xf);
    expect(f32ToE2m1(-0.5)).toBe(0x9);
    expect(() => f32ToE2m1(NaN)).toThrow(/e2m1 has no NaN/);
    expect(Number.isNaN(roundE2m1(NaN))).toBe(true);
  });

  it('float16 / bfloat16: max finite, overflow, subnormals, ties to even, NaN', () => {
    expect(f16ToF32(f32ToF16(65504))).toBe(65504);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(65519)).toBe(0x7bff);
    expect(f16ToF32(f32ToF16(2 ** -24))).toBe(2 ** -24);
    expect(f32ToF16(2 ** -25)).toBe(0);               // tie: even (0)
    expect(f32ToF16(3 * 2 ** -25)).toBe(2);           // tie between 1 and 2 ulps: even
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00);      // tie: even mantissa
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
    expect(bf16ToF32(f32ToBf16(1 + 2 ** -8))).toBe(1);            // tie: even
    expect(bf16ToF32(f32ToBf16(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6);
    expect(Number.isNaN(bf16ToF32(f32ToBf16(NaN)))).toBe(true);
    expect(bf16ToF32(f32ToBf16(3.3895313892515355e38))).toBe(3.3895313892515355e38); // bf16 max finite
    expect(roundHalfEven(2.5)).toBe(2);
    expect(roundHalfEven(-2.5)).toBe(-2);
  });

  it('the tf-op roundings agree with the host ones on a sweep, and NaN stays NaN', () => {
    const xs = Float32Array.from({ length: 4001 }, (_, i) => (i - 2000) * 0.2371);
    const tiny = Float32Array.from({ length: 200 }, (_, i) => (i - 100) * 2 ** -11);
    const all = Float32Array.from([...xs, ...tiny, 448, 500, 2 ** -9, NaN]);
    const e4 = roundE4m3Tensor(tf.tensor1d(all)).dataSync();
    const e2 = roundE2m1Tensor(tf.tensor1d(all.map((x) => x / 60))).dataSync();
    all.forEach((x, i) => {
      if (Number.isNaN(x)) { expect(Number.isNaN(e4[i])).toBe(true); return; }
      const plus0 = (v: number) => (v === 0 ? 0 : v); // the tf ops may drop the sign of a zero
      expect([x, plus0(e4[i])]).toEqual([x, plus0(Math.fround(roundE4m3(x)))]);
      expect([x, plus0(e2[i])]).toEqual([x, plus0(roundE2m1(Math.fround(x / 60)))]);
    });
  });
});

/** Packs codes of `bits` bits, `perWord` a word, low bits first, rows padded to whole words. */
function packCodes(codes: number[][], bits: number): Int32Array {
  const perWord = 32 / bits, wpr = Math.ceil(codes[0].length / perWord), out = new Int32Array(codes.length * wpr);
  codes.forEach((row, o) => row.forEach((c, j) => { out[o * wpr + Math.floor(j / perWord)] |= c << (bits * (j % perWord)); }));
  return out;
}

const base = (o: Partial<QuantMatMulAttrs>): QuantMatMulAttrs => ({ weightFormat: 'e4m3', weightScale: 'tensor', blockRows: 0, blockCols: 0,
  activation: 'none', actGroup: 0, inputScale: 0, weightScale2: 1, inDim: 0, outDim: 0, ...o });

describeEachBackend('QuantMatMul packing and edges', () => {
  it('packing order: low byte / nibble / half first', () => {
    const a4 = base({ weightFormat: 'nvfp4', weightScale: 'block', blockRows: 1, blockCols: 16, inDim: 16, outDim: 1 });
    const codes = [[1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 0, 8]];
    const w = dequantizeWeight({ weight: packCodes(codes, 4), scale: Float32Array.of(1) }, a4);
    expect(Array.from(w)).toEqual(codes[0].map((c) => (c & 8 ? -1 : 1) * [0, 0.5, 1, 1.5, 2, 3, 4, 6][c & 7]));
    const a8 = base({ weightFormat: 'int8', inDim: 5, outDim: 1 });
    expect(Array.from(dequantizeWeight({ weight: packCodes([[1, 255, 128, 127, 3]], 8), scale: Float32Array.of(2) }, a8))).toEqual([2, -2, -256, 254, 6]);
    const a16 = base({ weightFormat: 'bf16', weightScale: 'none', inDim: 3, outDim: 1 });
    expect(Array.from(dequantizeWeight({ weight: packCodes([[f32ToBf16(1.5), f32ToBf16(-2), f32ToBf16(0.25)]], 16) }, a16))).toEqual([1.5, -2, 0.25]);
  });

  const cases: [string, Partial<QuantMatMulAttrs>][] = [
    ['e4m3 blocks at the matrix edge (5x7 blocks over 13x19), per-group activations', { weightFormat: 'e4m3', weightScale: 'block', blockRows: 5, blockCols: 7, activation: 'e4m3_group', actGroup: 7 }],
    ['e4m3 rowwise, per-token activations, odd inDim', { weightFormat: 'e4m3', weightScale: 'rowwise', activation: 'e4m3_token' }],
    ['e4m3 per tensor, static activations', { weightFormat: 'e4m3', weightScale: 'tensor', activation: 'e4m3_static', inputScale: 0.01 }],
    ['int8 rowwise, per-token int8 activations', { weightFormat: 'int8', weightScale: 'rowwise', activation: 'int8_token' }],
    ['f16 weights, odd inDim', { weightFormat: 'f16', weightScale: 'none' }],
  ];
  /** Packed words for a case: codes from a formula (no NaN codes), or random words where every code is valid. */
  function words(a: QuantMatMulAttrs): { weight: Int32Array; shape: number[] } {
    const K = a.inDim, N = a.outDim;
    if (a.weightFormat === 'gptq' || a.weightFormat === 'nvfp4') {
      const shape = a.weightFormat === 'gptq' ? [K / 8, N] : [N, Math.ceil(K / 8)];
      return { weight: Int32Array.from({ length: shape[0] * shape[1] }, (_, i) => (Math.imul(i + 7, 2654435761) ^ (i << 13)) | 0), shape };
    }
    const bits = a.weightFormat === 'f16' ? 16 : 8;
    const codes = Array.from({ length: N }, (_, r) => Array.from({ length: K }, (_, j) => (r * 31 + j * 17 + 5) % (bits === 16 ? 0x3c00 : 0x7e)));
    return { weight: packCodes(codes, bits), shape: [N, Math.ceil(K / (32 / bits))] };
  }
  const allCases: [string, Partial<QuantMatMulAttrs>, number, number][] = [
    ...cases.map(([t, o]): [string, Partial<QuantMatMulAttrs>, number, number] => [t, o, 19, 13]),
    ['nvfp4 blocks with NVFP4 activations', { weightFormat: 'nvfp4', weightScale: 'block', blockRows: 1, blockCols: 16, activation: 'nvfp4', actGroup: 16, inputScale: 0.003, weightScale2: 0.7 }, 48, 13],
    ['gptq int4 groups of 16 (odd g_idx order)', { weightFormat: 'gptq', weightScale: 'block', blockRows: 1, blockCols: 16 }, 48, 24],
  ];
  for (const [title, o, K, N] of allCases) {
    for (const T of [3, 20]) {
      it(`${title}, ${T} rows (${T <= 8 ? 'GEMV' : 'prefill'}): kernel = composite reference = float product of the widened weight`, async () => {
        const a = base({ ...o, inDim: K, outDim: N });
        const { weight, shape } = words(a);
        const groups = K / (a.blockCols || 1);
        const scale = a.weightFormat === 'gptq' ? Float32Array.from({ length: groups * N }, (_, i) => 0.01 + (i % 7) / 100)
          : a.weightFormat === 'nvfp4' ? Float32Array.from({ length: N * K / 16 }, (_, i) => 0.5 + (i % 5) / 4)
            : a.weightScale === 'tensor' ? Float32Array.of(0.5) : a.weightScale === 'rowwise' ? Float32Array.from({ length: N }, (_, i) => 0.1 + i / 50)
              : a.weightScale === 'block' ? Float32Array.from({ length: 3 * 3 }, (_, i) => 0.2 + i / 10) : undefined;
        const zeros = a.weightFormat === 'gptq' ? Int32Array.from({ length: groups * N / 8 }, (_, i) => Math.imul(i + 3, 40503) | 0) : undefined;
        const gIdx = a.weightFormat === 'gptq' ? Int32Array.from({ length: K }, (_, k) => (k * 5) % groups) : undefined;
        const x = Float32Array.from(randomArray(T * K, 9 + T));
        const wd = dequantizeWeight({ weight, scale, zeros, gIdx }, a), xq = quantizeActivations(x, T, K, a);
        const expected = new Float32Array(T * N);
        for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) { let s = 0; for (let j = 0; j < K; j++) s += xq[t * K + j] * wd[n * K + j]; expected[t * N + n] = s; }
        const ws = { weight: tf.tensor(weight, shape, 'int32'), scale: scale && tf.tensor(scale),
          zeros: zeros && tf.tensor(zeros, [groups, N / 8], 'int32'), gIdx: gIdx && tf.tensor(gIdx, [K], 'int32') };
        const xt = tf.tensor2d(x, [T, K]);
        const got = await quantMatMul(xt, ws, a).data();
        tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
        const ref = await quantMatMul(xt, ws, a).data();
        tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', false);
        const maxE = Math.max(...expected.map(Math.abs));
        let errGot = 0, errRef = 0;
        for (let i = 0; i < expected.length; i++) {
          errGot = Math.max(errGot, Math.abs(got[i] - expected[i]));
          errRef = Math.max(errRef, Math.abs(ref[i] - expected[i]));
        }
        const tol = 1e-5; // same activation codes on every path: only float32 summation order differs
        expect(errGot / maxE).toBeLessThanOrEqual(tol);
        expect(errRef / maxE).toBeLessThanOrEqual(tol);
        const refQ = quantizeActivationsReference(xt, a).dataSync();
        let flips = 0;
        xq.forEach((v, i) => { if (Math.abs(refQ[i] - v) > 1e-6 * Math.max(1, Math.abs(v))) flips++; });
        expect(flips).toBe(0);
      });
    }
  }

  it('NaN in a row gives NaN in that row only', async () => {
    const a = base({ weightFormat: 'e4m3', weightScale: 'rowwise', activation: 'e4m3_token', inDim: 8, outDim: 2 });
    const weight = tf.tensor(packCodes([[56, 56, 56, 56, 56, 56, 56, 56], [48, 48, 48, 48, 48, 48, 48, 48]], 8), [2, 2], 'int32');
    const x = tf.tensor2d([1, 2, NaN, 4, 5, 6, 7, 8, 1, 1, 1, 1, 1, 1, 1, 1], [2, 8]);
    const y = await quantMatMul(x, { weight, scale: tf.tensor1d([1, 1]) }, a).data();
    expect(Number.isNaN(y[0]) && Number.isNaN(y[1])).toBe(true);
    expect(Array.from(y.slice(2))).toEqual([8, 4]);
  });
});

describe('quantConfig / dtype constructor errors', () => {
  const args = {
    rope: { headDim: 16, theta: 10000, maxSeqLen: 32 }, numAttentionHeads: 2, numKeyValueHeads: 1, hiddenSize: 32,
    kvParams: { nKvHeads: 1, headDim: 16, pageSize: 4, numLayers: 1, numPages: 8 },
  };
  const make = (o: object) => new AttentionWithRope({ ...args, ...o } as never);
  it('names both values', () => {
    expect(() => make({ quantConfig: { format: 'fp4' } })).toThrow(/quantConfig.format must be one of .* got 'fp4'/);
    expect(() => make({ quantConfig: { format: 'fp8_dynamic', inputScale: { granularity: 'rowwise', origin: 'static' } } }))
      .toThrow(/inputScale.origin \('static'\) does not fit format 'fp8_dynamic' \(needs 'dynamic'\)/);
    expect(() => make({ quantConfig: { format: 'gptq_int4', inputScale: { granularity: 'tensor', origin: 'static' } } })).toThrow(/must be null for format 'gptq_int4'/);
    expect(() => make({ quantConfig: { format: 'fp8_block', inputScale: { granularity: 'block', origin: 'dynamic', blockSize: 64 } } }))
      .toThrow(/inputScale.blockSize \(64\) must equal weightScale.blockSize\[1\] \(128\)/);
    expect(() => make({ quantConfig: { format: 'gptq_int4', weightScale: { granularity: 'block', blockSize: [1, 64] } } }))
      .toThrow(/q_proj input size \(32\) must be a multiple of the gptq group size \(64\)/);
    expect(() => make({ quantConfig: { format: 'int8_w8a8', weightScale: { granularity: 'block' } } })).toThrow(/weightScale.granularity \('block'\) does not fit format 'int8_w8a8'/);
    expect(() => make({ quantConfig: { format: 'fp8_static' }, dtype: 'bfloat16' })).toThrow(/dtype \('bfloat16'\) must be 'float32' with quantConfig/);
    expect(() => make({ dtype: 'float64' })).toThrow(/dtype must be one of float32, float16, bfloat16, got 'float64'/);
    expect(() => make({ dtype: 'float16', clipQkv: 4 })).toThrow(/clipQkv \(4\) on weights cannot clip packed weights/);
  });
  it('a float16 layer round-trips through getConfig / fromConfig', () => {
    const l = make({ quantConfig: { format: 'int8_w8a8' } });
    const back = AttentionWithRope.fromConfig(AttentionWithRope as never, l.getConfig()) as unknown as AttentionWithRope;
    expect(back.opts.quantConfig).toEqual(l.opts.quantConfig);
    l.dispose(); back.dispose();
  });
});
