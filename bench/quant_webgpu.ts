/**
 * QuantMatMul on WebGPU (issue 12, the H200 ratios): `[T, K] x [K, N]` with K = N = 8192 and
 * T = 1 and 8, every weight format, against the float32 WebGPU DenseMatMul (weights `[N, K]`, the
 * layout the whole-model path uses) on the same product. Per case: the packed kernel alone
 * (activations already quantized, what the kernel costs), and the whole op (quantMatMul with its
 * activation quantizer, what a layer costs). Sides alternate in rounds in one process; each round
 * times `reps` calls to queue completion; medians; ratio = float32 time / quantized time (targets:
 * fp8 / int8 >= 2.5x, nvfp4 / int4 >= 4x, bf16 / f16 >= 1.7x). Each case is first checked against
 * the TypeScript kernel (kernels/cpu/quant_ts.ts) with its activation quantizer
 * at K = N = 1024 with the same T (the kernels are the same at every size).
 *
 * Here (lavapipe): `node dist/bench/quant_webgpu.js --small` (K = N = 512). On the H200: bundle with
 * bench/device/prepare_quant.sh, then `bash bench/device/run_quant.sh`.
 */
/// <reference types="@webgpu/types" />
import * as tf from '@tensorflow/tfjs';
import { denseMatMul } from '../kernels/model_ops.js';
import { quantMatMul } from '../kernels/quant_matmul.js';
import type { QuantMatMulAttrs } from '../kernels/kernel_names.js';
import { quantMatMulShapes } from '../kernels/cpu/QuantMatMul.js';
import { quantMatMulTs } from '../kernels/cpu/quant_ts.js';
import { registerAllKernels } from '../kernels/register_all.js';
import { type QuantCase, quantCases, randomWords } from './quant_cases.js';
import { initWebGpuNode, webGpuNodeStatus } from '../lib/backends/webgpu_node.js';

const small = process.argv.includes('--small');
const K = small ? 512 : 8192, N = K;
const ROUNDS = small ? 3 : 7;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

const CASES = quantCases(N, K);
type Case = QuantCase;

/** Random packed weight arrays of a case (`a.inDim` x `a.outDim`). */
function makeArrays(c: Case, a: QuantMatMulAttrs): { weight: Int32Array; scale?: Float32Array; zeros?: Int32Array; gIdx?: Int32Array } {
  const shapes = quantMatMulShapes(a), size = (s: number[]) => s.reduce((p, q) => p * q, 1);
  return {
    weight: randomWords(size(shapes.weight), a.weightFormat),
    scale: c.scales ? Float32Array.from({ length: size(shapes.scale) }, (_, i) => 0.01 * (1 + (i % 7) / 7)) : undefined,
    zeros: c.zeros ? randomWords(size(shapes.zeros), 'gptq') : undefined,
    gIdx: a.weightFormat === 'gptq' ? Int32Array.from({ length: a.inDim }, (_, k) => Math.floor(k / 128)) : undefined,
  };
}

/** The arrays as tensors on the active backend. */
function toTensors(a: QuantMatMulAttrs, w: ReturnType<typeof makeArrays>): { weight: tf.Tensor; scale?: tf.Tensor; zeros?: tf.Tensor; gIdx?: tf.Tensor } {
  const shapes = quantMatMulShapes(a);
  return {
    weight: tf.tensor(w.weight, shapes.weight, 'int32'),
    scale: w.scale && tf.tensor(w.scale, shapes.scale),
    zeros: w.zeros && tf.tensor(w.zeros, shapes.zeros, 'int32'),
    gIdx: w.gIdx && tf.tensor1d(w.gIdx, 'int32'),
  };
}

/**
 * Max |webgpu - reference| / max |reference| of case c (activation quantizer included) at
 * K = N = 1024: the reference is the TypeScript kernel (kernels/cpu/quant_ts.ts, float64 sums).
 */
