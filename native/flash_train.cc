// FlashAttentionRagged forward and backward for the training path (lib/training/kernels/names.ts):
// attention of packed ragged sequences over themselves, no cache, q/k/v as plain row arrays.
// One work item per (sequence, KV head), largest sequences first (an item costs ~n^2), on the pool.
//
// Blocked path (every item whose q, k, v (and dy) values are finite): the item's K (row-major and
// transposed) and V (transposed for the backward) are packed once, zero-padded to 16 keys / 16 dims,
// and shared by its G query heads. Query blocks of ~64 rows (tokens x G heads, row m = t * G + g)
// against the union of their visible key ranges, every product one register-blocked GEMM tile
// (4 rows x up to 4 vectors of 16, a broadcast of A times rows of B, gemmTile):
//   forward   S = Q Kt (Q scaled), masked row max, P = vexp(S - max) (invisible keys exactly 0),
//             O = P V, out = O / rowsum(P), lse = max + log(rowsum)  (two-pass softmax: the whole
//             visible row of S is held, ~64 x n floats)
//   backward  (FlashAttention-2) S = Q Kt, dP = dO Vt, P = vexp(S scale - lse), D = dO . O,
//             dS = P (dP - D) scale (both 0 outside the row's visible keys), dV += P^T dO,
//             dK += dS^T Q (over the block's key range, in the item's scratch), dQ = dS K.
// Measured (bench/native_ab.ts F1/B1: 512 tokens, 16 / 4 heads, head dim 64, causal; F2/B2: 64
// sequences of 8-24 tokens, 8 / 4 heads, head dim 32; 2 threads, AVX-512 Zen 5, medians) against
// the scalar port it replaced: F1 14.6 -> 1.94 ms, B1 72.0 -> 4.69, F2 1.04 -> 0.34, B2 2.89 -> 0.50.
// Built -mno-avx512f (AVX2 + FMA, v8 tiles of 4 x 3 vectors): F1 13.5 -> 3.2, B1 76.3 -> 7.2,
// F2 0.81 -> 0.33, B2 2.52 -> 0.57. AVX-512 tiles of 6 x 4 / 8 x C vectors rather than 4 x C (fewer
// loads per FMA): F1 2.01 -> 1.87 ms, B1 4.39 -> 4.26, B2 0.393 -> 0.373.
// Not kept: query blocks of 48 or 96 rows rather than 64 (within 1-3%, 96 slower on B1).
//
// Reference path (items with a NaN or +-inf input, forwardItemRef / backwardItemRef): the
// TypeScript host kernel's loops (flash_attention_ragged_ts.ts) over only each query's visible keys.
// The blocked GEMMs multiply invisible keys' zero weights into V / dO / Q / K rows, and 0 * inf or
// 0 * NaN would leak a non-finite value into rows that never see it; this path keeps the host
// kernel's NaN / inf behaviour exactly. Items write disjoint rows/columns of the outputs (dq rows of
// the group's heads, dk/dv columns of the KV head within the sequence's rows): no synchronisation.
#include "flash_train.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "pool.h"
#include "simd.h"

