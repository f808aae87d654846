// FlashAttentionRaggedPaged on the CPU: online softmax over paged K/V, one work item per
// (sequence, KV head, query block) for prefill or (sequence, KV head, key split) for decode.
//
// Layout inside an item: the item's rows are (token t, group head g) pairs, m = t * G + g, padded to
// Mp (a multiple of 16). Q is held transposed, Qt[d, m] (scaled), so both products broadcast one
// scalar of a K or V row straight from its page and multiply it into 16 query rows at once:
//   St[n, m]  = sum_d K[n, d] * Qt[d, m]        (scores, keys along rows)
//   Ot[d, m] += sum_n V[n, d] * St[n, m]        (after St becomes probabilities)
// Softmax runs down the columns of St, so max / exp / sum are plain lane-wise vector ops. Each K/V
// row is read once per item, i.e. once per KV-head group (all G query heads share it). Every mask
// variant allows a contiguous key range [lo, hi] per row; blocks outside the union are skipped.
//
// Versions measured (same-process A/B: bench/native_ab.ts, or a C++ driver calling two builds in
// alternating blocks; medians on the 2-core Zen 5, whose 2-thread FMA peak is ~530 GFLOP/s):
// - decode through this transposed item: G = 4 rows fill 4 of 16 lanes; D1 2.7 ms on one thread.
//   Replaced by attention_rows.cc (lanes along headDim, shuffle-tree reduction): 0.55 ms.
// - Q in / O out transposed with scalar loops: ~12% of a P2 item; now 16x16 register transposes.
// - a separate max pass over the scores: now folded into the QK tile (10% on P1 / P2, one thread).
// - tile loads folded into the FMAs by the compiler (20 loads per 16 FMAs, load-bound at ~45% of
//   peak): now pinned in registers (REG) in out-of-line tiles, 8 loads per 16 FMAs. P1 2.43 -> 1.55
//   ms, P2 1.26 -> 0.85 ms. (Pinned with the tiles inlined into attendItem it was slower: P1
//   2.62 -> 2.83 ms here, P2 1.66 -> 2.95 ms in an earlier try.)
// - exp with clamps and exponent-bit scaling (~20 ops), Ot rescaled by alpha in a pass of its own,
//   a page-table lookup per key: now vscalefps exp (13 ops), alpha applied as the PV tiles load Ot,
//   one lookup per page run. P1 1.72 -> 1.57 ms, P2 1.04 -> 0.95 ms (busy machine).
// - q / out row addresses with runtime divisions by G per 16x16 transpose: now offsets computed once
//   per item (P2 -2%). The kernel now runs P1 at ~390 GFLOP/s (1.38 ms), P2 ~345 (0.73 ms).
// Lost, not kept:
// - PV tiles on the causal diagonal block dropping each 16-row chunk once its keys end (segments of
//   4, 3, 2, 1 chunks): P2 0.951 vs 0.957 ms, P1 1.563 vs 1.584; the short segments take more loads
//   per FMA than the skipped work saves.
// - PV tiles of 6 dims x 4 chunks (24 accumulators): P1 1.553 vs 1.554 ms, no change.
// - prefetchw of the item's output lines spread over its key blocks (cold output buffers, as tfjs
//   allocates them): P1 1.475 vs 1.463 ms, P2 0.835 vs 0.839, no change.
// - blocks of 32, 96 or 128 keys, 32, 128 or 256 rows per item: 96 / 128 keys within 1% of 64
//   (P1 1.367 / 1.378 vs 1.383 ms), the rest slower (TFJS_ATTN_NK / TFJS_ATTN_ROWS still select
//   them, for re-measuring on other processors).
//
// AVX2 + FMA builds (binding.gyp's -march=native on a host without AVX-512; ATTN_V8 in simd.h):
// there a v16 is two ymm registers and GCC lowered the v16 tiles (arrays of v16 accumulators)
// through the stack, moving halves through general registers: P1 46.6 ms, P2 23.3, D1 1.9 ms (2
// threads, ~12 GFLOP/s). These builds run the same items on 8-row vectors instead (qkTile8 /
// pvTile8: 4 keys or 4 dims x 3 vectors = 12 accumulators + 3 row vectors + 1 broadcast = 16 ymm;
// 8 x 8 register transposes; the softmax on 8 rows at a time), and attention_rows.cc has 8-lane
// decode tiles. Measured with this Zen 5 building -mno-avx512f (bench/native_ab.ts, 2 threads):
// P1 2.7 ms (~200 GFLOP/s; the tiles run at ~95% of the 256-bit FMA peak, the rest is mostly exp),
// P2 1.4 ms, D1 0.29 ms (AVX-512: 1.38 / 0.73 / 0.27). The AVX-512 build compiles to the same
// machine code as before (objdump of attention.o and attention_rows.o identical).
// Lost, not kept (AVX2):
// - all four key broadcasts hoisted by GCC at 3 vectors per tile (19 live registers, 3 accumulators
//   spilled, a store-forward on every FMA chain): 7.2 ms one thread; one broadcast live at a time
//   (REG8), and v8set1 as vbroadcastss rather than v8{} + x (an add of 0.f and a register holding
//   zero): 5.8 ms.
// - tiles of 2 vectors (8 accumulators, QK and PV, and 2 in the decode PV): P1 3.00 vs 2.80 ms, P2
//   1.56 vs 1.47, D1 0.33 vs 0.31.
// - 48 rows per item (TFJS_ATTN_ROWS=48, whole 3-vector tiles): P1 2.69 vs 2.72 ms, P2 1.40 vs 1.42,
//   within noise.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "attention.h"
#include "attention_common.h"
#include "attention_decode_kv.h"
#include "pool.h"
#include "simd.h"

