// FlashAttentionRagged forward and backward for the training path (lib/training/kernels/names.ts):
// attention of packed ragged sequences over themselves, no cache, q/k/v as plain row arrays.
// Same algorithm as the TypeScript host kernel (flash_attention_ragged_ts.ts), compiled and on
// both threads: one work item per (sequence, KV head), largest sequences first (an item costs
// ~n^2), its K (and V) rows gathered once into thread-local scratch, transposed for the score
// loops so every inner loop runs over contiguous memory and vectorizes for any head dim:
//   scores  S[j]  = sum_d Q[d] * Kt[d, j]          (over the query's visible keys j)
//   forward o[d]  = sum_j p[j] * V[j, d] / sum_j p[j],  lse = max + log(sum)
//   backward (FlashAttention-2): p = exp(S - lse), dP[j] = sum_d dO[d] * Vt[d, j], D = dO . O,
//            dS = p (dP - D) scale, dQ = dS K, dK += dS Q, dV += p dO.
// Items write disjoint rows/columns of the outputs (dq rows of the group's heads, dk/dv columns of
// the KV head within the sequence's rows), so no synchronisation is needed.
#include "flash_train.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "pool.h"

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

void forwardItem(const FlashTrainParams& p, int item) {
  const int b = item / p.nKv, kh = item % p.nKv, hd = p.hd, g = p.nHeads / p.nKv;
  const int r0 = p.rowOff[b], n = p.rowOff[b + 1] - r0;
  const int qW = p.nHeads * hd, kW = p.nKv * hd;
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

void backwardItem(const FlashTrainParams& p, int item) {
  const int b = item / p.nKv, kh = item % p.nKv, hd = p.hd, g = p.nHeads / p.nKv;
  const int r0 = p.rowOff[b], n = p.rowOff[b + 1] - r0;
  const int qW = p.nHeads * hd, kW = p.nKv * hd;
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
  for (int j = 0; j < n; j++) {
    const size_t o = static_cast<size_t>(r0 + j) * kW + static_cast<size_t>(kh) * hd;
    std::copy(dK + static_cast<size_t>(j) * hd, dK + static_cast<size_t>(j + 1) * hd, p.dk + o);
    std::copy(dV + static_cast<size_t>(j) * hd, dV + static_cast<size_t>(j + 1) * hd, p.dv + o);
  }
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
