/**
 * Loading quantized / half-precision Hugging Face projection tensors (names and layouts of
 * spec/fixtures/README.md "quant/") into packed QuantLinear weights: the raw bytes go into int32
 * words row by row as stored, scales are widened to float32; no float32 copy of a weight is made.
 */
import * as tf from '@tensorflow/tfjs';

import { bf16ToF32, E4M3_TABLE, f16ToF32, f32ToBf16, f32ToF16 } from '../../core/fp_formats.js';
import { check } from '../errors.js';
import type { QuantMatMulAttrs } from '../../kernels/kernel_names.js';
import type { QuantLinear } from './quant_linear.js';

/** A tensor as stored in a safetensors file: dtype (`F8_E4M3`, `U8`, `I8`, `I32`, `F16`, `BF16`, `F32`), shape, raw bytes. */
export interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export function isRawTensor(v: unknown): v is RawTensor {
  return typeof v === 'object' && v !== null && (v as RawTensor).bytes instanceof Uint8Array && typeof (v as RawTensor).dtype === 'string';
}

const W = 'AttentionWithRope.setHfWeights';
const ELEMENT_BYTES: Record<string, number> = { F8_E4M3: 1, U8: 1, I8: 1, I32: 4, F16: 2, BF16: 2, F32: 4 };

function sizeOf(shape: number[]): number { return shape.reduce((a, b) => a * b, 1); }

/** A raw tensor's values as float32 (F32, F16, BF16, F8_E4M3 scales). */
export function rawToFloat(name: string, t: RawTensor): Float32Array {
  const n = sizeOf(t.shape), v = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  check(t.bytes.byteLength === n * (ELEMENT_BYTES[t.dtype] ?? NaN), W, () => `tensor '${name}' (${t.dtype} [${t.shape}]) has ${t.bytes.byteLength} bytes`);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'F32': for (let i = 0; i < n; i++) out[i] = v.getFloat32(4 * i, true); break;
    case 'F16': for (let i = 0; i < n; i++) out[i] = f16ToF32(v.getUint16(2 * i, true)); break;
    case 'BF16': for (let i = 0; i < n; i++) out[i] = bf16ToF32(v.getUint16(2 * i, true)); break;
    case 'F8_E4M3': for (let i = 0; i < n; i++) out[i] = E4M3_TABLE[t.bytes[i]]; break;
    default: check(false, W, () => `tensor '${name}' must be a float type (F32, F16, BF16, F8_E4M3), got ${t.dtype}`);
  }
  return out;
}

/** Rows of `rowBytes` bytes each, every row padded to whole int32 words. */
function packRows(bytes: Uint8Array, rows: number, rowBytes: number): Int32Array {
  if (rowBytes % 4 === 0 && bytes.byteOffset % 4 === 0) return new Int32Array(bytes.buffer, bytes.byteOffset, rows * rowBytes / 4); // already whole words: no copy
  const wordsPerRow = Math.ceil(rowBytes / 4), out = new Uint8Array(rows * wordsPerRow * 4);
  for (let r = 0; r < rows; r++) out.set(bytes.subarray(r * rowBytes, (r + 1) * rowBytes), r * wordsPerRow * 4);
  return new Int32Array(out.buffer);
}

function int32sOf(name: string, t: RawTensor): Int32Array {
  check(t.dtype === 'I32', W, () => `tensor '${name}' must be I32, got ${t.dtype}`);
  const copy = t.bytes.slice();
  return new Int32Array(copy.buffer, 0, sizeOf(t.shape));
}

/** Packed arrays of one projection as the kernel reads them. */
export interface PackedProjection {
  weight: Int32Array;
  scale?: Float32Array;
  zeros?: Int32Array;
  gIdx?: Int32Array;
  inputScale?: number;
  weightScale2?: number;
}

type Getter = (name: string, shape: number[], dtypes: string[]) => RawTensor | Float32Array;

