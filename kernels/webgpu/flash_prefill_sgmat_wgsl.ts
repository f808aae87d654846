/**
 * WGSL of FlashAttentionRaggedPaged's prefill path on tensor cores: subgroup matrices
 * (`chromium-experimental-subgroup-matrix`, f16 x f16 -> f32, 16x16x16) for S = Q K^T and O += P V,
 * online softmax in f32. Needs `shader-f16`, `subgroups` and a subgroup size of 32.
 * Taken for float16 caches (flash_plan.ts `prefillSgmat`). H200: rel err 2.6e-4 against float64 at
 * 1x4096 32/8 d128 causal, 9.11 ms (the f32 tiles 9.96, PyTorch f16 SDPA 0.28): correct, not yet fast.
 * Every workgroup variable is a multiple of 16 bytes: a lone u32 (the rescale flag) made the H200's
 * matrix loads read wrong data (bench/device/sgmat_prefill_check.ts `scalar-flag`).
 *
 * One workgroup of NSG subgroups per (tile of TQ new tokens, KV head h); its MR = 16 * NSG rows are
 * the TQ tokens x G query heads (row r = token r / G, head h * G + r % G), subgroup s owns rows
 * 16s .. 16s + 15. Q (pre-scaled, as f16) is loaded once into left matrices (registers). Per key
 * tile of BN keys: the K tile goes to shared memory as f16 (any cache format, widened by ldK then
 * narrowed), each subgroup multiplies into BN / 16 result matrices and stores S (f32) to shared;
 * lane l of a subgroup owns half a row (row l / 2, BN / 2 columns): mask, row max (a shuffle with
 * its twin), P = exp2(S - m) as f16 to shared; the V tile replaces K; O (HD / 16 result matrices
 * per subgroup, registers) += P V.
 * Rescaling: a matrix's elements are not addressable, so O is rescaled only when some row's max
 * grew by more than 2^RESCALE (then O goes through shared memory, is scaled per row and reloaded:
 * a branch on a workgroup-uniform flag, taken a few times per row at most); otherwise P is taken
 * against the stale max (at most 2^RESCALE, far inside f16) and l follows the same max, so the
 * ratio O / l is exact.
 * NaN causality: on tiles with masked keys, non-finite V rows are zeroed in shared memory and
 * flagged; a row that sees a flagged key writes NaN (as the f32 kernels would), other rows never
 * see it (P = 0 times a zeroed row).
 * Precision: Q, K, V and P in f16 (11-bit mantissa), sums in f32, as half-precision flash
 * attention (PyTorch f16 SDPA) does: rel err ~5e-4 against float64 on an f16 cache.
 */
import { flashPrelude, M_INIT, maskWgsl, NEG, rep } from './flash_common_wgsl.js';
import type { PrefillShape } from './flash_prefill_wgsl.js';
import { emulated } from './subgroup_matrix_emulation.js';

export interface SgmatPrefillConfig {
  /** Subgroups per workgroup (16 rows each). */
  nsg: number;
  /** Keys per tile (a multiple of 32). */
  bn: number;
  /**
   * How a subgroup learns its index, which must be uniform for the matrix loads' offsets:
   * `builtin` (`@builtin(subgroup_id)`, WGSL language feature `subgroup_id`) or `broadcast`
   * (`subgroupBroadcastFirst(local_invocation_index / 32)`).
   */
  sgid: 'builtin' | 'broadcast';
  /**
   * How a lane and its twin (lane ^ 1, the other half of the row) combine row max and sum:
   * `shuffle` (subgroupShuffleXor) or `shared` (through workgroup memory, two barriers; no subgroup
   * operation beside the matrices: NVIDIA's driver has been seen to mishandle cooperative matrices
   * next to GroupNonUniform* operations, kvark/blade#333).
   */
  xchg?: 'shuffle' | 'shared';
  /**
   * Q in its own workgroup array, its matrices loaded again in every key tile (instead of once,
   * before the loop, from the K/V region that the key tiles then overwrite).
   */
  qReload?: boolean;
  /**
   * Specs on devices without subgroup matrices: the matrix ops in plain WGSL (subgroup_matrix_emulation.ts);
   * `qk` / `pv` (device diagnostics): only S = Q Kᵀ or only O += P V emulated, the other on the device's matrices.
   */
  emulate?: boolean | 'qk' | 'pv';
}

