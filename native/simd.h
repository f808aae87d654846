// Portable SIMD helpers on GCC/Clang vector extensions: 16 float lanes. With -march=native these
// compile to one AVX-512 register (or two AVX2 registers, or four SSE registers elsewhere; GCC
// handles arrays of such split vectors poorly, so AVX2 builds' hot loops use v8 below).
#pragma once
#include <cstdint>
#include <cstring>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));  // unaligned access
typedef int32_t vi16u __attribute__((vector_size(64), aligned(4)));

static constexpr int VL = 16;

static inline v16 vload(const float* p) { return *reinterpret_cast<const v16u*>(p); }
static inline void vstore(float* p, v16 v) { *reinterpret_cast<v16u*>(p) = v; }
static inline vi16 viload(const int32_t* p) { return *reinterpret_cast<const vi16u*>(p); }
static inline v16 vset1(float x) { return v16{} + x; }
static inline vi16 viset1(int32_t x) { return vi16{} + x; }
static inline v16 vmax(v16 a, v16 b) { return a > b ? a : b; }
static inline float hmax(v16 v) {
  float m = v[0];
  for (int i = 1; i < VL; i++) m = v[i] > m ? v[i] : m;
  return m;
}
static inline float hsum(v16 v) {
  float s = 0.f;
  for (int i = 0; i < VL; i++) s += v[i];
  return s;
}

