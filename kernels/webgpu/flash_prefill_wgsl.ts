/**
 * WGSL of FlashAttentionRaggedPaged's prefill path (FlashAttention-2 style tiling).
 *
 * Work split: one workgroup per (tile of TQ new tokens of one sequence, KV head h). Its MR rows
 * are the TQ tokens x the G query heads sharing KV head h (row r = token r / G, head h*G + r % G),
 * so each K/V tile is read from the pages once per KV-head group. Threads form a TR x TC grid;
 * thread (ty, tx) owns rows ty*RM .. ty*RM+RM-1, score columns tx + TC*j (j < KPT) of each key
 * tile, and output vec4 columns tx + TC*c (c < CPT). Per key tile of BC keys:
 *   K tile -> shared (zero past the range), S = Q K^T in registers, mask, row max across the TC
 *   threads of a row (subgroup shuffles, or shared memory), online-softmax rescale, P -> shared,
 *   V tile -> shared (same buffer as K), O += P V in registers; on tiles with masked keys (the
 *   diagonal, window edges, the range's end) skipping P = 0 (a masked key's weight times a NaN or
 *   inf value would be NaN: a later token's NaN must not reach earlier ones). Fully visible tiles
 *   take the unguarded loop: the guard on every tile cost 25% (8.19 -> 10.25 ms at 1x4096 on the H200).
 * Shared memory: Qs [MR][D4] vec4 (pre-scaled q), KV [BC][D4] vec4, Ps [MR][BC + 4] f32
 * (+ red [MR][TC] without subgroups). Rows of Qs are XOR-swizzled by (row / RM) and rows of KV by
 * (key) within aligned groups of vec4 columns, so the threads of a warp hit distinct banks.
 * The register tiles are unrolled by the generator (named scalars), so they stay in registers.
 */
import { type KvFormat, flashPrelude, M_INIT, maskWgsl, NEG, rep } from './flash_common_wgsl.js';

export interface PrefillConfig {
  /** Tokens per workgroup. */
  tq: number;
  /** Keys per tile. */
  bc: number;
  /** Rows per thread. */
  rm: number;
  /** Threads along keys / output columns (a power of two). */
  tc: number;
  /** Reduce row maxima with subgroup shuffles (needs >= tc lanes). */
  subgroups: boolean;
  /** Load the next K (and this V) tile into registers while computing. */
  prefetch: boolean;
}

export interface PrefillShape {
  headDim: number;
  nHeads: number;
  nKvHeads: number;
  /** Cache format (default float32; kernels/webgpu/kv_format_wgsl.ts). */
  kv?: KvFormat;
}

/** Rows per workgroup (TQ * G rounded up to RM) and threads. */
export function prefillDims(c: PrefillConfig, s: PrefillShape): { mr: number; tr: number; wg: number } {
  const g = s.nHeads / s.nKvHeads;
  const mr = Math.ceil((c.tq * g) / c.rm) * c.rm;
  const tr = mr / c.rm;
  return { mr, tr, wg: tr * c.tc };
}

/** Shared memory bytes of a config. */
export function prefillSharedBytes(c: PrefillConfig, s: PrefillShape): number {
  const { mr } = prefillDims(c, s);
  const d4 = s.headDim / 4;
  return 16 * mr * d4 + 16 * c.bc * d4 + 4 * mr * (c.bc + 4) + (c.subgroups ? 0 : 4 * mr * c.tc);
}

/** Swizzle mask: largest power of two <= 8 dividing D4, minus one. */
export function swizzleMask(d4: number): number {
  let m = 1;
  while (m < 8 && d4 % (m * 2) === 0) m *= 2;
  return m - 1;
}

