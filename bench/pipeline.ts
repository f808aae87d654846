/**
 * Pipeline parallelism on CPU workers: a random Llama-family model (hidden 512, 8 layers, 8/2 heads,
 * d 64, intermediate 1408, vocab 4096) as 2 stages in 2 worker processes (one native thread each,
 * activations through /dev/shm, 2 micro-batches in flight) against the whole model in 1 worker
 * process with 2 native threads, timed in alternation:
 * - batched decode: 8 sequences holding 128 tokens; a timed unit forks them (pages shared), runs 4
 *   greedy steps and releases the forks;
 * - prefill 4 x 128 on fresh sequences.
 * Greedy tokens of the two are checked equal before timing. On a 2-core machine both sides use both
 * cores, so this measures what the pipeline costs (bubbles, hand-offs), not a speed-up; the GPU
 * rows are bench/device/pipeline_gpu.ts (run_pipeline.sh on the 2-GPU machine).
 *
 *   npm run bench -- --only pipeline [--quick]      (or node dist/bench/run.js --only pipeline)
 */
import * as tf from '@tensorflow/tfjs';
import { PipelineModel } from '../models/pipeline/pipeline_model.js';
import { parseDevices } from '../lib/sharding/devices.js';
import type { DecoderForCausalLM } from '../models/decoder_lm.js';
import { createModel } from '../models/registry.js';
import { useBackend } from '../lib/backends/select.js';
import { type BenchModule, type BenchOptions, type BenchRow, row, timeInterleaved } from './harness.js';

const CONFIG = {
  model_type: 'llama', hidden_size: 512, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 64,
  intermediate_size: 1408, vocab_size: 4096, max_position_embeddings: 2048, rms_norm_eps: 1e-5, tie_word_embeddings: false,
  rope_theta: 10000,
};
const B = 8, CTX = 128, STEPS = 4, PB = 4, PT = 128;

/** A model of CONFIG with N(0, 0.05) weights (norm weights 1). */
function randomModel(): DecoderForCausalLM {
  const model = createModel(CONFIG, { pageSize: 16, numPages: 512 });
  let seed = 1;
  for (const v of model.trainableWeights) {
    if (v.shape.length === 1) continue; // norms stay 1
    const t = tf.randomNormal(v.shape as number[], 0, 0.05, 'float32', seed++);
    v.write(t);
    t.dispose();
  }
  return model;
}

const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 1 + ((seed * 7919 + i * 104729) % (CONFIG.vocab_size - 1)));

/** Prefills B roots of CTX tokens; returns them. */
async function roots(p: PipelineModel): Promise<number[]> {
  const r = Array.from({ length: B }, () => p.addSequence());
  await p.forward(r.flatMap((_, b) => ids(CTX, b + 1)), r, r.map(() => CTX), 'argmax');
  return r;
}

/** STEPS greedy steps of forks of the roots (groups pipelined across steps); returns the tokens. */
async function decodeUnit(p: PipelineModel, rs: number[]): Promise<number[][]> {
  const forks = rs.map((r) => p.forkSequence(r));
  try { return await p.decode(forks, forks.map((_, b) => b + 1), STEPS); } finally { forks.forEach((f) => p.releaseSequence(f)); }
}

async function prefillUnit(p: PipelineModel): Promise<void> {
  const seqs = Array.from({ length: PB }, () => p.addSequence());
  try { await p.forward(seqs.flatMap((_, j) => ids(PT, 50 + j)), seqs, seqs.map(() => PT), 'argmax'); } finally { seqs.forEach((s) => p.releaseSequence(s)); }
}

async function run(opts: BenchOptions): Promise<BenchRow[]> {
  await useBackend('cpu');
  const model = randomModel();
  const base = { transport: 'process' as const, pageSize: 16, numPages: 512 };
  const two = await PipelineModel.create(model, { ...base, devices: parseDevices('cpu:0,cpu:1'), microBatches: 2, nativeThreads: 1 });
  const one = await PipelineModel.create(model, { ...base, devices: parseDevices('cpu:0'), microBatches: 1, nativeThreads: 2 });
  model.dispose();
  try {
    const [r2, r1] = [await roots(two), await roots(one)];
    const [t2, t1] = [await decodeUnit(two, r2), await decodeUnit(one, r1)];
    opts.log(`pipeline: 2 stages (layers ${JSON.stringify(two.layerRanges)}, activations via ${two.dataPath}) vs 1 stage: greedy tokens ${JSON.stringify(t2) === JSON.stringify(t1) ? 'identical' : 'DIFFER'}`);
    const q = opts.quick;
    const timing = { warmup: 1, minIters: q ? 2 : 6, maxIters: q ? 3 : 20, minMs: q ? 0 : 3000, maxMs: q ? 5000 : 20000, chunk: 2, skip: 0 };
    const dec = await timeInterleaved([() => decodeUnit(two, r2), () => decodeUnit(one, r1)], timing);
    const pre = await timeInterleaved([() => prefillUnit(two), () => prefillUnit(one)], timing);
    const tokS = (ms: number) => (B * STEPS) / (ms / 1000);
    opts.log(`pipeline decode ${B}x${CTX}: 2 stages ${tokS(dec[0]).toFixed(1)} tok/s, 1 stage ${tokS(dec[1]).toFixed(1)} tok/s; ` +
      `prefill ${PB}x${PT}: ${pre[0].toFixed(1)} vs ${pre[1].toFixed(1)} ms; stage ms of the last call ${two.lastCallStats?.stageMs.map((v) => v.toFixed(1)).join(' / ')}`);
    return [
      row(`pipeline decode ${B}x${CTX} ctx (${STEPS} steps): 2 stage processes x 1 thread`, 'cpu', dec[0], '1 process x 2 threads', dec[1]),
      row(`pipeline prefill ${PB}x${PT}: 2 stage processes x 1 thread`, 'cpu', pre[0], '1 process x 2 threads', pre[1]),
    ];
  } finally {
    await Promise.all([two.dispose(), one.dispose()]);
  }
}

export const pipelineBench: BenchModule = { name: 'pipeline (pipeline-parallel stages)', run };
