// N-API entry points of the fused CPU kernels. The TypeScript op layer checks every shape and
// length first; these functions check again that every array is of the right type and long
// enough for the integer arguments (arg_checks.h) and throw a RangeError naming it otherwise.
// The `ints` blocks are indexed by the names in kernel_args.h (TypeScript: kernels/cpu/native_args.ts).
//   ropeSplitStore(qkv, qOut, kPool, vPool, cos, sin, qNormW|null, kNormW|null, ints, rowOffsets,
//                  startPositions, pageTable, eps[, kRowScales|null, vRowScales|null, kScale, vScale])
//                                                                     ints: RopeArg
//   flashAttention(q, out, kPool, vPool, rowOffsets, startPositions, numNewTokens, pageTable, ints, scale
//                  [, kRowScales|null, vRowScales|null, kScale, vScale])   ints: AttnArg
//     Pools are typed arrays of ints[*_KV_DTYPE] (kv_codec.h: Float32Array, Uint16Array for float16 /
//     bfloat16, Int8Array, Uint8Array for float8_e4m3); int8 adds the row scales, float8 the tensor scales.
//   sgemm(a, b, bias|null, out, M, N, K, transA, transB[, accumulate])   (native/matmul.h; accumulate: out +=)
//   flashTrain(q, k, v, rowOffsets, out, lse, dy|null, dq|null, dk|null, dv|null, ints, scale)
//     ints: TrainArg; forward when dy is null (native/flash_train.h)
//   quantMatMul(x, weight, scale|null, zeros|null, gIdx|null, bias|null, out, ints, inputScale, weightScale2)
//     ints: QuantArg (native/quant_matmul.h)
//   rmsNorm(x, w|null, out, T, H, eps, center)           (native/decoder_steps.h)
//   swiglu(x, gate, up, down, gateBias|null, upBias|null, downBias|null, residual|null, out, T, H, I)
//   threads() / setThreads(n)          (the calling thread's pool, see pool() below)
//   mapShared(path, bytes, create) / unlinkShared(path)   (native/shm.cc, the sharding process transport)
//   allocHuge(bytes)                   (native/huge_pages.cc: an ArrayBuffer on transparent huge pages)
//   readInto(fd, position, dtype, rows, cols, dst, dstOffset, dstStride, transpose)
//                                      (native/widen.cc: a BF16/F16/F32 checkpoint tensor read and widened in place)
#include <node_api.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "arg_checks.h"
#include "attention.h"
#include "decoder_steps.h"
#include "flash_train.h"
#include "kernel_args.h"
#include "kv_codec.h"
#include "matmul.h"
#include "pool.h"
#include "quant_matmul.h"

// native/shm.cc
napi_value MapShared(napi_env env, napi_callback_info info);
napi_value UnlinkShared(napi_env env, napi_callback_info info);
// native/huge_pages.cc
napi_value AllocHuge(napi_env env, napi_callback_info info);
// native/widen.cc
napi_value ReadInto(napi_env env, napi_callback_info info);

// Every JS thread that calls in (the main thread, each worker_thread) has its own pool and its
// own scratch (thread_local in the kernels), so calls from different threads run at once. The
// first thread to ask (the main thread, which loads the addon) gets TFJS_ATTENTION_THREADS threads
// (default: every core); later threads get 1 (themselves) until they call setThreads.
ThreadPool& pool() {
  static std::atomic<bool> first{true};
  thread_local ThreadPool* p = [] {
    int n = 1;
    if (first.exchange(false)) {
      n = static_cast<int>(std::thread::hardware_concurrency());
      if (const char* e = std::getenv("TFJS_ATTENTION_THREADS")) n = std::atoi(e);
    }
    return new ThreadPool(n < 1 ? 1 : n);  // never destroyed: its workers are detached
  }();
  return *p;
}

