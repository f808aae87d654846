/**
 * One training step (forward + backward, gradients of the input and every weight) of one
 * AttentionWithRope layer on a ragged batch: hidden 256, 8 query heads, 4 KV heads, head_dim 32,
 * causal, float32; two batches: 4 sequences of 32 / 64 / 96 / 128 tokens (320 rows), and 64
 * sequences of 8-24 tokens (1,020 rows, the fine-tuning regime of `npm start`).
 *
 * Ours: the ragged training path as shipped (lib/training/ragged_train.ts): q/k/v/o projections
 * through ProjectionMatMul (on cpu the native sgemm, forward and both gradients; tf.matMul
 * elsewhere), RopeRagged kernel, the untransposed 2-D matMul gradient, and attention as
 * `trainAttentionVariant` picks it: the fused FlashAttentionRagged kernel (+ its fused backward;
 * native on cpu, host TypeScript on wasm), or on wasm for few long sequences the composite on
 * XNNPACK matMuls. Both versions are timed and logged, and so is what the projections cost.
 * Versions that lost on cpu (figures: `--only training`, 2 cores): tfjs-cpu's matMul in the
 * projections, ~85% of the step (T=1024: 1,049 ms, 2.1x the composite), replaced by the native
 * sgemm; then the TypeScript host attention kernel, ~75% of what was left (T=320: 43 ms), replaced
 * by its compiled twin (native/flash_train.cc).
 * Peers (stock tfjs gradients): the same ragged path on the composite references
 * (ATTENTION_ROPE_FORCE_COMPOSITE), and the padded no-cache path `layer.apply` (what `model.fit`
 * runs; each sequence padded to the longest). Gradients are checked against the composite's before timing.
 *
 *   node dist/bench/training_step.js [--quick]      (also part of `npm run bench` once listed in run.ts)
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { pathToFileURL } from 'node:url';

import { nativeSgemm } from '../kernels/cpu/ProjectionMatMul.js';
import { projectionMatMul, projectionUsesNative } from '../kernels/projection_matmul.js';
import { AttentionWithRope } from '../lib/attention/attention_with_rope.js';
import { nativeFlashTrain } from '../kernels/cpu/flash_attention_ragged_native.js';
import { registerAllKernels } from '../kernels/register_all.js';
import { trainAttentionVariant } from '../kernels/train_ops.js';
import { installMatMulGradient, uninstallMatMulGradient } from '../lib/training/matmul_grad.js';
import { attentionRaggedTrain } from '../lib/training/ragged_train.js';
import { type BenchModule, type BenchOptions, type BenchRow, row, timeInterleaved, timeMs } from './harness.js';

const H = 256, NH = 8, NKV = 4, D = 32;

/** A ragged batch: its sequence lengths, row offsets, rows and longest sequence. */
interface Scenario { name: string; lens: number[]; offsets: number[]; T: number; S: number }
function scenario(name: string, lens: number[]): Scenario {
  const offsets = lens.reduce((o, n) => [...o, o[o.length - 1] + n], [0]);
  return { name, lens, offsets, T: offsets[offsets.length - 1], S: Math.max(...lens) };
}
const SCENARIOS = [
  scenario('4 seqs 32/64/96/128', [32, 64, 96, 128]),
  scenario('64 seqs of 8-24', Array.from({ length: 64 }, (_, i) => 8 + ((i * 7) % 17))),
];

function rand(n: number, seed: number, amp = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = (s / 4294967296 * 2 - 1) * amp; }
  return a;
}

function makeLayer(): AttentionWithRope {
  const layer = new AttentionWithRope({
    rope: { headDim: D, theta: 500000, maxSeqLen: 256 }, numAttentionHeads: NH, numKeyValueHeads: NKV, hiddenSize: H,
    kvParams: { nKvHeads: NKV, headDim: D, pageSize: 16, numLayers: 1, numPages: 4 },
  });
  layer.build([null, H]);
  return layer;
}

type Step = () => Float32Array[] | void;