namespace {

/** Visible keys [lo, hi) of query i in a sequence of n rows (lib/types.ts MASK_CODE). */
inline void visible(const FlashTrainParams& p, int i, int n, int& lo, int& hi) {
  switch (p.mask) {
    case 0: lo = 0; hi = i + 1; break;                                                    // causal
    case 1: lo = 0; hi = n; break;                                                        // null
    case 2: lo = std::max(0, i - p.window + 1); hi = i + 1; break;                        // sliding_window_causal
    case 3: lo = std::max(0, i - p.window + 1); hi = std::min(n, i + p.window); break;    // sliding_window
    default: lo = p.chunk > 0 ? (i / p.chunk) * p.chunk : 0; hi = i + 1; break;          // chunked_causal
  }
}

struct Scratch {
  std::vector<float> kt, vt, v, k, dk, dv, s, dp, qrow, grow, acc;
  void ensure(int n, int hd) {
    const size_t nh = static_cast<size_t>(n) * hd;
    if (kt.size() < nh) { kt.resize(nh); vt.resize(nh); v.resize(nh); k.resize(nh); dk.resize(nh); dv.resize(nh); }
    if (s.size() < static_cast<size_t>(n)) { s.resize(n); dp.resize(n); }
    if (qrow.size() < static_cast<size_t>(hd)) { qrow.resize(hd); grow.resize(hd); acc.resize(hd); }
  }
};
thread_local Scratch tls;

/** Items (b, kh) with their sequence's rows, largest first. */
std::vector<int> itemOrder(const FlashTrainParams& p) {
  std::vector<int> items;
  for (int b = 0; b < p.batch; b++) {
    if (p.rowOff[b + 1] - p.rowOff[b] <= 0) continue;
    for (int kh = 0; kh < p.nKv; kh++) items.push_back(b * p.nKv + kh);
  }
  std::stable_sort(items.begin(), items.end(), [&](int x, int y) {
    const int bx = x / p.nKv, by = y / p.nKv;
    return p.rowOff[bx + 1] - p.rowOff[bx] > p.rowOff[by + 1] - p.rowOff[by];
  });
  return items;
}

/** rows r0 .. r0+n-1, columns c0 .. c0+hd-1 of `[*, width]` -> row-major [n, hd] and/or transposed [hd, n]. */
void gather(const float* src, int width, int r0, int n, int c0, int hd, float* rows, float* cols) {
  for (int j = 0; j < n; j++) {
    const float* s = src + static_cast<size_t>(r0 + j) * width + c0;
    for (int d = 0; d < hd; d++) {
      if (rows) rows[static_cast<size_t>(j) * hd + d] = s[d];
      if (cols) cols[static_cast<size_t>(d) * n + j] = s[d];
    }
  }
}

/** S[lo .. hi) = sum_d x[d] * t[d, lo .. hi) for t `[hd, n]`. */
inline void rowTimesCols(const float* x, const float* t, int n, int hd, int lo, int hi, float* S) {
  for (int j = lo; j < hi; j++) S[j] = 0.f;
  for (int d = 0; d < hd; d++) {
    const float xd = x[d];
    const float* td = t + static_cast<size_t>(d) * n;
    for (int j = lo; j < hi; j++) S[j] += xd * td[j];
  }
}

/** One work item: sequence b (rows r0 .. r0+n-1 of q/k/v) and KV head kh with its g query heads. */
struct Item {
  int b, kh, hd, g, r0, n, qW, kW;
  Item(const FlashTrainParams& p, int b_, int kh_)
      : b(b_), kh(kh_), hd(p.hd), g(p.nHeads / p.nKv), r0(p.rowOff[b_]), n(p.rowOff[b_ + 1] - p.rowOff[b_]),
        qW(p.nHeads * p.hd), kW(p.nKv * p.hd) {}
  static Item of(const FlashTrainParams& p, int item) { return Item(p, item / p.nKv, item % p.nKv); }
  /** dK, dV rows `[n, ld]` -> the KV head's columns of the sequence's rows of p.dk, p.dv. */
  void storeKvGrads(const FlashTrainParams& p, const float* dK, const float* dV, int ld) const {
    for (int j = 0; j < n; j++) {
      const size_t o = static_cast<size_t>(r0 + j) * kW + static_cast<size_t>(kh) * hd;
      std::copy(dK + static_cast<size_t>(j) * ld, dK + static_cast<size_t>(j) * ld + hd, p.dk + o);
      std::copy(dV + static_cast<size_t>(j) * ld, dV + static_cast<size_t>(j) * ld + hd, p.dv + o);
    }
  }
};

void forwardItemRef(const FlashTrainParams& p, int item) {
  const Item it = Item::of(p, item);
  const auto& [b, kh, hd, g, r0, n, qW, kW] = it;
  Scratch& s = tls;
  s.ensure(n, hd);
  float *Kt = s.kt.data(), *V = s.v.data(), *S = s.s.data(), *Q = s.qrow.data(), *acc = s.acc.data();
  gather(p.k, kW, r0, n, kh * hd, hd, nullptr, Kt);
  gather(p.v, kW, r0, n, kh * hd, hd, V, nullptr);
  for (int i = 0; i < n; i++) {
    int lo, hi;
    visible(p, i, n, lo, hi);
    for (int h = kh * g; h < (kh + 1) * g; h++) {
      const size_t qo = static_cast<size_t>(r0 + i) * qW + static_cast<size_t>(h) * hd;
      for (int d = 0; d < hd; d++) Q[d] = p.q[qo + d] * p.scale;
      rowTimesCols(Q, Kt, n, hd, lo, hi, S);
      float m = -std::numeric_limits<float>::infinity();
      for (int j = lo; j < hi; j++) m = std::max(m, S[j]);
      float sum = 0.f;
      for (int j = lo; j < hi; j++) { S[j] = std::exp(S[j] - m); sum += S[j]; }
      for (int d = 0; d < hd; d++) acc[d] = 0.f;
      for (int j = lo; j < hi; j++) {
        const float pj = S[j];
        const float* vj = V + static_cast<size_t>(j) * hd;
        for (int d = 0; d < hd; d++) acc[d] += pj * vj[d];
      }
      const float inv = 1.f / sum;
      for (int d = 0; d < hd; d++) p.out[qo + d] = acc[d] * inv;
      p.lse[static_cast<size_t>(r0 + i) * p.nHeads + h] = m + std::log(sum);
    }
  }
}

void backwardItemRef(const FlashTrainParams& p, int item) {
  const Item it = Item::of(p, item);
  const auto& [b, kh, hd, g, r0, n, qW, kW] = it;
  Scratch& s = tls;
  s.ensure(n, hd);
  float *Kt = s.kt.data(), *Vt = s.vt.data(), *K = s.k.data(), *dK = s.dk.data(), *dV = s.dv.data();
  float *S = s.s.data(), *DP = s.dp.data(), *Q = s.qrow.data(), *G = s.grow.data(), *dq = s.acc.data();
  gather(p.k, kW, r0, n, kh * hd, hd, K, Kt);
  gather(p.v, kW, r0, n, kh * hd, hd, nullptr, Vt);
  std::fill(dK, dK + static_cast<size_t>(n) * hd, 0.f);
  std::fill(dV, dV + static_cast<size_t>(n) * hd, 0.f);
  for (int i = 0; i < n; i++) {
    int lo, hi;
    visible(p, i, n, lo, hi);
    for (int h = kh * g; h < (kh + 1) * g; h++) {
      const size_t qo = static_cast<size_t>(r0 + i) * qW + static_cast<size_t>(h) * hd;
      const float l = p.lse[static_cast<size_t>(r0 + i) * p.nHeads + h];
      float D = 0.f;
      for (int d = 0; d < hd; d++) { Q[d] = p.q[qo + d]; G[d] = p.dy[qo + d]; D += G[d] * p.out[qo + d]; dq[d] = 0.f; }
      rowTimesCols(Q, Kt, n, hd, lo, hi, S);
      rowTimesCols(G, Vt, n, hd, lo, hi, DP);
      for (int j = lo; j < hi; j++) {
        const float pj = std::exp(S[j] * p.scale - l);
        const float ds = pj * (DP[j] - D) * p.scale;
        const float* kj = K + static_cast<size_t>(j) * hd;
        float* dkj = dK + static_cast<size_t>(j) * hd;
        float* dvj = dV + static_cast<size_t>(j) * hd;
        for (int d = 0; d < hd; d++) {
          dq[d] += ds * kj[d];
          dkj[d] += ds * Q[d];
          dvj[d] += pj * G[d];
        }
      }
      for (int d = 0; d < hd; d++) p.dq[qo + d] = dq[d];
    }
  }
  it.storeKvGrads(p, dK, dV, hd);
}

// ---- Blocked path (finite inputs) ----

// Vectors of FL lanes: AVX-512 (and portable) builds use v16; AVX2 + FMA builds (ATTN_V8, simd.h)
// use v8, where arrays of v16 would be lowered through the stack. Keys and dims are padded to PAD.
constexpr int PAD = 16;
#if defined(ATTN_V8)
typedef v8 fv;
typedef vi8 fvi;
constexpr int FL = 8, CMAX = 3;  // 4 x 3 accumulators + 3 rows of B + 1 broadcast = 16 ymm
static const fvi FIOTA = {0, 1, 2, 3, 4, 5, 6, 7};
#define FT_REG(x) asm("" : "+x"(x))
#else
typedef v16 fv;
typedef vi16 fvi;
constexpr int FL = 16, CMAX = 4;
static const fvi FIOTA = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
#if defined(__AVX512F__)
#define FT_REG(x) asm("" : "+v"(x))
#else
#define FT_REG(x) ((void)0)
#endif
#endif
using FOps = VecOps<fv>;  // the width's loads, stores, reductions (simd.h)
static inline fv fload(const float* x) { return FOps::load(x); }
static inline void fstore(float* x, fv v) { FOps::store(x, v); }
static inline fv fset1(float x) { return FOps::set1(x); }
static inline fvi fiset1(int32_t x) { return FOps::iset1(x); }
static inline fv fexp(fv x) { return FOps::exp(x); }
static inline fv fmaxv(fv a, fv b) { return FOps::max(a, b); }
static inline float fhmax(fv v) { return FOps::hmaxv(v); }
static inline float fhsum(fv v) { return FOps::hsumv(v); }

constexpr int BLOCK_ROWS = 64;  // query rows (tokens x G heads) per block

inline int roundUp(int x, int m) { return (x + m - 1) / m * m; }

/** C[R, C*FL] (+)= sum_k A(r, k) B[k, c*FL ..], A(r, k) = A[r * ars + k * aks]. */
template <int R, int C>
__attribute__((noinline)) void gemmTile(int K, const float* A, ptrdiff_t ars, ptrdiff_t aks, const float* B, ptrdiff_t ldb,
                                        float* Cm, ptrdiff_t ldc, bool add) {
  fv acc[R][C];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) acc[r][c] = add ? fload(Cm + r * ldc + c * FL) : fv{};
  for (int k = 0; k < K; k++) {
    fv b[C];
    for (int c = 0; c < C; c++) { b[c] = fload(B + k * ldb + c * FL); FT_REG(b[c]); }
    const float* a = A + k * aks;
#if defined(ATTN_V8)
    for (int r = 0; r < R; r++) {  // one broadcast live at a time (see attention.cc's qkTile8)
      fv x = fset1(a[r * ars]);
      FT_REG(x);
      for (int c = 0; c < C; c++) acc[r][c] += x * b[c];
    }
#else
    for (int r = 0; r < R; r++) {
      const float x = a[r * ars];
      for (int c = 0; c < C; c++) acc[r][c] += x * b[c];
    }
#endif
  }
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) fstore(Cm + r * ldc + c * FL, acc[r][c]);
}

