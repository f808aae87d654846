/**
 * Whole-model WebGPU bench on a Hugging Face checkpoint (made by make_random_llama.py):
 * load, prefill 2048 (time to the first token), greedy decode at batch 1 and batch 8, through
 * the same Generator the CLI `generate` uses. Decode rate = B * (N - 1) / (t(N tokens) - t(1 token)),
 * medians of 3, as hf_generate.py measures PyTorch. Then, given PyTorch's JSON, prints both sides,
 * the ratios, and whether the greedy tokens agree. Before that: the matmul variant sweep (dense_sweep.ts;
 * DENSE_SWEEP=0 skips it), the flash prefill candidates on this prefill (prefill_tools.ts; FLASH=0
 * skips it), a per-kernel GPU profile of one prefill, and prefill with the kept f32 tiles vs the
 * session-5 tile shape in alternation.
 *
 * usage: node models_webgpu.mjs CKPT_DIR NEW_TOKENS OUT_JSON [HF_JSON]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import '../../lib/backends/node_install.js'; // Dawn WebGPU under Node (the main entry is browser-clean)
import { useBackend } from '../../lib/backends/select.js';
import { Generator } from '../../models/generation/generator.js';
import { fusedForwardSupported } from '../../models/fused_forward.js';
import { fusedWeightsOf } from '../../models/fused_weights.js';
import { loadPretrained } from '../../models/load.js';
import type { DecoderForCausalLM } from '../../models/decoder_lm.js';
import { decodeSplit, denseSweep } from './dense_sweep.js';
import { logProfile, profilePrefill, sweepFlashPrefill } from './prefill_tools.js';
import { SMALL_F32_TILE, webgpuDenseTuning } from '../../kernels/webgpu/dense_plan.js';

const FLAG = 'ATTENTION_ROPE_WEBGPU_MATMUL';
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** Generates n tokens greedily for every prompt together; returns seconds and the tokens. */
async function run(model: DecoderForCausalLM, prompts: number[][], n: number): Promise<[number, number[][]]> {
  const longest = Math.max(...prompts.map((p) => p.length)) + n;
  const gen = new Generator(model, {
    numPages: prompts.length * Math.ceil(longest / model.kvParams.pageSize) + 1,
    maxBatchTokens: 4096, prefillChunk: 4096,
  });
  const handles = prompts.map((p) => gen.submit({ promptIds: p, maxNewTokens: n, stopTokens: [] }));
  const t = performance.now();
  await gen.run();
  const s = (performance.now() - t) / 1000;
  return [s, await Promise.all(handles.map((h) => h.done))];
}

