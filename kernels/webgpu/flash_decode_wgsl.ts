/**
 * WGSL of FlashAttentionRaggedPaged's decode path: split-K over the keys, then a merge.
 *
 * Split pass, one workgroup per (new token t, KV head h, split s): the G query heads of KV head h
 * for token t (G rows) against keys [lo + s*chunk, lo + (s+1)*chunk) of the token's key range,
 * BCD keys per tile. Per tile: K and V tiles -> shared (both loads in flight together, zero past
 * the split), scores of the G x BCD pairs -> shared Ss (thread per pair, d-loop over vec4; K rows
 * XOR-swizzled by key so consecutive keys hit distinct banks), then each thread owns output
 * vec4 (row r, column c): tile max over Ss[r], online-softmax rescale, O += P V.
 * With one split the normalised result goes straight to `o`; otherwise each row's unnormalised
 * (acc[D4], (m, l)) goes to `part[(s * T + t) * NH + head][D4 + 1]` and the merge pass
 * (one workgroup per (t, head)) combines the splits: sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s.
 */
import type { MaskVariant } from '../../lib/types.js';
import { flashPrelude, M_INIT, maskWgsl, NEG } from './flash_common_wgsl.js';
import { swizzleMask } from './flash_prefill_wgsl.js';

export interface DecodeConfig {
  /** Keys per tile. */
  bcd: number;
  /** Threads per workgroup. */
  wg: number;
}

export interface DecodeShape {
  headDim: number;
  nHeads: number;
  nKvHeads: number;
  pageSize: number;
  mask: MaskVariant;
}

export function decodeSharedBytes(c: DecodeConfig, s: DecodeShape): number {
  const g = s.nHeads / s.nKvHeads;
  const d4 = s.headDim / 4;
  return 16 * g * d4 + 32 * c.bcd * d4 + 4 * g * c.bcd;
}

export function flashDecodeWgsl(c: DecodeConfig, s: DecodeShape): string {
  const g = s.nHeads / s.nKvHeads;
  const d4 = s.headDim / 4;
  const no = Math.ceil((g * d4) / c.wg);
  const ns = Math.ceil((g * c.bcd) / c.wg);
  const outs = [...Array(no).keys()];
  return /* wgsl */ `
${flashPrelude(s.headDim, s.nHeads, s.nKvHeads, s.pageSize)}
${maskWgsl(s.mask)}
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;
const BCD: u32 = ${c.bcd}u;
const WG: u32 = ${c.wg}u;
const SWM: u32 = ${swizzleMask(d4)}u;

var<workgroup> Qs: array<vec4<f32>, ${g * d4}>;
var<workgroup> Ks: array<vec4<f32>, ${c.bcd * d4}>;
var<workgroup> Vs: array<vec4<f32>, ${c.bcd * d4}>;
var<workgroup> Ss: array<f32, ${g * c.bcd}>;

@compute @workgroup_size(${c.wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let nS = u32(mt[7]);
  let tile = wid.x + (wid.z / nS) * 65535u;
  let split = wid.z % nS;
  let h = wid.y;
  if (tile >= u32(mt[0])) { return; }
  let tOff = u32(mt[6]) + 2u * tile;
  let b = mt[tOff];
  let tq = mt[tOff + 1u];
  let sOff = 16u + 4u * u32(b);
  let start = mt[sOff];
  let L = start + mt[sOff + 1u];
  let t = u32(mt[sOff + 2u] + tq);
  let i = start + tq;
  let range = keyRange(i, i, L);
  let s0 = range.x + i32(split) * mt[10];
  let s1 = min(range.y, s0 + mt[10]);
  let qs = bitcast<f32>(mt[8]);

  for (var idx = li; idx < G * D4; idx += WG) {
    Qs[idx] = q[t * NH * D4 + h * G * D4 + idx] * qs;
  }
${outs.map((n) => `  let oi${n} = li + ${n * c.wg}u;
  let r${n} = min(oi${n} / D4, G - 1u);
  let c${n} = oi${n} % D4;
  var m${n} = ${M_INIT};
  var l${n} = 0.0;
  var a${n} = vec4<f32>(0.0);`).join('\n')}

  for (var kb = s0; kb < s1; kb += i32(BCD)) {
    workgroupBarrier();
    for (var idx = li; idx < BCD * D4; idx += WG) {
      let kk = idx / D4;
      let c = idx % D4;
      let j = kb + i32(kk);
      var kv = vec4<f32>(0.0);
      var vv = vec4<f32>(0.0);
      if (j < s1) {
        let a = kvAddr(b, j, h) + c;
        kv = kp[a];
        vv = vp[a];
      }
      let sw = kk * D4 + (c ^ (kk & SWM));
      Ks[sw] = kv;
      Vs[sw] = vv;
    }
    workgroupBarrier();
${[...Array(ns).keys()].map((n) => `    {
      let p = li + ${n * c.wg}u;
      if (p < G * BCD) {
        let r = p / BCD;
        let k = p % BCD;
        let ksw = k & SWM;
        var acc = 0.0;
        for (var c = 0u; c < D4; c++) {
          acc += dot(Qs[r * D4 + c], Ks[k * D4 + (c ^ ksw)]);
        }
        let j = kb + i32(k);
        Ss[p] = select(${NEG}, acc, j < s1 && visible(i, j));
      }
    }`).join('\n')}
    workgroupBarrier();
${outs.map((n) => `    {
      var mx = ${NEG};
      for (var k = 0u; k < BCD; k++) { mx = max(mx, Ss[r${n} * BCD + k]); }
      let mn = max(m${n}, mx);
      let al = exp2(m${n} - mn);
      m${n} = mn;
      l${n} *= al;
      a${n} *= al;
      for (var k = 0u; k < BCD; k++) {
        let p = exp2(Ss[r${n} * BCD + k] - mn);
        l${n} += p;
        a${n} += p * Vs[k * D4 + (c${n} ^ (k & SWM))];
      }
    }`).join('\n')}
  }
${outs.map((n) => `  if (oi${n} < G * D4) {
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