// Rows per tile: AVX-512 has 32 registers, R x C accumulators + C rows of B must fit (6 x 4, 8 x 3,
// 8 x 2, 8 x 1); AVX2 has 16 (4 x 3).
#if defined(ATTN_V8)
template <int C> constexpr int tileRows() { return 4; }
#else
template <int C> constexpr int tileRows() { return C == 4 ? 6 : 8; }
#endif

template <int C>
void gemmCols(int M, int K, const float* A, ptrdiff_t ars, ptrdiff_t aks, const float* B, ptrdiff_t ldb, float* Cm,
              ptrdiff_t ldc, bool add) {
  constexpr int R = tileRows<C>();
  int r = 0;
  for (; r + R <= M; r += R) gemmTile<R, C>(K, A + r * ars, ars, aks, B, ldb, Cm + r * ldc, ldc, add);
  for (; r + 4 <= M; r += 4) gemmTile<4, C>(K, A + r * ars, ars, aks, B, ldb, Cm + r * ldc, ldc, add);
  for (; r + 2 <= M; r += 2) gemmTile<2, C>(K, A + r * ars, ars, aks, B, ldb, Cm + r * ldc, ldc, add);
}

/** C[M, N] (+)= A(M x K) B[K, N]; M a multiple of 4, N of PAD. */
void gemm(int M, int N, int K, const float* A, ptrdiff_t ars, ptrdiff_t aks, const float* B, ptrdiff_t ldb, float* Cm,
          ptrdiff_t ldc, bool add) {
  const int nv = N / FL;
  for (int c = 0; c < nv; c += CMAX) {
    const float* b = B + c * FL;
    float* o = Cm + c * FL;
    switch (std::min(CMAX, nv - c)) {
      case 4: gemmCols<4>(M, K, A, ars, aks, b, ldb, o, ldc, add); break;
      case 3: gemmCols<3>(M, K, A, ars, aks, b, ldb, o, ldc, add); break;
      case 2: gemmCols<2>(M, K, A, ars, aks, b, ldb, o, ldc, add); break;
      default: gemmCols<1>(M, K, A, ars, aks, b, ldb, o, ldc, add); break;
    }
  }
}