/** Max growth (log2) tolerated before O is rescaled. */
const RESCALE = 8;

/** Whether the kernel applies: head dim a multiple of 16 up to 256, G dividing 16 * nsg. */
export function sgmatPrefillFits(c: SgmatPrefillConfig, s: PrefillShape): boolean {
  const g = s.nHeads / s.nKvHeads;
  return s.headDim % 16 === 0 && s.headDim <= 256 && (16 * c.nsg) % g === 0 && c.bn % 32 === 0;
}

export function sgmatPrefillSharedBytes(c: SgmatPrefillConfig, s: PrefillShape): number {
  const mr = 16 * c.nsg;
  const scratch = (c.emulate ? 2 * 2 * 256 * c.nsg : 0) + (c.xchg === 'shared' ? 4 * 32 * c.nsg : 0) // emulation scratch, twin exchange
    + (c.qReload ? 2 * mr * (s.headDim + 8) : 0);
  return 2 * Math.max(c.bn, mr) * (s.headDim + 8) + 4 * mr * (c.bn + 4) + 2 * mr * (c.bn + 8) + 4 * c.bn + 16 + scratch;
}

export function flashPrefillSgmatWgsl(c: SgmatPrefillConfig, s: PrefillShape): string {
  const g = s.nHeads / s.nKvHeads;
  const mr = 16 * c.nsg;
  const tq = mr / g;
  const hd = s.headDim;
  const nk = hd / 16; // k-chunks of Q K^T, and O matrices
  const nn = c.bn / 16; // S matrices, and k-chunks of P V
  const half = c.bn / 2; // columns of a row per lane
  const chunks = Math.ceil(nk / nn); // O goes through the S region in chunks of nn matrices
  const K = [...Array(nk).keys()], N = [...Array(nn).keys()];
  // O through the S region, nn matrices at a time: store, a per-lane body over its half row, (reload).
  const oThroughShared = (body: (first: number, col: string) => string, reload: boolean, step: number) => rep(chunks, (ch) => {
    const os = K.slice(ch * nn, (ch + 1) * nn);
    return `  workgroupBarrier();
${os.map((o, x) => `  subgroupMatrixStore<row_major>(&Ss, sgRow * SST + ${x * 16}u, o${o}, SST);`).join('\n')}
  workgroupBarrier();
  for (var x = 0u; x < ${half}u; x += ${step}u) {
    let col = hf * ${half}u + x;
    if (col < ${os.length * 16}u) { ${body(ch * nn * 16, 'col')} }
  }
${reload ? `  workgroupBarrier();\n${os.map((o, x) => `  o${o} = subgroupMatrixLoad<AccO, row_major>(&Ss, sgRow * SST + ${x * 16}u, SST);`).join('\n')}` : ''}`;
  });
  const shared = c.xchg === 'shared';
  // the twin's value of v (lane ^ 1): a shuffle, or through xch (uniform control flow only)
  const twin = (v: string, out: string) => (shared
    ? `xch[li] = ${v};\n    workgroupBarrier();\n    let ${out} = xch[li ^ 1u];\n    workgroupBarrier();`
    : `let ${out} = subgroupShuffleXor(${v}, 1u);`);
  const qLoads = (ind: string, arr: string) => K.map((k) => `${ind}let q${k} = subgroupMatrixLoad<LeftM, row_major>(&${arr}, sgRow * KST + ${16 * k}u, KST);`).join('\n');
  const code = /* wgsl */ `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;${c.sgid === 'builtin' ? '\nrequires subgroup_id;' : ''}
diagnostic(off, subgroup_uniformity);
${flashPrelude(hd, s.nHeads, s.nKvHeads, s.kv)}
${maskWgsl()}
alias LeftM = subgroup_matrix_left<f16, 16, 16>;
alias RightM = subgroup_matrix_right<f16, 16, 16>;
alias AccM = subgroup_matrix_result<f32, 16, 16>;
// P V under its own names (a diagnostic emulation may take one product to plain WGSL and not the other)
alias LeftP = subgroup_matrix_left<f16, 16, 16>;
alias RightV = subgroup_matrix_right<f16, 16, 16>;
alias AccO = subgroup_matrix_result<f32, 16, 16>;
const TQ: u32 = ${tq}u;
const MR: u32 = ${mr}u;
const BN: u32 = ${c.bn}u;
const WG: u32 = ${32 * c.nsg}u;
const KST: u32 = ${hd + 8}u;
const SST: u32 = ${c.bn + 4}u;
const PST: u32 = ${c.bn + 8}u;

var<workgroup> KVs: array<f16, ${Math.max(c.bn, mr) * (hd + 8)}>;
var<workgroup> Ss: array<f32, ${mr * (c.bn + 4)}>;
var<workgroup> Ps: array<f16, ${mr * (c.bn + 8)}>;
var<workgroup> badV: array<u32, ${c.bn}>;
// 16 bytes, not a 4-byte scalar: every workgroup variable a multiple of 16 bytes. On the H200 a lone
// u32 in workgroup memory left the subgroup-matrix loads reading wrong data (rel err ~2; the split-f16
// matmul broke the same way when its flag moved to a u32: bench/device/sgmat_split_check.ts ovf-var).
var<workgroup> rescaleFlag: array<u32, 4>;
${shared ? `var<workgroup> xch: array<f32, ${32 * c.nsg}>;` : ''}
${c.qReload ? `var<workgroup> Qs: array<f16, ${mr * (hd + 8)}>;` : ''}

fn put4(at: u32, v: vec4<f32>) {
  KVs[at] = f16(v.x); KVs[at + 1u] = f16(v.y); KVs[at + 2u] = f16(v.z); KVs[at + 3u] = f16(v.w);
}

@compute @workgroup_size(${32 * c.nsg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32${c.sgid === 'builtin' ? `, @builtin(subgroup_id) sgId: u32${shared ? '' : ', @builtin(subgroup_invocation_id) sgLane: u32'}` : ''}) {
  let tile = wid.x;
  let h = wid.y;
  if (tile >= u32(mt[0])) { return; }
  let tOff = u32(mt[6]) + 2u * tile;
  let b = mt[tOff];
  let tq0 = mt[tOff + 1u];
  let sOff = 16u + 4u * u32(b);
  let start = mt[sOff];
  let nNew = mt[sOff + 1u];
  let rowOff = mt[sOff + 2u];
  let nTok = min(i32(TQ), nNew - tq0);
  let i0 = start + tq0;
  let i1 = i0 + nTok - 1;
  let range = keyRange(i0, i1, start + nNew);
  let qs = bitcast<f32>(mt[8]);
  let sg = ${c.sgid === 'builtin' ? 'sgId' : 'subgroupBroadcastFirst(li / 32u)'};
  let lane = ${c.sgid === 'builtin' && !shared ? 'sgLane' : 'li % 32u'}; // the shuffles pair lanes by subgroup invocation id
  let sgRow = sg * 16u;
  let row = sgRow + lane / 2u; // this lane's softmax row (with its twin lane ^ 1)
  let hf = lane % 2u;
  let myPos = i0 + i32(row / G);
  let rowLive = i32(row / G) < nTok;
  let qnan = bitcast<f32>(0x7fc00000u + u32(min(mt[0], 0))); // a runtime NaN (a constant one is a compile error)

  for (var idx = li; idx < MR * D4; idx += WG) {
    let r = idx / D4;
    let cc = idx % D4;
    var val = vec4<f32>(0.0);
    if (i32(r / G) < nTok) { val = q[(u32(rowOff + tq0) + r / G) * NH * D4 + (h * G + r % G) * D4 + cc] * qs; }
    ${c.qReload ? 'let at = r * KST + 4u * cc;\n    Qs[at] = f16(val.x); Qs[at + 1u] = f16(val.y); Qs[at + 2u] = f16(val.z); Qs[at + 3u] = f16(val.w);' : 'put4(r * KST + 4u * cc, val);'}
  }
  workgroupBarrier();
${c.qReload ? '' : qLoads('  ', 'KVs')}
${K.map((k) => `  var o${k} = AccO();`).join('\n')}
  var m = ${M_INIT};
  var l = 0.0;
  var sawBad = false;

  for (var kb = range.x; kb < range.y; kb += i32(BN)) {
    workgroupBarrier();
    for (var idx = li; idx < BN * D4; idx += WG) {
      let kk = idx / D4;
      let j = kb + i32(kk);
      var val = vec4<f32>(0.0);
      if (j < range.y) { val = ldK(kvAddr(b, j, h) + idx % D4); }
      put4(kk * KST + 4u * (idx % D4), val);
    }
    for (var x = li; x < BN; x += WG) { badV[x] = 0u; }
    if (li == 0u) { rescaleFlag[0] = 0u; }
    workgroupBarrier();
${c.qReload ? qLoads('    ', 'Qs') : ''}${N.map((n) => `    {
      var s = AccM();
${K.map((k) => `      s = subgroupMatrixMultiplyAccumulate(q${k}, subgroupMatrixLoad<RightM, col_major>(&KVs, ${16 * n}u * KST + ${16 * k}u, KST), s);`).join('\n')}
      subgroupMatrixStore<row_major>(&Ss, sgRow * SST + ${16 * n}u, s, SST);
    }`).join('\n')}
    let full = kb + i32(BN) <= range.y && tileFull(i0, i1, kb, kb + i32(BN));
    workgroupBarrier();
    // V tile over K (every subgroup's S is in Ss); on tiles with masked keys, non-finite rows zeroed and flagged.
    for (var idx = li; idx < BN * D4; idx += WG) {
      let kk = idx / D4;
      let j = kb + i32(kk);
      var val = vec4<f32>(0.0);
      if (j < range.y) { val = ldV(kvAddr(b, j, h) + idx % D4); }
      let fin = all(abs(val) <= vec4<f32>(3.0e38));
      if (!full && !fin) { val = vec4<f32>(0.0); badV[kk] = 1u; }
      put4(kk * KST + 4u * (idx % D4), val);
    }
    var mx = ${NEG};
    for (var x = 0u; x < ${half}u; x++) {
      let cix = hf * ${half}u + x;
      var sv = Ss[row * SST + cix];
      if (!full && !(kb + i32(cix) < range.y && visible(myPos, kb + i32(cix)))) { sv = ${NEG}; Ss[row * SST + cix] = sv; }
      mx = max(mx, sv);
    }
    ${twin('mx', 'mxTwin')}
    mx = max(mx, mxTwin);
    var al = 1.0;
    if (mx > m + ${RESCALE}.0) {
      al = exp2(m - mx);
      m = mx;
    }
    ${twin('l', 'lTwin')}
    let lRow = l + lTwin;
    if (al != 1.0 && lRow > 0.0) { rescaleFlag[0] = 1u; }
    var ls = 0.0;
    for (var x = 0u; x < ${half}u; x++) {
      let cix = hf * ${half}u + x;
      let p = exp2(Ss[row * SST + cix] - m);
      ls += p;
      Ps[row * PST + cix] = f16(p);
    }
    l = l * al + ls;
    let need = workgroupUniformLoad(&rescaleFlag[0]);
    if (!full) {
      for (var x = 0u; x < ${half}u; x++) {
        let cix = hf * ${half}u + x;
        if (badV[cix] != 0u && kb + i32(cix) < range.y && visible(myPos, kb + i32(cix))) { sawBad = true; }
      }
    }
    if (need != 0u) {
${oThroughShared((_, col) => `Ss[row * SST + ${col}] *= al;`, true, 1)}
    }
${N.map((n) => `    {
      let p = subgroupMatrixLoad<LeftP, row_major>(&Ps, sgRow * PST + ${16 * n}u, PST);
${K.map((k) => `      o${k} = subgroupMatrixMultiplyAccumulate(p, subgroupMatrixLoad<RightV, row_major>(&KVs, ${16 * n}u * KST + ${16 * k}u, KST), o${k});`).join('\n')}
    }`).join('\n')}
  }
  ${twin('l', 'lTwin')}
  let lRow = l + lTwin;
  let inv = select(0.0, 1.0 / lRow, lRow > 0.0);
  let outRow = (u32(rowOff + tq0) + row / G) * NH * D4 + (h * G + row % G) * D4; // vec4 index of the row
${oThroughShared((first, col) => `if (rowLive) {
      let at = row * SST + ${col};
      let v = vec4<f32>(Ss[at], Ss[at + 1u], Ss[at + 2u], Ss[at + 3u]) * inv;
      o[outRow + (${first}u + ${col}) / 4u] = select(v, vec4<f32>(qnan), sawBad);
    }`, false, 4)}
}
`;
  if (c.emulate === 'qk') return emulated(code, { aliases: ['LeftM', 'RightM', 'AccM'], values: /^s$/ });
  if (c.emulate === 'pv') return emulated(code, { aliases: ['LeftP', 'RightV', 'AccO'], values: /^o\d+$/ });
  return c.emulate ? emulated(code) : code;
}
