/**
 * Pieces of bench/attention_webgpu_kv_decode.ts: cache filling, the float64 reference over one
 * sequence's decoded pages, GPU timestamps of isolated calls, the read probe, and the decode
 * variants (env switches and tuning knobs set while one runs).
 */
/// <reference types="@webgpu/types" />
import * as tf from '@tensorflow/tfjs';
import { type KVCacheDType, encodeKvRow } from '../core/kv_dtype.js';
import { webgpuFlashTuning } from '../kernels/webgpu/flash_plan.js';
import { setPassTimestamps } from '../kernels/webgpu/gpu_util.js';
import type { PagedKVCache } from '../lib/kv_cache/paged_kv_cache.js';
import { type BenchHeads, median, refAttention } from './webgpu_harness.js';

export function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; a[i] = (s / 4294967296) * 2 - 1; }
  return a;
}

/** Fills every row of layer 0's pools with rows encoded from 64 random rows (cheap for 10^8 elements). */
export function fillPools(cache: PagedKVCache, D: number): void {
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

/**
 * Float64 attention of the one new token (packed row `row`, position `ctx`) of a sequence over
 * keys 0..ctx, head h; k / v: that sequence's pages in order, `[pages, nKv, PS, D]` floats.
 */
export function refRowOfPages(q: Float32Array, k: Float32Array, v: Float32Array, row: number, ctx: number, h: number, s: BenchHeads): Float64Array {
  const { nH, nKv, D, pageSize: PS } = s;
  const kh = Math.floor(h / (nH / nKv));
  const addr = (j: number) => ((Math.floor(j / PS) * nKv + kh) * PS + (j % PS)) * D;
  return refAttention(q, (row * nH + h) * D, k, v, ctx, addr, D, 1 / Math.sqrt(D));
}

type Be = { device: GPUDevice; ensureCommandEncoderReady(): void; endComputePassEncoder(): void; submitQueue(): void };
/** Submits what tfjs has recorded so far (a valid command buffer even when nothing is pending). */
function flush(be: Be): void { be.ensureCommandEncoderReady(); be.endComputePassEncoder(); be.submitQueue(); }

/** Reads `n` timestamp pairs of `qs` back, ms each. */
async function resolveMs(dev: GPUDevice, qs: GPUQuerySet, n: number): Promise<number[]> {
  const res = dev.createBuffer({ size: 8 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const st = dev.createBuffer({ size: 8 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = dev.createCommandEncoder();
  enc.resolveQuerySet(qs, 0, n, res, 0);
  enc.copyBufferToBuffer(res, 0, st, 0, 8 * n);
  dev.queue.submit([enc.finish()]);
  await st.mapAsync(GPUMapMode.READ);
  const ts = new BigUint64Array(st.getMappedRange().slice(0));
  st.unmap();
  [qs, res, st].forEach((x) => x.destroy());
  const d: number[] = [];
  for (let i = 0; i < n; i += 2) d.push(Number(ts[i + 1] - ts[i]) / 1e6);
  return d;
}

/**
 * Median GPU time (the pass of both decode dispatches) of `reps` calls submitted back to back
 * (each its own submit, one wait at the end), after `reps` untimed ones: the GPU stays busy, so its
 * clocks stay up. (Calls each waited for alone let the driver lower the clocks between them: on the
 * H200 the same kernel then read anywhere from 0.19 to 1.0 ms within one run.)
 */
export async function gpuMs(f: () => tf.Tensor, reps: number): Promise<number> {
  const be = tf.backend() as unknown as Be;
  const dev = be.device;
  for (let i = 0; i < reps; i++) { f().dispose(); flush(be); }
  await dev.queue.onSubmittedWorkDone();
  if (!dev.features.has('timestamp-query')) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) { f().dispose(); flush(be); }
    await dev.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / reps;
  }
  const qs = dev.createQuerySet({ type: 'timestamp', count: 2 * reps });
  let qi = 0;
  setPassTimestamps(() => (qi + 2 <= 2 * reps ? { querySet: qs, beginningOfPassWriteIndex: qi++, endOfPassWriteIndex: qi++ } : undefined));
  try {
    for (let i = 0; i < reps; i++) { f().dispose(); flush(be); }
    await dev.queue.onSubmittedWorkDone();
  } finally {
    setPassTimestamps(null);
  }
  return median(await resolveMs(dev, qs, 2 * reps));
}

const PROBE_WG = 256, PROBE_GROUPS = 8192;
const probeWgsl = `@group(0) @binding(0) var<storage, read> a: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> o: array<u32>;
@compute @workgroup_size(${PROBE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = arrayLength(&a);
  let stride = ${PROBE_WG * PROBE_GROUPS}u;
  var x = vec4<u32>(0u);
  var i = gid.x;
  for (; i + 3u * stride < n; i += 4u * stride) {
    let w0 = a[i]; let w1 = a[i + stride]; let w2 = a[i + 2u * stride]; let w3 = a[i + 3u * stride];
    x ^= (w0 ^ w1) ^ (w2 ^ w3);
  }
  for (; i < n; i += stride) { x ^= a[i]; }
  if (all(x == vec4<u32>(0x12345678u))) { o[gid.x] = 1u; }
}`;
const probePipelines = new WeakMap<GPUDevice, GPUComputePipeline>();

/** Median GPU time of one pass reading every 16-byte word of `bufs` once (xor'ed, result kept). */
export async function readProbeMs(bufs: GPUBuffer[], reps: number): Promise<number> {
  const dev = (tf.backend() as unknown as Be).device;
  let pipe = probePipelines.get(dev);
  if (!pipe) probePipelines.set(dev, (pipe = dev.createComputePipeline({ layout: 'auto', compute: { module: dev.createShaderModule({ code: probeWgsl }), entryPoint: 'main' } })));
  const out = dev.createBuffer({ size: 4 * PROBE_WG * PROBE_GROUPS, usage: GPUBufferUsage.STORAGE });
  const groups = bufs.map((buf) => dev.createBindGroup({ layout: pipe!.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }, { binding: 1, resource: { buffer: out } }] }));
  const hasTs = dev.features.has('timestamp-query');
  const qs = hasTs ? dev.createQuerySet({ type: 'timestamp', count: 2 * reps }) : null;
  // Back to back as gpuMs: `reps` untimed passes, then `reps` timed ones, one wait each.
  let t0 = 0;
  for (let round = 0; round < 2; round++) {
    t0 = performance.now();
    for (let i = 0; i < reps; i++) {
      const enc = dev.createCommandEncoder();
      const timed = qs && round === 1;
      const pass = enc.beginComputePass(timed ? { timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } } : {});
      pass.setPipeline(pipe);
      for (const g of groups) { pass.setBindGroup(0, g); pass.dispatchWorkgroups(PROBE_GROUPS); }
      pass.end();
      dev.queue.submit([enc.finish()]);
    }
    await dev.queue.onSubmittedWorkDone();
  }
  const ms = qs ? median(await resolveMs(dev, qs, 2 * reps)) : (performance.now() - t0) / reps;
  out.destroy();
  return ms;
}

