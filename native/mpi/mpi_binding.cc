// N-API binding of the few MPI calls the project needs (lib/mpi/comm.ts wraps it):
// init with thread support, rank / size, in-place float32 sum allreduce (chunked), broadcast,
// barrier, finalize (plain, and with a watchdog for signal handlers), abort.
//
// Every collective waits at most `timeoutMs` (0: no limit): the blocking call on a helper thread
// where MPI gave MPI_THREAD_SERIALIZED or more (see RunBlocking), else the non-blocking MPI-3
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
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string g_broken;          // first fatal error (a timeout), empty while the communicator is usable
std::thread::id g_initThread;  // MPI calls are funneled through the thread that initialized it
int g_rank = 0, g_size = 1, g_provided = MPI_THREAD_SINGLE;

// SIGTERM / SIGINT while a collective waits: mpirun sends SIGTERM to every rank when one failed
// (or the user pressed Ctrl-C). Node's own handler only runs once the JS thread is free, so a
// handler chained in front of it sets this flag and the wait returns an error at once; the
// signal then reaches Node's handler (lib/mpi/comm.ts finalizes and exits).
std::atomic<int> g_signal{0};
struct sigaction g_prevTerm, g_prevInt;

void OnSignal(int sig, siginfo_t* info, void* ctx) {
  g_signal.store(sig);
  const struct sigaction& prev = sig == SIGTERM ? g_prevTerm : g_prevInt;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction) prev.sa_sigaction(sig, info, ctx);
  } else if (prev.sa_handler == SIG_DFL) {
    signal(sig, SIG_DFL);
    raise(sig);
  } else if (prev.sa_handler != SIG_IGN && prev.sa_handler) {
    prev.sa_handler(sig);
  }
}

void ChainSignalHandlers() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, &g_prevTerm);
  sigaction(SIGINT, &sa, &g_prevInt);
}

std::string Interrupted(const char* fn) {
  return std::string("[mpi.") + fn + "] rank " + std::to_string(g_rank) + ": interrupted by " +
         (g_signal.load() == SIGTERM ? "SIGTERM (mpirun ends the job: another rank failed or the job was stopped)" : "SIGINT");
}

napi_value Throw(napi_env env, const std::string& msg) {
  napi_throw_error(env, nullptr, msg.c_str());
  return nullptr;
}

std::string ErrorString(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, len);
}

bool IsActive() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

// Checks the state every collective needs; returns an error message or "".
std::string Usable(const char* fn) {
  if (!IsActive()) return std::string("[mpi.") + fn + "] MPI is not initialized (call init first) or already finalized";
  if (std::this_thread::get_id() != g_initThread && g_provided < MPI_THREAD_MULTIPLE) {
    return std::string("[mpi.") + fn + "] called from another thread than the one that initialized MPI (thread level < MPI_THREAD_MULTIPLE)";
  }
  if (!g_broken.empty()) return std::string("[mpi.") + fn + "] the communicator is unusable after an earlier failure: " + g_broken;
  return "";
}

// Polls `reqs` until all complete, an error, or the deadline. Returns "" on success.
std::string WaitAll(std::vector<MPI_Request>& reqs, double timeoutMs, const char* fn) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  int spins = 0;
  for (;;) {
    int done = 0;
    int rc = MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      g_broken = std::string("[mpi.") + fn + "] rank " + std::to_string(g_rank) + ": " + ErrorString(rc);
      return g_broken;
    }
    if (done) return "";
    if (g_signal.load()) return g_broken = Interrupted(fn);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (timeoutMs > 0 && ms > timeoutMs) {
      g_broken = std::string("[mpi.") + fn + "] rank " + std::to_string(g_rank) + " of " + std::to_string(g_size) +
                 ": no answer from the other ranks within " + std::to_string(static_cast<long long>(timeoutMs)) +
                 " ms (a rank died or stopped calling the same collective)";
      return g_broken;
    }
    // Spin first (the latency of small messages), then give the core away: ranks are often
    // oversubscribed on few cores, and a busy poller would starve the rank it waits for.
    // (A 200 us sleep after 20 ms cut a 40 MB allreduce to 0.14 GB/s: progress only happens
    // inside MPI_Test, so the sleeps stalled the pipeline. Sleeping starts after a second now.)
    if (++spins > 64) {
      if (ms > 1000) usleep(1000);
      else sched_yield();
    }
  }
}

