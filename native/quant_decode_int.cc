// QuantMatMul decode kernels with integer dot products (VNNI), see quant_decode.h. Each weight row
// is read once per call for all T input rows: R weight rows x T input rows of accumulators in
// registers, the x codes (T·K bytes) staying in L1 / L2.
#include <cmath>

#include "pool.h"
#include "quant_decode.h"
#include "quant_matmul.h"
#include "quant_simd.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
namespace {

/** Weight rows in a register tile: more for few input rows (more streams in flight), at most 16 accumulators. */
template <int T>
constexpr int tileRows() { return T <= 2 ? 4 : 2; }

/**
 * int8 rows n .. n+R: Σ (w + 128) · c by vpdpbusd (w flipped to unsigned), minus 128 · Σ c; exact
 * in int32 for K <= 65536. out = dot · s_t · rowScale + bias.
 */
template <int T, int R>
inline void int8Tile(const QuantProblem& q, const int8_t* codes, const float* xScale, const int32_t* codeSum, const float* bias,
                     float* out, int n) {
  const int K = q.K;
  const uint8_t* w = reinterpret_cast<const uint8_t*>(q.w) + static_cast<size_t>(n) * K;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i acc[R][T];
  for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_si512();
  for (int j = 0; j < K; j += 64) {
    __m512i wu[R];
    for (int r = 0; r < R; r++) {
      wu[r] = _mm512_xor_si512(_mm512_loadu_si512(w + static_cast<size_t>(r) * K + j), flip);
      _mm_prefetch(reinterpret_cast<const char*>(w + static_cast<size_t>(r + 2 * R) * K + j), _MM_HINT_T0);  // two tiles ahead
    }
    for (int t = 0; t < T; t++) {
      const __m512i xv = _mm512_loadu_si512(codes + static_cast<size_t>(t) * K + j);
      for (int r = 0; r < R; r++) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], wu[r], xv);
    }
  }
  for (int r = 0; r < R; r++) {
    const float rowScale = q.wscale == QS_TENSOR ? q.scale[0] : q.scale[n + r];
    for (int t = 0; t < T; t++) {
      const int32_t dot = _mm512_reduce_add_epi32(acc[r][t]) - 128 * codeSum[t];
      out[static_cast<size_t>(t) * q.N + n + r] = static_cast<float>(dot) * (xScale[t] * rowScale) + (bias ? bias[n + r] : 0.f);
    }
  }
}

template <int T>
void int8Rows(const QuantProblem& q, const int8_t* codes, const float* xScale, const int32_t* codeSum, const float* bias, float* out,
              int n0, int n1) {
  constexpr int R = tileRows<T>();
  int n = n0;
  for (; n + R <= n1; n += R) int8Tile<T, R>(q, codes, xScale, codeSum, bias, out, n);
  for (; n < n1; n++) int8Tile<T, 1>(q, codes, xScale, codeSum, bias, out, n);
}

/**
 * nvfp4 rows n .. n+R. Per 64 columns: the 32 weight bytes' low nibbles then high nibbles (matching
 * nvfp4Prep's order), 2·e2m1 by a byte table (vpshufb); vpdpbusd with the unsigned x codes (2·e2m1
 * + 12) gives Σ4 (c + 12) · w per lane, less 12 · Σ4 w (a vpdpbusd of the weight alone); the lane
 * sums (one block each) times weight block scale · x block scale, accumulated in float.
 * out = Σ / 4 · weightScale2 + bias.
 */
template <int T, int R>
inline void nvfp4Tile(const QuantProblem& q, const uint8_t* codes, const float* laneScales, const float* bias, float* out, int n) {
  const int K = q.K;
  const uint8_t* w = reinterpret_cast<const uint8_t*>(q.w) + static_cast<size_t>(n) * (K / 2);
  const float* ws = q.scale + static_cast<size_t>(n) * (K / 16);
  const __m512i table = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12));
  const __m512i twelve = _mm512_set1_epi8(12), zero = _mm512_setzero_si512();
  const __m512i laneBlock = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m512 acc[R][T];
  for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
  for (int c = 0; c < K / 64; c++) {
    __m512i wv[R], negCorr[R];
    __m512 wScale[R];
    for (int r = 0; r < R; r++) {
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + static_cast<size_t>(r) * (K / 2) + 32 * c));
      const __m256i lo = _mm256_and_si256(b, low4), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), low4);
      wv[r] = _mm512_shuffle_epi8(table, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
      negCorr[r] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, twelve, wv[r]));
      wScale[r] = _mm512_permutexvar_ps(laneBlock, _mm512_castps128_ps512(_mm_loadu_ps(ws + static_cast<size_t>(r) * (K / 16) + 4 * c)));
    }
    for (int t = 0; t < T; t++) {
      const __m512i xv = _mm512_loadu_si512(codes + static_cast<size_t>(t) * K + 64 * c);
      const __m512 xs = _mm512_loadu_ps(laneScales + static_cast<size_t>(t) * (K / 4) + 16 * c);
      for (int r = 0; r < R; r++) {
        const __m512i d = _mm512_dpbusd_epi32(negCorr[r], xv, wv[r]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(wScale[r], xs), acc[r][t]);
      }
    }
  }
  const float f = 0.25f * q.ws2;
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < T; t++) out[static_cast<size_t>(t) * q.N + n + r] = _mm512_reduce_add_ps(acc[r][t]) * f + (bias ? bias[n + r] : 0.f);
  }
}

template <int T>
void nvfp4Rows(const QuantProblem& q, const uint8_t* codes, const float* laneScales, const float* bias, float* out, int n0, int n1) {
  constexpr int R = tileRows<T>();
  int n = n0;
  for (; n + R <= n1; n += R) nvfp4Tile<T, R>(q, codes, laneScales, bias, out, n);
  for (; n < n1; n++) nvfp4Tile<T, 1>(q, codes, laneScales, bias, out, n);
}

}  // namespace

void int8Decode(const QuantProblem& q, const int8_t* codes, const float* xScale, const int32_t* codeSum, const float* bias, float* out) {
  using Fn = void (*)(const QuantProblem&, const int8_t*, const float*, const int32_t*, const float*, float*, int, int);
  static constexpr Fn fns[8] = {int8Rows<1>, int8Rows<2>, int8Rows<3>, int8Rows<4>, int8Rows<5>, int8Rows<6>, int8Rows<7>, int8Rows<8>};
  const Fn f = fns[q.T - 1];
  forRowChunks(q.N, 16, [&](int n0, int n1) { f(q, codes, xScale, codeSum, bias, out, n0, n1); });
}

void nvfp4Decode(const QuantProblem& q, const uint8_t* codes, const float* laneScales, const float* bias, float* out) {
  using Fn = void (*)(const QuantProblem&, const uint8_t*, const float*, const float*, float*, int, int);
  static constexpr Fn fns[8] = {nvfp4Rows<1>, nvfp4Rows<2>, nvfp4Rows<3>, nvfp4Rows<4>, nvfp4Rows<5>, nvfp4Rows<6>, nvfp4Rows<7>, nvfp4Rows<8>};
  const Fn f = fns[q.T - 1];
  forRowChunks(q.N, 16, [&](int n0, int n1) { f(q, codes, laneScales, bias, out, n0, n1); });
}
#endif
