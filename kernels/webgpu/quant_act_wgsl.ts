/**
 * WGSL of QuantMatMul's activation quantizers (kernels/kernel_names.ts QuantActivation) in one
 * dispatch for all T rows, writing the quantized rows as float32 values (the GEMV then runs on them
 * as it does with activation 'none'). The arithmetic is the composite reference's
 * (kernels/reference/QuantMatMul.ts) in float32: `s = max|span| / 448` (int8: / 127), `v = x / s`
 * (s = 0 taken as 1), v rounded to the grid (ties to even, saturating), times s; NaN / ±Inf in v
 * give NaN. NVFP4: `b = e4m3(max|block| / 6 / g)`, `x -> e2m1(x / (b g)) · b g`.
 * - per token (e4m3_token, int8_token) and static: one workgroup of 256 per row, the max by a tree
 *   in workgroup memory;
 * - per group (e4m3_group, nvfp4): one invocation per (row, group), over the group's columns.
 *
 * Bindings: 0 x `[T, K]`, 1 y `[T, K]`.
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

const COMMON = /* wgsl */`
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

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

/** Per token / static: one workgroup per row. */
function rowWgsl(c: QuantActConfig): string {
  const q = c.activation === 'int8_token'
    ? 'clamp(round(v), -127.0, 127.0) + select(0.0, runtimeNan(v), absBits(v) >= 0x7f800000u)'
    : 'roundE4m3(v)';
  const scale = c.activation === 'e4m3_static' ? `${c.inputScale}` : `m / ${c.activation === 'int8_token' ? '127.0' : '448.0'}`;
  return /* wgsl */`${COMMON}
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let base = wid.x * ${c.K}u;
  var m = 0.0;
  ${c.activation === 'e4m3_static' ? '' : /* wgsl */`
  for (var k = li; k < ${c.K}u; k += 256u) { m = maxAbsNan(m, x[base + k]); }
  red[li] = m;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (li < st) { red[li] = maxAbsNan(red[li], red[li + st]); }
    workgroupBarrier();
  }
  m = red[0];`}
  let s = f32(${scale});
  let d = safe(s);
  for (var k = li; k < ${c.K}u; k += 256u) {
    let v = x[base + k] / d;
    y[base + k] = (${q}) * s;
  }
}
`;
}

/** Per group (e4m3_group, nvfp4): one invocation per (row, group). */
function groupWgsl(c: QuantActConfig): string {
  const G = c.group, groups = Math.ceil(c.K / G);
  const nvfp4 = c.activation === 'nvfp4';
  return /* wgsl */`${COMMON}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= ${c.T * groups}u) { return; }
  let t = i / ${groups}u;
  let k0 = t * ${c.K}u + (i % ${groups}u) * ${G}u;
  let k1 = min(k0 + ${G}u, (t + 1u) * ${c.K}u);
  var m = 0.0;
  for (var k = k0; k < k1; k++) { m = maxAbsNan(m, x[k]); }
  ${nvfp4 ? `let s = roundE4m3(m / 6.0 / ${c.inputScale}) * ${c.inputScale};` : 'let s = m / 448.0;'}
  let d = safe(s);
  for (var k = k0; k < k1; k++) { y[k] = ${nvfp4 ? 'roundE2m1' : 'roundE4m3'}(x[k] / d) * s; }
}
`;
}

export function quantActWgsl(c: QuantActConfig): string {
  return c.activation === 'e4m3_group' || c.activation === 'nvfp4' ? groupWgsl(c) : rowWgsl(c);
}

/** The dispatch grid of a config. */
export function quantActGrid(c: QuantActConfig): [number, number, number] {
  return c.activation === 'e4m3_group' || c.activation === 'nvfp4' ? [Math.ceil((c.T * Math.ceil(c.K / c.group)) / 64), 1, 1] : [c.T, 1, 1];
}