namespace {

#define CHECK_NAPI(call)                                            \
  do {                                                              \
    if ((call) != napi_ok) {                                        \
      napi_throw_error(env, nullptr, "[native] N-API call failed"); \
      return nullptr;                                               \
    }                                                               \
  } while (0)

/** Reads a typed array of type `want` (or null / undefined when `nullable`) into `out`. */
bool arrayArg(napi_env env, napi_value v, napi_typedarray_type want, bool nullable, ArrayArg* out) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok) return false;
  if (type == napi_null || type == napi_undefined) { *out = ArrayArg{}; return nullable; }
  napi_typedarray_type tt;
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  if (napi_get_typedarray_info(env, v, &tt, &out->len, &out->data, nullptr, nullptr) != napi_ok || tt != want) return false;
  out->null = false;
  return true;
}

/** Reads `n` arguments; kinds: 'f' Float32Array, 'F' Float32Array or null, 'i' Int32Array, 'I' Int32Array or null. */
bool readArrays(napi_env env, const napi_value* a, const char* kinds, ArrayArg* out) {
  for (int i = 0; kinds[i]; i++) {
    const napi_typedarray_type t = kinds[i] == 'i' || kinds[i] == 'I' ? napi_int32_array : napi_float32_array;
    if (!arrayArg(env, a[i], t, kinds[i] == 'F' || kinds[i] == 'I', &out[i])) return false;
  }
  return true;
}

/** The typed array a KV pool of format `dtype` (KvDtype) is stored in (core/kv_dtype.ts allocKvPool). */
napi_typedarray_type poolArrayType(int dtype) {
  switch (dtype) {
    case KV_F16: case KV_BF16: return napi_uint16_array;
    case KV_I8: return napi_int8_array;
    case KV_FP8: return napi_uint8_array;
    default: return napi_float32_array;
  }
}

/**
 * The compact-cache arguments after the fixed ones, a[0 .. 4): kRowScales|null, vRowScales|null,
 * kScale, vScale (absent, undefined or null: 1 and no row scales). kPool / vPool (a pair of napi_values) are read as the
 * typed array of `dtype`. int8 needs both row scales, each one float per pool row.
 */
bool compactArgs(napi_env env, int dtype, const napi_value* pools, const napi_value* a, size_t nExtra, ArrayArg* kv,
                 ArrayArg* scales, double* tensorScales, std::string& err) {
  if (dtype < KV_F32 || dtype > KV_FP8) { err = argcheck::fmt("kvDtype code (%lld) must be in [0, %lld]", dtype, KV_FP8); return false; }
  static const char* kNames[] = {"Float32Array", "Uint16Array", "Uint16Array", "Int8Array", "Uint8Array"};
  for (int i = 0; i < 2; i++)
    if (!arrayArg(env, pools[i], poolArrayType(dtype), false, &kv[i])) {
      err = std::string(i == 0 ? "kPool" : "vPool") + " must be a " + kNames[dtype] + " for kvDtype code " + std::to_string(dtype);
      return false;
    }
  tensorScales[0] = tensorScales[1] = 1.0;
  scales[0] = scales[1] = ArrayArg{};
  for (int i = 0; i < 2 && static_cast<size_t>(i) < nExtra; i++)
    if (!arrayArg(env, a[i], napi_float32_array, true, &scales[i])) { err = i == 0 ? "kRowScales must be a Float32Array or null" : "vRowScales must be a Float32Array or null"; return false; }
  for (int i = 0; i < 2 && static_cast<size_t>(2 + i) < nExtra; i++) {
    napi_valuetype t;
    if (napi_typeof(env, a[2 + i], &t) != napi_ok) { err = "N-API call failed"; return false; }
    if (t == napi_undefined || t == napi_null) continue;  // not given: 1
    if (napi_get_value_double(env, a[2 + i], &tensorScales[i]) != napi_ok) { err = i == 0 ? "kScale must be a number" : "vScale must be a number"; return false; }
  }
  if (kv[0].len != kv[1].len) { err = "kPool and vPool differ in length"; return false; }
  if (dtype == KV_I8) {
    if (scales[0].null || scales[1].null) { err = "an int8 cache needs kRowScales and vRowScales"; return false; }
  } else {
    scales[0] = scales[1] = ArrayArg{};
  }
  if (dtype == KV_FP8 && !(tensorScales[0] > 0 && tensorScales[1] > 0 && std::isfinite(tensorScales[0]) && std::isfinite(tensorScales[1]))) {
    err = "float8_e4m3 kScale and vScale must be finite and > 0";
    return false;
  }
  return true;
}

