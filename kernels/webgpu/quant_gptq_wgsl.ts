/**
 * WGSL of QuantMatMul's decode GEMV (T <= 8 rows) for GPTQ v1 int4 weights (`qweight [K/8, N]`:
 * a word holds 8 codes of one column along K, low nibble first) with groups in order
 * (`g_idx[k] = k / g`; act-order g_idx goes to the generic kernel).
 *
 * A workgroup of 256 threads covers C column quads (4 C output columns) x S slices of K. A thread
 * loads one vec4<u32> a step: 8 k values of its 4 columns (C threads read one contiguous
 * 16 C-byte run per k8 row), widens the nibbles of the 4 columns at once by a vector shift and
 * mask, subtracts the group's zero (integers, exact), and accumulates `(q - z) · x` per group for
 * every x row (x values shared by all columns); the group's scale multiplies that sum once. The S
 * slices' partial sums meet in workgroup memory.
 *
 * Slice s takes groups [s G', (s + 1) G') with G' = ceil(groups / S) (later slices may idle).
 *
 * Bindings: 0 x `[T, K/4]` vec4<f32>, 1 qweight `[K/8, N/4]` vec4<u32>, 2 scale `[K/g, N/4]` vec4<f32>,
 * 3 zeros `[K/g, N/8]` u32, 4 bias (when given), 5 y `[T, N]`.
 */
export interface GptqDecodeConfig {
  T: number;
  K: number;
  N: number;
  /** Group size (a multiple of 8). */
  group: number;
  bias: boolean;
  /** Column quads per workgroup (256 / quads K slices). */
  quads: number;
}

/** Whether the gptq decode kernel takes this shape (groups of whole k8 rows, columns in whole zero words). */
export const gptqDecodeFits = (K: number, N: number, group: number): boolean => group % 8 === 0 && K % group === 0 && N % 8 === 0;

export function gptqDecodeWgsl(c: GptqDecodeConfig): string {
  const { T, K, N, group: G, quads: C } = c;
  const S = 256 / C, N4 = N / 4, K4 = K / 4;
  const groups = K / G, groupsPerSlice = Math.ceil(groups / S), rowsPerGroup = G / 8;
  const Ts = [...Array(T).keys()], J = [...Array(8).keys()];
  const comp = (j: number) => ['x', 'y', 'z', 'w'][j % 4];
  const U = rowsPerGroup % 4 === 0 ? 4 : rowsPerGroup % 2 === 0 ? 2 : 1; // k8 rows a step, their loads first
  const body = [
    ...J.map((j) => `let q${j} = vec4<f32>((W >> vec4<u32>(${4 * j}u)) & vec4<u32>(15u)) - z;`),
    ...Ts.flatMap((t) => [
      `let xa${t} = x[${t * K4}u + k8 * 2u];`, `let xb${t} = x[${t * K4}u + k8 * 2u + 1u];`,
      `g${t} += ${J.map((j) => `q${j} * x${j < 4 ? 'a' : 'b'}${t}.${comp(j)}`).join(' + ')};`,
    ]),
  ].join('\n        ');
  return /* wgsl */`
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> sc: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> zeros: array<u32>;
${c.bias ? '@group(0) @binding(4) var<storage, read> bias: array<f32>;' : ''}
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
var<workgroup> red: array<vec4<f32>, ${T * 256}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let slice = li / ${C}u;
  let q = min(wid.x * ${C}u + li % ${C}u, ${N4 - 1}u); // column quad (clamped; stores are guarded)
  ${Ts.map((t) => `var a${t} = vec4<f32>(0.0);`).join(' ')}
  for (var gi = 0u; gi < ${groupsPerSlice}u; gi++) {
    let grp = slice * ${groupsPerSlice}u + gi;
    if (grp >= ${groups}u) { break; }
    let zw = zeros[grp * ${N / 8}u + q / 2u] >> ((q % 2u) * 16u);
    let z = vec4<f32>((vec4<u32>(zw) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u)) + vec4<f32>(1.0);
    ${Ts.map((t) => `var g${t} = vec4<f32>(0.0);`).join(' ')}
    for (var r = 0u; r < ${rowsPerGroup}u; r += ${U}u) {
      ${[...Array(U).keys()].map((u) => `let W${u} = w[(grp * ${rowsPerGroup}u + r + ${u}u) * ${N4}u + q];`).join(' ')}
      ${[...Array(U).keys()].map((u) => `{
        let k8 = grp * ${rowsPerGroup}u + r + ${u}u;
        let W = W${u};
        ${body}
      }`).join('\n      ')}
    }
    let s = sc[grp * ${N4}u + q];
    ${Ts.map((t) => `a${t} += g${t} * s;`).join(' ')}
  }
  ${Ts.map((t) => `red[${t * 256}u + li] = a${t};`).join(' ')}
  workgroupBarrier();
  for (var st = ${S / 2}u; st > 0u; st >>= 1u) {
    if (slice < st) { ${Ts.map((t) => `red[${t * 256}u + li] += red[${t * 256}u + li + st * ${C}u];`).join(' ')} }
    workgroupBarrier();
  }
  let n = (wid.x * ${C}u + li % ${C}u) * 4u;
  if (slice == 0u && n < ${N}u) {
    ${c.bias ? 'let b = vec4<f32>(bias[n], bias[n + 1u], bias[n + 2u], bias[n + 3u]);' : 'let b = vec4<f32>(0.0);'}
    ${Ts.map((t) => `{ let v = red[${t * 256}u + li] + b; y[${t * N}u + n] = v.x; y[${t * N}u + n + 1u] = v.y; y[${t * N}u + n + 2u] = v.z; y[${t * N}u + n + 3u] = v.w; }`).join('\n    ')}
  }
}
`;
}
