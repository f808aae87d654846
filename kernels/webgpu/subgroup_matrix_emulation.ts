/**
 * Plain-WGSL stand-ins for the subgroup-matrix builtins (16 x 16 matrices, 32-lane subgroups), so
 * the tensor-core kernels (matmul_split_f16_wgsl.ts, flash_prefill_sgmat_wgsl.ts) can be checked on
 * devices without subgroup matrices (lavapipe in CI). Semantics as documented (Dawn
 * subgroup_matrix.md) and as the H200 does them (bench/device/sgmat_probe.ts: every layout, source
 * and stride exact): element (r, c) of a matrix (left: (m, k); right: (k, n); result: (m, n)) is at
 * `offset + r * stride + c` when row_major, `offset + c * stride + r` when col_major; products of
 * f16 summed in f32 (exact products, as on tensor cores); `subgroup_id` = local_invocation_index / 32.
 *
 * Each lane holds 8 elements of a matrix, as hardware does (lane l: elements l + 32 q, q < 8, in
 * row-major order), so private memory stays small and the kernels run at their real size. A
 * multiply goes through a per-subgroup scratch in workgroup memory (lanes write their elements,
 * barrier, each lane sums its 8 outputs over k, barrier), so every multiply must sit in
 * workgroup-uniform control flow (the kernels place them so: loops and branches on uniform values).
 *
 * Versions that lost: each lane held a whole 16 x 16 matrix (arrays of 256 passed by value): the
 * split-f16 probe tile ran 78 s on lavapipe for a 150 x 136 product and the prefill kernel (16 such
 * matrices per lane at d128) could not be compiled in reasonable time.
 *
 * @example
 * const code = emulated(matmulSplitF16Wgsl({ ...cfg })); // WGSL with no subgroup-matrix builtins
 */

/** Builtins the rewrite removes or replaces; a kernel that still names one after it is refused. */
const LEFTOVER = /subgroupMatrix|subgroup_matrix|chromium_experimental_subgroup_matrix/;

/** Element type of a matrix type spelled in WGSL (its alias resolved), and whether it is an f32 result. */
function elementOf(type: string, aliases: Map<string, string>): 'f16' | 'f32' {
  const t = aliases.get(type) ?? type;
  const m = /subgroup_matrix_(left|right|result)<(f16|f32), 16, 16>/.exec(t);
  if (!m) throw new Error(`[emulated] matrix type (${type}) must be a 16 x 16 f16 or f32 subgroup matrix`);
  return m[2] as 'f16' | 'f32';
}

/** Part of a kernel to emulate (device diagnostics): matrices of these alias types, stores of and products into values named so. */
export interface EmulatedPart { aliases: string[]; values: RegExp }

/**
 * Rewrites WGSL that uses the subgroup-matrix builtins into plain WGSL (see above); with `only`, just
 * that part (the rest stays on the device's matrices). Needs the entry point to take
 * `@builtin(local_invocation_index)`.
 */