function stepFn(sc: Scenario, layer: AttentionWithRope, x: tf.Variable, padded: boolean, keep = false): Step {
  const { lens: LENS, offsets: OFFSETS, T, S } = sc;
  const vars = [x, ...layer.trainableWeights.map((w) => w.read() as tf.Variable)];
  const mask = tf.tensor2d(rand(T * H, 9), [T, H]);
  const xPad = () => tf.concat(LENS.map((n, b) => tf.pad(x.slice([OFFSETS[b], 0], [n, H]), [[0, S - n], [0, 0]])), 0).reshape([LENS.length, S, H]);
  const rowsOf = (y: tf.Tensor) => tf.concat(LENS.map((n, b) => y.slice([b, 0, 0], [1, n, H]).reshape([n, H])), 0);
  return () => {
    const { value, grads } = tf.variableGrads(() => {
      const y = padded ? rowsOf(layer.apply(xPad()) as tf.Tensor) : attentionRaggedTrain(layer, x as tf.Tensor as tf.Tensor2D, OFFSETS);
      return tf.sum(tf.mul(y, mask)) as tf.Scalar;
    }, vars);
    const out = keep ? vars.map((v) => Float32Array.from(grads[v.name].dataSync())) : (Object.values(grads)[0].dataSync(), undefined);
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  };
}

/**
 * The twelve products of the layer's projections in one training step, on the step's shapes: for
 * q, k, v and o, the forward `x · W`, `dX = dY · Wᵀ` and `dW = xᵀ · dY` (what tfjs's stock
 * gradient runs too), through projectionMatMul: the native kernel, or tf.matMul when composite is forced.
 */
function projectionProductsFn(layer: AttentionWithRope, T: number): [Step, () => void] {
  const { hiddenSize: h } = layer.opts;
  const dims = [[h, layer.qDim], [h, layer.kvDim], [h, layer.kvDim], [layer.qDim, h]]; // [in, out] of q, k, v, o
  const ts = dims.map(([i, o], n) => ({
    x: tf.tensor2d(rand(T * i, 20 + n), [T, i]), w: tf.tensor2d(rand(i * o, 30 + n), [i, o]), dy: tf.tensor2d(rand(T * o, 40 + n), [T, o]),
  }));
  const step = () => {
    for (const { x, w, dy } of ts) {
      tf.dispose([projectionMatMul(x, w), projectionMatMul(dy, w, { transposeB: true }), projectionMatMul(x, dy, { transposeA: true })]);
    }
  };
  return [step, () => ts.forEach((t) => tf.dispose([t.x, t.w, t.dy]))];
}

/** GFLOP/s of the native sgemm on 1024x256x512 (into a preallocated output, and as the tfjs op with its allocation). */
async function logSgemm(opts: BenchOptions): Promise<void> {
  const sgemm = nativeSgemm();
  if (!sgemm) { opts.log('  native sgemm: addon not loaded'); return; }
  const M = 1024, K = 256, N = 512, flop = 2 * M * N * K;
  const a = rand(M * K, 3), b = rand(K * N, 4), c = new Float32Array(M * N);
  const raw = await timeMs(() => sgemm(a, b, null, c, M, N, K, 0, 0), { warmup: 5, minIters: 50, minMs: 300 });
  const at = tf.tensor2d(a, [M, K]), bt = tf.tensor2d(b, [K, N]);
  const op = await timeMs(() => projectionMatMul(at, bt).dispose(), { warmup: 5, minIters: 50, minMs: 300 });
  tf.dispose([at, bt]);
  opts.log(`  native sgemm ${M}x${K}x${N}: ${raw.toFixed(3)} ms (${(flop / raw / 1e6).toFixed(0)} GFLOP/s); `
    + `as the ProjectionMatMul op (output allocated) ${op.toFixed(3)} ms (${(flop / op / 1e6).toFixed(0)} GFLOP/s)`);
}

function maxRel(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  a.forEach((x, i) => {
    let num = 0, den = 0;
    for (let j = 0; j < x.length; j++) { num = Math.max(num, Math.abs(x[j] - b[i][j])); den = Math.max(den, Math.abs(b[i][j])); }
    worst = Math.max(worst, num / Math.max(den, 1e-12));
  });
  return worst;
}

