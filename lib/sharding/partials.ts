/**
 * Partial outputs of tensor-parallel shards: how a worker writes its `[T, hidden]` partial into its
 * slot (float32, or float16 halving the bytes every partial moves), and the reduce-scatter step
 * each worker runs on its own row range of every slot. Browser-clean (no Node import): the thread
 * and process transports share it.
 *
 * float16 partials: each partial is rounded to the nearest float16 (relative error <= 2^-11 of
 * the value, 4.9e-4) before the sum; the sum itself runs in float32. With n partials the output's
 * error is at most n * 2^-11 * max|partial| (measured in spec/sharding/reduce_scatter.spec.ts and
 * the README's sharding section); float32 partials are exact to the unsharded layer (<= 1e-5).
 */
import { F16_TABLE } from '../../core/fp_formats.js';

export type PartialDtype = 'float32' | 'float16';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * float32 -> float16 bits, round to nearest even, overflow to infinity, subnormals kept: the
 * same codes as core/fp_formats.ts f32ToF16Bits (checked over every float16 neighbourhood in the
 * spec), written as one branch-light loop body for the hot path.
 */
function toF16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const abs = b & 0x7fffffff;
  if (abs >= 0x47800000) return abs > 0x7f800000 ? sign | 0x7e00 : sign | 0x7c00; // NaN / overflow
  if (abs < 0x38800000) { // float16 subnormal or zero: scale into the integer range and round there
    f32[0] = Math.abs(x) * 16777216; // 2^24: one float16 subnormal step is 1
    const m = f32[0], r = Math.round(m);
    return sign | (r - m === 0.5 && (r & 1) === 1 ? r - 1 : r);
  }
  const rounded = abs + 0xfff + ((abs >>> 13) & 1); // round to nearest even at bit 13
  return sign | ((rounded - 0x38000000) >>> 13);
}

/** Writes `src` (float32) into `dst` at float offset `at`, as `dtype`. `dst` is a slot's bytes. */
export function writePartial(src: Float32Array, dst: ArrayBufferLike, byteOffset: number, at: number, dtype: PartialDtype): void {
  if (dtype === 'float32') { new Float32Array(dst, byteOffset, at + src.length).set(src, at); return; }
  const out = new Uint16Array(dst, byteOffset, at + src.length);
  for (let i = 0; i < src.length; i++) out[at + i] = toF16(src[i]);
}

/** One slot's view as float32 values or float16 codes. */
export function slotView(buf: ArrayBufferLike, byteOffset: number, floats: number, dtype: PartialDtype): Float32Array | Uint16Array {
  return dtype === 'float32' ? new Float32Array(buf, byteOffset, floats) : new Uint16Array(buf, byteOffset, floats);
}

/**
 * The reduce-scatter step of one worker: `out[a..b) = sum over slots of slot[a..b)` (floats
 * `a..b`), summed in slot order in float32; the slots hold `dtype` values (float16 as codes).
 * `dtype` is passed, not read off the arrays: arrays that crossed a process or realm boundary
 * fail `instanceof`.
 */
export function reduceRange(out: Float32Array, slots: (Float32Array | Uint16Array)[], a: number, b: number, dtype: PartialDtype): void {
  const first = slots[0];
  if (dtype === 'float32') {
    out.set(first.subarray(a, b), a);
    for (let d = 1; d < slots.length; d++) {
      const p = slots[d];
      for (let i = a; i < b; i++) out[i] += p[i];
    }
    return;
  }
  for (let i = a; i < b; i++) out[i] = F16_TABLE[first[i]];
  for (let d = 1; d < slots.length; d++) {
    const p = slots[d];
    for (let i = a; i < b; i++) out[i] += F16_TABLE[p[i]];
  }
}

/** Rows `[start, end)` of worker `j` of `n` when `T` rows are split for the reduce-scatter. */
export function reduceRows(T: number, n: number, j: number): [number, number] {
  return [Math.floor((j * T) / n), Math.floor(((j + 1) * T) / n)];
}
