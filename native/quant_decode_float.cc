// QuantMatMul decode kernels with float32 accumulation, see quant_decode.h: fp8 (bf16 dot
// products), bf16 / f16 weights (FMA) and gptq int4 (FMA, scale and zero folded in per group).
#include <cmath>
#include <cstring>

#include "fp8.h"
#include "pool.h"
#include "quant_decode.h"
#include "quant_matmul.h"
#include "quant_simd.h"

#ifdef QUANT_DECODE_HALVES
namespace {

template <int T>
constexpr int tileRows() { return T <= 2 ? 4 : 2; }

#ifdef QUANT_DECODE_FP8
/** e4m3 magnitude (7 bits) -> bf16 bits, as a high-byte and a low-byte table of 128 entries (two zmm each). */
struct E4m3Tables {
  __m512i hi0, hi1, lo0, lo1;
};
const E4m3Tables& e4m3Tables() {
  static const E4m3Tables t = [] {
    alignas(64) uint8_t hi[128], lo[128];
    for (int m = 0; m < 128; m++) {
      const float v = e4m3ToFloat(static_cast<uint32_t>(m));
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      const uint32_t bf = std::isnan(v) ? 0x7fc0u : bits >> 16;  // exact: at most 4 significant bits
      hi[m] = static_cast<uint8_t>(bf >> 8), lo[m] = static_cast<uint8_t>(bf & 0xff);
    }
    return E4m3Tables{_mm512_load_si512(hi), _mm512_load_si512(hi + 64), _mm512_load_si512(lo), _mm512_load_si512(lo + 64)};
  }();
  return t;
}

/** 64 e4m3 bytes -> 64 bf16 in two vectors: per 128-bit lane L, columns 16L .. 16L+7 in `a`, 16L+8 .. 16L+15 in `b`. */
inline void widenE4m3(__m512i bytes, const E4m3Tables& tb, __m512i& a, __m512i& b) {
  const __m512i lo = _mm512_permutex2var_epi8(tb.lo0, bytes, tb.lo1);  // index bits 0..6; bit 7 (the sign) ignored
  const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(tb.hi0, bytes, tb.hi1), bytes, _mm512_set1_epi8(static_cast<char>(0x80)),
                                               0xF8);  // hi | (bytes & 0x80)
  a = _mm512_unpacklo_epi8(lo, hi);
  b = _mm512_unpackhi_epi8(lo, hi);
}

inline __m512 dpbf16(__m512 acc, __m512i a, __m512i b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }

inline float fp8WeightScale(const QuantProblem& q, int n, int seg) {
  if (q.wscale == QS_TENSOR) return q.scale[0];
  if (q.wscale == QS_ROWWISE) return q.scale[n];
  if (q.wscale == QS_BLOCK) return q.scale[static_cast<size_t>(n / q.bR) * (q.K / q.bC) + seg];
  return 1.f;
}

/**
 * fp8 rows n .. n+R: per segment (the columns one activation scale and one weight scale cover), Σ
 * codes_x · codes_w by vdpbf16ps (products of e4m3 values are exact in float32), times both scales.
 */
template <int T, int R>
inline void fp8Tile(const QuantProblem& q, const uint16_t* codes, const float* segScale, int seg, const float* bias, float* out, int n) {
  const int K = q.K, nSeg = K / seg;
  const uint8_t* w = reinterpret_cast<const uint8_t*>(q.w) + static_cast<size_t>(n) * K;
  const E4m3Tables& tb = e4m3Tables();
  __m512 tot[R][T];
  for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) tot[r][t] = _mm512_setzero_ps();
  for (int s = 0; s < nSeg; s++) {
    __m512 part[R][T];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) part[r][t] = _mm512_setzero_ps();
    for (int j = s * seg; j < (s + 1) * seg; j += 64) {
      __m512i wa[R], wb[R];
      for (int r = 0; r < R; r++) widenE4m3(_mm512_loadu_si512(w + static_cast<size_t>(r) * K + j), tb, wa[r], wb[r]);
      for (int t = 0; t < T; t++) {
        const __m512i xa = _mm512_loadu_si512(codes + static_cast<size_t>(t) * K + j), xb = _mm512_loadu_si512(codes + static_cast<size_t>(t) * K + j + 32);
        for (int r = 0; r < R; r++) part[r][t] = dpbf16(dpbf16(part[r][t], wa[r], xa), wb[r], xb);
      }
    }
    for (int r = 0; r < R; r++) {
      const float ws = fp8WeightScale(q, n + r, s);
      for (int t = 0; t < T; t++) tot[r][t] = _mm512_fmadd_ps(part[r][t], _mm512_set1_ps(segScale[static_cast<size_t>(t) * nSeg + s] * ws), tot[r][t]);
    }
  }
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < T; t++) out[static_cast<size_t>(t) * q.N + n + r] = _mm512_reduce_add_ps(tot[r][t]) + (bias ? bias[n + r] : 0.f);
  }
}

