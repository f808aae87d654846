/**
 * Prefill measuring pieces shared by prefill_profile.ts and models_webgpu.ts: one prefill through the
 * Generator (time to the first token), a per-kernel GPU-timestamp profile of one prefill, and the
 * flash prefill candidate sweep on the model's own prefill.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { webgpuFlashTuning } from '../../kernels/webgpu/flash_plan.js';
import { setPassTimestamps } from '../../kernels/webgpu/gpu_util.js';
import type { DecoderForCausalLM } from '../../models/decoder_lm.js';
import { Generator } from '../../models/generation/generator.js';
import { median } from './prefill_sweep.js';

/** One prefill of `prompt` and its first token: [ms, tokens]. */
export async function prefill(model: DecoderForCausalLM, prompt: number[], started?: (t: number) => void): Promise<[number, number[]]> {
  const gen = new Generator(model, { numPages: Math.ceil((prompt.length + 2) / model.kvParams.pageSize) + 1, maxBatchTokens: 4096, prefillChunk: 4096 });
  const h = gen.submit({ promptIds: prompt, maxNewTokens: 1, stopTokens: [] });
  const t = performance.now();
  started?.(t);
  await gen.run();
  return [performance.now() - t, await h.done];
}

export interface PrefillProfile {
  wall: number; sum: number; span: number; passes: number; rows: Map<string, { n: number; ms: number }>;
  /** Host ms from the prefill's start to each pass's encode, and the labels. */
  hostAt: number[]; labels: string[];
}

