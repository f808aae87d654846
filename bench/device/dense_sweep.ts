/**
 * Kernel-level figures for the whole-model bench, on the model's own shapes: the prefill matmuls
 * (the kept f32 tiles and the session-5 tile shape, and split-f16 tensor-core tiles, alternating rounds; each checked against
 * the f32 tile first, odd shapes and the f16-range fallback included; the fastest exact one is
 * kept in webgpuDenseTuning and the ATTENTION_ROPE_WEBGPU_MATMUL flag), GEMV read bandwidth at
 * M = 1 and 8, and a decode step split into host encode time and the rest.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { denseMatMul, swiGluMlp } from '../../kernels/model_ops.js';
import { SMALL_F32_TILE, webgpuDenseTuning } from '../../kernels/webgpu/dense_plan.js';
import type { WebGpuBackendLike } from '../../kernels/webgpu/gpu_util.js';
import { splitF16Tile } from '../../kernels/webgpu/matmul_split_f16_wgsl.js';
import { splitF16Supported, subgroupMatrixConfigs } from '../../kernels/webgpu/tensor_cores.js';
import type { DecoderForCausalLM } from '../../models/decoder_lm.js';
import { fusedWeightsOf, packGateUp } from '../../models/fused_weights.js';

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const FLAG = 'ATTENTION_ROPE_WEBGPU_MATMUL';

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

interface Variant { name: string; apply: () => void }
type SplitTile = typeof webgpuDenseTuning.splitF16;

const SPLIT_TILES: SplitTile[] = [
  { sgM: 2, sgN: 2, tm: 4, tn: 4, bk: 32 }, { sgM: 2, sgN: 2, tm: 4, tn: 4, bk: 16 },
  { sgM: 4, sgN: 2, tm: 2, tn: 4, bk: 32 }, { sgM: 4, sgN: 2, tm: 2, tn: 4, bk: 16 },
  { sgM: 2, sgN: 4, tm: 4, tn: 2, bk: 32 }, { sgM: 4, sgN: 4, tm: 2, tn: 2, bk: 16 },
];

function variants(device: GPUDevice): Variant[] {
  const kept = { ...webgpuDenseTuning.f32Tiles }; // the tiles prefill_sweep.ts chose (or the defaults)
  const f32 = (name: string, tiles: typeof kept): Variant => ({ name, apply: () => { tf.env().set(FLAG, 'f32' as unknown as boolean); webgpuDenseTuning.f32Tiles = tiles; } });
  const out = [f32('f32 kept tiles', kept), f32('f32 session-5 shape', { dense: SMALL_F32_TILE, swiglu: SMALL_F32_TILE })];
  if (!splitF16Supported(device)) return out;
  const maxShared = device.limits.maxComputeWorkgroupStorageSize;
  for (const t of SPLIT_TILES) {
    if (splitF16Tile({ mode: 'dense', ...t, bias: false, residual: false }).sharedBytes > maxShared) continue;
    out.push({ name: `split-f16 ${t.sgM}x${t.sgN} sg, ${t.tm}x${t.tn} mats, bk${t.bk}`, apply: () => { tf.env().set(FLAG, 'split-f16' as unknown as boolean); webgpuDenseTuning.splitF16 = { ...t }; } });
  }
  return out;
}

async function maxRelDiff(a: tf.Tensor, ref: tf.Tensor): Promise<number> {
  const [d, m] = await Promise.all([tf.max(tf.abs(tf.sub(a, ref))).data(), tf.max(tf.abs(ref)).data()]);
  return Number.isFinite(d[0]) ? d[0] / Math.max(m[0], 1e-30) : Infinity;
}

/** Odd shapes, bias, residual, SwiGLU with I % 64 != 0 and an x value beyond f16's range. */
function checkCases(): (() => tf.Tensor)[] {
  const x = tf.randomNormal([77, 132]) as tf.Tensor2D;
  const w = tf.mul(tf.randomNormal([200, 132]), 0.05) as tf.Tensor2D;
  const bias = tf.randomNormal([200]) as tf.Tensor1D;
  const res = tf.randomNormal([77, 200]) as tf.Tensor2D;
  const big = tf.add(x, tf.scatterND([[5, 7]], [1e6], [77, 132])) as tf.Tensor2D;
  const gateUp = packGateUp(tf.mul(tf.randomNormal([100, 132]), 0.05), tf.mul(tf.randomNormal([100, 132]), 0.05)) as tf.Tensor2D;
  const gub = packGateUp(tf.randomNormal([100]), tf.randomNormal([100])) as tf.Tensor1D;
  const down = tf.mul(tf.randomNormal([132, 100]), 0.05) as tf.Tensor2D;
  const db = tf.randomNormal([132]) as tf.Tensor1D;
  const r2 = tf.randomNormal([77, 132]) as tf.Tensor2D;
  return [
    () => denseMatMul(x, w, { bias, residual: res }),
    () => denseMatMul(big, w),
    () => swiGluMlp(x, gateUp, down, { gateUpBias: gub, downBias: db, residual: r2 }),
    () => swiGluMlp(big, gateUp, down),
  ];
}

