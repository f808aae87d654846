/**
 * Quantizes a float projection weight `[out, in]` into the tensors a Hugging Face checkpoint of
 * that format stores (names and layouts of spec/fixtures/README.md "quant/"), as RawTensors that
 * `setHfWeights` takes back: how specs and tools write quantized checkpoints from a float one.
 * Scales: max-abs per tensor / row / block / 16-block (nvfp4 with a global scale), GPTQ v1
 * asymmetric per `group` input rows with round-to-nearest (no Hessian-based GPTQ updates).
 *
 * @example
 * const t = quantizeProjection('fp8_dynamic', 'q_proj', w, 512, 256); // { 'q_proj.weight': F8_E4M3, 'q_proj.weight_scale': F32 [512, 1] }
 */
import { f16ToF32, f32ToBf16, f32ToE2m1, f32ToE4m3, f32ToF16, roundE4m3, roundHalfEven } from '../../core/fp_formats.js';
import { check } from '../errors.js';
import type { QuantFormat } from './quant_config.js';
import type { RawTensor } from './quant_weights.js';

const f32 = (shape: number[], v: number[] | Float32Array): RawTensor => ({ dtype: 'F32', shape, bytes: new Uint8Array(Float32Array.from(v).buffer) });
const maxAbs = (w: Float32Array, idx: (i: number) => number, n: number) => { let m = 0; for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(w[idx(i)])); return m; };