namespace {

constexpr int NK_MAX = 256;
/** Tuning switch TFJS_ATTENTION_<name> (the package's one prefix; TFJS_ATTN_<name>, its older spelling, still read). */
static int envInt(const char* name, int def) {
  const char* e = std::getenv((std::string("TFJS_ATTENTION_") + name).c_str());
  if (!e) e = std::getenv((std::string("TFJS_ATTN_") + name).c_str());
  return e ? std::atoi(e) : def;
}
const int NK = std::min(NK_MAX, envInt("NK", 64));        // keys per block
const int ROWS = envInt("ROWS", 64);                      // prefill rows (tokens x G) per item
const bool SKIPMASK = envInt("SKIPMASK", 1) != 0;
constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

struct Scratch {
  std::vector<float> qt, ot, st, m, l, zeros;
  std::vector<int32_t> lo, hi;
  std::vector<const float*> kr, vr;
  std::vector<v16> bmax, alpha;
  std::vector<int> cLo, cHi;
  std::vector<size_t> roff;  // offset of row m's q (and out) vector: [token][head][d]
  void ensure(int D, int Mp) {
    if (bmax.size() < static_cast<size_t>(Mp / VL)) { bmax.resize(Mp / VL); alpha.resize(Mp / VL); cLo.resize(Mp / VL); cHi.resize(Mp / VL); }
    size_t dm = static_cast<size_t>(D) * Mp;
    if (qt.size() < dm) { qt.resize(dm); ot.resize(dm); }
    if (st.size() < static_cast<size_t>(NK) * Mp) st.resize(static_cast<size_t>(NK) * Mp);
    if (m.size() < static_cast<size_t>(Mp)) { m.resize(Mp); l.resize(Mp); lo.resize(Mp); hi.resize(Mp); roff.resize(Mp); }
    if (zeros.size() < static_cast<size_t>(D)) zeros.assign(D, 0.f);
    if (kr.size() < static_cast<size_t>(NK) + 4) { kr.resize(NK + 4); vr.resize(NK + 4); }
  }
};
thread_local Scratch tls;

// Pins a loaded vector in a register. Left to itself GCC folds each tile load into every FMA that
// uses it (vfmadd231ps mem, bcast, acc): 20 loads per 16 FMAs, and this core retires about one
// 512-bit load a cycle, so the tiles ran at ~45% of FMA peak. Loaded once and pinned, a 4 x 4 tile
// needs 8 loads per 16 FMAs and runs at peak (in isolation 117 -> 263 GFLOP/s per core). The tiles
// are kept out of line: inlined into attendItem, the pinned version lost to register pressure.
// Only where a v16 is one register (AVX-512); elsewhere it spans several and this is a no-op.
#if defined(__AVX512F__)
#define REG(x) asm("" : "+v"(x))
#else
#define REG(x) ((void)0)
#endif

// St[n0 + r, c0*16 ..] for 4 keys x C vectors of rows.
// Also folds the valid keys' scores (the first `valid` of the 4) into bmax[c0 ..].
template <int C>
__attribute__((noinline)) void qkTile(const float* const* kr, const float* qt, int Mp, int D, float* st, int c0, v16* bmax, int valid) {
  v16 acc[4][C];
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < C; c++) acc[r][c] = v16{};
  const float* k0 = kr[0]; const float* k1 = kr[1]; const float* k2 = kr[2]; const float* k3 = kr[3];
  for (int d = 0; d < D; d++) {
    v16 qv[C];
    for (int c = 0; c < C; c++) { qv[c] = vload(qt + static_cast<size_t>(d) * Mp + (c0 + c) * VL); REG(qv[c]); }
    float a0 = k0[d], a1 = k1[d], a2 = k2[d], a3 = k3[d];
    for (int c = 0; c < C; c++) {
      acc[0][c] += a0 * qv[c]; acc[1][c] += a1 * qv[c];
      acc[2][c] += a2 * qv[c]; acc[3][c] += a3 * qv[c];
    }
  }
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < C; c++) vstore(st + static_cast<size_t>(r) * Mp + (c0 + c) * VL, acc[r][c]);
  for (int r = 0; r < 4 && r < valid; r++)
    for (int c = 0; c < C; c++) bmax[c0 + c] = vmax(bmax[c0 + c], acc[r][c]);
}

