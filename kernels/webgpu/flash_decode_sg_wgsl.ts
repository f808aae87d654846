/**
 * WGSL of FlashAttentionRaggedPaged's decode path, subgroup version (devices whose subgroup size
 * is fixed, e.g. 32 on NVIDIA, 8 on lavapipe): no shared-memory tiles and no barriers in the key
 * loop, so each warp streams keys with many loads in flight.
 *
 * One workgroup of NW subgroups (SGS lanes each) per (new token t, KV head h, split s), as in
 * flash_decode_wgsl.ts (same `meta`, same partials and merge pass). Lane l owns vec4 columns
 * l + SGS*u (u < CPL) of the G query rows (in registers, pre-scaled) and of each key and value.
 * Subgroup w takes blocks of U keys w, w + NW, ... of the split: it loads the block's K and V
 * columns (U * CPL * 2 vec4 per lane, all issued before use), gets each score with subgroupAdd of
 * the lanes' partial dots, then updates its own online softmax (m, l, acc) once per block.
 * At the end the NW subgroups merge through shared memory and subgroup 0 writes the result.
 */
import { decodeItemHeader, flashPrelude, M_INIT, maskWgsl, NEG } from './flash_common_wgsl.js';
import type { DecodeShape } from './flash_decode_wgsl.js';

export interface SubgroupDecodeConfig {
  /** Subgroup size (fixed on the device). */
  sgs: number;
  /** Subgroups per workgroup. */
  nw: number;
  /** Keys per block. */
  u: number;
}

export function subgroupDecodeSharedBytes(c: SubgroupDecodeConfig, s: DecodeShape): number {
  const g = s.nHeads / s.nKvHeads;
  return c.nw * g * (8 + 4 * s.headDim);
}

export function flashDecodeSubgroupWgsl(c: SubgroupDecodeConfig, s: DecodeShape): string {
  const g = s.nHeads / s.nKvHeads;
  const d4 = s.headDim / 4;
  const cpl = Math.ceil(d4 / c.sgs);
  const R = [...Array(g).keys()];
  const C = [...Array(cpl).keys()];
  const X = [...Array(c.u).keys()];
  const cGuard = (u: number) => (cpl * c.sgs === d4 ? 'true' : `cl${u} < D4`);
  return /* wgsl */ `enable subgroups;
diagnostic(off, subgroup_uniformity);
${flashPrelude(s.headDim, s.nHeads, s.nKvHeads, s.kv)}
${maskWgsl()}
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;
const SGS: u32 = ${c.sgs}u;
const NW: u32 = ${c.nw}u;
const U: u32 = ${c.u}u;

var<workgroup> Cm: array<f32, ${c.nw * g}>;
var<workgroup> Cl: array<f32, ${c.nw * g}>;
var<workgroup> Ca: array<vec4<f32>, ${c.nw * g * d4}>;

@compute @workgroup_size(${c.nw * c.sgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${decodeItemHeader()}
  let w = li / SGS;
  let lane = li % SGS;
${C.map((u) => `  let cl${u} = lane + ${u * c.sgs}u;\n  let cc${u} = min(cl${u}, D4 - 1u);`).join('\n')}
${R.map((r) => C.map((u) => `  let q${r}_${u} = select(vec4<f32>(0.0), q[t * NH * D4 + (h * G + ${r}u) * D4 + cc${u}] * qs, ${cGuard(u)});`).join('\n')).join('\n')}
${R.map((r) => `  var m${r} = ${M_INIT};\n  var l${r} = 0.0;\n${C.map((u) => `  var a${r}_${u} = vec4<f32>(0.0);`).join('\n')}`).join('\n')}

  for (var kb = s0 + i32(w * U); kb < s1; kb += i32(NW * U)) {
${X.map((x) => `    let j${x} = kb + ${x};
    let ok${x} = j${x} < s1 && visible(i, j${x});
    let ad${x} = kvAddr(b, min(j${x}, s1 - 1), h);
${C.map((u) => `    let k${x}_${u} = ldK(ad${x} + cc${u});\n    let v${x}_${u} = select(vec4<f32>(0.0), ldV(ad${x} + cc${u}), ok${x});`).join('\n')}`).join('\n')}
${X.map((x) => `${R.map((r) => `    let s${r}_${x} = select(${NEG}, subgroupAdd(${C.map((u) => `dot(q${r}_${u}, k${x}_${u})`).join(' + ')}), ok${x});`).join('\n')}`).join('\n')}
${R.map((r) => `    {
      let mn = max(m${r}, max(${X.map((x) => `s${r}_${x}`).reduce((p, q) => `max(${p}, ${q})`)}, ${NEG}));
      let al = exp2(m${r} - mn);
      m${r} = mn;
${X.map((x) => `      let p${x} = exp2(s${r}_${x} - mn);`).join('\n')}
      l${r} = l${r} * al + ${X.map((x) => `p${x}`).join(' + ')};
${C.map((u) => `      a${r}_${u} = a${r}_${u} * al + ${X.map((x) => `p${x} * v${x}_${u}`).join(' + ')};`).join('\n')}
    }`).join('\n')}
  }
${R.map((r) => `  if (lane == 0u) { Cm[w * G + ${r}u] = m${r}; Cl[w * G + ${r}u] = l${r}; }
${C.map((u) => `  if (${cGuard(u)}) { Ca[(w * G + ${r}u) * D4 + cl${u}] = a${r}_${u}; }`).join('\n')}`).join('\n')}
  workgroupBarrier();
  if (w != 0u) { return; }
${R.map((r) => `  {
    var mm = ${NEG};
    for (var x = 0u; x < NW; x++) { mm = max(mm, Cm[x * G + ${r}u]); }
    var ll = 0.0;
${C.map((u) => `    var aa${u} = vec4<f32>(0.0);`).join('\n')}
    for (var x = 0u; x < NW; x++) {
      let e = exp2(Cm[x * G + ${r}u] - mm);
      ll += e * Cl[x * G + ${r}u];
${C.map((u) => `      aa${u} += e * Ca[(x * G + ${r}u) * D4 + cc${u}];`).join('\n')}
    }
    let head = h * G + ${r}u;
    if (nS == 1u) {
      let inv = select(0.0, 1.0 / ll, ll > 0.0);
${C.map((u) => `      if (${cGuard(u)}) { o[(t * NH + head) * D4 + cl${u}] = aa${u} * inv; }`).join('\n')}
    } else {
      let pi = ((split * u32(mt[9]) + t) * NH + head) * (D4 + 1u);
${C.map((u) => `      if (${cGuard(u)}) { part[pi + cl${u}] = aa${u}; }`).join('\n')}
      if (lane == 0u) { part[pi + D4] = vec4<f32>(mm, ll, 0.0, 0.0); }
    }
  }`).join('\n')}
}
`;
}
