/**
 * The WebGPU attention benches' one harness (bench/attention_webgpu.ts, bench/attention_webgpu_kv.ts):
 * warm-up, then GPU timestamps of every kernel pass (when the adapter offers timestamp-query),
 * submit -> onSubmittedWorkDone wall times, the batch time of many calls with one wait, and the
 * float64 reference row each config is checked against before it is timed.
 */
/// <reference types="@webgpu/types" />
import * as tf from '@tensorflow/tfjs';
import { setPassTimestamps } from '../kernels/webgpu/gpu_util.js';
import type { PagedKVCollection } from '../lib/kv_cache/collection.js';

export const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** The webgpu backend's device. */
export function gpuDevice(): GPUDevice {
  return (tf.backend() as unknown as { device: GPUDevice }).device;
}

/** Two untimed calls, each waited for. */
export async function warmUp(f: () => tf.Tensor): Promise<void> {
  const dev = gpuDevice();
  for (let i = 0; i < 2; i++) { const t = f(); await dev.queue.onSubmittedWorkDone(); t.dispose(); }
}

/** (reps calls, one wait) / reps, ms. */
export async function batchMs(f: () => tf.Tensor, reps: number): Promise<number> {
  const dev = gpuDevice();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) f().dispose();
  await dev.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / reps;
}

/**
 * GPU time of each of `reps` calls of `f` (ms, the sum of its `passes` kernel passes' timestamps),
 * or null when the adapter has no timestamp-query.
 */
export async function passTimesMs(f: () => tf.Tensor, reps: number, passes = 1): Promise<number[] | null> {
  const dev = gpuDevice();
  if (!dev.features.has('timestamp-query')) return null;
  const n = 2 * reps * passes;
  const qs = dev.createQuerySet({ type: 'timestamp', count: n });
  let qi = 0;
  setPassTimestamps(() => (qi + 2 <= n ? { querySet: qs, beginningOfPassWriteIndex: qi++, endOfPassWriteIndex: qi++ } : undefined));
  for (let i = 0; i < reps; i++) f().dispose();
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
  for (let i = 0; i < n; i += 2 * passes) {
    let sum = 0;
    for (let p = 0; p < passes; p++) sum += Number(ts[i + 2 * p + 1] - ts[i + 2 * p]) / 1e6;
    d.push(sum);
  }
  [qs, res, st].forEach((x) => x.destroy());
  return d;
}

/** Head layout of the benches' paged cache. */
export interface BenchHeads { nH: number; nKv: number; D: number; pageSize: number }

/**
 * Float64 attention of the query at `q[qAt .. qAt + D)` over keys 0..last, key j's row at
 * `addr(j)` in the pools `k` / `v` (float32 values): softmax(q·kᵀ · scale) · v.
 */
export function refAttention(q: Float32Array, qAt: number, k: Float32Array, v: Float32Array, last: number,
  addr: (j: number) => number, D: number, scale: number): Float64Array {
  const sc = new Float64Array(last + 1);
  let mx = -Infinity;
  for (let j = 0; j <= last; j++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qAt + d] * k[addr(j) + d];
    sc[j] = dot * scale;
    mx = Math.max(mx, sc[j]);
  }
  let sum = 0;
  for (let j = 0; j <= last; j++) { sc[j] = Math.exp(sc[j] - mx); sum += sc[j]; }
  const out = new Float64Array(D);
  for (let j = 0; j <= last; j++) for (let d = 0; d < D; d++) out[d] += (sc[j] / sum) * v[addr(j) + d];
  return out;
}

/**
 * Float64 causal attention of one query row (packed row r, head h) of sequence b over its cached
 * keys: pools `[page, nKv, pageSize, D]` as float32 values, q `[T, nH * D]`.
 */
export function refRow(q: Float32Array, k: Float32Array, v: Float32Array, c: PagedKVCollection, b: number, r: number, h: number,
  scale: number, s: BenchHeads): Float64Array {
  const { nH, nKv, D, pageSize: PS } = s;
  const i = c.startPositions[b] + r - c.rowOffsets[b], kh = Math.floor(h / (nH / nKv));
  const addr = (j: number) => ((c.pageTable[b * c.maxPagesPerSeq + Math.floor(j / PS)] * nKv + kh) * PS + (j % PS)) * D;
  return refAttention(q, (r * nH + h) * D, k, v, i, addr, D, scale);
}
