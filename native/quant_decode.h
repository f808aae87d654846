#pragma once
// Decode rows (T <= 8) of QuantMatMul (quant_matmul.h) by kernels that keep the weight packed all
// the way into the dot product, so a call streams the packed bytes once and little else:
//   int8 W8A8      int8 codes of x · int8 weights by VNNI (vpdpbusd), exact int32 sums
//   nvfp4 W4A4     2·e2m1 codes of x · 2·e2m1 weights by VNNI per 64 columns, block scales per lane
//   fp8 (e4m3)     e4m3 codes of x as bf16 · e4m3 weights widened to bf16 by a 128-entry byte
//                  table (vpermi2b), vdpbf16ps: products exact in float32
//   bf16 / f16     float32 x · halves widened by a shift / vcvtph2ps, FMA
//   gptq int4      float32 x · nibbles by a 16-lane table permute, scale and zero once per group
// Each input row is quantized once per call (quant_decode_prep.cc), with the same float32
// arithmetic as the generic path in quant_matmul.cc (so the same codes); the scales are applied
// to the code sums, so only the float32 summation order differs from the reference.
#include <cstdint>

// Which decode kernels this build has (each needs its AVX-512 subsets; others take the generic GEMV).
#if defined(__AVX512F__) && defined(__AVX512BW__)
#define QUANT_DECODE_HALVES 1  // bf16 / f16 / gptq
#if defined(__AVX512VNNI__)
#define QUANT_DECODE_INT8 1
#if defined(__AVX512VBMI__)
#define QUANT_DECODE_NVFP4 1
#endif
#endif
#if defined(__AVX512BF16__) && defined(__AVX512VBMI__)
#define QUANT_DECODE_FP8 1
#endif
#endif

/** One QuantMatMul call (the arguments of quantMatMul, quant_matmul.h). */
struct QuantProblem {
  int T, K, N, wfmt, wscale, bR, bC, act, group;
  float inScale, ws2;
  const int32_t* w;
  const float* scale;
  const int32_t* zeros;
  const int32_t* gIdx;
};

/**
 * out[T, N] for T <= 8 by the kernel of the call's format, when this build has one for it (AVX-512
 * with VNNI / BF16 / VBMI as each needs) and the shapes fit (K a multiple of 64, ...); false
 * otherwise, and then the caller runs the generic GEMV.
 */
bool quantDecodeFast(const QuantProblem& q, const float* x, const float* bias, float* out);

// The kernels (quant_decode_int.cc, quant_decode_float.cc) over x prepared by quant_decode_prep.cc.
/** int8: codes [T, K] int8, xScale[t] (NaN for a row whose scale is not finite), codeSum[t] = Σ codes. */
void int8Decode(const QuantProblem& q, const int8_t* codes, const float* xScale, const int32_t* codeSum, const float* bias, float* out);
/** nvfp4: codes [T, K] as 2·e2m1 + 12 in the 64-column order of nvfp4Order, lane scales [T, K / 4] (see there). */
void nvfp4Decode(const QuantProblem& q, const uint8_t* codes, const float* laneScales, const float* bias, float* out);
/**
 * nvfp4 with K a multiple of 256, step-major (step g = columns 256g .. 256g + 255, its T rows side by
 * side): codes [K / 256, T, 256] signed 2·e2m1 as 4 passes of 64 bytes (pass s, lane b, byte j:
 * column 16b + 8·(s / 2) + 2j + s % 2); corr [K / 256, T, 16] = −12 · Σ codes of each block;
 * blockScales [K / 256, T, 16] the x block scales.
 */
void nvfp4WideDecode(const QuantProblem& q, const int8_t* codes, const int32_t* corr, const float* blockScales, const float* bias, float* out);
/** fp8: codes [T, K] bf16 in the 64-column order of bf16Order; segScale [T, K / seg] the scale of each segment of `seg` columns. */
void fp8Decode(const QuantProblem& q, const uint16_t* codes, const float* segScale, int seg, const float* bias, float* out);
/** bf16 / f16 weights: x [T, K] float32 (bf16: each 32 columns as its 16 even then 16 odd ones). */
void halfDecode(const QuantProblem& q, const float* x, const float* bias, float* out);
/** gptq with g_idx[k] = k / group: x [T, K], groupSum [T, K / group] = Σ x over each group. */
void gptqDecode(const QuantProblem& q, const float* x, const float* groupSum, const float* bias, float* out);
