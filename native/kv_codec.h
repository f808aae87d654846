#pragma once
// Element types of a compact KV cache (kvParams.dtype, core/kv_dtype.ts) for the native kernels:
// one struct per storage format with the same two operations, so the attention and store kernels
// are written once and instantiated per format:
//   widenRow(codes, rowScale, tensorScale, dst, n): dst = decoded floats, bit-identical to
//     core/kv_dtype.ts decodeKvRow (f16 / bf16 exact; int8 code * rowScale and e4m3 * tensorScale
//     rounded once to float32, as a Float32Array store of the JavaScript double product rounds);
//   encodeRow(src, codes, &rowScale, tensorScale, n): the codes encodeKvRow writes (round to nearest
//     even, saturation, int8 scale = absmax / 127 per token and KV head, NaN rules), bit-identical.
// Widening is vectorised: F16C vcvtph2ps (AVX-512 / AVX2 builds), shifts for bf16, sign-extension
// for int8, exponent/mantissa shifts for e4m3 (fp8.h's bit trick); the encoders run on the store
// path only (once per new token), so they stay scalar except float16 (vcvtps2ph + a NaN re-check).
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "fp8.h"

/** kvParams.dtype codes, in core/kv_dtype.ts KV_CACHE_DTYPES order (kernels/cpu/native_args.ts KV_DTYPE_CODE). */
enum KvDtype { KV_F32 = 0, KV_F16 = 1, KV_BF16 = 2, KV_I8 = 3, KV_FP8 = 4 };

namespace kvcodec {

inline uint32_t floatBits(float x) { uint32_t u; std::memcpy(&u, &x, 4); return u; }

/** float32 -> float16 bits, core/fp_formats.ts f32ToF16Bits (NaN -> sign | 0x7e00). */
inline uint16_t f32ToF16(float x) {
  const uint32_t b = floatBits(x), sign = (b >> 16) & 0x8000u, exp = (b >> 23) & 0xffu;
  uint32_t man = b & 0x7fffffu;
  if (exp == 0xffu) return static_cast<uint16_t>(sign | 0x7c00u | (man != 0 ? 0x200u : 0u));
  const int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    man |= 0x800000u;
    const int shift = 14 - e;
    const uint32_t half = 1u << (shift - 1), rest = man & ((1u << shift) - 1);
    uint32_t h = man >> shift;
    if (rest > half || (rest == half && (h & 1u))) h++;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(e) << 10) | (man >> 13);
  const uint32_t rest = man & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
  return static_cast<uint16_t>(sign | h);
}

/** float32 -> bfloat16 bits, core/fp_formats.ts f32ToBf16Bits. */
inline uint16_t f32ToBf16(float x) {
  const uint32_t b = floatBits(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>(((b >> 16) | 0x40u) & 0xffffu);
  return static_cast<uint16_t>(((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) & 0xffffu);
}

/**
 * double -> e4m3fn code, core/fp_formats.ts f32ToE4m3 on the same double: round to nearest even on
 * the grid (quantum 2^-9 below 2^-6, else 2^(e-3)), saturating at +-448 (0x7e), NaN -> 0x7f.
 * The rounding runs on the double itself: rounding to float32 first could land on a tie it was not.
 */
inline uint8_t doubleToE4m3(double y) {
  // Branch-free (the store loop vectorises): |y| clamped to 448, exponent e >= -6 from the bits (the
  // subnormal quantum 2^-9 is the e = -6 one), r = |y| / 2^(e-3) rounded to nearest even (8 .. 16, or
  // 0 .. 8 below 2^-6), code = (e + 7) * 8 + r - 8 (r = 16 carries into the next exponent by itself),
  // at most 0x7e. An earlier version branched and called ldexp: the float8 store ran 13x the float32 one.
  const double a = std::fmin(std::fabs(y), 448.0);
  uint64_t bits;
  std::memcpy(&bits, &a, 8);
  int64_t e = static_cast<int64_t>(bits >> 52) - 1023;
  e = e < -6 ? -6 : e;
  const uint64_t scaleBits = static_cast<uint64_t>(1023 + 3 - e) << 52;
  double scale;
  std::memcpy(&scale, &scaleBits, 8);
  const int64_t r = static_cast<int64_t>(std::nearbyint(a * scale));
  int64_t code = (e + 7) * 8 + r - 8;
  code = code > 0x7e ? 0x7e : code;
  const uint8_t sign = std::signbit(y) ? 0x80 : 0;
  return std::isnan(y) ? 0x7f : static_cast<uint8_t>(sign | code);
}

}  // namespace kvcodec

/** float32 pools: rows are read in place (no widening); encodeRow is a copy. */
struct KvF32 {
  using T = float;
  static constexpr int code = KV_F32;
  static void widenRow(const T* c, float, double, float* dst, int n) { std::memcpy(dst, c, sizeof(float) * n); }
  static void encodeRow(const float* src, T* c, float*, double, int n) { std::memcpy(c, src, sizeof(float) * n); }
};

struct KvF16 {
  using T = uint16_t;
  static constexpr int code = KV_F16;
  static void widenRow(const T* c, float, double, float* dst, int n) {
    int d = 0;
#if defined(__AVX512F__)
    for (; d + 16 <= n; d += 16) _mm512_storeu_ps(dst + d, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + d))));
