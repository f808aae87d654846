// Bounds checks of the N-API entry points (binding.cc): every array the kernels will read or write
// is checked against the integer arguments before the call, so no forged object or stale view
// can make a kernel touch memory outside its arrays. The TypeScript op layer checks the same
// things first with friendlier messages; these checks are the last line, not the usual one.
// Each returns nullptr when the arguments are safe, else a message naming the argument.
#pragma once
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <string>

#include "attention.h"
#include "flash_train.h"

/** A typed array argument: data, element count, and whether null was passed. */
struct ArrayArg {
  void* data = nullptr;
  size_t len = 0;
  bool null = true;
};

namespace argcheck {

inline std::string fmt(const char* f, long long a, long long b) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

/** `name` holds at least `need` elements (need computed in 64 bits, negative counts rejected). */
inline bool enough(std::string& err, const char* name, const ArrayArg& a, long long need) {
  if (need < 0) { err = std::string(name) + " size is negative"; return false; }
  if (static_cast<long long>(a.len) < need) {
    err = std::string(name) + fmt(" has %lld elements, needs %lld", static_cast<long long>(a.len), need);
    return false;
  }
  return true;
}

/**
 * rowOff [batch + 1] from 0 to T, non-decreasing; start [batch] >= 0; every page a sequence's
 * positions 0 .. start + n - 1 live on is in the page table (< maxPages) and a page id of a pool of
 * `numPages` pages. Shared by both paged kernels.
 */
inline bool pagedRows(std::string& err, int batch, long long T, const int32_t* rowOff, size_t rowLen, const int32_t* start,
                      size_t startLen, const int32_t* numNew, const int32_t* pageTable, size_t ptLen, int maxPages,
                      int pageSize, long long numPages) {
  if (batch < 0 || maxPages < 0 || pageSize < 1) { err = fmt("batch (%lld) / pageSize (%lld) out of range", batch, pageSize); return false; }
  if (rowLen < static_cast<size_t>(batch) + 1 || startLen < static_cast<size_t>(batch)) {
    err = fmt("rowOffsets (%lld) or startPositions is shorter than the batch (%lld)", static_cast<long long>(rowLen), batch);
    return false;
  }
  if (ptLen < static_cast<size_t>(batch) * static_cast<size_t>(maxPages)) {
    err = fmt("pageTable has %lld entries, needs batch * maxPages (%lld)", static_cast<long long>(ptLen),
              static_cast<long long>(batch) * maxPages);
    return false;
  }
  if (rowOff[0] != 0 || rowOff[batch] != T) { err = fmt("rowOffsets must run from 0 to T (%lld), ends at %lld", T, rowOff[batch]); return false; }
  for (int b = 0; b < batch; b++) {
    const long long n = static_cast<long long>(rowOff[b + 1]) - rowOff[b];
    if (n < 0) { err = fmt("rowOffsets decreases at entry %lld (%lld)", b, rowOff[b + 1]); return false; }
    if (numNew != nullptr && numNew[b] != n) { err = fmt("numNewTokens[%lld] (%lld) differs from the rowOffsets step", b, numNew[b]); return false; }
    if (start[b] < 0) { err = fmt("startPositions[%lld] (%lld) is negative", b, start[b]); return false; }
    const long long ctx = static_cast<long long>(start[b]) + n;
    const long long pages = (ctx + pageSize - 1) / pageSize;
    if (pages > maxPages) { err = fmt("entry %lld needs %lld pages, more than maxPages", b, pages); return false; }
    for (long long i = 0; i < pages; i++) {
      const int32_t page = pageTable[static_cast<size_t>(b) * maxPages + i];
      if (page < 0 || page >= numPages) { err = fmt("pageTable entry of sequence %lld holds page %lld, not a page of the pool", b, page); return false; }
    }
  }
  return true;
}

/** Largest start + n over the batch (positions a kernel reads cos/sin or keys at). */
inline long long maxContext(int batch, const int32_t* rowOff, const int32_t* start) {
  long long m = 0;
  for (int b = 0; b < batch; b++) m = std::max<long long>(m, static_cast<long long>(start[b]) + rowOff[b + 1] - rowOff[b]);
  return m;
}

inline bool heads(std::string& err, int nHeads, int nKv, int D) {
  if (nKv < 1 || nHeads < 1 || D < 1 || nHeads % nKv != 0) { err = fmt("nHeads (%lld) must be a positive multiple of nKvHeads (%lld), headDim >= 1", nHeads, nKv); return false; }
  return true;
}

}  // namespace argcheck
