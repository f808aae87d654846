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
import { fusedWeightsOf } from '../../models/fused_weights.js';
import { loadPretrained } from '../../models/load.js';
import { logProfile, prefill, profilePrefill, sweepFlashPrefill } from './prefill_tools.js';
import { median, sweepTiles } from './prefill_sweep.js';

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
  const p = await profilePrefill(model, prompts.prefill);
  if (p) logProfile(p, prompts.prefill.length, console.log); else console.log('profile: no timestamp-query on this adapter');
  if (process.env.FLASH !== '0') await sweepFlashPrefill(model, prompts.prefill, console.log);
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