/** int8 row scales hold one float per pool row (pool elements / headDim). */
bool rowScalesFit(const ArrayArg* scales, const ArrayArg& pool, long long D, std::string& err) {
  if (scales[0].null) return true;
  const long long rows = static_cast<long long>(pool.len) / std::max(D, 1LL);
  return argcheck::enough(err, "kRowScales", scales[0], rows) && argcheck::enough(err, "vRowScales", scales[1], rows);
}

template <typename T> T* ptr(const ArrayArg& a) { return static_cast<T*>(a.data); }

/**
 * The arguments of one entry point: typed arrays first (`arrays`, kinds as in readArrays), then
 * numbers (`numbers`: 'i' int32, 'd' double). On a short or mistyped call it throws the entry
 * point's error ("[native.fn] expected N arguments" / "bad argument types") and `ok` is false.
 */
struct Args {
  static constexpr int MAX = 16;
  bool ok = false;
  ArrayArg x[MAX];
  int32_t i[MAX] = {};  // the numbers by their index among the numbers ('i' ones)
  double d[MAX] = {};   // ('d' ones)

  Args(napi_env env, napi_callback_info info, const char* fn, const char* arrays, const char* numbers) {
    const size_t nArrays = std::strlen(arrays), n = nArrays + std::strlen(numbers);
    size_t argc = n;
    napi_value a[2 * MAX];
    if (napi_get_cb_info(env, info, &argc, a, nullptr, nullptr) != napi_ok) {
      napi_throw_error(env, nullptr, "[native] N-API call failed");
      return;
    }
    if (argc < n) {
      napi_throw_error(env, nullptr, (std::string("[native.") + fn + "] expected " + std::to_string(n) + " arguments").c_str());
      return;
    }
    bool good = readArrays(env, a, arrays, x);
    for (size_t k = 0; good && numbers[k]; k++) {
      good = numbers[k] == 'd' ? napi_get_value_double(env, a[nArrays + k], &d[k]) == napi_ok
                               : napi_get_value_int32(env, a[nArrays + k], &i[k]) == napi_ok;
    }
    if (!good) napi_throw_type_error(env, nullptr, (std::string("[native.") + fn + "] bad argument types").c_str());
    ok = good;
  }
};

napi_value fail(napi_env env, const char* fn, const std::string& msg) {
  napi_throw_range_error(env, nullptr, (std::string("[native.") + fn + "] " + msg).c_str());
  return nullptr;
}