/** Reads and packs projection `p` (`q_proj`, ...) of `[out, in]`. */
export function packProjection(a: QuantMatMulAttrs, hasInputScale: boolean, p: string, out: number, inDim: number, get: Getter): PackedProjection {
  if (a.weightFormat === 'bf16' || a.weightFormat === 'f16') {
    const t = get(`${p}.weight`, [out, inDim], [a.weightFormat === 'bf16' ? 'BF16' : 'F16', 'F32']);
    if (t instanceof Float32Array || t.dtype === 'F32') {
      const f = t instanceof Float32Array ? t : rawToFloat(`${p}.weight`, t), enc = a.weightFormat === 'bf16' ? f32ToBf16 : f32ToF16;
      const halves = Uint16Array.from(f, (x) => enc(x));
      return { weight: packRows(new Uint8Array(halves.buffer), out, 2 * inDim) };
    }
    return { weight: packRows(t.bytes, out, 2 * inDim) };
  }
  const raw = (name: string, shape: number[], dtypes: string[]) => {
    const t = get(name, shape, dtypes);
    check(!(t instanceof Float32Array), W, () => `tensor '${name}' must be given as stored (a RawTensor of ${dtypes.join(' or ')}), got a Float32Array`);
    return t;
  };
  const floats = (name: string, shape: number[]) => {
    const t = get(name, shape, ['F32', 'F16', 'BF16', 'F8_E4M3']);
    return t instanceof Float32Array ? t : rawToFloat(name, t);
  };
  if (a.weightFormat === 'gptq') {
    const g = a.blockCols;
    const gIdx = int32sOf(`${p}.g_idx`, raw(`${p}.g_idx`, [inDim], ['I32']));
    for (let j = 0; j < inDim; j++) {
      check(gIdx[j] >= 0 && gIdx[j] < inDim / g, W, () => `${p}.g_idx[${j}] (${gIdx[j]}) must be a group in [0, ${inDim / g})`);
    }
    return {
      weight: int32sOf(`${p}.qweight`, raw(`${p}.qweight`, [inDim / 8, out], ['I32'])),
      zeros: int32sOf(`${p}.qzeros`, raw(`${p}.qzeros`, [inDim / g, out / 8], ['I32'])),
      scale: floats(`${p}.scales`, [inDim / g, out]), gIdx,
    };
  }
  const r: PackedProjection = { weight: new Int32Array(0) };
  if (a.weightFormat === 'nvfp4') {
    r.weight = packRows(raw(`${p}.weight`, [out, inDim / 2], ['U8']).bytes, out, inDim / 2);
    r.weightScale2 = floats(`${p}.weight_scale_2`, [1])[0];
    const s = floats(`${p}.weight_scale`, [out, inDim / 16]);
    r.scale = s.map((x) => x * r.weightScale2!); // folded: the kernel multiplies one scale per block
  } else {
    r.weight = packRows(raw(`${p}.weight`, [out, inDim], [a.weightFormat === 'int8' ? 'I8' : 'F8_E4M3']).bytes, out, inDim);
    const c = a.weightScale;
    r.scale = c === 'block' ? floats(`${p}.weight_scale_inv`, [Math.ceil(out / a.blockRows), Math.ceil(inDim / a.blockCols)])
      : floats(`${p}.weight_scale`, c === 'tensor' ? [1] : [out, 1]);
  }
  if (hasInputScale) r.inputScale = floats(`${p}.input_scale`, [1])[0];
  return r;
}

/** Writes packed arrays into a QuantLinear's weights. */
export function writePacked(layer: QuantLinear, p: PackedProjection): void {
  const put = (v: tf.LayerVariable | null, data: Int32Array | Float32Array | number[] | undefined, dtype: 'float32' | 'int32' = 'float32') => {
    if (!v) return;
    const t = tf.tensor(data!, v.shape as number[], dtype);
    v.write(t);
    t.dispose(); // the variable holds the data now
  };
  put(layer.kernel, p.weight, 'int32');
  put(layer.scale, p.scale);
  put(layer.zeros, p.zeros, 'int32');
  put(layer.gIdx, p.gIdx, 'int32');
  put(layer.inputScale, [p.inputScale!]);
  put(layer.weightScale2, [p.weightScale2!]);
  layer.activationScale = p.inputScale ?? null;
}

/** Concatenates `[out_i, in]` parts over out (q, k, v into one stacked projection); per-tensor scales become rowwise. */
export function concatPacked(parts: PackedProjection[], attrs: QuantMatMulAttrs[]): PackedProjection {
  const cat = <T extends Int32Array | Float32Array>(xs: T[], make: (n: number) => T): T => {
    const out = make(xs.reduce((n, x) => n + x.length, 0));
    let at = 0;
    for (const x of xs) { out.set(x as never, at); at += x.length; }
    return out;
  };
  const a0 = attrs[0];
  const r: PackedProjection = { weight: new Int32Array(0), inputScale: Math.max(...parts.map((p) => p.inputScale ?? -Infinity)) };
  if (!Number.isFinite(r.inputScale!)) delete r.inputScale;
  if (a0.weightFormat === 'gptq') {
    check(parts.every((p) => p.gIdx!.every((g, j) => g === parts[0].gIdx![j])), W, () => 'stackedQkv needs the same g_idx on q, k and v (act-order differs)');
    const interleave = <T extends Int32Array | Float32Array>(key: 'weight' | 'scale' | 'zeros', cols: (a: QuantMatMulAttrs) => number, make: (n: number) => T): T => {
      const rows = parts[0][key]!.length / cols(attrs[0]);
      const total = attrs.reduce((n, a) => n + cols(a), 0), out = make(rows * total);
      for (let row = 0; row < rows; row++) {
        let at = row * total;
        parts.forEach((p, i) => { const c = cols(attrs[i]); out.set(p[key]!.subarray(row * c, (row + 1) * c) as never, at); at += c; });
      }
      return out;
    };
    return { ...r, weight: interleave('weight', (a) => a.outDim, (n) => new Int32Array(n)), scale: interleave('scale', (a) => a.outDim, (n) => new Float32Array(n)),
      zeros: interleave('zeros', (a) => a.outDim / 8, (n) => new Int32Array(n)), gIdx: parts[0].gIdx };
  }
  r.weight = cat(parts.map((p) => p.weight), (n) => new Int32Array(n));
  if (a0.weightScale === 'none') return r;
  if (a0.weightScale === 'block' && a0.weightFormat !== 'nvfp4') {
    attrs.slice(0, -1).forEach((a) => check(a.outDim % a.blockRows === 0, W, () =>
      `stackedQkv with block scales needs each of q/k/v's rows (${a.outDim}) to be a multiple of the block rows (${a.blockRows})`));
  }
  r.scale = cat(parts.map((p, i) => attrs[i].weightScale === 'tensor' ? new Float32Array(attrs[i].outDim).fill(p.scale![0]) : p.scale!),
    (n) => new Float32Array(n));
  if (parts[0].weightScale2 !== undefined) r.weightScale2 = Math.max(...parts.map((p) => p.weightScale2!));
  return r;
}
