// Row-major attention item, the decode kernel (few query rows per KV head, D a multiple of 16).
//
// With only G rows (one token x G heads) the transposed layout of attention.cc fills 4 of 16 lanes,
// so here lanes run along headDim instead: a row of q sits in D/16 registers, each key contributes
// one 16-lane partial product per row, and 16 such partials are folded into one vector of 16 scores
// by a 4-level shuffle/add tree (the scores come out in a fixed permuted key order, kPerm). Values
// accumulate as O[r, :] += p[r, n] * V[n, :], one V row load shared by all rows of the group.
// One body (attendRows) serves every width through a traits struct: W16 (AVX-512 / portable) and
// W8 for AVX2 + FMA builds (ATTN_V8: 8 lanes, scores in natural key order; D1 1.9 ms with the
// 16-lane code there, 0.29 ms with W8; AVX-512 0.27 ms).
// Templating A/B (bench/native_ab.ts, ONLY=D1, TFJS_ATTENTION_THREADS=1, same process, both orders)
// on a 2-core machine at load 16-24 from other jobs, so only the minima mean much: AVX-512 D1 min
// 2.167 (two bodies) vs 2.149 ms (template), reversed order 2.163 vs 2.209 ms; AVX2 3.30 vs 2.29 ms.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention_common.h"
#include "kv_widen.h"
#include "simd.h"

