/**
 * WGSL of the decode GEMV behind DenseMatMul and SwiGluMlp's gate/up step when few rows (M <= 8)
 * come in: every weight is read once per step for all M rows.
 *
 * Weights `[rows, K]` (Hugging Face `[out, in]`), so an output's weights are one contiguous row.
 * A workgroup of 256 threads serves ROWS = 4 outputs with 64 lanes each; lane l reads vec4
 * columns l, l + 64, ... of its weight row (1 KiB contiguous per warp pair and step, four loads
 * issued before use) and of the M input rows (which stay in L1/L2), then a shared-memory tree sums
 * the lanes. Epilogue: `dense` adds bias and residual; `swiglu` computes gate and up rows of the
 * same unit (blocked packing, kernel_names.ts SwiGluMlp) and writes silu(g) * u.
 *
 * Bindings: 0 x `[M, K/4]` vec4, 1 w `[rows, K/4]` vec4, 2 y `[M, N]`, 3 dims (N, K/4),
 * 4 bias (when `bias`), then residual (when `residual`).
 */
export interface GemvConfig {
  m: number;
  mode: 'dense' | 'swiglu';
  bias: boolean;
  residual: boolean;
}

export const GEMV_ROWS = 4;
export const GEMV_MAX_M = 8;

export function gemvWgsl(c: GemvConfig): string {
  const M = [...Array(c.m).keys()];
  const P = c.mode === 'swiglu' ? [0, 1] : [0];
  const slots = P.flatMap((p) => M.map((m) => ({ p, m, name: `a${p}_${m}` })));
  const step = (w: string, k: string) => slots.map((s) => `${s.name} += dot(${w}${s.p}, x[${s.m}u * K4 + ${k}]);`).join('\n        ');
  const loadW = (u: number, k: string) => P.map((p) => `let w${u}_${p} = w[row${p} + ${k}];`).join(' ');
  const rowOf = c.mode === 'swiglu'
    ? 'let row0 = ((n / 64u) * 128u + n % 64u) * K4; let row1 = row0 + 64u * K4;'
    : 'let row0 = n * K4;';
  const biasIdx = c.mode === 'swiglu' ? ['(n / 64u) * 128u + n % 64u', '(n / 64u) * 128u + n % 64u + 64u'] : ['n'];
  const val = (p: number, m: number) => `red[${p * c.m + m}u * 256u + base]${c.bias ? ` + bias[${biasIdx[p]}]` : ''}`;
  const out = c.mode === 'swiglu'
    ? 'let g = VAL0; let u = VAL1; v = g / (1.0 + exp(-g)) * u;'
    : `v = VAL0${c.residual ? ' + residual[m * N + n]' : ''};`;
  return /* wgsl */ `
const M: u32 = ${c.m}u;
const LANES: u32 = 64u;
const ROWS: u32 = ${GEMV_ROWS}u;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dims: array<u32>;
${c.bias ? '@group(0) @binding(4) var<storage, read> bias: array<f32>;' : ''}
${c.residual ? `@group(0) @binding(${c.bias ? 5 : 4}) var<storage, read> residual: array<f32>;` : ''}

var<workgroup> red: array<f32, ${slots.length * 256}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let N = dims[0];
  let K4 = dims[1];
  let r = li / LANES;
  let lane = li % LANES;
  let n = (wid.x + wid.y * 65535u) * ROWS + r;
  ${slots.map((s) => `var ${s.name} = 0.0;`).join(' ')}
  if (n < N) {
    ${rowOf}
    var k = lane;
    loop {
      if (k + 3u * LANES >= K4) { break; }
      ${[0, 1, 2, 3].map((u) => loadW(u, `k + ${u}u * LANES`)).join('\n      ')}
      ${[0, 1, 2, 3].map((u) => step(`w${u}_`, `k + ${u}u * LANES`)).join('\n      ')}
      k += 4u * LANES;
    }
    loop {
      if (k >= K4) { break; }
      ${loadW(0, 'k')}
      ${step('w0_', 'k')}
      k += LANES;
    }
  }
  ${slots.map((s, i) => `red[${i}u * 256u + li] = ${s.name};`).join('\n  ')}
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s = s >> 1u) {
    if (lane < s) {
      ${slots.map((_, i) => `red[${i}u * 256u + li] += red[${i}u * 256u + li + s];`).join('\n      ')}
    }
    workgroupBarrier();
  }
  if (lane < M && n < N) {
    let m = lane;
    let base = r * LANES;
    var v = 0.0;
    ${M.map((m) => `if (m == ${m}u) { ${out.replace('VAL0', val(0, m)).replace('VAL1', P.length > 1 ? val(1, m) : '')} }`).join('\n    ')}
    y[m * N + n] = v;
  }
}
`;
}
