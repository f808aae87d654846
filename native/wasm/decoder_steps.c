/*
 * FusedRMSNorm and FusedSwiGLUMLP on wasm32 SIMD128, single thread (the browser's twins of
 * native/decoder_steps.cc; kernels/wasm/simd_decoder_steps.ts calls them).
 */
#include "sgemm.h"

/* out[T, H] = (x - mean) / sqrt(mean((x - mean)^2) + eps) * w; mean = 0 unless center. */
EXPORT(rms_norm) void rms_norm(const float* x, const float* w, float* out, int T, int H, float eps, int center) {
  const int H4 = H & ~3;
  for (int t = 0; t < T; t++) {
    const float* xr = x + (long)t * H;
    float* o = out + (long)t * H;
    float mean = 0;
    if (center) {
      vf s = vsplat(0);
      int j = 0;
      for (; j < H4; j += 4) s = wasm_f32x4_add(s, vload(xr + j));
      mean = hsum(s);
      for (; j < H; j++) mean += xr[j];
      mean /= (float)H;
    }
    const vf mv = vsplat(mean);
    vf ss = vsplat(0);
    int j = 0;
    for (; j < H4; j += 4) { const vf d = wasm_f32x4_sub(vload(xr + j), mv); ss = vmadd(d, d, ss); }
    float sum = hsum(ss);
    for (; j < H; j++) { const float d = xr[j] - mean; sum += d * d; }
    const float inv = 1.0f / __builtin_sqrtf(sum / (float)H + eps);
    const vf iv = vsplat(inv);
    for (j = 0; j < H4; j += 4) {
      vf y = wasm_f32x4_mul(wasm_f32x4_sub(vload(xr + j), mv), iv);
      vstore(o + j, w ? wasm_f32x4_mul(y, vload(w + j)) : y);
    }
    for (; j < H; j++) o[j] = (xr[j] - mean) * inv * (w ? w[j] : 1.0f);
  }
}

#define MLP_ROWS 128

static inline int imax(int a, int b) { return a > b ? a : b; }

EXPORT(swiglu_scratch_floats) int swiglu_scratch_floats(int T, int H, int I) {
  const int rows = T < MLP_ROWS ? T : MLP_ROWS;
  return 2 * rows * I + sgemm_scratch_floats(rows, imax(H, I), imax(H, I), 0);
}

/* g[n] = silu(g[n]) * u[n] = g / (1 + exp(-g)) * u. */
static void silu_mul(float* g, const float* u, long n) {
  long i = 0;
  const vf one = vsplat(1.0f);
  for (; i + 4 <= n; i += 4) {
    const vf x = vload(g + i);
    const vf e = vexp(wasm_f32x4_neg(x));
    vstore(g + i, wasm_f32x4_mul(wasm_f32x4_div(x, wasm_f32x4_add(one, e)), vload(u + i)));
  }
  for (; i < n; i++) g[i] = g[i] / (1.0f + sexp(-g[i])) * u[i];
}

/*
 * out[T, H] = (residual +) down(silu(x · gate + gateBias) * (x · up + upBias)) + downBias; weights [in, out].
 * Rows go MLP_ROWS at a time so the [rows, I] intermediates stay in cache. out must not alias the inputs.
 */
EXPORT(swiglu) void swiglu(const float* x, const float* gate, const float* up, const float* down,
    const float* gateBias, const float* upBias, const float* downBias, const float* residual, float* out,
    int T, int H, int I, float* scratch) {
  const int chunk = T < MLP_ROWS ? T : MLP_ROWS;
  float* g = scratch;
  float* u = g + (long)chunk * I;
  float* gemmScratch = u + (long)chunk * I;
  for (int t0 = 0; t0 < T; t0 += chunk) {
    const int rows = T - t0 < chunk ? T - t0 : chunk;
    const float* xr = x + (long)t0 * H;
    float* o = out + (long)t0 * H;
    sgemm_rows(xr, gate, gateBias, g, rows, I, H, 0, gemmScratch);
    sgemm_rows(xr, up, upBias, u, rows, I, H, 0, gemmScratch);
    silu_mul(g, u, (long)rows * I);
    sgemm_rows(g, down, downBias, o, rows, H, I, 0, gemmScratch);
    if (residual) {
      const float* r = residual + (long)t0 * H;
      long i = 0, n = (long)rows * H;
      for (; i + 4 <= n; i += 4) vstore(o + i, wasm_f32x4_add(vload(o + i), vload(r + i)));
      for (; i < n; i++) o[i] += r[i];
    }
  }
}

/*
 * One thread's share of the MLP's first half (kernels/wasm/simd_threads.ts): g[:, n0 : n1) =
 * silu(x · gate + gateBias) * (x · up + upBias) over columns n0 .. n1 of I (u[T, I] is the up product's
 * scratch). The second half is sgemm_cols of g by down over column ranges of H, once every thread is done.
 */
EXPORT(swiglu_gate_up_cols) void swiglu_gate_up_cols(const float* x, const float* gate, const float* up, const float* gateBias,
    const float* upBias, float* g, float* u, int T, int H, int I, int n0, int n1, float* scratch) {
  sgemm_cols(x, gate, gateBias, 0, g, T, I, H, 0, n0, n1, scratch);
  sgemm_cols(x, up, upBias, 0, u, T, I, H, 0, n0, n1, scratch);
  for (int t = 0; t < T; t++) silu_mul(g + (long)t * I + n0, u + (long)t * I + n0, n1 - n0);
}
