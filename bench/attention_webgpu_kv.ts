/**
 * WebGPU attention over compact KV caches (kvParams.dtype), every dtype in one process: decode
 * 32 x 4096 cached (+1) and prefill 1 x 4096 causal, 32 q / 8 kv heads, d 128, page size 128;
 * each checked against a float64 reference on sampled rows (computed from the decoded pages, so
 * it measures the kernel, not the format), then timed by GPU timestamps of the kernel passes
 * (median; batch wall time when the adapter has no timestamps), with ratios to float32.
 * `--small` shrinks the shapes for lavapipe. Run: bench/device/run_kv.sh on the H200.
 */
/// <reference types="@webgpu/types" />
import * as tf from '@tensorflow/tfjs';
import { KV_CACHE_DTYPES, type KVCacheDType, encodeKvRow } from '../core/kv_dtype.js';
import { FlashAttentionRaggedPaged } from '../kernels/kernel_names.js';
import { registerAllKernels } from '../kernels/register_all.js';
import { initWebGpuNode, webGpuNodeStatus } from '../lib/backends/webgpu_node.js';
import { PagedKVCache } from '../lib/kv_cache/paged_kv_cache.js';
import { batchMs, median, passTimesMs, refRow, warmUp } from './webgpu_harness.js';

const small = process.argv.includes('--small');
const NH = 32, NKV = 8, D = 128, PS = 128;
const HEADS = { nH: NH, nKv: NKV, D, pageSize: PS };

function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; a[i] = (s / 4294967296) * 2 - 1; }
  return a;
}

/** Fills every row of a layer's pools with rows encoded from 64 random rows (cheap for 10^8 elements). */
function fillPools(cache: PagedKVCache): void {
  const { dtype, kScale, vScale, numPages, nKvHeads, pageSize } = cache.params;
  const rows = numPages * nKvHeads * pageSize, src = random(64 * D, 5);
  const p = cache.pools(0);
  const kc = p.k.constructor as new (n: number) => typeof p.k;
  const protoK = new kc(64 * D), protoV = new kc(64 * D), sK = new Float32Array(64), sV = new Float32Array(64);
  for (let r = 0; r < 64; r++) {
    encodeKvRow(dtype, src, r * D, D, protoK, r * D, sK, r, kScale);
    encodeKvRow(dtype, src, ((r + 17) % 64) * D, D, protoV, r * D, sV, r, vScale);
  }
  for (let r = 0; r < rows; r++) {
    const j = (r * 2654435761 >>> 7) % 64;
    p.k.set(protoK.subarray(j * D, (j + 1) * D) as never, r * D);
    p.v.set(protoV.subarray(j * D, (j + 1) * D) as never, r * D);
    if (p.kRowScales) { p.kRowScales[r] = sK[j]; p.vRowScales![r] = sV[j]; }
  }
}

/** Median GPU time of one call (batch wall time when the adapter has no timestamps), ms. */
async function gpuMs(f: () => tf.Tensor, reps: number): Promise<number> {
  await warmUp(f);
  const d = await passTimesMs(f, reps);
  return d ? median(d) : batchMs(f, reps);
}

async function one(kind: 'decode' | 'prefill', dtype: KVCacheDType): Promise<{ ms: number; err: number; bytes: number }> {
  const [B, ctx, nNew] = kind === 'decode' ? [small ? 4 : 32, small ? 512 : 4096, 1] : [1, 0, small ? 512 : 4096];
  const pagesPer = Math.ceil((ctx + nNew) / PS);
  const fmt = dtype === 'float8_e4m3' ? { kScale: 1 / 448, vScale: 1 / 448 } : {};
  const cache = new PagedKVCache({ nKvHeads: NKV, headDim: D, pageSize: PS, numPages: B * pagesPer, numLayers: 1, dtype, ...fmt });
  const ids = Array.from({ length: B }, (_, b) => cache.addSequence(b));
  if (ctx > 0) cache.step(cache.fetch(ids, ids.map(() => ctx)));
  const c = cache.fetch(ids, ids.map(() => nNew));
  fillPools(cache);
  const { k, v } = cache.decodePages(0, Int32Array.from({ length: cache.params.numPages }, (_, i) => i));
  const q = random(c.totalTokens * NH * D, 3);
  const qt = tf.tensor2d(q, [c.totalTokens, NH * D]);
  const attrs = { nHeads: NH, nKvHeads: NKV, headDim: D, scale: 1 / Math.sqrt(D), mask: { variant: 'causal', window: 0, chunk: 0 }, collection: c, layerIdx: 0, variant: 'auto' };
  const run = () => tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const out = run();
  const got = await out.data() as Float32Array;
  out.dispose();
  let err = 0;
  for (let n = 0; n < 8; n++) {
    const b = n % B, r = c.rowOffsets[b] + ((n * 2654435761) >>> 0) % nNew, h = (n * 7) % NH;
    const ref = refRow(q, k, v, c, b, r, h, 1 / Math.sqrt(D), HEADS);
    let e = 0, m = 1e-6;
    for (let d = 0; d < D; d++) { e = Math.max(e, Math.abs(got[(r * NH + h) * D + d] - ref[d])); m = Math.max(m, Math.abs(ref[d])); }
    err = Math.max(err, e / m);
  }
  const ms = await gpuMs(run, small ? 5 : 30);
  qt.dispose();
  cache.attachDeviceMirror(null);
  return { ms, err, bytes: cache.memoryBytes * (B * (ctx + nNew)) / (B * pagesPer * PS) };
}

async function main(): Promise<void> {
  if (!(await initWebGpuNode(['disable-dawn-features=timestamp_quantization']))) throw new Error(`webgpu unavailable: ${webGpuNodeStatus().reason}`);
  registerAllKernels();
  await tf.setBackend('webgpu');
  const st = webGpuNodeStatus();
  console.log(`adapter: ${JSON.stringify(st.adapter)}; features: ${st.features.filter((f) => /f16|subgroup/.test(f)).join(', ')}`);
  for (const kind of ['decode', 'prefill'] as const) {
    let base = NaN;
    for (const dtype of KV_CACHE_DTYPES) {
      try {
        const r = await one(kind, dtype);
        if (dtype === 'float32') base = r.ms;
        console.log(`${kind} ${dtype}: ${r.ms.toFixed(3)} ms, ${(r.bytes / r.ms / 1e9).toFixed(2)} TB/s of K/V, x${(base / r.ms).toFixed(2)} vs float32, rel err ${r.err.toExponential(2)}`);
      } catch (e) {
        console.log(`${kind} ${dtype}: failed: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  }
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
