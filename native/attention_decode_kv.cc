// Decode rows over int8 and float8_e4m3 caches on AVX-512 (issue 13: D1 >= 2.5x the float32 cache).
//
// attention_rows.cc keeps lanes along headDim: each query row widens every K row it scores and 16
// per-key partial vectors are folded into one score vector by a shuffle tree. With one-byte codes
// the widening and the folds outweighed the bytes saved (D1 int8 1.82x, fp8 1.48x the float32 cache).
// Here the lanes run along keys instead, and every code is widened once per item:
//   QK: the codes of 16 K rows (one group) are transposed as bytes (16 x 64 in 4 unpack stages per
//       64 columns, ~4 shuffles per key), so a 16-byte chunk holds one head dim of 16 keys; a chunk
//       widened to 16 floats is multiplied into all query rows of the group (q broadcast from a copy
//       permuted to the chunks' order), giving the scores of 16 keys in natural order, no folds.
//   PV: lanes along headDim as before, each V row widened once and multiplied into up to 4 rows.
// Scales stay folded: a key's int8 row scale (or the fp8 tensor scale) multiplies its score lane,
// its V scale the probability. Widening: int8 by vpmovsxbd + vcvtdq2ps; e4m3 by table: the 128
// magnitudes' bfloat16 bits (exact: 3 mantissa bits) split into a low and a high byte table, two
// vpermi2b look up 64 codes at once, the sign bit is merged in, and unpacks place the bytes in float32
// position (10 ops per 64 codes; the float16 route of kv_widen.h takes ~10 per 16).
// Same-process A/B on D1 (8 x 1024, 16/4 heads, d64; one thread, minima, shared machine): int8
// 0.676 -> 0.449 ms, float8_e4m3 0.886 -> 0.480 ms against attendRows. Versions that lost are noted
// where they differ (block size, e4m3 byte placement, int8 loads); a software prefetch of the next
// block's K / V rows while this one ran made no difference.
// AVX2 and portable builds, other dtypes and head dims not a multiple of 64 take attendItemRows.
#include "attention_decode_kv.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "attention_common.h"
#include "kv_widen.h"
#include "kv_widen64.h"
#include "simd.h"

