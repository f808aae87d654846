/**
 * The webgpu QuantMatMul decode kernels (kernels/webgpu/quant_decode_wgsl.ts, quant_gptq_wgsl.ts)
 * and the WGSL activation quantizers (quant_act_wgsl.ts) against the TypeScript kernel
 * (kernels/cpu/quant_ts.ts): every format, 1 to 8 rows, every decode layout (rows per lane group,
 * unroll, gptq column quads, with and without subgroups), shapes with partial steps and partial
 * workgroups, bias, NaN weight codes and NaN / ±Inf input rows; act-order g_idx and K off the
 * vec4 unit go to the generic kernel and agree too.
 */
import * as tf from '@tensorflow/tfjs';
import type { QuantMatMulAttrs } from '../../kernels/kernel_names';
import { quantMatMul } from '../../kernels/quant_matmul';
import { quantMatMulShapes } from '../../kernels/cpu/QuantMatMul';
import { quantMatMulTs, type QuantWeightArrays } from '../../kernels/cpu/quant_ts';
import { webgpuQuantTuning } from '../../kernels/webgpu/QuantMatMul';
import { describeEachBackend } from '../support/backends';
import { randomArray } from '../support/random_layer';

const base = (o: Partial<QuantMatMulAttrs>): QuantMatMulAttrs => ({ weightFormat: 'e4m3', weightScale: 'none', blockRows: 0, blockCols: 0,
  activation: 'none', actGroup: 0, inputScale: 0, weightScale2: 1, inDim: 0, outDim: 0, ...o });

/** Packed arrays of a case: pseudo-random words (e4m3 codes finite unless `nanCodes`, halves below 1). */
function arrays(a: QuantMatMulAttrs, gIdx?: Int32Array, nanCodes = false): QuantWeightArrays {
  const shapes = quantMatMulShapes(a), size = (s: number[]) => s.reduce((p, q) => p * q, 1);
  const word = (i: number) => (Math.imul(i + 11, 2654435761) ^ (i << 7)) | 0;
  const mask = a.weightFormat === 'e4m3' ? 0x3e3e3e3e : a.weightFormat === 'bf16' || a.weightFormat === 'f16' ? 0x3bff3bff : -1;
  const weight = Int32Array.from({ length: size(shapes.weight) }, (_, i) => word(i) & mask);
  if (nanCodes) weight[3] |= 0x7f00; // byte 1 of word 3: code 0x7f (NaN)
  return {
    weight,
    scale: shapes.scale && Float32Array.from({ length: size(shapes.scale) }, (_, i) => 0.05 + (i % 9) / 40),
    zeros: shapes.zeros && Int32Array.from({ length: size(shapes.zeros) }, (_, i) => word(i + 99)),
    gIdx: shapes.gIdx && (gIdx ?? Int32Array.from({ length: a.inDim }, (_, k) => Math.floor(k / a.blockCols))),
  };
}

/** webgpu output and the TypeScript kernel's for x `[T, K]` (bias when `withBias`). */
async function both(a: QuantMatMulAttrs, w: QuantWeightArrays, x: Float32Array, T: number, withBias: boolean): Promise<[Float32Array, Float32Array]> {
  const shapes = quantMatMulShapes(a);
  const bias = withBias ? Float32Array.from({ length: a.outDim }, (_, i) => (i % 5) / 7 - 0.3) : null;
  const want = new Float32Array(T * a.outDim);
  quantMatMulTs(x, T, w, bias, a, want);
  const ts = { weight: tf.tensor(w.weight, shapes.weight, 'int32'), scale: w.scale && tf.tensor(w.scale, shapes.scale),
    zeros: w.zeros && tf.tensor(w.zeros, shapes.zeros, 'int32'), gIdx: w.gIdx && tf.tensor1d(w.gIdx, 'int32'), bias: bias ? tf.tensor1d(bias) : undefined };
  const xt = tf.tensor2d(x, [T, a.inDim]);
  const y = quantMatMul(xt, ts, a);
  const got = (await y.data()) as Float32Array;
  tf.dispose([y, xt, ...Object.values(ts).filter((t): t is tf.Tensor => t !== undefined)]);
  return [got, want];
}

/** max |got - want| / max |want| over finite entries; NaN must match NaN. */
function relErr(got: Float32Array, want: Float32Array): number {
  let err = 0, m = 1e-30;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i]) || Number.isNaN(got[i])) { if (Number.isNaN(want[i]) !== Number.isNaN(got[i])) return Infinity; continue; }
    if (!Number.isFinite(want[i]) || !Number.isFinite(got[i])) { if (want[i] !== got[i]) return Infinity; continue; }
    err = Math.max(err, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  return err / m;
}

