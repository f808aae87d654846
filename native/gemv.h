// Small-M matrix product (decode steps) for the projection kernel, see gemv.cc.
#pragma once

/** Rows of op(A) up to which sgemm (matmul.cc) hands the product to gemvSmallM. */
constexpr int GEMV_MAX_M = 16;

/**
 * C[M, N] = op(A)[M, K] · op(B)[K, N] (+ bias[N]), the same contract as sgemm (matmul.h), reading
 * each element of B once: meant for M <= GEMV_MAX_M. `accumulate`: C += the product, as sgemm's. Runs on the shared thread pool (pool.h).
 */
void gemvSmallM(int M, int N, int K, const float* A, bool transA, const float* B, bool transB, const float* bias, float* C,
                bool accumulate = false);
