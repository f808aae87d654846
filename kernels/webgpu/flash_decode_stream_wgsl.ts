/**
 * WGSL of FlashAttentionRaggedPaged's decode path, streaming version, for every cache dtype
 * (float32 read as words too): the packed kernel's lane layout (flash_decode_packed_wgsl.ts) with
 * the per-key costs taken out of the key loop, so the loop is bound by the bytes it reads.
 *
 * Work split: one workgroup of NW subgroups per (new token t, KV head h, split s), as the other
 * decode kernels (same `meta`, partials and merge pass). A cache row is WPR 16-byte words
 * (vec4<u32>); LK = WPR / CW lanes share a key, lane cl holding words cl + LK * c (c < CW), so one
 * load instruction of a subgroup reads KPS = SGS / LK whole consecutive rows. Subgroup w takes
 * blocks of BLOCK = U * KPS consecutive keys w, w + NW, ... of its split (lane slot x of a block:
 * key kb + x * KPS + slot).
 * - Pages: a block that lies in one page, is inside the split and fully visible ("fast", uniform)
 *   costs one page-table read for all its keys (rows are consecutive inside a page) and no masks;
 *   other blocks (split ends, page edges, masks) take the per-key path (kvRow, visible, masked V
 *   words zeroed so a NaN there never reaches a visible row).
 * - `prefetch`: the next block's words are loaded into registers before this block is computed.
 * - Widening in registers, each word decoded once and shared by the G query heads of the group:
 *   float32 bitcast, float16 unpack2x16float, bfloat16 shifts, int8 / float8_e4m3 either by
 *   conversion instructions (`widen: 'cvt'`) or by bit tricks into f16 pairs (`'bits'`: int8 as
 *   1024 + (code ^ 0x80) in an f16 mantissa; e4m3 bits moved under an f16 exponent). The int8 row
 *   scale multiplies each score and each p once; the fp8 tensor scale is a constant.
 * - Scores: each lane's partial dots of its key summed over the key's LK lanes by
 *   subgroupShuffleXor; each key slot keeps its own online softmax (m, l, acc); slots merge by
 *   shuffles at the end, subgroups through shared memory.
 */
import { type KVCacheDType, kvBytesPerElement } from '../../core/kv_dtype.js';
import { decodeItemHeader, flashPrelude, M_INIT, maskWgsl, NEG } from './flash_common_wgsl.js';
import type { DecodeShape } from './flash_decode_wgsl.js';

export interface StreamDecodeConfig {
  /** Subgroup size (fixed on the device). */
  sgs: number;
  /** Subgroups per workgroup. */
  nw: number;
  /** Words of a row per lane (lanes per key = words per row / cw, at most sgs). */
  cw: number;
  /** u32 per load: 4 (16-byte words) or 2 (8-byte words: half the registers per lane, twice the lanes per key). */
  vec: 2 | 4;
  /** Keys per lane per block. */
  u: number;
  /** Load the next block while computing this one. */
  prefetch: boolean;
  /** int8 / float8_e4m3 widening: conversion instructions or bit tricks into f16 pairs. */
  widen: 'cvt' | 'bits';
  /**
   * How a key's LK lanes sum their partial dots: 'xor' (every lane adds every (row, key) value at
   * each of log2 LK steps: G * U shuffles a step) or 'scatter' (halving steps, each lane keeping
   * half the values, then one shuffle per value to gather the sums: about 2 * G * U in all).
   */
  reduce?: 'xor' | 'scatter';
  /** Keep the G query rows in workgroup memory and read them each block (fewer registers a lane) instead of in registers. */
  qShared?: boolean;
}

/** Words per row, lanes per key, words per lane, keys per load, elements per word. */
export interface StreamLayout { wpr: number; lk: number; cw: number; kps: number; epl: number }

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** The layout for this cache, head dim, subgroup size, words per lane and word size, or null when it does not apply. */
export function streamDecodeLayout(dtype: KVCacheDType, headDim: number, sgs: number, cw: number, vec: 2 | 4 = 4): StreamLayout | null {
  const bytes = headDim * kvBytesPerElement(dtype), unit = 4 * vec;
  if (!isPow2(sgs) || !isPow2(cw) || bytes % unit !== 0 || !isPow2(bytes / unit) || (dtype === 'float32' && vec !== 4)) return null;
  const wpr = bytes / unit;
  const lk = Math.min(sgs, Math.max(1, wpr / cw));
  return { wpr, lk, cw: wpr / lk, kps: sgs / lk, epl: unit / kvBytesPerElement(dtype) };
}