/** True when no value in rows r0 .. r0+n-1, columns c0 .. c0+w-1 of `[*, width]` is NaN or +-inf. */
bool allFinite(const float* src, int width, int r0, int n, int c0, int w) {
  uint32_t bad = 0;
  for (int j = 0; j < n; j++) {
    const uint32_t* s = reinterpret_cast<const uint32_t*>(src + static_cast<size_t>(r0 + j) * width + c0);
    for (int d = 0; d < w; d++) bad |= (s[d] & 0x7f800000u) == 0x7f800000u;
  }
  return bad == 0;
}

struct BlockScratch {
  std::vector<float> kt, vt, kr, vr, q, g, s, dp, o, dk, dv, rowA, rowB;
  std::vector<int> lo, hi;
  template <class T>
  static T* get(std::vector<T>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  }
  /** Key-side buffers `[hd, np]` (transposed) or `[np, hdp]` (rows), query-side `[rpMax, hdp]`, scores `[rpMax, np]`, per row `[rpMax]`. */
  struct Sizes { size_t keysT, keys, rows, scores, perRow; };
  static Sizes sizes(int hd, int np, int hdp, int rpMax) {
    const size_t npz = static_cast<size_t>(np), r = static_cast<size_t>(rpMax);
    return {static_cast<size_t>(hd) * npz, npz * hdp, r * hdp, r * npz, r};
  }
};
thread_local BlockScratch btls;

