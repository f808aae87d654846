// Small-M matrix product for decode steps: C[M, N] = op(A)[M, K] · op(B) (+ bias), M <= GEMV_MAX_M.
//
// A decode step multiplies a handful of rows by every weight of the model once, so the time is
// the weight's trip from memory: the packed sgemm (matmul.cc) would read B, write a packed copy and
// read that again. Here each weight element is read exactly once per call for all M rows, straight
// from its row-major storage, and the two threads split the output columns (B [K, N]) or the
// output rows' columns = B's rows (B [N, K], e.g. the LM head [vocab, hidden]) into contiguous
// ranges, so each streams its own part of the weight front to back.
//
// B [K, N] (projections, MLP kernels `[in, out]`): C rows start at 0; then for 4 rows of
// B at a time, C[m, n0..n1) += Σ_4 A[m, k+i] · B[k+i, n0..n1): four sequential weight streams, one
// load and store of C (L1-resident) per 4 FMAs; the bias is added last.
// B [N, K] (transposed): 8 (M <= 2) or 4 weight rows at a time, dot products with up to 4 rows of
// A held in L1 (at most 16 vector accumulators), horizontal sums at the end.
#include "gemv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "pool.h"

namespace {

#if defined(__AVX512F__)
constexpr int VB = 64;
#elif defined(__AVX__)
constexpr int VB = 32;
#else
constexpr int VB = 16;
#endif
typedef float vf __attribute__((vector_size(VB)));
typedef float vfu __attribute__((vector_size(VB), aligned(4)));
constexpr int VLEN = VB / 4;
constexpr double SERIAL_FLOPS = 2e5;  // below this one thread: waking the pool costs more

inline vf loadu(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void storeu(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }
inline float hsum(vf v) {
  float s = 0.f;
  for (int i = 0; i < VLEN; i++) s += v[i];
  return s;
}

/** C[m, n0..n1) for all m over B [K, N] rows. */
void rowsKN(int M, int N, int K, const float* A, const float* B, const float* bias, float* C, int n0, int n1) {
  const int w = n1 - n0;
  for (int m = 0; m < M; m++) std::memset(C + static_cast<size_t>(m) * N + n0, 0, sizeof(float) * w);
  const int wv = w - w % VLEN;
  int k = 0;
  for (; k + 4 <= K; k += 4) {
    const float* b0 = B + static_cast<size_t>(k) * N + n0;
    const float* b1 = b0 + N;
    const float* b2 = b1 + N;
    const float* b3 = b2 + N;
    for (int m = 0; m < M; m++) {
      const float* a = A + static_cast<size_t>(m) * K + k;
      const float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
      float* c = C + static_cast<size_t>(m) * N + n0;
      int j = 0;
      for (; j < wv; j += VLEN) {
        vf acc = loadu(c + j);
        acc += a0 * loadu(b0 + j);
        acc += a1 * loadu(b1 + j);
        acc += a2 * loadu(b2 + j);
        acc += a3 * loadu(b3 + j);
        storeu(c + j, acc);
      }
      for (; j < w; j++) c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
    }
  }
  for (; k < K; k++) {
    const float* b0 = B + static_cast<size_t>(k) * N + n0;
    for (int m = 0; m < M; m++) {
      const float a0 = A[static_cast<size_t>(m) * K + k];
      float* c = C + static_cast<size_t>(m) * N + n0;
      for (int j = 0; j < w; j++) c[j] += a0 * b0[j];
    }
  }
  if (bias) {  // added after the sum, as the packed sgemm does (same rounding)
    for (int m = 0; m < M; m++) {
      float* c = C + static_cast<size_t>(m) * N + n0;
      for (int j = 0; j < w; j++) c[j] += bias[n0 + j];
    }
  }
}

/** C[m0 .. m0+MB, n .. n+nb) over B [N, K]: NB weight rows against MB rows of A (MB * NB accumulators). */
template <int MB, int NB>
void tileNK(int N, int K, const float* A, const float* B, const float* bias, float* C, int m0, int n, int nb) {
  const int kv = K - K % VLEN;
  const float* b[NB];
  for (int i = 0; i < NB; i++) b[i] = B + static_cast<size_t>(n + std::min(i, nb - 1)) * K;
  const float* a[MB];
  for (int r = 0; r < MB; r++) a[r] = A + static_cast<size_t>(m0 + r) * K;
  vf acc[MB][NB];
  for (int r = 0; r < MB; r++) for (int i = 0; i < NB; i++) acc[r][i] = vf{};
  for (int k = 0; k < kv; k += VLEN) {
    vf w[NB];
#pragma GCC unroll 8
    for (int i = 0; i < NB; i++) w[i] = loadu(b[i] + k);
#pragma GCC unroll 4
    for (int r = 0; r < MB; r++) {
      const vf x = loadu(a[r] + k);
#pragma GCC unroll 8
      for (int i = 0; i < NB; i++) acc[r][i] += x * w[i];
    }
  }
  float sums[MB][NB];  // constant indices only on acc, so it stays in registers
#pragma GCC unroll 4
  for (int r = 0; r < MB; r++) {
#pragma GCC unroll 8
    for (int i = 0; i < NB; i++) sums[r][i] = hsum(acc[r][i]);
  }
  for (int r = 0; r < MB; r++) {
    for (int i = 0; i < nb; i++) {
      float s = sums[r][i];
      for (int k = kv; k < K; k++) s += a[r][k] * b[i][k];
      C[static_cast<size_t>(m0 + r) * N + n + i] = s + (bias ? bias[n + i] : 0.f);
    }
  }
}

/** C[0..M, n0..n1) over B [N, K] rows n0..n1: each group of weight rows read once for all of A's rows (L1). */
void rowsNK(int M, int N, int K, const float* A, const float* B, const float* bias, float* C, int n0, int n1) {
  const int NB = M <= 2 ? 8 : 4;
  for (int n = n0; n < n1; n += NB) {
    const int nb = std::min(NB, n1 - n);
    int m0 = 0;
    if (M == 1) { tileNK<1, 8>(N, K, A, B, bias, C, 0, n, nb); continue; }
    if (M == 2) { tileNK<2, 8>(N, K, A, B, bias, C, 0, n, nb); continue; }
    for (; m0 + 4 <= M; m0 += 4) tileNK<4, 4>(N, K, A, B, bias, C, m0, n, nb);
    for (; m0 < M; m0++) tileNK<1, 4>(N, K, A, B, bias, C, m0, n, nb);
  }
}

}  // namespace

void gemvSmallM(int M, int N, int K, const float* A, bool transA, const float* B, bool transB, const float* bias, float* C) {
  if (M <= 0 || N <= 0) return;
  std::vector<float> at;
  if (transA && M > 1) {  // A [K, M] -> [M, K] (M rows of K: small)
    at.resize(static_cast<size_t>(M) * K);
    for (int k = 0; k < K; k++) for (int m = 0; m < M; m++) at[static_cast<size_t>(m) * K + k] = A[static_cast<size_t>(k) * M + m];
    A = at.data();
  }
  ThreadPool& tp = pool();
  const bool serial = 2.0 * M * N * K < SERIAL_FLOPS;
  const int threads = serial ? 1 : tp.active();
  // Column ranges: multiples of 16 floats (whole cache lines of a row) for B [K, N]; of 4 rows for B [N, K].
  const int align = transB ? 8 : 16;
  const int units = (N + align - 1) / align;
  const int parts = std::max(1, std::min(threads, units));
  auto range = [&](int p, int* n0, int* n1) {
    *n0 = std::min(N, static_cast<int>(static_cast<long>(units) * p / parts) * align);
    *n1 = std::min(N, static_cast<int>(static_cast<long>(units) * (p + 1) / parts) * align);
  };
  auto work = [&](int p) {
    int n0, n1;
    range(p, &n0, &n1);
    if (n0 >= n1) return;
    if (transB) rowsNK(M, N, K, A, B, bias, C, n0, n1);
    else rowsKN(M, N, K, A, B, bias, C, n0, n1);
  };
  if (parts == 1) work(0);
  else tp.parallelFor(parts, work);
}
