// QuantMatMul decode kernels with integer dot products (VNNI), see quant_decode.h. Each weight row
// is read once per call for all T input rows: R weight rows x T input rows of accumulators in
// registers, the x codes (T·K bytes) staying in L1 / L2.
#include <cmath>

#include "pool.h"
#include "quant_decode.h"
#include "quant_matmul.h"
#include "quant_simd.h"

#ifdef QUANT_DECODE_INT8
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
  constexpr int R = T == 1 ? 8 : tileRows<T>();  // one input row: 8 weight streams in flight (~25% at [1, 4096])
  int n = n0;
  for (; n + R <= n1; n += R) int8Tile<T, R>(q, codes, xScale, codeSum, bias, out, n);
  for (; n < n1; n++) int8Tile<T, 1>(q, codes, xScale, codeSum, bias, out, n);
}

#ifdef QUANT_DECODE_NVFP4
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

/** The high nibble of each byte, as a byte (one GF(2) affine map where the build has GFNI). */
inline __m512i highNibbles(__m512i v) {
#ifdef __GFNI__
  return _mm512_gf2p8affine_epi64_epi8(v, _mm512_set1_epi64(0x1020408000000000LL), 0);  // matrix byte 7 - i picks bit i: x bit i + 4, top four zero
#else
  return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0f));
#endif
}

/**
 * nvfp4 rows n .. n+R, K a multiple of 256: 16 blocks (256 columns, 128 weight bytes) a step, in 4
 * vpdpbusd passes where int32 lane b always meets block b, so each lane ends the step holding one
 * whole block's Σ c · w; one scale multiply per block then, instead of one per 4 columns. Two dword
 * permutes gather block b's first and second 4 weight bytes into lane b; their low and high nibbles
 * are the passes (pass s, lane b: columns 16b + 8·(s / 2) + 2j + s % 2, j = 0..3), 2·e2m1 + 12 by a
 * byte table (vpshufb). The weights are unsigned, the x codes signed, the accumulator starts at −12 ·
 * Σ c of the block (nvfp4WidePrep). out = Σ_blocks (Σ c·w) · weight block scale · x block scale / 4 · weightScale2.
 * (Was: 4 byte permutes vpermi2b + widening + nibble split per pass, 20 ops a row and step against 10
 * now; 3.58x float32 at [8, 4096] x [4096, 4096] before.)
 */
template <int T, int R>
inline void nvfp4WideTile(const QuantProblem& q, const int8_t* codes, const int32_t* corr, const float* blockScales, const float* bias,
                          float* out, int n) {
  const int K = q.K, nb = K / 16;
  const uint8_t* w = reinterpret_cast<const uint8_t*>(q.w) + static_cast<size_t>(n) * (K / 2);
  const float* ws = q.scale + static_cast<size_t>(n) * nb;
  const __m512i table = _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  // block b's weight bytes are dwords 2b, 2b + 1 of the 128 (a then b below)
  const __m512i firstHalf = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i secondHalf = _mm512_add_epi32(firstHalf, _mm512_set1_epi32(1));
  __m512 acc[R][T];
  for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
#pragma GCC unroll 1
  for (int g = 0; g < K / 256; g++) {
    __m512i wv[R][4];
    __m512 wScale[R];
    for (int r = 0; r < R; r++) {
      const uint8_t* wr = w + static_cast<size_t>(r) * (K / 2) + 128 * g;
      const __m512i a = _mm512_loadu_si512(wr), b = _mm512_loadu_si512(wr + 64);
      const __m512i first = _mm512_permutex2var_epi32(a, firstHalf, b), second = _mm512_permutex2var_epi32(a, secondHalf, b);
      wv[r][0] = _mm512_shuffle_epi8(table, _mm512_and_si512(first, low4));
      wv[r][1] = _mm512_shuffle_epi8(table, highNibbles(first));
      wv[r][2] = _mm512_shuffle_epi8(table, _mm512_and_si512(second, low4));
      wv[r][3] = _mm512_shuffle_epi8(table, highNibbles(second));
      wScale[r] = _mm512_loadu_ps(ws + static_cast<size_t>(r) * nb + 16 * g);
    }
    const int8_t* xg = codes + static_cast<size_t>(g) * T * 256;  // [T, 256]: constant offsets below
    const int32_t* cg = corr + static_cast<size_t>(g) * T * 16;
    const float* sg = blockScales + static_cast<size_t>(g) * T * 16;
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
      const int8_t* xc = xg + 256 * t;
      const __m512i c0 = _mm512_loadu_si512(cg + 16 * t);
      const __m512 xs = _mm512_loadu_ps(sg + 16 * t);
      __m512i d[R];
      for (int r = 0; r < R; r++) d[r] = c0;
      for (int s = 0; s < 4; s++) {  // each x load feeds all R rows
        const __m512i xv = _mm512_loadu_si512(xc + 64 * s);
        for (int r = 0; r < R; r++) d[r] = _mm512_dpbusd_epi32(d[r], wv[r][s], xv);
      }
      for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d[r]), _mm512_mul_ps(wScale[r], xs), acc[r][t]);
    }
  }
  const float f = 0.25f * q.ws2;
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < T; t++) out[static_cast<size_t>(t) * q.N + n + r] = _mm512_reduce_add_ps(acc[r][t]) * f + (bias ? bias[n + r] : 0.f);
  }
}

