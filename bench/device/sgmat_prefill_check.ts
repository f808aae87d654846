/**
 * The tensor-core prefill (kernels/webgpu/flash_prefill_sgmat_wgsl.ts) against the f32 tiles and a
 * float64 reference, one kernel variant per process (`node sgmat_prefill_check.mjs <variant>`):
 * `tile` (the f32 tiles), `sgmat:<subgroups>:<keys>[:<options joined by +>]` (tensor cores; options:
 * `shared` twin-lane exchange, `qreload` Q in its own array, and the WGSL edits of EDITS below),
 * `emul:<subgroups>:<keys>` (the same kernel with its matrix ops in plain WGSL,
 * subgroup_matrix_emulation.ts: tells a logic bug from a device one), `emulqk:` / `emulpv:` (only
 * S = Q Kᵀ or only O += P V in plain WGSL, the other product on tensor cores). Causal masks, float16 caches:
 * small odd shapes (GQA 4 / 1, d 16 / 64 / 128, several sequences, pages of 16) checked on every
 * row, then 1 x 4096, 32/8 heads, d128 (pages of 128) on 8 sampled rows and timed (GPU timestamps of
 * 20 calls, median). `--big-only` / `--small-only`. Prints `RESULT ...` lines.
 */
import * as tf from '@tensorflow/tfjs';
import { writeSync } from 'node:fs';
import { FlashAttentionRaggedPaged } from '../../kernels/kernel_names.js';
import { choosePrefillKind, webgpuFlashTuning } from '../../kernels/webgpu/flash_plan.js';
import { fixedSubgroupSize } from '../../kernels/webgpu/gpu_util.js';
import { sgmatPrefillSharedBytes } from '../../kernels/webgpu/flash_prefill_sgmat_wgsl.js';
import { registerAllKernels } from '../../kernels/register_all.js';
import { initWebGpuNode, webGpuNodeStatus } from '../../lib/backends/webgpu_node.js';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache.js';
import { batchMs, median, passTimesMs, refRow, warmUp } from '../webgpu_harness.js';

const mark = (s: string) => writeSync(1, `${s}\n`);

function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; a[i] = (s / 4294967296) * 2 - 1; }
  return a;
}

interface Shape { nH: number; nKv: number; D: number; ps: number; seqs: [number, number][]; rows?: number }

/** Error (max over checked rows of max |got - ref| / max |ref|) and, when `time`, GPU ms per call. */
async function runShape(s: Shape, time: boolean): Promise<{ err: number; ms?: number }> {
  const { nH, nKv, D, ps, seqs } = s;
  const numPages = seqs.reduce((n, [a, b]) => n + Math.ceil((a + b) / ps), 0) + 1;
  const cache = new PagedKVCache({ nKvHeads: nKv, headDim: D, pageSize: ps, numPages, numLayers: 1, dtype: 'float16' });
  const ids = seqs.map((_, b) => cache.addSequence(b));
  let seed = 7;
  const write = (counts: number[]) => {
    const c = cache.fetch(ids, counts);
    if (c.totalTokens > 0) cache.writeTokens(0, c, random(c.totalTokens * nKv * D, ++seed), random(c.totalTokens * nKv * D, ++seed)); // [T, nKv * D]
    return c;
  };
  if (seqs.some(([a]) => a > 0)) cache.step(write(seqs.map(([a]) => a)));
  const c = write(seqs.map(([, b]) => b));
  const { k, v } = cache.decodePages(0, Int32Array.from({ length: numPages }, (_, i) => i));
  const q = random(c.totalTokens * nH * D, 3); // [T, nH * D]
  const qt = tf.tensor2d(q, [c.totalTokens, nH * D]);
  const attrs = { nHeads: nH, nKvHeads: nKv, headDim: D, scale: 1 / Math.sqrt(D), mask: { variant: 'causal', window: 0, chunk: 0 }, collection: c, layerIdx: 0, variant: 'prefill' };
  const run = () => tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const out = run();
  const got = await out.data() as Float32Array;
  out.dispose();
  const heads = { nH, nKv, D, pageSize: ps };
  const checks: [number, number, number][] = []; // (b, packed row, head)
  seqs.forEach(([, n], b) => { for (let r = 0; r < n; r++) for (let h = 0; h < nH; h++) checks.push([b, c.rowOffsets[b] + r, h]); });
  const picked = s.rows ? Array.from({ length: s.rows }, (_, i) => checks[((i * 2654435761) >>> 0) % checks.length]) : checks;
  let err = 0;
  for (const [b, r, h] of picked) {
    const ref = refRow(q, k, v, c, b, r, h, 1 / Math.sqrt(D), heads);
    let e = 0, m = 1e-6;
    for (let d = 0; d < D; d++) { e = Math.max(e, Math.abs(got[(r * nH + h) * D + d] - ref[d])); m = Math.max(m, Math.abs(ref[d])); }
    err = Math.max(err, Number.isNaN(e) ? Infinity : e / m);
  }
  let ms: number | undefined;
  if (time) {
    await warmUp(run);
    ms = median((await passTimesMs(run, 20)) ?? [await batchMs(run, 20)]);
  }
  qt.dispose();
  cache.attachDeviceMirror(null);
  return { err, ms };
}

const SMALL: Shape[] = [
  { nH: 8, nKv: 2, D: 64, ps: 16, seqs: [[37, 21], [0, 45], [130, 3]] },
  { nH: 2, nKv: 2, D: 16, ps: 16, seqs: [[0, 40], [17, 5]] },
  { nH: 4, nKv: 1, D: 128, ps: 16, seqs: [[0, 100]] },
  { nH: 8, nKv: 2, D: 64, ps: 16, seqs: [[0, 16]] },
];
const BIG: Shape = { nH: 32, nKv: 8, D: 128, ps: 128, seqs: [[0, 4096]], rows: 8 };

