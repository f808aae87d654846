/**
 * What Dawn's subgroup-matrix builtins do on this device, one 16x16 product at a time, before any
 * kernel relies on them (issue 13's sgmat prefill and issue 11's split-f16 matmul both came out wrong
 * on the H200 with no way to tell which assumption failed).
 *
 * Each case loads a left and a right 16x16 f16 matrix with a given layout (row_major / col_major),
 * source (storage or workgroup memory) and stride, multiplies them into an f32 (or f16) result and
 * stores it with a given layout. The numbers are small integers, so every reading is exact; the
 * probe then says which of the 8 readings (left read row/col x right read row/col x result stored
 * row/col) the device's result matches, and whether that is the documented one (Dawn's
 * subgroup_matrix.md: left (m, k) at off + m stride + k when row_major; right (k, n) at
 * off + k stride + n when row_major, off + n stride + k when col_major; result (m, n) at
 * off + m stride + n when stored row_major).
 * Then a workgroup of 4 subgroups: how `subgroup_id` relates to `local_invocation_index / 32`, and
 * whether per-subgroup offsets from `subgroup_id` work. Then the split-f16 matmul itself against a
 * float64 product on odd shapes.
 *
 * Run on the GPU machine: `"$NODE" .device/sgmat_probe.mjs` (bundle: bench/device/prepare_sgmat_probe.sh).
 * Locally (lavapipe: no subgroup matrices) it only prints the device line.
 */
import { performance } from 'node:perf_hooks';
import { loadDawn, NVIDIA_DAWN_FEATURES } from '../../lib/backends/webgpu_node.js';
import { matmulSplitF16Wgsl, type SplitF16Config, splitF16Tile } from '../../kernels/webgpu/matmul_split_f16_wgsl.js';

type Major = 'row' | 'col';
const at = (major: Major, r: number, c: number, stride: number) => (major === 'row' ? r * stride + c : c * stride + r);

async function device(): Promise<{ dev: GPUDevice; sgmat: boolean; info: string }> {
  const dawn = loadDawn();
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([`enable-dawn-features=${NVIDIA_DAWN_FEATURES}`]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no adapter');
  const features = [...adapter.features] as GPUFeatureName[];
  const dev = await adapter.requestDevice({ requiredFeatures: features, requiredLimits: { maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize } });
  dev.addEventListener('uncapturederror', (e) => console.log('uncaptured:', (e as unknown as { error: { message: string } }).error.message));
  const ai = (adapter as unknown as { info: { device: string; subgroupMinSize: number; subgroupMaxSize: number; subgroupMatrixConfigs?: Iterable<{ componentType: string; resultComponentType: string; M: number; N: number; K: number }> } }).info;
  const cfgs = [...(ai.subgroupMatrixConfigs ?? [])].map((c) => `${c.componentType}->${c.resultComponentType} ${c.M}x${c.N}x${c.K}`);
  return { dev, sgmat: features.includes('chromium-experimental-subgroup-matrix' as GPUFeatureName), info: `${ai.device} subgroups ${ai.subgroupMinSize}-${ai.subgroupMaxSize}; configs: ${cfgs.join(', ') || 'none'}` };
}

function buffer(dev: GPUDevice, data: ArrayBufferView | number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST): GPUBuffer {
  const size = typeof data === 'number' ? data : data.byteLength;
  const b = dev.createBuffer({ size: Math.max(16, Math.ceil(size / 4) * 4), usage });
  if (typeof data !== 'number') dev.queue.writeBuffer(b, 0, data.buffer, data.byteOffset, Math.ceil(data.byteLength / 4) * 4);
  return b;
}

async function read(dev: GPUDevice, src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const rb = dev.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = dev.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, rb, 0, Math.ceil(bytes / 4) * 4);
  dev.queue.submit([enc.finish()]);
  await rb.mapAsync(GPUMapMode.READ);
  const out = rb.getMappedRange().slice(0);
  rb.unmap(); rb.destroy();
  return out;
}