// Ot[d0 + r, c0*16 ..] = alpha[c0 ..] * Ot[..] + sum_n V[n, d0 + r] * St[n, c0*16 ..], R dims x C
// vectors; alpha null: the item's first block (Ot starts at 0).
template <int R, int C>
__attribute__((noinline)) void pvTile(const float* const* vr, int nk, const float* st, int Mp, float* ot, int d0, int c0,
                                      const v16* alpha) {
  v16 acc[R][C];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++)
      acc[r][c] = alpha ? vload(ot + static_cast<size_t>(d0 + r) * Mp + (c0 + c) * VL) * alpha[c0 + c] : v16{};
  for (int n = 0; n < nk; n++) {
    v16 pv[C];
    for (int c = 0; c < C; c++) { pv[c] = vload(st + static_cast<size_t>(n) * Mp + (c0 + c) * VL); REG(pv[c]); }
    const float* v = vr[n] + d0;
    for (int r = 0; r < R; r++) {
      float a = v[r];
      for (int c = 0; c < C; c++) acc[r][c] += a * pv[c];
    }
  }
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) vstore(ot + static_cast<size_t>(d0 + r) * Mp + (c0 + c) * VL, acc[r][c]);
}

template <int R>
inline void pvRows(const float* const* vr, int nk, const float* st, int Mp, float* ot, int d0, const v16* alpha) {
  int nv = Mp / VL, c = 0;
  for (; c + 4 <= nv; c += 4) pvTile<R, 4>(vr, nk, st, Mp, ot, d0, c, alpha);
  switch (nv - c) {
    case 3: pvTile<R, 3>(vr, nk, st, Mp, ot, d0, c, alpha); break;
    case 2: pvTile<R, 2>(vr, nk, st, Mp, ot, d0, c, alpha); break;
    case 1: pvTile<R, 1>(vr, nk, st, Mp, ot, d0, c, alpha); break;
  }
}

#if defined(ATTN_V8)
// AVX2 + FMA (16 ymm registers): the same products on 8-row vectors, tiles of 4 keys (QK) or 4 dims
// (PV) x C vectors of 8 rows, C <= 3: 4C accumulators + C row vectors + a broadcast <= 16 registers.
// Columns are addressed in 8-row vectors (v0 = vector index, 2 per 16-row chunk).
#define REG8(x) asm("" : "+x"(x))
constexpr int QC8 = 3;  // vectors per QK / PV tile

template <int C>
__attribute__((noinline)) void qkTile8(const float* const* kr, const float* qt, int Mp, int D, float* st, int v0, v8* bmax, int valid) {
  v8 acc[4][C];
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < C; c++) acc[r][c] = v8{};
  const float* k0 = kr[0]; const float* k1 = kr[1]; const float* k2 = kr[2]; const float* k3 = kr[3];
  const float* q = qt + v0 * 8;
  for (int d = 0; d < D; d++, q += Mp) {
    v8 qv[C];
    for (int c = 0; c < C; c++) { qv[c] = v8load(q + c * 8); REG8(qv[c]); }
    // One broadcast live at a time (hoisting all four spilled three accumulators at C = 3).
    v8 a = v8set1(k0[d]); REG8(a);
    for (int c = 0; c < C; c++) acc[0][c] += a * qv[c];
    a = v8set1(k1[d]); REG8(a);
    for (int c = 0; c < C; c++) acc[1][c] += a * qv[c];
    a = v8set1(k2[d]); REG8(a);
    for (int c = 0; c < C; c++) acc[2][c] += a * qv[c];
    a = v8set1(k3[d]); REG8(a);
    for (int c = 0; c < C; c++) acc[3][c] += a * qv[c];
  }
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < C; c++) v8store(st + static_cast<size_t>(r) * Mp + (v0 + c) * 8, acc[r][c]);
  for (int r = 0; r < 4 && r < valid; r++)
    for (int c = 0; c < C; c++) bmax[v0 + c] = v8max(bmax[v0 + c], acc[r][c]);
}

