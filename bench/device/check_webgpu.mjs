/**
 * The webgpu kernel spec's cases, outside jest, for a real GPU (the device machine has no
 * node_modules to run jest): FlashAttentionRaggedPaged over masks, page sizes, GQA ratios, head
 * sizes and both paths, and RopeSplitStoreRagged + a prefill/decode pipeline with a fork, each
 * against float64 references (spec/kernels/webgpu_support.ts). Prints one line per case and
 * `N passed, N failed`. Bundled (esbuild, which also reads the .ts it imports) and run by bench/device/run.sh; plain JS so
 * that tsc's build, which must not pull in spec/, skips it.
 */
import * as tf from '@tensorflow/tfjs';
import { FlashAttentionRaggedPaged } from '../../kernels/kernel_names.ts';
import { webgpuFlashTuning } from '../../kernels/webgpu/flash_plan.ts';
import { registerAllKernels } from '../../kernels/register_all.ts';
import { initWebGpuNode, webGpuNodeStatus } from '../../lib/backends/webgpu_node.ts';
import { gpuErrorText } from '../gpu_error_text.ts';
import { attentionRef, rand, scrambledCache } from '../../spec/kernels/webgpu_support.ts';

function relErr(a, b) {
  let e = 0, m = 1;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i])) return Infinity;
    e = Math.max(e, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return a.length === b.length ? e / m : Infinity;
}

/** A case; `format` = a compact cache ({dtype, kScale, vScale}): the reference then reads the cache's decoded rows. */
async function flashCase(nH, nKv, D, ps, seqs, mask, variant, seed, format) {
  const need = seqs.reduce((n, [s, t]) => n + Math.ceil((s + t) / ps) + 1, 0);
  const cache = scrambledCache(nKv, D, ps, need + 2, 1, format ?? {});
  const ids = seqs.map((_, b) => cache.addSequence(b));
  const model = seqs.map(() => ({ k: [], v: [] }));
  let sd = seed;
  const write = (counts) => {
    const c = cache.fetch(ids, counts);
    const k = rand(c.totalTokens * nKv * D, ++sd), v = rand(c.totalTokens * nKv * D, ++sd);
    cache.writeTokens(0, c, k, v);
    ids.forEach((_, b) => {
      const [f, t] = [c.rowOffsets[b] * nKv * D, c.rowOffsets[b + 1] * nKv * D];
      for (let i = f; i < t; i++) { model[b].k.push(k[i]); model[b].v.push(v[i]); }
    });
    return c;
  };
  cache.step(write(seqs.map(([s]) => s)));
  const c = write(seqs.map(([, t]) => t));
  const q = rand(c.totalTokens * nH * D, ++sd);
  const attrs = { nHeads: nH, nKvHeads: nKv, headDim: D, scale: 1 / Math.sqrt(D), mask, collection: c, layerIdx: 0, variant };
  const qt = tf.tensor2d(q, [c.totalTokens, nH * D]);
  const kvDecoded = format ? decodedRows(cache, c, seqs, nKv, D) : null;
  const out = tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs );
  const got = await out.data();
  tf.dispose([qt, out]);
  const kv = kvDecoded ?? model.map((m) => ({ k: Float32Array.from(m.k), v: Float32Array.from(m.v) }));
  cache.attachDeviceMirror(null);
  return relErr(got, attentionRef(q, c, kv, nH, nKv, D, attrs.scale, mask));
}

/** Per sequence the cache's decoded rows `[L, nKv, D]` (readSequence gives `[nKv, L, D]`). */
function decodedRows(cache, c, seqs, nKv, D) {
  return seqs.map(([s, t], b) => {
    const L = s + t, r = cache.readSequence(0, c, b, L);
    const k = new Float32Array(L * nKv * D), v = new Float32Array(L * nKv * D);
    for (let h = 0; h < nKv; h++) for (let j = 0; j < L; j++) {
      k.set(r.k.subarray((h * L + j) * D, (h * L + j + 1) * D), (j * nKv + h) * D);
      v.set(r.v.subarray((h * L + j) * D, (h * L + j + 1) * D), (j * nKv + h) * D);
    }
    return { k, v };
  });
}

/** Runs `f` with TFJS_ATTENTION_<k> = v for each entry, under a GPU error scope (a WGSL error becomes the thrown message). */
async function forced(env, f) {
  const saved = {};
  for (const [k, v] of Object.entries(env)) { saved[k] = process.env[`TFJS_ATTENTION_${k}`]; process.env[`TFJS_ATTENTION_${k}`] = v; }
  const dev = tf.backend().device;
  dev.pushErrorScope('validation');
  try {
    const r = await f();
    const e = await dev.popErrorScope();
    if (e) throw new Error(gpuErrorText(e.message));
    return r;
  } finally {
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[`TFJS_ATTENTION_${k}`]; else process.env[`TFJS_ATTENTION_${k}`] = v; }
  }
}

