/**
 * WGSL of FlashAttentionRaggedPaged's decode path: split-K over the keys, then a merge.
 *
 * Split pass, one workgroup of WG threads per (new token t, KV head h, split s): the G query
 * heads of KV head h for token t (G rows) against keys [lo + s*chunk, lo + (s+1)*chunk) of the
 * token's key range, BCD keys per tile. Per tile:
 *   - K and V tiles -> shared Ks / Vs (K rows XOR-swizzled by key); with `prefetch` each thread
 *     holds its share of the next tile in registers, loaded while this tile is computed;
 *   - scores of the G x BCD (row, key) pairs -> Ss, SD threads per pair each summing D4 / SD
 *     columns (partials summed when read), four independent accumulators per thread;
 *   - output (row r, vec4 column c) is owned by KS threads ("streams"), each taking keys
 *     k = stream (mod KS) with its own online softmax (m, l, acc); streams merge once at the end.
 * With one split the normalised result goes straight to `o`; otherwise each row's unnormalised
 * (acc[D4], (m, l)) goes to `part[(s * T + t) * NH + head][D4 + 1]` and the merge pass
 * (one workgroup per (t, head)) combines the splits: sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s.
 */
import { type KvFormat, decodeItemHeader, flashPrelude, M_INIT, maskWgsl, NEG, rep } from './flash_common_wgsl.js';
import { swizzleMask } from './flash_prefill_wgsl.js';

export interface DecodeConfig {
  /** Keys per tile. */
  bcd: number;
  /** Threads per workgroup. */
  wg: number;
  /** Load the next tile into registers while computing this one. */
  prefetch: boolean;
}

export interface DecodeShape {
  headDim: number;
  nHeads: number;
  nKvHeads: number;
  /** Cache format (default float32; kernels/webgpu/kv_format_wgsl.ts). */
  kv?: KvFormat;
}

function dims(c: DecodeConfig, s: DecodeShape) {
  const g = s.nHeads / s.nKvHeads;
  const d4 = s.headDim / 4;
  const nout = g * d4;
  const ks = c.wg >= nout ? Math.floor(c.wg / nout) : 1;
  const no = c.wg >= nout ? 1 : Math.ceil(nout / c.wg);
  const pairs = g * c.bcd;
  let sd = 1;
  while (c.wg >= pairs * sd * 2 && d4 % (sd * 2) === 0 && sd < 8) sd *= 2;
  const ns = Math.ceil(pairs / Math.floor(c.wg / sd));
  const nl = Math.ceil((c.bcd * d4) / c.wg);
  return { g, d4, nout, ks, no, pairs, sd, ns, nl };
}

export function decodeSharedBytes(c: DecodeConfig, s: DecodeShape): number {
  const { g, d4, nout, ks, pairs, sd } = dims(c, s);
  return 16 * g * d4 + 32 * c.bcd * d4 + 4 * sd * pairs + (ks > 1 ? 24 * ks * nout : 0);
}

