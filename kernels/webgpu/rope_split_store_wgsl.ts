/**
 * WGSL of RopeSplitStoreRagged.
 *
 * Memory layout:
 * - qkv `[T, (NH + 2 NKV) * HD]` row-major (q heads, k heads, v heads); q out `[T, NH * HD]`.
 * - kPool / vPool `[numPages, NKV, PS, HD]`; token t's slot of KV head h starts at
 *   `tok[t].y + h * PS * HD` (tok[t].y = (page * NKV * PS + slot) * HD, computed on the host
 *   from the page table), its position is tok[t].x. tok[0] is a header: (T, 0).
 * - cos / sin `[maxPositions, ROT / 2]`; qk-norm weights `[2, HD]` (q, then k).
 *
 * Work split: one workgroup of WG threads per (head slot, token), head slots 0..NH-1 are q heads,
 * then NKV k heads, then NKV v heads; thread i handles dims i, i + WG, ... With qk-norm the
 * workgroup first reduces the sum of squares of the head in shared memory.
 */
import type { KVCacheDType } from '../../core/kv_dtype.js';
import type { KvFormat } from './flash_common_wgsl.js';
import { elementsPerWord, kvEncodeWgsl } from './kv_format_wgsl.js';

export interface RopeShaderConfig {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  rotaryDim: number;
  interleaved: boolean;
  pageSize: number;
  /** qk-norm epsilon, < 0 for none. */
  eps: number;
  wg: number;
  /** Cache format (default float32): compact formats pack K/V into u32 words (kv_format_wgsl.ts). */
  kv?: KvFormat;
}

/**
 * The start of both store programs' main: this workgroup's (token, head slot), its position and
 * cache slot, and with qk-norm the RMS scale of the head's row (a shared-memory reduction) in
 * `scaleVar` (1 without norm), then a barrier when `red` is reused after it.
 * Needs `red`, `tok`, `qkv`, NH, NKV, HD, WG, EPS in scope.
 */
function tokenPrologue(norm: boolean, scaleVar: string, barrierAfterNorm = false): string {
  return `  let hs = wid.x;
  let t = wid.y + wid.z * 65535u;
  let T = u32(tok[0].x);
  let valid = t < T;
  let tt = min(t, T - 1u);
  let pos = u32(tok[tt + 1u].x);
  let slotBase = u32(tok[tt + 1u].y);
  let isV = hs >= NH + NKV;
  let inBase = (tt * (NH + 2u * NKV) + hs) * HD;
  var ${scaleVar} = 1.0;
  var wOff = 0u;
  ${norm ? `
  if (hs >= NH) { wOff = HD; }
  var ss = 0.0;
  for (var d = li; d < HD; d += WG) { let x = qkv[inBase + d]; ss += x * x; }
  red[li] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  ${scaleVar} = inverseSqrt(red[0] / f32(HD) + EPS);${barrierAfterNorm ? '\n  workgroupBarrier();' : ''}` : ''}`;
}

export function ropeSplitStoreWgsl(c: RopeShaderConfig): string {
  const dtype = c.kv?.dtype ?? 'float32';
  if (dtype !== 'float32') return packedStoreWgsl(c, dtype);
  const norm = c.eps >= 0;
  const half = c.rotaryDim / 2;
  const f = (x: number) => (Number.isInteger(x) ? `${x}.0` : `${x}`);
  const partner = c.interleaved
    ? `let i = d / 2u; let odd = (d & 1u) == 1u; let pd = select(d + 1u, d - 1u, odd); let sg = select(-1.0, 1.0, odd);`
    : `let hi = d >= HALF; let i = select(d, d - HALF, hi); let pd = select(d + HALF, d - HALF, hi); let sg = select(-1.0, 1.0, hi);`;
  return /* wgsl */ `
const NH: u32 = ${c.nHeads}u;
const NKV: u32 = ${c.nKvHeads}u;
const HD: u32 = ${c.headDim}u;
const ROT: u32 = ${c.rotaryDim}u;
const HALF: u32 = ${half}u;
const PS: u32 = ${c.pageSize}u;
const WG: u32 = ${c.wg}u;
const EPS: f32 = ${f(c.eps)};

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read_write> qOut: array<f32>;
@group(0) @binding(2) var<storage, read_write> kPool: array<f32>;
@group(0) @binding(3) var<storage, read_write> vPool: array<f32>;
@group(0) @binding(4) var<storage, read> cosT: array<f32>;
@group(0) @binding(5) var<storage, read> sinT: array<f32>;
@group(0) @binding(6) var<storage, read> tok: array<vec2<i32>>;
${norm ? '@group(0) @binding(7) var<storage, read> normW: array<f32>;\nvar<workgroup> red: array<f32, WG>;' : ''}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${tokenPrologue(norm, 'scale')}
  if (!valid) { return; }
  for (var d = li; d < HD; d += WG) {
    var x = qkv[inBase + d];
    if (!isV) {
      ${norm ? 'x = x * scale * normW[wOff + d];' : ''}
      if (d < ROT) {
        ${partner}
        var xp = qkv[inBase + pd];
        ${norm ? 'xp = xp * scale * normW[wOff + pd];' : ''}
        let r = pos * HALF + i;
        x = x * cosT[r] + sg * xp * sinT[r];
      }
    }
    if (hs < NH) {
      qOut[(tt * NH + hs) * HD + d] = x;
    } else if (!isV) {
      kPool[slotBase + (hs - NH) * PS * HD + d] = x;
    } else {
      vPool[slotBase + (hs - NH - NKV) * PS * HD + d] = x;
    }
  }
}
`;
}

