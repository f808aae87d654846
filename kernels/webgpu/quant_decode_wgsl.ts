/**
 * WGSL of QuantMatMul's decode GEMV (T <= 8 rows) for the row-major packed formats (e4m3, int8,
 * nvfp4, bf16, f16; weights `[N, words]`), built on the float32 GEMV's structure (gemv_wgsl.ts):
 * every load is a 16-byte vec4<u32> of packed words, and each loaded x vec4 is reused across rows.
 *
 * A workgroup of 256 threads is 256 / L lane groups of L lanes (L = the subgroup size where the
 * device has one fixed size, else 32); a lane group serves R weight rows, its lanes striding the
 * rows' vec4 units (16 e4m3 / int8 codes, 32 e2m1 codes or 8 halves each), so the lane groups of a
 * workgroup walk the same x columns together (L1 reuse across 256 / L * R rows). Per unit the R
 * rows' codes are widened once in registers and dotted with every x row:
 * - e4m3: two bytes a u32 shifted into f16 sign / exponent / mantissa, unpack2x16float (value / 2^8;
 *   the 2^8 goes into the row's final factor); a code 0x7f / 0xff (NaN) is flagged per lane and row
 *   by a zero-byte test of the words (no branch), and a flagged row's partial sums become NaN.
 * - int8: arithmetic shifts of the word; e2m1: nibble pairs (j, j + 4) shifted into f16 halves
 *   (value / 2^14, folded into the block scale); bf16: a shift / mask; f16: unpack2x16float.
 * Block scales (e4m3 / int8 `blockCols` a multiple of 16, nvfp4 per 16 columns) multiply the partial
 * dot of their 16 columns; tensor / row scales, weight_scale_2 and the bias come once per output.
 * The L partial sums of each (row, x row) are added by subgroupAdd (one lane group = one subgroup),
 * else by a tree in workgroup memory.
 *
 * Bindings: 0 x `[T, K/4]` vec4<f32>, 1 w `[N, K/kPerUnit]` vec4<u32>, 2 scale (when the format has
 * one), 3 bias (when given), 4 y `[T, N]`.
 */
import type { QuantWeightFormat } from '../kernel_names.js';

export type RowFormat = Exclude<QuantWeightFormat, 'gptq'>;

export interface QuantDecodeConfig {
  fmt: RowFormat;
  scale: 'none' | 'tensor' | 'rowwise' | 'block';
  T: number;
  K: number;
  N: number;
  /** Block of the e4m3 / int8 block scales (`blockCols` a multiple of 16). */
  blockRows: number;
  blockCols: number;
  /** NVFP4's weight_scale_2 (folded into the block scales' factor). */
  weightScale2: number;
  bias: boolean;
  /** Lanes per lane group: the fixed subgroup size when `subgroups`, else 32. */
  lanes: number;
  subgroups: boolean;
  /** Weight rows per lane group. */
  rows: number;
  /** Units per lane and loop iteration (all their loads issued first). */
  unroll: number;
}

/** Columns (codes) in one vec4<u32> unit. */
export const unitCols = (fmt: RowFormat): number => (fmt === 'nvfp4' ? 32 : fmt === 'bf16' || fmt === 'f16' ? 8 : 16);

/** Whether the decode kernel takes this shape (else the generic kernel). */
export function quantDecodeFits(fmt: RowFormat, scale: string, K: number, blockCols: number): boolean {
  if (K % unitCols(fmt) !== 0) return false;
  if (fmt === 'nvfp4') return true;
  return scale !== 'block' || blockCols % 16 === 0;
}

/** Rows per workgroup. */
export const decodeRowsPerGroup = (c: Pick<QuantDecodeConfig, 'lanes' | 'rows'>): number => (256 / c.lanes) * c.rows;

const f = (v: number) => (Number.isInteger(v) ? `${v}.0` : `${v}`);

/** Widened weight vec4s of unit word vector `u` (vec4<u32>) of one row: [expr, x vec4 offset, block]. */
function widen(fmt: RowFormat, u: string): { expr: string; xo: number; blk: number }[] {
  const comps = ['x', 'y', 'z', 'w'];
  switch (fmt) {
    case 'e4m3': return comps.map((c, j) => ({ expr: `e4m3x4(${u}.${c})`, xo: j, blk: 0 }));
    case 'int8': return comps.map((c, j) => ({ expr: `int8x4(${u}.${c})`, xo: j, blk: 0 }));
    case 'nvfp4': return comps.flatMap((c, j) => [
      { expr: `e2m1x8(${u}.${c}).lo`, xo: 2 * j, blk: j >> 1 }, { expr: `e2m1x8(${u}.${c}).hi`, xo: 2 * j + 1, blk: j >> 1 }]);
    case 'bf16': return [0, 1].map((h) => ({ expr: `bf16x4(${u}.${comps[2 * h]}, ${u}.${comps[2 * h + 1]})`, xo: h, blk: 0 }));
    case 'f16': return [0, 1].map((h) => ({ expr: `vec4<f32>(unpack2x16float(${u}.${comps[2 * h]}), unpack2x16float(${u}.${comps[2 * h + 1]}))`, xo: h, blk: 0 }));
  }
}