export function emulated(code: string, only?: EmulatedPart): string {
  const aliases = new Map<string, string>();
  for (const m of code.matchAll(/alias (\w+) = (subgroup_matrix_\w+<[^>]+>);/g)) aliases.set(m[1], m[2]);
  const threads = /@workgroup_size\((\d+)\)/.exec(code);
  if (!threads) throw new Error('[emulated] the kernel must declare a literal @workgroup_size');
  const nsg = Math.ceil(Number(threads[1]) / 32);
  const li = /@builtin\(local_invocation_index\) (\w+): u32/.exec(code);
  if (!li) throw new Error('[emulated] the entry point must take @builtin(local_invocation_index)');
  const mine = (alias: string) => !only || only.aliases.includes(alias);
  const helpers = new Map<string, string>();
  const loadHelper = (type: string, major: string, arr: string): string => {
    const el = elementOf(type, aliases);
    const name = `smLoad_${arr}_${major}_${el}`;
    helpers.set(name, `fn ${name}(off: u32, stride: u32) -> array<${el}, 8> {
  var v: array<${el}, 8>;
  for (var q = 0u; q < 8u; q++) {
    let e = smLane + 32u * q;
    v[q] = ${el}(${arr}[off + ${major === 'row' ? 'e / 16u * stride + e % 16u' : 'e % 16u * stride + e / 16u'}]);
  }
  return v;
}`);
    return name;
  };
  const storeHelper = (major: string, arr: string): string => {
    const name = `smStore_${arr}_${major}`;
    helpers.set(name, `fn ${name}(off: u32, v: array<f32, 8>, stride: u32) {
  for (var q = 0u; q < 8u; q++) {
    let e = smLane + 32u * q;
    ${arr}[off + ${major === 'row' ? 'e / 16u * stride + e % 16u' : 'e % 16u * stride + e / 16u'}] = v[q];
  }
}`);
    return name;
  };
  let out = code
    .replace(/alias (\w+) = subgroup_matrix_(?:left|right)<f16, 16, 16>;/g, (all, a: string) => (mine(a) ? `alias ${a} = array<f16, 8>;` : all))
    .replace(/alias (\w+) = subgroup_matrix_result<f32, 16, 16>;/g, (all, a: string) => (mine(a) ? `alias ${a} = array<f32, 8>;` : all))
    .replace(/subgroupMatrixLoad<((?:subgroup_matrix_\w+<[^>]+>)|\w+), (row|col)_major>\(&(\w+), /g,
      (all, type: string, major: string, arr: string) => (mine(type) ? `${loadHelper(type, major, arr)}(` : all))
    .replace(/subgroupMatrixStore<(row|col)_major>\(&(\w+), ([^,]+), (\w+), /g,
      (all, major: string, arr: string, off: string, value: string) => (!only || only.values.test(value) ? `${storeHelper(major, arr)}(${off}, ${value}, ` : all))
    .replace(/(\w+) = subgroupMatrixMultiplyAccumulate\(/g, (all, lhs: string) => (!only || only.values.test(lhs) ? `${lhs} = smMma(` : all));
  const lets: string[] = [`smSg = ${li[1]} / 32u;`, `smLane = ${li[1]} % 32u;`];
  if (!only) {
    out = out
      .replace(/enable chromium_experimental_subgroup_matrix;\n?/, '')
      .replace(/requires subgroup_id;\n?/, '')
      .replace(/subgroup_matrix_(?:left|right)<f16, 16, 16>\(\)/g, 'array<f16, 8>()')
      .replace(/subgroup_matrix_result<f32, 16, 16>\(\)/g, 'array<f32, 8>()');
    // subgroup_id / subgroup_invocation_id parameters become lets from the invocation index
    out = out.replace(/,\s*@builtin\((subgroup_id|subgroup_invocation_id)\) (\w+): u32/g, (_, which: string, name: string) => {
      lets.push(`let ${name} = ${which === 'subgroup_id' ? 'smSg' : 'smLane'};`);
      return '';
    });
    if (!/subgroup(Shuffle|Broadcast|Add|Max|Min|Ballot|Elect|All|Any)/.test(out)) out = out.replace(/enable subgroups;\n?/, '');
  }
  out = out.replace(/(@compute[^{]*\{)/, `$1\n  ${lets.join('\n  ')}`);
  const shared = /* wgsl */ `
var<private> smSg: u32;
var<private> smLane: u32;
var<workgroup> smA: array<f16, ${256 * nsg}>;
var<workgroup> smB: array<f16, ${256 * nsg}>;
/** acc + a · b over this subgroup's fragments (lane: elements lane + 32 q of each). */
fn smMma(a: array<f16, 8>, b: array<f16, 8>, acc: array<f32, 8>) -> array<f32, 8> {
  let base = smSg * 256u;
  for (var q = 0u; q < 8u; q++) { smA[base + smLane + 32u * q] = a[q]; smB[base + smLane + 32u * q] = b[q]; }
  workgroupBarrier();
  var o = acc;
  for (var q = 0u; q < 8u; q++) {
    let e = smLane + 32u * q;
    let r = e / 16u;
    let c = e % 16u;
    var s = 0.0;
    for (var k = 0u; k < 16u; k++) { s += f32(smA[base + r * 16u + k]) * f32(smB[base + k * 16u + c]); }
    o[q] += s;
  }
  workgroupBarrier();
  return o;
}
${[...helpers.values()].join('\n')}
`;
  out = out.replace(/(\n@compute)/, `${shared}$1`);
  if (!only && LEFTOVER.test(out)) throw new Error(`[emulated] a subgroup-matrix builtin is left after the rewrite: ${LEFTOVER.exec(out)![0]}`);
  return out;
}