async function runShader(dev: GPUDevice, code: string, bufs: GPUBuffer[], groups: [number, number, number]): Promise<string | null> {
  dev.pushErrorScope('validation');
  const module = dev.createShaderModule({ code });
  const pipe = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bind = dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: bufs.map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const enc = dev.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipe); pass.setBindGroup(0, bind); pass.dispatchWorkgroups(...groups); pass.end();
  dev.queue.submit([enc.finish()]);
  const err = await dev.popErrorScope();
  return err ? err.message : null;
}

/** f32 -> f16 bits (exact for the small integers used here). */
function f16bits(v: number): number {
  const f = new Float32Array([v]); const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000; const exp = ((u >>> 23) & 0xff) - 127 + 15; const man = (u >>> 13) & 0x3ff;
  if (v === 0) return sign;
  return sign | (exp << 10) | man;
}
function f16value(b: number): number {
  const s = b & 0x8000 ? -1 : 1; const e = (b >>> 10) & 31; const m = b & 0x3ff;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

interface Case { name: string; left: Major; right: Major; store: Major; source: 'storage' | 'workgroup'; stride: number; result: 'f32' | 'f16'; kSteps: number }

/** Element values: L[m][k], R[k][n] as stored at logical positions (small integers). */
const lv = (m: number, k: number) => ((m * 3 + k * 5) % 7) - 3;
const rv = (k: number, n: number) => ((k * 2 + n * 7 + 1) % 5) - 2;

async function matrixCase(dev: GPUDevice, c: Case): Promise<string> {
  const K = 16 * c.kSteps;
  const S = c.stride; // stride >= K for row-major left (rows of K), >= 16 for col-major
  const lenL = Math.max(at(c.left, 15, K - 1, S), at(c.left, 0, K - 1, S), at(c.left, 15, 0, S)) + 1;
  const lenR = Math.max(at(c.right, K - 1, 15, S), at(c.right, 0, 15, S), at(c.right, K - 1, 0, S)) + 1;
  // the buffers hold the raw array: we fill element [i] with a value from a generator of i, and
  // compute the expectation for each of the 8 readings from those arrays.
  const Lraw = Array.from({ length: lenL }, (_, i) => ((i * 5 + 3) % 9) - 4);
  const Rraw = Array.from({ length: lenR }, (_, i) => ((i * 7 + 1) % 11) - 5);
  void lv; void rv;
  const lBuf = buffer(dev, new Uint16Array(Lraw.map(f16bits)));
  const rBuf = buffer(dev, new Uint16Array(Rraw.map(f16bits)));
  const outLen = 16 * 16;
  const oBuf = buffer(dev, outLen * 4);
  const T = c.result;
  const ptrL = c.source === 'storage' ? '&L' : '&Lw';
  const ptrR = c.source === 'storage' ? '&R' : '&Rw';
  const code = /* wgsl */`
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> L: array<f16>;
@group(0) @binding(1) var<storage, read_write> R: array<f16>;
@group(0) @binding(2) var<storage, read_write> O: array<${T}>;
var<workgroup> Lw: array<f16, ${lenL}>;
var<workgroup> Rw: array<f16, ${lenR}>;
@compute @workgroup_size(32)
fn main(@builtin(local_invocation_index) t: u32) {
  for (var i = t; i < ${lenL}u; i += 32u) { Lw[i] = L[i]; }
  for (var i = t; i < ${lenR}u; i += 32u) { Rw[i] = R[i]; }
  workgroupBarrier();
  var acc = subgroup_matrix_result<${T}, 16, 16>();
  for (var s = 0u; s < ${c.kSteps}u; s++) {
    let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, ${c.left}_major>(${ptrL}, ${c.left === 'row' ? 's * 16u' : `s * 16u * ${S}u`}, ${S}u);
    let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, ${c.right}_major>(${ptrR}, ${c.right === 'row' ? `s * 16u * ${S}u` : 's * 16u'}, ${S}u);
    acc = subgroupMatrixMultiplyAccumulate(a, b, acc);
  }
  subgroupMatrixStore<${c.store}_major>(&O, 0u, acc, 16u);
}`;
  const err = await runShader(dev, code, [lBuf, rBuf, oBuf], [1, 1, 1]);
  if (err) return `${c.name}: ERROR ${err.slice(0, 300)}`;
  const raw = await read(dev, oBuf, outLen * (T === 'f32' ? 4 : 2));
  const got = T === 'f32' ? [...new Float32Array(raw)] : [...new Uint16Array(raw)].map(f16value);
  // expectations for the 8 readings; step s of K uses the documented offsets for the declared layouts
  const readings: string[] = [];
  let documented = '';
  for (const lr of ['row', 'col'] as Major[]) for (const rr of ['row', 'col'] as Major[]) for (const sr of ['row', 'col'] as Major[]) {
    let maxErr = 0;
    for (let m = 0; m < 16; m++) for (let n = 0; n < 16; n++) {
      let e = 0;
      for (let s = 0; s < c.kSteps; s++) {
        const offL = c.left === 'row' ? s * 16 : s * 16 * S;
        const offR = c.right === 'row' ? s * 16 * S : s * 16;
        for (let k = 0; k < 16; k++) e += Lraw[offL + at(lr, m, k, S)] * Rraw[offR + at(rr, k, n, S)];
      }
      maxErr = Math.max(maxErr, Math.abs(got[at(sr, m, n, 16)] - e));
    }
    const tag = `L${lr} R${rr} O${sr}`;
    if (maxErr === 0) readings.push(tag);
    if (lr === c.left && rr === c.right && sr === c.store) documented = maxErr === 0 ? 'documented reading EXACT' : `documented reading off by up to ${maxErr}`;
  }
  [lBuf, rBuf, oBuf].forEach((b) => b.destroy());
  return `${c.name}: ${documented}; matches: ${readings.join(', ') || 'none'}; got[0..4]=${got.slice(0, 4).join(',')}`;
}

/** 4 subgroups in a 128-lane workgroup: subgroup_id vs t / 32, and tiles at subgroup_id offsets. */
async function subgroupIdCase(dev: GPUDevice): Promise<string> {
  const S = 24; // padded stride as in the kernels
  const Lraw = Array.from({ length: 64 * S }, (_, i) => ((i * 5 + 3) % 9) - 4);
  const Rraw = Array.from({ length: 16 * S }, (_, i) => ((i * 7 + 1) % 11) - 5);
  const lBuf = buffer(dev, new Uint16Array(Lraw.map(f16bits)));
  const rBuf = buffer(dev, new Uint16Array(Rraw.map(f16bits)));
  const oBuf = buffer(dev, 4 * 256 * 4);
  const idBuf = buffer(dev, 128 * 2 * 4);
  const code = /* wgsl */`
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> L: array<f16>;
@group(0) @binding(1) var<storage, read_write> R: array<f16>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@group(0) @binding(3) var<storage, read_write> ids: array<u32>;
var<workgroup> Lw: array<f16, ${64 * S}>;
var<workgroup> Rw: array<f16, ${16 * S}>;
var<workgroup> St: array<f32, ${4 * 256}>;
@compute @workgroup_size(128)
fn main(@builtin(local_invocation_index) t: u32, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  ids[2u * t] = sg;
  ids[2u * t + 1u] = lane;
  for (var i = t; i < ${64 * S}u; i += 128u) { Lw[i] = L[i]; }
  for (var i = t; i < ${16 * S}u; i += 128u) { Rw[i] = R[i]; }
  workgroupBarrier();
  let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Lw, sg * 16u * ${S}u, ${S}u);
  let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Rw, 0u, ${S}u);
  let acc = subgroupMatrixMultiplyAccumulate(a, b, subgroup_matrix_result<f32, 16, 16>());
  subgroupMatrixStore<row_major>(&St, sg * 256u, acc, 16u);
  workgroupBarrier();
  for (var i = t; i < 1024u; i += 128u) { O[i] = St[i]; }
}`;
  const err = await runShader(dev, code, [lBuf, rBuf, oBuf, idBuf], [1, 1, 1]);
  if (err) return `subgroup_id tiles: ERROR ${err.slice(0, 300)}`;
  const got = new Float32Array(await read(dev, oBuf, 4096));
  const ids = new Uint32Array(await read(dev, idBuf, 1024));
  let idMismatch = 0; let laneMismatch = 0;
  for (let t = 0; t < 128; t++) { if (ids[2 * t] !== Math.floor(t / 32)) idMismatch++; if (ids[2 * t + 1] !== t % 32) laneMismatch++; }
  let maxErr = 0;
  for (let g = 0; g < 4; g++) for (let m = 0; m < 16; m++) for (let n = 0; n < 16; n++) {
    let e = 0;
    for (let k = 0; k < 16; k++) e += Lraw[(g * 16 + m) * S + k] * Rraw[n * S + k];
    maxErr = Math.max(maxErr, Math.abs(got[g * 256 + m * 16 + n] - e));
  }
  [lBuf, rBuf, oBuf, idBuf].forEach((b) => b.destroy());
  return `subgroup_id tiles (128 lanes, stride ${S}, workgroup source): sg != t/32 at ${idMismatch} lanes, lane != t%32 at ${laneMismatch}; `
    + `ids[0..8]=${[...ids.slice(0, 8)].join(',')} ids[64..72]=${[...ids.slice(64, 72)].join(',')}; max err ${maxErr}`;
}

/** The split-f16 matmul on odd shapes against a float64 product: y = x [M, K] · w [N, K]ᵀ. */
async function splitCase(dev: GPUDevice, cfg: SplitF16Config, M: number, N: number, K: number): Promise<string> {
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32 - 0.5; };
  const x = Float32Array.from({ length: M * K }, rnd);
  const w = Float32Array.from({ length: N * K }, () => rnd() * 0.05);
  const wScale = 1;
  const dims = new Uint32Array([M, N, K, 0, new Uint32Array(new Float32Array([wScale]).buffer)[0], 0, 0, 0]);
  const xb = buffer(dev, x), wb = buffer(dev, w), yb = buffer(dev, M * N * 4), db = buffer(dev, dims);
  const { bm, bn } = splitF16Tile(cfg);
  const err = await runShader(dev, matmulSplitF16Wgsl(cfg), [xb, wb, yb, db], [Math.ceil(N / bn), Math.ceil(M / bm), 1]);
  const name = `split-f16 ${cfg.sgM}x${cfg.sgN} sg ${cfg.tm}x${cfg.tn} mats bk${cfg.bk}${cfg.emulate ? ' (emulated)' : ''} M${M} N${N} K${K}`;
  if (err) return `${name}: ERROR ${err.slice(0, 300)}`;
  const y = new Float32Array(await read(dev, yb, M * N * 4));
  let maxErr = 0; let maxRef = 0;
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let e = 0;
    for (let k = 0; k < K; k++) e += x[m * K + k] * w[n * K + k];
    maxErr = Math.max(maxErr, Math.abs(y[m * N + n] - e)); maxRef = Math.max(maxRef, Math.abs(e));
  }
  [xb, wb, yb, db].forEach((b) => b.destroy());
  return `${name}: rel err ${(maxErr / maxRef).toExponential(2)} (max |y| ${maxRef.toFixed(3)})`;
}

