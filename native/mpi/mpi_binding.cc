// N-API binding of the few MPI calls the project needs (lib/mpi/comm.ts wraps it):
// init with thread support, rank / size, in-place float32 sum allreduce (chunked), broadcast,
// barrier, finalize (plain, and with a watchdog for signal handlers), abort.
//
// Every collective waits at most `timeoutMs` (0: no limit; see mpi_wait.h): the blocking call on
// a helper thread where MPI gave MPI_THREAD_SERIALIZED or more, else the non-blocking MPI-3
// form (MPI_Iallreduce, MPI_Ibcast, MPI_Ibarrier) polled with MPI_Test. A rank that died or stopped
// answering fails the call with an error instead of hanging the others. After such a timeout the
// communicator is marked broken (the pending request can not be cancelled): every later call
// fails at once with the first error, and the process should exit (MPI can not be finalized with
// a collective in flight, so `finalize` then skips MPI_Finalize).
// MPI_COMM_WORLD gets MPI_ERRORS_RETURN, so MPI's own errors (a peer's TCP connection closed)
// come back as messages rather than aborting the job.
#include <dlfcn.h>
#include <mpi.h>
#include <node_api.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "mpi_wait.h"

namespace {

using mpi_wait::ErrorString;
using mpi_wait::IsActive;
using mpi_wait::Usable;
using mpi_wait::state;

napi_value Throw(napi_env env, const std::string& msg) {
  napi_throw_error(env, nullptr, msg.c_str());
  return nullptr;
}

double NumberArg(napi_env env, napi_value v, double dflt) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_number) return dflt;
  double d = dflt;
  napi_get_value_double(env, v, &d);
  return d;
}

napi_value MakeInt(napi_env env, int64_t x) {
  napi_value v;
  napi_create_int64(env, x, &v);
  return v;
}

// init(requestedThreadLevel 0..3) -> { rank, size, threadLevel, version }
napi_value Init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const int requested = argc > 0 ? static_cast<int>(NumberArg(env, argv[0], MPI_THREAD_FUNNELED)) : MPI_THREAD_FUNNELED;
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (fin) return Throw(env, "[mpi.init] MPI was already finalized in this process; it can not start again");
  if (!init) {
    // Open MPI loads its components with dlopen; they need libmpi's symbols global, and Node
    // loaded this addon (and so libmpi) RTLD_LOCAL. Promote libmpi to RTLD_GLOBAL first.
    Dl_info dl;
    if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &dl) && dl.dli_fname) {
      dlopen(dl.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    }
    int rc = MPI_Init_thread(nullptr, nullptr, requested, &state().provided);
    if (rc != MPI_SUCCESS) return Throw(env, "[mpi.init] MPI_Init_thread failed: " + ErrorString(rc));
    state().initThread = std::this_thread::get_id();
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    mpi_wait::ChainSignalHandlers();
  } else {
    MPI_Query_thread(&state().provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &state().rank);
  MPI_Comm_size(MPI_COMM_WORLD, &state().size);
  char ver[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(ver, &len);
  napi_value out, s;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "rank", MakeInt(env, state().rank));
  napi_set_named_property(env, out, "size", MakeInt(env, state().size));
  napi_set_named_property(env, out, "threadLevel", MakeInt(env, state().provided));
  napi_create_string_utf8(env, ver, strnlen(ver, len), &s);
  napi_set_named_property(env, out, "version", s);
  return out;
}

