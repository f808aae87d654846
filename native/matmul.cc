// sgemm for the projection kernel: C = op(A) · op(B) (+ bias), BLIS-style.
//
// Loops (outer to inner): column blocks of N (NC) -> slices of K (KC) -> [pack the slice of op(B)
// into NR-wide panels, in parallel] -> work items (a block of MC rows x a range of panels, in
// parallel) -> [pack the item's rows of op(A) into MR-tall panels] -> NR panels -> MR panels ->
// micro-kernel (with `accumulate` every slice adds, so C += op(A) op(B): a residual in place). The micro-kernel keeps an MR x NR tile of C in registers (two vectors per row) and
// streams one packed column of A (MR floats, broadcast) and one packed row of B (NR floats) per k:
// 2 * MR FMAs for 2 vector loads and MR broadcasts. Transposes cost nothing extra: they only change
// how the packing reads A and B. The first K slice stores C (+ bias), later slices add to it.
//
// ISA: GCC/Clang vector extensions sized by what the compiler targets (binding.gyp builds with
// -march=native): AVX-512 -> 16 lanes, 12 x 32 tile (24 accumulators of 32 zmm registers);
// AVX/AVX2 -> 8 lanes, 6 x 16 tile (12 of 16 ymm); anything else -> 4 lanes, 6 x 8 tile (SSE, NEON).
//
// Work split: row blocks sized so their count is a multiple of the thread count (2 blocks of 84
// rows for M = 320 would leave one thread idle for a third of the call), up to 4 per thread (of at
// least 4 x MR rows) so a preempted thread's share moves to the other; when there are fewer row
// blocks than threads (small M), each block's panels are split across items too. M <= 16 goes to
// the weight-streaming GEMV (gemv.cc).
#include "matmul.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "gemv.h"
#include "aligned_scratch.h"
#include "pool.h"

namespace {

#if defined(__AVX512F__)
constexpr int VB = 64, MR = 12;
#elif defined(__AVX__)
constexpr int VB = 32, MR = 6;
#else
constexpr int VB = 16, MR = 6;
#endif
typedef float vf __attribute__((vector_size(VB)));
typedef float vfu __attribute__((vector_size(VB), aligned(4)));
constexpr int VLEN = VB / 4;
constexpr int NR = 2 * VLEN;
constexpr int KC = 256;     // K slice: a packed B panel (KC x NR) stays in L1 while the item's A panels stream from L2
constexpr int MC_MAX = 144; // rows per item: its packed A (MC x KC) stays in L2
constexpr int NC = 4096;    // columns per packed B block
constexpr double SERIAL_FLOPS = 4e5;  // below this, one thread (the pool's wake-up costs more)

inline vf loadu(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void storeu(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }
inline vf loada(const float* p) { return *reinterpret_cast<const vf*>(p); }

thread_local AlignedScratch gPackB;  // per calling thread (its pool's helpers get the pointer)
thread_local AlignedScratch tPackA;  // per thread

/** op(B)[pc .. pc+kc, j0 .. j0+nr] -> dst[k * NR + c], zero columns past nr. */
void packB(const float* B, bool transB, int N, int K, int pc, int kc, int j0, int nr, float* dst) {
  if (!transB) {  // B [K, N]: rows of op(B) are contiguous
    const float* src = B + static_cast<size_t>(pc) * N + j0;
    for (int k = 0; k < kc; k++, src += N, dst += NR) {
      if (nr == NR) { storeu(dst, loadu(src)); storeu(dst + VLEN, loadu(src + VLEN)); }
      else { for (int c = 0; c < nr; c++) dst[c] = src[c]; for (int c = nr; c < NR; c++) dst[c] = 0.f; }
    }
    return;
  }
  // B [N, K]: column c of the panel is row j0 + c of B
  for (int c = 0; c < nr; c++) {
    const float* src = B + static_cast<size_t>(j0 + c) * K + pc;
    for (int k = 0; k < kc; k++) dst[k * NR + c] = src[k];
  }
  for (int c = nr; c < NR; c++) for (int k = 0; k < kc; k++) dst[k * NR + c] = 0.f;
}

/** op(A)[i0 .. i0+mr, pc .. pc+kc] -> dst[k * MR + r], zero rows past mr. */
void packA(const float* A, bool transA, int M, int K, int pc, int kc, int i0, int mr, float* dst) {
  if (transA) {  // A [K, M]: a column of op(A) is contiguous
    const float* src = A + static_cast<size_t>(pc) * M + i0;
    for (int k = 0; k < kc; k++, src += M, dst += MR) {
      for (int r = 0; r < mr; r++) dst[r] = src[r];
      for (int r = mr; r < MR; r++) dst[r] = 0.f;
    }
    return;
  }
  for (int r = 0; r < mr; r++) {
    const float* src = A + static_cast<size_t>(i0 + r) * K + pc;
    for (int k = 0; k < kc; k++) dst[k * MR + r] = src[k];
  }
  for (int r = mr; r < MR; r++) for (int k = 0; k < kc; k++) dst[k * MR + r] = 0.f;
}

/** C[0 .. mr, 0 .. nr] (=|+=) ap · bp (+ bias, when given) over kc; `store` overwrites C, else adds to it. */
void micro(int kc, const float* __restrict ap, const float* __restrict bp, float* c, size_t ldc, int mr, int nr,
           bool store, const float* bias) {
  vf c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++) { c0[r] = vf{}; c1[r] = vf{}; }
#pragma GCC unroll 2
  for (int k = 0; k < kc; k++) {
    const vf b0 = loada(bp), b1 = loada(bp + VLEN);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      const float a = ap[r];
      c0[r] += a * b0;
      c1[r] += a * b1;
    }
    ap += MR;
    bp += NR;
  }
  if (mr == MR && nr == NR) {
    vf bias0 = vf{}, bias1 = vf{};
    if (bias) { bias0 = loadu(bias); bias1 = loadu(bias + VLEN); }
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      float* cr = c + r * ldc;
      if (store) { storeu(cr, c0[r] + bias0); storeu(cr + VLEN, c1[r] + bias1); }
      else if (bias) { storeu(cr, loadu(cr) + (c0[r] + bias0)); storeu(cr + VLEN, loadu(cr + VLEN) + (c1[r] + bias1)); }
      else { storeu(cr, loadu(cr) + c0[r]); storeu(cr + VLEN, loadu(cr + VLEN) + c1[r]); }
    }
    return;
  }
  alignas(64) float t[MR * NR];
  for (int r = 0; r < MR; r++) { storeu(t + r * NR, c0[r]); storeu(t + r * NR + VLEN, c1[r]); }
  for (int r = 0; r < mr; r++) {
    float* cr = c + r * ldc;
    const float* tr = t + r * NR;
    if (store) for (int j = 0; j < nr; j++) cr[j] = tr[j] + (bias ? bias[j] : 0.f);
    else for (int j = 0; j < nr; j++) cr[j] += bias ? tr[j] + bias[j] : tr[j];
  }
}

