/**
 * WGSL of the decode GEMV behind DenseMatMul and SwiGluMlp's gate/up step when few rows (M <= 8)
 * come in: every weight is read once per step for all M rows.
 *
 * Weights `[rows, K]` (Hugging Face `[out, in]`), so an output's weights are one contiguous row.
 * A workgroup of 256 threads serves R outputs (R = 4 dense, 2 swiglu units = 4 weight rows); all
 * 256 threads stride K in vec4 (4 KiB contiguous per row and step), each thread holding the R rows'
 * weights and reusing each loaded x vec4 for all of them: per step R weight loads (DRAM) against
 * M x loads (L1/L2), so at M = 8 the x traffic is 2x the weights', not 8x as with one row a thread
 * (measured: the first version, one row per 64 lanes, ran batch 8 25% slower than batch 1).
 * A shared-memory tree then sums the 256 partials of the R * M (x2 for swiglu) dots.
 * Epilogue: `dense` adds bias and residual; `swiglu` computes gate and up rows of the same unit
 * (blocked packing, kernel_names.ts SwiGluMlp) and writes silu(g) * u.
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

/** Outputs per workgroup. */
export const gemvRows = (mode: 'dense' | 'swiglu'): number => (mode === 'swiglu' ? 2 : 4);
export const GEMV_MAX_M = 8;

export function gemvWgsl(c: GemvConfig): string {
  const R = gemvRows(c.mode);
  const Ms = [...Array(c.m).keys()];
  const Rs = [...Array(R).keys()];
  const P = c.mode === 'swiglu' ? [0, 1] : [0];
  // slot (p, r, m): dot of weight row (r, part p) with x row m
  const slots = P.flatMap((p) => Rs.flatMap((r) => Ms.map((m) => ({ p, r, m, name: `a${p}_${r}_${m}`, i: (p * R + r) * c.m + m }))));
  const rowExpr = (r: number, p: number) => (c.mode === 'swiglu'
    ? `((n0 + ${r}u) / 64u * 128u + (n0 + ${r}u) % 64u${p ? ' + 64u' : ''})` : `(n0 + ${r}u)`);
  const loads = (u: number) => [
    ...Rs.flatMap((r) => P.map((p) => `let w${u}_${p}_${r} = select(vec4<f32>(0.0), w[${rowExpr(r, p)} * K4 + k${u}], ok${r});`)),
    ...Ms.map((m) => `let x${u}_${m} = x[${m}u * K4 + k${u}];`),
  ].join('\n      ');
  const fmas = (u: number) => slots.map((s) => `${s.name} += dot(w${u}_${s.p}_${s.r}, x${u}_${s.m});`).join('\n      ');
  const val = (p: number, r: string) => `red[((${p}u * R + ${r}) * M + m) * 256u]`;
  const biasAt = (p: number) => (c.mode === 'swiglu' ? `bias[n / 64u * 128u + n % 64u${p ? ' + 64u' : ''}]` : 'bias[n]');
  const epilogue = c.mode === 'swiglu'
    ? `let g = ${val(0, 'r')}${c.bias ? ` + ${biasAt(0)}` : ''}; let u = ${val(1, 'r')}${c.bias ? ` + ${biasAt(1)}` : ''}; v = g / (1.0 + exp(-g)) * u;`
    : `v = ${val(0, 'r')}${c.bias ? ` + ${biasAt(0)}` : ''}${c.residual ? ' + residual[m * N + n]' : ''};`;
  return /* wgsl */ `
const M: u32 = ${c.m}u;
const R: u32 = ${R}u;

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
  let n0 = (wid.x + wid.y * 65535u) * R;
  ${Rs.map((r) => `let ok${r} = n0 + ${r}u < N;`).join(' ')}
  ${slots.map((s) => `var ${s.name} = 0.0;`).join(' ')}
  var k0 = li;
  loop {
    if (k0 + 256u >= K4) { break; }
    let k1 = k0 + 256u;
    ${loads(0)}
    ${loads(1)}
    ${fmas(0)}
    ${fmas(1)}
    k0 += 512u;
  }
  if (k0 < K4) {
    ${loads(0)}
    ${fmas(0)}
  }
  ${slots.map((s) => `red[${s.i}u * 256u + li] = ${s.name};`).join('\n  ')}
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (li < s) {
      ${slots.map((s) => `red[${s.i}u * 256u + li] += red[${s.i}u * 256u + li + s];`).join('\n      ')}
    }
    workgroupBarrier();
  }
  if (li < R * M) {
    let r = li / M;
    let m = li % M;
    let n = n0 + r;
    if (n < N) {
      var v = 0.0;
      ${epilogue}
      y[m * N + n] = v;
    }
  }
}
`;
}