/** A variant: env switches and tuning knobs set while it runs, restored after. */
export interface Variant { name: string; env?: Record<string, string>; tune?: Partial<typeof webgpuFlashTuning> }

/** Knobs of the streaming kernel (flash_plan.ts decodeStream*). */
interface StreamKnobs { nw?: number; cw?: number; u?: number; pf?: boolean; widen?: 'auto' | 'cvt' | 'bits'; target?: number; minKeys?: number; vec?: 2 | 4; rs?: boolean; qs?: boolean }

/** The streaming kernel forced, with these knobs (defaults: nw 2, cw 1 (float32 2), u 4, prefetch, target 2048). */
function stream(k: StreamKnobs): Variant {
  const { nw = 2, cw, u = 4, pf = true, widen = 'auto', target = 2048, minKeys = 256, vec = 4, rs = false, qs = false } = k;
  const name = `stream nw${nw}${cw ? ` cw${cw}` : ''} u${u}${vec === 2 ? ' v2' : ''}${rs ? ' rs' : ''}${qs ? ' qs' : ''}${pf ? ' pf' : ''}${widen !== 'auto' ? ` ${widen}` : ''} t${target}`;
  const tune: Partial<typeof webgpuFlashTuning> = {
    decodeStreamWarps: nw, decodeStreamKeys: u, decodeStreamPrefetch: pf, decodeStreamWiden: widen, decodeStreamTarget: target, decodeStreamTargetByteCodes: target,
    decodeStreamMinSplitKeys: minKeys, decodeStreamVec: vec, decodeStreamReduce: rs ? 'scatter' : 'xor', decodeStreamQShared: qs,
  };
  if (cw) Object.assign(tune, { decodeStreamWords: cw, decodeStreamFloat32Words: cw });
  return { name, env: { WEBGPU_DECODE: 'stream' }, tune };
}

