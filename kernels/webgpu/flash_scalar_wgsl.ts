/**
 * WGSL of FlashAttentionRaggedPaged for head dims that are not a multiple of 4 (the tiled
 * kernels read q, K and V as vec4). Correct for every mask, page size and GQA ratio, not tuned:
 * one thread per (query row, query head) walks that row's visible keys with an online softmax,
 * its output row in private memory. No released model has such a head dim; small test and toy
 * models do, and they get the same answers as on every other backend.
 *
 * Bindings and `meta` as in flash_common_wgsl.ts (tiles of one query row: buildMeta(a, 1)), but
 * q / out / pools as scalar arrays: q, out `[T, NH, HD]`; pools `[numPages, NKV, PS, HD]`.
 */
import { M_INIT, maskWgsl, queryRowOfTile } from './flash_common_wgsl.js';

/** Threads per workgroup of the scalar kernel. */
export const SCALAR_WG = 64;

export function flashScalarWgsl(headDim: number, nHeads: number, nKv: number): string {
  return /* wgsl */ `
const HD: u32 = ${headDim}u;
const NH: u32 = ${nHeads}u;
const G: u32 = ${nHeads / nKv}u;
const NKV: u32 = ${nKv}u;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> kp: array<f32>;
@group(0) @binding(3) var<storage, read> vp: array<f32>;
@group(0) @binding(4) var<storage, read> mt: array<i32>;
${maskWgsl()}
/** Offset (in floats) of key position j of batch entry b, KV head h. */
fn kvAddr(b: i32, j: i32, h: u32) -> u32 {
  let ps = mt[12];
  let page = u32(mt[u32(mt[5] + b * mt[1] + j / ps)]);
  return ((page * NKV + h) * u32(ps) + u32(j % ps)) * HD;
}

@compute @workgroup_size(${SCALAR_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let item = gid.x + gid.y * ${SCALAR_WG}u * 65535u;
  let tile = item / NH;
  let hq = item % NH;
${queryRowOfTile()}
  let h = hq / G;
  let qBase = (t * NH + hq) * HD;
  var acc: array<f32, HD>;
  var m = ${M_INIT};
  var l = 0.0;
  for (var j = range.x; j < range.y; j++) {
    if (!visible(i, j)) { continue; }
    let base = kvAddr(b, j, h);
    var s = 0.0;
    for (var d = 0u; d < HD; d++) { s += q[qBase + d] * kp[base + d]; }
    s *= qs;
    let mn = max(m, s);
    let a = exp2(m - mn);
    let p = exp2(s - mn);
    l = l * a + p;
    for (var d = 0u; d < HD; d++) { acc[d] = acc[d] * a + p * vp[base + d]; }
    m = mn;
  }
  let inv = select(0.0, 1.0 / l, l != 0.0);
  for (var d = 0u; d < HD; d++) { o[qBase + d] = acc[d] * inv; }
}
`;
}