template <int T>
void fp8Rows(const QuantProblem& q, const uint16_t* codes, const float* segScale, int seg, const float* bias, float* out, int n0, int n1) {
  // several segments: one weight row at a time (part + tot accumulators stay in registers)
  int n = n0;
  if (seg == q.K) {
    constexpr int R = T == 1 ? 8 : tileRows<T>();  // one input row: 8 weight streams in flight (~25% at [1, 4096])
    for (; n + R <= n1; n += R) fp8Tile<T, R>(q, codes, segScale, seg, bias, out, n);
  }
  for (; n < n1; n++) fp8Tile<T, 1>(q, codes, segScale, seg, bias, out, n);
}
#endif

/** bf16 / f16 rows n .. n+R, 32 columns a step: bf16 as even (shift) and odd (mask) halves of each word, f16 by vcvtph2ps. */
template <int T, int R, bool BF16>
inline void halfTile(const QuantProblem& q, const float* x, const float* bias, float* out, int n) {
  const int K = q.K;
  const uint16_t* w = reinterpret_cast<const uint16_t*>(q.w) + static_cast<size_t>(n) * K;
  __m512 acc[R][T];
  for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
  for (int j = 0; j < K; j += 32) {
    __m512 w0[R], w1[R];
    for (int r = 0; r < R; r++) {
      const __m512i v = _mm512_loadu_si512(w + static_cast<size_t>(r) * K + j);
      if constexpr (BF16) {
        w0[r] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        w1[r] = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
      } else {
        w0[r] = _mm512_cvtph_ps(_mm512_castsi512_si256(v));
        w1[r] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
      }
    }
    for (int t = 0; t < T; t++) {
      const __m512 x0 = _mm512_loadu_ps(x + static_cast<size_t>(t) * K + j), x1 = _mm512_loadu_ps(x + static_cast<size_t>(t) * K + j + 16);
      for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(x1, w1[r], _mm512_fmadd_ps(x0, w0[r], acc[r][t]));
    }
  }
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < T; t++) out[static_cast<size_t>(t) * q.N + n + r] = _mm512_reduce_add_ps(acc[r][t]) + (bias ? bias[n + r] : 0.f);
  }
}

template <int T>
void halfRows(const QuantProblem& q, const float* x, const float* bias, float* out, int n0, int n1) {
  if constexpr (T > 4) {
    // 8 rows of float32 x (128 KB at K = 4096) do not stay in L1: two passes of at most 4 rows over
    // the chunk (its weights come back from L2), 4 weight rows a tile, half the x traffic of 2 x 8
    halfRows<4>(q, x, bias, out, n0, n1);
    halfRows<T - 4>(q, x + static_cast<size_t>(4) * q.K, bias, out + static_cast<size_t>(4) * q.N, n0, n1);
    return;
  }
  constexpr int R = T == 1 ? 8 : 4;  // one input row: 8 weight streams in flight (1.65x -> 2.2x CPU time at [1, 4096])
  int n = n0;
  if (q.wfmt == QW_BF16) {
    for (; n + R <= n1; n += R) halfTile<T, R, true>(q, x, bias, out, n);
    for (; n < n1; n++) halfTile<T, 1, true>(q, x, bias, out, n);
  } else {
    for (; n + R <= n1; n += R) halfTile<T, R, false>(q, x, bias, out, n);
    for (; n < n1; n++) halfTile<T, 1, false>(q, x, bias, out, n);
  }
}

/**
 * gptq columns n0 .. n1 (<= 128, a multiple of 16), 16 at a time. qweight [K/8, N] holds 8 k's of a
 * column per word, so one 16-word load feeds 8 k's x 16 columns: each nibble by a 16-lane table
 * permute (vpermps reads the index's low 4 bits), times x[t, k] broadcast. Per group:
 * acc += scale · (Σ x·q − (zero + 1) · Σ x). A ACC accumulators per input row keep FMA chains short
 * for few rows. The next group's word of the same columns is prefetched (rows are N words apart).
 */