template <int T>
void nvfp4WideRows(const QuantProblem& q, const int8_t* codes, const int32_t* corr, const float* blockScales, const float* bias, float* out,
                   int n0, int n1) {
  constexpr int R = T <= 2 ? 3 : 2;  // wv takes 4 registers a row
  int n = n0;
  for (; n + R <= n1; n += R) nvfp4WideTile<T, R>(q, codes, corr, blockScales, bias, out, n);
  for (; n < n1; n++) nvfp4WideTile<T, 1>(q, codes, corr, blockScales, bias, out, n);
}
#endif

}  // namespace

void int8Decode(const QuantProblem& q, const int8_t* codes, const float* xScale, const int32_t* codeSum, const float* bias, float* out) {
  using Fn = void (*)(const QuantProblem&, const int8_t*, const float*, const int32_t*, const float*, float*, int, int);
  static constexpr Fn fns[8] = {int8Rows<1>, int8Rows<2>, int8Rows<3>, int8Rows<4>, int8Rows<5>, int8Rows<6>, int8Rows<7>, int8Rows<8>};
  const Fn f = fns[q.T - 1];
  forRowChunks(q.N, 16, [&](int n0, int n1) { f(q, codes, xScale, codeSum, bias, out, n0, n1); });
}

#ifdef QUANT_DECODE_NVFP4
void nvfp4Decode(const QuantProblem& q, const uint8_t* codes, const float* laneScales, const float* bias, float* out) {
  using Fn = void (*)(const QuantProblem&, const uint8_t*, const float*, const float*, float*, int, int);
  static constexpr Fn fns[8] = {nvfp4Rows<1>, nvfp4Rows<2>, nvfp4Rows<3>, nvfp4Rows<4>, nvfp4Rows<5>, nvfp4Rows<6>, nvfp4Rows<7>, nvfp4Rows<8>};
  const Fn f = fns[q.T - 1];
  forRowChunks(q.N, 16, [&](int n0, int n1) { f(q, codes, laneScales, bias, out, n0, n1); });
}

void nvfp4WideDecode(const QuantProblem& q, const int8_t* codes, const int32_t* corr, const float* blockScales, const float* bias, float* out) {
  using Fn = void (*)(const QuantProblem&, const int8_t*, const int32_t*, const float*, const float*, float*, int, int);
  static constexpr Fn fns[8] = {nvfp4WideRows<1>, nvfp4WideRows<2>, nvfp4WideRows<3>, nvfp4WideRows<4>, nvfp4WideRows<5>, nvfp4WideRows<6>,
                                nvfp4WideRows<7>, nvfp4WideRows<8>};
  const Fn f = fns[q.T - 1];
  forRowChunks(q.N, 16, [&](int n0, int n1) { f(q, codes, corr, blockScales, bias, out, n0, n1); });
}
#endif
#endif