template <int R, int C>
__attribute__((noinline)) void pvTile8(const float* const* vr, int nk, const float* st, int Mp, float* ot, int d0, int v0,
                                       const v8* alpha) {
  v8 acc[R][C];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++)
      acc[r][c] = alpha ? v8load(ot + static_cast<size_t>(d0 + r) * Mp + (v0 + c) * 8) * alpha[v0 + c] : v8{};
  const float* sp = st + v0 * 8;
  for (int n = 0; n < nk; n++, sp += Mp) {
    v8 pv[C];
    for (int c = 0; c < C; c++) { pv[c] = v8load(sp + c * 8); REG8(pv[c]); }
    const float* v = vr[n] + d0;
    for (int r = 0; r < R; r++) {
      v8 a = v8set1(v[r]); REG8(a);
      for (int c = 0; c < C; c++) acc[r][c] += a * pv[c];
    }
  }
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) v8store(ot + static_cast<size_t>(d0 + r) * Mp + (v0 + c) * 8, acc[r][c]);
}

// 8-row vectors [v, ve) of 4 keys' scores.
inline void qkRange8(const float* const* kr, const float* qt, int Mp, int D, float* st, int v, int ve, v8* bmax, int valid) {
  for (; v + QC8 <= ve; v += QC8) qkTile8<QC8>(kr, qt, Mp, D, st, v, bmax, valid);
  switch (ve - v) {
    case 2: qkTile8<2>(kr, qt, Mp, D, st, v, bmax, valid); break;
    case 1: qkTile8<1>(kr, qt, Mp, D, st, v, bmax, valid); break;
  }
}

template <int R>
inline void pvRows8(const float* const* vr, int nk, const float* st, int Mp, float* ot, int d0, const v8* alpha) {
  int nv = Mp / 8, v = 0;
  for (; v + QC8 <= nv; v += QC8) pvTile8<R, QC8>(vr, nk, st, Mp, ot, d0, v, alpha);
  switch (nv - v) {
    case 2: pvTile8<R, 2>(vr, nk, st, Mp, ot, d0, v, alpha); break;
    case 1: pvTile8<R, 1>(vr, nk, st, Mp, ot, d0, v, alpha); break;
  }
}
#endif

/**
 * Attends rows of tokens [t0, t1) of batch entry b, KV head h, over keys [k0, k1) (clipped to each
 * row's mask range). Leaves the unnormalised state in tls: m, l, Ot. Returns Mp.
 */
