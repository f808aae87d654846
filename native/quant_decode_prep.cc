// QuantMatMul decode (quant_decode.h): which kernel a call gets, and its input rows quantized once
// into the layout that kernel reads. The quantizers do what quant_matmul.cc's quantizeActivations
// does (x / s in float32, the same rounding), so the codes are the same; the scale stays apart.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "fp8.h"
#include "pool.h"
#include "quant_decode.h"
#include "quant_matmul.h"
#include "quant_simd.h"

#ifdef QUANT_DECODE_HALVES
namespace {

#ifdef QUANT_DECODE_INT8

/** int8 per token: codes clamp(round(x / s), ±127), s = max|x| / 127; a row whose s is not finite gets NaN. */
void int8Prep(const QuantProblem& q, const float* x, int8_t* codes, float* xScale, int32_t* codeSum) {
  const int K = q.K;
  for (int t = 0; t < q.T; t++) {
    const float* r = x + static_cast<size_t>(t) * K;
    int8_t* c = codes + static_cast<size_t>(t) * K;
    const float s = maxAbsV(r, K) / 127.f;
    xScale[t] = std::isfinite(s) ? s : NAN;
    codeSum[t] = 0;
    if (!std::isfinite(s) || s == 0.f) { std::memset(c, 0, K); continue; }  // s == 0: every x is ±0
    __m512i sum = _mm512_setzero_si512();
    const __m512 sv = _mm512_set1_ps(s), hi = _mm512_set1_ps(127.f), lo = _mm512_set1_ps(-127.f);
    for (int j = 0; j < K; j += 16) {
      const __m512 v = _mm512_roundscale_ps(_mm512_div_ps(_mm512_loadu_ps(r + j), sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m512i i = _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(v, hi), lo));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(c + j), _mm512_cvtepi32_epi8(i));
      sum = _mm512_add_epi32(sum, i);
    }
    codeSum[t] = _mm512_reduce_add_epi32(sum);
  }
}

#endif

#ifdef QUANT_DECODE_NVFP4
/** x block scales of nvfp4 for one row: e4m3(max|x| / 6 / g) · g, 0 · max|x| where that is 0; bs holds a multiple of 16. */
void nvfp4BlockScales(const QuantProblem& q, const float* row, float* bs) {
  const int nb = q.K / 16, nb16 = (nb + 15) / 16 * 16;
  const __m512 g = _mm512_set1_ps(q.inScale);
  for (int b = 0; b < nb; b++) bs[b] = maxAbsV(row + 16 * b, 16);
  std::fill(bs + nb, bs + nb16, 0.f);
  for (int b = 0; b < nb16; b += 16) {
    const __m512 mx = _mm512_loadu_ps(bs + b);
    const __m512 bg = _mm512_mul_ps(roundE4m3V(_mm512_div_ps(_mm512_div_ps(mx, _mm512_set1_ps(6.f)), g)), g);
    _mm512_storeu_ps(bs + b, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(bg, _mm512_setzero_ps(), _CMP_EQ_OQ), bg, _mm512_mul_ps(mx, _mm512_setzero_ps())));
  }
}

/** 2·e2m1(x / bg) of 16 columns as int32 (0 where bg is 0 or not finite). */
inline __m512i nvfp4Codes(const float* r, float bg) {
  if (bg == 0.f || !std::isfinite(bg)) return _mm512_setzero_si512();
  const __m512 e = roundE2m1V(_mm512_div_ps(_mm512_loadu_ps(r), _mm512_set1_ps(bg)));
  return _mm512_cvtps_epi32(_mm512_add_ps(e, e));
}

/**
 * nvfp4: per 16-column block b = e4m3(max|x| / 6 / g) · g and codes e2m1(x / b), stored as
 * 2·e2m1 + 12 (0 .. 24, unsigned for vpdpbusd). Each 64 columns are stored as their 32 even then 32
 * odd columns (the weight's low then high nibbles), so int32 lane i of a 64-byte vector holds 4
 * columns of one block; laneScales[t, 16c + i] is that block's b (0 · max|x| where b is 0).
 */