/**
 * Decode variants of a dtype: the default ('auto'), then (unless quick) the kernels and knobs to
 * compare. Lost on the H200 (2026-12-03, bench/device/NOTES.md): 2 words a lane for 2-byte and
 * 1-byte codes, 8-byte words, q in workgroup memory, 8 keys a lane for 1-byte codes, no prefetch.
 */
export function decodeVariants(dtype: KVCacheDType, quick: boolean): Variant[] {
  const v: Variant[] = [{ name: 'auto' }];
  if (quick) return v;
  if (dtype === 'float32') {
    return [...v, { name: 'subgroup kernel', env: { WEBGPU_DECODE: 'subgroup' } }, stream({ rs: true }), stream({ target: 1024 }), stream({ nw: 1 }), stream({ target: 4096, minKeys: 128 })];
  }
  v.push({ name: 'packed nw2 words4', env: { WEBGPU_DECODE: 'packed' }, tune: { decodePackedWarps: 2, decodePackedWords: 4 } });
  if (dtype === 'float16' || dtype === 'bfloat16') {
    return [...v, stream({ rs: true }), stream({ u: 8, rs: true }), stream({ u: 8 }), stream({ nw: 1 }), stream({ target: 1024 }), stream({ nw: 1, target: 1024 }),
      stream({ target: 3072, minKeys: 128 }), stream({ nw: 1, target: 4096, minKeys: 128 })];
  }
  v.push(stream({}), stream({ target: 1024 }), stream({ nw: 1 }), stream({ nw: 1, target: 1024 }), stream({ nw: 1, target: 512 }), stream({ target: 512 }),
    stream({ rs: true, target: 1024 }), stream({ nw: 1, rs: true, target: 1024 }), stream({ nw: 4, target: 1024 }), stream({ u: 2, target: 1024 }));
  v.push(stream({ target: 1024, widen: dtype === 'int8' ? 'bits' : 'cvt' }));
  return v;
}

export async function withVariant<T>(vr: Variant, f: () => Promise<T>): Promise<T> {
  const savedEnv: Record<string, string | undefined> = {};
  const t = webgpuFlashTuning as unknown as Record<string, unknown>;
  const savedTune: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(vr.env ?? {})) { savedEnv[k] = process.env[`TFJS_ATTENTION_${k}`]; process.env[`TFJS_ATTENTION_${k}`] = v; }
  for (const [k, v] of Object.entries(vr.tune ?? {})) { savedTune[k] = t[k]; t[k] = v; }
  const dev = (tf.backend() as unknown as { device: GPUDevice }).device;
  dev.pushErrorScope('validation');
  try {
    const r = await f();
    const e = await dev.popErrorScope();
    if (e) throw new Error(`GPU validation error: ${e.message}`);
    return r;
  } catch (err) {
    const e = await dev.popErrorScope().catch(() => null);
    throw e ? new Error(`${(err as Error).message}; GPU: ${e.message}`) : err;
  } finally {
    for (const [k, v] of Object.entries(savedEnv)) { if (v === undefined) delete process.env[`TFJS_ATTENTION_${k}`]; else process.env[`TFJS_ATTENTION_${k}`] = v; }
    Object.assign(t, savedTune);
  }
}
