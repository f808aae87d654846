/**
 * QuantMatMul on WebGPU (issue 12, the H200 ratios): `[T, K] x [K, N]` with K = N = 8192 and
 * T = 1 and 8, every weight format, against the float32 WebGPU DenseMatMul (weights `[N, K]`, the
 * layout the whole-model path uses) on the same product.
 * 1. Checks: every case at K = N = 1024 and T = 1, 3, 8 (and T = 8 without subgroups) against the
 *    TypeScript kernel (kernels/cpu/quant_ts.ts, float64 sums) with its activation quantizer.
 * 2. `--sweep`: per case and T, the decode layouts (webgpuQuantTuning: rows per lane group x
 *    unroll, gptq column quads), each output checked against the generic kernel's at full size;
 *    the fastest (GPU time) is kept for step 3.
 * 3. Per case: the packed kernel alone (activations already quantized), the whole op (its
 *    activation quantizer included, what a layer costs) and the float32 GEMV, alternating in
 *    rounds after ~0.4 s of GPU load (clocks up); medians of GPU timestamps of each call's compute pass,
 *    and of wall time per call of a back-to-back batch. The quantized weights rotate over copies
 *    totalling >= 256 MB, so no call finds its weights in the L2 cache (the float32 weight is 268 MB;
 *    a model's layers do not repeat either). ratio = float32 ms / quantized ms
 *    (targets: fp8 / int8 >= 2.5x, nvfp4 / int4 >= 4x, bf16 / f16 >= 1.7x).
 *
 * Here (lavapipe): `node dist/bench/quant_webgpu.js --small [--sweep] [--only <case name part>]` (K = N = 512). On the H200: bundle with
 * bench/device/prepare_quant.sh, then `bash bench/device/run_quant.sh` (`--sweep`).
 */
/// <reference types="@webgpu/types" />
import * as tf from '@tensorflow/tfjs';
import { denseMatMul } from '../kernels/model_ops.js';
import { quantMatMul } from '../kernels/quant_matmul.js';
import type { QuantMatMulAttrs } from '../kernels/kernel_names.js';
import { quantMatMulShapes } from '../kernels/cpu/QuantMatMul.js';
import { quantMatMulTs } from '../kernels/cpu/quant_ts.js';
import { registerAllKernels } from '../kernels/register_all.js';
import { webgpuQuantTuning } from '../kernels/webgpu/QuantMatMul.js';
import { type QuantCase, quantCases, randomWords } from './quant_cases.js';
import { batchMs, median, passTimesMs, warmUp } from './webgpu_harness.js';
import { initWebGpuNode, webGpuNodeStatus } from '../lib/backends/webgpu_node.js';

const small = process.argv.includes('--small');
const sweep = process.argv.includes('--sweep');
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : '';
const K = small ? 512 : 8192, N = K;
const ROUNDS = small ? 3 : 5;
const t0 = performance.now();
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
type Tuning = typeof webgpuQuantTuning;
const DEFAULT_TUNING: Tuning = { ...webgpuQuantTuning };
type Weights = { weight: tf.Tensor; scale?: tf.Tensor; zeros?: tf.Tensor; gIdx?: tf.Tensor };

const attrsOf = (c: QuantCase, k: number, n: number): QuantMatMulAttrs => ({ weightFormat: 'e4m3', weightScale: 'none', blockRows: 0,
  blockCols: 0, activation: 'none', actGroup: 0, inputScale: 0, weightScale2: 1, inDim: k, outDim: n, ...c.attrs });

/** Random packed weight arrays of a case. */
function makeArrays(c: QuantCase, a: QuantMatMulAttrs): { weight: Int32Array; scale?: Float32Array; zeros?: Int32Array; gIdx?: Int32Array } {
  const shapes = quantMatMulShapes(a), size = (s: number[]) => s.reduce((p, q) => p * q, 1);
  return {
    weight: randomWords(size(shapes.weight), a.weightFormat),
    scale: c.scales ? Float32Array.from({ length: size(shapes.scale) }, (_, i) => 0.01 * (1 + (i % 7) / 7)) : undefined,
    zeros: c.zeros ? randomWords(size(shapes.zeros), 'gptq') : undefined,
    gIdx: a.weightFormat === 'gptq' ? Int32Array.from({ length: a.inDim }, (_, k) => Math.floor(k / 128)) : undefined,
  };
}

function toTensors(a: QuantMatMulAttrs, w: ReturnType<typeof makeArrays>): Weights {
  const shapes = quantMatMulShapes(a);
  return { weight: tf.tensor(w.weight, shapes.weight, 'int32'), scale: w.scale && tf.tensor(w.scale, shapes.scale),
    zeros: w.zeros && tf.tensor(w.zeros, shapes.zeros, 'int32'), gIdx: w.gIdx && tf.tensor1d(w.gIdx, 'int32') };
}
const disposeWeights = (w: Weights) => tf.dispose([w.weight, w.scale, w.zeros, w.gIdx].filter((t): t is tf.Tensor => t !== undefined));

