/*
 * out[M, N] = op(a) · op(b) (+ bias) on wasm32 SIMD128, single thread: the browser's ProjectionMatMul
 * (kernels/wasm/ProjectionMatMul.ts) and the matmuls inside FusedSwiGLUMLP (decoder_steps.c).
 * - decode rows: a weight-streaming GEMV that reads b once for every row, one b row at a time (b [K, N], up to
 *   GEMV_ROWS rows: axpy of each k-row into two output rows; b [N, K], up to NOPACK_ROWS rows: one dot product
 *   a b row); b [K, N] with up to NOPACK_ROWS rows: the 4x8 register tile reading b in place;
 * - more rows (prefill): b packed into 8-column panels of KC k-rows, a 4x8 register tile.
 * Versions that lost (2-core EPYC, V8 12 in Node 20, cpu time of one process):
 * - GEMV over four b rows a pass (four streams) ran the weights at 8-9 GB/s (b [K, N]) and 4-6 GB/s
 *   (b [N, K], the LM head) against 12-13 GB/s for one sequential stream; a decode token's GEMVs took 2x longer;
 * - 5x8 and 6x8 register tiles ran at 19-21 GFLOP/s against 24-34 for 4x8 (also with relaxed SIMD): V8's
 *   x64 code keeps one xmm as scratch and needs a temporary for each mul + add, so 10-12 accumulators spill;
 * - session 6, CPU time of sgemm_cols 128x576x1536 in one process, alternating: the 4x8 tile runs 44-46 GFLOP/s
 *   relaxed (~80% of a 128-bit FMA core at 3.5 GHz), 34-38 SIMD128; the same tile with k unrolled by 2 ran 24-25,
 *   a 6x8 tile (relaxed) 22: both spill.
 * Prefill on several threads: sgemm_cols over disjoint column ranges (kernels/wasm/simd_threads.ts).
 * op(a) with transposeA is first copied row-major into the scratch. Scratch: sgemm_scratch_floats.
 * A wasm-specific twin of native/matmul.cc + native/gemv.cc (those are AVX-512/AVX2 bodies with a thread pool).
 */
#include "sgemm.h"

#define KC 256
#define GEMV_ROWS 2   /* up to this many rows: gemv_kn / gemv_nk */
#define NOPACK_ROWS 16 /* up to this many: the 4x8 tile straight on b [K, N] (packing would cost more than b's reuse) */

EXPORT(sgemm_scratch_floats) int sgemm_scratch_floats(int M, int N, int K, int transposeA) {
  int packed = M > NOPACK_ROWS ? KC * ((N + 7) / 8) * 8 : 0;
  return (transposeA ? M * K : 0) + packed;
}

static void init_rows(float* out, const float* bias, int M, int N) {
  for (int m = 0; m < M; m++) {
    float* o = out + (long)m * N;
    if (bias) for (int n = 0; n < N; n++) o[n] = bias[n];
    else for (int n = 0; n < N; n++) o[n] = 0.0f;
  }
}

/*
 * b [K, N]: out rows += a rows · b, one b row at a time (a single sequential stream: 12-13 GB/s on the
 * 2-core EPYC, where four k-rows a pass, four streams 4N floats apart, ran at 8-9 GB/s); out rows stay in L1.
 */
static void gemv_kn(const float* a, const float* b, float* out, int M, int N, int K) {
  const int N4 = N & ~3;
  for (int k = 0; k < K; k++) {
    const float* bk = b + (long)k * N;
    for (int m = 0; m < M; m += 2) { /* two rows per b load */
      const int two = m + 1 < M;
      const float x = a[(long)m * K + k], y = two ? a[(long)(m + 1) * K + k] : 0.0f;
      const vf xv = vsplat(x), yv = vsplat(y);
      float* o = out + (long)m * N;
      float* p = o + N;
      int n = 0;
      if (two) {
        for (; n < N4; n += 4) {
          const vf w = vload(bk + n);
          vstore(o + n, vmadd(xv, w, vload(o + n)));
          vstore(p + n, vmadd(yv, w, vload(p + n)));
        }
        for (; n < N; n++) { o[n] += x * bk[n]; p[n] += y * bk[n]; }
      } else {
        for (; n < N4; n += 4) vstore(o + n, vmadd(xv, vload(bk + n), vload(o + n)));
        for (; n < N; n++) o[n] += x * bk[n];
      }
    }
  }
}

/*
 * b [N, K]: out[m, n] += a row m · b row n, one b row at a time (one sequential stream: 12 GB/s where
 * four rows a pass, four streams K floats apart, ran at 4-6 GB/s on the LM head); four accumulators.
 */