/** Peak rate of subgroupMatrixMultiplyAccumulate from registers (f16 x f16 -> f32, 16x16x16). */
async function mmaPeak(dev: GPUDevice): Promise<string> {
  const ITER = 2048; const GROUPS = 132 * 16; const ACC = 4;
  const oBuf = buffer(dev, GROUPS * 4 * 256 * 4);
  const lBuf = buffer(dev, new Uint16Array(512).fill(f16bits(0.001)));
  const code = /* wgsl */`
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> L: array<f16>;
@group(0) @binding(1) var<storage, read_write> O: array<f32>;
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_id) sg: u32) {
  let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&L, 0u, 16u);
  let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&L, 256u, 16u);
  ${Array.from({ length: ACC }, (_, i) => `var c${i} = subgroup_matrix_result<f32, 16, 16>();`).join(' ')}
  for (var i = 0u; i < ${ITER}u; i++) {
    ${Array.from({ length: ACC }, (_, i) => `c${i} = subgroupMatrixMultiplyAccumulate(a, b, c${i});`).join(' ')}
  }
  ${Array.from({ length: ACC }, (_, i) => `c0 = subgroupMatrixMultiplyAccumulate(a, b, c${i});`).slice(1).join(' ')}
  subgroupMatrixStore<row_major>(&O, (wid.x * 4u + sg) * 256u, c0, 16u);
}`;
  const module = dev.createShaderModule({ code });
  dev.pushErrorScope('validation');
  const pipe = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bind = dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [lBuf, oBuf].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const err = await dev.popErrorScope();
  if (err) return `mma peak: ERROR ${err.message.slice(0, 300)}`;
  const times: number[] = [];
  for (let r = 0; r < 6; r++) {
    const t0 = performance.now();
    const enc = dev.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipe); pass.setBindGroup(0, bind); pass.dispatchWorkgroups(GROUPS); pass.end();
    dev.queue.submit([enc.finish()]);
    await dev.queue.onSubmittedWorkDone();
    times.push(performance.now() - t0);
  }
  const ms = times.sort((x, y) => x - y)[2];
  const flop = GROUPS * 4 * ITER * ACC * 2 * 16 * 16 * 16;
  [lBuf, oBuf].forEach((b) => b.destroy());
  return `mma peak f16->f32 16x16x16 from registers: ${ms.toFixed(3)} ms (wall, submit to done) = ${(flop / ms / 1e9).toFixed(1)} TFLOP/s`;
}

