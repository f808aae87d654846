// Helpers shared by the attention kernels (mask ranges, page addressing).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "attention.h"
#include "kv_codec.h"

/** Keys [lo, hi] that query position qp of a sequence with ctx keys may see (contiguous for every mask). */
inline void keyRange(const AttnParams& p, int qp, int ctx, int& lo, int& hi) {
  switch (p.mask) {
    case 0: lo = 0; hi = qp; break;                                   // causal
    case 1: lo = 0; hi = ctx - 1; break;                              // null
    case 2: lo = std::max(0, qp - p.window + 1); hi = qp; break;      // sliding_window_causal
    case 3: lo = std::max(0, qp - p.window + 1); hi = std::min(ctx - 1, qp + p.window - 1); break;
    default: lo = p.chunk > 0 ? (qp / p.chunk) * p.chunk : 0; hi = qp; break;  // chunked_causal
  }
  hi = std::min(hi, ctx - 1);
}

/**
 * keyRange of query position qp clipped to a key tile [k0, k1) into lo..hi (empty: lo > hi), and
 * the union [kmin, kmax] of the tile's non-empty rows widened by it.
 */
inline void tileKeyRange(const AttnParams& p, int qp, int ctx, int k0, int k1, int& lo, int& hi, int& kmin, int& kmax) {
  int a, z;
  keyRange(p, qp, ctx, a, z);
  a = std::max(a, k0);
  z = std::min(z, k1 - 1);
  lo = a; hi = z;
  if (a <= z) { kmin = std::min(kmin, a); kmax = std::max(kmax, z); }
}

/** Float32 rows the compact formats widen a key block into (K rows, then V rows), one buffer per thread. */
inline float* widenScratch(size_t floats) {
  thread_local std::vector<float> buf;
  if (buf.size() < floats) buf.resize(floats);
  return buf.data();
}

/**
 * Row pointers of keys kb .. kb+nk-1 of (sequence b, KV head h) into kr / vr for pools of element
 * type E (kv_codec.h), one page-table lookup per run of keys on one page. float32 rows are read in
 * place; compact rows are widened (with their int8 row scale or fp8 tensor scale) into widenScratch,
 * the same floats core/kv_dtype.ts decodeKvRow gives, so every kernel body after this is the float32 one.
 */
template <class E>
inline void gatherRowsAs(const AttnParams& p, int b, int h, int kb, int nk, int D, const float** kr, const float** vr) {
  float* buf = E::code == KV_F32 ? nullptr : widenScratch(2 * static_cast<size_t>(nk) * D);
  const auto* kPool = static_cast<const typename E::T*>(p.kPool);
  const auto* vPool = static_cast<const typename E::T*>(p.vPool);
  for (int n = 0; n < nk;) {
    const int pos = kb + n;
    const int page = p.pageTable[static_cast<size_t>(b) * p.maxPages + pos / p.pageSize];
    const size_t slot = (static_cast<size_t>(page) * p.nKv + h) * p.pageSize + pos % p.pageSize;  // [numPages, nKv, pageSize]
    const int run = std::min(nk - n, p.pageSize - pos % p.pageSize);
    for (int j = 0; j < run; j++, n++) {
      const size_t off = (slot + j) * D;
      if constexpr (E::code == KV_F32) {
        kr[n] = kPool + off;
        vr[n] = vPool + off;
      } else {
        float* kd = buf + static_cast<size_t>(n) * D;
        float* vd = buf + static_cast<size_t>(nk + n) * D;
        E::widenRow(kPool + off, p.kRowScales ? p.kRowScales[slot + j] : 1.f, p.kScale, kd, D);
        E::widenRow(vPool + off, p.vRowScales ? p.vRowScales[slot + j] : 1.f, p.vScale, vd, D);
        kr[n] = kd;
        vr[n] = vd;
      }
    }
  }
}

/**
 * Code-row pointers of keys kb .. kb+nk-1 of (sequence b, KV head h) into kr / vr, read in place from
 * pools of element type E, with each row's scale in ks / vs (int8: its row scale; float8: the tensor
 * scale; 1 otherwise). The decode row kernel widens these in registers (kv_widen.h).
 */
