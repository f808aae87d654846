// Small-M matrix product for decode steps: C[M, N] = op(A)[M, K] · op(B) (+ bias), M <= GEMV_MAX_M.
//
// A decode step multiplies a handful of rows by every weight of the model once, so the time is
// the weight's trip from memory: the packed sgemm (matmul.cc) would read B, write a packed copy and
// read that again. Here each weight element is read exactly once per call for all M rows, straight
// from its row-major storage, in contiguous blocks claimed dynamically by the pool's threads
// (several blocks per thread, so a thread the OS preempts on a busy machine does not stall the call).
//
// B [K, N] (projections, MLP kernels `[in, out]`), 4 rows of B at a time,
// P[m, :] += Σ_4 A[m, k+i] · B[k+i, :]: for M <= 3, K split into blocks of whole rows (one
// contiguous stretch of B each) with a partial P per block, then C = Σ partials in block order
// (deterministic); for M >= 4, column ranges with C itself as P (its rows stay in L1). Bias last.
// B [N, K] (transposed, e.g. the LM head [vocab, hidden]): ranges of 8 weight rows; 8 (M <= 2) or 4
// rows at a time, dot products with up to 4 rows of A held in L1 (at most 16 vector accumulators),
// horizontal sums at the end.
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

/** P[m, n0..n1) = Σ_{k0 <= k < k1} A[m, k] · B[k, n0..n1) over B [K, N] (P's rows N apart). */
void blockKN(int M, int N, int K, const float* A, const float* B, float* P, int k0, int k1, int n0, int n1) {
  const int w = n1 - n0;
  B += n0;
  P += n0;
  for (int m = 0; m < M; m++) std::memset(P + static_cast<size_t>(m) * N, 0, sizeof(float) * w);
  const int nv = w - w % VLEN;
  int k = k0;
  for (; k + 4 <= k1; k += 4) {
    const float* b0 = B + static_cast<size_t>(k) * N;
    const float* b1 = b0 + N;
    const float* b2 = b1 + N;
    const float* b3 = b2 + N;
    for (int m = 0; m < M; m++) {
      const float* a = A + static_cast<size_t>(m) * K + k;
      const float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
      float* c = P + static_cast<size_t>(m) * N;
      int j = 0;
      for (; j < nv; j += VLEN) {
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
  for (; k < k1; k++) {
    const float* b0 = B + static_cast<size_t>(k) * N;
    for (int m = 0; m < M; m++) {
      const float a0 = A[static_cast<size_t>(m) * K + k];
      float* c = P + static_cast<size_t>(m) * N;
      for (int j = 0; j < w; j++) c[j] += a0 * b0[j];
    }
  }
}

thread_local std::vector<float> tPartials;  // per calling thread: the K blocks' partial products

/**
 * B [K, N], few rows: K split into blocks (several per thread, claimed dynamically, so a thread the
 * OS preempts does not hold the call up), each streaming one contiguous block of B into its own
 * partial [M, N]; then C = Σ partials in block order (deterministic).
 */
void gemvKNBlocks(int M, int N, int K, const float* A, const float* B, float* C, int threads) {
  const int blocks = threads <= 1 ? 1 : std::max(1, std::min(threads * 4, K / 32));
  const size_t mn = static_cast<size_t>(M) * N;
  if (blocks == 1) { blockKN(M, N, K, A, B, C, 0, K, 0, N); return; }
  if (tPartials.size() < mn * blocks) tPartials.resize(mn * blocks);
  float* parts = tPartials.data();
  pool().parallelFor(blocks, [&](int p) {
    const int k0 = static_cast<int>(static_cast<long>(K) * p / blocks) & ~3;
    const int k1 = p + 1 == blocks ? K : static_cast<int>(static_cast<long>(K) * (p + 1) / blocks) & ~3;
    blockKN(M, N, K, A, B, parts + mn * p, k0, k1, 0, N);
  });
  std::memcpy(C, parts, sizeof(float) * mn);
  for (int p = 1; p < blocks; p++) {
    const float* q = parts + mn * p;
    for (size_t i = 0; i < mn; i++) C[i] += q[i];
  }
}

/** B [K, N]: K blocks for up to 3 rows, column ranges for more; then the bias. */
void gemvKN(int M, int N, int K, const float* A, const float* B, const float* bias, float* C, int threads) {
  if (M >= 4 && threads > 1) {
    // several rows: C [M, N] would not stay in L1 next to a partial per block; split the columns
    // instead (ranges of whole cache lines, 2 per thread), each range's C rows stay in L1
    const int units = (N + 15) / 16, parts = std::max(1, std::min(threads * 2, units));
    pool().parallelFor(parts, [&](int p) {
      const int n0 = std::min(N, static_cast<int>(static_cast<long>(units) * p / parts) * 16);
      const int n1 = std::min(N, static_cast<int>(static_cast<long>(units) * (p + 1) / parts) * 16);
      if (n0 < n1) blockKN(M, N, K, A, B, C, 0, K, n0, n1);
    });
  } else {
    gemvKNBlocks(M, N, K, A, B, C, threads);
  }
  if (bias) {  // added after the sum, as the packed sgemm does (same rounding)
    for (int m = 0; m < M; m++) {
      float* c = C + static_cast<size_t>(m) * N;
      for (int j = 0; j < N; j++) c[j] += bias[j];
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

void gemvSmallM(int M, int N, int K, const float* A, bool transA, const float* B, bool transB, const float* bias, float* C,
                bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (accumulate) {  // C += product: into a scratch [M, N] (a few rows), then one add (cheap next to streaming B)
    thread_local std::vector<float> tSum;
    const size_t mn = static_cast<size_t>(M) * N;
    if (tSum.size() < mn) tSum.resize(mn);
    gemvSmallM(M, N, K, A, transA, B, transB, bias, tSum.data(), false);
    const float* s = tSum.data();
    for (size_t i = 0; i < mn; i++) C[i] += s[i];
    return;
  }
  std::vector<float> at;
  if (transA && M > 1) {  // A [K, M] -> [M, K] (M rows of K: small)
    at.resize(static_cast<size_t>(M) * K);
    for (int k = 0; k < K; k++) for (int m = 0; m < M; m++) at[static_cast<size_t>(m) * K + k] = A[static_cast<size_t>(k) * M + m];
    A = at.data();
  }
  ThreadPool& tp = pool();
  const bool serial = 2.0 * M * N * K < SERIAL_FLOPS;
  const int threads = serial ? 1 : tp.active();
  if (!transB) { gemvKN(M, N, K, A, B, bias, C, threads); return; }
  // B [N, K]: ranges of 8 weight rows, several per thread (claimed dynamically)
  const int align = 8;
  const int units = (N + align - 1) / align;
  const int parts = std::max(1, std::min(threads == 1 ? 1 : threads * 4, units));
  auto range = [&](int p, int* n0, int* n1) {
    *n0 = std::min(N, static_cast<int>(static_cast<long>(units) * p / parts) * align);
    *n1 = std::min(N, static_cast<int>(static_cast<long>(units) * (p + 1) / parts) * align);
  };
  auto work = [&](int p) {
    int n0, n1;
    range(p, &n0, &n1);
    if (n0 >= n1) return;
    rowsNK(M, N, K, A, B, bias, C, n0, n1);
  };
  if (parts == 1) work(0);
  else tp.parallelFor(parts, work);
}
