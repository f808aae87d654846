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
