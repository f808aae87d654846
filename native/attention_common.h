// Helpers shared by the attention kernels (mask ranges, page addressing).
#pragma once
#include <algorithm>
#include <cstddef>

#include "attention.h"

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

inline const float* rowPtr(const AttnParams& p, const float* pool, int b, int h, int pos) {
  int page = p.pageTable[static_cast<size_t>(b) * p.maxPages + pos / p.pageSize];
  return pool + ((static_cast<size_t>(page) * p.nKv + h) * p.pageSize + pos % p.pageSize) * p.D;
}

/** Row-major attention of one item for D % 16 == 0 (the decode kernel): see attention_rows.cc. */
bool attendItemRows(const AttnParams& p, int b, int h, int t0, int t1, int k0, int k1, float* mOut, float* lOut, float* oOut);