napi_value RopeSplitStore(napi_env env, napi_callback_info info) {
  size_t argc = 17;
  napi_value a[17];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
  if (argc < 13) { napi_throw_error(env, nullptr, "[native.ropeSplitStore] expected 13 arguments"); return nullptr; }
  ArrayArg x[12];  // qkv qOut kPool vPool cos sin qNormW kNormW ints rowOffsets startPositions pageTable
  double eps;
  ArrayArg scales[2];
  double tensorScales[2];
  if (!readArrays(env, a, "ff", x) || !readArrays(env, a + 4, "ffFFiiii", x + 4) || napi_get_value_double(env, a[12], &eps) != napi_ok) {
    napi_throw_type_error(env, nullptr, "[native.ropeSplitStore] bad argument types");
    return nullptr;
  }
  std::string err;
  if (x[8].len < ROPE_COUNT) return fail(env, "ropeSplitStore", "ints has fewer than ROPE_COUNT values");
  const int32_t* ints = ptr<int32_t>(x[8]);
  if (!compactArgs(env, ints[ROPE_KV_DTYPE], a + 2, a + 13, argc - 13, x + 2, scales, tensorScales, err)) return fail(env, "ropeSplitStore", err);
  RopeParams p{};
  p.T = ints[ROPE_T]; p.batch = ints[ROPE_BATCH]; p.nHeads = ints[ROPE_N_HEADS]; p.nKv = ints[ROPE_N_KV]; p.D = ints[ROPE_HEAD_DIM];
  p.rotaryDim = ints[ROPE_ROTARY_DIM]; p.interleaved = ints[ROPE_INTERLEAVED]; p.pageSize = ints[ROPE_PAGE_SIZE];
  p.maxPages = ints[ROPE_MAX_PAGES];
  const long long T = p.T, D = p.D, half = p.rotaryDim / 2;
  const long long pageFloats = static_cast<long long>(p.nKv) * std::max(p.pageSize, 1) * D;
  bool ok = argcheck::heads(err, p.nHeads, p.nKv, p.D) && p.T >= 0 &&
            (p.rotaryDim >= 0 && p.rotaryDim % 2 == 0 && p.rotaryDim <= p.D ? true : (err = "rotaryDim must be even and <= headDim", false)) &&
            argcheck::enough(err, "qkv", x[0], T * (p.nHeads + 2LL * p.nKv) * D) &&
            argcheck::enough(err, "qOut", x[1], T * p.nHeads * D) &&
            rowScalesFit(scales, x[2], D, err) &&
            argcheck::pagedRows(err, p.batch, T, ptr<int32_t>(x[9]), x[9].len, ptr<int32_t>(x[10]), x[10].len, nullptr,
                                ptr<int32_t>(x[11]), x[11].len, p.maxPages, p.pageSize, static_cast<long long>(x[2].len) / pageFloats);
  if (ok) {
    const long long ctx = argcheck::maxContext(p.batch, ptr<int32_t>(x[9]), ptr<int32_t>(x[10]));
    ok = argcheck::enough(err, "cos", x[4], ctx * half) && argcheck::enough(err, "sin", x[5], ctx * half) &&
         (eps < 0 || (!x[6].null && !x[7].null) ? true : (err = "qk-norm (eps >= 0) needs qNormW and kNormW", false)) &&
         (x[6].null || argcheck::enough(err, "qNormW", x[6], D)) && (x[7].null || argcheck::enough(err, "kNormW", x[7], D));
  }
  if (!ok) return fail(env, "ropeSplitStore", err);
  p.qkv = ptr<float>(x[0]); p.qOut = ptr<float>(x[1]); p.kPool = x[2].data; p.vPool = x[3].data;
  p.cos = ptr<float>(x[4]); p.sin = ptr<float>(x[5]); p.qNormW = ptr<float>(x[6]); p.kNormW = ptr<float>(x[7]);
  p.rowOff = ptr<int32_t>(x[9]); p.start = ptr<int32_t>(x[10]); p.pageTable = ptr<int32_t>(x[11]);
  p.eps = static_cast<float>(eps);
  p.kvDtype = ints[ROPE_KV_DTYPE];
  p.kRowScales = ptr<float>(scales[0]); p.vRowScales = ptr<float>(scales[1]);
  p.kScale = tensorScales[0]; p.vScale = tensorScales[1];
  ropeSplitStoreRagged(p);
  return nullptr;
}

