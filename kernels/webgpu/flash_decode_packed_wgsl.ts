/**
 * WGSL of FlashAttentionRaggedPaged's decode path over a compact cache (float16, bfloat16, int8,
 * float8_e4m3): the subgroup kernel's structure (flash_decode_sg_wgsl.ts: no shared tiles, no
 * barriers in the key loop, many keys' loads in flight per lane) with 16-byte loads of packed words.
 *
 * A cache row of HD codes is WPR = HD * bytes / 16 words (vec4<u32>: 8 halves or 16 byte codes).
 * LK = min(WPR, SGS) lanes share a key, each holding CW = WPR / LK words of it (word cl + LK * c),
 * so one subgroup load covers KPS = SGS / LK consecutive keys (float16 d128 on 32 lanes: 16 lanes
 * a key, 2 keys a load; int8 / float8: 8 lanes a key, 4 keys). Each lane's partial dots are summed
 * over its key's LK lanes with subgroupShuffleXor (log2 LK steps, all KPS keys at once), and each
 * key slot keeps its own online softmax (m, l, acc), so the slots never talk inside the loop; they
 * merge by shuffles at the end, then the NW subgroups through shared memory as in the f32 kernel.
 * Codes are widened in registers (kv_format_wgsl.ts wideDecode); the int8 row scale and the fp8
 * tensor scale multiply the score once per key, and p once per V row, not each element.
 * Masked keys' V words are zeroed at load (a NaN or inf there must not reach visible rows).
 * Same `meta`, partials and merge pass as the other decode kernels.
 */
import { type KVCacheDType, kvBytesPerElement } from '../../core/kv_dtype.js';
import { decodeItemHeader, flashPrelude, M_INIT, maskWgsl, NEG } from './flash_common_wgsl.js';
import type { DecodeShape } from './flash_decode_wgsl.js';
import { kvWideBindingsWgsl, wideDecode, wideScale } from './kv_format_wgsl.js';

export interface PackedDecodeConfig {
  /** Subgroup size (fixed on the device). */
  sgs: number;
  /** Subgroups per workgroup. */
  nw: number;
  /** Keys per lane per block (the block of a subgroup is U * KPS keys). */
  u: number;
}

/** How a row spreads over the lanes: words per row, lanes per key, words per lane, keys per load. */
export interface PackedLayout { wpr: number; lk: number; cw: number; kps: number; epl: number }

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** The layout for this cache and subgroup size, or null when the packed kernel does not apply. */
export function packedDecodeLayout(dtype: KVCacheDType, headDim: number, sgs: number): PackedLayout | null {
  if (dtype === 'float32' || !isPow2(sgs)) return null;
  const bytes = headDim * kvBytesPerElement(dtype);
  if (bytes % 16 !== 0 || !isPow2(bytes / 16)) return null;
  const wpr = bytes / 16;
  const lk = Math.min(wpr, sgs);
  return { wpr, lk, cw: wpr / lk, kps: sgs / lk, epl: 16 / kvBytesPerElement(dtype) };
}

export function packedDecodeSharedBytes(c: PackedDecodeConfig, s: DecodeShape): number {
  const g = s.nHeads / s.nKvHeads;
  return c.nw * g * (8 + 4 * s.headDim);
}

