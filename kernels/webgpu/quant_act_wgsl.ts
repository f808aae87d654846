/**
 * WGSL of QuantMatMul's activation quantizers (kernels/kernel_names.ts QuantActivation) in one
 * dispatch for all T rows, writing the quantized rows as float32 values (the GEMV then runs on them
 * as it does with activation 'none'). The arithmetic is the composite reference's
 * (kernels/reference/QuantMatMul.ts) in float32: `s = max|span| / 448` (int8: / 127), `v = x / s`
 * (s = 0 taken as 1), v rounded to the grid (ties to even, saturating), times s; NaN / ±Inf in v
 * give NaN. NVFP4: `b = e4m3(max|block| / 6 / g)`, `x -> e2m1(x / (b g)) · b g`.
 * - per token (e4m3_token, int8_token) and static: one workgroup of 256 per row, the max by a tree
 *   in workgroup memory (rowWgsl);
 * - per group (e4m3_group, nvfp4): a thread per vec4 and a segmented tree (groupWgsl).
 *
 * Bindings: 0 x `[T, K]`, 1 y `[T, K]` (as vec4s in the vec4 kernels).
 */
import type { QuantActivation } from '../kernel_names.js';

export interface QuantActConfig {
  activation: Exclude<QuantActivation, 'none'>;
  T: number;
  K: number;
  /** Columns per group (e4m3_group; nvfp4: 16). */
  group: number;
  inputScale: number;
}

/** The two bindings, as f32 or vec4<f32> elements. */
const bindings = (vec: boolean) => (vec
  ? '@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;\n@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;\n'
  : '@group(0) @binding(0) var<storage, read> x: array<f32>;\n@group(0) @binding(1) var<storage, read_write> y: array<f32>;\n');

const COMMON = /* wgsl */`
fn absBits(v: f32) -> u32 { return bitcast<u32>(v) & 0x7fffffffu; }
// max of |a| and |b| where NaN wins (compared as bits: no reliance on max()'s NaN rule)
fn maxAbsNan(m: f32, v: f32) -> f32 {
  let a = absBits(v);
  let b = bitcast<u32>(m);
  return bitcast<f32>(select(select(b, a, a > b), b, b > 0x7f800000u));
}
fn runtimeNan(v: f32) -> f32 { return bitcast<f32>(0x7fc00000u | (bitcast<u32>(v) & 0u)); }
// v rounded to e4m3 (ties to even, saturating at 448); NaN / ±Inf -> NaN
fn roundE4m3(v: f32) -> f32 {
  let u = bitcast<u32>(v);
  let a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) { return runtimeNan(v); }
  var r: f32;
  if (a >= 0x43e00000u) { r = 448.0; }
  else if (a < 0x3c800000u) { r = round(bitcast<f32>(a) * 512.0) / 512.0; } // below 2^-6: quantum 2^-9
  else { r = bitcast<f32>((a + 0x7ffffu + ((a >> 20u) & 1u)) & 0xfff00000u); }
  return bitcast<f32>(bitcast<u32>(r) | (u & 0x80000000u));
}
// v rounded to e2m1 {0, .5, 1, 1.5, 2, 3, 4, 6} (ties to even, saturating); NaN / ±Inf -> NaN
fn roundE2m1(v: f32) -> f32 {
  let u = bitcast<u32>(v);
  let a = bitcast<f32>(u & 0x7fffffffu);
  if ((u & 0x7fffffffu) >= 0x7f800000u) { return runtimeNan(v); }
  let q = select(select(2.0, 1.0, a < 4.0), 0.5, a < 2.0);
  let r = min(round(a / q) * q, 6.0);
  return bitcast<f32>(bitcast<u32>(r) | (u & 0x80000000u));
}
fn safe(s: f32) -> f32 { return select(s, 1.0, s == 0.0); }
`;

/** The quantized value of v = x / d (the grid's rounding; int8: clamp(round(v)), NaN / ±Inf -> NaN). */
const quantized = (c: QuantActConfig) => (c.activation === 'int8_token'
  ? 'clamp(round(v), -127.0, 127.0) + select(0.0, runtimeNan(v), absBits(v) >= 0x7f800000u)'
  : c.activation === 'nvfp4' ? 'roundE2m1(v)' : 'roundE4m3(v)');

/**
 * Per token / static: one workgroup of 256 per row; a thread holds its E = K / 1024 vec4s in
 * registers (loaded at once), the row max meets in a tree, then the thread writes its quantized vec4s.
 * Rows of other lengths: strided loops over the row.
 */