namespace {

constexpr int NK = 64;
constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

// out lane i of level g takes lanes of x (even group) / y (odd group); lo and hi halves summed.
inline v16 fold8(v16 x, v16 y) {
  return __builtin_shufflevector(x, y, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
         __builtin_shufflevector(x, y, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
}
inline v16 fold4(v16 x, v16 y) {
  return __builtin_shufflevector(x, y, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27) +
         __builtin_shufflevector(x, y, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
}
inline v16 fold2(v16 x, v16 y) {
  return __builtin_shufflevector(x, y, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) +
         __builtin_shufflevector(x, y, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
}
inline v16 fold1(v16 x, v16 y) {
  return __builtin_shufflevector(x, y, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) +
         __builtin_shufflevector(x, y, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
}

/** 16 vectors -> one vector of their horizontal sums, in the order kPerm. */
inline v16 reduce16(const v16* t) {
  v16 a0 = fold8(t[0], t[1]), a1 = fold8(t[2], t[3]), a2 = fold8(t[4], t[5]), a3 = fold8(t[6], t[7]);
  v16 a4 = fold8(t[8], t[9]), a5 = fold8(t[10], t[11]), a6 = fold8(t[12], t[13]), a7 = fold8(t[14], t[15]);
  v16 b0 = fold4(a0, a1), b1 = fold4(a2, a3), b2 = fold4(a4, a5), b3 = fold4(a6, a7);
  v16 c0 = fold2(b0, b1), c1 = fold2(b2, b3);
  return fold1(c0, c1);
}

/** kPerm[i] = which of the 16 input vectors lane i of reduce16 sums (found by running it on labels). */
struct Perm {
  int32_t key[VL];
  Perm() {
    // Label vector n with 2^n in every lane: each output lane is then 2^k for its single key k.
    v16 t[VL];
    for (int n = 0; n < VL; n++) t[n] = vset1(static_cast<float>(1 << n) / VL);
    v16 r = reduce16(t);
    for (int i = 0; i < VL; i++) {
      int v = static_cast<int>(r[i] + 0.5f), k = 0;
      while ((1 << k) < v) k++;
      key[i] = k;
    }
  }
};
const Perm kPerm;

struct RowScratch {
  std::vector<float> q, s, zeros, bad, kw;  // bad: widened V rows diverted by the causality guard; kw: widenKeysOnce K rows
  void ensure(int M4, int D) {
    if (q.size() < static_cast<size_t>(M4) * D) q.resize(static_cast<size_t>(M4) * D);
    if (s.size() < static_cast<size_t>(M4) * NK) s.resize(static_cast<size_t>(M4) * NK);
    if (zeros.size() < static_cast<size_t>(D)) zeros.assign(D, 0.f);
    if (bad.size() < static_cast<size_t>(NK) * D) { bad.resize(static_cast<size_t>(NK) * D); kw.resize(static_cast<size_t>(NK) * D); }
  }
};
thread_local RowScratch rs;

// Scores of one row against 16 keys (kr[0..16), codes of E widened unscaled), permuted order.
template <class E, int DV>
inline v16 rowScores16(const v16* q, const typename E::T* const* kr) {
  v16 t[VL];
  for (int n = 0; n < VL; n++) {
    const typename E::T* k = kr[n];
    v16 acc = q[0] * Widen<E>::w16(k);
    for (int j = 1; j < DV; j++) acc += q[j] * Widen<E>::w16(k + j * VL);
    t[n] = acc;
  }
  return reduce16(t);
}

// O[r0 .. r0 + R) += P[r, n] V[n, :] over nk16 keys (S rows in permuted order).
template <class E, int R, int DV>
inline void rowsPV(const float* s, const typename E::T* const* vr, int nk16, float* o, int r0, int D) {
  v16 acc[R][DV];
  for (int r = 0; r < R; r++)
    for (int j = 0; j < DV; j++) acc[r][j] = vload(o + static_cast<size_t>(r0 + r) * D + j * VL);
  for (int g = 0; g < nk16; g += VL) {
    for (int i = 0; i < VL; i++) {
      const typename E::T* v = vr[g + kPerm.key[i]];
      v16 vv[DV];
      for (int j = 0; j < DV; j++) vv[j] = Widen<E>::w16(v + j * VL);
      for (int r = 0; r < R; r++) {
        float pr = s[static_cast<size_t>(r0 + r) * NK + g + i];
        for (int j = 0; j < DV; j++) acc[r][j] += pr * vv[j];
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int j = 0; j < DV; j++) vstore(o + static_cast<size_t>(r0 + r) * D + j * VL, acc[r][j]);
}

// The vector width the row kernel runs at: loads, stores, reductions (VecOps, simd.h) and the three
// steps that differ (a row's scores for L keys, the lanes' key order, the P.V tiles). W16: 16 lanes
// (AVX-512, or the portable vector extension elsewhere); W8 below: AVX2 + FMA.
struct W16 : VecOps<v16> {
  template <class E> static V widen(const typename E::T* p) { return Widen<E>::w16(p); }
  /** Lane i of a score vector holds key kPerm.key[i] of its 16 (reduce16's order). */
  static VI keyLanes() { return viload(kPerm.key); }
  /** A row of q held for its key blocks: DV registers. */
  template <int DV> struct RowQ { v16 qv[DV]; };
  template <int DV> static RowQ<DV> rowQ(const float* q) {
    RowQ<DV> r;
    for (int j = 0; j < DV; j++) r.qv[j] = vload(q + j * VL);
    return r;
  }
  template <class E, int DV> static V scores(const RowQ<DV>& r, const typename E::T* const* kr) { return rowScores16<E, DV>(r.qv, kr); }
  /** O[0 .. M4) += P V over nkL keys, tiles of RPV rows (R * DV accumulators stay in registers). */
  template <class E, int DV> static void pv(const float* s, const typename E::T* const* vr, int nkL, float* ow, int M4) {
    constexpr int RPV = DV >= 8 ? 2 : 4, D = DV * VL;
    for (int r0 = 0; r0 < M4; r0 += RPV) {
      if (r0 + RPV <= M4) rowsPV<E, RPV, DV>(s, vr, nkL, ow, r0, D);
      else for (int r = r0; r < M4; r++) rowsPV<E, 1, DV>(s, vr, nkL, ow, r, D);
    }
  }
};

#if defined(ATTN_V8)
// AVX2 + FMA (W8): the same algorithm on 8-lane vectors, scores in natural key order. A row's scores for
// 8 keys: 8 accumulators of q[j] * K[n, j] (one q vector and 8 K loads per 8 FMAs), folded by
// hadd / 128-bit lane swaps. Values: tiles of 4 rows x up to 3 vectors of headDim (12 accumulators).
constexpr int PVJ8 = 3;

inline v8 reduce8(const v8* t) {
  __m256 a = _mm256_hadd_ps((__m256)t[0], (__m256)t[1]), b = _mm256_hadd_ps((__m256)t[2], (__m256)t[3]);
  __m256 c = _mm256_hadd_ps((__m256)t[4], (__m256)t[5]), d = _mm256_hadd_ps((__m256)t[6], (__m256)t[7]);
  __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);  // [k0..3 low halves, k0..3 high halves]
  return (v8)_mm256_add_ps(_mm256_permute2f128_ps(ab, cd, 0x20), _mm256_permute2f128_ps(ab, cd, 0x31));
}

template <class E, int DV>
__attribute__((noinline)) v8 rowScores8(const float* q, const typename E::T* const* kr) {
  v8 t[8];
  for (int n = 0; n < 8; n++) t[n] = v8{};
  for (int j = 0; j < DV; j++) {
    v8 qj = v8load(q + j * 8);
    for (int n = 0; n < 8; n++) t[n] += qj * Widen<E>::w8(kr[n] + j * 8);
  }
  return reduce8(t);
}

// O[r0 .. r0 + R, j0 * 8 .. (j0 + J) * 8) += P[r, n] V[n, ..] over nk8 keys.
template <class E, int R, int J>
__attribute__((noinline)) void rowsPV8(const float* s, const typename E::T* const* vr, int nk8, float* o, int r0, int j0, int D) {
  v8 acc[R][J];
  for (int r = 0; r < R; r++)
    for (int j = 0; j < J; j++) acc[r][j] = v8load(o + static_cast<size_t>(r0 + r) * D + (j0 + j) * 8);
  for (int n = 0; n < nk8; n++) {
    const typename E::T* v = vr[n] + j0 * 8;
    v8 vv[J];
    for (int j = 0; j < J; j++) vv[j] = Widen<E>::w8(v + j * 8);
    for (int r = 0; r < R; r++) {
      v8 pr = v8set1(s[static_cast<size_t>(r0 + r) * NK + n]);
      for (int j = 0; j < J; j++) acc[r][j] += pr * vv[j];
    }
  }
  for (int r = 0; r < R; r++)
    for (int j = 0; j < J; j++) v8store(o + static_cast<size_t>(r0 + r) * D + (j0 + j) * 8, acc[r][j]);
}

template <class E, int R>
void rowsPVAll8(const float* s, const typename E::T* const* vr, int nk8, float* o, int r0, int D) {
  const int nj = D / 8;
  int j = 0;
  for (; j + PVJ8 <= nj; j += PVJ8) rowsPV8<E, R, PVJ8>(s, vr, nk8, o, r0, j, D);
  switch (nj - j) {
    case 2: rowsPV8<E, R, 2>(s, vr, nk8, o, r0, j, D); break;
    case 1: rowsPV8<E, R, 1>(s, vr, nk8, o, r0, j, D); break;
  }
}

struct W8 : VecOps<v8> {
  template <class E> static V widen(const typename E::T* p) { return Widen<E>::w8(p); }
  /** Scores come out in natural key order. */
  static VI keyLanes() { return VI{0, 1, 2, 3, 4, 5, 6, 7}; }
  /** q stays in memory: rowScores8 streams it against 8 keys at a time. */
  template <int DV> struct RowQ { const float* q; };
  template <int DV> static RowQ<DV> rowQ(const float* q) { return RowQ<DV>{q}; }
  template <class E, int DV> static V scores(const RowQ<DV>& r, const typename E::T* const* kr) { return rowScores8<E, DV>(r.q, kr); }
  template <class E, int DV> static void pv(const float* s, const typename E::T* const* vr, int nkL, float* ow, int M4) {
    for (int r0 = 0; r0 < M4; r0 += 4) rowsPVAll8<E, 4>(s, vr, nkL, ow, r0, DV * 8);
  }
};
#endif

/**
 * One item (sequence b, KV head h, tokens [t0, t1), keys [k0, k1)) at vector width W over pools of
 * element type E (kv_codec.h): DV vectors of headDim per row. K and V codes are read from the pages
 * and widened in registers (kv_widen.h); a scaled format's per-key K scale multiplies the 16 / 8
 * scores of a key group and its V scale the probabilities after the row sum (both in the lanes' key
 * order), so the inner loops are the float32 ones. Writes the rows' running max, sum and unnormalised output.
 */
template <class W, class E, int DV>
void attendRows(const AttnParams& p, int b, int h, int t0, int t1, int k0, int k1, float* mr, float* lr, float* o) {
  using V = typename W::V;
  using VI = typename W::VI;
  using T = typename E::T;
  constexpr bool scaled = Widen<E>::scaled;
  constexpr int D = DV * W::L;
  const int G = p.nHeads / p.nKv, M = (t1 - t0) * G, M4 = (M + 3) / 4 * 4;
  RowScratch& sc = rs;
  sc.ensure(M4, D);
  float *q = sc.q.data(), *s = sc.s.data();
  const int start = p.start[b], ctx = start + p.numNew[b], row0 = p.rowOff[b];
  const size_t qStride = static_cast<size_t>(p.nHeads) * D;
  std::vector<int> lo(M4, 1), hi(M4, 0);
  int kmin = k1, kmax = k0 - 1;
  for (int m = 0; m < M4; m++) {
    if (m >= M) { std::fill(q + static_cast<size_t>(m) * D, q + static_cast<size_t>(m + 1) * D, 0.f); continue; }
    int t = t0 + m / G, g = m % G;
    const float* qr = p.q + (row0 + t) * qStride + static_cast<size_t>(h * G + g) * D;
    for (int d = 0; d < D; d++) q[static_cast<size_t>(m) * D + d] = qr[d] * p.scale;
    tileKeyRange(p, start + t, ctx, k0, k1, lo[m], hi[m], kmin, kmax);
    mr[m] = NEG_INF;
    lr[m] = 0.f;
  }
  std::fill(o, o + static_cast<size_t>(M) * D, 0.f);
  // Row index padding: the PV tiles write R rows at once, so pad o's rows through a local copy.
  std::vector<float> opad;
  float* ow = o;
  if (M4 != M) { opad.assign(static_cast<size_t>(M4) * D, 0.f); ow = opad.data(); }
  const T* kr[NK];
  const T* vr[NK];
  const float* krf[NK];  // widenKeysOnce: the block's K rows in float32 (scale applied)
  alignas(64) float ks[NK], vs[NK], ksL[NK], vsL[NK];  // per-key scales, natural and lane order
  const T* zeros = reinterpret_cast<const T*>(sc.zeros.data());  // all-zero bits are 0 in every format
  const VI lanes = W::keyLanes();
  for (int kb = kmin; kb <= kmax; kb += NK) {
    const int nk = std::min(NK, kmax + 1 - kb), nkL = (nk + W::L - 1) / W::L * W::L;
    gatherCodeRows<E>(p, b, h, kb, nk, D, kr, vr, ks, vs);
    if constexpr (Widen<E>::unit != 1.f)
      for (int n = 0; n < nk; n++) { ks[n] *= Widen<E>::unit; vs[n] *= Widen<E>::unit; }
    for (int n = nk; n < nkL; n++) { kr[n] = vr[n] = zeros; ks[n] = vs[n] = 1.f; }
    if constexpr (Widen<E>::widenKeysOnce) {
      for (int n = 0; n < nkL; n++) {
        float* w = sc.kw.data() + static_cast<size_t>(n) * D;
        const V kscale = W::set1(ks[n]);
        for (int j = 0; j < D; j += W::L) W::store(w + j, W::template widen<E>(kr[n] + j) * kscale);
        krf[n] = w;
        ks[n] = 1.f;
      }
    }
    // Causality guard: V rows holding a NaN / inf are read from `zeros` and added back to the rows that see them (kv_widen.h).
    int badN[NK];
    const float* badRow[NK];
    const int nBad = divertNonFiniteCodeRows<E>(vr, vs, nk, D, p.vScale, kb, M, lo.data(), hi.data(), zeros, sc.bad.data(), badN, badRow);
    if constexpr (scaled) {
      for (int g = 0; g < nkL; g += W::L)
        for (int i = 0; i < W::L; i++) { ksL[g + i] = ks[g + lanes[i]]; vsL[g + i] = vs[g + lanes[i]]; }
    }
    for (int m = 0; m < M; m++) {
      const auto rq = W::template rowQ<DV>(q + static_cast<size_t>(m) * D);
      const VI vlo = W::iset1(lo[m]), vhi = W::iset1(hi[m]);
      float* sr = s + static_cast<size_t>(m) * NK;
      V bmax = W::set1(NEG_INF);
      for (int g = 0; g < nkL; g += W::L) {
        V sv;
        if constexpr (Widen<E>::widenKeysOnce) sv = W::template scores<KvF32, DV>(rq, krf + g);
        else sv = W::template scores<E, DV>(rq, kr + g);
        if constexpr (scaled) sv *= W::load(ksL + g);
        VI kp = lanes + (kb + g);
        sv = (kp >= vlo) & (kp <= vhi) ? sv : W::set1(NEG_INF);
        W::store(sr + g, sv);
        bmax = W::max(bmax, sv);
      }
      float mold = mr[m], mnew = std::max(mold, W::hmaxv(bmax));
      float msafe = mnew == NEG_INF ? 0.f : mnew;
      float alpha = mold == NEG_INF ? 0.f : std::exp(mold - msafe);
      V lsum = V{};
      const V vm = W::set1(msafe);
      for (int g = 0; g < nkL; g += W::L) {
        V pv = W::exp(W::load(sr + g) - vm);
        lsum += pv;
        if constexpr (scaled) pv *= W::load(vsL + g);
        W::store(sr + g, pv);
      }
      lr[m] = lr[m] * alpha + W::hsumv(lsum);
      mr[m] = mnew;
      if (alpha != 1.f) {
        float* orow = ow + static_cast<size_t>(m) * D;
        for (int d = 0; d < D; d++) orow[d] *= alpha;
      }
    }
    for (int m = M; m < M4; m++) std::fill(s + static_cast<size_t>(m) * NK, s + static_cast<size_t>(m + 1) * NK, 0.f);
    W::template pv<E, DV>(s, vr, nkL, ow, M4);
    if (nBad > 0) {
      auto slot = [&](int n) { int i = 0; while (lanes[i] != n % W::L) i++; return n / W::L * W::L + i; };  // the lanes' key order
      addDivertedValues(nBad, badN, badRow, kb, M, lo.data(), hi.data(), D,
                        [&](int m, int n) { return s[static_cast<size_t>(m) * NK + slot(n)]; },
                        [&](int m, int d) -> float& { return ow[static_cast<size_t>(m) * D + d]; });
    }
  }
  if (ow != o) std::copy(ow, ow + static_cast<size_t>(M) * D, o);
}


}  // namespace

bool attendItemRows(const AttnParams& p, int b, int h, int t0, int t1, int k0, int k1, float* mOut, float* lOut, float* oOut) {
  return withKvType(p.kvDtype, [&](auto e) {
    using E = decltype(e);
#if defined(ATTN_V8)
    switch (p.D) {
      case 16: attendRows<W8, E, 2>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      case 32: attendRows<W8, E, 4>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      case 64: attendRows<W8, E, 8>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      case 128: attendRows<W8, E, 16>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      default: return false;
    }
#endif
    switch (p.D) {
      case 16: attendRows<W16, E, 1>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      case 32: attendRows<W16, E, 2>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      case 64: attendRows<W16, E, 4>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      case 128: attendRows<W16, E, 8>(p, b, h, t0, t1, k0, k1, mOut, lOut, oOut); return true;
      default: return false;
    }
  });
}
