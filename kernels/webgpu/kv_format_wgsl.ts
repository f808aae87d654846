/**
 * WGSL for the cache formats (kvParams.dtype, core/kv_dtype.ts) on webgpu: the attention kernels'
 * K/V bindings with `ldK(a)` / `ldV(a)` (vec4 number `a` of a pool, widened to f32 in registers) and
 * the store's `encode` helpers. Codes sit in u32 words exactly as in the host pools' bytes:
 * - float32: `array<vec4<f32>>`;
 * - float16: `array<vec2<u32>>`, unpack2x16float (core WGSL, no shader-f16 needed);
 * - bfloat16: `array<vec2<u32>>`, each half shifted into the top of an f32;
 * - int8: `array<u32>` of 4 codes, sign-extended, times the row's scale (bindings 10 / 11:
 *   `[pages, NKV, PS]` f32, row = a / D4);
 * - float8_e4m3: `array<u32>` of 4 codes; a code's bits moved into an f16 (same mantissa, exponent
 *   bias 15 instead of 7: value * 2^-8), so the scale baked in is kScale * 256.
 */
import type { KVCacheDType } from '../../core/kv_dtype.js';

const f = (x: number): string => (Number.isInteger(x) ? `${x}.0` : `${x}`);

/** Bindings 2 (K) and 3 (V) (+10 / 11 for int8 scales) and ldK / ldV, for a cache of `dtype`. */
export function kvLoadWgsl(dtype: KVCacheDType, kScale: number, vScale: number): string {
  const decl = (name: string, type: string, binding: number) => `@group(0) @binding(${binding}) var<storage, read> ${name}: array<${type}>;`;
  const ld = (fn: string, pool: string, body: string) => `fn ${fn}(a: u32) -> vec4<f32> { let w = ${pool}[a]; ${body} }`;
  switch (dtype) {
    case 'float32':
      return [decl('kp', 'vec4<f32>', 2), decl('vp', 'vec4<f32>', 3), ld('ldK', 'kp', 'return w;'), ld('ldV', 'vp', 'return w;')].join('\n');
    case 'float16': {
      const body = 'return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));';
      return [decl('kp', 'vec2<u32>', 2), decl('vp', 'vec2<u32>', 3), ld('ldK', 'kp', body), ld('ldV', 'vp', body)].join('\n');
    }
    case 'bfloat16': {
      const body = 'return vec4<f32>(bitcast<f32>(w.x << 16u), bitcast<f32>(w.x & 0xffff0000u), bitcast<f32>(w.y << 16u), bitcast<f32>(w.y & 0xffff0000u));';
      return [decl('kp', 'vec2<u32>', 2), decl('vp', 'vec2<u32>', 3), ld('ldK', 'kp', body), ld('ldV', 'vp', body)].join('\n');
    }
    case 'int8': {
      const codes = 'vec4<f32>(vec4<i32>(bitcast<i32>(w << 24u) >> 24u, bitcast<i32>(w << 16u) >> 24u, bitcast<i32>(w << 8u) >> 24u, bitcast<i32>(w) >> 24u))';
      return [decl('kp', 'u32', 2), decl('vp', 'u32', 3), decl('ksc', 'f32', 10), decl('vsc', 'f32', 11),
        ld('ldK', 'kp', `return ${codes} * ksc[a / D4];`), ld('ldV', 'vp', `return ${codes} * vsc[a / D4];`)].join('\n');
    }
    case 'float8_e4m3': {
      const half = (x: string) => `(((${x} & 0x80u) << 8u) | ((${x} & 0x7fu) << 7u) | ((${x} & 0x8000u) << 16u) | ((${x} & 0x7f00u) << 15u))`;
      const codes = `vec4<f32>(unpack2x16float(${half('w')}), unpack2x16float(${half('(w >> 16u)')}))`;
      return [decl('kp', 'u32', 2), decl('vp', 'u32', 3),
        ld('ldK', 'kp', `return ${codes} * ${f(kScale * 256)};`), ld('ldV', 'vp', `return ${codes} * ${f(vScale * 256)};`)].join('\n');
    }
  }
}

/** Elements per u32 word of the pools (float32 counts as 1: it is stored as f32, not packed). */
export function elementsPerWord(dtype: KVCacheDType): number {
  return dtype === 'float32' ? 1 : dtype === 'float16' || dtype === 'bfloat16' ? 2 : 4;
}

/**
 * `encodeWord(x: vec4<f32>, s: f32) -> u32` packing 4 (int8, e4m3: `s` is 1 / scale) or 2 (float16,
 * bfloat16: x.xy) values into one word, round to nearest even, saturating as the host encoder does.
 */