/** rows r0 .. r0+n-1, columns c0 .. c0+hd-1 of `[*, width]` -> zero-padded [np, hdp] and/or [hd, np]. */
void pack(const float* src, int width, int r0, int n, int c0, int hd, int np, int hdp, float* rows, float* cols) {
  if (rows) std::fill(rows, rows + static_cast<size_t>(np) * hdp, 0.f);
  if (cols) std::fill(cols, cols + static_cast<size_t>(hd) * np, 0.f);
  for (int j = 0; j < n; j++) {
    const float* s = src + static_cast<size_t>(r0 + j) * width + c0;
    if (rows) std::copy(s, s + hd, rows + static_cast<size_t>(j) * hdp);
    if (cols)
      for (int d = 0; d < hd; d++) cols[static_cast<size_t>(d) * np + j] = s[d];
  }
}

/** The blocked path's sizes of an item: keys padded to np, head dim to hdp, bt tokens (rows <= rpMax) a query block. */
struct BlockDims { int hd, g, r0, n, qW, kW, np, hdp, bt, rpMax; };
BlockDims blockDims(const Item& it) {
  const int bt = std::max(1, BLOCK_ROWS / it.g);
  return {it.hd, it.g, it.r0, it.n, it.qW, it.kW, roundUp(it.n, PAD), roundUp(it.hd, PAD), bt, roundUp(bt * it.g, 4)};
}

