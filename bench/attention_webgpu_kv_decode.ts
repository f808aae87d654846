/**
 * WebGPU decode over every KV cache dtype, decode kernel variants side by side (issue 13): decode
 * 32 x 4096 cached (+1 new), 32 q / 8 kv heads, d 128, page size 128. Per round and dtype the
 * case's cache is allocated alone (uploaded, run, dropped), then every variant of that dtype runs
 * (rounds alternate dtypes and variants, so drifting GPU state reaches every row alike); each
 * variant is checked against a float64 reference on sampled rows (from the decoded pages: it
 * measures the kernel, not the format) in the first round and timed by GPU timestamps of calls
 * each submitted alone (median). A read probe (every 16-byte word of the K and V pools, xor'ed)
 * gives this machine's streaming ceiling for the same buffers. Prints RESULT lines: ms, TB/s of
 * K/V (scales included), ratio to the float32 default; medians leave round 0 out (compiles, and on
 * the H200 the first ~30 s of a run read up to 5x slower) when there are 3 rounds or more.
 * Run: `node dist/bench/attention_webgpu_kv_decode.js --small` here (lavapipe), on the H200 through
 * bench/device/run_kv_decode.sh. `--rounds N`, `--only <dtype>`, `--quick` (default variants only),
 * `--variants <RegExp>` (variants whose names match), `--budget S` (no variant starts after S seconds).
 */
/// <reference types="@webgpu/types" />
import * as tf from '@tensorflow/tfjs';
import { KV_CACHE_DTYPES, type KVCacheDType } from '../core/kv_dtype.js';
import { FlashAttentionRaggedPaged } from '../kernels/kernel_names.js';
import { webgpuFlashTuning } from '../kernels/webgpu/flash_plan.js';
import { WebGpuKVMirror } from '../kernels/webgpu/kv_mirror.js';
import { registerAllKernels } from '../kernels/register_all.js';
import { initWebGpuNode, webGpuNodeStatus } from '../lib/backends/webgpu_node.js';
import { PagedKVCache } from '../lib/kv_cache/paged_kv_cache.js';
import { decodeVariants, fillPools, gpuMs, random, readProbeMs, refRowOfPages, type Variant, withVariant } from './kv_decode_harness.js';
import { median } from './webgpu_harness.js';

const arg = (name: string) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const small = process.argv.includes('--small');
const quick = process.argv.includes('--quick');
const rounds = Number(arg('--rounds') ?? 3);
const only = arg('--only');
const pick = arg('--variants'); // a RegExp on variant names
const budgetS = Number(arg('--budget') ?? Infinity); // no new variant starts after this many seconds
const NH = 32, NKV = 8, D = 128, PS = 128;
const [B, CTX] = small ? [4, 512] : [32, 4096];

/** One dtype's case: cache, q, the kernel call, a check and a timing of the current variant. */
function makeCase(dtype: KVCacheDType) {
  const pagesPer = Math.ceil((CTX + 1) / PS);
  const fmt = dtype === 'float8_e4m3' ? { kScale: 1 / 448, vScale: 1 / 448 } : {};
  const cache = new PagedKVCache({ nKvHeads: NKV, headDim: D, pageSize: PS, numPages: B * pagesPer, numLayers: 1, dtype, ...fmt });
  const ids = Array.from({ length: B }, (_, b) => cache.addSequence(b));
  cache.step(cache.fetch(ids, ids.map(() => CTX)));
  const c = cache.fetch(ids, ids.map(() => 1));
  fillPools(cache, D);
  const q = random(c.totalTokens * NH * D, 3); // [T, NH * D]
  const qt = tf.tensor2d(q, [c.totalTokens, NH * D]);
  const attrs = { nHeads: NH, nKvHeads: NKV, headDim: D, scale: 1 / Math.sqrt(D), mask: { variant: 'causal', window: 0, chunk: 0 }, collection: c, layerIdx: 0, variant: 'auto' };
  const run = () => tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const bytes = cache.memoryBytes * (B * (CTX + 1)) / (B * pagesPer * PS);
  // Reference rows: 8 (sequence, head) samples, from the decoded pages of those sequences only.
  const samples = Array.from({ length: 8 }, (_, n) => ({ b: (n * 5) % B, h: (n * 7 + 3) % NH }));
  let refs: Float64Array[] | null = null;
  const check = async (): Promise<number> => {
    if (refs === null) {
      refs = samples.map(({ b, h }) => {
        const pages = c.pageTable.subarray(b * c.maxPagesPerSeq, b * c.maxPagesPerSeq + pagesPer);
        const { k, v } = cache.decodePages(0, Int32Array.from(pages));
        return refRowOfPages(q, k, v, c.rowOffsets[b], CTX, h, { nH: NH, nKv: NKV, D, pageSize: PS });
      });
    }
    const out = run();
    const got = await out.data() as Float32Array;
    out.dispose();
    let err = 0;
    samples.forEach(({ b, h }, n) => {
      const r = c.rowOffsets[b];
      let e = 0, m = 1e-6;
      for (let d = 0; d < D; d++) { e = Math.max(e, Math.abs(got[(r * NH + h) * D + d] - refs![n][d])); m = Math.max(m, Math.abs(refs![n][d])); }
      err = Math.max(err, Number.isFinite(e) ? e / m : Infinity);
    });
    return err;
  };
  const mirror = () => WebGpuKVMirror.of(tf.backend() as never, cache);
  return {
    bytes, check, time: () => gpuMs(run, small ? 5 : 20),
    probe: async () => { const m = mirror(); return { ms: await readProbeMs([m.k[0], m.v[0]], small ? 5 : 20), bytes: m.k[0].size + m.v[0].size }; },
    dispose: () => { qt.dispose(); cache.attachDeviceMirror(null); },
  };
}

