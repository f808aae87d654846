// Fused CPU kernels: shared parameter blocks (see kernels/kernel_names.ts for the semantics).
#pragma once
#include <cstdint>

struct AttnParams {
  const float* q;         // [T, nHeads * D], rotated
  float* out;             // [T, nHeads * D]
  const float* kPool;     // [numPages, nKv, pageSize, D]
  const float* vPool;     // [numPages, nKv, pageSize, D]
  const int32_t* rowOff;  // [batch + 1]
  const int32_t* start;   // [batch]
  const int32_t* numNew;  // [batch]
  const int32_t* pageTable;  // [batch, maxPages]
  int batch, nHeads, nKv, D, pageSize, maxPages;
  int mask, window, chunk;  // MASK_CODE and its W / C
  int variant;              // 0 auto, 1 prefill, 2 decode
  float scale;
};

struct RopeParams {
  const float* qkv;       // [T, (nHeads + 2 nKv) * D]
  float* qOut;            // [T, nHeads * D]
  float* kPool;
  float* vPool;
  const float* cos;       // [maxPositions, rotaryDim / 2]
  const float* sin;
  const float* qNormW;    // [D] or null
  const float* kNormW;    // [D] or null
  const int32_t* rowOff;
  const int32_t* start;
  const int32_t* pageTable;
  int T, batch, nHeads, nKv, D, rotaryDim, interleaved, pageSize, maxPages;
  float eps;              // qk-norm epsilon, < 0 when off
};

void flashAttentionRaggedPaged(const AttnParams& p);
void ropeSplitStoreRagged(const RopeParams& p);