export function streamDecodeSharedBytes(c: StreamDecodeConfig, s: DecodeShape): number {
  const g = s.nHeads / s.nKvHeads;
  return c.nw * g * (8 + 4 * s.headDim) + (c.qShared ? 4 * g * s.headDim : 0);
}

/** Bindings 2 / 3 as 16-byte words (+ int8 row scales at 10 / 11) and the widening helpers. */
function streamBindings(dtype: KVCacheDType, vec: number): string {
  const decl = (name: string, type: string, binding: number) => `@group(0) @binding(${binding}) var<storage, read> ${name}: array<${type}>;`;
  const out = [decl('kp', `vec${vec}<u32>`, 2), decl('vp', `vec${vec}<u32>`, 3)];
  if (dtype === 'int8') {
    out.push(decl('ksc', 'f32', 10), decl('vsc', 'f32', 11));
    // Codes c as f16 1024 + (c + 128): bytes 0 / 2 in one pair, 1 / 3 in the other.
    out.push(`fn i8x4(x: u32) -> vec4<f32> {
  let t = x ^ 0x80808080u;
  let lo = unpack2x16float((t & 0x00ff00ffu) | 0x64006400u);
  let hi = unpack2x16float(((t >> 8u) & 0x00ff00ffu) | 0x64006400u);
  return vec4<f32>(lo.x, hi.x, lo.y, hi.y) - 1152.0;
}`);
  }
  if (dtype === 'float8_e4m3') {
    out.push('fn e4m3Half(x: u32) -> u32 { return ((x & 0x80u) << 8u) | ((x & 0x7fu) << 7u) | ((x & 0x8000u) << 16u) | ((x & 0x7f00u) << 15u); }');
    // Each code in the top byte of an f16 (sign at bit 15), then exponent + mantissa moved down one bit.
    out.push(`fn f8x4(x: u32) -> vec4<f32> {
  let a = (x << 8u) & 0xff00ff00u;
  let c = x & 0xff00ff00u;
  let lo = unpack2x16float(a - ((a & 0x7f007f00u) >> 1u));
  let hi = unpack2x16float(c - ((c & 0x7f007f00u) >> 1u));
  return vec4<f32>(lo.x, hi.x, lo.y, hi.y);
}`);
  }
  return out.join('\n');
}

/** Elements 4k .. 4k+3 of word `w` as vec4<f32> (before the int8 / fp8 scale). */
function widen(dtype: KVCacheDType, how: 'cvt' | 'bits', w: string, k: number): string {
  const c = 'xyzw';
  switch (dtype) {
    case 'float32': return `bitcast<vec4<f32>>(${w})`;
    case 'float16': return `vec4<f32>(unpack2x16float(${w}.${c[2 * k]}), unpack2x16float(${w}.${c[2 * k + 1]}))`;
    case 'bfloat16': {
      const [a, b] = [`${w}.${c[2 * k]}`, `${w}.${c[2 * k + 1]}`];
      return `vec4<f32>(bitcast<f32>(${a} << 16u), bitcast<f32>(${a} & 0xffff0000u), bitcast<f32>(${b} << 16u), bitcast<f32>(${b} & 0xffff0000u))`;
    }
    case 'int8': {
      const x = `${w}.${c[k]}`;
      return how === 'bits' ? `i8x4(${x})`
        : `vec4<f32>(vec4<i32>(bitcast<i32>(${x} << 24u) >> 24u, bitcast<i32>(${x} << 16u) >> 24u, bitcast<i32>(${x} << 8u) >> 24u, bitcast<i32>(${x}) >> 24u))`;
    }
    case 'float8_e4m3': {
      const x = `${w}.${c[k]}`;
      return how === 'bits' ? `f8x4(${x})` : `vec4<f32>(unpack2x16float(e4m3Half(${x})), unpack2x16float(e4m3Half(${x} >> 16u)))`;
    }
  }
}

/**
 * WGSL summing each of the variables `vars` over the LK lanes of a key (lanes lane & ~(LK-1) ..):
 * halving steps (bit o of the lane set: keep the upper half of the values, send the lower), an
 * xor step for each bit left once one value remains, then each sum fetched from the lane that holds it.
 */