// Runs a blocking collective on a helper thread and waits for it at most `timeoutMs` (the
// blocking forms use Open MPI's tuned algorithms: a 64 MB allreduce of 2 local ranks took 140 ms
// blocking vs 330-900 ms as MPI_Iallreduce polled with MPI_Test). Needs MPI_THREAD_SERIALIZED:
// one thread calls MPI at a time (this one waits). On a timeout the helper thread is left inside
// MPI (detached) and the communicator is marked broken.
std::string RunBlocking(const std::function<int()>& collective, double timeoutMs, const char* fn) {
  struct State { std::mutex m; std::condition_variable cv; bool done = false; int rc = MPI_SUCCESS; };
  auto st = std::make_shared<State>();
  std::thread worker([st, collective]() {
    const int rc = collective();
    std::lock_guard<std::mutex> lock(st->m);
    st->rc = rc;
    st->done = true;
    st->cv.notify_all();
  });
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
    std::chrono::duration<double, std::milli>(timeoutMs > 0 ? timeoutMs : 1e12));
  std::unique_lock<std::mutex> lock(st->m);
  while (!st->done) {
    const Clock::time_point slice = std::min<Clock::time_point>(deadline, Clock::now() + std::chrono::milliseconds(20));
    st->cv.wait_until(lock, slice, [&] { return st->done; });
    if (st->done) break;
    const bool late = Clock::now() >= deadline;
    if (late || g_signal.load()) {
      lock.unlock();
      worker.detach();
      g_broken = !late ? Interrupted(fn)
        : std::string("[mpi.") + fn + "] rank " + std::to_string(g_rank) + " of " + std::to_string(g_size) +
          ": no answer from the other ranks within " + std::to_string(static_cast<long long>(timeoutMs)) +
          " ms (a rank died or stopped calling the same collective)";
      return g_broken;
    }
  }
  const int rc = st->rc;
  lock.unlock();
  worker.join();
  if (rc != MPI_SUCCESS) {
    g_broken = std::string("[mpi.") + fn + "] rank " + std::to_string(g_rank) + ": " + ErrorString(rc);
    return g_broken;
  }
  return "";
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
    int rc = MPI_Init_thread(nullptr, nullptr, requested, &g_provided);
    if (rc != MPI_SUCCESS) return Throw(env, "[mpi.init] MPI_Init_thread failed: " + ErrorString(rc));
    g_initThread = std::this_thread::get_id();
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    ChainSignalHandlers();
  } else {
    MPI_Query_thread(&g_provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  char ver[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(ver, &len);
  napi_value out, s;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "rank", MakeInt(env, g_rank));
  napi_set_named_property(env, out, "size", MakeInt(env, g_size));
  napi_set_named_property(env, out, "threadLevel", MakeInt(env, g_provided));
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
  if (g_provided >= MPI_THREAD_SERIALIZED) {
    err = RunBlocking([f, length, chunk]() {
      for (size_t off = 0; off < length; off += static_cast<size_t>(chunk)) {
        const int n = static_cast<int>(std::min(length - off, static_cast<size_t>(chunk)));
        const int rc = MPI_Allreduce(MPI_IN_PLACE, f + off, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
      }
      return MPI_SUCCESS;
    }, timeoutMs, "allreduceSum");
    if (!err.empty()) return Throw(env, err);
    return nullptr;
  }
  std::vector<MPI_Request> reqs;
  // Chunks go out together: each is its own collective, so MPI pipelines them and no count
  // overflows an int.
  for (size_t off = 0; off < length; off += static_cast<size_t>(chunk)) {
    const size_t n = std::min(length - off, static_cast<size_t>(chunk));
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, f + off, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS) {
      g_broken = "[mpi.allreduceSum] MPI_Iallreduce failed: " + ErrorString(rc);
      return Throw(env, g_broken);
    }
    reqs.push_back(r);
  }
  err = WaitAll(reqs, timeoutMs, "allreduceSum");
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
  if (root < 0 || root >= g_size) return Throw(env, "[mpi.broadcast] root (" + std::to_string(root) + ") must be a rank in [0, " + std::to_string(g_size) + ")");
  const double timeoutMs = argc > 2 ? NumberArg(env, argv[2], 0) : 0;
  char* bytes = static_cast<char*>(data);
  const size_t total = length * elem, chunk = size_t(1) << 30;
  if (g_provided >= MPI_THREAD_SERIALIZED) {
    err = RunBlocking([bytes, total, chunk, root]() {
      for (size_t off = 0; off < total; off += chunk) {
        const int rc = MPI_Bcast(bytes + off, static_cast<int>(std::min(total - off, chunk)), MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
      }
      return MPI_SUCCESS;
    }, timeoutMs, "broadcast");
    if (!err.empty()) return Throw(env, err);
    return nullptr;
  }
  std::vector<MPI_Request> reqs;
  for (size_t off = 0; off < total; off += chunk) {
    MPI_Request r;
    int rc = MPI_Ibcast(bytes + off, static_cast<int>(std::min(total - off, chunk)), MPI_BYTE, root, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS) {
      g_broken = "[mpi.broadcast] MPI_Ibcast failed: " + ErrorString(rc);
      return Throw(env, g_broken);
    }
    reqs.push_back(r);
  }
  err = WaitAll(reqs, timeoutMs, "broadcast");
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
  if (g_provided >= MPI_THREAD_SERIALIZED) {
    err = RunBlocking([]() { return MPI_Barrier(MPI_COMM_WORLD); }, timeoutMs, "barrier");
    if (!err.empty()) return Throw(env, err);
    return nullptr;
  }
  std::vector<MPI_Request> reqs(1);
  int rc = MPI_Ibarrier(MPI_COMM_WORLD, &reqs[0]);
  if (rc != MPI_SUCCESS) return Throw(env, "[mpi.barrier] MPI_Ibarrier failed: " + ErrorString(rc));
  err = WaitAll(reqs, timeoutMs, "barrier");
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
  if (!IsActive() || !g_broken.empty()) {
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
  napi_create_string_utf8(env, g_broken.c_str(), g_broken.size(), &c);
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
