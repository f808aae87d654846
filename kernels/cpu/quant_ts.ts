/**
 * QuantMatMul in plain TypeScript over typed arrays (the cpu kernel without the addon, the wasm
 * kernel on the heap): the activation quantizers emulated exactly (JS doubles, as the fixtures'
 * float64 program), the packed weight widened row by row, then the product.
 */
import { bf16ToF32, E2M1_TABLE, E4M3_TABLE, f16ToF32, roundE2m1, roundE4m3, roundHalfEven } from '../../core/fp_formats.js';
import type { QuantMatMulAttrs } from '../kernel_names.js';

export interface QuantWeightArrays {
  weight: Int32Array;
  scale?: Float32Array;
  zeros?: Int32Array;
  gIdx?: Int32Array;
}

function rowMaxAbs(x: ArrayLike<number>, from: number, to: number): number {
  let m = 0;
  for (let i = from; i < to; i++) { const a = Math.abs(x[i]); if (a > m || Number.isNaN(a)) m = a; }
  return m;
}

function e4m3Span(x: ArrayLike<number>, out: Float64Array, from: number, to: number, s: number): void {
  for (let i = from; i < to; i++) out[i] = s === 0 ? 0 * x[i] : roundE4m3(x[i] / s) * s;
}

/** x `[T, K]` after the attrs' activation quantizer (a copy; `none` copies as is). */
export function quantizeActivations(x: ArrayLike<number>, T: number, K: number, a: QuantMatMulAttrs): Float64Array {
  const out = Float64Array.from(x as ArrayLike<number>);
  for (let t = 0; t < T; t++) {
    const r0 = t * K, r1 = r0 + K;
    switch (a.activation) {
      case 'none': break;
      case 'e4m3_static': e4m3Span(x, out, r0, r1, a.inputScale); break;
      case 'e4m3_token': e4m3Span(x, out, r0, r1, rowMaxAbs(x, r0, r1) / 448); break;
      case 'e4m3_group':
        for (let g = r0; g < r1; g += a.actGroup) { const e = Math.min(g + a.actGroup, r1); e4m3Span(x, out, g, e, rowMaxAbs(x, g, e) / 448); }
        break;
      case 'int8_token': {
        const s = rowMaxAbs(x, r0, r1) / 127;
        for (let i = r0; i < r1; i++) out[i] = s === 0 ? 0 * x[i] : Math.min(127, Math.max(-127, roundHalfEven(x[i] / s))) * s;
        break;
      }
      case 'nvfp4': {
        const g = a.inputScale;
        for (let b = r0; b < r1; b += 16) {
          const e = Math.min(b + 16, r1);
          const bs = roundE4m3(rowMaxAbs(x, b, e) / 6 / g), bg = bs * g;
          for (let i = b; i < e; i++) out[i] = bg === 0 ? 0 * x[i] : roundE2m1(x[i] / bg) * bg;
        }
        break;
      }
    }
  }
  return out;
}

let f16Table: Float32Array | null = null;
function f16Lookup(): Float32Array {
  if (!f16Table) f16Table = Float32Array.from({ length: 65536 }, (_, h) => f16ToF32(h));
  return f16Table;
}

/** Row o of the dequantized weight (`[inDim]`, float32) into `row`. Not for gptq (see dequantizeWeight). */
function widenRow(w: QuantWeightArrays, a: QuantMatMulAttrs, o: number, row: Float32Array): void {
  const K = a.inDim, wd = w.weight, sc = w.scale;
  const rowScale = a.weightScale === 'tensor' ? sc![0] : a.weightScale === 'rowwise' ? sc![o] : 1;
  const blocksPerRow = Math.ceil(K / a.blockCols);
  const blockScale = (j: number) => a.weightScale === 'block' ? sc![Math.floor(o / a.blockRows) * blocksPerRow + Math.floor(j / a.blockCols)] : rowScale;
  switch (a.weightFormat) {
    case 'e4m3': case 'int8': {
      const base = o * Math.ceil(K / 4);
      for (let j = 0; j < K; j++) {
        const byte = (wd[base + (j >> 2)] >>> (8 * (j & 3))) & 255;
        row[j] = (a.weightFormat === 'e4m3' ? E4M3_TABLE[byte] : (byte << 24) >> 24) * blockScale(j);
      }
      break;
    }
    case 'nvfp4': {
      const base = o * Math.ceil(K / 8);
      for (let j = 0; j < K; j++) row[j] = E2M1_TABLE[(wd[base + (j >> 3)] >>> (4 * (j & 7))) & 15] * sc![o * (K / 16) + (j >> 4)] * a.weightScale2;
      break;
    }
    case 'bf16': case 'f16': {
      const base = o * Math.ceil(K / 2), t = a.weightFormat === 'f16' ? f16Lookup() : null;
      for (let j = 0; j < K; j++) {
        const h = (wd[base + (j >> 1)] >>> (16 * (j & 1))) & 0xffff;
        row[j] = t ? t[h] : bf16ToF32(h);
      }
      break;
    }
    default: throw new Error(`[QuantMatMul] widenRow has no case for '${a.weightFormat}'`);
  }
}

/** The whole dequantized weight `[outDim, inDim]` (row o = output o). */
export function dequantizeWeight(w: QuantWeightArrays, a: QuantMatMulAttrs): Float32Array {
  const K = a.inDim, N = a.outDim, out = new Float32Array(N * K);
  if (a.weightFormat !== 'gptq') {
    for (let o = 0; o < N; o++) widenRow(w, a, o, out.subarray(o * K, (o + 1) * K));
    return out;
  }
  const qw = w.weight, z = w.zeros!, s = w.scale!, g = w.gIdx!;
  for (let j = 0; j < K; j++) {
    const grp = g[j];
    for (let o = 0; o < N; o++) {
      const q = (qw[(j >> 3) * N + o] >>> (4 * (j & 7))) & 15;
      const zero = ((z[grp * (N / 8) + (o >> 3)] >>> (4 * (o & 7))) & 15) + 1;
      out[o * K + j] = (q - zero) * s[grp * N + o];
    }
  }
  return out;
}

/** y `[T, outDim]` = quantize(x) · dequantize(W)ᵀ (+ bias). */
export function quantMatMulTs(x: ArrayLike<number>, T: number, w: QuantWeightArrays, bias: Float32Array | null,
  a: QuantMatMulAttrs, y: Float32Array): void {
  const K = a.inDim, N = a.outDim;
  const xq = quantizeActivations(x, T, K, a);
  const wd = dequantizeWeight(w, a);
  for (let t = 0; t < T; t++) {
    const xr = t * K;
    for (let o = 0; o < N; o++) {
      const wr = o * K;
      let acc = 0;
      for (let j = 0; j < K; j++) acc += xq[xr + j] * wd[wr + j];
      y[t * N + o] = acc + (bias ? bias[o] : 0);
    }
  }
}
