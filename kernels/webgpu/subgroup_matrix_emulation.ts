/**
 * Plain-WGSL stand-ins for the subgroup-matrix builtins that matmul_split_f16_wgsl.ts uses, so its
 * numbers can be checked on devices without subgroup matrices (lavapipe in CI).
 */
/**
 * The subgroup-matrix builtins as documented (Dawn subgroup_matrix.md) in plain WGSL, each lane
 * holding a whole matrix: left loads row-major (element (m, k) at offset + m stride + k), right
 * loads column-major ((k, n) at offset + n stride + k), f16 products accumulated in f32 (exact,
 * as on tensor cores), results stored row-major; `subgroup_id` = t / 32.
 */
export function emulated(code: string): string {
  const load = (arr: string, major: 'row' | 'col') => `
fn smLoad_${arr}(off: u32, stride: u32) -> array<f16, 256> {
  var m: array<f16, 256>;
  for (var r = 0u; r < 16u; r++) { for (var c = 0u; c < 16u; c++) { m[r * 16u + c] = ${arr}[off + ${major === 'row' ? 'r * stride + c' : 'c * stride + r'}]; } }
  return m;
}`;
  const helpers = `${load('Xh', 'row')}${load('Xl', 'row')}${load('Wh', 'col')}${load('Wl', 'col')}
fn smMma(a: array<f16, 256>, b: array<f16, 256>, acc: array<f32, 256>) -> array<f32, 256> {
  var o = acc;
  for (var m = 0u; m < 16u; m++) { for (var n = 0u; n < 16u; n++) {
    var s = o[m * 16u + n];
    for (var k = 0u; k < 16u; k++) { s += f32(a[m * 16u + k]) * f32(b[k * 16u + n]); }
    o[m * 16u + n] = s;
  } }
  return o;
}
fn smStore(off: u32, v: array<f32, 256>, stride: u32) {
  for (var r = 0u; r < 16u; r++) { for (var c = 0u; c < 16u; c++) { St[off + r * stride + c] = v[r * 16u + c]; } }
}
`;
  return code
    .replace('enable subgroups;\nenable chromium_experimental_subgroup_matrix;\n', '')
    .replace(/subgroupMatrixLoad<subgroup_matrix_(?:left|right)<f16, 16, 16>, (?:row|col)_major>\(&(\w+), /g, 'smLoad_$1(')
    .replace(/subgroupMatrixMultiplyAccumulate\(/g, 'smMma(')
    .replace(/subgroupMatrixStore<row_major>\(&St, /g, 'smStore(')
    .replace(/subgroup_matrix_result<f32, 16, 16>\(\)/g, 'array<f32, 256>()')
    .replace(',\n        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {', ') {\n  let sg = t / 32u;\n  let lane = t % 32u;')
    .replace('@compute', `${helpers}\n@compute`);
}