function scatterReduce(lk: number, vars: string[]): string {
  const n = vars.length, lines: string[] = [];
  // held[cl] = original indices lane cl holds, position by position (positions are uniform).
  let held: number[][] = Array.from({ length: lk }, () => vars.map((_, i) => i));
  let cur = vars.map((v) => `${v}`);
  let tag = 0;
  for (let o = lk / 2; o >= 1; o /= 2) {
    const len = cur.length;
    if (len > 1) {
      const half = len / 2, next: string[] = [];
      lines.push(`    let hb${tag} = (lane & ${o}u) != 0u;`);
      for (let i = 0; i < half; i++) {
        const nm = `rs${tag}_${i}`;
        lines.push(`    let ${nm} = select(${cur[i]}, ${cur[i + half]}, hb${tag}) + subgroupShuffleXor(select(${cur[i + half]}, ${cur[i]}, hb${tag}), ${o}u);`);
        next.push(nm);
      }
      held = held.map((h, cl) => ((cl & o) !== 0 ? h.slice(half) : h.slice(0, half)));
      cur = next;
    } else {
      lines.push(`    let rs${tag}_0 = ${cur[0]} + subgroupShuffleXor(${cur[0]}, ${o}u);`);
      cur = [`rs${tag}_0`];
    }
    tag++;
  }
  lines.push('    let rsBase = lane & ~' + `${lk - 1}u;`);
  for (let v = 0; v < n; v++) {
    const holder = held.findIndex((h) => h.includes(v));
    const pos = held[holder].indexOf(v);
    lines.push(`    ${vars[v]} = subgroupShuffle(${cur[pos]}, rsBase | ${holder}u);`);
  }
  if (n & (n - 1)) throw new Error(`[flashDecodeStreamWgsl] scatter reduce needs a power-of-two count of values, got ${n}`);
  return lines.join('\n');
}

const fl = (x: number): string => (Number.isInteger(x) ? `${x}.0` : `${x}`);