#elif defined(__F16C__)
    for (; d + 8 <= n; d += 8) _mm256_storeu_ps(dst + d, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + d))));
#endif
    for (; d < n; d++) dst[d] = f16ToFloat(c[d]);
  }
  static void encodeRow(const float* src, T* c, float*, double, int n) {
    int d = 0;
#if defined(__F16C__)
    // Hardware RNE; a NaN lane keeps its payload there, so NaN rows take the scalar path (sign | 0x7e00).
    for (; d + 8 <= n; d += 8) {
      const __m256 x = _mm256_loadu_ps(src + d);
      if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)) != 0) break;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(c + d), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
#endif
    for (; d < n; d++) c[d] = kvcodec::f32ToF16(src[d]);
  }
};

struct KvBf16 {
  using T = uint16_t;
  static constexpr int code = KV_BF16;
  static void widenRow(const T* c, float, double, float* dst, int n) {
    for (int d = 0; d < n; d++) { const uint32_t u = static_cast<uint32_t>(c[d]) << 16; std::memcpy(dst + d, &u, 4); }
  }
  static void encodeRow(const float* src, T* c, float*, double, int n) {
    for (int d = 0; d < n; d++) c[d] = kvcodec::f32ToBf16(src[d]);
  }
};

/** int8: code * rowScale; rowScale = fround(max|x| / 127), NaN when the row holds a NaN (codes 0). */
struct KvI8 {
  using T = int8_t;
  static constexpr int code = KV_I8;
  static void widenRow(const T* c, float s, double, float* dst, int n) {
    for (int d = 0; d < n; d++) dst[d] = static_cast<float>(c[d]) * s;
  }
  static void encodeRow(const float* src, T* c, float* rowScale, double, int n) {
    float m = 0.f;
    int nan = 0, d1 = 0;
#if defined(__AVX512F__)
    __m512 vm = _mm512_setzero_ps();
    __mmask16 vnan = 0;
    for (; d1 + 16 <= n; d1 += 16) {
      const __m512 x = _mm512_loadu_ps(src + d1);
      vnan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
      vm = _mm512_max_ps(vm, _mm512_abs_ps(x));
    }
    m = _mm512_reduce_max_ps(vm);
    nan = vnan != 0;
#endif
    for (int d = d1; d < n; d++) { nan |= src[d] != src[d]; m = std::fmax(m, std::fabs(src[d])); }
    const float s = nan ? NAN : static_cast<float>(static_cast<double>(m) / 127.0);
    *rowScale = s;
    if (s == 0.f || nan) { std::memset(c, 0, n); return; }
    const double sd = s;
    int d0 = 0;
#if defined(__AVX512F__) && defined(__AVX512VL__)
    // 8 lanes of the loop below: the double quotient, rounded to nearest even, NaN -> 0, clamped, narrowed.
    const __m512d vs = _mm512_set1_pd(sd), hi = _mm512_set1_pd(127.0), lo = _mm512_set1_pd(-127.0);
    for (; d0 + 8 <= n; d0 += 8) {
      __m512d r = _mm512_roundscale_pd(_mm512_div_pd(_mm512_cvtps_pd(_mm256_loadu_ps(src + d0)), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      r = _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(r, r, _CMP_ORD_Q), r);
      r = _mm512_max_pd(_mm512_min_pd(r, hi), lo);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(c + d0), _mm256_cvtepi32_epi8(_mm512_cvtpd_epi32(r)));
    }
#endif
    for (int d = d0; d < n; d++) {  // exact: the double quotient, as in TypeScript
      double r = std::nearbyint(static_cast<double>(src[d]) / sd);
      r = r != r ? 0.0 : r;  // inf / inf (a row with an infinity): Int8Array stores NaN as 0
      r = r > 127.0 ? 127.0 : r;
      r = r < -127.0 ? -127.0 : r;
      c[d] = static_cast<int8_t>(static_cast<int32_t>(r));
    }
  }
};

