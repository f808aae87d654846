// FlashAttentionRagged (training path, no cache) forward and backward; see flash_train.cc.
#pragma once
#include <cstdint>

struct FlashTrainParams {
  const float* q;        // [T, nHeads * hd]
  const float* k;        // [T, nKv * hd]
  const float* v;        // [T, nKv * hd]
  const int32_t* rowOff; // [batch + 1]
  float* out;            // forward: [T, nHeads * hd]; backward: the forward's output (read)
  float* lse;            // forward: [T, nHeads] written; backward: read
  const float* dy;       // backward: [T, nHeads * hd]
  float* dq;             // backward: [T, nHeads * hd]
  float* dk;             // backward: [T, nKv * hd]
  float* dv;             // backward: [T, nKv * hd]
  int batch, nHeads, nKv, hd;
  int mask, window, chunk;  // MASK_CODE and its W / C
  float scale;
};

void flashAttentionTrainForward(const FlashTrainParams& p);
void flashAttentionTrainBackward(const FlashTrainParams& p);