export function flashDecodePackedWgsl(c: PackedDecodeConfig, s: DecodeShape): string {
  const kv = s.kv!;
  const lay = packedDecodeLayout(kv.dtype, s.headDim, c.sgs);
  if (lay === null) throw new Error(`[flashDecodePackedWgsl] no packed layout for ${kv.dtype}, headDim ${s.headDim}, subgroup ${c.sgs}`);
  const { lk, cw, kps, epl } = lay;
  const g = s.nHeads / s.nKvHeads;
  const v4 = epl / 4; // vec4 of elements per word
  const R = [...Array(g).keys()], C = [...Array(cw).keys()], K = [...Array(v4).keys()], X = [...Array(c.u).keys()];
  const RC = (f: (r: number, c: number, k: number) => string) => R.map((r) => C.map((w) => K.map((k) => f(r, w, k)).join('\n')).join('\n')).join('\n');
  const ksc = (x: number) => wideScale(kv.dtype, 'k', `rw${x}`, kv.kScale, kv.vScale);
  const vsc = (x: number) => wideScale(kv.dtype, 'v', `rw${x}`, kv.kScale, kv.vScale);
  const perRowScale = kv.dtype === 'int8';
  const steps = (from: number, to: number) => { const o: number[] = []; for (let d = from; d < to; d *= 2) o.push(d); return o; };
  const dot = (r: number, x: number) => C.map((w) => K.map((k) => `dot(q${r}_${w}_${k}, ${wideDecode(kv.dtype, `kw${x}_${w}`, k)})`).join(' + ')).join(' + ');
  const scaled = (e: string, sc: string) => (sc === '' ? e : `(${e}) * ${sc}`);
  return /* wgsl */ `enable subgroups;
diagnostic(off, subgroup_uniformity);
${flashPrelude(s.headDim, s.nHeads, s.nKvHeads, kv, kvWideBindingsWgsl(kv.dtype))}
${maskWgsl()}
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;
const SGS: u32 = ${c.sgs}u;
const NW: u32 = ${c.nw}u;
const LK: u32 = ${lk}u;
const KPS: u32 = ${kps}u;
const WPR: u32 = ${lay.wpr}u;
const BLOCK: u32 = ${c.u * kps}u;

var<workgroup> Cm: array<f32, ${c.nw * g}>;
var<workgroup> Cl: array<f32, ${c.nw * g}>;
var<workgroup> Ca: array<vec4<f32>, ${c.nw * g * (s.headDim / 4)}>;

@compute @workgroup_size(${c.nw * c.sgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${decodeItemHeader()}
  let w = li / SGS;
  let lane = li % SGS;
  let slot = i32(lane / LK);
  let cl = lane % LK;
  // q columns of word cl + LK * c: vec4 (cl + LK * c) * ${v4} + k
${RC((r, w, k) => `  let q${r}_${w}_${k} = q[t * NH * D4 + (h * G + ${r}u) * D4 + (cl + ${w * lk}u) * ${v4}u + ${k}u] * qs;`)}
${R.map((r) => `  var m${r} = ${M_INIT};\n  var l${r} = 0.0;`).join('\n')}
${RC((r, w, k) => `  var a${r}_${w}_${k} = vec4<f32>(0.0);`)}

  for (var kb = s0 + i32(w * BLOCK); kb < s1; kb += i32(NW * BLOCK)) {
${X.map((x) => `    let j${x} = kb + ${x * kps} + slot;
    let ok${x} = j${x} < s1 && visible(i, j${x});
    let rw${x} = kvRow(b, min(j${x}, s1 - 1), h);
${C.map((w) => `    let kw${x}_${w} = kp[rw${x} * WPR + cl + ${w * lk}u];
    let vw${x}_${w} = select(vec4<u32>(0u), vp[rw${x} * WPR + cl + ${w * lk}u], ok${x});`).join('\n')}${perRowScale ? `
    let ks${x} = ${ksc(x)};
    let vs${x} = select(0.0, ${vsc(x)}, ok${x});` : ''}`).join('\n')}
${X.map((x) => R.map((r) => `    var d${r}_${x} = ${dot(r, x)};`).join('\n')).join('\n')}
${steps(1, lk).map((o) => X.map((x) => R.map((r) => `    d${r}_${x} += subgroupShuffleXor(d${r}_${x}, ${o}u);`).join('\n')).join('\n')).join('\n')}
${X.map((x) => R.map((r) => `    let s${r}_${x} = select(${NEG}, ${scaled(`d${r}_${x}`, perRowScale ? `ks${x}` : ksc(x))}, ok${x});`).join('\n')).join('\n')}
${R.map((r) => `    {
      let mn = max(m${r}, max(${X.map((x) => `s${r}_${x}`).reduce((p, q) => `max(${p}, ${q})`)}, ${NEG}));
      let al = exp2(m${r} - mn);
      m${r} = mn;
${X.map((x) => `      let p${x} = exp2(s${r}_${x} - mn);`).join('\n')}
      l${r} = l${r} * al + ${X.map((x) => `p${x}`).join(' + ')};
${X.map((x) => `      let pv${x} = ${scaled(`p${x}`, perRowScale ? `vs${x}` : vsc(x))};`).join('\n')}
${C.map((w) => K.map((k) => `      a${r}_${w}_${k} = a${r}_${w}_${k} * al + ${X.map((x) => `pv${x} * ${wideDecode(kv.dtype, `vw${x}_${w}`, k)}`).join(' + ')};`).join('\n')).join('\n')}
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
  if (slot == 0) {
${R.map((r) => `    if (lane == 0u) { Cm[w * G + ${r}u] = m${r}; Cl[w * G + ${r}u] = l${r}; }`).join('\n')}
${RC((r, w, k) => `    Ca[(w * G + ${r}u) * D4 + (cl + ${w * lk}u) * ${v4}u + ${k}u] = a${r}_${w}_${k};`)}
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
