/* The wasm sgemm (sgemm.c), also used by decoder_steps.c. */
#ifndef TFJS_ATTENTION_WASM_SGEMM_H
#define TFJS_ATTENTION_WASM_SGEMM_H
#include "simd.h"

/* out[M, N] = a[M, K] · op(b) (+ bias); scratch: sgemm_scratch_floats(M, N, K, 0) floats. */
void sgemm_rows(const float* a, const float* b, const float* bias, float* out, int M, int N, int K, int transposeB, float* scratch);
int sgemm_scratch_floats(int M, int N, int K, int transposeA);
/* out[:, n0 : n1) = (residual +) (bias +) a · op(b)[:, n0 : n1); scratch: sgemm_cols_scratch_floats(n1 - n0) floats. */
void sgemm_cols(const float* a, const float* b, const float* bias, const float* residual, float* out,
                int M, int N, int K, int transposeB, int n0, int n1, float* scratch);
int sgemm_cols_scratch_floats(int cols);
#endif
