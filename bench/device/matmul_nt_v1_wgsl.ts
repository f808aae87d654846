/**
 * The f32 tile of sessions 4-5 (kept for bench/device/dense_sweep.ts as the baseline every new tile is checked and timed against):
 * `y = x [M, K] · w [N, K]ᵀ` with both operands K-contiguous (Hugging Face weight layout).
 *
 * Workgroup tile 128 x 128, K steps of `bk` (8 or 16), 256 threads, each thread 8 x 8 outputs held as 16 vec4
 * (rows ty*4.. and 64+ty*4.., columns tx*4.. and 64+tx*4..: the split halves keep shared reads
 * conflict-free). Each thread loads bk / 8 vec4 of the x tile and of the w tile per step (the
 * next step's loads are issued before this step's FMAs: register prefetch) and stores them
 * transposed into shared memory, k-major, so the inner loop reads 4 vec4 per 64 FMAs.
 *
 * Epilogue: `dense` adds bias and residual; `swiglu` pairs tile column c (gate) with c + 64 (up)
 * of the blocked gate/up packing (kernel_names.ts SwiGluMlp) and writes silu(g) * u to `[M, I]`.
 * `vec4`: K % 4 == 0 (vec4 loads); otherwise scalar loads with bounds checks.
 *
 * Bindings: 0 x, 1 w, 2 y, 3 dims (M, N, K, I), 4 bias, then residual (when present).
 */
export interface MatMulConfigV1 {
  mode: 'dense' | 'swiglu';
  /** K depth of a shared tile: 8 or 16 (each thread loads bk / 8 vec4 of x and of w per step). */
  bk: number;
  bias: boolean;
  residual: boolean;
  vec4: boolean;
}



export function matmulNtWgslV1(c: MatMulConfigV1): string {
  const I8 = [...Array(8).keys()];
  const tpr = c.bk / 4; // threads per tile row in the loads: a row's bk floats as bk / 4 vec4
  const L = [...Array(c.bk / 8).keys()]; // rows are loaded in passes of 256 / tpr = 64 (bk 16) or 128 (bk 8)
  const arr = c.vec4 ? 'array<vec4<f32>>' : 'array<f32>';
  const load = (buf: string, rowsVar: string) => c.vec4
    ? `if (row < ${rowsVar} && k < K) { return ${buf}[(row * K + k) / 4u]; } return vec4<f32>(0.0);`
    : `var v = vec4<f32>(0.0);
  if (row < ${rowsVar}) { for (var c = 0u; c < 4u; c++) { if (k + c < K) { v[c] = ${buf}[row * K + k + c]; } } }
  return v;`;
  const fma = I8.map((i) => `acc[${2 * i}] += ${i < 4 ? `a0[${i}]` : `a1[${i - 4}]`} * b0; acc[${2 * i + 1}] += ${i < 4 ? `a0[${i}]` : `a1[${i - 4}]`} * b1;`).join('\n        ');
  const dense = `
  for (var i = 0u; i < 8u; i++) {
    var row = m0 + ty * 4u + i;
    if (i >= 4u) { row = m0 + 64u + ty * 4u + i - 4u; }
    if (row >= M) { continue; }
    for (var j = 0u; j < 2u; j++) {
      let v = acc[2u * i + j];
      for (var c = 0u; c < 4u; c++) {
        let col = n0 + j * 64u + tx * 4u + c;
        if (col < N) {
          var o = v[c]${c.bias ? ' + bias[col]' : ''};
          ${c.residual ? 'o = residual[row * N + col] + o;' : ''}
          y[row * N + col] = o;
        }
      }
    }
  }`;
  const swiglu = `
  let I = dims[3];
  for (var i = 0u; i < 8u; i++) {
    var row = m0 + ty * 4u + i;
    if (i >= 4u) { row = m0 + 64u + ty * 4u + i - 4u; }
    if (row >= M) { continue; }
    let g4 = acc[2u * i];
    let u4 = acc[2u * i + 1u];
    for (var c = 0u; c < 4u; c++) {
      let n = (n0 / 2u) + tx * 4u + c;
      if (n < I) {
        let g = g4[c]${c.bias ? ' + bias[n0 + tx * 4u + c]' : ''};
        let u = u4[c]${c.bias ? ' + bias[n0 + 64u + tx * 4u + c]' : ''};
        y[row * I + n] = g / (1.0 + exp(-g)) * u;
      }
    }
  }`;
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: ${arr};
@group(0) @binding(1) var<storage, read> w: ${arr};
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dims: array<u32>;
${c.bias ? '@group(0) @binding(4) var<storage, read> bias: array<f32>;' : ''}
${c.residual ? `@group(0) @binding(${c.bias ? 5 : 4}) var<storage, read> residual: array<f32>;` : ''}

const BK: u32 = ${c.bk}u;
var<workgroup> As: array<vec4<f32>, ${c.bk * 32}>;
var<workgroup> Bs: array<vec4<f32>, ${c.bk * 32}>;

fn loadX(row: u32, k: u32, M: u32, K: u32) -> vec4<f32> {
  ${load('x', 'M')}
}
fn loadW(row: u32, k: u32, N: u32, K: u32) -> vec4<f32> {
  ${load('w', 'N')}
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let M = dims[0];
  let N = dims[1];
  let K = dims[2];
  let m0 = wid.y * 128u;
  let n0 = wid.x * 128u;
  let tx = t % 16u;
  let ty = t / 16u;
  let lr = t / ${tpr}u;
  let lk = (t % ${tpr}u) * 4u;
  var acc: array<vec4<f32>, 16>;
  ${L.map((l) => `var ra${l} = loadX(m0 + lr + ${64 * l}u, lk, M, K);\n  var rb${l} = loadW(n0 + lr + ${64 * l}u, lk, N, K);`).join('\n  ')}
  for (var k0 = 0u; k0 < K; k0 += BK) {
    for (var c = 0u; c < 4u; c++) {
      ${L.map((l) => `As[(lk + c) * 32u + (lr + ${64 * l}u) / 4u][lr % 4u] = ra${l}[c];\n      Bs[(lk + c) * 32u + (lr + ${64 * l}u) / 4u][lr % 4u] = rb${l}[c];`).join('\n      ')}
    }
    workgroupBarrier();
    if (k0 + BK < K) {
      ${L.map((l) => `ra${l} = loadX(m0 + lr + ${64 * l}u, k0 + BK + lk, M, K);\n      rb${l} = loadW(n0 + lr + ${64 * l}u, k0 + BK + lk, N, K);`).join('\n      ')}
    }
    for (var kk = 0u; kk < BK; kk++) {
      let a0 = As[kk * 32u + ty];
      let a1 = As[kk * 32u + 16u + ty];
      let b0 = Bs[kk * 32u + tx];
      let b1 = Bs[kk * 32u + 16u + tx];
      ${fma}
    }
    workgroupBarrier();
  }
  ${c.mode === 'swiglu' ? swiglu : dense}
}
`;
}