async function main() {
  if (!(await initWebGpuNode())) throw new Error(`webgpu unavailable: ${webGpuNodeStatus().reason}`);
  registerAllKernels();
  await tf.setBackend('webgpu');
  console.log(`features: ${webGpuNodeStatus().features.filter((f) => /f16|subgroup/.test(f)).join(', ')}`);
  let pass = 0, fail = 0;
  const report = (name, err, tol = 2e-5) => {
    const ok = err < tol;
    if (ok) pass++; else fail++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: rel err ${err.toExponential(2)}`);
  };
  const causal = { variant: 'causal', window: 0, chunk: 0 };
  const masks = [causal, { variant: 'null', window: 0, chunk: 0 }, { variant: 'sliding_window_causal', window: 37, chunk: 0 },
    { variant: 'sliding_window', window: 21, chunk: 0 }, { variant: 'chunked_causal', window: 0, chunk: 64 }];
  const seqs = [[300, 45], [0, 0], [5, 1], [0, 130], [700, 3], [1000, 1]];
  if (!process.env.CHECK_COMPACT_ONLY) { // (set: only the compact-cache and tensor-core cases below)
  for (const ps of [1, 7, 16, 128])
    for (const variant of ['prefill', 'decode', 'auto'])
      report(`causal 32/8 d128 ps${ps} ${variant}`, await flashCase(32, 8, 128, ps, seqs, causal, variant, ps));
  for (const mask of masks)
    for (const variant of ['prefill', 'decode'])
      report(`${mask.variant} 8/2 d64 ps16 ${variant}`, await flashCase(8, 2, 64, 16, seqs, mask, variant, 3));
  for (const [nH, nKv, D] of [[4, 4, 32], [6, 2, 64], [8, 1, 16], [4, 2, 80], [2, 1, 256], [16, 2, 128]])
    for (const variant of ['prefill', 'decode'])
      report(`${nH}/${nKv} d${D} ps16 ${variant}`, await flashCase(nH, nKv, D, 16, [[200, 33], [3, 1], [0, 90]], causal, variant, D));
  for (const [nH, nKv, D] of [[4, 2, 6], [3, 3, 10], [2, 1, 33]])
    for (const mask of masks)
      report(`scalar kernel ${nH}/${nKv} d${D} ps7 ${mask.variant}`, await flashCase(nH, nKv, D, 7, seqs, mask, 'auto', D));
  }
  // Compact caches: every decode kernel per dtype; prefill by the f32 tiles and on tensor cores
  // (subgroup matrices: Q, K, V, P in f16, so within 5e-3 of float64, as half-precision flash attention).
  const formats = { float16: {}, bfloat16: {}, int8: {}, float8_e4m3: { kScale: 0.5 / 448, vScale: 0.75 / 448 } };
  const tryCase = async (name, env, tol, args) => {
    try { report(name, await forced(env, () => flashCase(...args)), tol); } catch (e) { report(`${name} (${gpuErrorText(String(e.message))})`, Infinity, tol); }
  };
  for (const [dtype, fmt] of Object.entries(formats)) {
    const format = { dtype, ...fmt };
    for (const kind of ['stream', 'packed', 'subgroup', 'tiles'])
      await tryCase(`${dtype} decode ${kind} 32/8 d128 ps16`, { WEBGPU_DECODE: kind }, 2e-5, [32, 8, 128, 16, seqs, causal, 'decode', 21, format]);
    for (const kind of ['stream', 'packed'])
      await tryCase(`${dtype} decode ${kind} 8/2 d64 ps7 sliding_window_causal`, { WEBGPU_DECODE: kind }, 2e-5, [8, 2, 64, 7, seqs, masks[2], 'decode', 22, format]);
    await tryCase(`${dtype} prefill tile 32/8 d128 ps16`, { WEBGPU_PREFILL: 'tile' }, 2e-5, [32, 8, 128, 16, seqs, causal, 'prefill', 23, format]);
  }
  webgpuFlashTuning.prefillSgmat = true; // off by default until these pass
  for (const dtype of ['float16', 'bfloat16', 'float32']) {
    const format = dtype === 'float32' ? undefined : { dtype };
    for (const sgid of ['builtin', 'broadcast']) {
      webgpuFlashTuning.prefillSgmatSubgroupId = sgid;
      await tryCase(`${dtype} prefill sgmat (subgroup id ${sgid}) 32/8 d128 ps16 causal`, { WEBGPU_PREFILL: 'sgmat' }, 5e-3, [32, 8, 128, 16, seqs, causal, 'prefill', 24, format]);
    }
    webgpuFlashTuning.prefillSgmatSubgroupId = 'auto';
    for (const mask of masks.slice(1))
      await tryCase(`${dtype} prefill sgmat 8/2 d64 ps7 ${mask.variant}`, { WEBGPU_PREFILL: 'sgmat' }, 5e-3, [8, 2, 64, 7, seqs, mask, 'prefill', 25, format]);
    for (const [nH, nKv, D] of [[4, 4, 32], [16, 2, 128], [8, 1, 256], [2, 1, 64]])
      await tryCase(`${dtype} prefill sgmat ${nH}/${nKv} d${D} ps16`, { WEBGPU_PREFILL: 'sgmat' }, 5e-3, [nH, nKv, D, 16, [[200, 33], [3, 1], [0, 90]], causal, 'prefill', D, format]);
  }
  webgpuFlashTuning.prefillSgmat = false;
  await tryCase('float16 auto path 32/8 d128', {}, 5e-3, [32, 8, 128, 16, seqs, causal, 'auto', 26, { dtype: 'float16' }]);
  webgpuFlashTuning.subgroups = false;
  for (const variant of ['prefill', 'decode'])
    report(`no subgroups 32/8 d128 ps16 ${variant}`, await flashCase(32, 8, 128, 16, seqs, causal, variant, 9));
  webgpuFlashTuning.subgroups = true;
  console.log(`${pass} passed, ${fail} failed`);
  process.exit(fail ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
