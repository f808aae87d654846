// RopeSplitStoreRagged on the CPU: per token, optional qk RMSNorm per head, rotate q and k with the
// cos/sin rows of the token's position, write k and v into their page slots, emit rotated q.
// Work is split over chunks of tokens; each token touches only its own rows and slots. A compact
// cache (kvDtype, kv_codec.h) gets its rows encoded as core/kv_dtype.ts encodeKvRow does (int8 row
// scales written beside the pages).
#include <algorithm>
#include <cmath>
#include <vector>

#include "attention.h"
#include "kv_codec.h"
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

/**
 * Tokens [t0, t1) (batch entry b at t0): q rotated into qOut, k rotated and v stored into their
 * page slots as elements of E (kv_codec.h: float32 in place; compact formats through a float row).
 */
template <class E>
void storeTokens(const RopeParams& p, int t0, int t1, int b, float* tmp, float* krow) {
  const int D = p.D, half = p.rotaryDim / 2;
  const size_t inStride = static_cast<size_t>(p.nHeads + 2 * p.nKv) * D;
  auto* kPool = static_cast<typename E::T*>(p.kPool);
  auto* vPool = static_cast<typename E::T*>(p.vPool);
  for (int t = t0; t < t1; t++) {
    while (t >= p.rowOff[b + 1]) b++;
    const int pos = p.start[b] + (t - p.rowOff[b]);
    const float* c = p.cos + static_cast<size_t>(pos) * half;
    const float* s = p.sin + static_cast<size_t>(pos) * half;
    const float* row = p.qkv + t * inStride;
    for (int h = 0; h < p.nHeads; h++)
      headRope(p, row + static_cast<size_t>(h) * D, p.qOut + (static_cast<size_t>(t) * p.nHeads + h) * D, p.qNormW, c,
               s, tmp);
    const int page = p.pageTable[static_cast<size_t>(b) * p.maxPages + pos / p.pageSize];
    const int slot = pos % p.pageSize;
    for (int h = 0; h < p.nKv; h++) {
      const size_t si = (static_cast<size_t>(page) * p.nKv + h) * p.pageSize + slot, off = si * D;  // [numPages, nKv, pageSize]
      const float* vsrc = row + static_cast<size_t>(p.nHeads + p.nKv + h) * D;
      if constexpr (E::code == KV_F32) {
        headRope(p, row + static_cast<size_t>(p.nHeads + h) * D, kPool + off, p.kNormW, c, s, tmp);
        std::copy(vsrc, vsrc + D, vPool + off);
      } else {
        headRope(p, row + static_cast<size_t>(p.nHeads + h) * D, krow, p.kNormW, c, s, tmp);
        E::encodeRow(krow, kPool + off, p.kRowScales ? p.kRowScales + si : nullptr, p.kScale, D);
        E::encodeRow(vsrc, vPool + off, p.vRowScales ? p.vRowScales + si : nullptr, p.vScale, D);
      }
    }
  }
}

}  // namespace

void ropeSplitStoreRagged(const RopeParams& p) {
  const int nItems = (p.T + TOKENS_PER_ITEM - 1) / TOKENS_PER_ITEM;
  const int D = p.D;
  pool().parallelFor(nItems, [&](int item) {
    std::vector<float> scratch(2 * static_cast<size_t>(D));  // norm row, rotated k row
    int t0 = item * TOKENS_PER_ITEM, t1 = std::min(p.T, t0 + TOKENS_PER_ITEM);
    int b = static_cast<int>(std::upper_bound(p.rowOff, p.rowOff + p.batch + 1, t0) - p.rowOff) - 1;
    withKvType(p.kvDtype, [&](auto e) { storeTokens<decltype(e)>(p, t0, t1, b, scratch.data(), scratch.data() + D); });
  });
}