// allreduceSum(f32: Float32Array, timeoutMs, chunkFloats): in place, sums over every rank.
napi_value AllreduceSum(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  std::string err = Usable("allreduceSum");
  if (!err.empty()) return Throw(env, err);
  bool isTyped = false;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &isTyped) != napi_ok || !isTyped) return Throw(env, "[mpi.allreduceSum] buffer must be a Float32Array");
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_get_typedarray_info(env, argv[0], &type, &length, &data, nullptr, nullptr);
  if (type != napi_float32_array) return Throw(env, "[mpi.allreduceSum] buffer must be a Float32Array");
  const double timeoutMs = argc > 1 ? NumberArg(env, argv[1], 0) : 0;
  double chunk = argc > 2 ? NumberArg(env, argv[2], 1 << 22) : (1 << 22);
  if (!(chunk >= 1) || chunk > (1u << 30)) return Throw(env, "[mpi.allreduceSum] chunkFloats (" + std::to_string(chunk) + ") must be in [1, 2^30]");
  float* f = static_cast<float*>(data);
  const size_t step = static_cast<size_t>(chunk);
  // Each chunk is its own collective: no count overflows an int, and MPI pipelines the
  // non-blocking ones.
  err = mpi_wait::Run([f, length, step]() {
    for (size_t off = 0; off < length; off += step) {
      const int rc = MPI_Allreduce(MPI_IN_PLACE, f + off, static_cast<int>(std::min(length - off, step)), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
  }, [f, length, step](std::vector<MPI_Request>& reqs) {
    for (size_t off = 0; off < length; off += step) {
      reqs.emplace_back();
      const int rc = MPI_Iallreduce(MPI_IN_PLACE, f + off, static_cast<int>(std::min(length - off, step)), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &reqs.back());
      if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
  }, timeoutMs, "allreduceSum");
  if (!err.empty()) return Throw(env, err);
  return nullptr;
}

// broadcast(view: TypedArray | DataView | Buffer, root, timeoutMs): root's bytes to every rank.
napi_value Broadcast(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  std::string err = Usable("broadcast");
  if (!err.empty()) return Throw(env, err);
  bool isTyped = false;
  if (argc < 2 || napi_is_typedarray(env, argv[0], &isTyped) != napi_ok || !isTyped) return Throw(env, "[mpi.broadcast] buffer must be a typed array");
  napi_typedarray_type type;
  size_t length = 0, byteOffset = 0;
  void* data = nullptr;
  napi_value ab;
  napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &byteOffset);
  size_t elem = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: elem = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
    default: elem = 1;
  }
  const int root = static_cast<int>(NumberArg(env, argv[1], -1));
  if (root < 0 || root >= state().size) return Throw(env, "[mpi.broadcast] root (" + std::to_string(root) + ") must be a rank in [0, " + std::to_string(state().size) + ")");
  const double timeoutMs = argc > 2 ? NumberArg(env, argv[2], 0) : 0;
  char* bytes = static_cast<char*>(data);
  const size_t total = length * elem, chunk = size_t(1) << 30;
  err = mpi_wait::Run([bytes, total, chunk, root]() {
    for (size_t off = 0; off < total; off += chunk) {
      const int rc = MPI_Bcast(bytes + off, static_cast<int>(std::min(total - off, chunk)), MPI_BYTE, root, MPI_COMM_WORLD);
      if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
  }, [bytes, total, chunk, root](std::vector<MPI_Request>& reqs) {
    for (size_t off = 0; off < total; off += chunk) {
      reqs.emplace_back();
      const int rc = MPI_Ibcast(bytes + off, static_cast<int>(std::min(total - off, chunk)), MPI_BYTE, root, MPI_COMM_WORLD, &reqs.back());
      if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
  }, timeoutMs, "broadcast");
  if (!err.empty()) return Throw(env, err);
  return nullptr;
}

// barrier(timeoutMs)
napi_value Barrier(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  std::string err = Usable("barrier");
  if (!err.empty()) return Throw(env, err);
  const double timeoutMs = argc > 0 ? NumberArg(env, argv[0], 0) : 0;
  err = mpi_wait::Run([]() { return MPI_Barrier(MPI_COMM_WORLD); }, [](std::vector<MPI_Request>& reqs) {
    reqs.emplace_back();
    return MPI_Ibarrier(MPI_COMM_WORLD, &reqs.back());
  }, timeoutMs, "barrier");
  if (!err.empty()) return Throw(env, err);
  return nullptr;
}

// finalize(watchdogMs, exitCode): MPI_Finalize; with watchdogMs > 0 a thread ends the process with
// exitCode if it has not returned by then (a signal handler must not hang on absent peers).
// Returns true when MPI_Finalize ran, false when there was nothing to finalize or the
// communicator was broken (a collective still in flight).
napi_value Finalize(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const double watchdogMs = argc > 0 ? NumberArg(env, argv[0], 0) : 0;
  const int exitCode = argc > 1 ? static_cast<int>(NumberArg(env, argv[1], 1)) : 1;
  napi_value result;
  if (!IsActive() || !state().broken.empty()) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  if (watchdogMs > 0) {
    std::thread([watchdogMs, exitCode]() {
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(watchdogMs));
      _exit(exitCode);
    }).detach();
  }
  MPI_Finalize();
  napi_get_boolean(env, true, &result);
  return result;
}

// abort(code): MPI_Abort on MPI_COMM_WORLD (ends every rank).
napi_value Abort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const int code = argc > 0 ? static_cast<int>(NumberArg(env, argv[0], 1)) : 1;
  if (IsActive()) MPI_Abort(MPI_COMM_WORLD, code);
  _exit(code);
}

// state() -> { initialized, finalized, broken }
napi_value State(napi_env env, napi_callback_info) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  napi_value out, a, b, c;
  napi_create_object(env, &out);
  napi_get_boolean(env, init != 0, &a);
  napi_get_boolean(env, fin != 0, &b);
  napi_create_string_utf8(env, state().broken.c_str(), state().broken.size(), &c);
  napi_set_named_property(env, out, "initialized", a);
  napi_set_named_property(env, out, "finalized", b);
  napi_set_named_property(env, out, "broken", c);
  return out;
}

}  // namespace

NAPI_MODULE_INIT() {
  const struct { const char* name; napi_callback fn; } fns[] = {
    {"init", Init}, {"allreduceSum", AllreduceSum}, {"broadcast", Broadcast}, {"barrier", Barrier},
    {"finalize", Finalize}, {"abort", Abort}, {"state", State},
  };
  for (const auto& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
  return exports;
}
