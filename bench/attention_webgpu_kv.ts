/**
 * WebGPU attention over compact KV caches (kvParams.dtype), every dtype in one process: decode
 * 32 x 4096 cached (+1) and prefill 1 x 4096 causal, 32 q / 8 kv heads, d 128, page size 128;
 * each checked against a float64 reference on sampled rows (computed from the decoded pages, so
 * it measures the kernel, not the format), then timed by GPU timestamps of the kernel passes, each
 * call alone (median; batch wall time when the adapter has no timestamps), with ratios to float32;
 * also printed: timestamps of back-to-back calls, and wall time per call of 30 back-to-back calls.
 * Variants in the same process (each under a GPU error scope: a WGSL compile error is printed and
 * the sweep goes on): every decode kernel (TFJS_ATTENTION_WEBGPU_DECODE) and the packed kernel's
 * knobs, every prefill kernel (TFJS_ATTENTION_WEBGPU_PREFILL: the f32 tiles, subgroup matrices).
 * `--small` shrinks the shapes for lavapipe; `--quick` runs the default variants only.
 * Run: `node dist/bench/attention_webgpu_kv.js --small` here, bench/device/run_kv.sh on the H200.
 */
/// <reference types="@webgpu/types" />
import * as tf from '@tensorflow/tfjs';
import { KV_CACHE_DTYPES, type KVCacheDType, encodeKvRow } from '../core/kv_dtype.js';
import { FlashAttentionRaggedPaged } from '../kernels/kernel_names.js';
import { setPassTimestamps } from '../kernels/webgpu/gpu_util.js';
import { gpuErrorText } from './gpu_error_text.js';
import { registerAllKernels } from '../kernels/register_all.js';
import { initWebGpuNode, webGpuNodeStatus } from '../lib/backends/webgpu_node.js';
import { PagedKVCache } from '../lib/kv_cache/paged_kv_cache.js';
import { type Variant, withVariant } from './kv_decode_harness.js';
import { median, refRow } from './webgpu_harness.js';

const small = process.argv.includes('--small');
const quick = process.argv.includes('--quick');
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

type Be = { device: GPUDevice; ensureCommandEncoderReady(): void; endComputePassEncoder(): void; submitQueue(): void };
/** Submits what tfjs has recorded so far (a valid command buffer even when nothing is pending). */
function flush(be: Be): void { be.ensureCommandEncoderReady(); be.endComputePassEncoder(); be.submitQueue(); }

/** Wall time per call of `reps` back-to-back calls (submitted, then waited for once). */
async function wallMs(f: () => tf.Tensor, reps: number): Promise<number> {
  const be = tf.backend() as unknown as Be;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) f().dispose();
  flush(be);
  await be.device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / reps;
}

