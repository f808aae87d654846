#pragma once
// QuantMatMul (kernels/kernel_names.ts): out[T, N] = quantize(x)[T, K] · widen(W)ᵀ (+ bias), W
// [N, K] read packed (e4m3 / int8 bytes, e2m1 nibbles, bf16 / f16 halves in int32 words, low
// first; gptq int4 qweight [K/8, N]). Decode rows (T <= 8) go to quant_decode.h's kernels (packed
// weights straight into the dot products) where the build and shapes allow, else to a GEMV that
// widens each weight row in registers for every input row; prefill widens 1024-row panels and runs sgemm.
#include <cstdint>

/** Integer arguments, in the order of kernels/cpu/QuantMatMul.ts nativeArgs. */
enum QuantArg { QA_T, QA_K, QA_N, QA_WFMT, QA_WSCALE, QA_BROWS, QA_BCOLS, QA_ACT, QA_GROUP, QA_COUNT };
enum QuantWeight { QW_E4M3, QW_INT8, QW_NVFP4, QW_GPTQ, QW_BF16, QW_F16 };
enum QuantScale { QS_NONE, QS_TENSOR, QS_ROWWISE, QS_BLOCK };
enum QuantAct { QACT_NONE, QACT_E4M3_STATIC, QACT_E4M3_TOKEN, QACT_E4M3_GROUP, QACT_INT8_TOKEN, QACT_NVFP4 };

/** Words per packed row (row formats) or total words (gptq), for the binding's length checks. */
long long quantWeightWords(const int32_t* ints);
/** Number of scale floats the format reads (0 for bf16 / f16). */
long long quantScaleCount(const int32_t* ints);

void quantMatMul(const int32_t* ints, const float* x, const int32_t* w, const float* scale, const int32_t* zeros,
                 const int32_t* gIdx, const float* bias, float* out, float inputScale, float weightScale2);
