/** The fine-tune experiment behind `npm start` (see main.ts). */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../lib/backends/select.js';
import { SeededRng } from '../lib/generation/rng.js';
import { initializeWeights } from '../models/init.js';
import { installMatMulGradient } from '../lib/training/matmul_grad.js';
import { maskedAccuracy, maskedCrossEntropy } from '../lib/training/loss.js';
import { clipByGlobalNorm, setLearningRate, warmupCosine } from '../lib/training/optim.js';
import { modelRaggedTrain } from '../models/train_forward.js';
import type { DecoderForCausalLM } from '../models/decoder_lm.js';
import { createModel } from '../models/registry.js';
import { formatLoss, writeLossChart } from './chart.js';
import { type PackedBatch, packBatch, sampleExamples } from './data.js';
import { SINGLE_RUN, type TrainRun, addGradients, applyRunLoRA, endTraining, isLead, reduceStep, saveRun, shareResult, startTraining, stepShares } from './data_parallel.js';
import { evaluateHeldOut } from './evaluate.js';
import { ProgressBar } from './progress.js';
import { DEFAULT_TASK, type Example, type TaskOptions, keyOf, makeExample, render, vocabSize } from './task.js';

export interface ExperimentOptions {
  steps: number;
  /** 'auto' picks wasm when it loads, else cpu. */
  backend: string;
  seed: number;
  batch: number;
  lr: number;
  hidden: number;
  layers: number;
  heldOut: number;
  /** Where the loss chart PNG goes (its SVG beside it, same name .svg). */
  out: string;
  heads: number;
  kvHeads: number;
  theta: number;
  maxLen: number;
}

export const DEFAULTS: ExperimentOptions = {
  steps: 600, backend: 'auto', seed: 0, batch: 64, lr: 1e-2, hidden: 64, layers: 2, heldOut: 500, out: 'out/loss_curve.png', heads: 4, kvHeads: 2, theta: 10000, maxLen: DEFAULT_TASK.maxLen,
};

async function pickBackend(name: string): Promise<string> {
  if (name !== 'auto') { await useBackend(name); return name; }
  for (const b of ['wasm', 'cpu']) {
    try { await useBackend(b); return b; } catch { /* next */ }
  }
  throw new Error('[train] no backend could start (tried wasm, cpu)');
}

export function hfConfigOf(o: ExperimentOptions, t: TaskOptions): Record<string, unknown> {
  return {
    model_type: 'llama', vocab_size: vocabSize(t), hidden_size: o.hidden, intermediate_size: 2 * o.hidden, num_hidden_layers: o.layers,
    num_attention_heads: o.heads, num_key_value_heads: o.kvHeads, max_position_embeddings: 64, rope_theta: o.theta, rms_norm_eps: 1e-5,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 3,
  };
}

export function buildModel(o: ExperimentOptions, t: TaskOptions): DecoderForCausalLM {
  const model = createModel(hfConfigOf(o, t), { maxSeqLen: 64, pageSize: 16, numPages: 256 });
  initializeWeights(model, { seed: o.seed });
  return model;
}

/** Held-out loss and token accuracy at one step (1-based). */
export interface HeldOutPoint { step: number; loss: number; accuracy: number }

export interface ExperimentResult {
  exactMatch: number; tokensPerSecond: number; trainSeconds: number; losses: number[]; accuracies: number[];
  heldOut: HeldOutPoint[];
  /** Paths of the chart files; null on the non-lead ranks of a data-parallel run (rank 0 writes them). */
  chart: { png: string; svg: string } | null;
}

/** Sequences in the fixed held-out batch whose loss is measured during training. */
const HELD_OUT_LOSS_BATCH = 64;
/** Held-out loss measurements over a run (forward only on one batch: about 1% of the training time). */
const HELD_OUT_POINTS = 25;

/** Loss and token accuracy of `model` on `b`, forward only. */
function heldOutLoss(model: DecoderForCausalLM, b: PackedBatch): { loss: number; accuracy: number } {
  return tf.tidy(() => {
    const logits = modelRaggedTrain(model, b.ids, b.rowOffsets); // [T, vocab]
    const accuracy = maskedAccuracy(logits, b.targets, b.weights);
    const loss = maskedCrossEntropy(logits, tf.tensor1d(b.targets, 'int32'), tf.tensor1d(b.weights)).dataSync()[0];
    return { loss, accuracy };
  });
}