/** WGSL edits that bisect a device-only failure (each must find its text). */
const need = (w: string, from: string): string => { if (!w.includes(from)) throw new Error(`edit: '${from.trim()}' not in the WGSL`); return from; };
const EDITS: Record<string, (w: string) => string> = {
  'no-guard': (w) => w.replace(need(w, '  if (tile >= u32(mt[0])) { return; }\n'), ''),
  'no-requires': (w) => w.replace(need(w, '\nrequires subgroup_id;'), '').replace('diagnostic(off, subgroup_uniformity);\n', ''),
  lets: (w) => w.replace(/(\w+) = subgroupMatrixMultiplyAccumulate\((\w+), (subgroupMatrixLoad<[^;]*?\)), (\w+)\);/g,
    '{ let mArg = $3; $1 = subgroupMatrixMultiplyAccumulate($2, mArg, $4); }'),
  'scalar-flag': (w) => w.replace(need(w, 'var<workgroup> rescaleFlag: array<u32, 4>;'), 'var<workgroup> rescaleFlag: u32;').replace(/rescaleFlag\[0\]/g, 'rescaleFlag'),
  barriers: (w) => w.replace(need(w, '    {\n      var s = AccM();'), '    workgroupBarrier();\n    {\n      var s = AccM();')
    .replace(need(w, '    {\n      let p = subgroupMatrixLoad<LeftP'), '    workgroupBarrier();\n    {\n      let p = subgroupMatrixLoad<LeftP'),
};

async function main(): Promise<void> {
  const variant = process.argv[2] ?? 'tile';
  const t = webgpuFlashTuning;
  const [kind, nsg, bn, optList] = variant.split(':');
  const opts = (optList ?? '').split('+').filter((o) => o);
  if (kind !== 'tile') {
    process.env.TFJS_ATTENTION_WEBGPU_PREFILL = 'sgmat';
    Object.assign(t, {
      prefillSgmat: true, prefillSgmatSubgroups: Number(nsg), prefillSgmatKeys: Number(bn), prefillSgmatSubgroupId: 'builtin',
      prefillSgmatEmulate: kind === 'emul' ? true : kind === 'emulqk' ? 'qk' : kind === 'emulpv' ? 'pv' : false,
      prefillSgmatExchange: opts.includes('shared') ? 'shared' : 'shuffle', prefillSgmatQReload: opts.includes('qreload'),
    });
    const edits = opts.filter((o) => o in EDITS);
    if (edits.length) t.prefillSgmatDebugEdit = (w: string) => edits.reduce((c, e) => EDITS[e](c), w);
    const unknown = opts.filter((o) => !(o in EDITS) && o !== 'shared' && o !== 'qreload');
    if (unknown.length) throw new Error(`options (${unknown.join(', ')}) must be among shared, qreload, ${Object.keys(EDITS).join(', ')}`);
  } else process.env.TFJS_ATTENTION_WEBGPU_PREFILL = 'tile';
  if (!(await initWebGpuNode())) throw new Error(webGpuNodeStatus().reason);
  registerAllKernels();
  await tf.setBackend('webgpu');
  const dev = (tf.backend() as unknown as { device: GPUDevice }).device;
  dev.addEventListener('uncapturederror', (e) => mark(`uncaptured: ${(e as unknown as { error: { message: string } }).error.message.slice(0, 300)}`));
  const caps = { subgroupMatrix: dev.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName), shaderF16: dev.features.has('shader-f16'), subgroupSize: fixedSubgroupSize(dev) };
  const chosen = choosePrefillKind({ nHeads: 32, nKvHeads: 8, headDim: 128 } as never, caps, 'float16');
  const bytes = sgmatPrefillSharedBytes({ nsg: t.prefillSgmatSubgroups, bn: t.prefillSgmatKeys, sgid: 'builtin', xchg: t.prefillSgmatExchange, emulate: t.prefillSgmatEmulate, qReload: t.prefillSgmatQReload },
    { headDim: 128, nHeads: 32, nKvHeads: 8 });
  mark(`RESULT prefill ${variant}: kernel taken ${chosen} (caps ${JSON.stringify(caps)}); d128 shared ${bytes} of ${dev.limits.maxComputeWorkgroupStorageSize} bytes`);
  const shapes = [...(process.argv.includes('--big-only') ? [] : SMALL), ...(process.argv.includes('--small-only') ? [] : [BIG])];
  for (const s of shapes) {
    const name = `${s.nH}/${s.nKv} d${s.D} ps${s.ps} seqs ${JSON.stringify(s.seqs)}`;
    mark(`prefill ${variant} ${name}`);
    try {
      const r = await runShape(s, s === BIG);
      const flop = 4 * s.nH * s.D * s.seqs.reduce((n, [a, b]) => n + b * a + (b * (b + 1)) / 2, 0);
      mark(`RESULT prefill ${variant} ${name}: rel err ${r.err.toExponential(2)}${r.ms !== undefined ? `; ${r.ms.toFixed(3)} ms, ${(flop / r.ms / 1e9).toFixed(1)} TFLOP/s` : ''}`);
    } catch (e) {
      mark(`RESULT prefill ${variant} ${name}: ERROR ${(e as Error).message.slice(0, 300)}`);
    }
  }
}

main().then(() => process.exit(0), (e) => { mark(`RESULT prefill ${process.argv[2]}: ERROR ${(e as Error).message}`); process.exit(1); });