const HELPERS = /* wgsl */`
// e4m3 codes of a word -> values / 2^8 (bytes 0, 2 and 1, 3 as f16 pairs); NaN codes: e4m3Nan
fn e4m3x4(v: u32) -> vec4<f32> {
  let p = vec2<u32>(v, v >> 8u);
  let h = ((p & vec2<u32>(0x007f007fu)) << vec2<u32>(7u)) | ((p & vec2<u32>(0x00800080u)) << vec2<u32>(8u));
  let a = unpack2x16float(h.x);
  let b = unpack2x16float(h.y);
  return vec4<f32>(a.x, b.x, a.y, b.y);
}
// nonzero when a byte of the words is the code 0x7f / 0xff (NaN): a zero-byte test of v ^ 0x7f..
fn e4m3Nan(v: vec4<u32>) -> u32 {
  let z = (v & vec4<u32>(0x7f7f7f7fu)) ^ vec4<u32>(0x7f7f7f7fu);
  let m = (z - vec4<u32>(0x01010101u)) & ~z & vec4<u32>(0x80808080u);
  return m.x | m.y | m.z | m.w;
}
fn int8x4(v: u32) -> vec4<f32> {
  return vec4<f32>((vec4<i32>(bitcast<i32>(v)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
// e2m1 nibbles of a word as f16 halves (values / 2^14): pairs (j, j + 4) -> lo = columns 0..3, hi = 4..7
struct E2m1x8 { lo: vec4<f32>, hi: vec4<f32> }
fn e2m1x8(v: u32) -> E2m1x8 {
  let u = vec4<u32>(v, v >> 4u, v >> 8u, v >> 12u);
  let h = ((u & vec4<u32>(0x00070007u)) << vec4<u32>(9u)) | ((u & vec4<u32>(0x00080008u)) << vec4<u32>(12u));
  let a = unpack2x16float(h.x);
  let b = unpack2x16float(h.y);
  let c = unpack2x16float(h.z);
  let d = unpack2x16float(h.w);
  return E2m1x8(vec4<f32>(a.x, b.x, c.x, d.x), vec4<f32>(a.y, b.y, c.y, d.y));
}
fn bf16x4(a: u32, b: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(a << 16u, a & 0xffff0000u, b << 16u, b & 0xffff0000u));
}
`;