/** Median GPU time of the kernel passes; `isolated`: each call submitted and waited for alone (no overlap). */
async function gpuMs(f: () => tf.Tensor, reps: number, isolated = false): Promise<number> {
  const be = tf.backend() as unknown as Be;
  const dev = be.device;
  for (let i = 0; i < 2; i++) { const t = f(); await dev.queue.onSubmittedWorkDone(); t.dispose(); }
  if (!dev.features.has('timestamp-query')) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) f().dispose();
    await dev.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / reps;
  }
  const n = 2 * reps;
  const qs = dev.createQuerySet({ type: 'timestamp', count: n });
  let qi = 0;
  setPassTimestamps(() => (qi + 2 <= n ? { querySet: qs, beginningOfPassWriteIndex: qi++, endOfPassWriteIndex: qi++ } : undefined));
  for (let i = 0; i < reps; i++) {
    f().dispose();
    if (isolated) { flush(be); await dev.queue.onSubmittedWorkDone(); }
  }
  setPassTimestamps(null);
  const res = dev.createBuffer({ size: 8 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const st = dev.createBuffer({ size: 8 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = dev.createCommandEncoder();
  enc.resolveQuerySet(qs, 0, n, res, 0);
  enc.copyBufferToBuffer(res, 0, st, 0, 8 * n);
  dev.queue.submit([enc.finish()]);
  await st.mapAsync(GPUMapMode.READ);
  const ts = new BigUint64Array(st.getMappedRange().slice(0));
  st.unmap();
  const d: number[] = [];
  for (let i = 0; i < n; i += 2) d.push(Number(ts[i + 1] - ts[i]) / 1e6);
  [qs, res, st].forEach((x) => x.destroy());
  return median(d);
}

interface Measured { ms: number; b2b: number; wall: number; err: number; bytes: number; flops: number }

/** Builds the cache and q of one shape once; the returned function checks and times the kernel as configured now. */
function setup(kind: 'decode' | 'prefill', dtype: KVCacheDType): { measure: () => Promise<Measured>; dispose: () => void } {
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
  const keys = kind === 'decode' ? B * (ctx + 1) : (nNew * (nNew + 1)) / 2;
  const bytes = cache.memoryBytes * (B * (ctx + nNew)) / (B * pagesPer * PS), flops = 4 * NH * D * keys;
  const measure = async (): Promise<Measured> => {
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
    const ms = await gpuMs(run, small ? 5 : 30, true);
    const b2b = await gpuMs(run, small ? 5 : 30);
    return { ms, b2b, wall: await wallMs(run, small ? 5 : 30), err, bytes, flops };
  };
  return { measure, dispose: () => { qt.dispose(); cache.attachDeviceMirror(null); } };
}

/** A variant: env switches and tuning knobs set while it runs, restored after. */

const decodeVariants = (dtype: KVCacheDType): Variant[] => {
  const v: Variant[] = [{ name: 'auto' }];
  if (quick) return v;
  if (dtype === 'float32') return [...v, { name: 'target 4096', tune: { decodeTargetWorkgroups: 4096 } }];
  v.push({ name: 'subgroup kernel', env: { WEBGPU_DECODE: 'subgroup' } });
  for (const [nw, words] of [[2, 4], [4, 4], [2, 2], [1, 4]]) {
    v.push({ name: `packed nw${nw} words${words}`, env: { WEBGPU_DECODE: 'packed' }, tune: { decodePackedWarps: nw, decodePackedWords: words } });
  }
  v.push({ name: 'packed nw2 words4 target 1024', env: { WEBGPU_DECODE: 'packed' }, tune: { decodePackedWarps: 2, decodePackedWords: 4, decodeTargetWorkgroups: 1024 } });
  return v;
};
const prefillVariants = (dtype: KVCacheDType): Variant[] => {
  const v: Variant[] = [{ name: 'auto' }];
  if (quick) return v;
  v.push({ name: 'tile', env: { WEBGPU_PREFILL: 'tile' } });
  for (const sgid of ['builtin', 'broadcast'] as const) {
    for (const bn of [32, 64]) v.push({ name: `sgmat bn${bn} ${sgid}`, env: { WEBGPU_PREFILL: 'sgmat' }, tune: { prefillSgmat: true, prefillSgmatKeys: bn, prefillSgmatSubgroupId: sgid } });
  }
  return dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16' ? v : v.slice(0, 2);
};


async function main(): Promise<void> {
  if (!(await initWebGpuNode(['disable-dawn-features=timestamp_quantization']))) throw new Error(`webgpu unavailable: ${webGpuNodeStatus().reason}`);
  registerAllKernels();
  await tf.setBackend('webgpu');
  const st = webGpuNodeStatus();
  console.log(`adapter: ${JSON.stringify(st.adapter)}; features: ${st.features.filter((f) => /f16|subgroup/.test(f)).join(', ')}`);
  // Every shape of a kind lives at once and the variants alternate over ROUNDS rounds (medians), so
  // drifting GPU state (clocks, what else is allocated) reaches every row alike.
  const rounds = quick ? 1 : 3;
  for (const kind of ['decode', 'prefill'] as const) {
    const shapes = KV_CACHE_DTYPES.map((dtype) => ({ dtype, s: setup(kind, dtype), vs: kind === 'decode' ? decodeVariants(dtype) : prefillVariants(dtype) }));
    const res = new Map<string, { ms: number[]; b2b: number[]; wall: number[]; last?: Measured; failed?: string }>();
    for (let round = 0; round < rounds; round++) {
      for (const { dtype, s: shape, vs } of shapes) {
        for (const vr of vs) {
          const key = `${dtype} [${vr.name}]`;
          const r = res.get(key) ?? { ms: [], b2b: [], wall: [] };
          res.set(key, r);
          if (r.failed) continue;
          try {
            r.last = await withVariant(vr, shape.measure);
            r.ms.push(r.last.ms);
            r.wall.push(r.last.wall);
            r.b2b.push(r.last.b2b);
          } catch (e) {
            r.failed = gpuErrorText((e as Error).message);
          }
        }
      }
    }
    const base = median(res.get('float32 [auto]')?.ms ?? [NaN]);
    for (const [key, r] of res) {
      if (r.failed || !r.last) { console.log(`${kind} ${key}: failed: ${r.failed}`); continue; }
      const ms = median(r.ms);
      const rate = kind === 'decode' ? `${(r.last.bytes / ms / 1e9).toFixed(2)} TB/s of K/V` : `${(r.last.flops / ms / 1e9).toFixed(1)} TFLOP/s`;
      console.log(`${kind} ${key}: ${ms.toFixed(3)} ms (rounds ${r.ms.map((x) => x.toFixed(3)).join(' / ')}), ${rate}, x${(base / ms).toFixed(2)} vs float32 auto; GPU back-to-back ${median(r.b2b).toFixed(3)} ms, wall per call of 30 back-to-back ${median(r.wall).toFixed(3)} ms, rel err ${r.last.err.toExponential(2)}`);
    }
    shapes.forEach(({ s: shape }) => shape.dispose());
  }
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
