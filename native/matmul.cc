// sgemm for the projection kernel: C = op(A) · op(B) (+ bias), BLIS-style.
//
// Loops (outer to inner): column blocks of N (NC) -> slices of K (KC) -> [pack the slice of op(B)
// into NR-wide panels and of op(A) into MR-tall panels, in one parallel pass] -> work items (a row
// block of A panels x a range of B panels, in parallel) -> NR panels -> MR panels -> micro-kernel
// (with `accumulate` every slice adds, so C += op(A) op(B): a residual in place). The micro-kernel
// keeps an MR x NR tile of C in registers (two vectors per row) and streams one packed column of A
// (MR floats, broadcast) and one packed row of B (NR floats) per k: 2 * MR FMAs for 2 vector loads
// and MR broadcasts; it prefetches its C tile's lines first. Transposes cost nothing extra: they
// only change how the packing reads A and B. The first K slice stores C (+ bias), later slices add.
//
// ISA: GCC/Clang vector extensions sized by what the compiler targets (binding.gyp builds with
// -march=native): AVX-512 -> 16 lanes, 12 x 32 tile (24 accumulators of 32 zmm registers);
// AVX/AVX2 -> 8 lanes, 6 x 16 tile (12 of 16 ymm); anything else -> 4 lanes, 6 x 8 tile (SSE, NEON).
//
// Work split: row blocks of whole MR panels, balanced, each small enough for its packed A to stay
// in L2; each row block's B panels split into ranges so there are ITEMS_PER_THREAD items of
// near-equal cost per thread, claimed dynamically (a thread the OS preempts on a busy machine
// hands its share to the other). M <= 16 goes to the weight-streaming GEMV (gemv.cc).
//
// Versions (issue 11, prefill shapes of the 135M model, this 2-core Zen 4 whose FMA peak is ~114
// GFLOP/s a core; a C++ driver alternating both builds, one thread, CPU time, machine shared):
// - KC 256 (K = 576 in 3 slices: C read and written 3 times; a B panel in L1), item = row block of
//   up to 144 rows (72 at 2 threads, 8 blocks: the last held 8 rows, so one thread idled ~1/8 of
//   the call) packing its own A: 512x960x576 70.7, 512x1536x576 74.1, 512x576x1536 77.5 GFLOP/s.
//   Now KC 768 (Zen 4's L2 feeds a B panel fast enough; one slice for K <= 768), C tile prefetch,
//   A packed once per slice, balanced items: 86.0, 88.3, 85.4 (1.11-1.21x; 2 threads, wall time
//   at load ~8: 1.02-1.38x). The micro-kernel alone runs at ~112 (98% of peak).
// - A packed by a scalar loop (~10-17% of a call with K = 1536 in perf): now 16 x 16 register
//   transposes on AVX-512, 1.02-1.08x (512x576x1536 85.0 -> 92.2), results bit-identical.
// Lost, not kept: micro-kernel broadcasting straight from A's rows (no A packing): within noise.
#include "matmul.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "gemv.h"
#include "aligned_scratch.h"
#include "pool.h"
#include "simd.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

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
constexpr int KC = 768;     // K slice: each slice after the first reads and writes C again
constexpr int A_BLOCK_FLOATS = 96 * 1024;  // a row block's packed A (mc x kc floats, 384 KiB) stays in L2
constexpr int ITEMS_PER_THREAD = 4;
constexpr int NC = 4096;    // columns per packed B block
constexpr double SERIAL_FLOPS = 4e5;  // below this, one thread (the pool's wake-up costs more)

inline vf loadu(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void storeu(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }
inline vf loada(const float* p) { return *reinterpret_cast<const vf*>(p); }

thread_local AlignedScratch gPackB, gPackA;  // per calling thread (its pool's helpers get the pointers)

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
  int k0 = 0;
#if defined(__AVX512F__)
  // 16 k at a time: MR rows (zeros past mr) transposed in registers, each k's MR floats one masked
  // store (the scalar loop below was ~10% of a prefill GEMM with K = 1536)
  static_assert(MR <= VL, "one 16 x 16 transpose covers the MR rows");
  for (; k0 + VL <= kc; k0 += VL) {
    v16 t[VL];
    for (int r = 0; r < VL; r++) t[r] = r < mr ? vload(A + static_cast<size_t>(i0 + r) * K + pc + k0) : v16{};
    transpose16(t);
    for (int k = 0; k < VL; k++) _mm512_mask_storeu_ps(dst + (k0 + k) * MR, (1u << MR) - 1, reinterpret_cast<__m512>(t[k]));
  }
#endif
  for (int r = 0; r < mr; r++) {
    const float* src = A + static_cast<size_t>(i0 + r) * K + pc;
    for (int k = k0; k < kc; k++) dst[k * MR + r] = src[k];
  }
  for (int r = mr; r < MR; r++) for (int k = k0; k < kc; k++) dst[k * MR + r] = 0.f;
}