void nvfp4Prep(const QuantProblem& q, const float* x, uint8_t* codes, float* laneScales) {
  const int K = q.K;
  alignas(64) uint8_t order[64];
  for (int p = 0; p < 64; p++) order[p] = static_cast<uint8_t>(p < 32 ? 2 * p : 2 * (p - 32) + 1);
  const __m512i orderV = _mm512_load_si512(order);
  thread_local std::vector<float> blockScale;
  if (blockScale.size() < static_cast<size_t>(K / 16 + 16)) blockScale.resize(K / 16 + 16);
  float* bs = blockScale.data();
  for (int t = 0; t < q.T; t++) {
    const float* row = x + static_cast<size_t>(t) * K;
    nvfp4BlockScales(q, row, bs);
    for (int c = 0; c < K / 64; c++) {
      alignas(64) uint8_t natural[64];
      for (int b = 0; b < 4; b++) {
        const __m512i u = _mm512_add_epi32(nvfp4Codes(row + 64 * c + 16 * b, bs[4 * c + b]), _mm512_set1_epi32(12));
        _mm_store_si128(reinterpret_cast<__m128i*>(natural + 16 * b), _mm512_cvtepi32_epi8(u));
      }
      _mm512_storeu_si512(codes + static_cast<size_t>(t) * K + 64 * c, _mm512_permutexvar_epi8(orderV, _mm512_load_si512(natural)));
      float* lanes = laneScales + static_cast<size_t>(t) * (K / 4) + 16 * c;
      for (int i = 0; i < 16; i++) lanes[i] = bs[4 * c + (i % 8) / 2];
    }
  }
}

/** vpermb indices of pass s: output byte 4b + j <- byte 16·(b % 4) + 8·(s / 2) + 2j + s % 2 of the 64 holding block b. */
inline __m512i widePassPick(int s) {
  alignas(64) uint8_t idx[64];
  for (int p = 0; p < 64; p++) idx[p] = static_cast<uint8_t>(16 * ((p / 4) % 4) + 8 * (s / 2) + 2 * (p % 4) + s % 2);
  return _mm512_load_si512(idx);
}

/** nvfp4 for nvfp4WideDecode (K % 256 == 0): see quant_decode.h for the layout. */
void nvfp4WidePrep(const QuantProblem& q, const float* x, int8_t* codes, int32_t* corr, float* blockScales) {
  const int K = q.K, nb = K / 16, T = q.T;
  const __m512i picks[4] = {widePassPick(0), widePassPick(1), widePassPick(2), widePassPick(3)};
  thread_local std::vector<float> rowScales;
  if (rowScales.size() < static_cast<size_t>(nb) + 16) rowScales.resize(nb + 16);
  float* bs = rowScales.data();
  for (int t = 0; t < T; t++) {
    const float* row = x + static_cast<size_t>(t) * K;
    nvfp4BlockScales(q, row, bs);
    for (int g = 0; g < K / 256; g++) {
      const size_t step = static_cast<size_t>(g) * T + t;  // [K / 256, T, ...]: one step's x rows side by side
      std::memcpy(blockScales + 16 * step, bs + 16 * g, 16 * sizeof(float));
      alignas(64) int8_t natural[256];
      for (int b = 0; b < 16; b++) {
        const __m512i c = nvfp4Codes(row + 256 * g + 16 * b, bs[16 * g + b]);
        corr[16 * step + b] = -12 * _mm512_reduce_add_epi32(c);
        _mm_store_si128(reinterpret_cast<__m128i*>(natural + 16 * b), _mm512_cvtepi32_epi8(c));
      }
      // pass s, lane b, byte j <- block b's column 8·(s / 2) + 2j + s % 2 (natural vector v holds blocks 4v .. 4v+3)
      int8_t* o = codes + 256 * step;
      for (int s = 0; s < 4; s++) {
        __m512i p = _mm512_setzero_si512();
        for (int v = 0; v < 4; v++) {
          p = _mm512_mask_permutexvar_epi8(p, 0xffffULL << (16 * v), picks[s], _mm512_load_si512(natural + 64 * v));
        }
        _mm512_storeu_si512(o + 64 * s, p);
      }
    }
  }
}

