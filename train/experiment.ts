/** The fine-tune experiment behind `npm start` (see main.ts). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../lib/backends/select.js';
import { SeededRng } from '../lib/generation/rng.js';
import { initializeWeights } from '../lib/training/init.js';
import { installMatMulGradient } from '../lib/training/matmul_grad.js';
import { maskedAccuracy, maskedCrossEntropy } from '../lib/training/loss.js';
import { clipByGlobalNorm, setLearningRate, warmupCosine } from '../lib/training/optim.js';
import { modelRaggedTrain } from '../lib/training/ragged_train.js';
import type { DecoderForCausalLM } from '../models/decoder_lm.js';
import { createModel } from '../models/registry.js';
import { sampleBatch } from './data.js';
import { evaluateHeldOut } from './evaluate.js';
import { lineChartPng } from './png.js';
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
  /** Where the loss curve PNG goes. */
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

function buildModel(o: ExperimentOptions, t: TaskOptions): DecoderForCausalLM {
  const model = createModel({
    model_type: 'llama', vocab_size: vocabSize(t), hidden_size: o.hidden, intermediate_size: 2 * o.hidden, num_hidden_layers: o.layers,
    num_attention_heads: o.heads, num_key_value_heads: o.kvHeads, max_position_embeddings: 64, rope_theta: o.theta, rms_norm_eps: 1e-5,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 3,
  }, { maxSeqLen: 64, pageSize: 16, numPages: 256 });
  initializeWeights(model, { seed: o.seed });
  return model;
}

export interface ExperimentResult { exactMatch: number; tokensPerSecond: number; trainSeconds: number; losses: number[] }

export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResult> {
  const t00 = performance.now();
  const backend = await pickBackend(o.backend);
  installMatMulGradient(); // opt-in: untransposed 2-D matMul gradients (wasm hands only those to XNNPACK)
  tf.randomUniform([1]).dispose();
  const task: TaskOptions = { ...DEFAULT_TASK, maxLen: o.maxLen };
  const model = buildModel(o, task);
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
  const bar = new ProgressBar(o.steps);
  const losses: number[] = [], accs: number[] = [];
  const t0 = performance.now();
  for (let step = 0; step < o.steps; step++) {
    setLearningRate(opt, warmupCosine(step, o.steps, o.lr, Math.ceil(o.steps * 0.05)));
    const b = sampleBatch(rng, task, o.batch, heldKeys);
    let acc = 0;
    const loss = tf.tidy(() => {
      const ys = tf.tensor1d(b.targets, 'int32'), ws = tf.tensor1d(b.weights);
      const { value, grads } = tf.variableGrads(() => {
        const logits = modelRaggedTrain(model, b.ids, b.rowOffsets); // [T, vocab]
        acc = maskedAccuracy(logits, b.targets, b.weights);
        return maskedCrossEntropy(logits, ys, ws);
      }, vars);
      const clipped = clipByGlobalNorm(grads, 1.0).grads;
      opt.applyGradients(Object.entries(clipped).map(([name, tensor]) => ({ name, tensor })));
      return value.dataSync()[0];
    });
    losses.push(loss); accs.push(acc);
    const avg = (xs: number[]) => xs.slice(-20).reduce((s, x) => s + x, 0) / Math.min(20, xs.length);
    bar.update(step + 1, { loss: avg(losses).toFixed(3), 'token acc': `${(100 * avg(accs)).toFixed(1)}%` });
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  console.log(`trained ${o.steps} steps of ${o.batch} sequences in ${trainSeconds.toFixed(1)}s (${(trainSeconds / o.steps * 1000).toFixed(0)} ms/step)`);

  const r = await evaluateHeldOut(model, heldOut);
  for (const s of r.samples.slice(0, 4)) console.log(`  ${render(s.prompt)} -> ${render(s.got)}  (expected ${render(s.expected)})`);
  console.log(`held-out exact match: ${(100 * r.exactMatch).toFixed(1)}% (${r.correct}/${r.total}), paged-cache continuous batching: ${r.generatedTokens} tokens in ${r.seconds.toFixed(2)}s = ${r.tokensPerSecond.toFixed(0)} tokens/s`);

  const smooth = losses.map((_, i) => { const w = losses.slice(Math.max(0, i - 19), i + 1); return w.reduce((s, x) => s + x, 0) / w.length; });
  fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
  const accSmooth = accs.map((_, i) => { const w = accs.slice(Math.max(0, i - 19), i + 1); return w.reduce((s, x) => s + x, 0) / w.length; });
  const lo = Math.min(...losses), hi = Math.max(...losses);
  fs.writeFileSync(o.out, lineChartPng([
    { values: losses, color: [170, 200, 240], range: [lo, hi] }, { values: smooth, color: [20, 60, 160], range: [lo, hi] },
    { values: accSmooth, color: [230, 120, 20], range: [0, 1] },
  ], 640, 360, [
    { text: `loss ${hi.toFixed(2)}`, at: 'tl', color: [20, 60, 160] }, { text: 'token acc 100%', at: 'tr', color: [230, 120, 20] },
    { text: `loss ${lo.toFixed(3)}  step 0`, at: 'bl', color: [20, 60, 160] }, { text: `step ${o.steps}`, at: 'br' },
  ]));
  console.log(`loss curve: ${o.out}; total ${((performance.now() - t00) / 1000).toFixed(1)}s`);
  model.dispose();
  return { exactMatch: r.exactMatch, tokensPerSecond: r.tokensPerSecond, trainSeconds, losses };
}
