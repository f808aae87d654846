// N-API entry points of the fused CPU kernels. The JavaScript side (kernels/cpu/native.ts) checks
// every shape and length before calling; these functions trust their arguments.
//   ropeSplitStore(qkv, qOut, kPool, vPool, cos, sin, qNormW|null, kNormW|null, ints, rowOffsets,
//                  startPositions, pageTable, eps)
//     ints = [T, batch, nHeads, nKv, D, rotaryDim, interleaved, pageSize, maxPages]
//   flashAttention(q, out, kPool, vPool, rowOffsets, startPositions, numNewTokens, pageTable, ints, scale)
//     ints = [batch, nHeads, nKv, D, pageSize, maxPages, maskCode, window, chunk, variant]
//   sgemm(a, b, bias|null, out, M, N, K, transA, transB)   (native/matmul.h)
//   flashTrain(q, k, v, rowOffsets, out, lse, dy|null, dq|null, dk|null, dv|null, ints, scale)
//     ints = [batch, nHeads, nKv, hd, maskCode, window, chunk]; forward when dy is null (native/flash_train.h)
//   rmsNorm(x, w|null, out, T, H, eps, center)           (native/decoder_steps.h)
//   swiglu(x, gate, up, down, gateBias|null, upBias|null, downBias|null, residual|null, out, T, H, I)
//   threads() / setThreads(n)          (the calling thread's pool, see pool() below)
//   mapShared(path, bytes, create) / unlinkShared(path)   (native/shm.cc, the sharding process transport)
#include <node_api.h>

#include <cstdlib>
#include <mutex>
#include <thread>

#include "attention.h"
#include "decoder_steps.h"
#include "flash_train.h"
#include "matmul.h"
#include "pool.h"

// native/shm.cc
napi_value MapShared(napi_env env, napi_callback_info info);
napi_value UnlinkShared(napi_env env, napi_callback_info info);

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

template <typename T>
bool arrayData(napi_env env, napi_value v, T** out) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok) return false;
  if (type == napi_null || type == napi_undefined) { *out = nullptr; return true; }
  napi_typedarray_type tt;
  size_t len;
  void* data;
  if (napi_get_typedarray_info(env, v, &tt, &len, &data, nullptr, nullptr) != napi_ok) return false;
  *out = static_cast<T*>(data);
  return true;
}

napi_value RopeSplitStore(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value a[13];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
  if (argc < 13) { napi_throw_error(env, nullptr, "[native.ropeSplitStore] expected 13 arguments"); return nullptr; }
  RopeParams p{};
  int32_t* ints;
  double eps;
  bool ok = arrayData(env, a[0], const_cast<float**>(&p.qkv)) && arrayData(env, a[1], &p.qOut) &&
            arrayData(env, a[2], &p.kPool) && arrayData(env, a[3], &p.vPool) &&
            arrayData(env, a[4], const_cast<float**>(&p.cos)) && arrayData(env, a[5], const_cast<float**>(&p.sin)) &&
            arrayData(env, a[6], const_cast<float**>(&p.qNormW)) && arrayData(env, a[7], const_cast<float**>(&p.kNormW)) &&
            arrayData(env, a[8], &ints) && arrayData(env, a[9], const_cast<int32_t**>(&p.rowOff)) &&
            arrayData(env, a[10], const_cast<int32_t**>(&p.start)) &&
            arrayData(env, a[11], const_cast<int32_t**>(&p.pageTable)) && napi_get_value_double(env, a[12], &eps) == napi_ok;
  if (!ok) { napi_throw_type_error(env, nullptr, "[native.ropeSplitStore] bad argument types"); return nullptr; }
  p.T = ints[0]; p.batch = ints[1]; p.nHeads = ints[2]; p.nKv = ints[3]; p.D = ints[4];
  p.rotaryDim = ints[5]; p.interleaved = ints[6]; p.pageSize = ints[7]; p.maxPages = ints[8];
  p.eps = static_cast<float>(eps);
  ropeSplitStoreRagged(p);
  return nullptr;
}

napi_value FlashAttention(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value a[10];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
  if (argc < 10) { napi_throw_error(env, nullptr, "[native.flashAttention] expected 10 arguments"); return nullptr; }
  AttnParams p{};
  int32_t* ints;
  double scale;
  bool ok = arrayData(env, a[0], const_cast<float**>(&p.q)) && arrayData(env, a[1], &p.out) &&
            arrayData(env, a[2], const_cast<float**>(&p.kPool)) && arrayData(env, a[3], const_cast<float**>(&p.vPool)) &&
            arrayData(env, a[4], const_cast<int32_t**>(&p.rowOff)) && arrayData(env, a[5], const_cast<int32_t**>(&p.start)) &&
            arrayData(env, a[6], const_cast<int32_t**>(&p.numNew)) &&
            arrayData(env, a[7], const_cast<int32_t**>(&p.pageTable)) && arrayData(env, a[8], &ints) &&
            napi_get_value_double(env, a[9], &scale) == napi_ok;
  if (!ok) { napi_throw_type_error(env, nullptr, "[native.flashAttention] bad argument types"); return nullptr; }
  p.batch = ints[0]; p.nHeads = ints[1]; p.nKv = ints[2]; p.D = ints[3]; p.pageSize = ints[4];
  p.maxPages = ints[5]; p.mask = ints[6]; p.window = ints[7]; p.chunk = ints[8]; p.variant = ints[9];
  p.scale = static_cast<float>(scale);
  flashAttentionRaggedPaged(p);
  return nullptr;
}