/** A query block: its rows (tokens x g), rows padded to 4, and the union [j0, j0 + W) of the keys they see. */
struct QueryBlock { int rows, Rp, j0, W; };

/** Query block of tokens t0 .. t0+nt-1: per-row visible ranges (padded rows empty) in lo / hi. */
QueryBlock blockRanges(const FlashTrainParams& p, int t0, int nt, int n, int g, int np, int* lo, int* hi) {
  const int rows = nt * g, Rp = roundUp(rows, 4);
  int j0, W;
  int ulo = n, uhi = 0;
  for (int r = 0; r < Rp; r++) {
    if (r < nt * g) {
      visible(p, t0 + r / g, n, lo[r], hi[r]);
      if (hi[r] > lo[r]) { ulo = std::min(ulo, lo[r]); uhi = std::max(uhi, hi[r]); }
    } else {
      lo[r] = hi[r] = 0;
    }
  }
  if (uhi <= ulo) { j0 = 0; W = 0; }
  else { j0 = ulo / PAD * PAD; W = std::min(np, roundUp(uhi, PAD)) - j0; }
  return {rows, Rp, j0, W};
}

/** Lane mask of keys jb + lane within [lo, hi). */
inline fvi laneValid(int jb, int lo, int hi) {
  const fvi j = FIOTA + fiset1(jb);
  return (j >= fiset1(lo)) & (j < fiset1(hi));
}

void forwardBlocked(const FlashTrainParams& p, const Item& it) {
  const int kh = it.kh;
  const auto [hd, g, r0, n, qW, kW, np, hdp, bt, rpMax] = blockDims(it);
  BlockScratch& s = btls;
  const BlockScratch::Sizes z = BlockScratch::sizes(hd, np, hdp, rpMax);
  float *Kt = s.get(s.kt, z.keysT), *V = s.get(s.vr, z.keys), *Q = s.get(s.q, z.rows), *S = s.get(s.s, z.scores), *O = s.get(s.o, z.rows);
  float *M = s.get(s.rowA, z.perRow), *L = s.get(s.rowB, z.perRow);
  int *lo = s.get(s.lo, z.perRow), *hi = s.get(s.hi, z.perRow);
  pack(p.k, kW, r0, n, kh * hd, hd, np, hdp, nullptr, Kt);
  pack(p.v, kW, r0, n, kh * hd, hd, np, hdp, V, nullptr);
  const fv ninf = fset1(-std::numeric_limits<float>::infinity());
  for (int t0 = 0; t0 < n; t0 += bt) {
    const auto [rows, Rp, j0, W] = blockRanges(p, t0, std::min(bt, n - t0), n, g, np, lo, hi);
    std::fill(Q, Q + static_cast<size_t>(Rp) * hdp, 0.f);
    for (int r = 0; r < rows; r++) {
      const float* src = p.q + static_cast<size_t>(r0 + t0 + r / g) * qW + static_cast<size_t>(kh * g + r % g) * hd;
      float* dst = Q + static_cast<size_t>(r) * hdp;
      for (int d = 0; d < hd; d++) dst[d] = src[d] * p.scale;
    }
    if (W > 0) {
      gemm(Rp, W, hd, Q, hdp, 1, Kt + j0, np, S, W, false);
      for (int r = 0; r < Rp; r++) {
        float* sr = S + static_cast<size_t>(r) * W;
        fv mv = ninf;
        for (int v = 0; v < W; v += FL) {
          const fvi ok = laneValid(j0 + v, lo[r], hi[r]);
          mv = fmaxv(mv, ok ? fload(sr + v) : ninf);
        }
        const float m = fhmax(mv);
        fv sum = fv{};
        for (int v = 0; v < W; v += FL) {
          const fvi ok = laneValid(j0 + v, lo[r], hi[r]);
          const fv e = ok ? fexp(fload(sr + v) - m) : fv{};
          fstore(sr + v, e);
          sum += e;
        }
        M[r] = m;
        L[r] = fhsum(sum);
      }
      gemm(Rp, hdp, W, S, W, 1, V + static_cast<size_t>(j0) * hdp, hdp, O, hdp, false);
    } else {
      std::fill(O, O + static_cast<size_t>(Rp) * hdp, 0.f);
      for (int r = 0; r < Rp; r++) { M[r] = -std::numeric_limits<float>::infinity(); L[r] = 0.f; }
    }
    for (int r = 0; r < rows; r++) {
      const int t = r0 + t0 + r / g, h = kh * g + r % g;
      float* dst = p.out + static_cast<size_t>(t) * qW + static_cast<size_t>(h) * hd;
      const float* src = O + static_cast<size_t>(r) * hdp;
      const float inv = 1.f / L[r];
      for (int d = 0; d < hd; d++) dst[d] = src[d] * inv;
      p.lse[static_cast<size_t>(t) * p.nHeads + h] = M[r] + std::log(L[r]);
    }
  }
}

