/**
 * Storage formats of a paged KV cache (`kvParams.dtype`) and their row codecs. A pool of a
 * compact cache holds packed codes in the same `[numPages, nKvHeads, pageSize, headDim]` layout a
 * float32 cache holds floats:
 * - `float32`: Float32Array, the values as given;
 * - `float16` / `bfloat16`: Uint16Array of bit patterns, rounded to nearest even;
 * - `int8`: Int8Array codes plus one float32 scale per (page, KV head, slot), i.e. per token and
 *   KV head (`s = max|row| / 127`, `code = clamp(roundHalfEven(x / s), -127, 127)`), scales in a
 *   `[numPages, nKvHeads, pageSize]` Float32Array beside the pool;
 * - `float8_e4m3`: Uint8Array e4m3fn codes of `x / scale` with one per-tensor scale (`kScale` for
 *   K, `vScale` for V), read back as `e4m3 * scale`.
 *
 * @example
 * const codes = new Uint16Array(4), out = new Float32Array(4);
 * encodeKvRow('float16', Float32Array.of(1, 2, 3, 1 / 3), 0, 4, codes, 0, null, 0, 1);
 * decodeKvRow('float16', codes, 0, 4, null, 0, 1, out, 0); // [1, 2, 3, 0.33325]
 */
import { E4M3_TABLE, F16_TABLE, bf16BitsToF32, f32ToBf16Bits, f32ToE4m3, f32ToF16Bits } from './fp_formats.js';

export type KVCacheDType = 'float32' | 'float16' | 'bfloat16' | 'int8' | 'float8_e4m3';
export const KV_CACHE_DTYPES: readonly KVCacheDType[] = ['float32', 'float16', 'bfloat16', 'int8', 'float8_e4m3'];

/** A pool of codes of one of the formats above. */
export type KVPool = Float32Array | Uint16Array | Int8Array | Uint8Array;

/** Bytes of one stored element (int8 adds 4 bytes of scale per token and KV head). */
export function kvBytesPerElement(dtype: KVCacheDType): number {
  return dtype === 'float32' ? 4 : dtype === 'float16' || dtype === 'bfloat16' ? 2 : 1;
}

/** A zeroed pool of `n` elements for `dtype`. */
export function allocKvPool(dtype: KVCacheDType, n: number): KVPool {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'float16': case 'bfloat16': return new Uint16Array(n);
    case 'int8': return new Int8Array(n);
    default: return new Uint8Array(n);
  }
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * Encodes `n` floats `src[srcOff..]` into `codes[codeOff..]`. int8 writes the row's scale to
 * `rowScales[scaleIdx]`; float8_e4m3 divides by `tensorScale`.
 */
export function encodeKvRow(
  dtype: KVCacheDType, src: ArrayLike<number>, srcOff: number, n: number, codes: KVPool, codeOff: number,
  rowScales: Float32Array | null, scaleIdx: number, tensorScale: number,
): void {
  switch (dtype) {
    case 'float32':
      for (let d = 0; d < n; d++) codes[codeOff + d] = src[srcOff + d];
      return;
    case 'float16':
      for (let d = 0; d < n; d++) codes[codeOff + d] = f32ToF16Bits(src[srcOff + d]);
      return;
    case 'bfloat16':
      for (let d = 0; d < n; d++) codes[codeOff + d] = f32ToBf16Bits(src[srcOff + d]);
      return;
    case 'float8_e4m3': {
      const inv = 1 / tensorScale;
      for (let d = 0; d < n; d++) codes[codeOff + d] = f32ToE4m3(src[srcOff + d] * inv);
      return;
    }
    case 'int8': {
      let m = 0;
      for (let d = 0; d < n; d++) m = Math.max(m, Math.abs(src[srcOff + d]));
      // A NaN row keeps its NaN in the scale, so attention over it is NaN (never a silent 0).
      for (let d = 0; d < n; d++) if (Number.isNaN(src[srcOff + d])) m = NaN;
      const s = Math.fround(m / 127);
      rowScales![scaleIdx] = s;
      for (let d = 0; d < n; d++) {
        const x = src[srcOff + d];
        codes[codeOff + d] = s === 0 || Number.isNaN(s) ? 0 : Math.max(-127, Math.min(127, roundHalfEven(x / s)));
      }
      return;
    }
  }
}

/** Decodes `n` codes `codes[codeOff..]` into floats `out[outOff..]` (inverse of encodeKvRow). */
export function decodeKvRow(
  dtype: KVCacheDType, codes: KVPool, codeOff: number, n: number, rowScales: Float32Array | null, scaleIdx: number,
  tensorScale: number, out: Float32Array, outOff: number,
): void {
  switch (dtype) {
    case 'float32':
      for (let d = 0; d < n; d++) out[outOff + d] = codes[codeOff + d];
      return;
    case 'float16':
      for (let d = 0; d < n; d++) out[outOff + d] = F16_TABLE[codes[codeOff + d]];
      return;
    case 'bfloat16':
      for (let d = 0; d < n; d++) out[outOff + d] = bf16BitsToF32(codes[codeOff + d]);
      return;
    case 'float8_e4m3':
      for (let d = 0; d < n; d++) out[outOff + d] = E4M3_TABLE[codes[codeOff + d]] * tensorScale;
      return;
    case 'int8': {
      const s = rowScales![scaleIdx];
      for (let d = 0; d < n; d++) out[outOff + d] = codes[codeOff + d] * s;
      return;
    }
  }
}
