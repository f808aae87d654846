/**
 * WGSL of the row-wise kernels: RmsNorm and ArgMaxRows. One workgroup of 256 threads per row
 * (rows past 65535 go to grid y); each thread strides the row, a shared-memory tree combines.
 * Bindings: 0 x, 1 y (f32 rows / i32 ids), 2 dims (rows, cols, bitcast eps), 3 weight (RmsNorm).
 */
const HEADER = /* wgsl */ `
@group(0) @binding(2) var<storage, read> dims: array<u32>;
fn rowOf(wid: vec3<u32>) -> u32 { return wid.x + wid.y * 65535u; }
`;

export function rmsNormWgsl(): string {
  return /* wgsl */ `${HEADER}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = rowOf(wid);
  let H = dims[1];
  let eps = bitcast<f32>(dims[2]);
  let inRange = row < dims[0];
  var s = 0.0;
  if (inRange) { for (var i = li; i < H; i += 256u) { let v = x[row * H + i]; s += v * v; } }
  red[li] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  let scale = inverseSqrt(red[0] / f32(H) + eps);
  if (inRange) { for (var i = li; i < H; i += 256u) { y[row * H + i] = x[row * H + i] * scale * weight[i]; } }
}
`;
}

export function argMaxRowsWgsl(): string {
  return /* wgsl */ `${HEADER}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<i32>;
var<workgroup> bestV: array<f32, 256>;
var<workgroup> bestI: array<u32, 256>;
const NONE: u32 = 0xffffffffu;

/** (v, i) beats (bv, bi): larger, or equal and earlier; NaN never beats anything. */
fn beats(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = rowOf(wid);
  let V = dims[1];
  var bv = 0.0;
  var bi = NONE;
  if (row < dims[0]) {
    for (var i = li; i < V; i += 256u) {
      let v = x[row * V + i]; // NaN (exponent all ones, mantissa != 0) is skipped by bits: fast-math may fold v != v
      if ((bitcast<u32>(v) & 0x7fffffffu) <= 0x7f800000u && beats(v, i, bv, bi)) { bv = v; bi = i; }
    }
  }
  bestV[li] = bv;
  bestI[li] = bi;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (li < k && beats(bestV[li + k], bestI[li + k], bestV[li], bestI[li])) {
      bestV[li] = bestV[li + k];
      bestI[li] = bestI[li + k];
    }
    workgroupBarrier();
  }
  if (li == 0u && row < dims[0]) { y[row] = select(i32(bestI[0]), 0, bestI[0] == NONE); }
}
`;
}
