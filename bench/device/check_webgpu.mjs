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

async function flashCase(nH, nKv, D, ps, seqs, mask, variant, seed) {
  const need = seqs.reduce((n, [s, t]) => n + Math.ceil((s + t) / ps) + 1, 0);
  const cache = scrambledCache(nKv, D, ps, need + 2);
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
  const out = tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs );
  const got = await out.data();
  tf.dispose([qt, out]);
  const kv = model.map((m) => ({ k: Float32Array.from(m.k), v: Float32Array.from(m.v) }));
  return relErr(got, attentionRef(q, c, kv, nH, nKv, D, attrs.scale, mask));
}

async function main() {
  if (!(await initWebGpuNode())) throw new Error(`webgpu unavailable: ${webGpuNodeStatus().reason}`);
  registerAllKernels();
  await tf.setBackend('webgpu');
  let pass = 0, fail = 0;
  const report = (name, err) => {
    const ok = err < 2e-5;
    if (ok) pass++; else fail++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: rel err ${err.toExponential(2)}`);
  };
  const causal = { variant: 'causal', window: 0, chunk: 0 };
  const masks = [causal, { variant: 'null', window: 0, chunk: 0 }, { variant: 'sliding_window_causal', window: 37, chunk: 0 },
    { variant: 'sliding_window', window: 21, chunk: 0 }, { variant: 'chunked_causal', window: 0, chunk: 64 }];
  const seqs = [[300, 45], [0, 0], [5, 1], [0, 130], [700, 3], [1000, 1]];
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
  webgpuFlashTuning.subgroups = false;
  for (const variant of ['prefill', 'decode'])
    report(`no subgroups 32/8 d128 ps16 ${variant}`, await flashCase(32, 8, 128, 16, seqs, causal, variant, 9));
  webgpuFlashTuning.subgroups = true;
  console.log(`${pass} passed, ${fail} failed`);
  process.exit(fail ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