napi_value FlashAttention(napi_env env, napi_callback_info info) {
  size_t argc = 14;
  napi_value a[14];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
  if (argc < 10) { napi_throw_error(env, nullptr, "[native.flashAttention] expected 10 arguments"); return nullptr; }
  ArrayArg x[9];  // q out kPool vPool rowOffsets startPositions numNewTokens pageTable ints
  double scale;
  ArrayArg scales[2];
  double tensorScales[2];
  if (!readArrays(env, a, "ff", x) || !readArrays(env, a + 4, "iiiii", x + 4) || napi_get_value_double(env, a[9], &scale) != napi_ok) {
    napi_throw_type_error(env, nullptr, "[native.flashAttention] bad argument types");
    return nullptr;
  }
  std::string err;
  if (x[8].len < ATTN_COUNT) return fail(env, "flashAttention", "ints has fewer than ATTN_COUNT values");
  const int32_t* ints = ptr<int32_t>(x[8]);
  if (!compactArgs(env, ints[ATTN_KV_DTYPE], a + 2, a + 10, argc - 10, x + 2, scales, tensorScales, err)) return fail(env, "flashAttention", err);
  AttnParams p{};
  p.batch = ints[ATTN_BATCH]; p.nHeads = ints[ATTN_N_HEADS]; p.nKv = ints[ATTN_N_KV]; p.D = ints[ATTN_HEAD_DIM];
  p.pageSize = ints[ATTN_PAGE_SIZE]; p.maxPages = ints[ATTN_MAX_PAGES]; p.mask = ints[ATTN_MASK];
  p.window = ints[ATTN_WINDOW]; p.chunk = ints[ATTN_CHUNK]; p.variant = ints[ATTN_VARIANT];
  const long long pageFloats = static_cast<long long>(p.nKv) * std::max(p.pageSize, 1) * p.D;
  const long long T = x[4].len > static_cast<size_t>(std::max(p.batch, 0)) ? ptr<int32_t>(x[4])[std::max(p.batch, 0)] : -1;
  bool ok = argcheck::heads(err, p.nHeads, p.nKv, p.D) &&
            (p.mask >= 0 && p.mask <= 4 && p.variant >= 0 && p.variant <= 2 ? true : (err = "mask or variant code out of range", false)) &&
            ((p.mask != 2 && p.mask != 3) || p.window >= 1 ? true : (err = "sliding-window masks need window >= 1", false)) &&
            (p.mask != 4 || p.chunk >= 1 ? true : (err = "chunked_causal needs chunk >= 1", false)) &&
            rowScalesFit(scales, x[2], p.D, err) &&
            argcheck::pagedRows(err, p.batch, T, ptr<int32_t>(x[4]), x[4].len, ptr<int32_t>(x[5]), x[5].len,
                                x[6].len >= static_cast<size_t>(std::max(p.batch, 0)) ? ptr<int32_t>(x[6]) : nullptr,
                                ptr<int32_t>(x[7]), x[7].len, p.maxPages, p.pageSize, static_cast<long long>(x[2].len) / pageFloats) &&
            (x[6].len >= static_cast<size_t>(p.batch) ? true : (err = "numNewTokens is shorter than the batch", false)) &&
            argcheck::enough(err, "q", x[0], T * p.nHeads * p.D) && argcheck::enough(err, "out", x[1], T * p.nHeads * p.D);
  if (!ok) return fail(env, "flashAttention", err);
  p.q = ptr<float>(x[0]); p.out = ptr<float>(x[1]); p.kPool = x[2].data; p.vPool = x[3].data;
  p.kvDtype = ints[ATTN_KV_DTYPE];
  p.kRowScales = ptr<float>(scales[0]); p.vRowScales = ptr<float>(scales[1]);
  p.kScale = tensorScales[0]; p.vScale = tensorScales[1];
  p.rowOff = ptr<int32_t>(x[4]); p.start = ptr<int32_t>(x[5]); p.numNew = ptr<int32_t>(x[6]); p.pageTable = ptr<int32_t>(x[7]);
  p.scale = static_cast<float>(scale);
  flashAttentionRaggedPaged(p);
  return nullptr;
}

napi_value Sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value a[10];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
  if (argc < 9) { napi_throw_error(env, nullptr, "[native.sgemm] expected 9 arguments"); return nullptr; }
  ArrayArg x[4];  // a b bias out
  int32_t ints[6] = {0, 0, 0, 0, 0, 0};  // M N K transA transB [accumulate]
  bool ok = readArrays(env, a, "ffFf", x);
  for (int i = 0; i < static_cast<int>(argc) - 4 && i < 6 && ok; i++) ok = napi_get_value_int32(env, a[4 + i], &ints[i]) == napi_ok;
  if (!ok) { napi_throw_type_error(env, nullptr, "[native.sgemm] bad argument types"); return nullptr; }
  const long long M = ints[0], N = ints[1], K = ints[2];
  std::string err;
  if (M < 0 || N < 0 || K < 0) return fail(env, "sgemm", argcheck::fmt("M, N, K must be >= 0, got M %lld, N %lld", M, N));
  if (!argcheck::enough(err, "a", x[0], M * K) || !argcheck::enough(err, "b", x[1], K * N) ||
      !(x[2].null || argcheck::enough(err, "bias", x[2], N)) || !argcheck::enough(err, "out", x[3], M * N)) {
    return fail(env, "sgemm", err);
  }
  sgemm(ints[0], ints[1], ints[2], ptr<float>(x[0]), ints[3] != 0, ptr<float>(x[1]), ints[4] != 0, ptr<float>(x[2]), ptr<float>(x[3]),
        ints[5] != 0);
  return nullptr;
}

