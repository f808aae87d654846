// QuantMatMul on the cpu: see quant_matmul.h. Decode rows go to quant_decode.h's kernels first;
// the rest lands here. The weight is never widened as a whole: the GEMV
// widens one row at a time into an L1 buffer (bit tricks for e4m3 / bf16 / f16, a 16-entry table
// for e2m1, shifts for int4) and dots it with every input row; prefill widens 1024-row panels
// and hands them to sgemm (matmul.cc). Activations are quantized first, exactly as
// kernels/cpu/quant_ts.ts does (float32 arithmetic here, doubles there).
#include "quant_matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "fp8.h"
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include "matmul.h"
#include "pool.h"
#include "quant_decode.h"

ThreadPool& pool();

namespace {

using Q = QuantProblem;

float maxAbs(const float* x, int n) {
  float m = 0.f;
  for (int i = 0; i < n; i++) {
    const float a = std::fabs(x[i]);
    if (a > m || std::isnan(a)) m = a;  // NaN sticks: no comparison replaces it
  }
  return m;
}

void e4m3Span(const float* x, float* o, int n, float s) {
  for (int i = 0; i < n; i++) o[i] = s == 0.f ? 0.f * x[i] : roundE4m3(x[i] / s) * s;
}

void quantizeActivations(const Q& q, const float* x, float* xq) {
  const int K = q.K;
  pool().parallelFor(q.T, [&](int t) {
    const float* r = x + static_cast<size_t>(t) * K;
    float* o = xq + static_cast<size_t>(t) * K;
    switch (q.act) {
      case QACT_E4M3_STATIC: e4m3Span(r, o, K, q.inScale); break;
      case QACT_E4M3_TOKEN: e4m3Span(r, o, K, maxAbs(r, K) / 448.f); break;
      case QACT_E4M3_GROUP:
        for (int g = 0; g < K; g += q.group) {
          const int n = std::min(q.group, K - g);
          e4m3Span(r + g, o + g, n, maxAbs(r + g, n) / 448.f);
        }
        break;
      case QACT_INT8_TOKEN: {
        const float s = maxAbs(r, K) / 127.f;
        for (int i = 0; i < K; i++) {
          float v = s == 0.f ? 0.f * r[i] : std::nearbyint(r[i] / s);
          v = v > 127.f ? 127.f : v < -127.f ? -127.f : v;  // NaN passes both comparisons unchanged
          o[i] = v * s;
        }
        break;
      }
      case QACT_NVFP4:
        for (int b = 0; b < K; b += 16) {
          const int n = std::min(16, K - b);
          const float bg = roundE4m3(maxAbs(r + b, n) / 6.f / q.inScale) * q.inScale;
          for (int i = b; i < b + n; i++) o[i] = bg == 0.f ? 0.f * r[i] : roundE2m1(r[i] / bg) * bg;
        }
        break;
      default: std::memcpy(o, r, sizeof(float) * K);
    }
  });
}

#ifdef __AVX512F__
/** 16 weights of a packed row from column j (a multiple of 16), widened in registers; nvfp4 with its block scale. */
template <int F>
inline __m512 widen16(const uint8_t* row, int j, const float* blockScales) {
  if constexpr (F == QW_E4M3) {
    // e4m3ToFloat's values, 16 at a time, without float32 subnormals (a multiply by a subnormal costs a
    // microcode assist, ~100 cycles): normals rebiased in the exponent field, subnormals as m · 2^-9
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j)));
    const __m512i mag = _mm512_and_si512(b, _mm512_set1_epi32(0x7f));
    const __m512 normal = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_slli_epi32(mag, 20), _mm512_set1_epi32(120 << 23)));
    const __m512 sub = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(mag, _mm512_set1_epi32(7))), _mm512_set1_ps(0x1p-9f));
    const __m512 absV = _mm512_mask_blend_ps(_mm512_cmplt_epi32_mask(mag, _mm512_set1_epi32(8)), normal, sub);
    const __m512 v = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(absV), _mm512_slli_epi32(_mm512_and_si512(b, _mm512_set1_epi32(0x80)), 24)));
    return _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(0x7f)), v, _mm512_set1_ps(NAN));
  } else if constexpr (F == QW_INT8) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j))));
  } else if constexpr (F == QW_BF16) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j))), 16));
  } else if constexpr (F == QW_F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j)));
  } else {  // nvfp4: 8 bytes = 16 codes, low nibble first, by a 16-lane table permute
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + j / 2));
    const __m128i low4 = _mm_set1_epi8(0x0f);
    const __m128i codes = _mm_unpacklo_epi8(_mm_and_si128(bytes, low4), _mm_and_si128(_mm_srli_epi16(bytes, 4), low4));
    const __m512 v = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(codes), _mm512_loadu_ps(kE2m1));
    return _mm512_mul_ps(v, _mm512_set1_ps(blockScales[j / 16]));
  }
}

