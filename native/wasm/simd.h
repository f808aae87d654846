/*
 * wasm32 SIMD128 helpers shared by the browser kernels (the .c files of native/wasm/, built by
 * scripts/build-wasm-kernels.cjs). Freestanding: no libc, no static data (the module runs on
 * tfjs-wasm's own memory, so it may only touch what the caller hands it; see kernels/wasm/simd_module.ts).
 *
 * Built twice: plain SIMD128 (every browser with wasm SIMD) and with relaxed SIMD
 * (WASM_RELAXED: f32x4.relaxed_madd, one fused multiply-add where the CPU has it), chosen at load.
 */
#ifndef TFJS_ATTENTION_WASM_SIMD_H
#define TFJS_ATTENTION_WASM_SIMD_H

#include <stdint.h>
#include <wasm_simd128.h>

typedef v128_t vf;
#define EXPORT(name) __attribute__((export_name(#name))) 

static inline vf vload(const float* p) { return wasm_v128_load(p); }
static inline void vstore(float* p, vf v) { wasm_v128_store(p, v); }
static inline vf vsplat(float x) { return wasm_f32x4_splat(x); }
static inline vf vsplat_at(const float* p) { return wasm_v128_load32_splat(p); }

/* acc + a * b (fused where relaxed SIMD is on). */
static inline vf vmadd(vf a, vf b, vf acc) {
#ifdef WASM_RELAXED
  return wasm_f32x4_relaxed_madd(a, b, acc);
#else
  return wasm_f32x4_add(acc, wasm_f32x4_mul(a, b));
#endif
}

static inline float hsum(vf v) {
  vf s = wasm_f32x4_add(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  s = wasm_f32x4_add(s, wasm_i32x4_shuffle(s, s, 1, 0, 3, 2));
  return wasm_f32x4_extract_lane(s, 0);
}

static inline float hmax(vf v) {
  vf s = wasm_f32x4_max(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  s = wasm_f32x4_max(s, wasm_i32x4_shuffle(s, s, 1, 0, 3, 2));
  return wasm_f32x4_extract_lane(s, 0);
}

/*
 * exp(x) per lane, Cephes-style (range reduction by ln 2 split in two, degree-5 polynomial; ~2 ulp).
 * x < -87.34 (below FLT_MIN) gives 0, x > 88 gives +inf, NaN stays NaN (wasm min/max propagate it).
 */
static inline vf vexp(vf x) {
  const vf hi = vsplat(88.0f), lo = vsplat(-87.33654f); /* 2^fx stays a normal float */
  vf xc = wasm_f32x4_max(wasm_f32x4_min(x, hi), lo);
  vf fx = wasm_f32x4_nearest(wasm_f32x4_mul(xc, vsplat(1.44269504088896341f)));
  xc = wasm_f32x4_sub(xc, wasm_f32x4_mul(fx, vsplat(0.693359375f)));
  xc = wasm_f32x4_add(xc, wasm_f32x4_mul(fx, vsplat(2.12194440e-4f)));
  vf y = vsplat(1.9875691500E-4f);
  y = vmadd(y, xc, vsplat(1.3981999507E-3f));
  y = vmadd(y, xc, vsplat(8.3334519073E-3f));
  y = vmadd(y, xc, vsplat(4.1665795894E-2f));
  y = vmadd(y, xc, vsplat(1.6666665459E-1f));
  y = vmadd(y, xc, vsplat(5.0000001201E-1f));
  vf z = wasm_f32x4_mul(xc, xc);
  y = vmadd(y, z, wasm_f32x4_add(xc, vsplat(1.0f)));
  v128_t e = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(fx), wasm_i32x4_splat(127)), 23);
  vf r = wasm_f32x4_mul(y, e);
  r = wasm_v128_bitselect(vsplat(0.0f), r, wasm_f32x4_lt(x, lo));
  r = wasm_v128_bitselect(vsplat(__builtin_inff()), r, wasm_f32x4_gt(x, hi));
  return r;
}

static inline float sexp(float x) { return wasm_f32x4_extract_lane(vexp(vsplat(x)), 0); }

#endif