static void gemv_nk(const float* a, const float* b, float* out, int M, int N, int K) {
  const int K16 = K & ~15;
  for (int n = 0; n < N; n++) {
    const float* r = b + (long)n * K;
    for (int m = 0; m < M; m++) {
      const float* am = a + (long)m * K;
      vf s0 = vsplat(0), s1 = vsplat(0), s2 = vsplat(0), s3 = vsplat(0);
      int k = 0;
      for (; k < K16; k += 16) {
        s0 = vmadd(vload(am + k), vload(r + k), s0); s1 = vmadd(vload(am + k + 4), vload(r + k + 4), s1);
        s2 = vmadd(vload(am + k + 8), vload(r + k + 8), s2); s3 = vmadd(vload(am + k + 12), vload(r + k + 12), s3);
      }
      for (; k + 4 <= K; k += 4) s0 = vmadd(vload(am + k), vload(r + k), s0);
      float t = hsum(wasm_f32x4_add(wasm_f32x4_add(s0, s1), wasm_f32x4_add(s2, s3)));
      for (; k < K; k++) t += am[k] * r[k];
      out[(long)m * N + n] += t;
    }
  }
}

/* Packs op(b)[k0 : k0 + kc, panels p0 .. p1) into panels [p1 - p0][kc][8], zero-padded past N. */
static void pack_b(const float* b, float* packed, int N, int K, int k0, int kc, int transposeB, int p0, int p1) {
  for (int p = p0; p < p1; p++) {
    float* dst = packed + (long)(p - p0) * kc * 8;
    const int n0 = p * 8, cols = N - n0 < 8 ? N - n0 : 8;
    if (!transposeB && cols == 8) {
      for (int k = 0; k < kc; k++) vstore(dst + k * 8, vload(b + (long)(k0 + k) * N + n0)),
        vstore(dst + k * 8 + 4, vload(b + (long)(k0 + k) * N + n0 + 4));
      continue;
    }
    for (int k = 0; k < kc; k++)
      for (int j = 0; j < 8; j++)
        dst[k * 8 + j] = j < cols ? (transposeB ? b[(long)(n0 + j) * K + k0 + k] : b[(long)(k0 + k) * N + n0 + j]) : 0.0f;
  }
}

/* c[rows, cols] += a[rows, kc] (row stride lda) · b[kc, 8] (row stride ldb: 8 packed, N in place); rows <= 4, cols <= 8. */
static void micro4x8(const float* a, long lda, const float* bp, long ldb, int kc, float* c, long ldc, int rows, int cols) {
  const float* a0 = a;
  const float* a1 = rows > 1 ? a0 + lda : a0;
  const float* a2 = rows > 2 ? a1 + lda : a0;
  const float* a3 = rows > 3 ? a2 + lda : a0;
  vf c00 = vsplat(0), c01 = vsplat(0), c10 = vsplat(0), c11 = vsplat(0);
  vf c20 = vsplat(0), c21 = vsplat(0), c30 = vsplat(0), c31 = vsplat(0);
  for (int k = 0; k < kc; k++, bp += ldb) {
    const vf b0 = vload(bp), b1 = vload(bp + 4);
    vf x = vsplat_at(a0 + k);
    c00 = vmadd(x, b0, c00); c01 = vmadd(x, b1, c01);
    x = vsplat_at(a1 + k);
    c10 = vmadd(x, b0, c10); c11 = vmadd(x, b1, c11);
    x = vsplat_at(a2 + k);
    c20 = vmadd(x, b0, c20); c21 = vmadd(x, b1, c21);
    x = vsplat_at(a3 + k);
    c30 = vmadd(x, b0, c30); c31 = vmadd(x, b1, c31);
  }
  if (cols == 8) {
    float* r = c;
    vstore(r, wasm_f32x4_add(vload(r), c00)); vstore(r + 4, wasm_f32x4_add(vload(r + 4), c01));
    if (rows < 2) return;
    r += ldc; vstore(r, wasm_f32x4_add(vload(r), c10)); vstore(r + 4, wasm_f32x4_add(vload(r + 4), c11));
    if (rows < 3) return;
    r += ldc; vstore(r, wasm_f32x4_add(vload(r), c20)); vstore(r + 4, wasm_f32x4_add(vload(r + 4), c21));
    if (rows < 4) return;
    r += ldc; vstore(r, wasm_f32x4_add(vload(r), c30)); vstore(r + 4, wasm_f32x4_add(vload(r + 4), c31));
    return;
  }
  float t[4][8];
  vstore(t[0], c00); vstore(t[0] + 4, c01); vstore(t[1], c10); vstore(t[1] + 4, c11);
  vstore(t[2], c20); vstore(t[2] + 4, c21); vstore(t[3], c30); vstore(t[3] + 4, c31);
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < cols; j++) c[i * ldc + j] += t[i][j];
}

