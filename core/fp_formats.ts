/**
 * Scalar conversions between float32 and the compact formats of a KV cache (and quantized weights):
 * IEEE float16, bfloat16 and float8 e4m3fn (bias 7, max 448, no infinities, 0x7f / 0xff NaN).
 * Every encoder rounds to the nearest code, ties to the even code, saturating at the format's
 * largest finite value (float16/bfloat16 overflow to infinity as IEEE does; e4m3 saturates to ±448).
 *
 * @example
 * f16BitsToF32(f32ToF16Bits(1 / 3));   // 0.333251953125
 * e4m3ToF32(f32ToE4m3(500));           // 448
 */
import { check } from './errors.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> bfloat16 bits (round to nearest even; NaN stays a quiet NaN). */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bfloat16 bits -> float32 (exact). */
export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

/** float32 -> IEEE float16 bits (round to nearest even, subnormals kept, overflow to infinity). */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    man |= 0x800000;
    const shift = 14 - e; // 14..24
    const half = 1 << (shift - 1);
    const rest = man & ((1 << shift) - 1);
    let h = man >>> shift;
    if (rest > half || (rest === half && (h & 1) === 1)) h++;
    return sign | h; // a carry into the exponent field is the right normal value
  }
  let h = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++; // carry may reach infinity: correct
  return sign | h;
}

function f16BitsToF32Slow(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 0x1f) return man === 0 ? sign * Infinity : NaN;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** All 65536 float16 values, by bit pattern. */
export const F16_TABLE: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16BitsToF32Slow(h);
  return t;
})();

/** IEEE float16 bits -> float32 (exact). */
export function f16BitsToF32(h: number): number { return F16_TABLE[h & 0xffff]; }

function e4m3ToF32Slow(c: number): number {
  const sign = c & 0x80 ? -1 : 1;
  const exp = (c >>> 3) & 0xf;
  const man = c & 7;
  if (exp === 0xf && man === 7) return NaN;
  if (exp === 0) return sign * man * 2 ** -9;
  return sign * (1 + man / 8) * 2 ** (exp - 7);
}

/** All 256 float8 e4m3fn values, by code. */
export const E4M3_TABLE: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let c = 0; c < 256; c++) t[c] = e4m3ToF32Slow(c);
  return t;
})();

/** Largest finite e4m3fn value. */
export const E4M3_MAX = 448;

/** float8 e4m3fn code -> float32 (exact). */
export function e4m3ToF32(c: number): number { return E4M3_TABLE[c & 0xff]; }

/** float32 -> float8 e4m3fn code (round to nearest even, saturating at ±448; NaN -> 0x7f). */
export function f32ToE4m3(x: number): number {
  if (Number.isNaN(x)) return 0x7f;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  const a = Math.abs(x);
  if (a >= E4M3_MAX) return sign | 0x7e;
  // Quantum: 2^-9 below 2^-6 (subnormals), else 2^(e-3) for a in [2^e, 2^(e+1)).
  const e = a < 2 ** -6 ? -6 : Math.floor(Math.log2(a));
  const eFix = 2 ** e > a ? e - 1 : (2 ** (e + 1) <= a ? e + 1 : e); // log2 rounding guard
  const q = 2 ** (Math.max(eFix, -6) - 3);
  const n = a / q;
  let r = Math.floor(n);
  const frac = n - r;
  if (frac > 0.5 || (frac === 0.5 && (r & 1) === 1)) r++;
  const v = r * q; // exact: a multiple of the quantum
  if (v >= E4M3_MAX) return sign | 0x7e;
  return sign | codeOfExactE4m3(v);
}

/** Code of a non-negative value that is exactly an e4m3 value (< 448). */
function codeOfExactE4m3(v: number): number {
  if (v < 2 ** -6) return Math.round(v / 2 ** -9); // subnormal (or 2^-6 -> code 8, exp 1 man 0)
  const e = Math.floor(Math.log2(v));
  const ee = 2 ** e > v ? e - 1 : (2 ** (e + 1) <= v ? e + 1 : e);
  const man = Math.round((v / 2 ** ee - 1) * 8);
  return ((ee + 7) << 3) | man;
}

// ---- Quantized-weight formats (issue 12): e2m1 (NVFP4 element), grid rounding, and the short
// aliases the quantizers use (same functions as the *Bits ones above).

/** Code -> value for every e2m1 nibble (bit 3 is the sign): {0, 0.5, 1, 1.5, 2, 3, 4, 6}. */
export const E2M1_TABLE: Float32Array = Float32Array.from({ length: 16 }, (_, c) => (c & 8 ? -1 : 1) * [0, 0.5, 1, 1.5, 2, 3, 4, 6][c & 7]);
export const E2M1_MAX = 6;

/** Code of the grid value nearest |a| among the first `n` codes of a rising table; ties to the even code; saturates. */
function nearestCode(table: Float32Array, n: number, a: number): number {
  if (a >= table[n - 1]) return n - 1;
  let lo = 0, hi = n - 1; // table[lo] <= a < table[hi]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (table[mid] <= a) lo = mid; else hi = mid;
  }
  const dLo = a - table[lo], dHi = table[hi] - a;
  return dLo < dHi ? lo : dHi < dLo ? hi : (lo % 2 === 0 ? lo : hi);
}

/** float -> e2m1 code (saturating at ±6); throws on NaN, which e2m1 cannot hold. */
export function f32ToE2m1(x: number): number {
  check(!Number.isNaN(x), 'fp_formats', () => `e2m1 has no NaN: cannot encode ${x}`);
  const sign = x < 0 || Object.is(x, -0) ? 8 : 0;
  return sign | nearestCode(E2M1_TABLE, 8, Math.abs(x));
}

/** x rounded to the e4m3 grid (saturating), NaN stays NaN. */
export function roundE4m3(x: number): number { return Number.isNaN(x) ? NaN : E4M3_TABLE[f32ToE4m3(x)]; }
/** x rounded to the e2m1 grid (saturating), NaN stays NaN. */
export function roundE2m1(x: number): number { return Number.isNaN(x) ? NaN : E2M1_TABLE[f32ToE2m1(x)]; }

/** Rounds to the nearest integer, ties to even (numpy's np.round). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : (f % 2 === 0 ? f : f + 1);
}

export const f32ToBf16 = f32ToBf16Bits;
export const bf16ToF32 = bf16BitsToF32;
export const f16ToF32 = f16BitsToF32;
export const f32ToF16 = f32ToF16Bits;
