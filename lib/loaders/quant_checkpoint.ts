/**
 * The packed side of checkpoint loading: which tensors a quantized (or half-precision) projection
 * stores under its Hugging Face names, checking them against the safetensors headers before any
 * byte is read (missing tensors, dtypes, shapes of scales / zeros / g_idx against the weight),
 * and reading them as stored (raw bytes, never widened to float32).
 *
 * @example
 * const specs = packedTensorSpecs(attrs, false, 'model.layers.0.mlp.down_proj', locations);
 * checkPackedTensors(locations, specs); // throws naming each missing / mis-typed / mis-shaped tensor
 */
import * as fs from 'node:fs';

import type { QuantMatMulAttrs } from '../../kernels/kernel_names.js';
import type { RawTensor } from '../attention/quant_weights.js';
import { check } from '../errors.js';
import { openRegularFile, readFully } from './checkpoint_files.js';
import type { TensorLocation } from './checkpoint.js';

const W = 'loadPretrained';

/** What one stored tensor must be: its shape (`[]` and `[1]` both pass for scalars) and allowed dtypes. */
export interface PackedTensorSpec {
  shape: number[];
  dtypes: string[];
}

export const ELEMENT_BYTES: Record<string, number> = { F8_E4M3: 1, U8: 1, I8: 1, I32: 4, F16: 2, BF16: 2, F32: 4 };
const FLOATS = ['F32', 'F16', 'BF16'];

/**
 * Tensors of packed projection `p` (full HF prefix, e.g. `model.layers.0.self_attn.q_proj`) of
 * `[out, in]` weights in the attrs' format. Block FP8 scales are `weight_scale_inv` (DeepSeek's
 * `fp8` method) or `weight_scale` (compressed-tensors block strategy): whichever the checkpoint has.
 */
export function packedTensorSpecs(a: QuantMatMulAttrs, hasInputScale: boolean, p: string, found: Map<string, TensorLocation>): Map<string, PackedTensorSpec> {
  const out = a.outDim, inDim = a.inDim;
  const s = new Map<string, PackedTensorSpec>();
  switch (a.weightFormat) {
    case 'bf16': case 'f16':
      s.set(`${p}.weight`, { shape: [out, inDim], dtypes: [a.weightFormat === 'bf16' ? 'BF16' : 'F16'] });
      return s;
    case 'gptq': {
      const groups = inDim / a.blockCols;
      s.set(`${p}.qweight`, { shape: [inDim / 8, out], dtypes: ['I32'] });
      s.set(`${p}.qzeros`, { shape: [groups, out / 8], dtypes: ['I32'] });
      s.set(`${p}.scales`, { shape: [groups, out], dtypes: FLOATS });
      s.set(`${p}.g_idx`, { shape: [inDim], dtypes: ['I32'] });
      return s;
    }
    case 'nvfp4':
      s.set(`${p}.weight`, { shape: [out, inDim / 2], dtypes: ['U8'] });
      s.set(`${p}.weight_scale`, { shape: [out, inDim / 16], dtypes: ['F8_E4M3'] });
      s.set(`${p}.weight_scale_2`, { shape: [1], dtypes: FLOATS });
      break;
    default: {
      s.set(`${p}.weight`, { shape: [out, inDim], dtypes: [a.weightFormat === 'int8' ? 'I8' : 'F8_E4M3'] });
      if (a.weightScale === 'block') {
        const name = found.has(`${p}.weight_scale_inv`) || !found.has(`${p}.weight_scale`) ? 'weight_scale_inv' : 'weight_scale';
        s.set(`${p}.${name}`, { shape: [Math.ceil(out / a.blockRows), Math.ceil(inDim / a.blockCols)], dtypes: FLOATS });
      } else {
        s.set(`${p}.weight_scale`, { shape: a.weightScale === 'tensor' ? [1] : [out, 1], dtypes: FLOATS });
      }
    }
  }
  if (hasInputScale) s.set(`${p}.input_scale`, { shape: [1], dtypes: FLOATS });
  return s;
}

const sameShape = (got: number[], want: number[]) =>
  (want.length === 1 && want[0] === 1 && got.length === 0) || (got.length === want.length && got.every((d, i) => d === want[i]));

/** Every spec'd tensor is present with an allowed dtype, the spec's shape and the bytes that shape needs. */
export function checkPackedTensors(found: Map<string, TensorLocation>, specs: Map<string, PackedTensorSpec>, where = W): void {
  const missing = [...specs.keys()].filter((n) => !found.has(n));
  check(missing.length === 0, where, () =>
    `checkpoint lacks ${missing.length} tensor(s) of its quantized format: ${missing.slice(0, 8).map((n) => `${n} (${specs.get(n)!.dtypes.join('/')} [${specs.get(n)!.shape}])`).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
  const bad: string[] = [];
  for (const [name, spec] of specs) {
    const loc = found.get(name)!;
    if (!spec.dtypes.includes(loc.dtype)) bad.push(`${name} is ${loc.dtype}, expected ${spec.dtypes.join(' or ')}`);
    else if (!sameShape(loc.shape, spec.shape)) bad.push(`${name} is [${loc.shape}], expected [${spec.shape}]`);
    else {
      const want = spec.shape.reduce((x, y) => x * y, 1) * ELEMENT_BYTES[loc.dtype];
      if (loc.end - loc.begin !== want) bad.push(`${name} holds ${loc.end - loc.begin} bytes, [${spec.shape}] of ${loc.dtype} needs ${want}`);
    }
  }
  check(bad.length === 0, where, () => `mis-typed or mis-shaped tensor(s): ${bad.slice(0, 8).join('; ')}${bad.length > 8 ? '; ...' : ''}`);
}

/**
 * Reads tensors as stored (their bytes, no widening), each file opened once and read in offset
 * order; the map keeps the given names.
 */
export function readRawTensors(locations: Map<string, TensorLocation>, names: Iterable<string>): Map<string, RawTensor> {
  const wanted = [...names].map((n) => {
    const loc = locations.get(n);
    check(loc, W, () => `tensor '${n}' is not in the checkpoint`);
    return loc;
  });
  const byFile = new Map<string, TensorLocation[]>();
  for (const loc of wanted) byFile.set(loc.file, [...(byFile.get(loc.file) ?? []), loc]);
  const out = new Map<string, RawTensor>();
  for (const [file, locs] of byFile) {
    locs.sort((a, b) => a.begin - b.begin);
    const { fd } = openRegularFile(file, W);
    try {
      for (const loc of locs) {
        // 4-byte aligned own buffer: I32 words are viewed in place by the packers
        const bytes = new Uint8Array(new ArrayBuffer((loc.end - loc.begin + 3) & ~3), 0, loc.end - loc.begin);
        readFully(fd, bytes, loc.begin, loc.file, W, `tensor '${loc.name}'`);
        out.set(loc.name, { dtype: loc.dtype, shape: loc.shape.length === 0 ? [1] : loc.shape.slice(), bytes });
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return out;
}
