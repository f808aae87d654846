// Fused steps of a decoder block at inference (kernels RMSNorm and SwiGLUMLP): the activations
// stay in the addon's scratch between the matMuls, with no tfjs tensor per intermediate.
// Prefill rows of the SwiGLU MLP run gate, up and the activation as one GEMM (sgemmSwiGLU, matmul.cc):
// 512 x 576 -> 1536 -> 576 MLP 35.3 -> 31.8 ms (1.11x, one thread, CPU time, C++ driver alternating
// both; results within 2e-6 of a float64 reference either way).
#include "decoder_steps.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "matmul.h"
#include "aligned_scratch.h"
#include "pool.h"
#include "simd.h"

namespace {

thread_local AlignedScratch tGate, tUp;

/** fn over [0, rows) in contiguous chunks on the pool (one thread when the work is small). */
template <typename F>
void forRows(int rows, double workPerRow, F fn) {
  ThreadPool& tp = pool();
  const int parts = workPerRow * rows < 1e5 ? 1 : std::min(tp.active(), rows);
  if (parts <= 1) { fn(0, rows); return; }
  tp.parallelFor(parts, [&](int p) {
    const int r0 = static_cast<int>(static_cast<long>(rows) * p / parts);
    const int r1 = static_cast<int>(static_cast<long>(rows) * (p + 1) / parts);
    fn(r0, r1);
  });
}

/** g [T, I] = silu(x · gate + gateBias) * (x · up + upBias) by two sgemms and a pass (decode rows, or H beyond one K slice). */
void swigluTwoGemms(const SwiGLUParams& p, float* g) {
  const int T = p.T, H = p.H, I = p.I;
  float* u = tUp.get(static_cast<size_t>(T) * I);
  sgemm(T, I, H, p.x, false, p.gate, false, p.gateBias, g);  // [T, I]
  sgemm(T, I, H, p.x, false, p.up, false, p.upBias, u);      // [T, I]
  forRows(T, 20.0 * I, [&](int r0, int r1) {
    size_t i = static_cast<size_t>(r0) * I;
    const size_t end = static_cast<size_t>(r1) * I;
    for (; i + VL <= end; i += VL) {  // vexp (simd.h, rel. error ~2e-7): std::exp was ~10% of a prefill MLP
      const v16 a = vload(g + i);
      vstore(g + i, a / (1.f + vexp(-a)) * vload(u + i));  // silu(gate) * up
    }
    for (; i < end; i++) g[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
  });
}

}  // namespace

void rmsNormRows(const float* x, const float* w, float* out, int T, int H, float eps, bool center) {
  forRows(T, 4.0 * H, [&](int r0, int r1) {
    const int hv = H - H % VL;
    for (int t = r0; t < r1; t++) {
      const float* xr = x + static_cast<size_t>(t) * H;
      float* o = out + static_cast<size_t>(t) * H;
      float mean = 0.f;
      if (center) {
        double s = 0;
        for (int j = 0; j < H; j++) s += xr[j];
        mean = static_cast<float>(s / H);
      }
      // sum of squares in 16 lanes (the scalar loop's serial chain was most of a prefill's norm time)
      const v16 m = vset1(mean);
      v16 acc = v16{};
      int j = 0;
      for (; j < hv; j += VL) { const v16 d = vload(xr + j) - m; acc += d * d; }
      float ss = hsum(acc);
      for (; j < H; j++) { const float d = xr[j] - mean; ss += d * d; }
      const float inv = 1.f / std::sqrt(ss / H + eps);
      const v16 vinv = vset1(inv);
      j = 0;
      if (w) {
        for (; j < hv; j += VL) vstore(o + j, (vload(xr + j) - m) * vinv * vload(w + j));
        for (; j < H; j++) o[j] = (xr[j] - mean) * inv * w[j];
      } else {
        for (; j < hv; j += VL) vstore(o + j, (vload(xr + j) - m) * vinv);
        for (; j < H; j++) o[j] = (xr[j] - mean) * inv;
      }
    }
  });
}

void swigluMlp(const SwiGLUParams& p) {
  const int T = p.T, H = p.H, I = p.I;
  if (T <= 0) return;
  float* g = tGate.get(static_cast<size_t>(T) * I);
  // prefill rows: gate, up and silu(gate) * up in one GEMM pass (matmul.cc), no [T, I] gate / up
  // written and read back (was: two sgemms, then a pass over both: swigluTwoGemms)
  if (!sgemmSwiGLU(T, I, H, p.x, p.gate, p.up, p.gateBias, p.upBias, g)) swigluTwoGemms(p, g);  // g [T, I]
  if (p.residual == p.out) {  // in place: out += down(...), the residual never copied
    sgemm(T, H, I, g, false, p.down, false, p.downBias, p.out, true);  // [T, H]
    return;
  }
  sgemm(T, H, I, g, false, p.down, false, p.downBias, p.out);  // [T, H]
  if (p.residual) {
    const size_t n = static_cast<size_t>(T) * H;
    for (size_t i = 0; i < n; i++) p.out[i] += p.residual[i];
  }
}