#endif

/** Row n of W widened into buf[K], block scales applied; returns the factor for the whole row. */
float widenRow(const Q& q, int n, float* buf) {
  const int K = q.K;
  switch (q.wfmt) {
    case QW_E4M3: {
      const uint8_t* b = reinterpret_cast<const uint8_t*>(q.w + static_cast<size_t>(n) * ((K + 3) / 4));
      int j = 0;
#ifdef __AVX512F__
      for (; j + 16 <= K; j += 16) _mm512_storeu_ps(buf + j, widen16<QW_E4M3>(b, j, nullptr));
#endif
      for (; j < K; j++) buf[j] = e4m3ToFloat(b[j]);
      break;
    }
    case QW_INT8: {
      const int8_t* b = reinterpret_cast<const int8_t*>(q.w + static_cast<size_t>(n) * ((K + 3) / 4));
      for (int j = 0; j < K; j++) buf[j] = static_cast<float>(b[j]);
      break;
    }
    case QW_NVFP4: {
      const uint8_t* b = reinterpret_cast<const uint8_t*>(q.w + static_cast<size_t>(n) * ((K + 7) / 8));
      const float* s = q.scale + static_cast<size_t>(n) * (K / 16);
#ifdef __AVX512F__
      // one block = 8 bytes = 16 codes: nibbles interleaved low first, widened by a 16-lane table permute
      const __m512 table = _mm512_loadu_ps(kE2m1);
      const __m128i low4 = _mm_set1_epi8(0x0f);
      for (int blk = 0; blk < K / 16; blk++) {
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + blk * 8));
        const __m128i codes = _mm_unpacklo_epi8(_mm_and_si128(bytes, low4), _mm_and_si128(_mm_srli_epi16(bytes, 4), low4));
        const __m512 v = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(codes), table);
        _mm512_storeu_ps(buf + blk * 16, _mm512_mul_ps(v, _mm512_set1_ps(s[blk])));
      }
#else
      for (int blk = 0; blk < K / 16; blk++) {
        const float sb = s[blk];
        for (int j = 0; j < 8; j++) {
          const uint8_t v = b[blk * 8 + j];
          buf[blk * 16 + 2 * j] = kE2m1[v & 15] * sb;
          buf[blk * 16 + 2 * j + 1] = kE2m1[v >> 4] * sb;
        }
      }
#endif
      return q.ws2;
    }
    case QW_BF16: case QW_F16: {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(q.w + static_cast<size_t>(n) * ((K + 1) / 2));
      if (q.wfmt == QW_BF16) for (int j = 0; j < K; j++) buf[j] = bf16ToFloat(h[j]);
      else for (int j = 0; j < K; j++) buf[j] = f16ToFloat(h[j]);
      return 1.f;
    }
  }
  if (q.wscale == QS_TENSOR) return q.scale[0];
  if (q.wscale == QS_ROWWISE) return q.scale[n];
  if (q.wscale == QS_BLOCK) {
    const int nb = (K + q.bC - 1) / q.bC;
    const float* s = q.scale + static_cast<size_t>(n / q.bR) * nb;
    for (int c = 0; c < nb; c++) {
      const float sc = s[c];
      for (int j = c * q.bC, e = std::min(K, j + q.bC); j < e; j++) buf[j] *= sc;
    }
  }
  return 1.f;
}