int attendItem(const AttnParams& p, int b, int h, int t0, int t1, int k0, int k1) {
  const int G = p.nHeads / p.nKv, D = p.D;
  const int M = (t1 - t0) * G, Mp = (M + VL - 1) / VL * VL;
  Scratch& s = tls;
  s.ensure(D, Mp);
  float *qt = s.qt.data(), *ot = s.ot.data(), *st = s.st.data(), *mr = s.m.data(), *lr = s.l.data();
  int32_t *lo = s.lo.data(), *hi = s.hi.data();
  const int start = p.start[b], ctx = start + p.numNew[b], row0 = p.rowOff[b];
  const size_t qStride = static_cast<size_t>(p.nHeads) * D;
  // Qt[d, m] = scale * q[row, head, d]; padded rows zero and empty (lo > hi).
  int kmin = k1, kmax = k0 - 1;
  const float* zeros = s.zeros.data();
  size_t* roff = s.roff.data();
  for (int m = 0, t = t0, g = 0; m < Mp; m++) {
    mr[m] = NEG_INF;
    lr[m] = 0.f;
    if (m >= M) { lo[m] = 1; hi[m] = 0; continue; }
    roff[m] = (row0 + t) * qStride + static_cast<size_t>(h * G + g) * D;
    tileKeyRange(p, start + t, ctx, k0, k1, lo[m], hi[m], kmin, kmax);
    if (++g == G) { g = 0; t++; }
  }
  auto qRow = [&](int m) -> const float* { return m < M ? p.q + roff[m] : zeros; };
#if defined(ATTN_V8)
  if (D % 8 == 0) {
    // 8 x 8 blocks through registers.
    const v8 sc = v8set1(p.scale);
    for (int m0 = 0; m0 < Mp; m0 += 8)
      for (int d0 = 0; d0 < D; d0 += 8) {
        v8 r[8];
        for (int i = 0; i < 8; i++) r[i] = v8load(qRow(m0 + i) + d0) * sc;
        transpose8(r);
        for (int i = 0; i < 8; i++) v8store(qt + static_cast<size_t>(d0 + i) * Mp + m0, r[i]);
      }
  } else
#endif
  if (D % VL == 0) {
    // 16 x 16 blocks through registers.
    const v16 sc = vset1(p.scale);
    for (int m0 = 0; m0 < Mp; m0 += VL)
      for (int d0 = 0; d0 < D; d0 += VL) {
        v16 r[VL];
        for (int i = 0; i < VL; i++) r[i] = vload(qRow(m0 + i) + d0) * sc;
        transpose16(r);
        for (int i = 0; i < VL; i++) vstore(qt + static_cast<size_t>(d0 + i) * Mp + m0, r[i]);
      }
  } else {
    for (int m = 0; m < Mp; m++) {
      const float* qr = qRow(m);
      for (int d = 0; d < D; d++) qt[static_cast<size_t>(d) * Mp + m] = qr[d] * p.scale;
    }
  }
  const int nv = Mp / VL;
  // Key range seen by each chunk of 16 rows (empty rows ignored).
  int* cLo = s.cLo.data();
  int* cHi = s.cHi.data();
  for (int c = 0; c < nv; c++) {
    cLo[c] = INT32_MAX; cHi[c] = -1;
    for (int i = c * VL; i < (c + 1) * VL; i++)
      if (lo[i] <= hi[i]) { cLo[c] = std::min(cLo[c], lo[i]); cHi[c] = std::max(cHi[c], hi[i]); }
  }
  const float** kr = s.kr.data();
  const float** vr = s.vr.data();
  if (kmin > kmax) std::fill(ot, ot + static_cast<size_t>(D) * Mp, 0.f);  // no keys: the blocks never write Ot
  for (int kb = kmin; kb <= kmax; kb += NK) {
    const int nk = std::min(NK, kmax + 1 - kb), nk4 = (nk + 3) & ~3;
    gatherKeyRows(p, b, h, kb, nk, nk4, D, kr, vr, s.zeros.data());
    int badN[NK_MAX];
    const float* badRow[NK_MAX];
    const int nBad = divertNonFiniteValues(vr, nk, D, s.zeros.data(), badN, badRow);
    // Scores, and their per-row maxima (used where no mask applies in the block).
    v16* bm = s.bmax.data();
    v16* va = s.alpha.data();
    for (int c = 0; c < nv; c++) bm[c] = vset1(NEG_INF);
    for (int n = 0; n < nk4; n += 4) {
      // Only chunks of rows that see one of these 4 keys (causal diagonal blocks skip the rest;
      // their scores stay unset and the mask pass below turns them into -inf).
      const int kf = kb + n, kl = kb + std::min(n + 3, nk - 1);
      int c = 0, ce = nv;
      while (c < ce && (cHi[c] < kf || cLo[c] > kl)) c++;
      while (ce > c && (cHi[ce - 1] < kf || cLo[ce - 1] > kl)) ce--;
#if defined(ATTN_V8)
      qkRange8(kr + n, qt, Mp, D, st + static_cast<size_t>(n) * Mp, 2 * c, 2 * ce, reinterpret_cast<v8*>(bm), nk - n);
#else
      for (; c + 4 <= ce; c += 4) qkTile<4>(kr + n, qt, Mp, D, st + static_cast<size_t>(n) * Mp, c, bm, nk - n);
      switch (ce - c) {
        case 3: qkTile<3>(kr + n, qt, Mp, D, st + static_cast<size_t>(n) * Mp, c, bm, nk - n); break;
        case 2: qkTile<2>(kr + n, qt, Mp, D, st + static_cast<size_t>(n) * Mp, c, bm, nk - n); break;
        case 1: qkTile<1>(kr + n, qt, Mp, D, st + static_cast<size_t>(n) * Mp, c, bm, nk - n); break;
      }
#endif
    }
    // Mask + online softmax, 16 rows at a time.
#if defined(ATTN_V8)
    // (8 at a time here: the same steps on 8-row vectors.)
    for (int c = 0; c < nv; c++) {
      bool inside = SKIPMASK;
      for (int i = c * VL; i < (c + 1) * VL && inside; i++) inside = lo[i] <= kb && kb + nk - 1 <= hi[i];
      for (int hv = 2 * c; hv < 2 * c + 2; hv++) {
        const vi8 vlo = vi8load(lo + hv * 8);
        const vi8 vhi = vi8load(hi + hv * 8);
        v8 bmax = v8set1(NEG_INF);
        if (inside) {
          bmax = reinterpret_cast<const v8*>(bm)[hv];
        } else {
          for (int n = 0; n < nk; n++) {
            float* sp = st + static_cast<size_t>(n) * Mp + hv * 8;
            vi8 kp = vi8set1(kb + n);
            v8 sv = v8load(sp);
            sv = (kp >= vlo) & (kp <= vhi) ? sv : v8set1(NEG_INF);
            v8store(sp, sv);
            bmax = v8max(bmax, sv);
          }
        }
        v8 mold = v8load(mr + hv * 8);
        v8 mnew = v8max(mold, bmax);
        v8 msafe = mnew == v8set1(NEG_INF) ? v8{} : mnew;
        v8 alpha = vexp8(mold - msafe);
        v8 lsum = v8{};
        for (int n = 0; n < nk4; n++) {
          float* sp = st + static_cast<size_t>(n) * Mp + hv * 8;
          v8 pv = n < nk ? vexp8(v8load(sp) - msafe) : v8{};
          v8store(sp, pv);
          lsum += pv;
        }
        v8store(lr + hv * 8, v8load(lr + hv * 8) * alpha + lsum);
        v8store(mr + hv * 8, mnew);
        reinterpret_cast<v8*>(va)[hv] = alpha;
      }
    }
#else
    for (int c = 0; c < nv; c++) {
      const vi16 vlo = viload(lo + c * VL);
      const vi16 vhi = viload(hi + c * VL);
      v16 bmax = vset1(NEG_INF);
      bool inside = SKIPMASK;
      for (int i = 0; i < VL && inside; i++) inside = vlo[i] <= kb && kb + nk - 1 <= vhi[i];
      if (inside) {
        bmax = bm[c];
      } else {
        for (int n = 0; n < nk; n++) {
          float* sp = st + static_cast<size_t>(n) * Mp + c * VL;
          vi16 kp = viset1(kb + n);
          v16 sv = vload(sp);
          sv = (kp >= vlo) & (kp <= vhi) ? sv : vset1(NEG_INF);
          vstore(sp, sv);
          bmax = vmax(bmax, sv);
        }
      }
      v16 mold = vload(mr + c * VL);
      v16 mnew = vmax(mold, bmax);
      v16 msafe = mnew == vset1(NEG_INF) ? v16{} : mnew;
      v16 alpha = vexp(mold - msafe);
      v16 lsum = v16{};
      for (int n = 0; n < nk4; n++) {
        float* sp = st + static_cast<size_t>(n) * Mp + c * VL;
        v16 pv = n < nk ? vexp(vload(sp) - msafe) : v16{};
        vstore(sp, pv);
        lsum += pv;
      }
      vstore(lr + c * VL, vload(lr + c * VL) * alpha + lsum);
      vstore(mr + c * VL, mnew);
      va[c] = alpha;
    }
#endif
    // Values (the PV tiles rescale Ot by alpha as they load it; the first block starts from 0).
    const v16* pa = kb == kmin ? nullptr : va;
    int d = 0;
#if defined(ATTN_V8)
    const v8* pa8 = reinterpret_cast<const v8*>(pa);
    for (; d + 4 <= D; d += 4) pvRows8<4>(vr, nk, st, Mp, ot, d, pa8);
    for (; d < D; d++) pvRows8<1>(vr, nk, st, Mp, ot, d, pa8);
#else
    for (; d + 4 <= D; d += 4) pvRows<4>(vr, nk, st, Mp, ot, d, pa);
    for (; d < D; d++) pvRows<1>(vr, nk, st, Mp, ot, d, pa);
#endif
    if (nBad > 0)
      addDivertedValues(nBad, badN, badRow, kb, M, lo, hi, D,
                        [&](int m, int n) { return st[static_cast<size_t>(n) * Mp + m]; },
                        [&](int m, int dd) -> float& { return ot[static_cast<size_t>(dd) * Mp + m]; });
  }
  return Mp;
}

