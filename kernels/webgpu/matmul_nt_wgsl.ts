/**
 * WGSL of the tiled f32 matmul behind DenseMatMul and SwiGluMlp (prefill and any M > 8):
 * `y = x [M, K] · w [N, K]ᵀ` with both operands K-contiguous (Hugging Face weight layout).
 *
 * Workgroup tile `bm x bn`, K steps of `bk`, each thread `tm x tn` outputs in (tm/4)·(tn/4) vec4
 * accumulators, all named scalars of the generated code (no arrays: an array indexed by a loop
 * variable anywhere may be placed in local memory). A thread's rows are ty*4.. + h·(bm / (tm/4)),
 * its columns tx*4.. + j·(bn / (tn/4)): the split groups keep the shared reads conflict-free.
 * Each step every thread loads its share of the x and w tiles as vec4 (rows of bk floats, bk / 4
 * threads a row: whole 32-byte sectors), the next step's loads issued before this step's FMAs
 * (register prefetch), and stores them transposed into shared memory, k-major (row stride bm/4 +
 * pad vec4: pad 1 spreads the transposing stores over the banks). `double`: two shared buffers,
 * one barrier a step instead of two. The inner loop is unrolled: tm/4 + tn/4 vec4 shared reads
 * per tm·tn FMAs.
 *
 * Epilogue: `dense` adds bias and residual; `swiglu` (bn 128, tn 8 only) pairs tile column c
 * (gate) with c + 64 (up) of the blocked gate/up packing (kernel_names.ts SwiGluMlp) and writes
 * silu(g) * u to `[M, I]`. `vec4`: K % 4 == 0 (vec4 loads); otherwise scalar loads with bounds checks.
 *
 * Bindings: 0 x, 1 w, 2 y, 3 dims (M, N, K, I), 4 bias, then residual (when present).
 *
 * Lost (session 4-5 kernel, bench/device/matmul_nt_v1_wgsl.ts): 128 x 128, bk 8, one shared buffer
 * and two barriers a step, accumulators in an `array<vec4<f32>, 16>` the epilogue indexed by loop
 * variables; 27.8 TFLOP/s on one layer's products on the H200.
 */
export interface F32Tile {
  /** Workgroup tile rows (M) and columns (N). */
  bm: number;
  bn: number;
  /** Outputs per thread along M and N (4 or 8). */
  tm: number;
  tn: number;
  /** K depth of a shared tile (4 .. 32, a multiple of 4). */
  bk: number;
  /** Two shared buffers (one barrier a step). */
  double: boolean;
  /** vec4 of padding per shared row (0 or 1). */
  pad: number;
  /**
   * Unroll the bk steps of the inner loop in the WGSL (default: a loop, which the GPU compilers
   * unroll themselves; unrolled source takes lavapipe's LLVM 10-50 s a shader to compile).
   */
  unroll?: boolean;
}

export interface MatMulConfig {
  mode: 'dense' | 'swiglu';
  bias: boolean;
  residual: boolean;
  vec4: boolean;
  tile: F32Tile;
}

/** Threads of a tile's workgroup; throws naming the field when the tile cannot be built. */
export function tileThreads(t: F32Tile, mode: 'dense' | 'swiglu' = 'dense'): number {
  const bad = (what: string) => { throw new Error(`[matmulNtWgsl] tile ${JSON.stringify(t)}: ${what}`); };
  if (t.tm !== 4 && t.tm !== 8) bad(`tm (${t.tm}) must be 4 or 8`);
  if (t.tn !== 4 && t.tn !== 8) bad(`tn (${t.tn}) must be 4 or 8`);
  if (t.bk % 4 !== 0 || t.bk < 4 || t.bk > 32) bad(`bk (${t.bk}) must be a multiple of 4 in 4..32`);
  if (t.bm % (t.tm * 4) !== 0 || t.bn % (t.tn * 4) !== 0) bad('bm must be a multiple of 4·tm and bn of 4·tn');
  if (t.pad !== 0 && t.pad !== 1) bad(`pad (${t.pad}) must be 0 or 1`);
  if (mode === 'swiglu' && (t.bn !== 128 || t.tn !== 8)) bad('swiglu needs bn 128 and tn 8 (gate and up columns in one thread)');
  const threads = (t.bm / t.tm) * (t.bn / t.tn);
  if (threads > 256 || threads < 32) bad(`threads (${threads}) must be in 32..256`);
  const tpr = t.bk / 4;
  if (threads % tpr !== 0 || (t.bm * tpr) % threads !== 0 || (t.bn * tpr) % threads !== 0) bad('bm·bk/4 and bn·bk/4 must be multiples of the threads');
  return threads;
}

