// Single-precision matrix product for the projection kernel (kernels/cpu/ProjectionMatMul.ts).
#pragma once

/**
 * C[M, N] = op(A)[M, K] · op(B)[K, N] (+ bias[N] on every row), all row-major float32.
 * A is stored [M, K], or [K, M] with transA; B is stored [K, N], or [N, K] with transB.
 * bias may be null. C must not alias A, B or bias. Runs on the shared thread pool (pool.h).
 * With `accumulate`, C += op(A) · op(B) (+ bias) instead (a residual added in place, no extra pass).
 */
void sgemm(int M, int N, int K, const float* A, bool transA, const float* B, bool transB, const float* bias, float* C,
           bool accumulate = false);

/**
 * H[M, N] = silu(A · G + gBias) * (A · U + uBias), A [M, K], G and U [K, N] row-major (a SwiGLU MLP's
 * gate and up projections with the activation in the GEMM's epilogue: the gate and up tiles stay in
 * L1, never written out). Biases may be null. Returns false, computing nothing, when M <= 16 (decode
 * rows: the GEMV path) or K exceeds one K slice of sgemm; the caller then runs sgemm twice.
 */
bool sgemmSwiGLU(int M, int N, int K, const float* A, const float* G, const float* U, const float* gBias, const float* uBias,
                 float* H);