export function flashDecodeWgsl(c: DecodeConfig, s: DecodeShape): string {
  const { d4, nout, ks, no, pairs, sd, ns, nl } = dims(c, s);
  const cols = d4 / sd;
  const outs = [...Array(no).keys()];
  const tileLoad = (kbExpr: string) => rep(nl, (n) => `    {
      let idx = li + ${n * c.wg}u;
      let kk = idx / D4;
      let j = ${kbExpr} + i32(kk);
      pk${n} = vec4<f32>(0.0);
      pv${n} = vec4<f32>(0.0);
      if (idx < BCD * D4 && j < s1) {
        let a = kvAddr(b, j, h) + idx % D4;
        pk${n} = ldK(a);
        pv${n} = ldV(a);
      }
    }`);
  const tileStore = rep(nl, (n) => `    {
      let idx = li + ${n * c.wg}u;
      if (idx < BCD * D4) {
        let kk = idx / D4;
        let sw = kk * D4 + ((idx % D4) ^ (kk & SWM));
        Ks[sw] = pk${n};
        Vs[sw] = pv${n};
      }
    }`);
  const score = (p: string) => `Ss[${p}]${sd > 1 ? rep(sd - 1, (x) => ` + Ss[${(x + 1) * pairs}u + ${p}]`).replace(/\n/g, '') : ''}`;
  return /* wgsl */ `
${flashPrelude(s.headDim, s.nHeads, s.nKvHeads, s.kv)}
${maskWgsl()}
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;
const BCD: u32 = ${c.bcd}u;
const WG: u32 = ${c.wg}u;
const SWM: u32 = ${swizzleMask(d4)}u;
const KS: u32 = ${ks}u;
const NOUT: u32 = ${nout}u;
const PAIRS: u32 = ${pairs}u;

var<workgroup> Qs: array<vec4<f32>, ${nout}>;
var<workgroup> Ks: array<vec4<f32>, ${c.bcd * d4}>;
var<workgroup> Vs: array<vec4<f32>, ${c.bcd * d4}>;
var<workgroup> Ss: array<f32, ${sd * pairs}>;
${ks > 1 ? `var<workgroup> Cm: array<f32, ${ks * nout}>;
var<workgroup> Cl: array<f32, ${ks * nout}>;
var<workgroup> Ca: array<vec4<f32>, ${ks * nout}>;` : ''}

@compute @workgroup_size(${c.wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${decodeItemHeader()}

  for (var idx = li; idx < NOUT; idx += WG) {
    Qs[idx] = q[t * NH * D4 + h * G * D4 + idx] * qs;
  }
  let stream = ${ks > 1 ? 'li / NOUT' : '0u'};
  let k0 = select(BCD, stream, stream < KS);
${outs.map((n) => `  let oi${n} = ${ks > 1 ? 'li % NOUT' : `li + ${n * c.wg}u`};
  let r${n} = min(oi${n} / D4, G - 1u);
  let c${n} = oi${n} % D4;
  var m${n} = ${M_INIT};
  var l${n} = 0.0;
  var a${n} = vec4<f32>(0.0);`).join('\n')}
  let sdi = li % ${sd}u;
${rep(nl, (n) => `  var pk${n} = vec4<f32>(0.0);\n  var pv${n} = vec4<f32>(0.0);`)}
${c.prefetch ? tileLoad('s0') : ''}

  for (var kb = s0; kb < s1; kb += i32(BCD)) {
    workgroupBarrier();
${c.prefetch ? '' : tileLoad('kb')}
${tileStore}
    workgroupBarrier();
${c.prefetch ? tileLoad('(kb + i32(BCD))') : ''}
${rep(ns, (n) => `    {
      let p = li / ${sd}u + ${n * Math.floor(c.wg / sd)}u;
      if (p < PAIRS) {
        let r = p / BCD;
        let k = p % BCD;
        let ksw = k & SWM;
        var x0 = 0.0; var x1 = 0.0; var x2 = 0.0; var x3 = 0.0;
        let cb = sdi * ${cols}u;
        for (var cc = 0u; cc < ${Math.floor(cols / 4) * 4}u; cc += 4u) {
          let c = cb + cc;
          x0 += dot(Qs[r * D4 + c], Ks[k * D4 + (c ^ ksw)]);
          x1 += dot(Qs[r * D4 + c + 1u], Ks[k * D4 + ((c + 1u) ^ ksw)]);
          x2 += dot(Qs[r * D4 + c + 2u], Ks[k * D4 + ((c + 2u) ^ ksw)]);
          x3 += dot(Qs[r * D4 + c + 3u], Ks[k * D4 + ((c + 3u) ^ ksw)]);
        }
        for (var c = cb + ${Math.floor(cols / 4) * 4}u; c < cb + ${cols}u; c++) {
          x0 += dot(Qs[r * D4 + c], Ks[k * D4 + (c ^ ksw)]);
        }
        Ss[sdi * PAIRS + p] = (x0 + x1) + (x2 + x3);
      }
    }`)}
    workgroupBarrier();
${outs.map((n) => `    {
      var mx = ${NEG};
      for (var k = k0; k < BCD; k += KS) {
        let j = kb + i32(k);
        if (j < s1 && visible(i, j)) { mx = max(mx, ${score(`r${n} * BCD + k`)}); }
      }
      let mn = max(m${n}, mx);
      let al = exp2(m${n} - mn);
      m${n} = mn;
      l${n} *= al;
      a${n} *= al;
      for (var k = k0; k < BCD; k += KS) {
        let j = kb + i32(k);
        if (j < s1 && visible(i, j)) {
          let p = exp2(${score(`r${n} * BCD + k`)} - mn);
          l${n} += p;
          a${n} += p * Vs[k * D4 + (c${n} ^ (k & SWM))];
        }
      }
    }`).join('\n')}
  }
${ks > 1 ? `  workgroupBarrier();
  if (li < KS * NOUT) {
    Cm[li] = m0;
    Cl[li] = l0;
    Ca[li] = a0;
  }
  workgroupBarrier();
  if (stream == 0u) {
    var mm = m0;
    for (var k = 1u; k < KS; k++) { mm = max(mm, Cm[k * NOUT + oi0]); }
    let w0 = exp2(m0 - mm);
    l0 *= w0;
    a0 *= w0;
    for (var k = 1u; k < KS; k++) {
      let w = exp2(Cm[k * NOUT + oi0] - mm);
      l0 += w * Cl[k * NOUT + oi0];
      a0 += w * Ca[k * NOUT + oi0];
    }
    m0 = mm;
  }` : ''}
${outs.map((n) => `  if (oi${n} < NOUT && stream == 0u) {
    let head = h * G + r${n};
    if (nS == 1u) {
      o[(t * NH + head) * D4 + c${n}] = a${n} * select(0.0, 1.0 / l${n}, l${n} > 0.0);
    } else {
      let pi = ((split * u32(mt[9]) + t) * NH + head) * (D4 + 1u);
      part[pi + c${n}] = a${n};
      if (c${n} == 0u) { part[pi + D4] = vec4<f32>(m${n}, l${n}, 0.0, 0.0); }
    }
  }`).join('\n')}
}
`;
}

/** The merge pass: one workgroup of 64 threads per (token, query head). */
export function flashMergeWgsl(headDim: number, nHeads: number): string {
  return /* wgsl */ `
const D4: u32 = ${headDim / 4}u;
const NH: u32 = ${nHeads}u;
@group(0) @binding(0) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> mt: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let T = u32(mt[9]);
  let nS = u32(mt[7]);
  let row = wid.x + wid.y * 65535u;
  if (row >= T * NH) { return; }
  var mMax = ${NEG};
  for (var s = 0u; s < nS; s++) { mMax = max(mMax, part[(s * T * NH + row) * (D4 + 1u) + D4].x); }
  var den = 0.0;
  for (var s = 0u; s < nS; s++) {
    let ml = part[(s * T * NH + row) * (D4 + 1u) + D4];
    den += exp2(ml.x - mMax) * ml.y;
  }
  let inv = select(0.0, 1.0 / den, den > 0.0);
  for (var c = li; c < D4; c += 64u) {
    var num = vec4<f32>(0.0);
    for (var s = 0u; s < nS; s++) {
      let base = (s * T * NH + row) * (D4 + 1u);
      num += exp2(part[base + D4].x - mMax) * part[base + c];
    }
    o[row * D4 + c] = num * inv;
  }
}
`;
}