#endif

#ifdef QUANT_DECODE_FP8
/** 16 e4m3-rounded values as bf16 bits (exact: 4 significant bits); NaN as 0x7fc0. */
inline __m256i e4m3Bf16(__m512 v) {
  const __m512 r = roundE4m3V(v);
  const __m512i bits = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q), _mm512_srli_epi32(_mm512_castps_si512(r), 16),
                                               _mm512_set1_epi32(0x7fc0));
  return _mm512_cvtepi32_epi16(bits);
}

/**
 * fp8: codes e4m3(x / s) as bf16, each 64 columns in the order of the weight's bf16 widening in
 * quant_decode_float.cc (per 128-bit lane L: columns 16L .. 16L+7 in the first 32 words, 16L+8 ..
 * 16L+15 in the second); segScale[t, i] = s of segment i (`seg` columns; s static, per token or per
 * group of actLen columns).
 */
void fp8Prep(const QuantProblem& q, const float* x, uint16_t* codes, float* segScale, int seg) {
  const int K = q.K, actLen = q.act == QACT_E4M3_GROUP ? q.group : K;
  alignas(64) uint16_t idx[64];
  for (int p = 0; p < 32; p++) idx[p] = static_cast<uint16_t>((p / 8) * 16 + p % 8), idx[32 + p] = static_cast<uint16_t>(idx[p] + 8);
  const __m512i idx0 = _mm512_load_si512(idx), idx1 = _mm512_load_si512(idx + 32);
  for (int t = 0; t < q.T; t++) {
    for (int g0 = 0; g0 < K; g0 += actLen) {
      const float* r = x + static_cast<size_t>(t) * K + g0;
      const float s = q.act == QACT_E4M3_STATIC ? q.inScale : maxAbsV(r, actLen) / 448.f;
      for (int i = g0 / seg; i < (g0 + actLen) / seg; i++) segScale[static_cast<size_t>(t) * (K / seg) + i] = s;
      const __m512 sv = _mm512_set1_ps(s);
      for (int j = 0; j < actLen; j += 64) {
        __m256i h[4];
        for (int k = 0; k < 4; k++) {
          const __m512 v = _mm512_loadu_ps(r + j + 16 * k);
          h[k] = e4m3Bf16(s == 0.f ? _mm512_mul_ps(v, _mm512_setzero_ps()) : _mm512_div_ps(v, sv));
        }
        const __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(h[0]), h[1], 1), b = _mm512_inserti64x4(_mm512_castsi256_si512(h[2]), h[3], 1);
        uint16_t* o = codes + static_cast<size_t>(t) * K + g0 + j;
        _mm512_storeu_si512(o, _mm512_permutex2var_epi16(a, idx0, b));
        _mm512_storeu_si512(o + 32, _mm512_permutex2var_epi16(a, idx1, b));
      }
    }
  }
}

#endif

/** bf16 weights: each 32 columns of x as the 16 even then the 16 odd ones (the weight's shift / mask widening). */
void evenOddPrep(const QuantProblem& q, const float* x, float* xp) {
  alignas(64) int32_t even[16], odd[16];
  for (int i = 0; i < 16; i++) even[i] = 2 * i, odd[i] = 2 * i + 1;
  const __m512i e = _mm512_load_si512(even), o = _mm512_load_si512(odd);
  for (size_t j = 0; j < static_cast<size_t>(q.T) * q.K; j += 32) {
    const __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + 16);
    _mm512_storeu_ps(xp + j, _mm512_permutex2var_ps(a, e, b));
    _mm512_storeu_ps(xp + j + 16, _mm512_permutex2var_ps(a, o, b));
  }
}

