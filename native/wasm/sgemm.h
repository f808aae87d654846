/* The wasm sgemm (sgemm.c), also used by decoder_steps.c. */
#ifndef TFJS_ATTENTION_WASM_SGEMM_H
#define TFJS_ATTENTION_WASM_SGEMM_H
#include "simd.h"

/* out[M, N] = a[M, K] · op(b) (+ bias); scratch: sgemm_scratch_floats(M, N, K, 0) floats. */
void sgemm_rows(const float* a, const float* b, const float* bias, float* out, int M, int N, int K, int transposeB, float* scratch);
int sgemm_scratch_floats(int M, int N, int K, int transposeA);
#endif