// The parts of exp shared by every width (v16, and v8 below): with n the nearest integer to
// x / ln2 (as a float), the degree-6 polynomial p with exp(xc) = 2^n * p.
template <class V>
static inline V expPoly(V xc, V n) {
  V r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = V{} + 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  return p * r * r + r + 1.0f;
}
// The portable exp of any width V (integer lanes VI): clamp to [-87.34, 88], n by the 1.5 * 2^23
// rounding trick, 2^n built in the exponent bits; lanes below -87.34 (and -inf) give 0, NaN stays NaN.
template <class V, class VI>
static inline V expPortable(V x) {
  const V lo = V{} + -87.3365447504019f, hi = V{} + 88.0f;
  V xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  const V magic = V{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const V t = xc * 1.44269504088896341f + magic;
  const V p = expPoly(xc, t - magic);
  const VI ni = (VI)t - (VI)magic;  // the integer n, from the low mantissa bits
  const V y = p * (V)((ni + 127) << 23);
  return x < lo ? V{} : y;
}

/**
 * exp(x) for float32 lanes: range reduction x = n ln2 + r, degree-6 polynomial on r (max rel
 * error ~2e-7), scale by 2^n. x < -87.3 (including -inf) gives exactly 0; NaN stays NaN (no
 * -ffinite-math-only anywhere, so the compares keep their IEEE meaning). Meant for x <= 0 (softmax);
 * large x saturates (AVX-512: +inf above ~88.7; elsewhere clamped at 88).
 *
 * AVX-512: n by vrndscaleps, 2^n by vscalefps, and the underflow / -inf lanes zeroed by the mask of
 * the scalef (13 vector ops; the portable version below takes ~20 and cost ~8% of a prefill).
 */
static inline v16 vexp(v16 x) {
#ifdef __AVX512F__
  const v16 lo = vset1(-87.3365447504019f);
  const __m512 xm = reinterpret_cast<__m512>(x);
  const __mmask16 keep = _mm512_cmp_ps_mask(xm, reinterpret_cast<__m512>(lo), _CMP_NLT_UQ);  // NaN kept
  const __m512 xl = reinterpret_cast<__m512>(x * 1.44269504088896341f);
  const v16 n = reinterpret_cast<v16>(_mm512_mask_roundscale_ps(xl, 0xffff, xl, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const v16 p = expPoly(x, n);
  return reinterpret_cast<v16>(_mm512_maskz_scalef_ps(keep, reinterpret_cast<__m512>(p), reinterpret_cast<__m512>(n)));
#else
  return expPortable<v16, vi16>(x);
#endif
}

/** In-place transpose of a 16 x 16 block held as 16 row vectors (4 butterfly stages). */
static inline void transpose16(v16* r) {
  for (int i = 0; i < VL; i += 2) {
    v16 a = r[i], b = r[i + 1];
    r[i] = __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    r[i + 1] = __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
  }
  for (int i = 0; i < VL; i += 4)
    for (int j = i; j < i + 2; j++) {
      v16 a = r[j], b = r[j + 2];
      r[j] = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
      r[j + 2] = __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
  for (int i = 0; i < VL; i += 8)
    for (int j = i; j < i + 4; j++) {
      v16 a = r[j], b = r[j + 4];
      r[j] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
      r[j + 4] = __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    }
  for (int j = 0; j < 8; j++) {
    v16 a = r[j], b = r[j + 8];
    r[j] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    r[j + 8] = __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  }
}

// ---- 8-lane helpers for builds with AVX but no AVX-512 (AVX2 + FMA hosts) ----
// There a v16 spans two ymm registers, and GCC lowers arrays of v16 (tile accumulators, the
// transposes' 16 rows) through the stack, moving halves via general registers: the v16 tiles ran
// at ~5 GFLOP/s per core. The kernels' hot loops use these native-width vectors instead (ATTN_V8).
#if defined(__AVX__) && !defined(__AVX512F__)
#define ATTN_V8 1
#include <immintrin.h>
typedef float v8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int32_t vi8u __attribute__((vector_size(32), aligned(4)));
static inline v8 v8load(const float* p) { return *reinterpret_cast<const v8u*>(p); }
static inline void v8store(float* p, v8 v) { *reinterpret_cast<v8u*>(p) = v; }
static inline vi8 vi8load(const int32_t* p) { return *reinterpret_cast<const vi8u*>(p); }
static inline v8 v8set1(float x) { return (v8)_mm256_set1_ps(x); }  // (v8{} + x would add 0.f)
static inline vi8 vi8set1(int32_t x) { return (vi8)_mm256_set1_epi32(x); }
static inline v8 v8max(v8 a, v8 b) { return a > b ? a : b; }
static inline float hmax8(v8 v) {
  float m = v[0];
  for (int i = 1; i < 8; i++) m = v[i] > m ? v[i] : m;
  return m;
}
static inline float hsum8(v8 v) {
  float s = 0.f;
  for (int i = 0; i < 8; i++) s += v[i];
  return s;
}
/** vexp on 8 lanes: the portable exp above, same polynomial and semantics. */
static inline v8 vexp8(v8 x) { return expPortable<v8, vi8>(x); }
/** In-place transpose of an 8 x 8 block held as 8 row vectors. */
static inline void transpose8(v8* r) {
  __m256 a0 = (__m256)r[0], a1 = (__m256)r[1], a2 = (__m256)r[2], a3 = (__m256)r[3];
  __m256 a4 = (__m256)r[4], a5 = (__m256)r[5], a6 = (__m256)r[6], a7 = (__m256)r[7];
  __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
  __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
  __m256 t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5);
  __m256 t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = (v8)_mm256_permute2f128_ps(u0, u4, 0x20); r[1] = (v8)_mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = (v8)_mm256_permute2f128_ps(u2, u6, 0x20); r[3] = (v8)_mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = (v8)_mm256_permute2f128_ps(u0, u4, 0x31); r[5] = (v8)_mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = (v8)_mm256_permute2f128_ps(u2, u6, 0x31); r[7] = (v8)_mm256_permute2f128_ps(u3, u7, 0x31);
}
#endif

// One table of the vector ops per width, for kernels templated on it (attention_rows.cc's W16 / W8,
// flash_train.cc's fv): VecOps<v16> (16 lanes: AVX-512, or the portable vector extension) and, in
// AVX2 builds, VecOps<v8>. (Each kernel used to spell the same table out for itself.)
template <class V> struct VecOps;
template <> struct VecOps<v16> {
  using V = v16;
  using VI = vi16;
  static constexpr int L = 16;
  static V load(const float* p) { return vload(p); }
  static void store(float* p, V v) { vstore(p, v); }
  static V set1(float x) { return vset1(x); }
  static VI iset1(int32_t x) { return viset1(x); }
  static V max(V a, V b) { return vmax(a, b); }
  static V exp(V x) { return vexp(x); }
  static float hmaxv(V v) { return hmax(v); }
  static float hsumv(V v) { return hsum(v); }
};
#if defined(ATTN_V8)
template <> struct VecOps<v8> {
  using V = v8;
  using VI = vi8;
  static constexpr int L = 8;
  static V load(const float* p) { return v8load(p); }
  static void store(float* p, V v) { v8store(p, v); }
  static V set1(float x) { return v8set1(x); }
  static VI iset1(int32_t x) { return vi8set1(x); }
  static V max(V a, V b) { return v8max(a, b); }
  static V exp(V x) { return vexp8(x); }
  static float hmaxv(V v) { return hmax8(v); }
  static float hsumv(V v) { return hsum8(v); }
};
#endif