template <class V>
V* scratch(std::vector<V>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace

bool quantDecodeFast(const QuantProblem& q, const float* x, const float* bias, float* out) {
  const int T = q.T, K = q.K;
  if (T < 1 || T > 8 || K % 64 != 0 || q.N < 1) return false;
  thread_local std::vector<uint8_t> bytes;
  thread_local std::vector<float> floats;
  thread_local std::vector<int32_t> ints;
  switch (q.wfmt) {
#ifdef QUANT_DECODE_INT8
    case QW_INT8: {
      if (q.act != QACT_INT8_TOKEN || (q.wscale != QS_TENSOR && q.wscale != QS_ROWWISE) || K > 65536) return false;  // int32 sums exact up to K = 66311
      int8_t* codes = reinterpret_cast<int8_t*>(scratch(bytes, static_cast<size_t>(T) * K));
      float* xScale = scratch(floats, T);
      int32_t* codeSum = scratch(ints, T);
      int8Prep(q, x, codes, xScale, codeSum);
      int8Decode(q, codes, xScale, codeSum, bias, out);
      return true;
    }
#endif
#ifdef QUANT_DECODE_NVFP4
    case QW_NVFP4: {
      if (q.act != QACT_NVFP4) return false;
      if (K % 256 == 0) {
        const size_t nb = static_cast<size_t>(T) * (K / 16);
        int8_t* codes = reinterpret_cast<int8_t*>(scratch(bytes, static_cast<size_t>(T) * K));
        float* blockScales = scratch(floats, nb + 16);
        int32_t* corr = scratch(ints, nb);
        nvfp4WidePrep(q, x, codes, corr, blockScales);
        nvfp4WideDecode(q, codes, corr, blockScales, bias, out);
        return true;
      }
      uint8_t* codes = scratch(bytes, static_cast<size_t>(T) * K);
      float* lanes = scratch(floats, static_cast<size_t>(T) * K / 4);
      nvfp4Prep(q, x, codes, lanes);
      nvfp4Decode(q, codes, lanes, bias, out);
      return true;
    }
#endif
#ifdef QUANT_DECODE_FP8
    case QW_E4M3: {
      if (q.act != QACT_E4M3_STATIC && q.act != QACT_E4M3_TOKEN && q.act != QACT_E4M3_GROUP) return false;
      // segments: the columns one scale product covers (activation group, weight block, or the row)
      const int seg = q.act == QACT_E4M3_GROUP ? q.group : q.wscale == QS_BLOCK ? q.bC : K;
      if (seg % 64 != 0 || K % seg != 0 || (q.wscale == QS_BLOCK && q.bC != seg)) return false;
      if (q.act == QACT_E4M3_GROUP && q.wscale == QS_BLOCK && q.bC != q.group) return false;
      uint16_t* codes = reinterpret_cast<uint16_t*>(scratch(bytes, 2 * static_cast<size_t>(T) * K));
      float* segScale = scratch(floats, static_cast<size_t>(T) * (K / seg));
      fp8Prep(q, x, codes, segScale, seg);
      fp8Decode(q, codes, segScale, seg, bias, out);
      return true;
    }
#endif
    case QW_BF16: case QW_F16: {
      if (q.act != QACT_NONE) return false;
      if (q.wfmt == QW_F16) { halfDecode(q, x, bias, out); return true; }
      float* xp = scratch(floats, static_cast<size_t>(T) * K);
      evenOddPrep(q, x, xp);
      halfDecode(q, xp, bias, out);
      return true;
    }
    case QW_GPTQ: {
      const int G = q.bC;
      if (q.act != QACT_NONE || q.N % 16 != 0 || G % 8 != 0 || K % G != 0) return false;
      for (int k = 0; k < K; k++) if (q.gIdx[k] != k / G) return false;  // act-order g_idx: the generic path
      float* groupSum = scratch(floats, static_cast<size_t>(T) * (K / G));
      for (int t = 0; t < T; t++) {
        for (int g = 0; g < K / G; g++) {
          const float* r = x + static_cast<size_t>(t) * K + g * G;
          float s = 0.f;
          for (int k = 0; k < G; k++) s += r[k];
          groupSum[static_cast<size_t>(t) * (K / G) + g] = s;
          if (!std::isfinite(s)) return false;  // ±Inf / NaN in x: the zero is not factored out (Inf · 0 must stay NaN)
        }
      }
      gptqDecode(q, x, groupSum, bias, out);
      return true;
    }
    default: return false;
  }
  return false;
}
#else
bool quantDecodeFast(const QuantProblem&, const float*, const float*, float*) { return false; }
#endif
