/**
 * The small number formats of quantized weights and activations, exactly as the fixtures'
 * README defines them: round to the nearest value of the format's grid, ties to the even code,
 * saturating at the largest finite value; NaN in gives NaN out (or throws where a code is wanted
 * and the format has none).
 *
 * - e4m3 (float8 e4m3fn): bias 7, max 448, subnormals down to 2^-9, no infinities, NaN = 0x7f/0xff.
 * - e2m1 (NVFP4 element): {0, 0.5, 1, 1.5, 2, 3, 4, 6} with a sign bit (bit 3).
 * - float16 and bfloat16: IEEE half and the top half of a float32, round to nearest even.
 *
 * @example
 * f32ToE4m3(1000) === 0x7e;  e4m3ToF32(0x7e) === 448;  roundE2m1(2.5) === 2; // tie to the even code
 */
import { check } from './errors.js';

const W = 'fp_formats';

function decodeE4m3(c: number): number {
  const s = c & 0x80 ? -1 : 1, e = (c >> 3) & 0xf, m = c & 7;
  if (e === 15 && m === 7) return NaN;
  return e === 0 ? s * m * 2 ** -9 : s * (1 + m / 8) * 2 ** (e - 7);
}

/** Code -> value for every e4m3 byte. */
export const E4M3_TABLE: Float32Array = Float32Array.from({ length: 256 }, (_, c) => decodeE4m3(c));
/** Code -> value for every e2m1 nibble (bit 3 is the sign). */
export const E2M1_TABLE: Float32Array = Float32Array.from({ length: 16 }, (_, c) => (c & 8 ? -1 : 1) * [0, 0.5, 1, 1.5, 2, 3, 4, 6][c & 7]);
export const E4M3_MAX = 448;
export const E2M1_MAX = 6;

/**
 * Code of the grid value nearest |a| among the first `n` codes of a table whose values rise
 * with the code (both formats' non-negative codes do); ties to the even code; saturates.
 */
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

/** float -> e4m3 code (saturating; NaN -> 0x7f). */
export function f32ToE4m3(x: number): number {
  if (Number.isNaN(x)) return 0x7f;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  return sign | nearestCode(E4M3_TABLE, 127, Math.abs(x));
}

/** float -> e2m1 code (saturating at ±6); throws on NaN, which e2m1 cannot hold. */
export function f32ToE2m1(x: number): number {
  check(!Number.isNaN(x), W, () => `e2m1 has no NaN: cannot encode ${x}`);
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

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float -> bfloat16 bits (round to nearest even; NaN stays a quiet NaN). */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if (Number.isNaN(f32[0])) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}
/** bfloat16 bits -> float. */
export function bf16ToF32(h: number): number { u32[0] = (h & 0xffff) << 16; return f32[0]; }

/** float16 bits -> float. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float -> float16 bits (round to nearest even, overflow to ±inf as IEEE does, NaN -> 0x7e00). */
export function f32ToF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  f32[0] = x;
  const v = f32[0];
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00; // rounds past the largest finite half (65504)
  if (a < 2 ** -14) return sign | roundHalfEven(a / 2 ** -24); // subnormal (may round up to the smallest normal: same bits)
  const e = Math.floor(Math.log2(a));
  const exp = a >= 2 ** (e + 1) ? e + 1 : a < 2 ** e ? e - 1 : e; // log2 can be off by one ulp at powers of two
  const m = roundHalfEven((a / 2 ** exp - 1) * 1024); // 0..1024; 1024 carries into the exponent
  return sign | (((exp + 15) << 10) + m);
}