/** Every probe, by index: each runs in its own process (`sgmat_probe.mjs <i>`), as one failing
 * shader can take Dawn's process down (seen on the H200: a col-major left load ended the process). */
async function main(): Promise<void> {
  const only = process.argv[2] === undefined ? -1 : Number(process.argv[2]);
  const { dev, sgmat, info } = await device();
  if (only < 0) { console.log(`RESULT device: ${info}; subgroup matrices ${sgmat ? 'offered' : 'NOT offered'}`); return; }
  if (!sgmat) return;
  const base: Omit<Case, 'name'> = { left: 'row', right: 'col', store: 'row', source: 'storage', stride: 16, result: 'f32', kSteps: 1 };
  const cases: Case[] = [
    { ...base, name: 'storage Lrow Rcol Orow s16' },
    { ...base, name: 'storage Lrow Rrow Orow s16', right: 'row' },
    { ...base, name: 'storage Lcol Rcol Orow s16', left: 'col' },
    { ...base, name: 'storage Lrow Rcol Ocol s16', store: 'col' },
    { ...base, name: 'workgroup Lrow Rcol Orow s16', source: 'workgroup' },
    { ...base, name: 'workgroup Lrow Rcol Orow s24', source: 'workgroup', stride: 24 },
    { ...base, name: 'workgroup Lrow Rrow Orow s24', source: 'workgroup', stride: 24, right: 'row' },
    { ...base, name: 'workgroup Lrow Rcol Orow s40 k32 (2 steps)', source: 'workgroup', stride: 40, kSteps: 2 },
    { ...base, name: 'storage f16 result Lrow Rcol Orow s16', result: 'f16' },
  ];
  const tiles: SplitF16Config[] = [
    { mode: 'dense', sgM: 2, sgN: 2, tm: 2, tn: 2, bk: 16, bias: false, residual: false },
    { mode: 'dense', sgM: 2, sgN: 2, tm: 4, tn: 4, bk: 32, bias: false, residual: false },
    { mode: 'dense', sgM: 4, sgN: 2, tm: 2, tn: 4, bk: 16, bias: false, residual: false },
  ];
  const probes: (() => Promise<string>)[] = [
    ...cases.map((c) => () => matrixCase(dev, c)),
    () => subgroupIdCase(dev),
    () => mmaPeak(dev),
    ...tiles.map((t) => () => splitCase(dev, t, 150, 136, 96)),
  ];
  if (only >= probes.length) return;
  console.log(`RESULT ${only}: ${await probes[only]()}`);
  dev.destroy();
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