template <class E>
inline void gatherCodeRows(const AttnParams& p, int b, int h, int kb, int nk, int D, const typename E::T** kr,
                           const typename E::T** vr, float* ks, float* vs) {
  const auto* kPool = static_cast<const typename E::T*>(p.kPool);
  const auto* vPool = static_cast<const typename E::T*>(p.vPool);
  const float kT = static_cast<float>(p.kScale), vT = static_cast<float>(p.vScale);
  for (int n = 0; n < nk;) {
    const int pos = kb + n;
    const int page = p.pageTable[static_cast<size_t>(b) * p.maxPages + pos / p.pageSize];
    const size_t slot = (static_cast<size_t>(page) * p.nKv + h) * p.pageSize + pos % p.pageSize;  // [numPages, nKv, pageSize]
    const int run = std::min(nk - n, p.pageSize - pos % p.pageSize);
    for (int j = 0; j < run; j++, n++) {
      kr[n] = kPool + (slot + j) * D;
      vr[n] = vPool + (slot + j) * D;
      ks[n] = E::code == KV_I8 ? p.kRowScales[slot + j] : E::code == KV_FP8 ? kT : 1.f;
      vs[n] = E::code == KV_I8 ? p.vRowScales[slot + j] : E::code == KV_FP8 ? vT : 1.f;
    }
  }
}

/**
 * Row pointers of keys kb .. kb+nk-1 of (sequence b, KV head h) into kr / vr (gatherRowsAs for the
 * pools' format); slots nk .. nkPad-1 point at `zeros` (tile padding).
 * D is the head dim (p.D; a compile-time constant where the caller has one).
 */
inline void gatherKeyRows(const AttnParams& p, int b, int h, int kb, int nk, int nkPad, int D,
                          const float** kr, const float** vr, const float* zeros) {
  withKvType(p.kvDtype, [&](auto e) { gatherRowsAs<decltype(e)>(p, b, h, kb, nk, D, kr, vr); });
  for (int n = nk; n < nkPad; n++) kr[n] = vr[n] = zeros;
}

/** True when any of x[0 .. n) is NaN or +-inf (exponent bits all set; immune to -ffast-math). */
inline bool anyNonFinite(const float* x, int n) {
  uint32_t bad = 0;
  for (int i = 0; i < n; i++) {
    uint32_t u;
    std::memcpy(&u, x + i, 4);
    bad |= static_cast<uint32_t>((u & 0x7f800000u) == 0x7f800000u);
  }
  return bad != 0;
}

/**
 * Causality with non-finite values: the vectorised P·V multiplies every key's weight into its V
 * row, and a masked key's weight 0 times a NaN / inf is NaN. So V rows (of keys 0 .. nk-1 of a
 * block) holding a NaN or inf are diverted: their pointer in vr becomes `zeros` and they are listed
 * in badN / badRow; after the block's P·V the caller adds p · v of each listed row only to the
 * query rows that see that key (addDivertedValues). Returns how many rows were diverted.
 */
inline int divertNonFiniteValues(const float** vr, int nk, int D, const float* zeros, int* badN, const float** badRow) {
  int nb = 0;
  for (int n = 0; n < nk; n++) {
    if (!anyNonFinite(vr[n], D)) continue;
    badN[nb] = n;
    badRow[nb++] = vr[n];
    vr[n] = zeros;
  }
  return nb;
}

/**
 * out[m, d] += p(m, n) * v[d] for each diverted row (n, v) and each row m in [0, M) with
 * lo[m] <= kb + n <= hi[m]; `pAt(m, n)` and `outAt(m, d)` give the caller's layouts.
 */
template <typename PAt, typename OutAt>
inline void addDivertedValues(int nb, const int* badN, const float* const* badRow, int kb, int M, const int* lo, const int* hi,
                              int D, PAt pAt, OutAt outAt) {
  for (int i = 0; i < nb; i++) {
    const int key = kb + badN[i];
    for (int m = 0; m < M; m++) {
      if (key < lo[m] || key > hi[m]) continue;
      const float pm = pAt(m, badN[i]);
      for (int d = 0; d < D; d++) outAt(m, d) += pm * badRow[i][d];
    }
  }
}

/** Row-major attention of one item for D % 16 == 0 (the decode kernel): see attention_rows.cc. */
bool attendItemRows(const AttnParams& p, int b, int h, int t0, int t1, int k0, int k1, float* mOut, float* lOut, float* oOut);
