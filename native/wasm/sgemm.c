/*
 * out[M, N] = op(a) · op(b) (+ bias) on wasm32 SIMD128, single thread: the browser's ProjectionMatMul
 * (kernels/wasm/ProjectionMatMul.ts) and the matmuls inside FusedSwiGLUMLP (decoder_steps.c).
 * - decode rows: a weight-streaming GEMV that reads b once for every row (b [K, N], up to GEMV_ROWS rows:
 *   four k-rows at a time into two output rows; b [N, K], up to NOPACK_ROWS rows: four dot products at a time);
 *   b [K, N] with up to NOPACK_ROWS rows: the 4x8 register tile reading b in place;
 * - more rows (prefill): b packed into 8-column panels of KC k-rows, a 4x8 register tile.
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

/* b [K, N]: out rows += a rows · b, four k-rows per pass, two output rows per b load. */
static void gemv_kn(const float* a, const float* b, float* out, int M, int N, int K) {
  int k = 0;
  for (; k + 4 <= K; k += 4) {
    const float *b0 = b + (long)k * N, *b1 = b0 + N, *b2 = b1 + N, *b3 = b2 + N;
    for (int m = 0; m < M; m += 2) {
      const int two = m + 1 < M;
      const float* am = a + (long)m * K + k;
      const float* an = two ? am + K : am;
      float* o = out + (long)m * N;
      float* p = two ? o + N : o;
      const vf x0 = vsplat(am[0]), x1 = vsplat(am[1]), x2 = vsplat(am[2]), x3 = vsplat(am[3]);
      const vf y0 = vsplat(an[0]), y1 = vsplat(an[1]), y2 = vsplat(an[2]), y3 = vsplat(an[3]);
      int n = 0;
      for (; n + 4 <= N; n += 4) {
        const vf w0 = vload(b0 + n), w1 = vload(b1 + n), w2 = vload(b2 + n), w3 = vload(b3 + n);
        vf acc = vload(o + n);
        acc = vmadd(x0, w0, acc); acc = vmadd(x1, w1, acc); acc = vmadd(x2, w2, acc); acc = vmadd(x3, w3, acc);
        vstore(o + n, acc);
        if (two) {
          vf acd = vload(p + n);
          acd = vmadd(y0, w0, acd); acd = vmadd(y1, w1, acd); acd = vmadd(y2, w2, acd); acd = vmadd(y3, w3, acd);
          vstore(p + n, acd);
        }
      }
      for (; n < N; n++) {
        o[n] += am[0] * b0[n] + am[1] * b1[n] + am[2] * b2[n] + am[3] * b3[n];
        if (two) p[n] += an[0] * b0[n] + an[1] * b1[n] + an[2] * b2[n] + an[3] * b3[n];
      }
    }
  }
  for (; k < K; k++) {
    const float* bk = b + (long)k * N;
    for (int m = 0; m < M; m++) {
      const float x = a[(long)m * K + k];
      float* o = out + (long)m * N;
      for (int n = 0; n < N; n++) o[n] += x * bk[n];
    }
  }
}

/* b [N, K]: out[m, n] += a row m · b row n, four b rows per pass. */
static void gemv_nk(const float* a, const float* b, float* out, int M, int N, int K) {
  int n = 0;
  for (; n + 4 <= N; n += 4) {
    const float *r0 = b + (long)n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
    for (int m = 0; m < M; m++) {
      const float* am = a + (long)m * K;
      vf s0 = vsplat(0), s1 = vsplat(0), s2 = vsplat(0), s3 = vsplat(0);
      int k = 0;
      for (; k + 4 <= K; k += 4) {
        vf x = vload(am + k);
        s0 = vmadd(x, vload(r0 + k), s0);
        s1 = vmadd(x, vload(r1 + k), s1);
        s2 = vmadd(x, vload(r2 + k), s2);
        s3 = vmadd(x, vload(r3 + k), s3);
      }
      float t0 = hsum(s0), t1 = hsum(s1), t2 = hsum(s2), t3 = hsum(s3);
      for (; k < K; k++) { t0 += am[k] * r0[k]; t1 += am[k] * r1[k]; t2 += am[k] * r2[k]; t3 += am[k] * r3[k]; }
      float* o = out + (long)m * N + n;
      o[0] += t0; o[1] += t1; o[2] += t2; o[3] += t3;
    }
  }
  for (; n < N; n++) {
    const float* r = b + (long)n * K;
    for (int m = 0; m < M; m++) {
      const float* am = a + (long)m * K;
      vf s = vsplat(0);
      int k = 0;
      for (; k + 4 <= K; k += 4) s = vmadd(vload(am + k), vload(r + k), s);
      float t = hsum(s);
      for (; k < K; k++) t += am[k] * r[k];
      out[(long)m * N + n] += t;
    }
  }
}

/* Packs op(b)[k0 : k0 + kc, :] into panels [ceil(N / 8)][kc][8], zero-padded past N. */
static void pack_b(const float* b, float* packed, int N, int K, int k0, int kc, int transposeB) {
  const int panels = (N + 7) / 8;
  for (int p = 0; p < panels; p++) {
    float* dst = packed + (long)p * kc * 8;
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

static void gemm(const float* a, const float* b, float* out, int M, int N, int K, int transposeB, float* packed) {
  const int panels = (N + 7) / 8;
  for (int k0 = 0; k0 < K; k0 += KC) {
    const int kc = K - k0 < KC ? K - k0 : KC;
    pack_b(b, packed, N, K, k0, kc, transposeB);
    for (int p = 0; p < panels; p++) {
      const int n0 = p * 8, cols = N - n0 < 8 ? N - n0 : 8;
      const float* bp = packed + (long)p * kc * 8;
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
    gemm(a, b, out, M, N, K, transposeB, scratch);
  }
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