/** HF tensors of projection `p` in `format` (plus `bf16` / `f16`); `inputScale` for the static formats. */
export function quantizeProjection(format: QuantFormat | 'bf16' | 'f16', p: string, w: Float32Array, out: number, inDim: number,
  o: { inputScale?: number; group?: number; block?: [number, number] } = {}): Record<string, RawTensor> {
  check(w.length === out * inDim, 'quantizeProjection', () => `w has ${w.length} values, [${out}, ${inDim}] needs ${out * inDim}`);
  const r: Record<string, RawTensor> = {};
  const e4m3Bytes = (scaleOf: (row: number, col: number) => number) => {
    const b = new Uint8Array(out * inDim);
    for (let i = 0; i < out; i++) for (let j = 0; j < inDim; j++) { const s = scaleOf(i, j); b[i * inDim + j] = f32ToE4m3(s === 0 ? 0 : w[i * inDim + j] / s); }
    return b;
  };
  const rowScales = (qmax: number) => Array.from({ length: out }, (_, i) => maxAbs(w, (j) => i * inDim + j, inDim) / qmax);
  switch (format) {
    case 'bf16': case 'f16': {
      const h = Uint16Array.from(w, (x) => (format === 'bf16' ? f32ToBf16(x) : f32ToF16(x)));
      r[`${p}.weight`] = { dtype: format === 'bf16' ? 'BF16' : 'F16', shape: [out, inDim], bytes: new Uint8Array(h.buffer) };
      return r;
    }
    case 'fp8_static': {
      const s = maxAbs(w, (i) => i, w.length) / 448;
      r[`${p}.weight`] = { dtype: 'F8_E4M3', shape: [out, inDim], bytes: e4m3Bytes(() => s) };
      r[`${p}.weight_scale`] = f32([1], [s]);
      r[`${p}.input_scale`] = f32([1], [o.inputScale ?? 1]);
      return r;
    }
    case 'fp8_dynamic': {
      const s = rowScales(448);
      r[`${p}.weight`] = { dtype: 'F8_E4M3', shape: [out, inDim], bytes: e4m3Bytes((i) => s[i]) };
      r[`${p}.weight_scale`] = f32([out, 1], s);
      return r;
    }
    case 'fp8_block': {
      const [bR, bC] = o.block ?? [128, 128], nr = Math.ceil(out / bR), nc = Math.ceil(inDim / bC), s = new Float32Array(nr * nc);
      for (let i = 0; i < out; i++) for (let j = 0; j < inDim; j++) { const k = Math.floor(i / bR) * nc + Math.floor(j / bC); s[k] = Math.max(s[k], Math.abs(w[i * inDim + j]) / 448); }
      r[`${p}.weight`] = { dtype: 'F8_E4M3', shape: [out, inDim], bytes: e4m3Bytes((i, j) => s[Math.floor(i / bR) * nc + Math.floor(j / bC)]) };
      r[`${p}.weight_scale_inv`] = f32([nr, nc], s);
      return r;
    }
    case 'int8_w8a8': {
      const s = rowScales(127), b = new Int8Array(out * inDim);
      for (let i = 0; i < out; i++) for (let j = 0; j < inDim; j++) b[i * inDim + j] = s[i] === 0 ? 0 : Math.max(-127, Math.min(127, roundHalfEven(w[i * inDim + j] / s[i])));
      r[`${p}.weight`] = { dtype: 'I8', shape: [out, inDim], bytes: new Uint8Array(b.buffer) };
      r[`${p}.weight_scale`] = f32([out, 1], s);
      return r;
    }
    case 'nvfp4': {
      const g = maxAbs(w, (i) => i, w.length) / (448 * 6) || 1;
      const codes = new Uint8Array(out * inDim / 2), scales = new Uint8Array(out * inDim / 16);
      for (let i = 0; i < out; i++) {
        for (let b = 0; b < inDim / 16; b++) {
          const bs = roundE4m3(maxAbs(w, (j) => i * inDim + b * 16 + j, 16) / 6 / g);
          scales[i * (inDim / 16) + b] = f32ToE4m3(bs);
          for (let j = 0; j < 16; j++) {
            const c = f32ToE2m1(bs === 0 ? 0 : w[i * inDim + b * 16 + j] / (bs * g)), at = (i * inDim + b * 16 + j) >> 1;
            codes[at] |= j % 2 === 0 ? c : c << 4; // low nibble = even column
          }
        }
      }
      r[`${p}.weight`] = { dtype: 'U8', shape: [out, inDim / 2], bytes: codes };
      r[`${p}.weight_scale`] = { dtype: 'F8_E4M3', shape: [out, inDim / 16], bytes: scales };
      r[`${p}.weight_scale_2`] = f32([1], [g]);
      r[`${p}.input_scale`] = f32([1], [o.inputScale ?? 1]);
      return r;
    }
    case 'gptq_int4': {
      const G = o.group ?? 64, groups = inDim / G;
      const qweight = new Int32Array(inDim / 8 * out), qzeros = new Int32Array(groups * out / 8), scales = new Uint16Array(groups * out), gIdx = new Int32Array(inDim);
      for (let g = 0; g < groups; g++) {
        for (let n = 0; n < out; n++) {
          let lo = 0, hi = 0;
          for (let k = g * G; k < (g + 1) * G; k++) { lo = Math.min(lo, w[n * inDim + k]); hi = Math.max(hi, w[n * inDim + k]); }
          const sh = f32ToF16((hi - lo) / 15 || 1), s = f16ToF32(sh);
          const zero = Math.max(1, Math.min(15, roundHalfEven(-lo / s)));
          scales[g * out + n] = sh;
          qzeros[g * (out / 8) + (n >> 3)] |= (zero - 1) << (4 * (n & 7));
          for (let k = g * G; k < (g + 1) * G; k++) {
            const q = Math.max(0, Math.min(15, roundHalfEven(w[n * inDim + k] / s) + zero));
            qweight[(k >> 3) * out + n] |= q << (4 * (k & 7));
          }
        }
      }
      for (let k = 0; k < inDim; k++) gIdx[k] = Math.floor(k / G);
      const i32 = (shape: number[], a: Int32Array): RawTensor => ({ dtype: 'I32', shape, bytes: new Uint8Array(a.buffer) });
      r[`${p}.qweight`] = i32([inDim / 8, out], qweight);
      r[`${p}.qzeros`] = i32([groups, out / 8], qzeros);
      r[`${p}.scales`] = { dtype: 'F16', shape: [groups, out], bytes: new Uint8Array(scales.buffer) };
      r[`${p}.g_idx`] = i32([inDim], gIdx);
      return r;
    }
  }
}