export function quantDecodeWgsl(c: QuantDecodeConfig): string {
  const { fmt, T, K, N, rows: R, lanes: L, unroll: U } = c;
  const cols = unitCols(fmt), V = K / cols, K4 = K / 4, x4 = cols / 4; // units per row, x vec4s per unit
  const groups = 256 / L, RW = groups * R;
  const Rs = [...Array(R).keys()], Ts = [...Array(T).keys()], Us = [...Array(U).keys()];
  const parts = widen(fmt, 'W');
  const blocks = [...new Set(parts.map((p) => p.blk))];
  const hasScale = fmt !== 'bf16' && fmt !== 'f16';
  const blockScaled = fmt === 'nvfp4' || c.scale === 'block';
  const steps = Math.ceil(V / (L * U));
  const guarded = V % (L * U) !== 0;
  // block scale index of row r, unit i, block b
  const scaleAt = (r: number, b: number) => (fmt === 'nvfp4' ? `sc[row${r} * ${K / 16}u + i * 2u + ${b}u]`
    : `sc[(row${r} / ${c.blockRows}u) * ${Math.ceil(K / c.blockCols)}u + (i * 16u) / ${c.blockCols}u]`);
  // unguarded steps load every unit's words first (all in flight at once), then widen and multiply
  const loadsFirst = (u: number) => Rs.map((r) => `let W${r}_u${u} = w[row${r} * ${V}u + it * ${L * U}u + ${u * L}u + lane];`).join(' ');
  const unitCode = (u: number) => {
    const lines: string[] = [`{ let i = it * ${L * U}u + ${u * L}u + lane;`];
    if (guarded) lines.push(`if (i < ${V}u) {`);
    for (const r of Rs) lines.push(guarded ? `let W${r} = w[row${r} * ${V}u + i];` : `let W${r} = W${r}_u${u};`);
    if (fmt === 'e4m3') for (const r of Rs) lines.push(`nan${r} |= e4m3Nan(W${r});`);
    for (const b of blocks) {
      const ps = parts.map((p, q) => ({ ...p, q })).filter((p) => p.blk === b);
      for (const r of Rs) {
        for (const p of ps) {
          const e = p.expr.replace(/W/g, `W${r}`);
          const m = /^(e2m1x8\((.*)\))\.(lo|hi)$/.exec(e);
          if (m && m[3] === 'lo') lines.push(`let e${r}_${p.q} = ${m[1]};`);
          lines.push(`let w${r}_${p.q} = ${m ? `e${r}_${m[3] === 'lo' ? p.q : p.q - 1}.${m[3]}` : e};`);
        }
      }
      if (blockScaled) for (const r of Rs) lines.push(`let s${r}_${b} = ${scaleAt(r, b)};`);
      for (const t of Ts) {
        lines.push('{');
        for (const p of ps) lines.push(`let x${p.q} = x[${t * K4}u + i * ${x4}u + ${p.xo}u];`);
        for (const r of Rs) {
          const dot = ps.map((p) => `dot(w${r}_${p.q}, x${p.q})`).join(' + ');
          lines.push(blockScaled ? `a${r}_${t} += (${dot}) * s${r}_${b};` : `a${r}_${t} += ${dot};`);
        }
        lines.push('}');
      }
    }
    if (guarded) lines.push('}');
    lines.push('}');
    return lines.join('\n      ');
  };
  // factor per output row: e4m3 2^8, nvfp4 2^14 * weight_scale_2, times the tensor / row scale
  const base = fmt === 'e4m3' ? 256 : fmt === 'nvfp4' ? 16384 * c.weightScale2 : 1;
  const factor = (n: string) => {
    const s = c.scale === 'tensor' && hasScale && fmt !== 'nvfp4' ? ' * sc[0]' : c.scale === 'rowwise' && fmt !== 'nvfp4' ? ` * sc[${n}]` : '';
    return `${f(base)}${s}`;
  };
  const slots = Rs.flatMap((r) => Ts.map((t) => ({ r, t, i: r * T + t })));
  const reduce = c.subgroups
    ? slots.map((s) => `let v${s.i} = subgroupAdd(a${s.r}_${s.t});`).join('\n  ')
    : [...slots.map((s) => `red[${s.i * 256}u + li] = a${s.r}_${s.t};`), 'workgroupBarrier();',
      `for (var st = ${L / 2}u; st > 0u; st >>= 1u) {`,
      `  if (lane < st) { ${slots.map((s) => `red[${s.i * 256}u + li] += red[${s.i * 256}u + li + st];`).join(' ')} }`,
      '  workgroupBarrier();', '}',
      ...slots.map((s) => `let v${s.i} = red[${s.i * 256}u + g * ${L}u];`)].join('\n  ');
  const stores = slots.map((s) => `if (lane == ${s.i % L}u && n0 + ${s.r}u < ${N}u) { y[${s.t * N}u + n0 + ${s.r}u] = v${s.i} * ${factor(`row${s.r}`)}${c.bias ? ` + bias[row${s.r}]` : ''}; }`);
  return /* wgsl */`${c.subgroups ? 'enable subgroups;\n' : ''}
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
${hasScale ? '@group(0) @binding(2) var<storage, read> sc: array<f32>;' : ''}
${c.bias ? '@group(0) @binding(3) var<storage, read> bias: array<f32>;' : ''}
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
${c.subgroups ? '' : `var<workgroup> red: array<f32, ${slots.length * 256}>;`}
${HELPERS}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = li / ${L}u;
  let lane = li % ${L}u;
  let n0 = wid.x * ${RW}u + g * ${R}u;
  ${Rs.map((r) => `let row${r} = min(n0 + ${r}u, ${N - 1}u);`).join(' ')}
  ${slots.map((s) => `var a${s.r}_${s.t} = 0.0;`).join(' ')}
  ${fmt === 'e4m3' ? Rs.map((r) => `var nan${r} = 0u;`).join(' ') : ''}
  for (var it = 0u; it < ${steps}u; it++) {
    ${guarded ? '' : Us.map(loadsFirst).join('\n    ')}
    ${Us.map(unitCode).join('\n    ')}
  }
  ${fmt === 'e4m3' ? `let nanV = bitcast<f32>(0x7fc00000u | (lane & 0u)); // runtime NaN (WGSL refuses a constant one)
  ${slots.map((s) => `a${s.r}_${s.t} += select(0.0, nanV, nan${s.r} != 0u);`).join(' ')}` : ''}
  ${reduce}
  ${stores.join('\n  ')}
}
`;
}