async function runOn(sc: Scenario, backend: string, opts: BenchOptions): Promise<BenchRow[]> {
  await tf.setBackend(backend);
  await tf.ready();
  registerAllKernels();
  installMatMulGradient();
  const { T, offsets: OFFSETS } = sc;
  const layer = makeLayer();
  tf.tidy(() => layer.weights.forEach((w, i) => w.write(tf.tensor(rand(w.shape.reduce((p, q) => p! * q!, 1)!, 100 + i, 0.06), w.shape as number[]))));
  const x = tf.variable(tf.tensor2d(rand(T * H, 7), [T, H]));
  const withComposite = (on: boolean, f: Step): Step => () => {
    tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', on);
    if (on) uninstallMatMulGradient(); else installMatMulGradient();
    try { return f(); } finally { tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', false); installMatMulGradient(); }
  };
  const ours = withComposite(false, stepFn(sc, layer, x, false));
  const composite = withComposite(true, stepFn(sc, layer, x, false));
  const padded = withComposite(true, stepFn(sc, layer, x, true));
  const g0 = withComposite(false, stepFn(sc, layer, x, false, true))() as Float32Array[];
  const g1 = withComposite(true, stepFn(sc, layer, x, false, true))() as Float32Array[];
  const g2 = withComposite(true, stepFn(sc, layer, x, true, true))() as Float32Array[];
  opts.log(`  [${sc.name}, ${backend}] gradient check vs composite: ours ${maxRel(g0, g1).toExponential(2)}, padded ${maxRel(g2, g1).toExponential(2)}`);
  // what the projections cost (fwd + bwd), ours against the stock tf.matMul path
  const projT = { warmup: 1, minIters: 2, maxIters: opts.quick ? 2 : 8, minMs: 0, maxMs: 8000, chunk: 3, skip: 1 };
  // (cpu only: on wasm both sides are tf.matMul, and the step's own gradient is matmul_grad.ts's untransposed form)
  if (backend === 'cpu') {
    const [products, disposeProducts] = projectionProductsFn(layer, T);
    const [projOurs, projComp] = await timeInterleaved([withComposite(false, products), withComposite(true, products)], projT);
    disposeProducts();
    opts.log(`  [${sc.name}, ${backend}] projections' 12 products (q/k/v/o: x·W, dY·Wᵀ, xᵀ·dY): ours ${projOurs.toFixed(1)} ms `
      + `(${projectionUsesNative() ? 'native ProjectionMatMul' : 'tf.matMul'}), composite (tf.matMul) ${projComp.toFixed(1)} ms`);
  }
  // Chunks of 5 calls per side (first discarded): the garbage one side leaves (the composite paths
  // allocate every intermediate) is collected in the next side's first call, not in its timed ones;
  // with chunks of 2 the fused side measured up to 2x slower on cpu than timed alone.
  const t = opts.quick ? { warmup: 1, minIters: 2, maxIters: 4, minMs: 0, chunk: 2 }
    : { warmup: 1, minIters: 8, maxIters: 60, minMs: 3000, maxMs: backend === 'cpu' ? 90000 : 30000, chunk: 5 };
  const [oursMs, compMs, padMs] = await timeInterleaved([ours, composite, padded], t);
  // the versions `auto` chooses between (trainAttentionVariant), each with the untransposed matMul gradient
  const forced = (v: string): Step => () => {
    tf.env().set('ATTENTION_ROPE_TRAIN_ATTENTION', v as unknown as boolean);
    try { return ours(); } finally { tf.env().set('ATTENTION_ROPE_TRAIN_ATTENTION', 'auto' as unknown as boolean); }
  };
  const [fusedMs, compFastMs] = await timeInterleaved([forced('fused'), forced('composite')], { ...t, maxMs: t.maxMs ? t.maxMs / 2 : undefined });
  opts.log(`  [${sc.name}, ${backend}] auto picks '${trainAttentionVariant({ nHeads: NH, nKvHeads: NKV, headDim: D, scale: 1, mask: { variant: 'causal', window: 0, chunk: 0 }, rowOffsets: Int32Array.from(OFFSETS) })}'; `
    + `forced fused kernel (${backend === 'cpu' && nativeFlashTrain() ? 'native' : 'host TS'}) ${fusedMs.toFixed(1)} ms, forced composite attention (XNNPACK/tfjs matMuls) ${compFastMs.toFixed(1)} ms`);
  layer.dispose();
  x.dispose();
  const name = `train step ${sc.name} (T=${T})`;
  return [row(name, backend, oursMs, 'composite ragged', compMs), row(name, backend, oursMs, 'padded layer.apply', padMs)];
}

export const trainingStepBench: BenchModule = {
  name: 'training_step',
  async run(opts: BenchOptions): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    for (const sc of SCENARIOS) for (const b of ['cpu', 'wasm']) rows.push(...await runOn(sc, b, opts));
    await tf.setBackend('cpu');
    await logSgemm(opts);
    return rows;
  },
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { addBenchModule, runBenches } = await import('./run.js');
  addBenchModule(trainingStepBench);
  runBenches({ only: /^training_step$/, quick: process.argv.includes('--quick') }).catch((e) => { console.error(e); process.exit(1); });
}