napi_value Sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value a[9];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
  if (argc < 9) { napi_throw_error(env, nullptr, "[native.sgemm] expected 9 arguments"); return nullptr; }
  float *A, *B, *bias, *C;
  int32_t ints[5];
  bool ok = arrayData(env, a[0], &A) && arrayData(env, a[1], &B) && arrayData(env, a[2], &bias) && arrayData(env, a[3], &C);
  for (int i = 0; i < 5 && ok; i++) ok = napi_get_value_int32(env, a[4 + i], &ints[i]) == napi_ok;
  if (!ok) { napi_throw_type_error(env, nullptr, "[native.sgemm] bad argument types"); return nullptr; }
  sgemm(ints[0], ints[1], ints[2], A, ints[3] != 0, B, ints[4] != 0, bias, C);
  return nullptr;
}

napi_value FlashTrain(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value a[12];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
  if (argc < 12) { napi_throw_error(env, nullptr, "[native.flashTrain] expected 12 arguments"); return nullptr; }
  FlashTrainParams p{};
  int32_t* ints;
  double scale;
  bool ok = arrayData(env, a[0], const_cast<float**>(&p.q)) && arrayData(env, a[1], const_cast<float**>(&p.k)) &&
            arrayData(env, a[2], const_cast<float**>(&p.v)) && arrayData(env, a[3], const_cast<int32_t**>(&p.rowOff)) &&
            arrayData(env, a[4], &p.out) && arrayData(env, a[5], &p.lse) && arrayData(env, a[6], const_cast<float**>(&p.dy)) &&
            arrayData(env, a[7], &p.dq) && arrayData(env, a[8], &p.dk) && arrayData(env, a[9], &p.dv) &&
            arrayData(env, a[10], &ints) && napi_get_value_double(env, a[11], &scale) == napi_ok;
  if (!ok) { napi_throw_type_error(env, nullptr, "[native.flashTrain] bad argument types"); return nullptr; }
  p.batch = ints[0]; p.nHeads = ints[1]; p.nKv = ints[2]; p.hd = ints[3];
  p.mask = ints[4]; p.window = ints[5]; p.chunk = ints[6];
  p.scale = static_cast<float>(scale);
  if (p.dy) flashAttentionTrainBackward(p); else flashAttentionTrainForward(p);
  return nullptr;
}

// --- decoder-block steps (native/decoder_steps.cc) ---
napi_value RmsNorm(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value a[7];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
  if (argc < 7) { napi_throw_error(env, nullptr, "[native.rmsNorm] expected 7 arguments"); return nullptr; }
  float *x, *w, *out;
  int32_t T, H, center;
  double eps;
  bool ok = arrayData(env, a[0], &x) && arrayData(env, a[1], &w) && arrayData(env, a[2], &out) &&
            napi_get_value_int32(env, a[3], &T) == napi_ok && napi_get_value_int32(env, a[4], &H) == napi_ok &&
            napi_get_value_double(env, a[5], &eps) == napi_ok && napi_get_value_int32(env, a[6], &center) == napi_ok;
  if (!ok || x == nullptr || out == nullptr) { napi_throw_type_error(env, nullptr, "[native.rmsNorm] bad argument types"); return nullptr; }
  rmsNormRows(x, w, out, T, H, static_cast<float>(eps), center != 0);
  return nullptr;
}

napi_value Swiglu(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value a[12];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
  if (argc < 12) { napi_throw_error(env, nullptr, "[native.swiglu] expected 12 arguments"); return nullptr; }
  SwiGLUParams p{};
  bool ok = arrayData(env, a[0], const_cast<float**>(&p.x)) && arrayData(env, a[1], const_cast<float**>(&p.gate)) &&
            arrayData(env, a[2], const_cast<float**>(&p.up)) && arrayData(env, a[3], const_cast<float**>(&p.down)) &&
            arrayData(env, a[4], const_cast<float**>(&p.gateBias)) && arrayData(env, a[5], const_cast<float**>(&p.upBias)) &&
            arrayData(env, a[6], const_cast<float**>(&p.downBias)) && arrayData(env, a[7], const_cast<float**>(&p.residual)) &&
            arrayData(env, a[8], &p.out) && napi_get_value_int32(env, a[9], &p.T) == napi_ok &&
            napi_get_value_int32(env, a[10], &p.H) == napi_ok && napi_get_value_int32(env, a[11], &p.I) == napi_ok;
  if (!ok || !p.x || !p.gate || !p.up || !p.down || !p.out) {
    napi_throw_type_error(env, nullptr, "[native.swiglu] bad argument types");
    return nullptr;
  }
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

}  // namespace

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"ropeSplitStore", nullptr, RopeSplitStore, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"flashAttention", nullptr, FlashAttention, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgemm", nullptr, Sgemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"flashTrain", nullptr, FlashTrain, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rmsNorm", nullptr, RmsNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"swiglu", nullptr, Swiglu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, Threads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"mapShared", nullptr, MapShared, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unlinkShared", nullptr, UnlinkShared, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
