/**
 * The split-f16 tensor-core matmul (kernels/webgpu/matmul_split_f16_wgsl.ts) on its own, through raw
 * WebGPU, one case per process (a bad shader can take Dawn's process down; the H200 did so on the
 * first run of this kernel): `node sgmat_split_check.mjs <case>`.
 *
 * - `variant:<name>`: a 1-subgroup tile (16 x 16, bk 16) on M 64 N 48 K 80 with parts of the WGSL
 *   cut out, to find what kills the process: full, no-overflow (the f16-range fallback and its
 *   workgroupUniformLoad gone), ovf-var (the flag in its own u32 instead of St[0]), emulated (plain
 *   WGSL), no-sgiid (lane from the invocation index, no subgroup_invocation_id), no-mma (products gone: y = 0), no-epilogue (nothing written). Progress marks are written
 *   synchronously (fs.writeSync), so the last one printed says where a crash happened.
 * - `tile:<sgM>x<sgN>:<tm>x<tn>:bk<16|32>:<M>x<N>x<K>[:f<flush>]`: a tile (`flush`: K steps between
 *   accumulator flushes, matmul_split_f16_wgsl.ts) against float64 (max |err| / max |y|
 *   over every element, or 16 sampled rows when M N K > 2^28), then, when `time` follows, GPU time of
 *   split-f16 and the f32 tile (matmul_nt_wgsl.ts, its vec4 bk8 config) alternating, with TFLOP/s.
 * Prints `RESULT ...` lines.
 */
import { writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { loadDawn, NVIDIA_DAWN_FEATURES } from '../../lib/backends/webgpu_node.js';
import { emulated } from '../../kernels/webgpu/subgroup_matrix_emulation.js';
import { matmulSplitF16Wgsl, type SplitF16Config, splitF16Tile } from '../../kernels/webgpu/matmul_split_f16_wgsl.js';
import { matmulNtWgsl } from '../../kernels/webgpu/matmul_nt_wgsl.js';
import { webgpuDenseTuning } from '../../kernels/webgpu/dense_plan.js';

const mark = (s: string) => writeSync(1, `${s}\n`);

async function device(): Promise<GPUDevice> {
  const dawn = loadDawn();
  Object.assign(globalThis, dawn.globals);
  // SGMAT_NULL=1: Dawn's null backend (offers subgroup matrices; compiles and validates only)
  const gpu = dawn.create([...(process.env.SGMAT_NULL ? ['backend=null'] : []), `enable-dawn-features=${NVIDIA_DAWN_FEATURES}`]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no adapter');
  const dev = await adapter.requestDevice({
    requiredFeatures: [...adapter.features] as GPUFeatureName[],
    requiredLimits: { maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize, maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize },
  });
  dev.addEventListener('uncapturederror', (e) => mark(`uncaptured: ${(e as unknown as { error: { message: string } }).error.message}`));
  (globalThis as { keepGpu?: GPU }).keepGpu = gpu;
  return dev;
}

function buffer(dev: GPUDevice, data: Float32Array | Uint32Array | number): GPUBuffer {
  const size = typeof data === 'number' ? data : data.byteLength;
  const b = dev.createBuffer({ size: Math.max(16, Math.ceil(size / 16) * 16), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  if (typeof data !== 'number') dev.queue.writeBuffer(b, 0, data.buffer, data.byteOffset, data.byteLength);
  return b;
}

async function read(dev: GPUDevice, src: GPUBuffer, bytes: number): Promise<Float32Array> {
  const rb = dev.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = dev.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, rb, 0, bytes);
  dev.queue.submit([enc.finish()]);
  await rb.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(rb.getMappedRange().slice(0));
  rb.unmap(); rb.destroy();
  return out;
}

interface Prog { pipe: GPUComputePipeline; bind: GPUBindGroup; grid: [number, number, number] }

async function program(dev: GPUDevice, code: string, bufs: GPUBuffer[], grid: [number, number, number]): Promise<Prog> {
  dev.pushErrorScope('validation');
  const module = dev.createShaderModule({ code });
  const msgs = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  if (msgs.length) throw new Error(`compile: ${msgs.map((m) => `${m.lineNum}: ${m.message}`).join('; ').slice(0, 400)}`);
  mark('  module ok');
  const pipe = await dev.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  mark('  pipeline ok');
  const bind = dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: bufs.map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const err = await dev.popErrorScope();
  if (err) throw new Error(`validation: ${err.message.slice(0, 400)}`);
  return { pipe, bind, grid };
}

function dispatch(dev: GPUDevice, p: Prog, reps = 1, qs?: GPUQuerySet): void {
  const enc = dev.createCommandEncoder();
  const pass = enc.beginComputePass(qs ? { timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : undefined);
  pass.setPipeline(p.pipe); pass.setBindGroup(0, p.bind);
  for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(...p.grid);
  pass.end();
  dev.queue.submit([enc.finish()]);
}

/** GPU ms of `reps` back-to-back dispatches in one pass (timestamps), or wall ms without them. */
async function timeMs(dev: GPUDevice, p: Prog, reps: number): Promise<number> {
  if (!dev.features.has('timestamp-query')) {
    const t0 = performance.now(); dispatch(dev, p, reps); await dev.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / reps;
  }
  const qs = dev.createQuerySet({ type: 'timestamp', count: 2 });
  const res = dev.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const rb = dev.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  dispatch(dev, p, reps, qs);
  const enc = dev.createCommandEncoder();
  enc.resolveQuerySet(qs, 0, 2, res, 0); enc.copyBufferToBuffer(res, 0, rb, 0, 16);
  dev.queue.submit([enc.finish()]);
  await rb.mapAsync(GPUMapMode.READ);
  const t = new BigUint64Array(rb.getMappedRange().slice(0));
  rb.unmap(); [qs, res, rb].forEach((o) => o.destroy());
  return Number(t[1] - t[0]) / 1e6 / reps;
}

function data(M: number, N: number, K: number): { x: Float32Array; w: Float32Array } {
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32 - 0.5; };
  return { x: Float32Array.from({ length: M * K }, rnd), w: Float32Array.from({ length: N * K }, () => rnd() * 0.05) };
}

/** max |y - x wᵀ| / max |x wᵀ| in float64, over every row or 16 sampled ones. */
function relErr(y: Float32Array, x: Float32Array, w: Float32Array, M: number, N: number, K: number): number {
  const rows = M * N * K > 2 ** 28 ? Array.from({ length: 16 }, (_, i) => Math.floor((i * 2654435761) % M)) : [...Array(M).keys()];
  let maxErr = 0, maxRef = 0;
  for (const m of rows) for (let n = 0; n < N; n++) {
    let e = 0;
    for (let k = 0; k < K; k++) e += x[m * K + k] * w[n * K + k];
    maxErr = Math.max(maxErr, Math.abs(y[m * N + n] - e)); maxRef = Math.max(maxRef, Math.abs(e));
  }
  return maxErr / maxRef;
}

const cut = (code: string, from: string, to: string, by = ''): string => {
  const a = code.indexOf(from), b = code.indexOf(to, a);
  if (a < 0 || b < 0) throw new Error(`variant: '${from}' .. '${to}' not in the WGSL`);
  return code.slice(0, a) + by + code.slice(b + to.length);
};

const VARIANTS: Record<string, (c: string) => string> = {
  full: (c) => c,
  'no-overflow': (c) => cut(c, '  if (t == 0u) { St[0] = 0.0; }', '    return;\n  }\n'),
  'ovf-var': (c) => cut(c, '  if (t == 0u) { St[0] = 0.0; }', 'workgroupUniformLoad(&St[0]);',
    '  if (t == 0u) { ovf = 0u; }\n  workgroupBarrier();\n  if (overflow) { ovf = 1u; }\n  let anyOverflow = f32(workgroupUniformLoad(&ovf));')
    .replace('var<private> overflow', 'var<workgroup> ovf: u32;\nvar<private> overflow'),
  emulated: (c) => emulated(c),
  'no-sgiid': (c) => c.replace(', @builtin(subgroup_invocation_id) lane: u32) {', ') {\n  let lane = t % 32u;'),
  'no-mma': (c) => c.replace(/\n.*subgroupMatrixMultiplyAccumulate.*/g, ''),
  'no-epilogue': (c) => cut(c, '  var vals: array<f32, 8>;', '\n}\n', '\n}\n'),
};

async function splitCase(dev: GPUDevice, cfg: SplitF16Config, M: number, N: number, K: number, edit: (c: string) => string, time: boolean): Promise<string> {
  const { x, w } = data(M, N, K);
  const dims = new Uint32Array([M, N, K, 0, new Uint32Array(new Float32Array([32]).buffer)[0], 0, 0, 0]);
  const xb = buffer(dev, x), wb = buffer(dev, w), yb = buffer(dev, M * N * 4), db = buffer(dev, dims);
  const { bm, bn } = splitF16Tile(cfg);
  const split = await program(dev, edit(matmulSplitF16Wgsl(cfg)), [xb, wb, yb, db], [Math.ceil(N / bn), Math.ceil(M / bm), 1]);
  dispatch(dev, split);
  mark('  dispatched');
  const y = await read(dev, yb, M * N * 4);
  mark('  read back');
  const err = relErr(y, x, w, M, N, K);
  if (!time) return `rel err ${err.toExponential(2)}`;
  const yf = buffer(dev, M * N * 4);
  const f32 = await program(dev, matmulNtWgsl({ mode: 'dense', bias: false, residual: false, vec4: true, tile: webgpuDenseTuning.f32Tiles.dense }),
    [xb, wb, yf, buffer(dev, new Uint32Array([M, N, K, N]))], [Math.ceil(N / webgpuDenseTuning.f32Tiles.dense.bn), Math.ceil(M / webgpuDenseTuning.f32Tiles.dense.bm), 1]);
  dispatch(dev, f32);
  const errF32 = relErr(await read(dev, yf, M * N * 4), x, w, M, N, K);
  const ts: number[] = [], tf: number[] = [];
  for (let r = 0; r < 5; r++) { ts.push(await timeMs(dev, split, 5)); tf.push(await timeMs(dev, f32, 5)); }
  const med = (a: number[]) => [...a].sort((p, q) => p - q)[2];
  const flop = 2 * M * N * K;
  const [ms, mf] = [med(ts), med(tf)];
  return `rel err ${err.toExponential(2)} (f32 tile ${errF32.toExponential(2)}); split ${ms.toFixed(3)} ms ${(flop / ms / 1e9).toFixed(1)} TFLOP/s, `
    + `f32 tile ${mf.toFixed(3)} ms ${(flop / mf / 1e9).toFixed(1)} TFLOP/s, f32/split ${(mf / ms).toFixed(2)}x`;
}

async function main(): Promise<void> {
  const arg = process.argv[2] ?? 'variant:full';
  const dev = await device();
  const base: SplitF16Config = { mode: 'dense', sgM: 1, sgN: 1, tm: 1, tn: 1, bk: 16, bias: false, residual: false };
  let line: string;
  try {
    if (arg.startsWith('variant:')) {
      const v = arg.slice(8);
      mark(`split ${arg}`);
      line = await splitCase(dev, base, 64, 48, 80, VARIANTS[v], false);
    } else {
      const m = /^tile:(\d)x(\d):(\d)x(\d):bk(\d+):(\d+)x(\d+)x(\d+)(?::f(\d+))?$/.exec(arg);
      if (!m) throw new Error(`case (${arg}) must be variant:<name> or tile:<sgM>x<sgN>:<tm>x<tn>:bk<n>:<M>x<N>x<K>[:f<flush>]`);
      const [sgM, sgN, tm, tn, bk, M, N, K, flush] = m.slice(1).map((v) => Number(v ?? 0));
      mark(`split ${arg}`);
      line = await splitCase(dev, { ...base, sgM, sgN, tm, tn, bk, flush }, M, N, K, (c) => c, process.argv[3] === 'time');
    }
  } catch (e) {
    line = `ERROR ${(e as Error).message}`;
  }
  mark(`RESULT split ${arg}${process.argv[3] === 'time' ? ' time' : ''}: ${line}`);
  dev.destroy();
}

main().then(() => process.exit(0), (e) => { mark(`RESULT split ${process.argv[2]}: ERROR ${(e as Error).message}`); process.exit(1); });