/** C[0 .. mr, 0 .. nr] (=|+=) ap · bp (+ bias, when given) over kc; `store` overwrites C, else adds to it. */
void micro(int kc, const float* __restrict ap, const float* __restrict bp, float* c, size_t ldc, int mr, int nr,
           bool store, const float* bias) {
  vf c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++) { c0[r] = vf{}; c1[r] = vf{}; }
  // the C tile's lines (MR rows x NR floats), wanted for writing once the k loop ends: C [M, N] of a
  // prefill projection does not stay in L2, and 2 * MR loads missing at the end stalled each tile
#pragma GCC unroll 16
  for (int r = 0; r < mr; r++) {
    __builtin_prefetch(c + r * ldc, 1, 3);
    __builtin_prefetch(c + r * ldc + NR - 1, 1, 3);
  }
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

/** fn(0 .. n) on the pool, or in order on this thread when the call is `serial` (or n is 1). */
void runItems(ThreadPool& tp, bool serial, int n, const std::function<void(int)>& fn) {
  if (serial || n == 1) { for (int i = 0; i < n; i++) fn(i); }
  else tp.parallelFor(n, fn);
}

/**
 * The work split of a packed product (see the header): nIc row blocks of whole MR panels, balanced
 * (43 panels in 4 blocks: 11, 11, 11, 10), each at most A_BLOCK_FLOATS of packed A (kc deep) so it stays
 * in L2 while a block's B panels pass over it, and at least one per thread; per column block, nJ ranges
 * of B panels, ITEMS_PER_THREAD items of near-equal cost per thread, so the last items to finish are
 * short and a thread the OS preempts hands its share to the other.
 */
struct ItemGrid {
  int aPanels, nIc;
  ItemGrid(int M, int kc, int threads) : aPanels(ceilDiv(M, MR)) {
    nIc = ceilDiv(aPanels, std::max(1, A_BLOCK_FLOATS / (kc * MR)));
    if (threads > 1 && nIc < threads) nIc = std::min(aPanels, threads);
  }
  int rangesOf(int panels, int threads) const { return threads > 1 ? std::min(panels, ceilDiv(ITEMS_PER_THREAD * threads, nIc)) : 1; }
  /** Item `item` of nIc x nJ: A panels [q0, q1) x B panels [p0, p1). */
  void at(int item, int nJ, int panels, int& q0, int& q1, int& p0, int& p1) const {
    const int ib = item / nJ, jb = item % nJ;
    q0 = static_cast<int>(static_cast<long>(aPanels) * ib / nIc);
    q1 = static_cast<int>(static_cast<long>(aPanels) * (ib + 1) / nIc);
    p0 = static_cast<int>(static_cast<long>(panels) * jb / nJ);
    p1 = static_cast<int>(static_cast<long>(panels) * (jb + 1) / nJ);
  }
};

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
  auto run = [&](int n, const std::function<void(int)>& fn) { runItems(tp, serial, n, fn); };
  // K slices of near-equal size (K = 1536: 768 + 768, not 1024 + 512)
  const int nK = ceilDiv(K, KC);
  const int kcStep = ceilDiv(K, nK);
  const ItemGrid grid(M, kcStep, threads);
  const int aPanelsAll = grid.aPanels;
  float* ap = gPackA.get(static_cast<size_t>(aPanelsAll) * kcStep * MR);
  for (int jc = 0; jc < N; jc += NC) {
    const int nc = std::min(NC, N - jc);
    const int panels = ceilDiv(nc, NR);
    const int nJ = grid.rangesOf(panels, threads);
    float* bp = gPackB.get(static_cast<size_t>(kcStep) * panels * NR);
    for (int pc = 0; pc < K; pc += kcStep) {
      const int kc = std::min(kcStep, K - pc);
      const bool first = pc == 0, store = first && !accumulate;  // later slices (and accumulate) add to C
      // one parallel pass packs this slice of op(B) (shared by every item) and of op(A) (each MR panel
      // packed once, not once per item that reads it); A's panels only in the first column block
      const int aUnits = (jc == 0 || nK > 1) ? aPanelsAll : 0;  // one K slice: A packed once for every column block
      run(panels + aUnits, [&](int u) {
        if (u < panels) {
          const int j0 = u * NR;
          packB(B, transB, N, K, pc, kc, jc + j0, std::min(NR, nc - j0), bp + static_cast<size_t>(u) * kc * NR);
        } else {
          const int q = u - panels;
          packA(A, transA, M, K, pc, kc, q * MR, std::min(MR, M - q * MR), ap + static_cast<size_t>(q) * kc * MR);
        }
      });
      run(grid.nIc * nJ, [&](int item) {
        int q0, q1, p0, p1;
        grid.at(item, nJ, panels, q0, q1, p0, p1);
        for (int p = p0; p < p1; p++) {
          const int j = jc + p * NR, nr = std::min(NR, nc - p * NR);
          const float* bpp = bp + static_cast<size_t>(p) * kc * NR;
          for (int q = q0; q < q1; q++) {
            const int i = q * MR;
            micro(kc, ap + static_cast<size_t>(q) * kc * MR, bpp, C + static_cast<size_t>(i) * N + j, N,
                  std::min(MR, M - i), nr, store, first && bias ? bias + j : nullptr);
          }
        }
      });
    }
  }
}

