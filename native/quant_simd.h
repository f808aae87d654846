#pragma once
// AVX-512 helpers of the QuantMatMul decode kernels (quant_decode*.cc): the activation quantizers
// of fp8.h 16 lanes at a time, giving the same floats as roundE4m3 / roundE2m1 (powers of two
// scale exactly, vrndscaleps rounds to nearest even as nearbyint does), and a NaN-sticky max |x|.
#ifdef __AVX512F__
#include <immintrin.h>

#include <cmath>

/** max |x[i]| over n floats; NaN when any x[i] is NaN (as quant_matmul.cc's maxAbs). */
inline float maxAbsV(const float* x, int n) {
  __m512 m = _mm512_setzero_ps();
  __mmask16 nan = 0;
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 a = _mm512_abs_ps(_mm512_loadu_ps(x + i));
    nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
    m = _mm512_max_ps(m, a);
  }
  float r = _mm512_reduce_max_ps(m);
  for (; i < n; i++) {
    const float a = std::fabs(x[i]);
    if (a > r || std::isnan(a)) r = a;
  }
  return nan ? NAN : r;
}

/** roundE4m3 of 16 lanes: quantum 2^(max(e, -6) - 3), saturating at 448, NaN kept, sign kept. */
inline __m512 roundE4m3V(__m512 v) {
  const __m512 a = _mm512_abs_ps(v);
  // floor(log2 a) clamped to [-6, 8] (a = 0 gives -inf, Inf gives inf; NaN gives -6 here and stays NaN below)
  const __m512 e = _mm512_min_ps(_mm512_max_ps(_mm512_getexp_ps(a), _mm512_set1_ps(-6.f)), _mm512_set1_ps(8.f));
  const __m512 sh = _mm512_sub_ps(_mm512_set1_ps(3.f), e);
  const __m512 r = _mm512_scalef_ps(_mm512_roundscale_ps(_mm512_scalef_ps(a, sh), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                    _mm512_sub_ps(_mm512_setzero_ps(), sh));
  const __m512 sat = _mm512_min_ps(_mm512_set1_ps(448.f), r);  // NaN r: vminps returns its second operand
  return _mm512_or_ps(sat, _mm512_and_ps(v, _mm512_set1_ps(-0.f)));
}

/** roundE2m1 of 16 lanes: quantum 0.5 below 2, 1 below 4, else 2, saturating at 6; sign kept. */
inline __m512 roundE2m1V(__m512 v) {
  const __m512 a = _mm512_abs_ps(v);
  const __mmask16 below2 = _mm512_cmp_ps_mask(a, _mm512_set1_ps(2.f), _CMP_LT_OQ);
  const __mmask16 below4 = _mm512_cmp_ps_mask(a, _mm512_set1_ps(4.f), _CMP_LT_OQ);
  const __m512 q = _mm512_mask_blend_ps(below2, _mm512_mask_blend_ps(below4, _mm512_set1_ps(2.f), _mm512_set1_ps(1.f)), _mm512_set1_ps(0.5f));
  const __m512 inv = _mm512_mask_blend_ps(below2, _mm512_mask_blend_ps(below4, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.f)), _mm512_set1_ps(2.f));
  const __m512 r = _mm512_mul_ps(_mm512_roundscale_ps(_mm512_mul_ps(a, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), q);
  const __m512 sat = _mm512_min_ps(_mm512_set1_ps(6.f), r);
  return _mm512_or_ps(sat, _mm512_and_ps(v, _mm512_set1_ps(-0.f)));
}

/** Runs fn(n0, n1) over [0, N) in chunks of `chunk` rows on the shared pool (dynamic claims). */
template <class F>
inline void forRowChunks(int N, int chunk, const F& fn) {
  const int chunks = (N + chunk - 1) / chunk;
  pool().parallelFor(chunks, [&](int c) { fn(c * chunk, c * chunk + chunk < N ? c * chunk + chunk : N); });
}
#endif
