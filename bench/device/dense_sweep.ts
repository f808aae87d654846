/**
 * Kernel-level figures for the whole-model bench, on the model's own shapes: the prefill matmul
 * (tile depth 8 vs 16, alternating rounds; the faster one is kept in webgpuDenseTuning), GEMV
 * read bandwidth at M = 1 and 8, and a decode step split into host encode time and the rest.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { denseMatMul } from '../../kernels/model_ops.js';
import { webgpuDenseTuning } from '../../kernels/webgpu/dense_plan.js';
import type { DecoderForCausalLM } from '../../models/decoder_lm.js';
import { fusedWeightsOf } from '../../models/fused_weights.js';

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** ms per call of `f` (reps back to back, one readback at the end). */
async function timeCalls(f: () => tf.Tensor, reps: number): Promise<number> {
  const warm = f(); await warm.data(); warm.dispose();
  const t = performance.now();
  const outs: tf.Tensor[] = [];
  for (let i = 0; i < reps; i++) outs.push(f());
  await outs[outs.length - 1].data();
  const ms = (performance.now() - t) / reps;
  tf.dispose(outs);
  return ms;
}

export async function denseSweep(model: DecoderForCausalLM, log: (s: string) => void): Promise<Record<string, number>> {
  const w = fusedWeightsOf(model).layers[0];
  const H = model.config.hiddenSize;
  const out: Record<string, number> = {};
  const x = tf.randomNormal([2048, H]) as tf.Tensor2D;
  const flops = 2 * 2048 * H * w.gateUp.shape[0];
  const times: Record<number, number[]> = { 8: [], 16: [] };
  for (let round = 0; round < 3; round++) {
    for (const bk of round % 2 ? [16, 8] : [8, 16]) {
      webgpuDenseTuning.matmulBk = bk;
      times[bk].push(await timeCalls(() => denseMatMul(x, w.gateUp), 10));
    }
  }
  const best = median(times[16]) < median(times[8]) ? 16 : 8;
  webgpuDenseTuning.matmulBk = best;
  for (const bk of [8, 16]) {
    out[`matmul_bk${bk}_tflops`] = flops / median(times[bk]) / 1e9;
    log(`matmul 2048 x ${H} . [${w.gateUp.shape[0]}, ${H}]^T, tile depth ${bk}: ${median(times[bk]).toFixed(2)} ms = ${out[`matmul_bk${bk}_tflops`].toFixed(1)} TFLOP/s`);
  }
  log(`keeping tile depth ${best}`);
  for (const m of [1, 8]) {
    const xm = tf.randomNormal([m, H]) as tf.Tensor2D;
    const ms = await timeCalls(() => denseMatMul(xm, w.gateUp), 50);
    out[`gemv_m${m}_tbs`] = (4 * w.gateUp.size) / ms / 1e9;
    log(`GEMV M=${m} on [${w.gateUp.shape}] (${((4 * w.gateUp.size) / 2 ** 20).toFixed(0)} MiB): ${(1000 * ms).toFixed(1)} us = ${out[`gemv_m${m}_tbs`].toFixed(2)} TB/s`);
    xm.dispose();
  }
  x.dispose();
  return out;
}

/** Host encode time of decode steps (forwardRagged + cache.step, nothing awaited) vs the whole step. */
export async function decodeSplit(model: DecoderForCausalLM, b: number, log: (s: string) => void): Promise<void> {
  const cache = model.createCache({ numPages: b * 16 });
  const seqs = Array.from({ length: b }, (_, i) => cache.addSequence(i));
  let kv = cache.fetch(seqs, seqs.map(() => 32));
  let y = model.forwardRagged(new Array(32 * b).fill(7), kv, seqs.map((_, i) => 32 * i + 31));
  cache.step(kv); await y.data(); y.dispose();
  const host: number[] = [], whole: number[] = [];
  for (let s = 0; s < 20; s++) {
    const t = performance.now();
    kv = cache.fetch(seqs, seqs.map(() => 1));
    y = model.forwardRagged(new Array(b).fill(9), kv, seqs.map((_, i) => i));
    cache.step(kv);
    host.push(performance.now() - t);
    await y.data(); y.dispose();
    whole.push(performance.now() - t);
  }
  log(`decode step batch ${b}: host encode ${median(host).toFixed(2)} ms, whole step (logits read back) ${median(whole).toFixed(2)} ms`);
  for (const s of seqs) cache.releaseSequence(s);
}