void backwardBlocked(const FlashTrainParams& p, const Item& it) {
  const int kh = it.kh;
  const auto [hd, g, r0, n, qW, kW, np, hdp, bt, rpMax] = blockDims(it);
  BlockScratch& s = btls;
  const BlockScratch::Sizes z = BlockScratch::sizes(hd, np, hdp, rpMax);
  float *Kt = s.get(s.kt, z.keysT), *Vt = s.get(s.vt, z.keysT), *K = s.get(s.kr, z.keys), *dK = s.get(s.dk, z.keys), *dV = s.get(s.dv, z.keys);
  float *Q = s.get(s.q, z.rows), *G = s.get(s.g, z.rows), *S = s.get(s.s, z.scores), *DP = s.get(s.dp, z.scores), *dQ = s.get(s.o, z.rows);
  float *Dr = s.get(s.rowA, z.perRow), *Lr = s.get(s.rowB, z.perRow);
  int *lo = s.get(s.lo, z.perRow), *hi = s.get(s.hi, z.perRow);
  pack(p.k, kW, r0, n, kh * hd, hd, np, hdp, K, Kt);
  pack(p.v, kW, r0, n, kh * hd, hd, np, hdp, nullptr, Vt);
  std::fill(dK, dK + static_cast<size_t>(np) * hdp, 0.f);
  std::fill(dV, dV + static_cast<size_t>(np) * hdp, 0.f);
  const float scale = p.scale;
  for (int t0 = 0; t0 < n; t0 += bt) {
    const auto [rows, Rp, j0, W] = blockRanges(p, t0, std::min(bt, n - t0), n, g, np, lo, hi);
    std::fill(Q, Q + static_cast<size_t>(Rp) * hdp, 0.f);
    std::fill(G, G + static_cast<size_t>(Rp) * hdp, 0.f);
    for (int r = 0; r < Rp; r++) { Dr[r] = 0.f; Lr[r] = 0.f; }
    for (int r = 0; r < rows; r++) {
      const int t = r0 + t0 + r / g, h = kh * g + r % g;
      const size_t qo = static_cast<size_t>(t) * qW + static_cast<size_t>(h) * hd;
      float *qd = Q + static_cast<size_t>(r) * hdp, *gd = G + static_cast<size_t>(r) * hdp;
      float D = 0.f;
      for (int d = 0; d < hd; d++) { qd[d] = p.q[qo + d]; gd[d] = p.dy[qo + d]; D += gd[d] * p.out[qo + d]; }
      Dr[r] = D;
      Lr[r] = p.lse[static_cast<size_t>(t) * p.nHeads + h];
    }
    if (W == 0) {
      for (int r = 0; r < rows; r++) {
        const int t = r0 + t0 + r / g, h = kh * g + r % g;
        float* dst = p.dq + static_cast<size_t>(t) * qW + static_cast<size_t>(h) * hd;
        std::fill(dst, dst + hd, 0.f);
      }
      continue;
    }
    gemm(Rp, W, hd, Q, hdp, 1, Kt + j0, np, S, W, false);
    gemm(Rp, W, hd, G, hdp, 1, Vt + j0, np, DP, W, false);
    for (int r = 0; r < Rp; r++) {
      float *sr = S + static_cast<size_t>(r) * W, *dr = DP + static_cast<size_t>(r) * W;
      const float l = Lr[r], D = Dr[r];
      for (int v = 0; v < W; v += FL) {
        const fvi ok = laneValid(j0 + v, lo[r], hi[r]);
        const fv pj = fexp(fload(sr + v) * scale - l);
        const fv ds = pj * (fload(dr + v) - D) * scale;
        fstore(sr + v, ok ? pj : fv{});
        fstore(dr + v, ok ? ds : fv{});
      }
    }
    // dV[j] += sum_r P[r, j] dO[r], dK[j] += sum_r dS[r, j] Q[r], dQ[r] = sum_j dS[r, j] K[j]
    gemm(W, hdp, Rp, S, 1, W, G, hdp, dV + static_cast<size_t>(j0) * hdp, hdp, true);
    gemm(W, hdp, Rp, DP, 1, W, Q, hdp, dK + static_cast<size_t>(j0) * hdp, hdp, true);
    gemm(Rp, hdp, W, DP, W, 1, K + static_cast<size_t>(j0) * hdp, hdp, dQ, hdp, false);
    for (int r = 0; r < rows; r++) {
      const int t = r0 + t0 + r / g, h = kh * g + r % g;
      float* dst = p.dq + static_cast<size_t>(t) * qW + static_cast<size_t>(h) * hd;
      std::copy(dQ + static_cast<size_t>(r) * hdp, dQ + static_cast<size_t>(r) * hdp + hd, dst);
    }
  }
  it.storeKvGrads(p, dK, dV, hdp);
}