async function main(): Promise<void> {
  const [dir, nArg, outJson, hfJson] = process.argv.slice(2);
  const N = Number(nArg);
  await useBackend('webgpu');
  const prompts = JSON.parse(fs.readFileSync(path.join(dir, 'prompts.json'), 'utf8')) as { prefill: number[]; decode: number[][] };
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
  const tr = performance.now();
  let bytes = 0;
  const chunk = Buffer.allocUnsafe(64 << 20);
  for (const f of files) { // plain read in 64 MiB chunks, for scale
    const fd = fs.openSync(path.join(dir, f), 'r');
    for (let n = 0; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0;) bytes += n;
    fs.closeSync(fd);
  }
  const readS = (performance.now() - tr) / 1000;
  console.log(`plain read of ${files.length} safetensors file(s): ${(bytes / 2 ** 30).toFixed(2)} GiB in ${readS.toFixed(2)} s`);
  const t0 = performance.now();
  const { model } = await loadPretrained(dir);
  const loadS = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  fusedWeightsOf(model);
  await tf.zeros([1]).data(); // wait for the packing on the device
  const packS = (performance.now() - t1) / 1000;
  console.log(`load ${loadS.toFixed(2)} s, weight packing ${packS.toFixed(2)} s, fused path ${fusedForwardSupported(model)}`);
  const res: Record<string, unknown> = { read_s: readS, load_s: loadS, pack_s: packS, tokens: {} as Record<string, number[][]> };
  const tokens = res.tokens as Record<string, number[][]>;
  if (process.env.DENSE_SWEEP !== '0') res.kernels = await denseSweep(model, console.log);
  for (const b of [1, 8]) await decodeSplit(model, b, console.log);
  if (process.env.FLASH !== '0') res.flash_prefill = await sweepFlashPrefill(model, prompts.prefill, console.log);
  const prof = await profilePrefill(model, prompts.prefill);
  if (prof) logProfile(prof, prompts.prefill.length, console.log);
  // prefill with the kept matmul choice ('auto': split-f16 where offered and faster, else the f32 tiles), alternating
  // with the f32 tiles forced and the session-5 tile shape (128 x 128, bk 8, one buffer, WGSL loop) in one process
  const kept = { tiles: { ...webgpuDenseTuning.f32Tiles }, flag: tf.env().get(FLAG) };
  const sides: Record<string, { tiles: typeof kept.tiles; flag: unknown }> = {
    kept, f32: { tiles: kept.tiles, flag: 'f32' }, s5: { tiles: { dense: SMALL_F32_TILE, swiglu: SMALL_F32_TILE }, flag: 'f32' },
  };
  const use = (v: { tiles: typeof kept.tiles; flag: unknown }) => { webgpuDenseTuning.f32Tiles = v.tiles; tf.env().set(FLAG, v.flag as boolean); };
  const times: Record<string, number[]> = { kept: [], f32: [], s5: [] };
  for (const v of Object.values(sides)) { use(v); await run(model, [prompts.prefill], 1); } // warm-up: compiles the shaders
  for (let i = 0; i < 3; i++) {
    for (const side of i % 2 ? ['s5', 'f32', 'kept'] : ['kept', 'f32', 's5']) {
      use(sides[side]);
      const [s, toks] = await run(model, [prompts.prefill], 1);
      times[side].push(s);
      tokens[side === 'kept' ? 'prefill' : `prefill_${side}`] = toks;
    }
  }
  use(kept);
  const pre = times.kept, preS5 = times.s5;
  res.prefill_f32_ms = 1000 * median(times.f32);
  res.prefill_ms = 1000 * median(pre);
  res.prefill_s5_tile_ms = 1000 * median(preS5);
  console.log(`prefill ${prompts.prefill.length}: kept (matmul ${String(kept.flag)}, f32 tiles ${JSON.stringify(kept.tiles)}) ${(res.prefill_ms as number).toFixed(1)} ms, ` +
    `f32 tiles forced ${(res.prefill_f32_ms as number).toFixed(1)} ms (runs ${times.f32.map((x) => (1000 * x).toFixed(1)).join(' / ')}), ` +
    `session-5 tile shape ${(res.prefill_s5_tile_ms as number).toFixed(1)} ms`);
  console.log(`RESULT prefill_kept_ms=${(res.prefill_ms as number).toFixed(2)} prefill_f32_ms=${(res.prefill_f32_ms as number).toFixed(2)} prefill_s5_ms=${(res.prefill_s5_tile_ms as number).toFixed(2)}`);
  for (const b of [1, 8]) {
    const ids = prompts.decode.slice(0, b);
    await run(model, ids, 4); // warm-up
    const rates: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [s1] = await run(model, ids, 1);
      const [sn, toks] = await run(model, ids, N);
      rates.push((b * (N - 1)) / (sn - s1));
      tokens[`b${b}`] = toks;
    }
    res[`decode_b${b}_tok_s`] = median(rates);
  }
  console.log(`ours webgpu: prefill ${prompts.prefill.length} ${(res.prefill_ms as number).toFixed(1)} ms (runs ${pre.map((s) => (1000 * s).toFixed(1)).join(' / ')}), ` +
    `decode b1 ${(res.decode_b1_tok_s as number).toFixed(1)} tok/s, b8 ${(res.decode_b8_tok_s as number).toFixed(1)} tok/s`);
  fs.writeFileSync(outJson, JSON.stringify(res));
  if (hfJson && fs.existsSync(hfJson)) {
    const hf = JSON.parse(fs.readFileSync(hfJson, 'utf8'));
    const row = (k: string, unit: string, higherBetter: boolean) => {
      const o = res[k] as number, p = hf[k] as number;
      console.log(`| ${k} | ${p.toFixed(1)} ${unit} | ${o.toFixed(1)} ${unit} | ${(higherBetter ? o / p : p / o).toFixed(2)}x |`);
    };
    console.log('| column | PyTorch f32 generate | ours webgpu | ours vs PyTorch (>1 = faster) |\n| --- | --- | --- | --- |');
    if (typeof hf.load_s === 'number') console.log(`| load_s | ${hf.load_s.toFixed(2)} s (from_pretrained + .cuda()) | ${loadS.toFixed(2)} s (+ ${packS.toFixed(2)} s packing) | ${(hf.load_s / (loadS + packS)).toFixed(2)}x |`);
    row('prefill_ms', 'ms', false); row('decode_b1_tok_s', 'tok/s', true); row('decode_b8_tok_s', 'tok/s', true);
    for (const k of Object.keys(tokens)) {
      const a = tokens[k], h = hf.tokens[k.replace(/_(s5|f32)$/, '')] as number[][];
      const same = a.map((seq, i) => { const j = seq.findIndex((t, x) => t !== h[i][x]); return j < 0 ? seq.length : j; });
      console.log(`tokens ${k}: ${same.every((s, i) => s === a[i].length) ? 'all equal' : `first difference at ${JSON.stringify(same)}`} ` +
        `(${a.length} x ${a[0].length}; ours ${JSON.stringify(a[0].slice(0, 8))}, torch ${JSON.stringify(h[0].slice(0, 8))})`);
    }
  }
  model.dispose();
}

main().catch((e) => { console.error(e); process.exit(1); });