/** float8 e4m3fn: code * tensorScale (in double, rounded once to float32); codes of x / tensorScale. */
struct KvFp8 {
  using T = uint8_t;
  static constexpr int code = KV_FP8;
  static void widenRow(const T* c, float, double scale, float* dst, int n) {
    // A scale that is a float32 value makes the double product exact, so one float multiply rounds the same.
    const float sf = static_cast<float>(scale);
    if (static_cast<double>(sf) == scale) {
      for (int d = 0; d < n; d++) dst[d] = widen(c[d]) * sf;
    } else {
      for (int d = 0; d < n; d++) dst[d] = static_cast<float>(static_cast<double>(widen(c[d])) * scale);
    }
  }
  /** fp8.h e4m3ToFloat written branch-free (vectorises): bits moved into float32 position, * 2^120. */
  static float widen(uint32_t b) {
    const uint32_t u = ((b & 0x7fu) << 20) | ((b & 0x80u) << 24);
    float f;
    std::memcpy(&f, &u, 4);
    return (b & 0x7fu) == 0x7fu ? NAN : f * 0x1p120f;
  }
  static void encodeRow(const float* src, T* c, float*, double tensorScale, int n) {
    const double inv = 1.0 / tensorScale;
    int d0 = 0;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    // kvcodec::doubleToE4m3 on 8 lanes (the scalar loop did not vectorise: the float8 store ran 6x the float32 one).
    const __m512d vinv = _mm512_set1_pd(inv), cap = _mm512_set1_pd(448.0);
    const __m512i m6 = _mm512_set1_epi64(-6), top = _mm512_set1_epi64(0x7e);
    for (; d0 + 8 <= n; d0 += 8) {
      const __m512d y = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(src + d0)), vinv);
      const __m512d a = _mm512_min_pd(_mm512_abs_pd(y), cap);
      const __m512i e = _mm512_max_epi64(_mm512_sub_epi64(_mm512_srli_epi64(_mm512_castpd_si512(a), 52), _mm512_set1_epi64(1023)), m6);
      const __m512d scale = _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_sub_epi64(_mm512_set1_epi64(1026), e), 52));
      const __m512i r = _mm512_cvtpd_epi64(_mm512_roundscale_pd(_mm512_mul_pd(a, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      __m512i code = _mm512_min_epi64(_mm512_add_epi64(_mm512_slli_epi64(e, 3), _mm512_sub_epi64(r, _mm512_set1_epi64(-48))), top);
      code = _mm512_or_si512(code, _mm512_and_si512(_mm512_srli_epi64(_mm512_castpd_si512(y), 56), _mm512_set1_epi64(0x80)));
      code = _mm512_mask_mov_epi64(code, _mm512_cmp_pd_mask(y, y, _CMP_UNORD_Q), _mm512_set1_epi64(0x7f));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(c + d0), _mm512_cvtepi64_epi8(code));
    }
#endif
    for (int d = d0; d < n; d++) c[d] = kvcodec::doubleToE4m3(static_cast<double>(src[d]) * inv);
  }
};

/** Calls f(KvXxx{}) for dtype code `dtype` (KV_F32 when unknown: the binding rejects bad codes first). */
template <class F>
inline auto withKvType(int dtype, F&& f) {
  switch (dtype) {
    case KV_F16: return f(KvF16{});
    case KV_BF16: return f(KvBf16{});
    case KV_I8: return f(KvI8{});
    case KV_FP8: return f(KvFp8{});
    default: return f(KvF32{});
  }
}