/**
 * The store into a compact cache: q heads as above; a K or V head's values are computed per
 * dimension (norm, rotation) and packed per u32 word (EPW values; the word index is the element
 * offset / EPW). int8 first reduces max |x| of the head row in shared memory; thread 0 writes the
 * row scale (binding 8 for K, 9 for V: `[pages, NKV, PS]`).
 */
function packedStoreWgsl(c: RopeShaderConfig, dtype: Exclude<KVCacheDType, 'float32'>): string {
  const norm = c.eps >= 0, int8 = dtype === 'int8', epw = elementsPerWord(dtype);
  const f = (x: number) => (Number.isInteger(x) ? `${x}.0` : `${x}`);
  const partner = c.interleaved
    ? `let i = d / 2u; let odd = (d & 1u) == 1u; let pd = select(d + 1u, d - 1u, odd); let sg = select(-1.0, 1.0, odd);`
    : `let hi = d >= HALF; let i = select(d, d - HALF, hi); let pd = select(d + HALF, d - HALF, hi); let sg = select(-1.0, 1.0, hi);`;
  const inv = dtype === 'float8_e4m3' ? `select(${f(1 / c.kv!.kScale)}, ${f(1 / c.kv!.vScale)}, isV)` : '1.0';
  return /* wgsl */ `
const NH: u32 = ${c.nHeads}u;
const NKV: u32 = ${c.nKvHeads}u;
const HD: u32 = ${c.headDim}u;
const ROT: u32 = ${c.rotaryDim}u;
const HALF: u32 = ${c.rotaryDim / 2}u;
const PS: u32 = ${c.pageSize}u;
const WG: u32 = ${c.wg}u;
const EPS: f32 = ${f(c.eps)};
const EPW: u32 = ${epw}u;

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read_write> qOut: array<f32>;
@group(0) @binding(2) var<storage, read_write> kPool: array<u32>;
@group(0) @binding(3) var<storage, read_write> vPool: array<u32>;
@group(0) @binding(4) var<storage, read> cosT: array<f32>;
@group(0) @binding(5) var<storage, read> sinT: array<f32>;
@group(0) @binding(6) var<storage, read> tok: array<vec2<i32>>;
${norm ? '@group(0) @binding(7) var<storage, read> normW: array<f32>;' : ''}
${int8 ? '@group(0) @binding(8) var<storage, read_write> kSc: array<f32>;\n@group(0) @binding(9) var<storage, read_write> vSc: array<f32>;' : ''}
var<workgroup> red: array<f32, WG>;
${kvEncodeWgsl(dtype)}

/** Dimension d of head slot hs of row inBase after qk-norm (nscale: 1 / rms) and RoPE at pos. */
fn value(d: u32, inBase: u32, isV: bool, pos: u32, nscale: f32, wOff: u32) -> f32 {
  var x = qkv[inBase + d];
  if (!isV) {
    ${norm ? 'x = x * nscale * normW[wOff + d];' : ''}
    if (d < ROT) {
      ${partner}
      var xp = qkv[inBase + pd];
      ${norm ? 'xp = xp * nscale * normW[wOff + pd];' : ''}
      let r = pos * HALF + i;
      x = x * cosT[r] + sg * xp * sinT[r];
    }
  }
  return x;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${tokenPrologue(norm, 'nscale', true)}
  ${int8 ? `
  var mx = 0.0;
  for (var d = li; d < HD; d += WG) { mx = max(mx, abs(value(d, inBase, isV, pos, nscale, wOff))); }
  red[li] = mx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let rowScale = red[0] / 127.0;` : ''}
  if (!valid) { return; }
  if (hs < NH) {
    for (var d = li; d < HD; d += WG) { qOut[(tt * NH + hs) * HD + d] = value(d, inBase, isV, pos, nscale, wOff); }
    return;
  }
  let kvh = select(hs - NH, hs - NH - NKV, isV);
  let elem = slotBase + kvh * PS * HD;
  ${int8 ? `let s = select(0.0, 1.0 / rowScale, rowScale > 0.0);
  if (li == 0u) { if (isV) { vSc[elem / HD] = rowScale; } else { kSc[elem / HD] = rowScale; } }` : `let s = ${inv};`}
  for (var w = li; w < HD / EPW; w += WG) {
    let d = w * EPW;
    var x = vec4<f32>(0.0);
    x.x = value(d, inBase, isV, pos, nscale, wOff);
    x.y = value(d + 1u, inBase, isV, pos, nscale, wOff);
    ${epw === 4 ? 'x.z = value(d + 2u, inBase, isV, pos, nscale, wOff);\n    x.w = value(d + 3u, inBase, isV, pos, nscale, wOff);' : ''}
    let word = encodeWord(x, s);
    if (isV) { vPool[elem / EPW + w] = word; } else { kPool[elem / EPW + w] = word; }
  }
}
`;
}
