/**
 * WGSL of the tensor-core matmul behind DenseMatMul and SwiGluMlp where the adapter has
 * `chromium-experimental-subgroup-matrix` with f16 x f16 -> f32 16x16x16 (tensor_cores.ts):
 * `y = x [M, K] · w [N, K]ᵀ` in float32 accuracy from f16 products, by splitting each operand
 * `v = hi + lo` (hi = v cut to f16's 10 mantissa bits, lo = f16(v - hi)) and summing `hi·hi + hi·lo + lo·hi` in f32
 * accumulators (lo·lo, ~2^-22 of the product, is dropped). The weights are scaled by a power of
 * two (`wScale`, exact in f32) before the split so that their lo parts stay normal f16 numbers;
 * the epilogue divides it out.
 *
 * Workgroup: SG_M x SG_N subgroups of 32 lanes, each owning TM x TN result matrices of 16 x 16;
 * tile BM = 16 SG_M TM rows by BN = 16 SG_N TN columns, K steps of BK (16 or 32). Each thread loads
 * its share of the next step's x and w tiles as vec4 into registers (issued before this step's
 * products), then splits and stores them into shared memory: x as [BM][BK + 8] (left, row-major),
 * w as [BN][BK + 8] (right, column-major), the 8 halves of padding keep the 16-byte rows of the
 * matrix loads on distinct banks.
 *
 * Range: f16 holds |v| < 65504. A thread that meets a scaled x or w value of magnitude >= 65000
 * (or Inf) flags the workgroup, and the workgroup then computes its whole tile again in plain f32
 * (a slow loop, taken only on such inputs), so the result never depends on the f16 range.
 *
 * Epilogue (through a 16 x 16 f32 staging area per subgroup): `dense` adds bias and residual;
 * `swiglu` gives subgroup column c the gate columns 32c.. and the up columns 64 + 32c.. of the
 * blocked gate/up packing (kernel_names.ts SwiGluMlp: BN = 128 holds 64 gate + 64 up rows) and
 * writes silu(g) * u to `[M, I]`.
 *
 * Bindings as matmul_nt_wgsl.ts: 0 x, 1 w, 2 y, 3 dims (M, N, K, I, wScale bits), 4 bias, then
 * residual. Requires K % 4 == 0.
 */
import { emulated } from './subgroup_matrix_emulation.js';

export interface SplitF16Config {
  mode: 'dense' | 'swiglu';
  /** Subgroups along M and N, and 16 x 16 result matrices per subgroup along M and N. */
  sgM: number;
  sgN: number;
  tm: number;
  tn: number;
  /** K depth of a shared tile: 16 or 32. */
  bk: number;
  bias: boolean;
  residual: boolean;
  /**
   * Specs on devices without subgroup matrices: the same kernel with every matrix op done by each
   * lane on a private copy of the whole 16 x 16 matrix in plain WGSL (emulation_wgsl below; slow).
   */
  emulate?: boolean;
  /**
   * Every `flush` K steps (and at the end) each accumulator matrix is added into per-lane f32 sums
   * (through the staging area) and restarted from zero: the H200's tensor cores add into an f32
   * accumulator less exactly than f32 adds do (rel err 1e-5 .. 3.7e-5 at K = 2048 without flushes,
   * 1.3e-6 for the same split products summed in f32), and shorter runs keep that error small.
   * 0 or absent: no flushes.
   */
  flush?: number;
}

/** The tile of a config: rows, columns, threads, and the workgroup memory it needs (bytes). */
export function splitF16Tile(c: SplitF16Config): { bm: number; bn: number; threads: number; sharedBytes: number } {
  const bm = 16 * c.sgM * c.tm;
  const bn = 16 * c.sgN * c.tn;
  const threads = 32 * c.sgM * c.sgN;
  return { bm, bn, threads, sharedBytes: 2 * 2 * (bm + bn) * (c.bk + 8) + 4 * 256 * c.sgM * c.sgN };
}

const range = (n: number) => [...Array(n).keys()];

