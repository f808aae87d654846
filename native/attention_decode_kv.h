#pragma once
#include "attention.h"

/**
 * Decode item (sequence b, KV head h, tokens [t0, t1), keys [k0, k1)) over an int8 or float8_e4m3
 * cache with AVX-512 (attention_decode_kv.cc): writes the rows' running max mOut[M], sum lOut[M] and
 * unnormalised output oOut[M, D], as attendItemRows does. Returns false where it does not apply
 * (another dtype, D not a multiple of 64, no AVX-512BW / VBMI), and the caller takes attendItemRows.
 */
bool attendItemRowsKv(const AttnParams& p, int b, int h, int t0, int t1, int k0, int k1, float* mOut, float* lOut, float* oOut);