/** max |a - b| / max |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0, m = 1e-30;
  for (let i = 0; i < b.length; i++) { err = Math.max(err, Math.abs(a[i] - b[i])); m = Math.max(m, Math.abs(b[i])); }
  return Number.isNaN(err) ? Infinity : err / m;
}

/** Rel err of case c (activation quantizer included) at K = N = 1024 against the TypeScript kernel. */
async function checkAgainstReference(c: QuantCase, T: number): Promise<number> {
  const a = attrsOf(c, 1024, 1024);
  const arrays = makeArrays(c, a), xs = Float32Array.from({ length: T * 1024 }, (_, i) => Math.sin(0.37 * i + 1));
  const r = new Float32Array(T * 1024);
  quantMatMulTs(xs, T, arrays, null, a, r);
  const ins = toTensors(a, arrays), x = tf.tensor2d(xs, [T, 1024]);
  const got = quantMatMul(x, ins, a);
  const err = relErr(await got.data(), r);
  tf.dispose([got, x]);
  disposeWeights(ins);
  return err;
}

/** Median GPU ms of f's compute pass (or batch wall ms without timestamps). */
async function gpuMs(f: () => tf.Tensor, reps: number): Promise<number> {
  const t = await passTimesMs(f, reps);
  return t ? median(t) : batchMs(f, reps);
}

/** The decode layouts the sweep tries for a case. */
function layouts(c: QuantCase): Tuning[] {
  if (c.attrs.weightFormat === 'gptq') return [0, 4, 8, 16].map((q) => ({ ...DEFAULT_TUNING, gptqQuads: q }));
  const out: Tuning[] = [[0, 0], [2, 1], [2, 2], [4, 1], [4, 2]].map(([rows, unroll]) => ({ ...DEFAULT_TUNING, rows, unroll }));
  return [...out, { ...DEFAULT_TUNING, subgroups: false }];
}
const tag = (t: Tuning) => (t.rows || t.unroll || t.gptqQuads ? `rows ${t.rows || 'auto'} unroll ${t.unroll || 'auto'} quads ${t.gptqQuads || 'auto'}` : 'auto')
  + (t.subgroups ? '' : ' no-subgroups');