void writeRows(const AttnParams& p, int t0, int t1, const float* ot, const float* lr, int Mp) {
  const int G = p.nHeads / p.nKv, D = p.D, M = (t1 - t0) * G;
  const size_t* roff = tls.roff.data();  // left by attendItem for these rows
  auto outRow = [&](int m) { return p.out + roff[m]; };
#if defined(ATTN_V8)
  if (D % 8 == 0) {
    for (int m0 = 0; m0 < M; m0 += 8) {
      float inv[8];
      for (int i = 0; i < 8; i++) inv[i] = m0 + i < M && lr[m0 + i] != 0.f ? 1.f / lr[m0 + i] : 0.f;  // NaN l keeps NaN
      for (int d0 = 0; d0 < D; d0 += 8) {
        v8 r[8];
        for (int i = 0; i < 8; i++) r[i] = v8load(ot + static_cast<size_t>(d0 + i) * Mp + m0);
        transpose8(r);
        for (int i = 0; i < 8 && m0 + i < M; i++) v8store(outRow(m0 + i) + d0, r[i] * inv[i]);
      }
    }
    return;
  }
#endif
  if (D % VL == 0) {
    for (int m0 = 0; m0 < M; m0 += VL) {
      float inv[VL];
      for (int i = 0; i < VL; i++) inv[i] = m0 + i < M && lr[m0 + i] != 0.f ? 1.f / lr[m0 + i] : 0.f;  // NaN l keeps NaN
      for (int d0 = 0; d0 < D; d0 += VL) {
        v16 r[VL];
        for (int i = 0; i < VL; i++) r[i] = vload(ot + static_cast<size_t>(d0 + i) * Mp + m0);
        transpose16(r);
        for (int i = 0; i < VL && m0 + i < M; i++) vstore(outRow(m0 + i) + d0, r[i] * inv[i]);
      }
    }
    return;
  }
  for (int m = 0; m < M; m++) {
    float* o = outRow(m);
    float inv = lr[m] != 0.f ? 1.f / lr[m] : 0.f;  // NaN l keeps NaN
    for (int d = 0; d < D; d++) o[d] = ot[static_cast<size_t>(d) * Mp + m] * inv;
  }
}