export function kvEncodeWgsl(dtype: KVCacheDType): string {
  switch (dtype) {
    case 'float16':
      return 'fn encodeWord(x: vec4<f32>, s: f32) -> u32 { return pack2x16float(x.xy); }';
    case 'bfloat16':
      return `fn bf16(x: f32) -> u32 { let b = bitcast<u32>(x); return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u; }
fn encodeWord(x: vec4<f32>, s: f32) -> u32 { return bf16(x.x) | (bf16(x.y) << 16u); }`;
    case 'int8':
      return `fn encodeWord(x: vec4<f32>, s: f32) -> u32 {
  let c = vec4<i32>(clamp(round(x * s), vec4<f32>(-127.0), vec4<f32>(127.0)));
  return (u32(c.x) & 0xffu) | ((u32(c.y) & 0xffu) << 8u) | ((u32(c.z) & 0xffu) << 16u) | ((u32(c.w) & 0xffu) << 24u);
}`;
    case 'float8_e4m3':
      return `fn e4m3(v: f32) -> u32 {
  let a = abs(v);
  let sgn = select(0u, 0x80u, v < 0.0);
  if (a >= 448.0) { return sgn | 0x7eu; }
  var e = i32(floor(log2(max(a, 1e-30))));
  if (exp2(f32(e)) > a) { e -= 1; }
  if (exp2(f32(e + 1)) <= a) { e += 1; }
  e = max(e, -6);
  let r = i32(round(a / exp2(f32(e - 3))));
  return sgn | u32(min((e + 7) * 8 + r - 8, 126));
}
fn encodeWord(x: vec4<f32>, s: f32) -> u32 {
  return e4m3(x.x * s) | (e4m3(x.y * s) << 8u) | (e4m3(x.z * s) << 16u) | (e4m3(x.w * s) << 24u);
}`;
    default:
      return '';
  }
}

/**
 * Wide loads of a compact cache (flash_decode_packed_wgsl.ts): bindings 2 (K) and 3 (V) as
 * `array<vec4<u32>>` (16 bytes: 8 halves or 16 byte codes a load), + 10 / 11 for int8 row scales.
 */
export function kvWideBindingsWgsl(dtype: KVCacheDType): string {
  const decl = (name: string, type: string, binding: number) => `@group(0) @binding(${binding}) var<storage, read> ${name}: array<${type}>;`;
  const pools = [decl('kp', 'vec4<u32>', 2), decl('vp', 'vec4<u32>', 3)];
  if (dtype === 'int8') pools.push(decl('ksc', 'f32', 10), decl('vsc', 'f32', 11));
  if (dtype === 'float8_e4m3') pools.push('fn e4m3Half(x: u32) -> u32 { return ((x & 0x80u) << 8u) | ((x & 0x7fu) << 7u) | ((x & 0x8000u) << 16u) | ((x & 0x7f00u) << 15u); }');
  return pools.join('\n');
}

/**
 * WGSL expression: elements 4k .. 4k+3 (a vec4<f32>) of the 16-byte word `w` (vec4<u32>), as code
 * values before the row / tensor scale (`wideScale`): float16 / bfloat16 exact, int8 the integer
 * codes, float8_e4m3 the value * 2^-8 (the code's bits moved into an f16).
 */
export function wideDecode(dtype: KVCacheDType, w: string, k: number): string {
  const c = 'xyzw';
  switch (dtype) {
    case 'float16':
      return `vec4<f32>(unpack2x16float(${w}.${c[2 * k]}), unpack2x16float(${w}.${c[2 * k + 1]}))`;
    case 'bfloat16': {
      const [a, b] = [`${w}.${c[2 * k]}`, `${w}.${c[2 * k + 1]}`];
      return `vec4<f32>(bitcast<f32>(${a} << 16u), bitcast<f32>(${a} & 0xffff0000u), bitcast<f32>(${b} << 16u), bitcast<f32>(${b} & 0xffff0000u))`;
    }
    case 'int8': {
      const x = `${w}.${c[k]}`;
      return `vec4<f32>(vec4<i32>(bitcast<i32>(${x} << 24u) >> 24u, bitcast<i32>(${x} << 16u) >> 24u, bitcast<i32>(${x} << 8u) >> 24u, bitcast<i32>(${x}) >> 24u))`;
    }
    case 'float8_e4m3': {
      const x = `${w}.${c[k]}`;
      return `vec4<f32>(unpack2x16float(e4m3Half(${x})), unpack2x16float(e4m3Half(${x} >> 16u)))`;
    }
    default:
      throw new Error(`[wideDecode] dtype '${dtype}' has no packed words`);
  }
}

/**
 * WGSL expression of the factor a decoded row (wideDecode) is multiplied by, for K (`which` 'k')
 * or V of cache row `row` (a u32 expression), or '' when there is none (float16 / bfloat16).
 */
export function wideScale(dtype: KVCacheDType, which: 'k' | 'v', row: string, kScale: number, vScale: number): string {
  if (dtype === 'int8') return `${which}sc[${row}]`;
  if (dtype === 'float8_e4m3') return f((which === 'k' ? kScale : vScale) * 256);
  return '';
}