async function checkAgainstReference(c: Case, T: number): Promise<number> {
  const a: QuantMatMulAttrs = { weightFormat: 'e4m3', weightScale: 'none', blockRows: 0, blockCols: 0, activation: 'none', actGroup: 0,
    inputScale: 0, weightScale2: 1, inDim: 1024, outDim: 1024, ...c.attrs };
  const arrays = makeArrays(c, a), xs = Float32Array.from({ length: T * 1024 }, (_, i) => Math.sin(0.37 * i + 1));
  const r = new Float32Array(T * 1024);
  quantMatMulTs(xs, T, arrays, null, a, r);
  const ins = toTensors(a, arrays), x = tf.tensor2d(xs, [T, 1024]);
  const got = quantMatMul(x, ins, a);
  const g = await got.data();
  let err = 0, m = 1e-30;
  for (let i = 0; i < g.length; i++) { err = Math.max(err, Math.abs(g[i] - r[i])); m = Math.max(m, Math.abs(r[i])); }
  tf.dispose([got, x, ...Object.values(ins).filter((t): t is tf.Tensor => t !== undefined)]);
  return err / m;
}

/** Wall time of `reps` calls to completion, per call (reading the last result back flushes tfjs's batched commands). */
async function timeCalls(f: () => tf.Tensor, reps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < reps - 1; i++) f().dispose();
  const last = f();
  await last.data();
  last.dispose();
  return (performance.now() - t0) / reps;
}

/** Medians of alternating rounds of every side. */
async function alternate(sides: (() => tf.Tensor)[], reps: number): Promise<number[]> {
  for (const f of sides) await timeCalls(f, 2); // warm-up: pipelines compiled, buffers allocated
  const times = sides.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) for (let s = 0; s < sides.length; s++) times[s].push(await timeCalls(sides[s], reps));
  return times.map(median);
}

async function main(): Promise<void> {
  if (!(await initWebGpuNode())) throw new Error(`webgpu unavailable: ${webGpuNodeStatus().reason}`);
  registerAllKernels();
  await tf.setBackend('webgpu');
  const st = webGpuNodeStatus();
  console.log(`adapter: ${JSON.stringify(st.adapter)}; K = N = ${K}`);
  const wF32 = tf.tidy(() => tf.randomUniform([N, K], -0.5, 0.5)) as tf.Tensor2D; // [N, K]
  const table: string[] = ['| case | T | quantized kernel ms | op ms (with activation quantizer) | float32 DenseMatMul ms | kernel ratio | op ratio | target | rel err |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
  for (const T of [1, 8]) {
    const x = tf.tidy(() => tf.randomNormal([T, K])) as tf.Tensor2D; // [T, K]
    for (const c of CASES) {
      const a: QuantMatMulAttrs = { weightFormat: 'e4m3', weightScale: 'none', blockRows: 0, blockCols: 0, activation: 'none', actGroup: 0,
        inputScale: 0, weightScale2: 1, inDim: K, outDim: N, ...c.attrs };
      const w = toTensors(a, makeArrays(c, a));
      const { weight, scale, zeros, gIdx } = w;
      try {
        const err = await checkAgainstReference(c, T);
        const kernelOnly = { ...a, activation: 'none' as const };
        const reps = small ? 5 : T === 1 ? 50 : 30;
        const [kern, op, f32] = await alternate([() => quantMatMul(x, w, kernelOnly), () => quantMatMul(x, w, a), () => denseMatMul(x, wF32)], reps);
        table.push(`| ${c.name} | ${T} | ${kern.toFixed(3)} | ${op.toFixed(3)} | ${f32.toFixed(3)} | ${(f32 / kern).toFixed(2)}x | ${(f32 / op).toFixed(2)}x | ${c.target}x | ${err.toExponential(1)} |`);
        console.log(table[table.length - 1]);
      } catch (e) {
        console.log(`| ${c.name} | ${T} | failed: ${(e as Error).message.split('\n')[0]} |`);
      }
      tf.dispose([weight, scale, zeros, gIdx].filter((t): t is tf.Tensor => t !== undefined));
    }
    x.dispose();
  }
  console.log(`\n${table.join('\n')}`);
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