napi_value FlashTrain(napi_env env, napi_callback_info info) {
  // q k v rowOffsets out lse dy dq dk dv ints, scale
  const Args in(env, info, "flashTrain", "fffiffFFFFi", "d");
  if (!in.ok) return nullptr;
  const ArrayArg* x = in.x;
  const double scale = in.d[0];
  std::string err;
  if (x[10].len < TRAIN_COUNT) return fail(env, "flashTrain", "ints has fewer than TRAIN_COUNT values");
  const int32_t* ints = ptr<int32_t>(x[10]);
  FlashTrainParams p{};
  p.batch = ints[TRAIN_BATCH]; p.nHeads = ints[TRAIN_N_HEADS]; p.nKv = ints[TRAIN_N_KV]; p.hd = ints[TRAIN_HEAD_DIM];
  p.mask = ints[TRAIN_MASK]; p.window = ints[TRAIN_WINDOW]; p.chunk = ints[TRAIN_CHUNK];
  const int32_t* r = ptr<int32_t>(x[3]);
  bool ok = argcheck::heads(err, p.nHeads, p.nKv, p.hd) && p.batch >= 0 &&
            (x[3].len >= static_cast<size_t>(p.batch) + 1 ? true : (err = "rowOffsets is shorter than batch + 1", false)) &&
            (p.mask >= 0 && p.mask <= 4 ? true : (err = "mask code out of range", false)) &&
            ((p.mask != 2 && p.mask != 3) || p.window >= 1 ? true : (err = "sliding-window masks need window >= 1", false)) &&
            (p.mask != 4 || p.chunk >= 1 ? true : (err = "chunked_causal needs chunk >= 1", false));
  if (ok && r[0] != 0) { ok = false; err = "rowOffsets must start at 0"; }
  for (int b = 0; ok && b < p.batch; b++) if (r[b + 1] < r[b]) { ok = false; err = argcheck::fmt("rowOffsets decreases at entry %lld (%lld)", b, r[b + 1]); }
  const long long T = ok ? r[p.batch] : 0, qW = static_cast<long long>(p.nHeads) * p.hd, kW = static_cast<long long>(p.nKv) * p.hd;
  const bool backward = !x[6].null;
  ok = ok && argcheck::enough(err, "q", x[0], T * qW) && argcheck::enough(err, "k", x[1], T * kW) && argcheck::enough(err, "v", x[2], T * kW) &&
       argcheck::enough(err, "out", x[4], T * qW) && argcheck::enough(err, "lse", x[5], T * p.nHeads);
  if (ok && backward) {
    ok = argcheck::enough(err, "dy", x[6], T * qW) && argcheck::enough(err, "dq", x[7], T * qW) &&
         argcheck::enough(err, "dk", x[8], T * kW) && argcheck::enough(err, "dv", x[9], T * kW);
  }
  if (!ok) return fail(env, "flashTrain", err);
  p.q = ptr<float>(x[0]); p.k = ptr<float>(x[1]); p.v = ptr<float>(x[2]); p.rowOff = r; p.out = ptr<float>(x[4]); p.lse = ptr<float>(x[5]);
  p.dy = ptr<float>(x[6]); p.dq = ptr<float>(x[7]); p.dk = ptr<float>(x[8]); p.dv = ptr<float>(x[9]);
  p.scale = static_cast<float>(scale);
  if (p.dy) flashAttentionTrainBackward(p); else flashAttentionTrainForward(p);
  return nullptr;
}

