/**
 * The f32 prefill products on the model's own shapes (layer 0 of a loaded checkpoint, 2048 tokens):
 * every f32 tile variant checked against the session-5 tile (bench/device/matmul_nt_v1_wgsl.ts) on
 * odd shapes (bias, residual, K % 4 != 0, SwiGLU with I % 64 != 0) and on the model's products, then
 * each product timed per variant by GPU timestamps (one pass a call), variants in alternation,
 * medians. Returns the fastest exact tile for `dense` and for `swiglu` products.
 */
import * as tf from '@tensorflow/tfjs';
import { runDispatches, pipelineFor, setPassTimestamps, type WebGpuBackendLike, type Dispatch, constWords, tensorBuffer } from '../../kernels/webgpu/gpu_util.js';
import { type F32Tile, matmulNtWgsl, tileSharedBytes } from '../../kernels/webgpu/matmul_nt_wgsl.js';
import { matmulNtWgslV1 } from './matmul_nt_v1_wgsl.js';
import { packGateUp } from '../../models/fused_weights.js';

export const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

export interface TileVariant { name: string; tile: F32Tile | 'v1' }

const T = (bm: number, bn: number, tm: number, tn: number, bk: number, double: boolean, pad: number): TileVariant =>
  ({ name: `${bm}x${bn} ${tm}x${tn} bk${bk} ${double ? 'db' : 'sb'} p${pad}`, tile: { bm, bn, tm, tn, bk, double, pad } });

/** The variants tried (env TILES=comma-separated names narrows them). */
export function tileVariants(): TileVariant[] {
  const all = [
    { name: 'v1', tile: 'v1' as const },
    T(128, 128, 8, 8, 8, false, 0), T(128, 128, 8, 8, 8, true, 0), T(128, 128, 8, 8, 16, true, 1), T(128, 128, 8, 8, 16, true, 0),
    T(128, 128, 8, 8, 32, false, 1), T(64, 128, 8, 8, 16, true, 1), T(64, 128, 8, 8, 8, true, 0), T(128, 64, 8, 8, 16, true, 1),
    T(128, 64, 8, 8, 32, false, 1), T(64, 64, 8, 8, 16, true, 1), T(128, 64, 8, 4, 16, true, 1), T(64, 128, 4, 8, 16, true, 1),
  ];
  const only = process.env.TILES?.split(',');
  return only ? all.filter((v) => only.includes(v.name)) : all;
}

interface Product { name: string; mode: 'dense' | 'swiglu'; M: number; K: number; rows: number; outCols: number; x: tf.Tensor; w: tf.Tensor; bias?: tf.Tensor; residual?: tf.Tensor }

function dispatchOf(be: WebGpuBackendLike, v: TileVariant, p: Product, y: GPUBuffer): Dispatch | null {
  const vec4 = p.K % 4 === 0;
  const flags = { bias: p.bias !== undefined, residual: p.residual !== undefined };
  let code: string, bm: number, bn: number;
  if (v.tile === 'v1') { code = matmulNtWgslV1({ mode: p.mode, ...flags, vec4, bk: 8 }) + '\n// sweep copy'; bm = bn = 128; } else {
    if (p.mode === 'swiglu' && (v.tile.bn !== 128 || v.tile.tn !== 8)) return null;
    if (tileSharedBytes(v.tile) > be.device.limits.maxComputeWorkgroupStorageSize) return null;
    code = matmulNtWgsl({ mode: p.mode, ...flags, vec4, tile: v.tile }) + '\n// sweep copy (own pipeline label)'; bm = v.tile.bm; bn = v.tile.bn;
  }
  const dims = constWords(be.device, [p.M, p.rows, p.K, p.outCols]);
  const buffers = [tensorBuffer(be, p.x), tensorBuffer(be, p.w), y, dims, ...(p.bias ? [tensorBuffer(be, p.bias)] : []), ...(p.residual ? [tensorBuffer(be, p.residual)] : [])];
  return { pipeline: pipelineFor(be.device, code, `sweep ${v.name} ${p.mode}`), buffers, grid: [Math.ceil(p.rows / bn), Math.ceil(p.M / bm), 1] };
}

async function readBuffer(dev: GPUDevice, src: GPUBuffer, bytes: number): Promise<Float32Array> {
  const st = dev.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = dev.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, st, 0, bytes);
  dev.queue.submit([enc.finish()]);
  await st.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(st.getMappedRange().slice(0));
  st.unmap(); st.destroy();
  return out;
}