/** GPU time per kernel pass of one prefill, grouped by pipeline label (null without timestamp-query). */
export async function profilePrefill(model: DecoderForCausalLM, prompt: number[]): Promise<PrefillProfile | null> {
  const dev = (tf.backend() as unknown as { device: GPUDevice }).device;
  if (!dev.features.has('timestamp-query')) return null;
  const n = 4096; // WebGPU's largest query set
  const qs = dev.createQuerySet({ type: 'timestamp', count: n });
  const labels: string[] = [];
  const hostAt: number[] = [];
  let t0 = performance.now();
  setPassTimestamps((_, label) => {
    if (2 * labels.length + 2 > n) return undefined;
    labels.push(label || '(unlabelled)');
    hostAt.push(performance.now() - t0);
    return { querySet: qs, beginningOfPassWriteIndex: 2 * labels.length - 2, endOfPassWriteIndex: 2 * labels.length - 1 };
  });
  let wall: number;
  try { [wall] = await prefill(model, prompt, (t) => { t0 = t; }); } finally { setPassTimestamps(null); }
  const m = 2 * labels.length;
  const res = dev.createBuffer({ size: 8 * m, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const st = dev.createBuffer({ size: 8 * m, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = dev.createCommandEncoder();
  enc.resolveQuerySet(qs, 0, m, res, 0);
  enc.copyBufferToBuffer(res, 0, st, 0, 8 * m);
  dev.queue.submit([enc.finish()]);
  await st.mapAsync(GPUMapMode.READ);
  const ts = new BigUint64Array(st.getMappedRange().slice(0));
  st.unmap();
  [qs, res, st].forEach((b) => b.destroy());
  const rows = new Map<string, { n: number; ms: number }>();
  let sum = 0;
  for (let i = 0; i < labels.length; i++) {
    const ms = Number(ts[2 * i + 1] - ts[2 * i]) / 1e6;
    const key = labels[i].replace(/:m\d+$/, '').replace(/:[[{].*$/, '');
    const r = rows.get(key) ?? { n: 0, ms: 0 };
    r.n++; r.ms += ms; sum += ms;
    rows.set(key, r);
  }
  return { wall, sum, span: Number(ts[m - 1] - ts[0]) / 1e6, passes: labels.length, rows, hostAt, labels };
}

/** Prints a profile as a table and RESULT lines. */
export function logProfile(p: PrefillProfile, tokens: number, log: (s: string) => void): void {
  log(`prefill profile (one prefill of ${tokens} tokens, each kernel pass timed and submitted alone): wall ${p.wall.toFixed(1)} ms, ` +
    `GPU passes ${p.sum.toFixed(1)} ms, first-to-last timestamp ${p.span.toFixed(1)} ms, ${p.passes} passes`);
  log('| kernel (pipeline) | passes | GPU ms | share of wall |\n| --- | --- | --- | --- |');
  for (const [k, r] of [...p.rows].sort((a, b) => b[1].ms - a[1].ms)) {
    log(`| ${k} | ${r.n} | ${r.ms.toFixed(2)} | ${(100 * r.ms / p.wall).toFixed(1)}% |`);
    console.log(`RESULT profile kernel="${k}" passes=${r.n} gpu_ms=${r.ms.toFixed(3)}`);
  }
  log(`| (not in a timed pass: host, tfjs ops, gaps) | | ${(p.wall - p.sum).toFixed(2)} | ${(100 * (p.wall - p.sum) / p.wall).toFixed(1)}% |`);
  console.log(`RESULT profile wall_ms=${p.wall.toFixed(2)} gpu_sum_ms=${p.sum.toFixed(2)} span_ms=${p.span.toFixed(2)}`);
  // Host side: when each pass was encoded (each timed pass is submitted alone, so this includes the submits).
  const h = p.hostAt, short = (l: string) => l.replace(/:.*$/, '');
  const gaps = h.map((t, i) => ({ ms: t - (i ? h[i - 1] : 0), at: i ? `${short(p.labels[i - 1])} -> ${short(p.labels[i])}` : `start -> ${short(p.labels[0])}` }));
  gaps.push({ ms: p.wall - h[h.length - 1], at: `${short(p.labels[h.length - 1])} -> first token on the host` });
  log(`host: first pass encoded at ${h[0].toFixed(1)} ms, last at ${h[h.length - 1].toFixed(1)} ms, first token at ${p.wall.toFixed(1)} ms; largest host gaps: ` +
    [...gaps].sort((a, b) => b.ms - a.ms).slice(0, 6).map((g) => `${g.at} ${g.ms.toFixed(2)} ms`).join('; '));
  console.log(`RESULT host first_pass_ms=${h[0].toFixed(2)} last_pass_ms=${h[h.length - 1].toFixed(2)} wall_ms=${p.wall.toFixed(2)}`);
}

/**
 * The flash prefill candidates (webgpuFlashTuning.prefill) timed on this model's prefill: each
 * put first in turn, the attention passes' GPU time summed over one profiled prefill, `rounds`
 * alternating rounds; the fastest is left first in the list. Returns its name.
 */
export async function sweepFlashPrefill(model: DecoderForCausalLM, prompt: number[], log: (s: string) => void, rounds = 2): Promise<string> {
  const base = [...webgpuFlashTuning.prefill];
  const names = (process.env.FLASH ?? 'm64b16r2,m48b32r3,m64b16,m32b32r2,m32b16r2').split(',').filter((n) => base.some((c) => c.name === n));
  const ms = new Map<string, number[]>(names.map((n) => [n, []]));
  for (let r = 0; r < rounds + 1; r++) { // round 0 compiles
    for (const name of r % 2 ? [...names].reverse() : names) {
      webgpuFlashTuning.prefill = [base.find((c) => c.name === name)!, ...base.filter((c) => c.name !== name)];
      const p = await profilePrefill(model, prompt);
      if (!p) { webgpuFlashTuning.prefill = base; return base[0].name; }
      if (r > 0) ms.get(name)!.push([...p.rows].filter(([k]) => k.startsWith('FlashAttention')).reduce((a, [, v]) => a + v.ms, 0));
    }
  }
  let best = names[0];
  for (const n of names) {
    log(`flash prefill ${n}: attention ${median(ms.get(n)!).toFixed(2)} ms GPU over the prefill (rounds ${ms.get(n)!.map((x) => x.toFixed(2)).join(' / ')})`);
    console.log(`RESULT flash="${n}" attention_ms=${median(ms.get(n)!).toFixed(3)}`);
    if (median(ms.get(n)!) < median(ms.get(best)!)) best = n;
  }
  webgpuFlashTuning.prefill = [base.find((c) => c.name === best)!, ...base.filter((c) => c.name !== best)];
  log(`flash prefill kept: ${best}`);
  return best;
}