/** The item's inputs (K, V columns of its KV head; q and, backward, dy columns of its heads) are all finite. */
bool itemFinite(const FlashTrainParams& p, const Item& it, bool backward) {
  const auto& [b, kh, hd, g, r0, n, qW, kW] = it;
  return allFinite(p.k, kW, r0, n, kh * hd, hd) && allFinite(p.v, kW, r0, n, kh * hd, hd) &&
         allFinite(p.q, qW, r0, n, kh * g * hd, g * hd) && (!backward || allFinite(p.dy, qW, r0, n, kh * g * hd, g * hd));
}

void forwardItem(const FlashTrainParams& p, int item) {
  const Item it = Item::of(p, item);
  if (itemFinite(p, it, false)) forwardBlocked(p, it);
  else forwardItemRef(p, item);
}

void backwardItem(const FlashTrainParams& p, int item) {
  const Item it = Item::of(p, item);
  if (itemFinite(p, it, true)) backwardBlocked(p, it);
  else backwardItemRef(p, item);
}

}  // namespace

void flashAttentionTrainForward(const FlashTrainParams& p) {
  const std::vector<int> items = itemOrder(p);
  pool().parallelFor(static_cast<int>(items.size()), [&](int i) { forwardItem(p, items[i]); });
}

void flashAttentionTrainBackward(const FlashTrainParams& p) {
  const std::vector<int> items = itemOrder(p);
  pool().parallelFor(static_cast<int>(items.size()), [&](int i) { backwardItem(p, items[i]); });
}