inline int ceilDiv(int a, int b) { return (a + b - 1) / b; }

}  // namespace

void sgemm(int M, int N, int K, const float* A, bool transA, const float* B, bool transB, const float* bias, float* C,
           bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int i = 0; i < M; i++) {
      float* cr = C + static_cast<size_t>(i) * N;
      if (accumulate) { if (bias) for (int j = 0; j < N; j++) cr[j] += bias[j]; }
      else if (bias) std::memcpy(cr, bias, sizeof(float) * N);
      else std::memset(cr, 0, sizeof(float) * N);
    }
    return;
  }
  if (M <= GEMV_MAX_M) { gemvSmallM(M, N, K, A, transA, B, transB, bias, C, accumulate); return; }  // decode: stream B once
  ThreadPool& tp = pool();
  const bool serial = 2.0 * M * N * K < SERIAL_FLOPS;
  const int threads = serial ? 1 : tp.active();
  auto run = [&](int n, const std::function<void(int)>& fn) {
    if (serial || n == 1) { for (int i = 0; i < n; i++) fn(i); }
    else tp.parallelFor(n, fn);
  };
  // K slices of near-equal size (K = 320: 160 + 160, not 256 + 64)
  const int nK = ceilDiv(K, KC);
  const int kcStep = ceilDiv(K, nK);
  // row blocks: a multiple of the thread count when M is large enough to split evenly
  int nIc = ceilDiv(M, MC_MAX);
  // up to 4 row blocks per thread while each keeps >= 4 micro-tiles of rows: items are claimed
  // dynamically, so when the OS preempts one thread (a busy machine) the other takes its share
  if (threads > 1) nIc = std::max(nIc, std::min(4 * threads, M / (4 * MR)));
  if (threads > 1 && nIc % threads != 0 && M >= threads * MR * 4) nIc += threads - nIc % threads;
  nIc = std::min(nIc, ceilDiv(M, MR));
  const int mc = ceilDiv(ceilDiv(M, nIc), MR) * MR;
  nIc = ceilDiv(M, mc);
  for (int jc = 0; jc < N; jc += NC) {
    const int nc = std::min(NC, N - jc);
    const int panels = ceilDiv(nc, NR);
    const int nJ = nIc >= threads ? 1 : std::min(panels, ceilDiv(threads, nIc));  // panel ranges per row block
    const int panelsPerJ = ceilDiv(panels, nJ);
    float* bp = gPackB.get(static_cast<size_t>(kcStep) * panels * NR);
    for (int pc = 0; pc < K; pc += kcStep) {
      const int kc = std::min(kcStep, K - pc);
      const bool first = pc == 0, store = first && !accumulate;  // later slices (and accumulate) add to C
      run(panels, [&](int p) {
        const int j0 = p * NR;
        packB(B, transB, N, K, pc, kc, jc + j0, std::min(NR, nc - j0), bp + static_cast<size_t>(p) * kc * NR);
      });
      run(nIc * nJ, [&](int item) {
        const int ib = item / nJ, jb = item % nJ;
        const int i0 = ib * mc, mrows = std::min(mc, M - i0);
        const int p0 = jb * panelsPerJ, p1 = std::min(panels, p0 + panelsPerJ);
        if (p0 >= p1) return;
        const int aPanels = ceilDiv(mrows, MR);
        float* ap = tPackA.get(static_cast<size_t>(aPanels) * kc * MR);
        for (int q = 0; q < aPanels; q++) {
          packA(A, transA, M, K, pc, kc, i0 + q * MR, std::min(MR, mrows - q * MR), ap + static_cast<size_t>(q) * kc * MR);
        }
        for (int p = p0; p < p1; p++) {
          const int j = jc + p * NR, nr = std::min(NR, nc - p * NR);
          const float* bpp = bp + static_cast<size_t>(p) * kc * NR;
          for (int q = 0; q < aPanels; q++) {
            const int i = i0 + q * MR;
            micro(kc, ap + static_cast<size_t>(q) * kc * MR, bpp, C + static_cast<size_t>(i) * N + j, N,
                  std::min(MR, mrows - q * MR), nr, store, first && bias ? bias + j : nullptr);
          }
        }
      });
    }
  }
}