namespace {

using kvdecode::Widen64;
using kvdecode::chunkColumn;
using kvdecode::transposeBytes16x64;

#ifndef KV_NK
#define KV_NK 128  // -DKV_NK=n at build time, for re-measuring
#endif
constexpr int NK = KV_NK;  // keys per block (64: D1 5% slower; 256: no faster than 128)
constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

struct KvScratch {
  std::vector<float> q, s, alpha, bad;
  std::vector<int> lo, hi;
  std::vector<uint8_t> t, zeros;
  void ensure(int M, int D) {
    if (q.size() < static_cast<size_t>(M) * D) q.resize(static_cast<size_t>(M) * D);
    if (s.size() < static_cast<size_t>(M) * NK) { s.resize(static_cast<size_t>(M) * NK); alpha.resize(M); lo.resize(M); hi.resize(M); }
    if (t.size() < static_cast<size_t>(NK) * D) { t.resize(static_cast<size_t>(NK) * D); zeros.assign(D, 0); bad.resize(static_cast<size_t>(NK) * D); }
  }
};
thread_local KvScratch kvs;

/**
 * Scores of RQ query rows (qp: rows of D floats in chunk order) against one group of 16 keys (its
 * transposed codes at t), times the keys' scales ks, into s (rows NK apart).
 */
template <class E, int RQ, int DB>
__attribute__((noinline)) void qkGroup(const Widen64<E>& wd, const uint8_t* t, const float* qp, float* s, const float* ks) {
  constexpr int D = DB * 64, SETS = RQ <= 4 ? 2 : 1;  // two accumulator sets keep >= 4 FMA chains for small groups
  __m512 acc[SETS][RQ];
  for (int a = 0; a < SETS; a++)
    for (int r = 0; r < RQ; r++) acc[a][r] = _mm512_setzero_ps();
  for (int i = 0; i < D / 4; i++) {  // 64 bytes of chunks (4 head dims x 16 keys) at a time
    __m512 w[4];
    wd(t + 64 * i, w);
    for (int j = 0; j < 4; j++)
      for (int r = 0; r < RQ; r++)
        acc[j % SETS][r] = _mm512_fmadd_ps(_mm512_set1_ps(qp[r * D + 4 * i + j]), w[j], acc[j % SETS][r]);
  }
  const __m512 kscale = _mm512_loadu_ps(ks);
  for (int r = 0; r < RQ; r++) {
    __m512 a = acc[0][r];
    if constexpr (SETS == 2) a = _mm512_add_ps(a, acc[1][r]);
    _mm512_storeu_ps(s + r * NK, _mm512_mul_ps(a, kscale));
  }
}

template <class E, int DB>
void qkRows(const Widen64<E>& wd, const uint8_t* t, const float* qp, int M, float* s, const float* ks) {
  constexpr int D = DB * 64;
  for (int r0 = 0; r0 < M; r0 += 8) {
    const float* q = qp + static_cast<size_t>(r0) * D;
    float* sr = s + static_cast<size_t>(r0) * NK;
    switch (std::min(8, M - r0)) {
      case 1: qkGroup<E, 1, DB>(wd, t, q, sr, ks); break;
      case 2: qkGroup<E, 2, DB>(wd, t, q, sr, ks); break;
      case 3: qkGroup<E, 3, DB>(wd, t, q, sr, ks); break;
      case 4: qkGroup<E, 4, DB>(wd, t, q, sr, ks); break;
      case 5: qkGroup<E, 5, DB>(wd, t, q, sr, ks); break;
      case 6: qkGroup<E, 6, DB>(wd, t, q, sr, ks); break;
      case 7: qkGroup<E, 7, DB>(wd, t, q, sr, ks); break;
      default: qkGroup<E, 8, DB>(wd, t, q, sr, ks); break;
    }
  }
}

/** o[r, off .. off + 64) = alpha[r] * o[..] + sum_n P[r, n] V[n, off ..] for R rows (o rows D apart). */
template <class E, int R>
__attribute__((noinline)) void pvTile(const Widen64<E>& wd, const float* s, const typename E::T* const* vr, int nk16, int off,
                                      float* o, int D, const float* alpha) {
  __m512 acc[R][4];
  for (int r = 0; r < R; r++)
    for (int j = 0; j < 4; j++) acc[r][j] = _mm512_mul_ps(_mm512_loadu_ps(o + static_cast<size_t>(r) * D + 16 * j), _mm512_set1_ps(alpha[r]));
  for (int n = 0; n < nk16; n++) {
    __m512 w[4];
    wd(vr[n] + off, w);
    for (int r = 0; r < R; r++) {
      const __m512 pr = _mm512_set1_ps(s[r * NK + n]);
      for (int j = 0; j < 4; j++) acc[r][j] = _mm512_fmadd_ps(pr, w[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int j = 0; j < 4; j++) _mm512_storeu_ps(o + static_cast<size_t>(r) * D + 16 * j, acc[r][j]);
}

template <class E>
void pvRows(const Widen64<E>& wd, const float* s, const typename E::T* const* vr, int nk16, int M, int D, float* o, const float* alpha) {
  for (int r0 = 0; r0 < M; r0 += 4)
    for (int off = 0; off < D; off += 64) {
      const float* sr = s + static_cast<size_t>(r0) * NK;
      float* orow = o + static_cast<size_t>(r0) * D + off;
      switch (std::min(4, M - r0)) {
        case 1: pvTile<E, 1>(wd, sr, vr, nk16, off, orow, D, alpha + r0); break;
        case 2: pvTile<E, 2>(wd, sr, vr, nk16, off, orow, D, alpha + r0); break;
        case 3: pvTile<E, 3>(wd, sr, vr, nk16, off, orow, D, alpha + r0); break;
        default: pvTile<E, 4>(wd, sr, vr, nk16, off, orow, D, alpha + r0); break;
      }
    }
}

/**
 * Masks row m's scores of the block (keys kb + n), updates its running max and sum, and turns the
 * scores into probabilities times the keys' V scales; returns the factor the row's output is rescaled by.
 * (The same steps, NaN rules included, as attention_rows.cc's attendRows.)
 */
inline float softmaxRow(float* sr, int nk, int nk16, int kb, int lo, int hi, const float* vs, float& mr, float& lr) {
  v16 bmax = vset1(NEG_INF);
  if (lo <= kb && kb + nk - 1 <= hi) {  // the row sees every key of the block (padding keys are masked below)
    for (int n = nk; n < nk16; n++) sr[n] = NEG_INF;
    for (int g = 0; g < nk16; g += VL) bmax = vmax(bmax, vload(sr + g));
  } else {
    const vi16 iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const vi16 vlo = viset1(lo), vhi = viset1(hi);
    for (int g = 0; g < nk16; g += VL) {
      const vi16 kp = iota + (kb + g);
      v16 sv = vload(sr + g);
      sv = (kp >= vlo) & (kp <= vhi) ? sv : vset1(NEG_INF);
      vstore(sr + g, sv);
      bmax = vmax(bmax, sv);
    }
  }
  const float mold = mr, mnew = std::max(mold, _mm512_reduce_max_ps(reinterpret_cast<__m512>(bmax)));  // a NaN score makes the row NaN either way
  const float msafe = mnew == NEG_INF ? 0.f : mnew;
  const float alpha = mold == NEG_INF ? 0.f : vexp(vset1(mold - msafe))[0];
  v16 lsum = v16{};
  const v16 vm = vset1(msafe);
  for (int g = 0; g < nk16; g += VL) {
    v16 pv = vexp(vload(sr + g) - vm);
    lsum += pv;
    vstore(sr + g, pv * vload(vs + g));
  }
  lr = lr * alpha + _mm512_reduce_add_ps(reinterpret_cast<__m512>(lsum));
  mr = mnew;
  return alpha;
}

template <class E, int DB>
void attendRowsKv(const AttnParams& p, int b, int h, int t0, int t1, int k0, int k1, float* mr, float* lr, float* o) {
  using T = typename E::T;
  constexpr int D = DB * 64;
  const int G = p.nHeads / p.nKv, M = (t1 - t0) * G;
  KvScratch& sc = kvs;
  sc.ensure(M, D);
  float *qp = sc.q.data(), *s = sc.s.data(), *alpha = sc.alpha.data();
  int *lo = sc.lo.data(), *hi = sc.hi.data();
  uint8_t* tb = sc.t.data();  // transposed K codes of a block: [NK / 16][D / 64][16 x 64]
  const int start = p.start[b], ctx = start + p.numNew[b], row0 = p.rowOff[b];
  const size_t qStride = static_cast<size_t>(p.nHeads) * D;
  int kmin = k1, kmax = k0 - 1;
  for (int m = 0; m < M; m++) {
    const int t = t0 + m / G, g = m % G;
    const float* qr = p.q + (row0 + t) * qStride + static_cast<size_t>(h * G + g) * D;
    for (int c = 0; c < D; c++) qp[static_cast<size_t>(m) * D + c] = qr[c / 64 * 64 + chunkColumn(c % 64)] * p.scale;  // [M, D] chunk order
    tileKeyRange(p, start + t, ctx, k0, k1, lo[m], hi[m], kmin, kmax);
    mr[m] = NEG_INF;
    lr[m] = 0.f;
  }
  std::fill(o, o + static_cast<size_t>(M) * D, 0.f);
  const Widen64<E> wd;
  const T* kr[NK];
  const T* vr[NK];
  alignas(64) float ks[NK], vs[NK];
  const T* zeros = reinterpret_cast<const T*>(sc.zeros.data());  // code 0 is +0 in both formats
  for (int kb = kmin; kb <= kmax; kb += NK) {
    const int nk = std::min(NK, kmax + 1 - kb), nk16 = (nk + 15) / 16 * 16;
    gatherCodeRows<E>(p, b, h, kb, nk, D, kr, vr, ks, vs);
    for (int n = nk; n < nk16; n++) { kr[n] = vr[n] = zeros; ks[n] = vs[n] = 1.f; }
    // Causality guard: V rows holding a NaN / inf are read from `zeros` and added back to the rows that see them (kv_widen.h).
    int badN[NK];
    const float* badRow[NK];
    const int nBad = divertNonFiniteCodeRows<E>(vr, vs, nk, D, p.vScale, kb, M, lo, hi, zeros, sc.bad.data(), badN, badRow);
    // Every group transposed first, then scored. (Each group scored right after its own transpose, its
    // 64-byte stores read back in 16-byte pieces, took the same time: the profile's stall there was the
    // K rows' loads.)
    for (int g = 0; g < nk16; g += 16)
      for (int c0 = 0; c0 < D; c0 += 64)
        transposeBytes16x64(reinterpret_cast<const uint8_t* const*>(kr + g), c0, tb + static_cast<size_t>(g * D + c0 * 16));
    for (int g = 0; g < nk16; g += 16) qkRows<E, DB>(wd, tb + static_cast<size_t>(g) * D, qp, M, s + g, ks + g);
    for (int m = 0; m < M; m++) alpha[m] = softmaxRow(s + static_cast<size_t>(m) * NK, nk, nk16, kb, lo[m], hi[m], vs, mr[m], lr[m]);
    pvRows<E>(wd, s, vr, nk16, M, D, o, alpha);
    if (nBad > 0)
      addDivertedValues(nBad, badN, badRow, kb, M, lo, hi, D, [&](int m, int n) { return s[static_cast<size_t>(m) * NK + n]; },
                        [&](int m, int d) -> float& { return o[static_cast<size_t>(m) * D + d]; });
  }
}

template <class E>
bool attendKvAs(const AttnParams& p, int b, int h, int t0, int t1, int k0, int k1, float* mOut, float* lOut, float* oOut) {
  if constexpr (!Widen64<E>::available) {
    return false;
  } else {
    switch (p.D) {
      case 64: attendRowsKv<E, 1>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      case 128: attendRowsKv<E, 2>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      case 192: attendRowsKv<E, 3>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      case 256: attendRowsKv<E, 4>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      default: return false;
    }
  }
}

}  // namespace

bool attendItemRowsKv(const AttnParams& p, int b, int h, int t0, int t1, int k0, int k1, float* mOut, float* lOut, float* oOut) {
  if (p.kvDtype == KV_I8) return attendKvAs<KvI8>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut);
  if (p.kvDtype == KV_FP8) return attendKvAs<KvFp8>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut);
  return false;
}

#else
bool attendItemRowsKv(const AttnParams&, int, int, int, int, int, int, float*, float*, float*) { return false; }
#endif