/** `run`: alone, or one rank of a data-parallel MPI job (train/data_parallel.ts). */
export async function runExperiment(o: ExperimentOptions, run: TrainRun = SINGLE_RUN): Promise<ExperimentResult> {
  const t00 = performance.now();
  const backend = await pickBackend(o.backend);
  installMatMulGradient(); // opt-in: untransposed 2-D matMul gradients (wasm hands only those to XNNPACK)
  tf.randomUniform([1]).dispose();
  const task: TaskOptions = { ...DEFAULT_TASK, maxLen: o.maxLen };
  const model = buildModel(o, task);
  applyRunLoRA(run, model); // --lora R
  const params = model.trainableWeights.reduce((s, w) => s + w.shape.reduce((a, b) => a! * b!, 1)!, 0);
  const fused = tf.getKernel('FlashAttentionRagged', backend) !== undefined;
  console.log(`training path: packed ragged rows, no padding, no cache; attention ${fused ? 'fused FlashAttentionRagged + RopeRagged kernels (registered gradients)' : 'composite ops'} on ${backend}`);
  console.log(`task: reverse strings of ${task.minLen}-${task.maxLen} letters from ${task.letters}; model: llama, ${o.layers} layers, hidden ${o.hidden}, ${o.heads} heads / ${o.kvHeads} KV heads, ${params} parameters; backend ${backend}; seed ${o.seed}`);

  const rng = new SeededRng(o.seed + 1);
  const heldOut: Example[] = [];
  const heldKeys = new Set<string>();
  while (heldOut.length < o.heldOut) {
    const e = makeExample(rng, task);
    if (!heldKeys.has(keyOf(e))) { heldKeys.add(keyOf(e)); heldOut.push(e); }
  }

  const opt = tf.train.adam(o.lr, 0.9, 0.98);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  startTraining(run, vars);
  const bar = new ProgressBar(o.steps);
  const losses: number[] = [], accs: number[] = [];
  const heldOutBatch = packBatch(heldOut.slice(0, HELD_OUT_LOSS_BATCH));
  const evalEvery = Math.max(1, Math.round(o.steps / HELD_OUT_POINTS));
  const heldOutCurve: HeldOutPoint[] = [];
  let heldOutMs = 0;
  const t0 = performance.now();
  for (let step = 0; step < o.steps; step++) {
    setLearningRate(opt, warmupCosine(step, o.steps, o.lr, Math.ceil(o.steps * 0.05)));
    // This process's part of the global batch: all of it, its rank's share (data parallel) or
    // --accumulate K micro-batches, each loss scaled by its share of the batch's loss rows.
    const shares = stepShares(run, sampleExamples(rng, task, o.batch, heldKeys));
    let acc = 0;
    const loss = tf.tidy(() => {
      let grads: tf.NamedTensorMap | null = null, value = 0, hits = 0, rows = 0;
      for (const share of shares) {
        const b = packBatch(share.examples);
        const ys = tf.tensor1d(b.targets, 'int32'), ws = tf.tensor1d(b.weights);
        let shareAcc = 0;
        const g = tf.variableGrads(() => {
          const logits = modelRaggedTrain(model, b.ids, b.rowOffsets); // [T, vocab]
          shareAcc = maskedAccuracy(logits, b.targets, b.weights);
          const ce = maskedCrossEntropy(logits, ys, ws);
          return share.lossScale === 1 ? ce : tf.mul(ce, share.lossScale) as tf.Scalar;
        }, vars);
        grads = grads ? addGradients(grads, g.grads) : g.grads;
        value += g.value.dataSync()[0];
        hits += shareAcc * share.rows;
        rows += share.rows;
      }
      const step = reduceStep(run, grads!, value, hits, rows); // data parallel: one allreduce
      acc = step.acc;
      const clipped = clipByGlobalNorm(step.grads, 1.0).grads;
      opt.applyGradients(Object.entries(clipped).map(([name, tensor]) => ({ name, tensor })));
      return step.loss;
    });
    losses.push(loss); accs.push(acc);
    if ((step + 1) % evalEvery === 0 || step + 1 === o.steps) {
      const te = performance.now();
      heldOutCurve.push({ step: step + 1, ...heldOutLoss(model, heldOutBatch) });
      heldOutMs += performance.now() - te;
    }
    const avg = (xs: number[]) => xs.slice(-20).reduce((s, x) => s + x, 0) / Math.min(20, xs.length);
    if (isLead(run)) bar.update(step + 1, { loss: avg(losses).toFixed(3), 'token acc': `${(100 * avg(accs)).toFixed(1)}%` });
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  endTraining(run, vars);
  console.log(`trained ${o.steps} steps of ${o.batch} sequences in ${trainSeconds.toFixed(1)}s (${(trainSeconds / o.steps * 1000).toFixed(0)} ms/step)`);

  saveRun(run, model, hfConfigOf(o, task), losses, accs);
  if (!isLead(run)) { // data parallel: rank 0 evaluates and writes the curve
    const exactMatch = shareResult(run, NaN);
    model.dispose();
    return { exactMatch, tokensPerSecond: 0, trainSeconds, losses, accuracies: accs, heldOut: heldOutCurve, chart: null };
  }
  const r = await evaluateHeldOut(model, heldOut);
  shareResult(run, r.exactMatch);
  for (const s of r.samples.slice(0, 4)) console.log(`  ${render(s.prompt)} -> ${render(s.got)}  (expected ${render(s.expected)})`);
  console.log(`held-out exact match: ${(100 * r.exactMatch).toFixed(1)}% (${r.correct}/${r.total}), paged-cache continuous batching: ${r.generatedTokens} tokens in ${r.seconds.toFixed(2)}s = ${r.tokensPerSecond.toFixed(0)} tokens/s`);

  const last = heldOutCurve[heldOutCurve.length - 1];
  console.log(`held-out loss ${formatLoss(last.loss)}, token accuracy ${(100 * last.accuracy).toFixed(1)}% (${heldOutBatch.rowOffsets.length - 1} sequences, forward only; ${heldOutCurve.length} measurements took ${(heldOutMs / 1000).toFixed(2)}s of the ${trainSeconds.toFixed(1)}s)`);
  const chart = writeLossChart({
    title: `Fine-tuning llama (${o.layers} layers, hidden ${o.hidden}) to reverse strings on ${backend}`, losses, accuracies: accs,
    heldOut: heldOutCurve, exactMatch: { value: r.exactMatch, correct: r.correct, total: r.total }, smoothing: 20,
  }, o.out);
  console.log(`loss chart: ${chart.png} (and ${chart.svg}); total ${((performance.now() - t00) / 1000).toFixed(1)}s`);
  model.dispose();
  return { exactMatch: r.exactMatch, tokensPerSecond: r.tokensPerSecond, trainSeconds, losses, accuracies: accs, heldOut: heldOutCurve, chart };
}