/** 16 independent lanes: vectorizes without reassociating a float sum. */
float dot(const float* a, const float* b, int n) {
  float acc[16] = {0};
  int j = 0;
  for (; j + 16 <= n; j += 16) for (int l = 0; l < 16; l++) acc[l] += a[j + l] * b[j + l];
  float s = 0.f;
  for (; j < n; j++) s += a[j] * b[j];
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

/** dots[t] = x[t] · w for the T (<= 8) rows of x: each widened weight vector is loaded once for all rows. */
void dotRows(const float* x, int T, int K, const float* w, float* dots) {
#ifdef __AVX512F__
  __m512 acc[8];
  for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
  int j = 0;
  for (; j + 16 <= K; j += 16) {
    const __m512 wv = _mm512_loadu_ps(w + j);
    for (int t = 0; t < T; t++) acc[t] = _mm512_fmadd_ps(_mm512_loadu_ps(x + static_cast<size_t>(t) * K + j), wv, acc[t]);
  }
  for (int t = 0; t < T; t++) {
    float s = _mm512_reduce_add_ps(acc[t]);
    for (int i = j; i < K; i++) s += x[static_cast<size_t>(t) * K + i] * w[i];
    dots[t] = s;
  }
#else
  for (int t = 0; t < T; t++) dots[t] = dot(x + static_cast<size_t>(t) * K, w, K);
#endif
}

#ifdef __AVX512F__
/**
 * Decode rows n0 .. n1 without a widened-row buffer: each 16-weight vector is widened in registers
 * and used for all T (<= 8) input rows. Same values, same 16-lane sums as widenRow + dotRows
 * (bit-identical results); K % 16 == 0, no fp8 block scales.
 */
template <int F>
void gemvFused(const Q& q, const float* xq, const float* bias, float* out, int n0, int n1) {
  const int K = q.K, N = q.N, T = q.T;
  const size_t rowBytes = 4 * static_cast<size_t>(F == QW_NVFP4 ? (K + 7) / 8 : F == QW_BF16 || F == QW_F16 ? (K + 1) / 2 : (K + 3) / 4);
  for (int n = n0; n < n1; n++) {
    const uint8_t* row = reinterpret_cast<const uint8_t*>(q.w) + n * rowBytes;
    const float* blockScales = F == QW_NVFP4 ? q.scale + static_cast<size_t>(n) * (K / 16) : nullptr;
    __m512 acc[8];
    for (int t = 0; t < 8; t++) acc[t] = _mm512_setzero_ps();
    for (int j = 0; j < K; j += 16) {
      const __m512 wv = widen16<F>(row, j, blockScales);
#pragma GCC unroll 8
      for (int t = 0; t < 8; t++) if (t < T) acc[t] = _mm512_fmadd_ps(_mm512_loadu_ps(xq + static_cast<size_t>(t) * K + j), wv, acc[t]);
    }
    const float f = F == QW_NVFP4 ? q.ws2 : F == QW_BF16 || F == QW_F16 ? 1.f : q.wscale == QS_TENSOR ? q.scale[0] : q.scale[n];
    for (int t = 0; t < T; t++) out[static_cast<size_t>(t) * N + n] = _mm512_reduce_add_ps(acc[t]) * f + (bias ? bias[n] : 0.f);
  }
}

/** The fused decode of rows n0 .. n1 when the format allows it; false otherwise. */
bool gemvFusedRows(const Q& q, const float* xq, const float* bias, float* out, int n0, int n1) {
  if (q.K % 16 != 0) return false;
  switch (q.wfmt) {
    case QW_E4M3: if (q.wscale == QS_BLOCK) return false; gemvFused<QW_E4M3>(q, xq, bias, out, n0, n1); return true;
    case QW_INT8: if (q.wscale == QS_BLOCK) return false; gemvFused<QW_INT8>(q, xq, bias, out, n0, n1); return true;
    case QW_NVFP4: gemvFused<QW_NVFP4>(q, xq, bias, out, n0, n1); return true;
    case QW_BF16: gemvFused<QW_BF16>(q, xq, bias, out, n0, n1); return true;
    case QW_F16: gemvFused<QW_F16>(q, xq, bias, out, n0, n1); return true;
    default: return false;
  }
}
#else
bool gemvFusedRows(const Q&, const float*, const float*, float*, int, int) { return false; }
#endif

/** W^T rows k of gptq columns n0 .. n0+cols into panel[(n - n0) * K + k]. */
void widenGptqPanel(const Q& q, int n0, int cols, float* panel) {
  const int K = q.K, N = q.N, zw = N / 8;
  for (int k = 0; k < K; k++) {
    const int g = q.gIdx[k], shift = 4 * (k & 7);
    const int32_t* qw = q.w + static_cast<size_t>(k >> 3) * N;
    const float* s = q.scale + static_cast<size_t>(g) * N;
    const int32_t* z = q.zeros + static_cast<size_t>(g) * zw;
    for (int c = 0; c < cols; c++) {
      const int n = n0 + c;
      const int qv = (static_cast<uint32_t>(qw[n]) >> shift) & 15;
      const int zv = ((static_cast<uint32_t>(z[n >> 3]) >> (4 * (n & 7))) & 15) + 1;
      panel[static_cast<size_t>(c) * K + k] = static_cast<float>(qv - zv) * s[n];
    }
  }
}

/**
 * GPTQ decode over output columns n0 .. n0+cols (<= 64). qweight rows run along k with the columns
 * contiguous, so one word load feeds 8 k's of 64 lanes. Per group: Σ_k x·q and Σ_k x are
 * accumulated, then folded in once as scale · (Σ x·q − zero · Σ x) when the group changes (any
 * g_idx order works; a word whose 8 k's span groups takes the per-k path).
 */
void gptqColumns(const Q& q, const float* xq, int n0, int cols, const float* bias, float* out) {
  const int K = q.K, N = q.N, T = q.T, zw = N / 8;
  float acc[8][64] = {}, gacc[8][64] = {}, sx[8] = {}, zf[64] = {}, sf[64] = {};
  int group = -1;
  auto flush = [&] {
    if (group < 0) return;
    for (int t = 0; t < T; t++) {
      for (int c = 0; c < 64; c++) { acc[t][c] += sf[c] * (gacc[t][c] - zf[c] * sx[t]); gacc[t][c] = 0.f; }
      sx[t] = 0.f;
    }
  };
  auto enter = [&](int g) {
    flush();
    group = g;
    const int32_t* z = q.zeros + static_cast<size_t>(g) * zw;
    const float* s = q.scale + static_cast<size_t>(g) * N + n0;
    for (int c = 0; c < cols; c++) {
      const int n = n0 + c;
      zf[c] = static_cast<float>(((static_cast<uint32_t>(z[n >> 3]) >> (4 * (n & 7))) & 15) + 1);
      sf[c] = s[c];
    }
  };
  uint32_t qw[64] = {};
  for (int k0 = 0; k0 < K; k0 += 8) {
    std::memcpy(qw, reinterpret_cast<const uint32_t*>(q.w) + static_cast<size_t>(k0 >> 3) * N + n0, sizeof(uint32_t) * cols);
    const int g = q.gIdx[k0];
    bool uniform = true;
    for (int i = 1; i < 8; i++) uniform = uniform && q.gIdx[k0 + i] == g;
    if (uniform) {
      if (g != group) enter(g);
      for (int t = 0; t < T; t++) {
        const float* xs = xq + static_cast<size_t>(t) * K + k0;
        sx[t] += ((xs[0] + xs[1]) + (xs[2] + xs[3])) + ((xs[4] + xs[5]) + (xs[6] + xs[7]));
        for (int c = 0; c < 64; c++) {
          const uint32_t w = qw[c];
          float a = gacc[t][c];
          for (int i = 0; i < 8; i++) a += xs[i] * static_cast<float>((w >> (4 * i)) & 15);
          gacc[t][c] = a;
        }
      }
      continue;
    }
    for (int i = 0; i < 8; i++) {
      if (q.gIdx[k0 + i] != group) enter(q.gIdx[k0 + i]);
      for (int t = 0; t < T; t++) {
        const float xv = xq[static_cast<size_t>(t) * K + k0 + i];
        sx[t] += xv;
        for (int c = 0; c < 64; c++) gacc[t][c] += xv * static_cast<float>((qw[c] >> (4 * i)) & 15);
      }
    }
  }
  flush();
  for (int t = 0; t < T; t++) {
    for (int c = 0; c < cols; c++) out[static_cast<size_t>(t) * N + n0 + c] = acc[t][c] + (bias ? bias[n0 + c] : 0.f);
  }
}

void gemv(const Q& q, const float* xq, const float* bias, float* out) {
  const int K = q.K, N = q.N, T = q.T;
  const int chunk = q.wfmt == QW_GPTQ ? 64 : 32, chunks = (N + chunk - 1) / chunk;
  pool().parallelFor(chunks, [&](int c) {
    thread_local std::vector<float> buf;
    const int n0 = c * chunk, n1 = std::min(N, n0 + chunk);
    if (q.wfmt == QW_GPTQ) {
      gptqColumns(q, xq, n0, n1 - n0, bias, out);
      return;
    }
    if (gemvFusedRows(q, xq, bias, out, n0, n1)) return;
    buf.resize(K);
    float dots[8];
    for (int n = n0; n < n1; n++) {
      const float f = widenRow(q, n, buf.data());
      dotRows(xq, T, K, buf.data(), dots);
      for (int t = 0; t < T; t++) out[static_cast<size_t>(t) * N + n] = dots[t] * f + (bias ? bias[n] : 0.f);
    }
  });
}

void prefill(const Q& q, const float* xq, const float* bias, float* out) {
  const int K = q.K, N = q.N, T = q.T, P = 1024;
  std::vector<float> panel(static_cast<size_t>(P) * K), tmp(static_cast<size_t>(T) * P);
  for (int n0 = 0; n0 < N; n0 += P) {
    const int cols = std::min(P, N - n0);
    if (q.wfmt == QW_GPTQ) {
      pool().parallelFor((cols + 63) / 64, [&](int c) {
        widenGptqPanel(q, n0 + 64 * c, std::min(64, cols - 64 * c), panel.data() + static_cast<size_t>(64 * c) * K);
      });
    } else {
      pool().parallelFor(cols, [&](int c) {
        float* row = panel.data() + static_cast<size_t>(c) * K;
        const float f = widenRow(q, n0 + c, row);
        if (f != 1.f) for (int j = 0; j < K; j++) row[j] *= f;
      });
    }
    sgemm(T, cols, K, xq, false, panel.data(), true, bias ? bias + n0 : nullptr, tmp.data());
    for (int t = 0; t < T; t++) std::memcpy(out + static_cast<size_t>(t) * N + n0, tmp.data() + static_cast<size_t>(t) * cols, sizeof(float) * cols);
  }
}

}  // namespace