function rowWgsl(c: QuantActConfig): string {
  const scale = c.activation === 'e4m3_static' ? `${c.inputScale}` : `m / ${c.activation === 'int8_token' ? '127.0' : '448.0'}`;
  const E = c.K % 1024 === 0 && c.K / 1024 <= 16 ? c.K / 1024 : 0; // vec4s per thread
  const Es = [...Array(E).keys()];
  const q4 = (e: string) => `{ let xs = ${e}; var o: vec4<f32>; for (var j = 0u; j < 4u; j++) { let v = xs[j] / d; o[j] = (${quantized(c)}) * s; } `;
  const load = E ? `${Es.map((e) => `let v${e} = x4[base4 + ${e * 256}u + li];`).join(' ')}
  ${Es.map((e) => `m = maxAbsNan(maxAbsNan(maxAbsNan(maxAbsNan(m, v${e}.x), v${e}.y), v${e}.z), v${e}.w);`).join(' ')}`
    : `for (var k = li; k < ${c.K}u; k += 256u) { m = maxAbsNan(m, x[base + k]); }`;
  const store = E ? Es.map((e) => `${q4(`v${e}`)}y4[base4 + ${e * 256}u + li] = o; }`).join('\n  ')
    : `for (var k = li; k < ${c.K}u; k += 256u) { let v = x[base + k] / d; y[base + k] = (${quantized(c)}) * s; }`;
  return /* wgsl */`${bindings(E > 0)}${COMMON}
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let base = wid.x * ${c.K}u;
  let base4 = wid.x * ${c.K / 4}u;
  var m = 0.0;
  ${c.activation === 'e4m3_static' && !E ? '' : load}
  ${c.activation === 'e4m3_static' ? '' : /* wgsl */`red[li] = m;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (li < st) { red[li] = maxAbsNan(red[li], red[li + st]); }
    workgroupBarrier();
  }
  m = red[0];`}
  let s = f32(${scale});
  let d = safe(s);
  ${store}
}
`;
}

/**
 * Per group of g columns (e4m3_group, nvfp4) where g / 4 is a power of two up to 256 and K a multiple
 * of g: a thread per vec4 (workgroups of 256 hold whole groups), the group max by a segmented tree in
 * workgroup memory. Other groupings: one invocation per (row, group) over its columns.
 */
function groupWgsl(c: QuantActConfig): string {
  const G = c.group, groups = Math.ceil(c.K / G);
  const nvfp4 = c.activation === 'nvfp4';
  const scale = nvfp4 ? `roundE4m3(m / 6.0 / ${c.inputScale}) * ${c.inputScale}` : 'm / 448.0';
  const seg = G / 4;
  if (c.K % G === 0 && G % 4 === 0 && seg <= 256 && (seg & (seg - 1)) === 0) {
    return /* wgsl */`${bindings(true)}${COMMON}
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = wid.x * 256u + li; // vec4 index in [T, K / 4]
  let ok = i < ${(c.T * c.K) / 4}u;
  let xs = select(vec4<f32>(0.0), x4[min(i, ${(c.T * c.K) / 4 - 1}u)], ok);
  red[li] = maxAbsNan(maxAbsNan(maxAbsNan(maxAbsNan(0.0, xs.x), xs.y), xs.z), xs.w);
  workgroupBarrier();
  for (var st = 1u; st < ${seg}u; st <<= 1u) {
    if ((li & (2u * st - 1u)) == 0u) { red[li] = maxAbsNan(red[li], red[li + st]); }
    workgroupBarrier();
  }
  let m = red[li & ~${seg - 1}u];
  let s = ${scale};
  let d = safe(s);
  var o: vec4<f32>;
  for (var j = 0u; j < 4u; j++) { let v = xs[j] / d; o[j] = (${quantized(c)}) * s; }
  if (ok) { y4[i] = o; }
}
`;
  }
  return /* wgsl */`${bindings(false)}${COMMON}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= ${c.T * groups}u) { return; }
  let t = i / ${groups}u;
  let k0 = t * ${c.K}u + (i % ${groups}u) * ${G}u;
  let k1 = min(k0 + ${G}u, (t + 1u) * ${c.K}u);
  var m = 0.0;
  for (var k = k0; k < k1; k++) { m = maxAbsNan(m, x[k]); }
  let s = ${scale};
  let d = safe(s);
  for (var k = k0; k < k1; k++) { let v = x[k] / d; y[k] = (${quantized(c)}) * s; }
}
`;
}

/** Whether the group kernel runs a thread per vec4 (else one invocation per group). */
const vecGroups = (c: QuantActConfig): boolean => c.K % c.group === 0 && c.group % 4 === 0 && c.group / 4 <= 256 && ((c.group / 4) & (c.group / 4 - 1)) === 0;

export function quantActWgsl(c: QuantActConfig): string {
  return c.activation === 'e4m3_group' || c.activation === 'nvfp4' ? groupWgsl(c) : rowWgsl(c);
}

/** The dispatch grid of a config. */
export function quantActGrid(c: QuantActConfig): [number, number, number] {
  if (c.activation !== 'e4m3_group' && c.activation !== 'nvfp4') return [c.T, 1, 1];
  return vecGroups(c) ? [Math.ceil((c.T * c.K) / 1024), 1, 1] : [Math.ceil((c.T * Math.ceil(c.K / c.group)) / 64), 1, 1];
}
