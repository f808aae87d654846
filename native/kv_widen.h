#pragma once
// Widening vector loads of compact KV rows (kv_codec.h element types) for the decode row kernel
// (attention_rows.cc), which reads K and V codes straight from the pages and widens them in
// registers: Widen<E>::w16(p) / ::w8(p) give 16 / 8 floats of codes p[0 ..) WITHOUT their scale (and
// divided by Widen<E>::unit)
// (int8 row scales and the e4m3 tensor scale are folded into the scores and probabilities instead).
//   float16: vcvtph2ps (F16C; scalar fp8.h f16ToFloat in portable builds)
//   bfloat16: zero-extend and shift left 16
//   int8: sign-extend and convert
//   float8_e4m3: moved into float16 position and vcvtph2ps, value * 2^-8 (unit 256 folded into the scales; NaN codes: see Widen<KvFp8>)
// rowNonFinite(codes, rowScale, n) says whether the decoded row holds a NaN or infinity (the
// causality guard of attention_common.h diverts such V rows).
#include <cstdint>
#include <cstring>

#include "attention_common.h"
#include "kv_codec.h"
#include "simd.h"

// Sign / zero extension of 16 (8) narrow integers to int32 lanes: one vpmovsx / vpmovzx where the ISA
// has it (GCC 12 lowers __builtin_convertvector from 8-bit vectors lane by lane: int8 decode ran 10x slower).
template <class N> inline vi16 ext16(const N* p) {
  vi16 r;
  for (int i = 0; i < 16; i++) r[i] = p[i];
  return r;
}
inline vi16 sext16(const int8_t* p) {
#if defined(__AVX512F__)
  return reinterpret_cast<vi16>(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#else
  return ext16(p);
#endif
}
inline vi16 zext16(const uint8_t* p) {
#if defined(__AVX512F__)
  return reinterpret_cast<vi16>(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#else
  return ext16(p);
#endif
}
inline vi16 zext16(const uint16_t* p) {
#if defined(__AVX512F__)
  return reinterpret_cast<vi16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
#else
  return ext16(p);
#endif
}
#if defined(ATTN_V8)
inline vi8 sext8(const int8_t* p) { return reinterpret_cast<vi8>(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))); }
inline vi8 zext8(const uint8_t* p) { return reinterpret_cast<vi8>(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))); }
inline vi8 zext8(const uint16_t* p) { return reinterpret_cast<vi8>(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))); }
#endif

template <class E> struct Widen;

template <> struct Widen<KvF32> {
  static constexpr float unit = 1.f;
  static constexpr bool widenKeysOnce = false;
  static constexpr bool scaled = false;
  static v16 w16(const float* p) { return vload(p); }
#if defined(ATTN_V8)
  static v8 w8(const float* p) { return v8load(p); }
#endif
  static bool rowNonFinite(const float* p, float, int n) { return anyNonFinite(p, n); }
};