/** GPU ms of each of `reps` runs of d (own pass, timestamps). */
async function gpuTimes(be: WebGpuBackendLike, d: Dispatch, reps: number): Promise<number[]> {
  const dev = be.device;
  const n = 2 * reps;
  const qs = dev.createQuerySet({ type: 'timestamp', count: n });
  let qi = 0;
  setPassTimestamps(() => (qi + 2 <= n ? { querySet: qs, beginningOfPassWriteIndex: qi++, endOfPassWriteIndex: qi++ } : undefined));
  try { for (let i = 0; i < reps; i++) runDispatches(be, [d]); } finally { setPassTimestamps(null); }
  const res = dev.createBuffer({ size: 8 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const st = dev.createBuffer({ size: 8 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = dev.createCommandEncoder();
  enc.resolveQuerySet(qs, 0, n, res, 0);
  enc.copyBufferToBuffer(res, 0, st, 0, 8 * n);
  dev.queue.submit([enc.finish()]);
  await st.mapAsync(GPUMapMode.READ);
  const ts = new BigUint64Array(st.getMappedRange().slice(0));
  st.unmap();
  [qs, res, st].forEach((b) => b.destroy());
  return [...Array(reps).keys()].map((i) => Number(ts[2 * i + 1] - ts[2 * i]) / 1e6);
}

function maxRel(a: Float32Array, ref: Float32Array): number {
  let d = 0, m = 1e-30;
  for (let i = 0; i < ref.length; i++) { const e = Math.abs(a[i] - ref[i]); d = e > d || Number.isNaN(e) ? (Number.isNaN(e) ? Infinity : e) : d; m = Math.max(m, Math.abs(ref[i])); }
  return d / m;
}

/** Odd products (every epilogue, K % 4 != 0, partial tiles) plus the model's four. */
function products(layer: { qkv: tf.Tensor2D; o: tf.Tensor2D; gateUp: tf.Tensor2D; down: tf.Tensor2D }, T: number): { odd: Product[]; model: Product[] } {
  const r = (s: number[], k = 1) => tf.mul(tf.randomNormal(s), k);
  const H = layer.qkv.shape[1]!, I = layer.down.shape[1]!;
  const x = r([T, H]), a = r([T, layer.o.shape[1]!]), act = r([T, I]);
  const xo = r([77, 132]), xs = r([45, 131]);
  const gu = packGateUp(r([100, 132], 0.05), r([100, 132], 0.05));
  const odd: Product[] = [
    { name: 'odd dense+b+r', mode: 'dense', M: 77, K: 132, rows: 200, outCols: 200, x: xo, w: r([200, 132], 0.05), bias: r([200]), residual: r([77, 200]) },
    { name: 'odd dense K%4', mode: 'dense', M: 45, K: 131, rows: 70, outCols: 70, x: xs, w: r([70, 131], 0.05) },
    { name: 'odd swiglu+b', mode: 'swiglu', M: 77, K: 132, rows: gu.shape[0], outCols: 100, x: xo, w: gu, bias: packGateUp(r([100]), r([100])) },
    { name: 'odd swiglu K%4', mode: 'swiglu', M: 45, K: 131, rows: 256, outCols: 100, x: xs, w: packGateUp(r([100, 131], 0.05), r([100, 131], 0.05)) },
  ];
  const model: Product[] = [
    { name: 'qkv', mode: 'dense', M: T, K: H, rows: layer.qkv.shape[0], outCols: layer.qkv.shape[0], x, w: layer.qkv },
    { name: 'o+res', mode: 'dense', M: T, K: a.shape[1]!, rows: H, outCols: H, x: a, w: layer.o, residual: x },
    { name: 'gateUp swiglu', mode: 'swiglu', M: T, K: H, rows: layer.gateUp.shape[0], outCols: I, x, w: layer.gateUp },
    { name: 'down+res', mode: 'dense', M: T, K: I, rows: H, outCols: H, x: act, w: layer.down, residual: x },
  ];
  return { odd, model };
}

/**
 * Checks and times every variant; returns the fastest exact `dense` and `swiglu` tiles (v1 never
 * returned: it is the baseline) and the per-product medians.
 */
export async function sweepTiles(layer: { qkv: tf.Tensor2D; o: tf.Tensor2D; gateUp: tf.Tensor2D; down: tf.Tensor2D }, log: (s: string) => void,
  T = 2048, rounds = 3, reps = 5): Promise<{ dense: F32Tile | null; swiglu: F32Tile | null }> {
  const be = tf.backend() as unknown as WebGpuBackendLike;
  const dev = be.device;
  const { odd, model } = products(layer, T);
  const all = [...odd, ...model];
  const outs = all.map((p) => dev.createBuffer({ size: 4 * p.M * p.outCols, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST }));
  const vs = tileVariants();
  const refs: Float32Array[] = [];
  for (let i = 0; i < all.length; i++) { runDispatches(be, [dispatchOf(be, vs[0], all[i], outs[i])!]); refs.push(await readBuffer(dev, outs[i], 4 * all[i].M * all[i].outCols)); }
  const ok = new Map<string, TileVariant>([[vs[0].name, vs[0]]]);
  for (const v of vs.slice(1)) {
    const errs: string[] = [];
    let exact = true;
    try {
      for (let i = 0; i < all.length; i++) {
        const d = dispatchOf(be, v, all[i], outs[i]);
        if (!d) { errs.push('-'); continue; }
        dev.queue.writeBuffer(outs[i], 0, new Float32Array(all[i].M * all[i].outCols).fill(NaN));
        runDispatches(be, [d]);
        const e = maxRel(await readBuffer(dev, outs[i], 4 * all[i].M * all[i].outCols), refs[i]);
        errs.push(e.toExponential(1));
        if (!(e < 2e-5)) exact = false;
      }
    } catch (e) { exact = false; errs.push(`failed: ${(e as Error).message.split('\n')[0]}`); }
    log(`tile ${v.name}: max |diff| / max |v1| on ${all.map((p) => p.name).join(', ')} = ${errs.join(', ')} -> ${exact ? 'exact' : 'REJECTED'}`);
    if (exact) ok.set(v.name, v);
  }
  const times = new Map<string, number[][]>([...ok.keys()].map((n) => [n, model.map(() => [])]));
  const okList = [...ok.values()];
  for (let round = 0; round < rounds; round++) {
    for (const v of round % 2 ? [...okList].reverse() : okList) {
      for (let i = 0; i < model.length; i++) {
        const d = dispatchOf(be, v, model[i], outs[odd.length + i]);
        if (d) times.get(v.name)![i].push(...await gpuTimes(be, d, reps));
      }
    }
  }
  const flops = model.map((p) => 2 * p.M * p.K * p.rows);
  let best = { dense: null as TileVariant | null, denseMs: Infinity, swiglu: null as TileVariant | null, swigluMs: Infinity };
  log(`| tile | ${model.map((p) => `${p.name} ms (TFLOP/s)`).join(' | ')} | layer products ms (TFLOP/s) |`);
  for (const v of okList) {
    const ms = times.get(v.name)!.map((t) => (t.length ? median(t) : NaN));
    const dense = ms[0] + ms[1] + ms[3], sum = dense + ms[2];
    const total = flops.reduce((a, b) => a + b, 0);
    log(`| ${v.name} | ${ms.map((m, i) => `${m.toFixed(3)} (${(flops[i] / m / 1e9).toFixed(1)})`).join(' | ')} | ${sum.toFixed(2)} (${(total / sum / 1e9).toFixed(1)}) |`);
    console.log(`RESULT tile="${v.name}" ${model.map((p, i) => `${p.name.replace(/\W+/g, '_')}_ms=${ms[i].toFixed(3)}`).join(' ')} layer_ms=${sum.toFixed(3)} layer_tflops=${(total / sum / 1e9).toFixed(2)}`);
    if (v.tile === 'v1') continue;
    if (dense < best.denseMs) best = { ...best, dense: v, denseMs: dense };
    if (Number.isFinite(ms[2]) && ms[2] < best.swigluMs) best = { ...best, swiglu: v, swigluMs: ms[2] };
  }
  outs.forEach((b) => b.destroy());
  tf.dispose(all.flatMap((p) => [p.x, p.bias, p.residual].filter((t): t is tf.Tensor => t !== undefined && !model.some((m) => m.w === t))));
  tf.dispose(odd.map((p) => p.w));
  log(`fastest exact: dense ${best.dense?.name} (${best.denseMs.toFixed(2)} ms), swiglu ${best.swiglu?.name} (${best.swigluMs.toFixed(2)} ms)`);
  return { dense: (best.dense?.tile as F32Tile) ?? null, swiglu: (best.swiglu?.tile as F32Tile) ?? null };
}