/* out[:, panels p0 .. p1) += a · op(b) over those 8-column panels; packed: KC * 8 * (p1 - p0) floats. */
static void gemm(const float* a, const float* b, float* out, int M, int N, int K, int transposeB, float* packed, int p0, int p1) {
  for (int k0 = 0; k0 < K; k0 += KC) {
    const int kc = K - k0 < KC ? K - k0 : KC;
    pack_b(b, packed, N, K, k0, kc, transposeB, p0, p1);
    for (int p = p0; p < p1; p++) {
      const int n0 = p * 8, cols = N - n0 < 8 ? N - n0 : 8;
      const float* bp = packed + (long)(p - p0) * kc * 8;
      for (int m = 0; m < M; m += 4)
        micro4x8(a + (long)m * K + k0, K, bp, 8, kc, out + (long)m * N + n0, N, M - m < 4 ? M - m : 4, cols);
    }
  }
}

/* b [K, N] read in place by the 4x8 tile (few rows: each b strip stays in cache across the row groups). */
static void gemm_nopack(const float* a, const float* b, float* out, int M, int N, int K) {
  const int N8 = N & ~7;
  for (int n0 = 0; n0 < N8; n0 += 8)
    for (int m = 0; m < M; m += 4)
      micro4x8(a + (long)m * K, K, b + n0, N, K, out + (long)m * N + n0, N, M - m < 4 ? M - m : 4, 8);
  for (int m = 0; m < M && N8 < N; m++)
    for (int k = 0; k < K; k++) {
      const float x = a[(long)m * K + k];
      for (int n = N8; n < N; n++) out[(long)m * N + n] += x * b[(long)k * N + n];
    }
}

void sgemm_rows(const float* a, const float* b, const float* bias, float* out, int M, int N, int K, int transposeB, float* scratch) {
  init_rows(out, bias, M, N);
  if (K == 0) return;
  if (transposeB ? M <= NOPACK_ROWS : M <= GEMV_ROWS) {
    if (transposeB) gemv_nk(a, b, out, M, N, K); else gemv_kn(a, b, out, M, N, K);
  } else if (!transposeB && M <= NOPACK_ROWS) {
    gemm_nopack(a, b, out, M, N, K);
  } else {
    gemm(a, b, out, M, N, K, transposeB, scratch, 0, (N + 7) / 8);
  }
}

EXPORT(sgemm_cols_scratch_floats) int sgemm_cols_scratch_floats(int cols) { return KC * ((cols + 7) / 8) * 8; }

/*
 * One thread's share of a prefill GEMM (kernels/wasm/simd_threads.ts): out[:, n0 : n1) = (residual +) (bias +)
 * a[M, K] · op(b)[:, n0 : n1), the packed 4x8 path; n0 a multiple of 8. Threads given disjoint column ranges
 * write disjoint outputs and pack their own panels (scratch: sgemm_cols_scratch_floats(n1 - n0), one per thread).
 */
EXPORT(sgemm_cols) void sgemm_cols(const float* a, const float* b, const float* bias, const float* residual, float* out,
                                   int M, int N, int K, int transposeB, int n0, int n1, float* scratch) {
  for (int m = 0; m < M; m++) {
    float* o = out + (long)m * N;
    for (int n = n0; n < n1; n++) o[n] = bias ? bias[n] : 0.0f;
  }
  if (K > 0 && n1 > n0) gemm(a, b, out, M, N, K, transposeB, scratch, n0 / 8, (n1 + 7) / 8);
  if (residual) /* added last, as swiglu adds it: the same bits as the one-thread kernels */
    for (int m = 0; m < M; m++)
      for (int n = n0; n < n1; n++) out[(long)m * N + n] += residual[(long)m * N + n];
}

EXPORT(sgemm) void sgemm(const float* a, const float* b, const float* bias, float* out,
                         int M, int N, int K, int transposeA, int transposeB, float* scratch) {
  if (transposeA) { /* a [K, M] -> row-major [M, K] in the scratch */
    float* at = scratch;
    for (int k = 0; k < K; k++)
      for (int m = 0; m < M; m++) at[(long)m * K + k] = a[(long)k * M + m];
    a = at;
    scratch += (long)M * K;
  }
  sgemm_rows(a, b, bias, out, M, N, K, transposeB, scratch);
}