long long quantWeightWords(const int32_t* ints) {
  const long long K = ints[QA_K], N = ints[QA_N];
  switch (ints[QA_WFMT]) {
    case QW_E4M3: case QW_INT8: return N * ((K + 3) / 4);
    case QW_NVFP4: return N * ((K + 7) / 8);
    case QW_GPTQ: return (K / 8) * N;
    default: return N * ((K + 1) / 2);
  }
}

long long quantScaleCount(const int32_t* ints) {
  const long long K = ints[QA_K], N = ints[QA_N];
  if (ints[QA_WFMT] == QW_NVFP4) return N * (K / 16);
  if (ints[QA_WFMT] == QW_GPTQ) return (K / ints[QA_BCOLS]) * N;
  switch (ints[QA_WSCALE]) {
    case QS_TENSOR: return 1;
    case QS_ROWWISE: return N;
    case QS_BLOCK: return ((N + ints[QA_BROWS] - 1) / ints[QA_BROWS]) * ((K + ints[QA_BCOLS] - 1) / ints[QA_BCOLS]);
    default: return 0;
  }
}

void quantMatMul(const int32_t* ints, const float* x, const int32_t* w, const float* scale, const int32_t* zeros,
                 const int32_t* gIdx, const float* bias, float* out, float inputScale, float weightScale2) {
  const Q q{ints[QA_T], ints[QA_K], ints[QA_N], ints[QA_WFMT], ints[QA_WSCALE], ints[QA_BROWS], ints[QA_BCOLS], ints[QA_ACT],
            ints[QA_GROUP], inputScale, weightScale2, w, scale, zeros, gIdx};
  if (q.T == 0 || q.N == 0) return;
  if (q.T <= 8 && quantDecodeFast(q, x, bias, out)) return;  // packed dot products (quant_decode.h)
  thread_local std::vector<float> xq;
  xq.resize(static_cast<size_t>(q.T) * q.K);
  quantizeActivations(q, x, xq.data());
  // gptq's GEMV factors the zero point out of each group (scale · (Σ x·q − zero · Σ x)): with ±Inf in
  // x that would turn Inf · 0 into Inf − Inf; such calls take the widened-panel product instead
  const bool factorable = q.wfmt != QW_GPTQ || std::all_of(xq.begin(), xq.begin() + static_cast<size_t>(q.T) * q.K, [](float v) { return std::isfinite(v); });
  if (q.T <= 8 && factorable) gemv(q, xq.data(), bias, out);
  else prefill(q, xq.data(), bias, out);
}