/** The fastest decode layout of case c at T rows (each layout's output checked against the generic kernel's). */
async function sweepLayouts(c: QuantCase, T: number, x: tf.Tensor2D, ws: Weights[], a: QuantMatMulAttrs): Promise<Tuning> {
  const w = ws[0];
  let i = 0;
  const next = () => ws[i++ % ws.length];
  const kernelOnly = { ...a, activation: 'none' as const };
  Object.assign(webgpuQuantTuning, DEFAULT_TUNING, { decode: false });
  const ref = quantMatMul(x, w, kernelOnly);
  const refData = await ref.data();
  ref.dispose();
  let best = DEFAULT_TUNING, bestMs = Infinity;
  await heat(() => quantMatMul(x, w, kernelOnly), small ? 20 : 150);
  for (const t of layouts(c)) {
    Object.assign(webgpuQuantTuning, t);
    try {
      const y = quantMatMul(x, w, kernelOnly);
      const err = relErr(await y.data(), refData);
      y.dispose();
      await warmUp(() => quantMatMul(x, w, kernelOnly));
      const ms = await gpuMs(() => quantMatMul(x, next(), kernelOnly), 24);
      console.log(`RESULT sweep ${c.name} T=${T} ${tag(t)}: ${ms.toFixed(4)} ms, err vs generic ${err.toExponential(1)} (${elapsed()})`);
      if (err <= 1e-5 && ms < bestMs) { best = t; bestMs = ms; }
    } catch (e) {
      console.log(`RESULT sweep ${c.name} T=${T} ${tag(t)}: failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return best;
}

/** Wall ms per call of `reps` back-to-back calls, to the last result read back (which flushes tfjs's batched submits). */
async function wallMs(f: () => tf.Tensor, reps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < reps - 1; i++) f().dispose();
  const last = f();
  await last.data();
  last.dispose();
  return (performance.now() - t0) / reps;
}

/** Keeps the GPU busy for ~`ms` (clocks up before a timed block). */
async function heat(f: () => tf.Tensor, ms: number): Promise<void> {
  const t = performance.now();
  while (performance.now() - t < ms) await wallMs(f, 20);
}

/** Medians of alternating rounds of every side: GPU timestamps of each call's pass, and wall ms per call of a batch. */
async function alternate(sides: (() => tf.Tensor)[], reps: number): Promise<{ gpu: number[]; wall: number[] }> {
  for (const f of sides) await warmUp(f);
  await heat(sides[sides.length - 1], small ? 50 : 400);
  const gpu = sides.map(() => [] as number[]), wall = sides.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (let s = 0; s < sides.length; s++) {
      gpu[s].push(await gpuMs(sides[s], reps));
      wall[s].push(await wallMs(sides[s], reps));
    }
  }
  return { gpu: gpu.map(median), wall: wall.map(median) };
}

/** Copies of a case's weights so that one pass over them (>= 256 MB) does not fit the L2 cache (50 MB on the H200). */
function weightCopies(a: QuantMatMulAttrs, c: QuantCase): Weights[] {
  const bytes = 4 * (c.words + c.scales + (c.zeros ?? 0));
  const n = small ? 1 : Math.max(1, Math.ceil(256e6 / bytes));
  const arrays = makeArrays(c, a);
  return Array.from({ length: n }, () => toTensors(a, arrays));
}

async function main(): Promise<void> {
  if (!(await initWebGpuNode(['disable-dawn-features=timestamp_quantization']))) throw new Error(`webgpu unavailable: ${webGpuNodeStatus().reason}`);
  registerAllKernels();
  await tf.setBackend('webgpu');
  const st = webGpuNodeStatus();
  const dev = (tf.backend() as unknown as { device: GPUDevice }).device;
  console.log(`adapter: ${JSON.stringify(st.adapter)}; K = N = ${K}; timestamps ${dev.features.has('timestamp-query')}; subgroups ${dev.features.has('subgroups' as GPUFeatureName)}`);
  const cases = quantCases(N, K).filter((c) => c.name.includes(only));
  for (const c of cases) {
    const errs: string[] = [];
    for (const T of [1, 3, 8]) errs.push(`T=${T} ${(await checkAgainstReference(c, T)).toExponential(1)}`);
    Object.assign(webgpuQuantTuning, { subgroups: false });
    errs.push(`T=8 no-subgroups ${(await checkAgainstReference(c, 8)).toExponential(1)}`);
    Object.assign(webgpuQuantTuning, DEFAULT_TUNING);
    console.log(`RESULT check ${c.name} vs TypeScript kernel (K = N = 1024): ${errs.join(', ')} (${elapsed()})`);
  }
  if (process.argv.includes('--check-only')) process.exit(0);
  const wF32 = tf.tidy(() => tf.randomUniform([N, K], -0.5, 0.5)) as tf.Tensor2D; // [N, K]
  const table: string[] = ['| case | T | quantized kernel ms | op ms (with activation quantizer) | float32 GEMV ms | kernel ratio | op ratio | op ratio (wall) | target | layout |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
  for (const T of [1, 8]) {
    const x = tf.tidy(() => tf.randomNormal([T, K])) as tf.Tensor2D; // [T, K]
    for (const c of cases) {
      const a = attrsOf(c, K, N);
      const ws = weightCopies(a, c);
      try {
        const best = sweep ? await sweepLayouts(c, T, x, ws, a) : DEFAULT_TUNING;
        Object.assign(webgpuQuantTuning, best);
        const kernelOnly = { ...a, activation: 'none' as const };
        const reps = small ? 5 : 40;
        let i = 0;
        const next = () => ws[i++ % ws.length]; // weights rotate: each call reads its copy from DRAM, as a model's layers do
        const { gpu: [kern, op, f32], wall: [, opWall, f32Wall] } = await alternate(
          [() => quantMatMul(x, next(), kernelOnly), () => quantMatMul(x, next(), a), () => denseMatMul(x, wF32)], reps);
        table.push(`| ${c.name} | ${T} | ${kern.toFixed(4)} | ${op.toFixed(4)} | ${f32.toFixed(4)} | ${(f32 / kern).toFixed(2)}x | ${(f32 / op).toFixed(2)}x | `
          + `${(f32Wall / opWall).toFixed(2)}x (${opWall.toFixed(3)} / ${f32Wall.toFixed(3)} ms) | ${c.target}x | ${tag(best)}, ${ws.length} copies |`);
        console.log(`RESULT ${table[table.length - 1]} (${elapsed()})`);
      } catch (e) {
        console.log(`RESULT | ${c.name} | ${T} | failed: ${(e as Error).message.split('\n')[0]} |`);
      }
      Object.assign(webgpuQuantTuning, DEFAULT_TUNING);
      ws.forEach(disposeWeights);
    }
    x.dispose();
  }
  console.log(`\n${table.join('\n')}`);
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
