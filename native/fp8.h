#pragma once
// Small float formats of quantized weights and activations (spec/fixtures/README.md "quant/"),
// shared by the quantized kernels: widening by bit tricks (no tables in the hot loops) and the
// exact round-to-grid quantizers (nearest, ties to even under the default rounding mode,
// saturating; NaN stays NaN). The TypeScript twin is core/fp_formats.ts.
#include <cmath>
#include <cstdint>
#include <cstring>

inline float bitsToFloat(uint32_t b) { float f; std::memcpy(&f, &b, 4); return f; }

/** e4m3fn byte -> float: exponent/mantissa moved into float32 position (subnormals become float32
 *  subnormals), scaled by 2^120 to rebias 7 -> 127; 0x7f / 0xff are NaN. */
inline float e4m3ToFloat(uint32_t b) {
  const float v = bitsToFloat(((b & 0x7fu) << 20) | ((b & 0x80u) << 24)) * 0x1p120f;
  return (b & 0x7fu) == 0x7fu ? NAN : v;
}
/** bfloat16 bits -> float. */
inline float bf16ToFloat(uint32_t h) { return bitsToFloat(h << 16); }
/** float16 bits -> float (IEEE half; subnormals, infinities and NaN kept). */
inline float f16ToFloat(uint32_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, em = h & 0x7fffu;
  if (em >= 0x7c00u) return bitsToFloat(sign | 0x7f800000u | ((em & 0x3ffu) << 13));
  return bitsToFloat(sign | (em << 13)) * 0x1p112f;  // rebias 15 -> 127; half subnormals become float32 normals exactly
}
/** e2m1 magnitudes by code (bit 3 is the sign). */
constexpr float kE2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.f, -0.5f, -1, -1.5f, -2, -3, -4, -6};

/** v rounded to the e4m3 grid (quantum 2^(max(e,-6)-3), saturating at 448). */
inline float roundE4m3(float v) {
  if (std::isnan(v)) return v;
  const float a = std::fabs(v);
  if (a >= 448.f) return std::copysign(448.f, v);
  int e = a == 0.f ? -6 : std::ilogb(a);
  if (e < -6) e = -6;
  const float q = std::ldexp(1.f, e - 3);
  return std::copysign(std::fmin(std::nearbyint(a / q) * q, 448.f), v);
}
/** v rounded to the e2m1 grid {0, .5, 1, 1.5, 2, 3, 4, 6} (saturating at 6). */
inline float roundE2m1(float v) {
  if (std::isnan(v)) return v;
  const float a = std::fabs(v), q = a < 2.f ? 0.5f : a < 4.f ? 1.f : 2.f;
  return std::copysign(std::fmin(std::nearbyint(a / q) * q, 6.f), v);
}