// Partial softmax states of the decode path, reused across calls (grows with the split count only).
// One per calling thread (worker_threads may call at once); the pool's helpers get its pointer.
thread_local std::vector<float> gPartial;

}  // namespace

void flashAttentionRaggedPaged(const AttnParams& p) {
  const int G = p.nHeads / p.nKv;
  int maxNew = 0, maxCtx = 0;
  for (int b = 0; b < p.batch; b++) {
    maxNew = std::max(maxNew, p.numNew[b]);
    maxCtx = std::max(maxCtx, p.start[b] + p.numNew[b]);
  }
  if (maxNew == 0) return;
  const int threads = pool().active();
  bool decode = p.variant == 2 || (p.variant == 0 && maxNew * G <= VL);
  if (!decode) {
    // Prefill: items (b, h, query block), later (costlier under causal) blocks first.
    const int bq = std::max(1, ROWS / G);
    struct Item { int b, h, t0, t1; };
    std::vector<Item> items;
    for (int b = 0; b < p.batch; b++)
      for (int t0 = ((p.numNew[b] + bq - 1) / bq - 1) * bq; t0 >= 0; t0 -= bq)
        for (int h = 0; h < p.nKv; h++) items.push_back({b, h, t0, std::min(p.numNew[b], t0 + bq)});
    // Costliest first (keys seen x rows), so the last items to run are short ones.
    auto cost = [&](const Item& it) {
      int lo, hi, ctx = p.start[it.b] + p.numNew[it.b];
      keyRange(p, p.start[it.b] + it.t1 - 1, ctx, lo, hi);
      int lo0, hi0;
      keyRange(p, p.start[it.b] + it.t0, ctx, lo0, hi0);
      return static_cast<int64_t>(hi - lo0 + 1) * (it.t1 - it.t0);
    };
    std::stable_sort(items.begin(), items.end(), [&](const Item& x, const Item& y) { return cost(x) > cost(y); });
    pool().parallelFor(static_cast<int>(items.size()), [&](int i) {
      const Item& it = items[i];
      int ctx = p.start[it.b] + p.numNew[it.b];
      int Mp = attendItem(p, it.b, it.h, it.t0, it.t1, 0, ctx);
      writeRows(p, it.t0, it.t1, tls.ot.data(), tls.l.data(), Mp);
    });
    return;
  }
  // Decode: items (b, h, key split); each split leaves (m, l, Ot), merged per (b, h) afterwards.
  int want = std::max(p.variant == 2 ? 4 : 1, (4 * threads + p.batch * p.nKv - 1) / (p.batch * p.nKv));
  int splitLen = std::max(NK, ((maxCtx + want - 1) / want + NK - 1) / NK * NK);
  const int Mp = (maxNew * G + VL - 1) / VL * VL;
  const size_t stateSize = static_cast<size_t>(2 + p.D) * Mp;
  std::vector<int> firstSplit(p.batch + 1, 0);
  for (int b = 0; b < p.batch; b++) {
    int ctx = p.start[b] + p.numNew[b];
    int ns = p.numNew[b] == 0 ? 0 : std::max(1, (ctx + splitLen - 1) / splitLen);
    firstSplit[b + 1] = firstSplit[b] + ns;
  }
  const int nSplits = firstSplit[p.batch];
  const size_t need = static_cast<size_t>(nSplits) * p.nKv * stateSize;
  if (gPartial.size() < need) gPartial.resize(need);
  float* partial = gPartial.data();
  // Merge of one (b, h): weight each split by exp(m_s - max m), normalise, write the rows.
  auto mergeOne = [&](int b, int h) {
    int s0 = firstSplit[b], s1 = firstSplit[b + 1];
    const int M = p.numNew[b] * G, D = p.D;
    const size_t stride = static_cast<size_t>(p.nHeads) * D;
    for (int m = 0; m < M; m++) {
      float* o = p.out + (p.rowOff[b] + m / G) * stride + static_cast<size_t>(h * G + m % G) * D;
      std::fill(o, o + D, 0.f);
      float mx = NEG_INF;
      for (int s = s0; s < s1; s++) mx = std::max(mx, partial[(static_cast<size_t>(s) * p.nKv + h) * stateSize + m]);
      // A NaN score leaves m at -inf (max drops NaN) but l NaN: the row must come out NaN, not 0.
      float L = 0.f;
      for (int s = s0; s < s1; s++) {
        const float* st = partial + (static_cast<size_t>(s) * p.nKv + h) * stateSize;
        if (std::isnan(st[Mp + m])) L = NAN;
        if (st[m] == NEG_INF || mx == NEG_INF) continue;
        float w = std::exp(st[m] - mx);
        L += w * st[Mp + m];
        const float* so = st + 2 * Mp + static_cast<size_t>(m) * D;
        for (int d = 0; d < D; d++) o[d] += w * so[d];
      }
      float inv = L != 0.f ? 1.f / L : 0.f;
      for (int d = 0; d < D; d++) o[d] *= inv;
    }
  };
  // item = (split index over all sequences) * nKv + h; state layout m[Mp], l[Mp], O[Mp][D].
  // A sequence with a single split is finished by its own item (no second pass).
  pool().parallelFor(nSplits * p.nKv, [&](int i) {
    int si = i / p.nKv, h = i % p.nKv;
    int b = static_cast<int>(std::upper_bound(firstSplit.begin(), firstSplit.end(), si) - firstSplit.begin()) - 1;
    int k0 = (si - firstSplit[b]) * splitLen;
    float* dst = partial + static_cast<size_t>(i) * stateSize;
    if (!attendItemRowsKv(p, b, h, 0, p.numNew[b], k0, k0 + splitLen, dst, dst + Mp, dst + 2 * Mp) &&
        !attendItemRows(p, b, h, 0, p.numNew[b], k0, k0 + splitLen, dst, dst + Mp, dst + 2 * Mp)) {
      int mp = attendItem(p, b, h, 0, p.numNew[b], k0, k0 + splitLen);
      const int M = p.numNew[b] * G;
      std::copy(tls.m.data(), tls.m.data() + M, dst);
      std::copy(tls.l.data(), tls.l.data() + M, dst + Mp);
      for (int m = 0; m < M; m++)
        for (int d = 0; d < p.D; d++) dst[2 * Mp + static_cast<size_t>(m) * p.D + d] = tls.ot[static_cast<size_t>(d) * mp + m];
    }
    if (firstSplit[b + 1] - firstSplit[b] == 1) mergeOne(b, h);
  });
  std::vector<int> multi;
  for (int b = 0; b < p.batch; b++)
    if (firstSplit[b + 1] - firstSplit[b] > 1)
      for (int h = 0; h < p.nKv; h++) multi.push_back(b * p.nKv + h);
  if (!multi.empty())
    pool().parallelFor(static_cast<int>(multi.size()), [&](int i) { mergeOne(multi[i] / p.nKv, multi[i] % p.nKv); });
}