export function flashDecodeStreamWgsl(c: StreamDecodeConfig, s: DecodeShape): string {
  const kv = s.kv ?? { dtype: 'float32' as KVCacheDType, kScale: 1, vScale: 1 };
  const lay = streamDecodeLayout(kv.dtype, s.headDim, c.sgs, c.cw, c.vec);
  if (lay === null) throw new Error(`[flashDecodeStreamWgsl] no layout for ${kv.dtype}, headDim ${s.headDim}, subgroup ${c.sgs}, cw ${c.cw}, vec ${c.vec}`);
  const VT = `vec${c.vec}<u32>`;
  const { lk, cw, kps, epl } = lay;
  const g = s.nHeads / s.nKvHeads;
  const v4 = epl / 4; // vec4 of elements per word
  const R = [...Array(g).keys()], C = [...Array(cw).keys()], K = [...Array(v4).keys()], X = [...Array(c.u).keys()];
  const RCK = (f: (r: number, w: number, k: number) => string) => R.map((r) => C.map((w) => K.map((k) => f(r, w, k)).join('\n')).join('\n')).join('\n');
  const XC = (f: (x: number, w: number) => string) => X.map((x) => C.map((w) => f(x, w)).join('\n')).join('\n');
  const int8 = kv.dtype === 'int8';
  const kConst = kv.dtype === 'float8_e4m3' ? fl(kv.kScale * 256) : '';
  const vConst = kv.dtype === 'float8_e4m3' ? fl(kv.vScale * 256) : '';
  const steps = (from: number, to: number) => { const o: number[] = []; for (let d = from; d < to; d *= 2) o.push(d); return o; };
  const word = (x: number, w: number) => `(r${x} * WPR + cl + ${w * lk}u)`;
  // Loads block `kbE` into the registers of prefix P (fast path: consecutive rows of one page).
  const load = (P: string, kbE: string) => `    {
      let kq = ${kbE};
      let fast = kq + i32(BLOCK) <= s1 && (kq % ps) + i32(BLOCK) <= ps && tileFull(i, i, kq, kq + i32(BLOCK));
      if (fast) {
        let base = kvRow(b, kq, h) + slot;
${X.map((x) => `        { let r${x} = base + ${x * kps}u;
${C.map((w) => `          ${P}k${x}_${w} = kp[${word(x, w)}];\n          ${P}v${x}_${w} = vp[${word(x, w)}];`).join('\n')}
          ${P}ok${x} = true;${int8 ? `\n          ${P}ks${x} = ksc[r${x}];\n          ${P}vs${x} = vsc[r${x}];` : ''} }`).join('\n')}
      } else {
${X.map((x) => `        { let j = kq + ${x * kps} + i32(slot);
          let ok = j < s1 && visible(i, j);
          let r${x} = kvRow(b, min(j, s1 - 1), h);
${C.map((w) => `          ${P}k${x}_${w} = kp[${word(x, w)}];\n          ${P}v${x}_${w} = select(${VT}(0u), vp[${word(x, w)}], ok);`).join('\n')}
          ${P}ok${x} = ok;${int8 ? `\n          ${P}ks${x} = ksc[r${x}];\n          ${P}vs${x} = select(0.0, vsc[r${x}], ok);` : ''} }`).join('\n')}
      }
    }`;
  const declare = (P: string) => `${XC((x, w) => `  var ${P}k${x}_${w}: ${VT};\n  var ${P}v${x}_${w}: ${VT};`)}
${X.map((x) => `  var ${P}ok${x}: bool;${int8 ? ` var ${P}ks${x}: f32; var ${P}vs${x}: f32;` : ''}`).join('\n')}`;
  const copy = `${XC((x, w) => `    ck${x}_${w} = nk${x}_${w};\n    cv${x}_${w} = nv${x}_${w};`)}
${X.map((x) => `    cok${x} = nok${x};${int8 ? ` cks${x} = nks${x}; cvs${x} = nvs${x};` : ''}`).join('\n')}`;
  const dot = (r: number, x: number) => C.map((w) => K.map((k) => `dot(q${r}_${w}_${k}, kd${x}_${w}_${k})`).join(' + ')).join(' + ');
  const scaled = (e: string, sc: string) => (sc === '' ? e : `(${e}) * ${sc}`);
  return /* wgsl */ `enable subgroups;
diagnostic(off, subgroup_uniformity);
${flashPrelude(s.headDim, s.nHeads, s.nKvHeads, kv, streamBindings(kv.dtype, c.vec))}
${maskWgsl()}
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;
const SGS: u32 = ${c.sgs}u;
const NW: u32 = ${c.nw}u;
const LK: u32 = ${lk}u;
const WPR: u32 = ${lay.wpr}u;
const BLOCK: u32 = ${c.u * kps}u;

var<workgroup> Cm: array<f32, ${c.nw * g}>;
var<workgroup> Cl: array<f32, ${c.nw * g}>;
var<workgroup> Ca: array<vec4<f32>, ${c.nw * g * (s.headDim / 4)}>;
${c.qShared ? `var<workgroup> Qs: array<vec4<f32>, ${g * (s.headDim / 4)}>;` : ''}

@compute @workgroup_size(${c.nw * c.sgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${decodeItemHeader()}
  let w = li / SGS;
  let lane = li % SGS;
  let slot = lane / LK;
  let cl = lane % LK;
  let ps = mt[12];
${c.qShared ? `  for (var idx = li; idx < G * D4; idx += NW * SGS) { Qs[idx] = q[t * NH * D4 + h * G * D4 + idx] * qs; }
  workgroupBarrier();` : RCK((r, w, k) => `  let q${r}_${w}_${k} = q[t * NH * D4 + (h * G + ${r}u) * D4 + (cl + ${w * lk}u) * ${v4}u + ${k}u] * qs;`)}
${R.map((r) => `  var m${r} = ${M_INIT};\n  var l${r} = 0.0;`).join('\n')}
${RCK((r, w, k) => `  var a${r}_${w}_${k} = vec4<f32>(0.0);`)}
${declare('c')}
${c.prefetch ? `${declare('n')}\n  if (s0 + i32(w * BLOCK) < s1) {\n${load('n', 's0 + i32(w * BLOCK)')}\n  }` : ''}
  for (var kb = s0 + i32(w * BLOCK); kb < s1; kb += i32(NW * BLOCK)) {
${c.prefetch ? `${copy}\n    if (kb + i32(NW * BLOCK) < s1) {\n${load('n', 'kb + i32(NW * BLOCK)')}\n    }` : load('c', 'kb')}
${c.qShared ? RCK((r, w, k) => `    let q${r}_${w}_${k} = Qs[${r}u * D4 + (cl + ${w * lk}u) * ${v4}u + ${k}u];`) : ''}
${XC((x, w) => K.map((k) => `    let kd${x}_${w}_${k} = ${widen(kv.dtype, c.widen, `ck${x}_${w}`, k)};`).join('\n'))}
${X.map((x) => R.map((r) => `    var d${r}_${x} = ${dot(r, x)};`).join('\n')).join('\n')}
${c.reduce === 'scatter' ? scatterReduce(lk, X.flatMap((x) => R.map((r) => `d${r}_${x}`))) : steps(1, lk).map((o) => X.map((x) => R.map((r) => `    d${r}_${x} += subgroupShuffleXor(d${r}_${x}, ${o}u);`).join('\n')).join('\n')).join('\n')}
${X.map((x) => R.map((r) => `    let s${r}_${x} = select(${NEG}, ${scaled(`d${r}_${x}`, int8 ? `cks${x}` : kConst)}, cok${x});`).join('\n')).join('\n')}
${XC((x, w) => K.map((k) => `    let vd${x}_${w}_${k} = ${widen(kv.dtype, c.widen, `cv${x}_${w}`, k)};`).join('\n'))}
${R.map((r) => `    {
      let mn = max(m${r}, max(${X.map((x) => `s${r}_${x}`).reduce((p, q) => `max(${p}, ${q})`)}, ${NEG}));
      let al = exp2(m${r} - mn);
      m${r} = mn;
${X.map((x) => `      let p${x} = exp2(s${r}_${x} - mn);`).join('\n')}
      l${r} = l${r} * al + ${X.map((x) => `p${x}`).join(' + ')};
${X.map((x) => `      let pv${x} = ${scaled(`p${x}`, int8 ? `cvs${x}` : vConst)};`).join('\n')}
${C.map((w) => K.map((k) => `      a${r}_${w}_${k} = a${r}_${w}_${k} * al + ${X.map((x) => `pv${x} * vd${x}_${w}_${k}`).join(' + ')};`).join('\n')).join('\n')}
    }`).join('\n')}
  }
  // Key slots of a subgroup merge by shuffles (lanes cl, cl + LK, ... hold the same columns).
${steps(lk, c.sgs).map((o) => R.map((r) => `  {
    let mo = subgroupShuffleXor(m${r}, ${o}u);
    let lo = subgroupShuffleXor(l${r}, ${o}u);
    let mn = max(m${r}, mo);
    let ea = exp2(m${r} - mn);
    let eb = exp2(mo - mn);
    m${r} = mn;
    l${r} = l${r} * ea + lo * eb;
${C.map((w) => K.map((k) => `    a${r}_${w}_${k} = a${r}_${w}_${k} * ea + subgroupShuffleXor(a${r}_${w}_${k}, ${o}u) * eb;`).join('\n')).join('\n')}
  }`).join('\n')).join('\n')}
  if (slot == 0u) {
${R.map((r) => `    if (lane == 0u) { Cm[w * G + ${r}u] = m${r}; Cl[w * G + ${r}u] = l${r}; }`).join('\n')}
${RCK((r, w, k) => `    Ca[(w * G + ${r}u) * D4 + (cl + ${w * lk}u) * ${v4}u + ${k}u] = a${r}_${w}_${k};`)}
  }
  workgroupBarrier();
  for (var idx = li; idx < G * D4; idx += NW * SGS) {
    let r = idx / D4;
    let col = idx % D4;
    var mm = ${NEG};
    for (var x = 0u; x < NW; x++) { mm = max(mm, Cm[x * G + r]); }
    var ll = 0.0;
    var aa = vec4<f32>(0.0);
    for (var x = 0u; x < NW; x++) {
      let e = exp2(Cm[x * G + r] - mm);
      ll += e * Cl[x * G + r];
      aa += e * Ca[(x * G + r) * D4 + col];
    }
    let head = h * G + r;
    if (nS == 1u) {
      o[(t * NH + head) * D4 + col] = aa * select(0.0, 1.0 / ll, ll > 0.0);
    } else {
      let pi = ((split * u32(mt[9]) + t) * NH + head) * (D4 + 1u);
      part[pi + col] = aa;
      if (col == 0u) { part[pi + D4] = vec4<f32>(mm, ll, 0.0, 0.0); }
    }
  }
}
`;
}
