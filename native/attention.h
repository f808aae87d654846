// Fused CPU kernels: shared parameter blocks (see kernels/kernel_names.ts for the semantics).
#pragma once
#include <cstdint>

struct AttnParams {
  const float* q;         // [T, nHeads * D], rotated
  float* out;             // [T, nHeads * D]
  const void* kPool;      // [numPages, nKv, pageSize, D] elements of kvDtype (kv_codec.h)
  const void* vPool;      // [numPages, nKv, pageSize, D]
  const int32_t* rowOff;  // [batch + 1]
  const int32_t* start;   // [batch]
  const int32_t* numNew;  // [batch]
  const int32_t* pageTable;  // [batch, maxPages]
  int batch, nHeads, nKv, D, pageSize, maxPages;
  int mask, window, chunk;  // MASK_CODE and its W / C
  int variant;              // 0 auto, 1 prefill, 2 decode
  float scale;
  int kvDtype;              // KvDtype (kv_codec.h): the pools' element format
  const float* kRowScales;  // int8: [numPages, nKv, pageSize] per token and KV head; else null
  const float* vRowScales;
  double kScale, vScale;    // float8_e4m3: per-tensor scales (1 otherwise)
};

struct RopeParams {
  const float* qkv;       // [T, (nHeads + 2 nKv) * D]
  float* qOut;            // [T, nHeads * D]
  void* kPool;            // [numPages, nKv, pageSize, D] elements of kvDtype (kv_codec.h)
  void* vPool;
  const float* cos;       // [maxPositions, rotaryDim / 2]
  const float* sin;
  const float* qNormW;    // [D] or null
  const float* kNormW;    // [D] or null
  const int32_t* rowOff;
  const int32_t* start;
  const int32_t* pageTable;
  int T, batch, nHeads, nKv, D, rotaryDim, interleaved, pageSize, maxPages;
  float eps;              // qk-norm epsilon, < 0 when off
  int kvDtype;            // KvDtype: rows are encoded as core/kv_dtype.ts encodeKvRow does
  float* kRowScales;      // int8: [numPages, nKv, pageSize], written per stored row; else null
  float* vRowScales;
  double kScale, vScale;  // float8_e4m3: per-tensor scales
};

void flashAttentionRaggedPaged(const AttnParams& p);
void ropeSplitStoreRagged(const RopeParams& p);