template <int T>
void gptqRange(const QuantProblem& q, const float* x, const float* groupSum, const float* bias, float* out, int n0, int n1) {
  constexpr int ACC = T == 1 ? 8 : T == 2 ? 4 : T <= 4 ? 2 : 1;
  const int K = q.K, N = q.N, G = q.bC, nG = K / G, wpg = G / 8;
  const uint32_t* qw = reinterpret_cast<const uint32_t*>(q.w);
  alignas(64) float acc[T * 128];
  std::memset(acc, 0, sizeof(acc));
  const __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i zeroWord = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i zeroShift = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  for (int g = 0; g < nG; g++) {
    for (int sub = n0; sub < n1; sub += 16) {
      __m512 ga[T][ACC];
      for (int t = 0; t < T; t++) for (int a = 0; a < ACC; a++) ga[t][a] = _mm512_setzero_ps();
      for (int k8 = g * wpg; k8 < (g + 1) * wpg; k8++) {
        const uint32_t* row = qw + static_cast<size_t>(k8) * N + sub;
        if (g + 1 < nG) _mm_prefetch(reinterpret_cast<const char*>(row + static_cast<size_t>(wpg) * N), _MM_HINT_T0);
        const __m512i wv = _mm512_loadu_si512(row);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
          const __m512 qf = _mm512_permutexvar_ps(_mm512_srli_epi32(wv, 4 * i), table);
          for (int t = 0; t < T; t++) ga[t][i % ACC] = _mm512_fmadd_ps(_mm512_set1_ps(x[static_cast<size_t>(t) * K + 8 * k8 + i]), qf, ga[t][i % ACC]);
        }
      }
      const __m512 s = _mm512_loadu_ps(q.scale + static_cast<size_t>(g) * N + sub);
      const __m512i z2 = _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q.zeros + static_cast<size_t>(g) * (N / 8) + sub / 8)));
      const __m512i zq = _mm512_and_si512(_mm512_srlv_epi32(_mm512_permutexvar_epi32(zeroWord, z2), zeroShift), _mm512_set1_epi32(15));
      const __m512 zf = _mm512_cvtepi32_ps(_mm512_add_epi32(zq, _mm512_set1_epi32(1)));
      for (int t = 0; t < T; t++) {
        __m512 sum = ga[t][0];
        for (int a = 1; a < ACC; a++) sum = _mm512_add_ps(sum, ga[t][a]);
        float* at = acc + t * 128 + (sub - n0);
        const __m512 net = _mm512_fnmadd_ps(zf, _mm512_set1_ps(groupSum[static_cast<size_t>(t) * nG + g]), sum);  // Σ x·q − zero · Σ x
        _mm512_store_ps(at, _mm512_fmadd_ps(s, net, _mm512_load_ps(at)));
      }
    }
  }
  for (int t = 0; t < T; t++) {
    for (int n = n0; n < n1; n++) out[static_cast<size_t>(t) * N + n] = acc[t * 128 + (n - n0)] + (bias ? bias[n] : 0.f);
  }
}

}  // namespace

#ifdef QUANT_DECODE_FP8
void fp8Decode(const QuantProblem& q, const uint16_t* codes, const float* segScale, int seg, const float* bias, float* out) {
  using Fn = void (*)(const QuantProblem&, const uint16_t*, const float*, int, const float*, float*, int, int);
  static constexpr Fn fns[8] = {fp8Rows<1>, fp8Rows<2>, fp8Rows<3>, fp8Rows<4>, fp8Rows<5>, fp8Rows<6>, fp8Rows<7>, fp8Rows<8>};
  const Fn f = fns[q.T - 1];
  forRowChunks(q.N, 16, [&](int n0, int n1) { f(q, codes, segScale, seg, bias, out, n0, n1); });
}
#endif

void halfDecode(const QuantProblem& q, const float* x, const float* bias, float* out) {
  using Fn = void (*)(const QuantProblem&, const float*, const float*, float*, int, int);
  static constexpr Fn fns[8] = {halfRows<1>, halfRows<2>, halfRows<3>, halfRows<4>, halfRows<5>, halfRows<6>, halfRows<7>, halfRows<8>};
  const Fn f = fns[q.T - 1];
  forRowChunks(q.N, 16, [&](int n0, int n1) { f(q, x, bias, out, n0, n1); });
}

void gptqDecode(const QuantProblem& q, const float* x, const float* groupSum, const float* bias, float* out) {
  using Fn = void (*)(const QuantProblem&, const float*, const float*, const float*, float*, int, int);
  static constexpr Fn fns[8] = {gptqRange<1>, gptqRange<2>, gptqRange<3>, gptqRange<4>, gptqRange<5>, gptqRange<6>, gptqRange<7>, gptqRange<8>};
  const Fn f = fns[q.T - 1];
  forRowChunks(q.N, 128, [&](int n0, int n1) { f(q, x, groupSum, bias, out, n0, n1); });
}
#endif