// The vector ISA this build's kernels were compiled for: "avx512", "avx2" or "portable".
napi_value Isa(napi_env env, napi_callback_info) {
#if defined(__AVX512F__)
  const char* isa = "avx512";
#elif defined(__AVX2__)
  const char* isa = "avx2";
#else
  const char* isa = "portable";
#endif
  napi_value r;
  napi_create_string_utf8(env, isa, NAPI_AUTO_LENGTH, &r);
  return r;
}

// --- decoder-block steps (native/decoder_steps.cc), bounds-checked like the others ---
napi_value RmsNorm(napi_env env, napi_callback_info info) {
  const Args in(env, info, "rmsNorm", "fFf", "iidi");  // x w|null out, T H eps center
  if (!in.ok) return nullptr;
  const ArrayArg* x = in.x;
  const int32_t T = in.i[0], H = in.i[1], center = in.i[3];
  const double eps = in.d[2];
  std::string err;
  if (T < 0 || H < 1) return fail(env, "rmsNorm", argcheck::fmt("T (%lld) must be >= 0 and H (%lld) >= 1", T, H));
  const long long TH = static_cast<long long>(T) * H;
  if (!argcheck::enough(err, "x", x[0], TH) || !(x[1].null || argcheck::enough(err, "w", x[1], H)) || !argcheck::enough(err, "out", x[2], TH)) {
    return fail(env, "rmsNorm", err);
  }
  rmsNormRows(ptr<float>(x[0]), ptr<float>(x[1]), ptr<float>(x[2]), T, H, static_cast<float>(eps), center != 0);
  return nullptr;
}

napi_value Swiglu(napi_env env, napi_callback_info info) {
  const Args in(env, info, "swiglu", "ffffFFFFf", "iii");  // x gate up down gateBias upBias downBias residual out, T H I
  if (!in.ok) return nullptr;
  const ArrayArg* x = in.x;
  SwiGLUParams p{};
  p.T = in.i[0]; p.H = in.i[1]; p.I = in.i[2];
  std::string err;
  if (p.T < 0 || p.H < 1 || p.I < 1) return fail(env, "swiglu", argcheck::fmt("T must be >= 0, H (%lld) and I (%lld) >= 1", p.H, p.I));
  const long long TH = static_cast<long long>(p.T) * p.H, HI = static_cast<long long>(p.H) * p.I;
  if (!argcheck::enough(err, "x", x[0], TH) || !argcheck::enough(err, "gate", x[1], HI) || !argcheck::enough(err, "up", x[2], HI) ||
      !argcheck::enough(err, "down", x[3], HI) || !(x[4].null || argcheck::enough(err, "gateBias", x[4], p.I)) ||
      !(x[5].null || argcheck::enough(err, "upBias", x[5], p.I)) || !(x[6].null || argcheck::enough(err, "downBias", x[6], p.H)) ||
      !(x[7].null || argcheck::enough(err, "residual", x[7], TH)) || !argcheck::enough(err, "out", x[8], TH)) {
    return fail(env, "swiglu", err);
  }
  p.x = ptr<float>(x[0]); p.gate = ptr<float>(x[1]); p.up = ptr<float>(x[2]); p.down = ptr<float>(x[3]);
  p.gateBias = ptr<float>(x[4]); p.upBias = ptr<float>(x[5]); p.downBias = ptr<float>(x[6]); p.residual = ptr<float>(x[7]);
  p.out = ptr<float>(x[8]);
  swigluMlp(p);
  return nullptr;
}

napi_value Threads(napi_env env, napi_callback_info) {
  napi_value r;
  napi_create_int32(env, pool().active(), &r);
  return r;
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  int32_t n = 1;
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
  if (argc >= 1) napi_get_value_int32(env, a[0], &n);
  pool().resize(n);
  return nullptr;
}