const CASES: [string, Partial<QuantMatMulAttrs>, number, number][] = [
  ['fp8 rowwise, per-token', { weightFormat: 'e4m3', weightScale: 'rowwise', activation: 'e4m3_token' }, 176, 37],
  ['fp8 blocks 16x32, per-group 32', { weightFormat: 'e4m3', weightScale: 'block', blockRows: 16, blockCols: 32, activation: 'e4m3_group', actGroup: 32 }, 160, 37],
  ['fp8 per tensor, static', { weightFormat: 'e4m3', weightScale: 'tensor', activation: 'e4m3_static', inputScale: 0.02 }, 48, 37],
  ['int8 w8a8', { weightFormat: 'int8', weightScale: 'rowwise', activation: 'int8_token' }, 176, 37],
  ['nvfp4', { weightFormat: 'nvfp4', weightScale: 'block', blockRows: 1, blockCols: 16, activation: 'nvfp4', actGroup: 16, inputScale: 0.004, weightScale2: 0.7 }, 96, 37],
  ['bf16', { weightFormat: 'bf16', weightScale: 'none' }, 88, 37],
  ['f16', { weightFormat: 'f16', weightScale: 'none' }, 88, 37],
  ['gptq g32', { weightFormat: 'gptq', weightScale: 'block', blockRows: 1, blockCols: 32 }, 160, 40],
];
/** Layouts and the row counts each runs (every pipeline compiles once; lavapipe compiles slowly, so not every pair). */
const LAYOUTS: [{ rows: number; unroll: number; gptqQuads: number; subgroups: boolean }, number[]][] = [
  [{ rows: 0, unroll: 0, gptqQuads: 0, subgroups: true }, [1, 3, 8]],
  [{ rows: 1, unroll: 2, gptqQuads: 4, subgroups: true }, [2]],
  [{ rows: 8, unroll: 1, gptqQuads: 32, subgroups: false }, [5]],
];

/** Each test compiles 5-10 pipelines; lavapipe takes seconds apiece on a loaded machine. */
const COMPILE_HEAVY_MS = 360000;

describeEachBackend('webgpu QuantMatMul decode kernels', () => {
  const saved = { ...webgpuQuantTuning };
  afterEach(() => { Object.assign(webgpuQuantTuning, saved); });

  for (const [title, o, K, N] of CASES) {
    it(`${title}: 1 to 8 rows, three layouts, with bias = the TypeScript kernel`, async () => {
      const a = base({ ...o, inDim: K, outDim: N });
      const w = arrays(a);
      const bad: unknown[] = [];
      for (const [layout, rowCounts] of LAYOUTS) {
        Object.assign(webgpuQuantTuning, layout);
        for (const T of rowCounts) {
          const [got, want] = await both(a, w, Float32Array.from(randomArray(T * K, 3 + T)), T, T % 2 === 0);
          const err = relErr(got, want);
          if (!(err <= 1e-5)) bad.push({ layout, T, err });
        }
      }
      expect(bad).toEqual([]);
    }, COMPILE_HEAVY_MS);
  }

  it('NaN / ±Inf input rows give NaN rows where the TypeScript kernel does; NaN e4m3 codes give NaN outputs', async () => {
    const bad: unknown[] = [];
    for (const [, o, K, N] of CASES) {
      const a = base({ ...o, inDim: K, outDim: N });
      const x = Float32Array.from(randomArray(3 * K, 5));
      // ±Inf into a static e4m3 / nvfp4 quantizer: the TypeScript kernel saturates (448 s), the composite
      // reference and the WGSL quantizer give NaN (x / s rounded, plus v - v); those formats get NaN rows only
      const infOk = a.activation !== 'e4m3_static' && a.activation !== 'nvfp4';
      x[5] = NaN; x[K + 7] = infOk ? Infinity : NaN; x[2 * K + 1] = infOk ? -Infinity : NaN;
      const [got, want] = await both(a, arrays(a), x, 3, false);
      const err = relErr(got, want);
      if (!(err <= 1e-5)) bad.push({ fmt: a.weightFormat, activation: a.activation, err });
    }
    expect(bad).toEqual([]);
    const a = base({ weightFormat: 'e4m3', weightScale: 'rowwise', inDim: 64, outDim: 9 });
    const [got, want] = await both(a, arrays(a, undefined, true), Float32Array.from(randomArray(2 * 64, 6)), 2, false);
    expect(Number.isNaN(want[0]) && Number.isNaN(got[0]) && Number.isNaN(got[9])).toBe(true);
    expect(relErr(got, want)).toBeLessThanOrEqual(1e-5);
  }, COMPILE_HEAVY_MS);

  it('act-order g_idx, K off the vec4 unit and narrow blocks take the generic kernel and agree', async () => {
    const shapes: [Partial<QuantMatMulAttrs>, number, number, Int32Array?][] = [
      [{ weightFormat: 'gptq', weightScale: 'block', blockRows: 1, blockCols: 16 }, 64, 16, Int32Array.from({ length: 64 }, (_, k) => (k * 3) % 4)],
      [{ weightFormat: 'e4m3', weightScale: 'rowwise', activation: 'e4m3_token' }, 44, 9],
      [{ weightFormat: 'int8', weightScale: 'block', blockRows: 3, blockCols: 8 }, 48, 9],
      [{ weightFormat: 'f16', weightScale: 'none' }, 36, 9],
    ];
    for (const [o, K, N, g] of shapes) {
      const a = base({ ...o, inDim: K, outDim: N });
      const [got, want] = await both(a, arrays(a, g), Float32Array.from(randomArray(4 * K, 7)), 4, true);
      expect(relErr(got, want)).toBeLessThanOrEqual(1e-5);
    }
  }, COMPILE_HEAVY_MS);
}, ['webgpu']);