bool sgemmSwiGLU(int M, int N, int K, const float* A, const float* G, const float* U, const float* gBias, const float* uBias,
                 float* H) {
  if (M <= GEMV_MAX_M || K < 1 || K > KC || N < 1) return false;  // decode rows, or more than one K slice: the caller's path
  ThreadPool& tp = pool();
  const bool serial = 4.0 * M * N * K < SERIAL_FLOPS;
  const int threads = serial ? 1 : tp.active();
  auto run = [&](int n, const std::function<void(int)>& fn) { runItems(tp, serial, n, fn); };
  const ItemGrid grid(M, K, threads);
  const int aPanelsAll = grid.aPanels;
  float* ap = gPackA.get(static_cast<size_t>(aPanelsAll) * K * MR);
  for (int jc = 0; jc < N; jc += NC) {
    const int nc = std::min(NC, N - jc);
    const int panels = ceilDiv(nc, NR);
    const int nJ = grid.rangesOf(panels, threads);
    float* bp = gPackB.get(static_cast<size_t>(K) * 2 * panels * NR);  // gate panels, then up panels
    const int aUnits = jc == 0 ? aPanelsAll : 0;
    run(2 * panels + aUnits, [&](int u) {
      if (u < 2 * panels) {
        const int p = u % panels, j0 = p * NR;
        packB(u < panels ? G : U, false, N, K, 0, K, jc + j0, std::min(NR, nc - j0), bp + static_cast<size_t>(u) * K * NR);
      } else {
        const int q = u - 2 * panels;
        packA(A, false, M, K, 0, K, q * MR, std::min(MR, M - q * MR), ap + static_cast<size_t>(q) * K * MR);
      }
    });
    run(grid.nIc * nJ, [&](int item) {
      int q0, q1, p0, p1;
      grid.at(item, nJ, panels, q0, q1, p0, p1);
      // gate and up tiles stay in L1 (never written to memory); rows padded to whole 16-lane vectors
      constexpr int LD = (NR + VL - 1) / VL * VL;
      alignas(64) float tg[MR * LD + VL], tu[MR * LD + VL];
      for (int p = p0; p < p1; p++) {
        const int j = jc + p * NR, nr = std::min(NR, nc - p * NR);
        const float* gp = bp + static_cast<size_t>(p) * K * NR;
        const float* up = bp + static_cast<size_t>(panels + p) * K * NR;
        for (int q = q0; q < q1; q++) {
          const int i = q * MR, mr = std::min(MR, M - i);
          const float* aq = ap + static_cast<size_t>(q) * K * MR;
          micro(K, aq, gp, tg, LD, mr, nr, true, gBias ? gBias + j : nullptr);  // [mr, nr] = x · gate (+ bias)
          micro(K, aq, up, tu, LD, mr, nr, true, uBias ? uBias + j : nullptr);  // [mr, nr] = x · up (+ bias)
          for (int r = 0; r < mr; r++) {
            float* hr = H + static_cast<size_t>(i + r) * N + j;
            for (int c = 0; c < nr; c += VL) {
              const v16 g = vload(tg + r * LD + c);
              const v16 h = g / (1.f + vexp(-g)) * vload(tu + r * LD + c);  // silu(gate) * up, as swigluMlp's pass
              if (c + VL <= nr) vstore(hr + c, h);
              else for (int e = 0; e < nr - c; e++) hr[c + e] = h[e];
            }
          }
        }
      }
    });
  }
  return true;
}
