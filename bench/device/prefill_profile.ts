/**
 * Where a WebGPU prefill's time goes (issue 11), on a Hugging Face checkpoint (make_random_llama.py):
 * 1. the f32 tile sweep on layer 0's products (prefill_sweep.ts), keeping the fastest exact tiles;
 * 2. a per-kernel GPU-timestamp profile of one prefill through the Generator (each kernel pass timed,
 *    grouped by pipeline; wall time beside it: the rest is host work, tfjs ops and submit gaps);
 * 3. prefill (time to the first token) with the kept tiles vs the session-5 tile shape
 *    (128 x 128, bk 8, one buffer) in alternation, medians of 3, and the first tokens of both.
 *
 * usage: node prefill_profile.mjs CKPT_DIR [OUT_JSON]   (env TILES narrows the sweep, SWEEP=0 skips it)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import '../../lib/backends/node_install.js'; // Dawn WebGPU under Node (the main entry is browser-clean)
import { useBackend } from '../../lib/backends/select.js';
import { SMALL_F32_TILE, webgpuDenseTuning } from '../../kernels/webgpu/dense_plan.js';
import { setPassTimestamps } from '../../kernels/webgpu/gpu_util.js';
import type { DecoderForCausalLM } from '../../models/decoder_lm.js';
import { fusedWeightsOf } from '../../models/fused_weights.js';
import { Generator } from '../../models/generation/generator.js';
import { loadPretrained } from '../../models/load.js';
import { median, sweepTiles } from './prefill_sweep.js';

async function prefill(model: DecoderForCausalLM, prompt: number[]): Promise<[number, number[]]> {
  const gen = new Generator(model, { numPages: Math.ceil((prompt.length + 2) / model.kvParams.pageSize) + 1, maxBatchTokens: 4096, prefillChunk: 4096 });
  const h = gen.submit({ promptIds: prompt, maxNewTokens: 1, stopTokens: [] });
  const t = performance.now();
  await gen.run();
  return [performance.now() - t, await h.done];
}

/** GPU time per kernel pass of one prefill, grouped by pipeline label. */
async function profile(model: DecoderForCausalLM, prompt: number[], log: (s: string) => void): Promise<void> {
  const dev = (tf.backend() as unknown as { device: GPUDevice }).device;
  if (!dev.features.has('timestamp-query')) { log('profile: no timestamp-query on this adapter'); return; }
  const n = 4096; // WebGPU's largest query set
  const qs = dev.createQuerySet({ type: 'timestamp', count: n });
  const labels: string[] = [];
  setPassTimestamps((_, label) => {
    if (2 * labels.length + 2 > n) return undefined;
    labels.push(label || '(unlabelled)');
    return { querySet: qs, beginningOfPassWriteIndex: 2 * labels.length - 2, endOfPassWriteIndex: 2 * labels.length - 1 };
  });
  let wall: number;
  try { [wall] = await prefill(model, prompt); } finally { setPassTimestamps(null); }
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
  const span = Number(ts[m - 1] - ts[0]) / 1e6;
  log(`prefill profile (one prefill of ${prompt.length} tokens, each kernel pass timed and submitted alone): wall ${wall.toFixed(1)} ms, ` +
    `GPU passes ${sum.toFixed(1)} ms, first-to-last timestamp ${span.toFixed(1)} ms, ${labels.length} passes`);
  log('| kernel (pipeline) | passes | GPU ms | share of wall |\n| --- | --- | --- | --- |');
  for (const [k, r] of [...rows].sort((a, b) => b[1].ms - a[1].ms)) {
    log(`| ${k} | ${r.n} | ${r.ms.toFixed(2)} | ${(100 * r.ms / wall).toFixed(1)}% |`);
    console.log(`RESULT profile kernel="${k}" passes=${r.n} gpu_ms=${r.ms.toFixed(3)}`);
  }
  log(`| (not in a timed pass: host, tfjs ops, gaps) | | ${(wall - sum).toFixed(2)} | ${(100 * (wall - sum) / wall).toFixed(1)}% |`);
  console.log(`RESULT profile wall_ms=${wall.toFixed(2)} gpu_sum_ms=${sum.toFixed(2)} span_ms=${span.toFixed(2)}`);
}

async function main(): Promise<void> {
  const [dir, outJson] = process.argv.slice(2);
  await useBackend('webgpu');
  const prompts = JSON.parse(fs.readFileSync(path.join(dir, 'prompts.json'), 'utf8')) as { prefill: number[] };
  const t0 = performance.now();
  const { model } = await loadPretrained(dir);
  const packed = fusedWeightsOf(model);
  await tf.zeros([1]).data();
  console.log(`load + packing ${((performance.now() - t0) / 1000).toFixed(2)} s; ${model.config.numHiddenLayers} layers`);
  const kept = { ...webgpuDenseTuning.f32Tiles };
  if (process.env.SWEEP !== '0') {
    const best = await sweepTiles(packed.layers[0], console.log, Number(process.env.SWEEP_T ?? 2048));
    if (best.dense) kept.dense = best.dense;
    if (best.swiglu) kept.swiglu = best.swiglu;
  }
  console.log(`kept tiles: dense ${JSON.stringify(kept.dense)}, swiglu ${JSON.stringify(kept.swiglu)}`);
  const sides = { kept, 'session-5 shape': { dense: SMALL_F32_TILE, swiglu: SMALL_F32_TILE } };
  const ms: Record<string, number[]> = { kept: [], 'session-5 shape': [] };
  const toks: Record<string, number[]> = {};
  for (const s of Object.keys(sides) as (keyof typeof sides)[]) { webgpuDenseTuning.f32Tiles = sides[s]; await prefill(model, prompts.prefill); }
  webgpuDenseTuning.f32Tiles = kept;
  await profile(model, prompts.prefill, console.log);
  for (let i = 0; i < 3; i++) {
    for (const s of (i % 2 ? ['session-5 shape', 'kept'] : ['kept', 'session-5 shape']) as (keyof typeof sides)[]) {
      webgpuDenseTuning.f32Tiles = sides[s];
      const [t, tok] = await prefill(model, prompts.prefill);
      ms[s].push(t); toks[s] = tok;
    }
  }
  webgpuDenseTuning.f32Tiles = kept;
  const a = median(ms.kept), b = median(ms['session-5 shape']);
  console.log(`prefill ${prompts.prefill.length}: kept tiles ${a.toFixed(1)} ms (runs ${ms.kept.map((x) => x.toFixed(1)).join(' / ')}), ` +
    `session-5 shape ${b.toFixed(1)} ms (${ms['session-5 shape'].map((x) => x.toFixed(1)).join(' / ')}), ratio ${(b / a).toFixed(2)}x; ` +
    `first token ${toks.kept} / ${toks['session-5 shape']} (${String(toks.kept) === String(toks['session-5 shape']) ? 'equal' : 'DIFFERENT'})`);
  console.log(`RESULT prefill_ms=${a.toFixed(2)} prefill_s5shape_ms=${b.toFixed(2)} first_token=${toks.kept} first_token_s5=${toks['session-5 shape']}`);
  if (outJson) fs.writeFileSync(outJson, JSON.stringify({ prefill_ms: a, prefill_s5shape_ms: b, kept, tokens: toks }));
  model.dispose();
}

main().catch((e) => { console.error(e); process.exit(1); });