export function matmulSplitF16Wgsl(c: SplitF16Config): string {
  if (c.bk !== 16 && c.bk !== 32) throw new Error(`[matmulSplitF16Wgsl] bk (${c.bk}) must be 16 or 32`);
  const { bm, bn, threads } = splitF16Tile(c);
  const S = c.bk + 8; // shared row stride in halves
  const v4PerRow = c.bk / 4;
  const rowsPerPass = threads / v4PerRow;
  const passesX = bm / rowsPerPass;
  const passesW = bn / rowsPerPass;
  if (c.mode === 'swiglu' && (bn !== 128 || c.tn % 2 !== 0)) throw new Error(`[matmulSplitF16Wgsl] swiglu needs a 128-column tile and an even tn, got ${bn} and ${c.tn}`);
  if (!Number.isInteger(passesX) || !Number.isInteger(passesW) || passesX < 1 || passesW < 1) {
    throw new Error(`[matmulSplitF16Wgsl] tile ${bm} x ${bn} with bk ${c.bk} does not divide among ${threads} threads`);
  }
  // column offset (in the tile) of subgroup column sgc's result matrix j
  const colOf = (j: number) => c.mode === 'dense'
    ? `sgc * ${16 * c.tn}u + ${16 * j}u`
    : `${j < c.tn / 2 ? 0 : 64}u + sgc * ${8 * c.tn}u + ${16 * (j % (c.tn / 2))}u`;
  const acc = (i: number, j: number) => `acc_${i}_${j}`;
  const I = range(c.tm), J = range(c.tn);
  const loads = (k: string) => [
    ...range(passesX).map((p) => `rx${p} = loadX(m0 + lr + ${p * rowsPerPass}u, ${k} + lk, M, K);`),
    ...range(passesW).map((p) => `rw${p} = loadW(n0 + lr + ${p * rowsPerPass}u, ${k} + lk, N, K);`),
  ].join('\n    ');
  const stores = [
    ...range(passesX).map((p) => `putX((lr + ${p * rowsPerPass}u) * ${S}u + lk, rx${p});`),
    ...range(passesW).map((p) => `putW((lr + ${p * rowsPerPass}u) * ${S}u + lk, rw${p} * wScale);`),
  ].join('\n    ');
  const products = range(c.bk / 16).map((kk) => `
      {
        ${I.map((i) => `let ah${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Xh, (sgr * ${16 * c.tm}u + ${16 * i}u) * ${S}u + ${16 * kk}u, ${S}u);
        let al${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Xl, (sgr * ${16 * c.tm}u + ${16 * i}u) * ${S}u + ${16 * kk}u, ${S}u);`).join('\n        ')}
        ${J.map((j) => `let bh${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Wh, (${colOf(j)}) * ${S}u + ${16 * kk}u, ${S}u);
        let bl${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Wl, (${colOf(j)}) * ${S}u + ${16 * kk}u, ${S}u);`).join('\n        ')}
        ${I.flatMap((i) => J.map((j) => `${acc(i, j)} = subgroupMatrixMultiplyAccumulate(al${i}, bh${j}, ${acc(i, j)});
        ${acc(i, j)} = subgroupMatrixMultiplyAccumulate(ah${i}, bl${j}, ${acc(i, j)});
        ${acc(i, j)} = subgroupMatrixMultiplyAccumulate(ah${i}, bh${j}, ${acc(i, j)});`)).join('\n        ')}
      }`).join('');
  // staging: lane l holds elements l + 32 q (q < 8) of a 16 x 16 matrix: row (l + 32 q) / 16, column l % 16
  const stage = (m: string) => `
    workgroupBarrier();
    subgroupMatrixStore<row_major>(&St, sg * 256u, ${m}, 16u);
    workgroupBarrier();
    for (var q = 0u; q < 8u; q++) { vals[q] = St[sg * 256u + lane + 32u * q] * inv; }`;
  const F = c.flush ?? 0;
  const tot = (m: string) => `tot${m.slice(3)}`;
  // the finished matrix m as this lane's 8 values (vals): from the flushed sums, or staged now
  const valsOf = (m: string) => (F > 0 ? `
    for (var q = 0u; q < 8u; q++) { vals[q] = ${tot(m)}[q] * inv; }` : stage(m));
  const flushes = F > 0 ? `
    if ((k0 / BK) % ${F}u == ${F - 1}u || k0 + BK >= K) {${I.flatMap((i) => J.map((j) => `
      subgroupMatrixStore<row_major>(&St, sg * 256u, ${acc(i, j)}, 16u);
      workgroupBarrier();
      for (var q = 0u; q < 8u; q++) { ${tot(acc(i, j))}[q] += St[sg * 256u + lane + 32u * q]; }
      workgroupBarrier();
      ${acc(i, j)} = subgroup_matrix_result<f32, 16, 16>();`)).join('')}
    }` : '';
  const dense = I.flatMap((i) => J.map((j) => `${valsOf(acc(i, j))}
    for (var q = 0u; q < 8u; q++) {
      let row = m0 + sgr * ${16 * c.tm}u + ${16 * i}u + (lane + 32u * q) / 16u;
      let col = n0 + ${colOf(j)} + lane % 16u;
      if (row < M && col < N) { writeDense(row, col, vals[q]); }
    }`)).join('');
  const swiglu = c.mode === 'dense' ? '' : I.flatMap((i) => range(c.tn / 2).map((j) => `${valsOf(acc(i, j))}
    for (var q = 0u; q < 8u; q++) { gate[q] = vals[q]; }${valsOf(acc(i, j + c.tn / 2))}
    for (var q = 0u; q < 8u; q++) {
      let row = m0 + sgr * ${16 * c.tm}u + ${16 * i}u + (lane + 32u * q) / 16u;
      let unit = n0 / 2u + sgc * ${8 * c.tn}u + ${16 * j}u + lane % 16u;
      if (row < M && unit < I) { writeSwiGlu(row, unit, n0 + sgc * ${8 * c.tn}u + ${16 * j}u + lane % 16u, gate[q], vals[q]); }
    }`)).join('');
  const biasAt = (col: string) => (c.bias ? ` + bias[${col}]` : '');
  const code = /* wgsl */ `
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dims: array<u32>;
${c.bias ? '@group(0) @binding(4) var<storage, read> bias: array<f32>;' : ''}
${c.residual ? `@group(0) @binding(${c.bias ? 5 : 4}) var<storage, read> residual: array<f32>;` : ''}

const BK: u32 = ${c.bk}u;
const F16_LIMIT: f32 = 65000.0;
var<workgroup> Xh: array<f16, ${bm * S}>;
var<workgroup> Xl: array<f16, ${bm * S}>;
var<workgroup> Wh: array<f16, ${bn * S}>;
var<workgroup> Wl: array<f16, ${bn * S}>;
var<workgroup> St: array<f32, ${256 * c.sgM * c.sgN}>;
var<private> overflow: bool = false;

fn loadX(row: u32, k: u32, M: u32, K: u32) -> vec4<f32> {
  if (row < M && k < K) { return x[(row * K + k) / 4u]; }
  return vec4<f32>(0.0);
}
fn loadW(row: u32, k: u32, N: u32, K: u32) -> vec4<f32> {
  if (row < N && k < K) { return w[(row * K + k) / 4u]; }
  return vec4<f32>(0.0);
}
fn split(v: vec4<f32>) -> array<vec4<f16>, 2> {
  if (any(abs(v) >= vec4<f32>(F16_LIMIT))) { overflow = true; return array<vec4<f16>, 2>(vec4<f16>(0.0), vec4<f16>(0.0)); }
  // hi = v with its mantissa cut to f16's 10 bits, by a mask: a compiler may fold f32(f16(v)) to v
  // (lavapipe does), which would make v - hi zero and lose the lo half (2^-11 errors).
  let hi = bitcast<vec4<f32>>(bitcast<vec4<u32>>(v) & vec4<u32>(0xFFFFE000u));
  return array<vec4<f16>, 2>(vec4<f16>(hi), vec4<f16>(v - hi));
}
fn putX(at: u32, v: vec4<f32>) {
  let s = split(v);
  for (var c = 0u; c < 4u; c++) { Xh[at + c] = s[0][c]; Xl[at + c] = s[1][c]; }
}
fn putW(at: u32, v: vec4<f32>) {
  let s = split(v);
  for (var c = 0u; c < 4u; c++) { Wh[at + c] = s[0][c]; Wl[at + c] = s[1][c]; }
}
fn dotRow(xr: u32, wr: u32, K: u32) -> f32 {
  var s = 0.0;
  for (var k = 0u; k < K / 4u; k++) { s += dot(x[xr * (K / 4u) + k], w[wr * (K / 4u) + k]); }
  return s;
}
fn writeDense(row: u32, col: u32, v: f32) {
  let N = dims[1];
  var o = v${biasAt('col')};
  ${c.residual ? 'o = residual[row * N + col] + o;' : ''}
  y[row * N + col] = o;
}
fn writeSwiGlu(row: u32, unit: u32, gateCol: u32, g0: f32, u0: f32) {
  let g = g0${biasAt('gateCol')};
  let u = u0${biasAt('gateCol + 64u')};
  y[row * dims[3] + unit] = g / (1.0 + exp(-g)) * u;
}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let M = dims[0];
  let N = dims[1];
  let K = dims[2];
  let I = dims[3];
  let wScale = bitcast<f32>(dims[4]);
  let inv = 1.0 / wScale;
  let m0 = wid.y * ${bm}u;
  let n0 = wid.x * ${bn}u;
  let sgr = sg / ${c.sgN}u;
  let sgc = sg % ${c.sgN}u;
  let lr = t / ${v4PerRow}u;
  let lk = (t % ${v4PerRow}u) * 4u;
  ${I.flatMap((i) => J.map((j) => `var ${acc(i, j)} = subgroup_matrix_result<f32, 16, 16>();`)).join('\n  ')}
  ${F > 0 ? I.flatMap((i) => J.map((j) => `var ${tot(acc(i, j))}: array<f32, 8>;`)).join(' ') : ''}
  ${range(passesX).map((p) => `var rx${p}: vec4<f32>;`).join(' ')}
  ${range(passesW).map((p) => `var rw${p}: vec4<f32>;`).join(' ')}
  ${loads('0u')}
  for (var k0 = 0u; k0 < K; k0 += BK) {
    ${stores}
    workgroupBarrier();
    if (k0 + BK < K) {
    ${loads('k0 + BK')}
    }${products}
    workgroupBarrier();${flushes}
  }
  if (t == 0u) { St[0] = 0.0; }
  workgroupBarrier();
  if (overflow) { St[0] = 1.0; }
  let anyOverflow = workgroupUniformLoad(&St[0]);
  if (anyOverflow != 0.0) {
    // plain f32 for the whole tile (inputs beyond the f16 range)
    ${c.mode === 'dense'
    ? `for (var e = t; e < ${bm * bn}u; e += ${threads}u) {
      let row = m0 + e / ${bn}u;
      let col = n0 + e % ${bn}u;
      if (row < M && col < N) { writeDense(row, col, dotRow(row, col, K)); }
    }`
    : `for (var e = t; e < ${bm * 64}u; e += ${threads}u) {
      let row = m0 + e / 64u;
      let unit = n0 / 2u + e % 64u;
      let gateCol = n0 + e % 64u;
      if (row < M && unit < I) { writeSwiGlu(row, unit, gateCol, dotRow(row, gateCol, K), dotRow(row, gateCol + 64u, K)); }
    }`}
    return;
  }
  var vals: array<f32, 8>;
  ${c.mode === 'swiglu' ? 'var gate: array<f32, 8>;' : ''}
  ${c.mode === 'swiglu' ? swiglu : dense}
}
`;
  return c.emulate ? emulated(code) : code;
}