/** Shared memory of a tile, bytes. */
export function tileSharedBytes(t: F32Tile): number {
  return (t.double ? 2 : 1) * t.bk * (t.bm / 4 + t.pad + t.bn / 4 + t.pad) * 16;
}

export function matmulNtWgsl(c: MatMulConfig): string {
  const t = c.tile;
  const threads = tileThreads(t, c.mode);
  const TX = t.bn / t.tn, TY = t.bm / t.tm;
  const HM = t.tm / 4, HN = t.tn / 4; // vec4 groups a thread holds along M and N
  const SA = t.bm / 4 + t.pad, SB = t.bn / 4 + t.pad; // shared row strides, vec4
  const tpr = t.bk / 4; // threads per tile row in the loads
  const rowsPerPass = threads / tpr;
  const PA = t.bm / rowsPerPass, PB = t.bn / rowsPerPass; // load passes for the x and w tiles
  const bufA = t.bk * SA, bufB = t.bk * SB;
  const r = (n: number) => [...Array(n).keys()];
  const arr = c.vec4 ? 'array<vec4<f32>>' : 'array<f32>';
  const load = (buf: string, rowsVar: string) => c.vec4
    ? `if (row < ${rowsVar} && k < K) { return ${buf}[(row * K + k) / 4u]; } return vec4<f32>(0.0);`
    : `var v = vec4<f32>(0.0);
  if (row < ${rowsVar}) { for (var c = 0u; c < 4u; c++) { if (k + c < K) { v[c] = ${buf}[row * K + k + c]; } } }
  return v;`;
  const loads = (kExpr: string) => [
    ...r(PA).map((p) => `ra${p} = loadX(m0 + lr + ${p * rowsPerPass}u, ${kExpr}, M, K);`),
    ...r(PB).map((p) => `rb${p} = loadW(n0 + lr + ${p * rowsPerPass}u, ${kExpr}, N, K);`),
  ].join('\n    ');
  const stores = (off: string) => r(4).map((cc) => [
    ...r(PA).map((p) => `As[${off}${(cc)}u * ${SA}u + lkS * ${SA}u + (lr + ${p * rowsPerPass}u) / 4u][lr % 4u] = ra${p}[${cc}];`),
    ...r(PB).map((p) => `Bs[${off}${(cc)}u * ${SB}u + lkS * ${SB}u + (lr + ${p * rowsPerPass}u) / 4u][lr % 4u] = rb${p}[${cc}];`),
  ].join('\n    ')).join('\n    ');
  const step = (off: string, kk: string) => [
    ...r(HM).map((h) => `let a${h} = As[${off}${kk} * ${SA}u + ${h * TY}u + ty];`),
    ...r(HN).map((j) => `let b${j} = Bs[${off.replace(/\bo \+ $/, 'ob + ')}${kk} * ${SB}u + ${j * TX}u + tx];`),
    ...r(HM).flatMap((h) => r(4).flatMap((i) => r(HN).map((j) => `acc${h}_${i}_${j} += a${h}[${i}] * b${j};`))),
  ].join(' ');
  const fmas = (off: string) => t.unroll
    ? r(t.bk).map((kk) => `{ ${step(off, `${kk}u`)} }`).join('\n      ')
    : `for (var kk = 0u; kk < BK; kk++) { ${step(off, 'kk')} }`;
  const accDecl = r(HM).flatMap((h) => r(4).flatMap((i) => r(HN).map((j) => `var acc${h}_${i}_${j} = vec4<f32>(0.0);`))).join(' ');
  const rowOf = (h: number, i: number) => `m0 + ${h * 4 * TY + i}u + ty * 4u`;
  const dense = r(HM).flatMap((h) => r(4).map((i) => `{
    let row = ${rowOf(h, i)};
    if (row < M) {
${r(HN).map((j) => `      store4(row, n0 + ${j * 4 * TX}u + tx * 4u, acc${h}_${i}_${j}, M, N);`).join('\n')}
    }
  }`)).join('\n  ');
  const storeDense = `
fn store4(row: u32, col: u32, v: vec4<f32>, M: u32, N: u32) {
  for (var c = 0u; c < 4u; c++) {
    if (col + c < N) {
      var o = v[c]${c.bias ? ' + bias[col + c]' : ''};
      ${c.residual ? 'o = residual[row * N + col + c] + o;' : ''}
      y[row * N + col + c] = o;
    }
  }
}`;
  const storeSwiglu = `
fn storeGlu(row: u32, n0: u32, tx: u32, g4: vec4<f32>, u4: vec4<f32>, I: u32) {
  for (var c = 0u; c < 4u; c++) {
    let n = (n0 / 2u) + tx * 4u + c;
    if (n < I) {
      let g = g4[c]${c.bias ? ' + bias[n0 + tx * 4u + c]' : ''};
      let u = u4[c]${c.bias ? ' + bias[n0 + 64u + tx * 4u + c]' : ''};
      y[row * I + n] = g / (1.0 + exp(-g)) * u;
    }
  }
}`;
  const swiglu = `let I = dims[3];
  ` + r(HM).flatMap((h) => r(4).map((i) => `{ let row = ${rowOf(h, i)}; if (row < M) { storeGlu(row, n0, tx, acc${h}_${i}_0, acc${h}_${i}_1, I); } }`)).join('\n  ');
  const steps = t.double
    ? `${stores('')}
  workgroupBarrier();
  var cur = 0u;
  for (var k0 = 0u; k0 < K; k0 += BK) {
    let more = k0 + BK < K;
    if (more) {
    ${loads('k0 + BK + lk')}
    }
    let o = cur * ${bufA}u;
    let ob = cur * ${bufB}u;
    ${fmas('o + ')}
    if (more) {
    ${stores('(1u - cur) * ' + bufA + 'u + ').replace(/Bs\[\(1u - cur\) \* \d+u \+ /g, `Bs[(1u - cur) * ${bufB}u + `)}
    }
    workgroupBarrier();
    cur = 1u - cur;
  }`
    : `for (var k0 = 0u; k0 < K; k0 += BK) {
    ${stores('')}
    workgroupBarrier();
    if (k0 + BK < K) {
    ${loads('k0 + BK + lk')}
    }
    ${fmas('')}
    workgroupBarrier();
  }`;
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: ${arr};
@group(0) @binding(1) var<storage, read> w: ${arr};
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dims: array<u32>;
${c.bias ? '@group(0) @binding(4) var<storage, read> bias: array<f32>;' : ''}
${c.residual ? `@group(0) @binding(${c.bias ? 5 : 4}) var<storage, read> residual: array<f32>;` : ''}

const BK: u32 = ${t.bk}u;
var<workgroup> As: array<vec4<f32>, ${(t.double ? 2 : 1) * bufA}>;
var<workgroup> Bs: array<vec4<f32>, ${(t.double ? 2 : 1) * bufB}>;

fn loadX(row: u32, k: u32, M: u32, K: u32) -> vec4<f32> {
  ${load('x', 'M')}
}
fn loadW(row: u32, k: u32, N: u32, K: u32) -> vec4<f32> {
  ${load('w', 'N')}
}
${c.mode === 'swiglu' ? storeSwiglu : storeDense}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let M = dims[0];
  let N = dims[1];
  let K = dims[2];
  let m0 = wid.y * ${t.bm}u;
  let n0 = wid.x * ${t.bn}u;
  let tx = t % ${TX}u;
  let ty = t / ${TX}u;
  let lr = t / ${tpr}u;
  let lk = (t % ${tpr}u) * 4u;
  let lkS = lk;
  ${accDecl}
  ${r(PA).map((p) => `var ra${p}: vec4<f32>;`).join(' ')} ${r(PB).map((p) => `var rb${p}: vec4<f32>;`).join(' ')}
  {
    ${loads('lk')}
  }
  ${steps}
  ${c.mode === 'swiglu' ? swiglu : dense}
}
`;
}