async function main(): Promise<void> {
  if (!(await initWebGpuNode(['disable-dawn-features=timestamp_quantization']))) throw new Error(`webgpu unavailable: ${webGpuNodeStatus().reason}`);
  registerAllKernels();
  await tf.setBackend('webgpu');
  const st = webGpuNodeStatus();
  console.log(`adapter: ${JSON.stringify(st.adapter)}; features: ${st.features.filter((f) => /f16|subgroup|timestamp/.test(f)).join(', ')}`);
  const order: KVCacheDType[] = ['float16', 'int8', 'float8_e4m3', 'bfloat16', 'float32'];
  const dtypes = order.filter((d) => KV_CACHE_DTYPES.includes(d)).filter((d) => only === undefined || d === only);
  const res = new Map<string, { ms: number[]; err?: number; bytes: number; failed?: string }>();
  const t0 = performance.now();
  const over = () => (performance.now() - t0) / 1000 > budgetS;
  for (let round = 0; round < rounds && !over(); round++) {
    for (const dtype of dtypes) {
      if (over()) break;
      const cs = makeCase(dtype);
      const all: Variant[] = [{ name: 'read probe' }, ...decodeVariants(dtype, quick)].filter((v) => pick === undefined || new RegExp(pick).test(v.name));
      for (const vr of all) {
        const key = `${dtype} [${vr.name}]`;
        const r = res.get(key) ?? { ms: [], bytes: cs.bytes };
        res.set(key, r);
        if (r.failed || over()) continue;
        try {
          if (vr.name === 'read probe') { const p = await cs.probe(); r.ms.push(p.ms); r.bytes = p.bytes; continue; }
          await withVariant(vr, async () => {
            if (round === 0) r.err = await cs.check();
            r.ms.push(await cs.time());
          });
        } catch (e) {
          r.failed = (e as Error).message.split('\n').slice(0, 6).join(' | ').slice(0, 600);
        }
      }
      cs.dispose();
      console.log(`round ${round} ${dtype} done at ${((performance.now() - t0) / 1000).toFixed(1)} s: ${all.map((v) => { const r = res.get(`${dtype} [${v.name}]`)!; return `${v.name} ${r.failed ? 'FAIL' : r.ms.at(-1)?.toFixed(3)}`; }).join(', ')}`);
    }
  }
  const base = median(res.get('float32 [auto]')?.ms ?? [NaN]);
  for (const [key, r] of res) {
    if (r.failed || r.ms.length === 0) { console.log(`RESULT decode ${key}: failed: ${r.failed}`); continue; }
    const ms = median(r.ms.length >= 3 ? r.ms.slice(1) : r.ms); // round 0 (compiles, clocks ramping up) not counted
    const errTxt = r.err === undefined ? '' : `, rel err ${r.err.toExponential(2)}${r.err < 1e-3 ? '' : ' FAIL'}`;
    console.log(`RESULT decode ${B}x${CTX} ${key}: ${ms.toFixed(4)} ms (rounds ${r.ms.map((x) => x.toFixed(3)).join(' / ')}), ${(r.bytes / ms / 1e9).toFixed(2)} TB/s of K/V, x${(base / ms).toFixed(2)} vs float32 auto${errTxt}`);
  }
  console.log(`tuning defaults: ${JSON.stringify(Object.fromEntries(Object.entries(webgpuFlashTuning).filter(([k]) => k.startsWith('decode'))))}`);
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
