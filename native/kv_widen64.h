#pragma once
// AVX-512 pieces of the int8 / float8_e4m3 decode rows (attention_decode_kv.cc): a byte transpose of
// 16 code rows, and Widen64<E>, which widens 64 codes at a time to four float vectors without their
// scales. Include only under __AVX512F__ && __AVX512BW__ (VBMI for the e4m3 table).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "fp8.h"
#include "kv_codec.h"

namespace kvdecode {

/** Codes of the 64 columns of 16 rows -> T[64 i + 16 L + key] = row key's code of column 16 L + i. */
inline void transposeBytes16x64(const uint8_t* const* rows, int col0, uint8_t* t) {
  // Rows go in bit-reversed order, so that four rounds of the same unpack bring them out in order.
  static constexpr int kBitRev[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
  __m512i x[16], y[16];
  for (int s = 0; s < 16; s++) x[s] = _mm512_loadu_si512(rows[kBitRev[s]] + col0);
  for (int i = 0; i < 8; i++) { y[2 * i] = _mm512_unpacklo_epi8(x[i], x[i + 8]); y[2 * i + 1] = _mm512_unpackhi_epi8(x[i], x[i + 8]); }
  for (int i = 0; i < 8; i++) { x[2 * i] = _mm512_unpacklo_epi16(y[i], y[i + 8]); x[2 * i + 1] = _mm512_unpackhi_epi16(y[i], y[i + 8]); }
  for (int i = 0; i < 8; i++) { y[2 * i] = _mm512_unpacklo_epi32(x[i], x[i + 8]); y[2 * i + 1] = _mm512_unpackhi_epi32(x[i], x[i + 8]); }
  for (int i = 0; i < 8; i++) { x[2 * i] = _mm512_unpacklo_epi64(y[i], y[i + 8]); x[2 * i + 1] = _mm512_unpackhi_epi64(y[i], y[i + 8]); }
  for (int i = 0; i < 16; i++) _mm512_storeu_si512(t + 64 * i, x[i]);
}
/** The head dim of chunk c (16 bytes at T + 16 c) within its 64 columns. */
inline int chunkColumn(int c) { return 16 * (c % 4) + c / 4; }

/** Widen64<E>: 64 codes at p -> 4 vectors of 16 floats (codes 16 j .. 16 j + 15 in w[j]), without scale. */
template <class E> struct Widen64;

template <> struct Widen64<KvI8> {
  static constexpr bool available = true;
  void operator()(const void* p, __m512 (&w)[4]) const {
    // vpmovsxbd from memory. (One 64-byte load with the lanes extracted and extended from registers was
    // faster in a loop of this alone, 3.0 vs 4.5 ns per 64 codes, but D1 took 0.49 vs 0.46 ms in the kernel.)
    const auto* b = static_cast<const __m128i*>(p);
    for (int j = 0; j < 4; j++) w[j] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(b + j)));
  }
};

#if defined(__AVX512VBMI__)
/** bfloat16 bits of the e4m3 magnitudes 0 .. 127 (0x7f: NaN), as low and high byte tables. */
struct E4m3Bf16Bytes {
  alignas(64) uint8_t lo[128], hi[128];
  E4m3Bf16Bytes() {
    for (int m = 0; m < 128; m++) {
      uint32_t u;
      const float f = e4m3ToFloat(static_cast<uint32_t>(m));
      std::memcpy(&u, &f, 4);  // low 16 bits zero: 3 mantissa bits (NaN: 0x7fc00000)
      lo[m] = static_cast<uint8_t>(u >> 16);
      hi[m] = static_cast<uint8_t>(u >> 24);
    }
  }
};
const E4m3Bf16Bytes kE4m3;

template <> struct Widen64<KvFp8> {
  static constexpr bool available = true;
  __m512i lo0 = _mm512_load_si512(kE4m3.lo), lo1 = _mm512_load_si512(kE4m3.lo + 64);
  __m512i hi0 = _mm512_load_si512(kE4m3.hi), hi1 = _mm512_load_si512(kE4m3.hi + 64);
  __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  // Dword (4 L + J) <- dword (4 J + L): the unpacks below then bring codes out in order.
  __m512i lanes = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  void operator()(const void* p, __m512 (&w)[4]) const {
    const __m512i c = _mm512_permutexvar_epi32(lanes, _mm512_loadu_si512(p));
    const __m512i lo = _mm512_permutex2var_epi8(lo0, c, lo1);  // the index's bit 7 (the sign) is ignored
    const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(hi0, c, hi1), c, sign, 0xF8);  // hi | (c & 0x80)
    // Words (lo, hi) of bytes 0-7 / 8-15 of each 128-bit lane, then the high halves of floats: vector J lane
    // (L, e) holds byte 16 L + 4 J + e of c, i.e. code 16 J + 4 L + e. (Four vpermt2b placing the bytes
    // straight into float position: 5.2 ns per 64 codes, against 3.0 for this.)
    const __m512i zero = _mm512_setzero_si512(), w0 = _mm512_unpacklo_epi8(lo, hi), w1 = _mm512_unpackhi_epi8(lo, hi);
    w[0] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, w0));
    w[1] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, w0));
    w[2] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, w1));
    w[3] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, w1));
  }
};
#else
template <> struct Widen64<KvFp8> {  // no VBMI (vpermi2b): attendItemRows keeps float8
  static constexpr bool available = false;
  void operator()(const void*, __m512 (&)[4]) const {}
};
#endif

}  // namespace kvdecode