export async function denseSweep(model: DecoderForCausalLM, log: (s: string) => void): Promise<Record<string, number>> {
  const device = (tf.backend() as unknown as WebGpuBackendLike).device;
  const w = fusedWeightsOf(model).layers[0];
  const H = model.config.hiddenSize;
  const I = model.config.intermediateSize;
  const out: Record<string, number> = {};
  const vs = variants(device);
  const info = (device as unknown as { adapterInfo?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
  log(`adapter: subgroups ${info?.subgroupMinSize}-${info?.subgroupMaxSize}, features ${['chromium-experimental-subgroup-matrix', 'shader-f16', 'subgroups'].filter((f) => device.features.has(f)).join(',')}, subgroup matrices ${subgroupMatrixConfigs(device).join(', ') || 'none'}`);
  log(`split-f16 tensor cores: ${splitF16Supported(device) ? 'supported' : 'not offered'}; variants: ${vs.map((v) => v.name).join(' | ')}`);
  const x = tf.randomNormal([2048, H]) as tf.Tensor2D;
  const a = tf.randomNormal([2048, w.o.shape[1]]) as tf.Tensor2D;
  const layer = () => tf.tidy(() => { // one layer's products: qkv, o (+ residual), SwiGLU MLP (+ residual)
    const qkv = denseMatMul(x, w.qkv);
    const h1 = denseMatMul(a, w.o, { residual: x });
    return tf.concat([qkv.slice([0, 0], [2048, 8]), swiGluMlp(h1, w.gateUp, w.down, { residual: h1 })], 1);
  });
  const flops = 2 * 2048 * (H * w.qkv.shape[0] + w.o.shape[1] * H + 3 * H * I);
  const cases = checkCases();
  vs[0].apply();
  const refs = cases.map((f) => f());
  const refLayer = layer();
  const ok: Variant[] = [];
  for (const v of vs) {
    try {
      v.apply();
      const errs: number[] = [];
      for (let i = 0; i < cases.length; i++) { const y = cases[i](); errs.push(await maxRelDiff(y, refs[i])); y.dispose(); }
      const y = layer(); errs.push(await maxRelDiff(y, refLayer)); y.dispose();
      const exact = errs.every((e) => e < 2e-5);
      log(`${v.name}: max |diff| / max |f32 tile| = ${errs.map((e) => e.toExponential(1)).join(', ')} (odd dense, f16-range fallback, odd swiglu, swiglu fallback, layer) -> ${exact ? 'exact' : 'REJECTED'}`);
      if (exact) ok.push(v);
    } catch (e) {
      log(`${v.name}: failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const times = new Map<string, number[]>(ok.map((v) => [v.name, []]));
  for (let round = 0; round < 3; round++) {
    for (const v of round % 2 ? [...ok].reverse() : ok) { v.apply(); times.get(v.name)!.push(await timeCalls(layer, 5)); }
  }
  let best = ok[0];
  for (const v of ok) {
    const ms = median(times.get(v.name)!);
    out[`layer_${v.name.replace(/[^a-z0-9]+/gi, '_')}_tflops`] = flops / ms / 1e9;
    log(`${v.name}: one layer's products at 2048 tokens ${ms.toFixed(2)} ms = ${(flops / ms / 1e9).toFixed(1)} TFLOP/s`);
    if (ms < median(times.get(best.name)!)) best = v;
  }
  best.apply();
  log(`keeping ${best.name}`);
  for (const m of [1, 8]) {
    const xm = tf.randomNormal([m, H]) as tf.Tensor2D;
    const ms = await timeCalls(() => denseMatMul(xm, w.gateUp), 50);
    out[`gemv_m${m}_tbs`] = (4 * w.gateUp.size) / ms / 1e9;
    log(`GEMV M=${m} on [${w.gateUp.shape}] (${((4 * w.gateUp.size) / 2 ** 20).toFixed(0)} MiB): ${(1000 * ms).toFixed(1)} us = ${out[`gemv_m${m}_tbs`].toFixed(2)} TB/s`);
    xm.dispose();
  }
  tf.dispose([x, a, refLayer, ...refs]);
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