template <> struct Widen<KvF16> {
  static constexpr float unit = 1.f;
  static constexpr bool widenKeysOnce = false;
  static constexpr bool scaled = false;
  static v16 w16(const uint16_t* p) {
#if defined(__AVX512F__)
    return reinterpret_cast<v16>(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
#else
    v16 r;
    for (int i = 0; i < 16; i++) r[i] = f16ToFloat(p[i]);
    return r;
#endif
  }
#if defined(ATTN_V8)
  static v8 w8(const uint16_t* p) {
#if defined(__F16C__)
    return reinterpret_cast<v8>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#else
    v8 r;
    for (int i = 0; i < 8; i++) r[i] = f16ToFloat(p[i]);
    return r;
#endif
  }
#endif
  static bool rowNonFinite(const uint16_t* p, float, int n) {
    uint32_t bad = 0;
    for (int i = 0; i < n; i++) bad |= static_cast<uint32_t>((p[i] & 0x7c00u) == 0x7c00u);
    return bad != 0;
  }
};

template <> struct Widen<KvBf16> {
  static constexpr float unit = 1.f;
  static constexpr bool widenKeysOnce = false;
  static constexpr bool scaled = false;
  static v16 w16(const uint16_t* p) { return reinterpret_cast<v16>(zext16(p) << 16); }
#if defined(ATTN_V8)
  static v8 w8(const uint16_t* p) { return reinterpret_cast<v8>(zext8(p) << 16); }
#endif
  static bool rowNonFinite(const uint16_t* p, float, int n) {
    uint32_t bad = 0;
    for (int i = 0; i < n; i++) bad |= static_cast<uint32_t>((p[i] & 0x7f80u) == 0x7f80u);
    return bad != 0;
  }
};

template <> struct Widen<KvI8> {
  static constexpr float unit = 1.f;
  static constexpr bool widenKeysOnce = false;
  static constexpr bool scaled = true;
  static v16 w16(const int8_t* p) { return __builtin_convertvector(sext16(p), v16); }
#if defined(ATTN_V8)
  static v8 w8(const int8_t* p) { return __builtin_convertvector(sext8(p), v8); }
#endif
  /** Codes are finite; the row is not when its scale is (a NaN / infinite row encodes so). */
  static bool rowNonFinite(const int8_t*, float s, int) { return !(s - s == 0.f); }
};

template <> struct Widen<KvFp8> {
  static constexpr bool scaled = true;
  /**
   * Through float16: e4m3 bits moved into half position (exponent bias 7 -> 15 leaves the value * 2^-8,
   * folded back by `unit` into the per-key scales), NaN codes (0x7f / 0xff) given an all-ones half
   * exponent, and vcvtph2ps, which takes the subnormals in stride (float32 subnormal operands of a
   * multiply cost microcode assists). One earlier version left NaN codes finite and scanned each
   * block's K rows for them (a NaN scale per such key): D1 1.33 ms against int8's 0.70 (one thread).
   */
  static constexpr float unit = 256.f;
  /**
   * The decode kernel widens a block's K rows once into float32 scratch rather than once per query row
   * of the group: at ~10 ops per 16 codes, widening G = 4 times made D1 1.35 ms against int8's 0.69.
   */
  static constexpr bool widenKeysOnce = true;
  static v16 w16(const uint8_t* p) {
#if defined(__AVX512F__)
    const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m256i m = _mm256_and_si256(b, _mm256_set1_epi16(0x7f));
    const __m256i nan = _mm256_and_si256(_mm256_cmpeq_epi16(m, _mm256_set1_epi16(0x7f)), _mm256_set1_epi16(0x7c00));
    const __m256i h = _mm256_or_si256(_mm256_or_si256(_mm256_slli_epi16(m, 7), nan),
                                      _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x80)), 8));
    return reinterpret_cast<v16>(_mm512_cvtph_ps(h));
#else
    v16 r;
    for (int i = 0; i < 16; i++) r[i] = e4m3ToFloat(p[i]) * 0x1p-8f;
    return r;
#endif
  }
#if defined(ATTN_V8)
  static v8 w8(const uint8_t* p) {
    const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    const __m128i m = _mm_and_si128(b, _mm_set1_epi16(0x7f));
    const __m128i nan = _mm_and_si128(_mm_cmpeq_epi16(m, _mm_set1_epi16(0x7f)), _mm_set1_epi16(0x7c00));
    const __m128i h = _mm_or_si128(_mm_or_si128(_mm_slli_epi16(m, 7), nan),
                                   _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x80)), 8));
    return reinterpret_cast<v8>(_mm256_cvtph_ps(h));
  }
#endif
  /** A code with its low 7 bits set (NaN) in p[0 .. n), 8 bytes at a time (n is a multiple of 16). */
  static bool rowNonFinite(const uint8_t* p, float, int n) {
    uint64_t bad = 0;
    for (int i = 0; i < n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      bad |= ((w & 0x7f7f7f7f7f7f7f7full) + 0x0101010101010101ull) & 0x8080808080808080ull;
    }
    return bad != 0;
  }
};

/**
 * The causality guard (attention_common.h, divertNonFiniteValues) for the decode row kernels, which
 * read V as code rows vr[0 .. nk) with scales vs: skipped when every query row m sees every key of
 * the block [kb, kb + nk) (lo[m] <= kb, kb + nk - 1 <= hi[m]; a single-token decode step), where no
 * masked weight meets a V row. Otherwise each V row holding a NaN / inf is widened with its scale and
 * vScale into `bad` (one D-float row per diverted key), listed in badN / badRow and read from `zeros`
 * with scale 1. Returns how many rows were diverted; the caller adds them back (addDivertedValues).
 */
template <class E>
inline int divertNonFiniteCodeRows(const typename E::T** vr, float* vs, int nk, int D, double vScale, int kb, int M,
                                   const int* lo, const int* hi, const typename E::T* zeros, float* bad, int* badN,
                                   const float** badRow) {
  bool allSee = true;
  for (int m = 0; m < M && allSee; m++) allSee = lo[m] <= kb && kb + nk - 1 <= hi[m];
  if (allSee) return 0;
  int nBad = 0;
  for (int n = 0; n < nk; n++) {
    if (!Widen<E>::rowNonFinite(vr[n], vs[n], D)) continue;
    float* w = bad + static_cast<size_t>(nBad) * D;
    E::widenRow(vr[n], vs[n], vScale, w, D);
    badN[nBad] = n;
    badRow[nBad++] = w;
    vr[n] = zeros;
    vs[n] = 1.f;
  }
  return nBad;
}