export function flashPrefillWgsl(c: PrefillConfig, s: PrefillShape): string {
  const { mr, wg } = prefillDims(c, s);
  const d4 = s.headDim / 4;
  const { rm, tc, bc } = c;
  const kpt = bc / tc;
  const cpt = d4 / tc;
  const RM = [...Array(rm).keys()];
  const KP = [...Array(kpt).keys()];
  const CP = [...Array(cpt).keys()];
  const lanes = [...Array(Math.log2(tc)).keys()].map((b) => 1 << b);
  const rowMax = c.subgroups
    ? rep(rm, (i) => rep(lanes.length, (b) => `  mx${i} = max(mx${i}, subgroupShuffleXor(mx${i}, ${lanes[b]}u));`))
    : `${rep(rm, (i) => `  red[(r0 + ${i}u) * TC + tx] = mx${i};`)}
    workgroupBarrier();
    for (var t = 0u; t < TC; t++) {
${rep(rm, (i) => `      mx${i} = max(mx${i}, red[(r0 + ${i}u) * TC + t]);`)}
    }`;
  const rowSum = c.subgroups
    ? rep(rm, (i) => rep(lanes.length, (b) => `  l${i} += subgroupShuffleXor(l${i}, ${lanes[b]}u);`))
    : `  workgroupBarrier();
${rep(rm, (i) => `  red[(r0 + ${i}u) * TC + tx] = l${i};`)}
  workgroupBarrier();
${rep(rm, (i) => `  var ls${i} = 0.0;`)}
  for (var t = 0u; t < TC; t++) {
${rep(rm, (i) => `    ls${i} += red[(r0 + ${i}u) * TC + t];`)}
  }
${rep(rm, (i) => `  l${i} = ls${i};`)}`;
  const nl = Math.ceil((bc * d4) / wg);
  const regLoad = (isV: boolean, kbExpr: string) => rep(nl, (n) => `    {
      let idx = li + ${n * wg}u;
      let j = ${kbExpr} + i32(idx / D4);
      pf${n} = vec4<f32>(0.0);
      if (idx < BC * D4 && j < range.y) { pf${n} = ${isV ? 'ldV' : 'ldK'}(kvAddr(b, j, h) + idx % D4); }
    }`);
  const regStore = rep(nl, (n) => `    {
      let idx = li + ${n * wg}u;
      if (idx < BC * D4) { let kk = idx / D4; KV[kk * D4 + ((idx % D4) ^ (kk & SWM))] = pf${n}; }
    }`);
  return /* wgsl */ `${c.subgroups ? 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);' : ''}
${flashPrelude(s.headDim, s.nHeads, s.nKvHeads, s.kv)}
${maskWgsl()}
const TQ: u32 = ${c.tq}u;
const MR: u32 = ${mr}u;
const BC: u32 = ${bc}u;
const TC: u32 = ${tc}u;
const RM: u32 = ${rm}u;
const WG: u32 = ${wg}u;
const SWM: u32 = ${swizzleMask(d4)}u;
const PSTR: u32 = ${bc + 4}u;

var<workgroup> Qs: array<vec4<f32>, ${mr * d4}>;
var<workgroup> KV: array<vec4<f32>, ${bc * d4}>;
var<workgroup> Ps: array<f32, ${mr * (bc + 4)}>;
${c.subgroups ? '' : `var<workgroup> red: array<f32, ${mr * tc}>;`}

fn loadTile(isV: bool, b: i32, kb: i32, hi: i32, h: u32, li: u32) {
  for (var idx = li; idx < BC * D4; idx += WG) {
    let kk = idx / D4;
    let c = idx % D4;
    let j = kb + i32(kk);
    var val = vec4<f32>(0.0);
    if (j < hi) {
      let a = kvAddr(b, j, h) + c;
      if (isV) { val = ldV(a); } else { val = ldK(a); }
    }
    KV[kk * D4 + (c ^ (kk & SWM))] = val;
  }
}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let tile = wid.x;
  let h = wid.y;
  let tOff = u32(mt[6]) + 2u * tile;
  let b = mt[tOff];
  let tq0 = mt[tOff + 1u];
  let sOff = 16u + 4u * u32(b);
  let start = mt[sOff];
  let nNew = mt[sOff + 1u];
  let rowOff = mt[sOff + 2u];
  let L = start + nNew;
  let nTok = min(i32(TQ), nNew - tq0);
  let i0 = start + tq0;
  let i1 = i0 + nTok - 1;
  let range = keyRange(i0, i1, L);
  let qs = bitcast<f32>(mt[8]);
  let tx = li % TC;
  let ty = li / TC;
  let r0 = ty * RM;

  for (var idx = li; idx < MR * D4; idx += WG) {
    let r = idx / D4;
    let c = idx % D4;
    var val = vec4<f32>(0.0);
    if (r < TQ * G && i32(r / G) < nTok) {
      val = q[(u32(rowOff + tq0) + r / G) * NH * D4 + (h * G + r % G) * D4 + c] * qs;
    }
    Qs[r * D4 + (c ^ ((r / RM) & SWM))] = val;
  }
${rep(rm, (i) => `  let pos${i} = i0 + i32((r0 + ${i}u) / G);
  var m${i} = ${M_INIT};
  var l${i} = 0.0;
${rep(cpt, (cc) => `  var a${i}_${cc} = vec4<f32>(0.0);`)}`)}
  let qsw = ty & SWM;
${rep(kpt, (j) => `  let kr${j} = tx + ${tc * j}u;
  let kb${j} = kr${j} * D4;
  let ksw${j} = kr${j} & SWM;`)}

${c.prefetch ? `${rep(nl, (n) => `  var pf${n} = vec4<f32>(0.0);`)}
${regLoad(false, 'range.x')}` : ''}
  for (var kb = range.x; kb < range.y; kb += i32(BC)) {
    workgroupBarrier();
${c.prefetch ? regStore : '    loadTile(false, b, kb, range.y, h, li);'}
    workgroupBarrier();
${c.prefetch ? regLoad(true, 'kb') : ''}
${RM.map((i) => KP.map((j) => `    var s${i}_${j} = 0.0;`).join('\n')).join('\n')}
    for (var c = 0u; c < D4; c++) {
      let qc = c ^ qsw;
${RM.map((i) => `      let q${i} = Qs[(r0 + ${i}u) * D4 + qc];`).join('\n')}
${KP.map((j) => `      let k${j} = KV[kb${j} + (c ^ ksw${j})];`).join('\n')}
${RM.map((i) => KP.map((j) => `      s${i}_${j} += dot(q${i}, k${j});`).join('\n')).join('\n')}
    }
    // Every key of the tile visible to every row of the workgroup (uniform): no mask, and P·V needs no guard.
    let full = kb + i32(BC) <= range.y && tileFull(i0, i1, kb, kb + i32(BC));
    if (!full) {
${RM.map((i) => KP.map((j) => `      if (!(kb + i32(kr${j}) < range.y && visible(pos${i}, kb + i32(kr${j})))) { s${i}_${j} = ${NEG}; }`).join('\n')).join('\n')}
    }
${RM.map((i) => `    var mx${i} = max(${KP.map((j) => `s${i}_${j}`).reduce((x, y) => `max(${x}, ${y})`)}, ${NEG});`).join('\n')}
  ${rowMax}
${RM.map((i) => `    let mn${i} = max(m${i}, mx${i});
    let al${i} = exp2(m${i} - mn${i});
    m${i} = mn${i};
    l${i} *= al${i};
${CP.map((cc) => `    a${i}_${cc} *= al${i};`).join('\n')}
${KP.map((j) => `    let p${i}_${j} = exp2(s${i}_${j} - mn${i});
    l${i} += p${i}_${j};
    Ps[(r0 + ${i}u) * PSTR + kr${j}] = p${i}_${j};`).join('\n')}`).join('\n')}
    workgroupBarrier();
${c.prefetch ? regStore : '    loadTile(true, b, kb, range.y, h, li);'}
    workgroupBarrier();
${c.prefetch ? regLoad(false, '(kb + i32(BC))') : ''}
${[true, false].map((guarded) => `    ${guarded ? 'if (!full) {' : '} else {'}
    for (var k = 0u; k < BC; k++) {
      let vsw = k & SWM;
      let vb = k * D4;
${CP.map((cc) => `      let v${cc} = KV[vb + ((tx + ${tc * cc}u) ^ vsw)];`).join('\n')}
${RM.map((i) => `      let pp${i} = Ps[(r0 + ${i}u) * PSTR + k];`).join('\n')}
${RM.map((i) => CP.map((cc) => guarded
    ? `      a${i}_${cc} += select(vec4<f32>(0.0), pp${i} * v${cc}, pp${i} != 0.0);`
    : `      a${i}_${cc} += pp${i} * v${cc};`).join('\n')).join('\n')}
    }`).join('\n')}
    }
  }
${rowSum}
${RM.map((i) => `  {
    let r = r0 + ${i}u;
    if (r < TQ * G && i32(r / G) < nTok) {
      let inv = select(0.0, 1.0 / l${i}, l${i} > 0.0);
      let base = (u32(rowOff + tq0) + r / G) * NH * D4 + (h * G + r % G) * D4;
${CP.map((cc) => `      o[base + tx + ${tc * cc}u] = a${i}_${cc} * inv;`).join('\n')}
    }
  }`).join('\n')}
}
`;
}