// --- QuantMatMul (native/quant_matmul.h) ---------------------------------------------------
napi_value QuantMatMulEntry(napi_env env, napi_callback_info info) {
  // x weight scale zeros gIdx bias out ints, inputScale weightScale2
  const Args in(env, info, "quantMatMul", "fiFIIFfi", "dd");
  if (!in.ok) return nullptr;
  const ArrayArg* v = in.x;
  const double inputScale = in.d[0], weightScale2 = in.d[1];
  std::string err;
  if (!argcheck::enough(err, "ints", v[7], QA_COUNT)) return fail(env, "quantMatMul", err);
  const int32_t* ints = ptr<int32_t>(v[7]);
  const long long T = ints[QA_T], K = ints[QA_K], N = ints[QA_N], fmt = ints[QA_WFMT];
  if (T < 0 || K < 0 || N < 0) return fail(env, "quantMatMul", argcheck::fmt("T, K must be >= 0, got T %lld, K %lld", T, K));
  if (fmt < QW_E4M3 || fmt > QW_F16) return fail(env, "quantMatMul", argcheck::fmt("weight format (%lld) must be in [0, %lld]", fmt, QW_F16));
  const bool block = fmt == QW_GPTQ || (ints[QA_WSCALE] == QS_BLOCK && fmt != QW_NVFP4);
  if (block && (ints[QA_BROWS] < 1 || ints[QA_BCOLS] < 1)) {
    return fail(env, "quantMatMul", argcheck::fmt("block rows (%lld) and cols (%lld) must be >= 1", ints[QA_BROWS], ints[QA_BCOLS]));
  }
  if (fmt == QW_NVFP4 && K % 16 != 0) return fail(env, "quantMatMul", argcheck::fmt("K (%lld) must be a multiple of %lld for nvfp4", K, 16));
  if (fmt == QW_GPTQ && (K % ints[QA_BCOLS] != 0 || ints[QA_BCOLS] % 8 != 0 || N % 8 != 0)) {
    return fail(env, "quantMatMul", argcheck::fmt("gptq needs K (%lld) a multiple of the group size (%lld, itself a multiple of 8) and N a multiple of 8", K, ints[QA_BCOLS]));
  }
  if (ints[QA_ACT] == QACT_E4M3_GROUP && ints[QA_GROUP] < 1) return fail(env, "quantMatMul", argcheck::fmt("group (%lld) must be >= %lld", ints[QA_GROUP], 1));
  const long long scales = quantScaleCount(ints);
  if (!argcheck::enough(err, "x", v[0], T * K) || !argcheck::enough(err, "weight", v[1], quantWeightWords(ints)) ||
      !(scales == 0 || argcheck::enough(err, "scale", v[2], scales)) || !argcheck::enough(err, "out", v[6], T * N) ||
      !(v[5].null || argcheck::enough(err, "bias", v[5], N))) {
    return fail(env, "quantMatMul", err);
  }
  if (fmt == QW_GPTQ) {
    const long long groups = K / ints[QA_BCOLS];
    if (!argcheck::enough(err, "zeros", v[3], groups * (N / 8)) || !argcheck::enough(err, "gIdx", v[4], K)) return fail(env, "quantMatMul", err);
    const int32_t* g = ptr<int32_t>(v[4]);
    for (long long k = 0; k < K; k++) {
      if (g[k] < 0 || g[k] >= groups) return fail(env, "quantMatMul", argcheck::fmt("gIdx[%lld] must be a group in [0, groups), got %lld", k, g[k]));
    }
  }
  quantMatMul(ints, ptr<float>(v[0]), ptr<int32_t>(v[1]), ptr<float>(v[2]), ptr<int32_t>(v[3]), ptr<int32_t>(v[4]), ptr<float>(v[5]),
              ptr<float>(v[6]), static_cast<float>(inputScale), static_cast<float>(weightScale2));
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"ropeSplitStore", nullptr, RopeSplitStore, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"flashAttention", nullptr, FlashAttention, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgemm", nullptr, Sgemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"quantMatMul", nullptr, QuantMatMulEntry, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"flashTrain", nullptr, FlashTrain, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"isa", nullptr, Isa, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rmsNorm", nullptr, RmsNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"swiglu", nullptr, Swiglu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, Threads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"mapShared", nullptr, MapShared, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unlinkShared", nullptr, UnlinkShared, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"allocHuge", nullptr, AllocHuge, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"readInto", nullptr, ReadInto, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
