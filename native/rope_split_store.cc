// RopeSplitStoreRagged on the CPU: per token, optional qk RMSNorm per head, rotate q and k with the
// cos/sin rows of the token's position, write k and v into their page slots, emit rotated q.
// Work is split over chunks of tokens; each token touches only its own rows and slots.
#include <algorithm>
#include <cmath>

#include "attention.h"
#include "pool.h"

namespace {

constexpr int TOKENS_PER_ITEM = 16;

// dst[0..D) = rope(norm(src)); norm only when w is set.
inline void headRope(const RopeParams& p, const float* src, float* dst, const float* w, const float* c, const float* s,
                     float* tmp) {
  const int D = p.D, half = p.rotaryDim / 2;
  const float* x = src;
  if (w) {
    float ss = 0.f;
    for (int d = 0; d < D; d++) ss += src[d] * src[d];
    float inv = 1.f / std::sqrt(ss / D + p.eps);
    for (int d = 0; d < D; d++) tmp[d] = src[d] * inv * w[d];
    x = tmp;
  }
  if (p.interleaved) {
    for (int i = 0; i < half; i++) {
      float a = x[2 * i], b = x[2 * i + 1];
      dst[2 * i] = a * c[i] - b * s[i];
      dst[2 * i + 1] = b * c[i] + a * s[i];
    }
  } else {
    for (int i = 0; i < half; i++) {
      float a = x[i], b = x[i + half];
      dst[i] = a * c[i] - b * s[i];
      dst[i + half] = b * c[i] + a * s[i];
    }
  }
  for (int d = p.rotaryDim; d < D; d++) dst[d] = x[d];
}

}  // namespace

void ropeSplitStoreRagged(const RopeParams& p) {
  const int nItems = (p.T + TOKENS_PER_ITEM - 1) / TOKENS_PER_ITEM;
  const int D = p.D, half = p.rotaryDim / 2;
  const size_t inStride = static_cast<size_t>(p.nHeads + 2 * p.nKv) * D;
  pool().parallelFor(nItems, [&](int item) {
    float tmp[1024];
    float* tmpp = D <= 1024 ? tmp : new float[D];
    int t0 = item * TOKENS_PER_ITEM, t1 = std::min(p.T, t0 + TOKENS_PER_ITEM);
    int b = static_cast<int>(std::upper_bound(p.rowOff, p.rowOff + p.batch + 1, t0) - p.rowOff) - 1;
    for (int t = t0; t < t1; t++) {
      while (t >= p.rowOff[b + 1]) b++;
      const int pos = p.start[b] + (t - p.rowOff[b]);
      const float* c = p.cos + static_cast<size_t>(pos) * half;
      const float* s = p.sin + static_cast<size_t>(pos) * half;
      const float* row = p.qkv + t * inStride;
      for (int h = 0; h < p.nHeads; h++)
        headRope(p, row + static_cast<size_t>(h) * D, p.qOut + (static_cast<size_t>(t) * p.nHeads + h) * D, p.qNormW, c,
                 s, tmpp);
      const int page = p.pageTable[static_cast<size_t>(b) * p.maxPages + pos / p.pageSize];
      const int slot = pos % p.pageSize;
      for (int h = 0; h < p.nKv; h++) {
        size_t off = ((static_cast<size_t>(page) * p.nKv + h) * p.pageSize + slot) * D;
        headRope(p, row + static_cast<size_t>(p.nHeads + h) * D, p.kPool + off, p.kNormW, c, s, tmpp);
        std::copy(row + static_cast<size_t>(p.nHeads + p.nKv + h) * D, row + static_cast<size_t>(p.nHeads + p.nKv + h + 1) * D,
                  p.vPool + off);
      }
    }
    if (tmpp != tmp) delete[] tmpp;
  });
}
