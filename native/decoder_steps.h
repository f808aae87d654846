// Fused decoder-block steps at inference (kernels/cpu/RMSNorm.ts, kernels/cpu/SwiGLUMLP.ts).
#pragma once

/**
 * out[t, :] = (x[t, :] - mean) / sqrt(mean((x - mean)^2) + eps) * w, mean = 0 unless `center`
 * (RMSNorm; with `center` and w null, OLMo's LayerNorm). w may be null. x, out [T, H]; out may alias x.
 */
void rmsNormRows(const float* x, const float* w, float* out, int T, int H, float eps, bool center);

struct SwiGLUParams {
  const float* x;          // [T, H]
  const float* gate;       // [H, I]
  const float* up;         // [H, I]
  const float* down;       // [I, H]
  const float* gateBias;   // [I] or null
  const float* upBias;     // [I] or null
  const float* downBias;   // [H] or null
  const float* residual;   // [T, H] or null: added to the output
  float* out;              // [T, H], must not alias x; may be residual itself (added in place)
  int T, H, I;
};

/** out = (residual +) down(silu(x · gate + gateBias) * (x · up + upBias)) + downBias. */
void swigluMlp(const SwiGLUParams& p);
