// See mpi_wait.h.
#include "mpi_wait.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>

namespace mpi_wait {

State& state() {
  static State s;
  return s;
}

namespace {

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

}  // namespace

void ChainSignalHandlers() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, &g_prevTerm);
  sigaction(SIGINT, &sa, &g_prevInt);
}

static std::string Interrupted(const char* fn) {
  return std::string("[mpi.") + fn + "] rank " + std::to_string(state().rank) + ": interrupted by " +
         (g_signal.load() == SIGTERM ? "SIGTERM (mpirun ends the job: another rank failed or the job was stopped)" : "SIGINT");
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
  if (std::this_thread::get_id() != state().initThread && state().provided < MPI_THREAD_MULTIPLE) {
    return std::string("[mpi.") + fn + "] called from another thread than the one that initialized MPI (thread level < MPI_THREAD_MULTIPLE)";
  }
  if (!state().broken.empty()) return std::string("[mpi.") + fn + "] the communicator is unusable after an earlier failure: " + state().broken;
  return "";
}

// Polls `reqs` until all complete, an error, or the deadline. Returns "" on success.
static std::string WaitAll(std::vector<MPI_Request>& reqs, double timeoutMs, const char* fn) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  int spins = 0;
  for (;;) {
    int done = 0;
    int rc = MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      state().broken = std::string("[mpi.") + fn + "] rank " + std::to_string(state().rank) + ": " + ErrorString(rc);
      return state().broken;
    }
    if (done) return "";
    if (g_signal.load()) return state().broken = Interrupted(fn);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (timeoutMs > 0 && ms > timeoutMs) {
      state().broken = std::string("[mpi.") + fn + "] rank " + std::to_string(state().rank) + " of " + std::to_string(state().size) +
                 ": no answer from the other ranks within " + std::to_string(static_cast<long long>(timeoutMs)) +
                 " ms (a rank died or stopped calling the same collective)";
      return state().broken;
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
static std::string RunBlocking(const std::function<int()>& collective, double timeoutMs, const char* fn) {
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
      state().broken = !late ? Interrupted(fn)
        : std::string("[mpi.") + fn + "] rank " + std::to_string(state().rank) + " of " + std::to_string(state().size) +
          ": no answer from the other ranks within " + std::to_string(static_cast<long long>(timeoutMs)) +
          " ms (a rank died or stopped calling the same collective)";
      return state().broken;
    }
  }
  const int rc = st->rc;
  lock.unlock();
  worker.join();
  if (rc != MPI_SUCCESS) {
    state().broken = std::string("[mpi.") + fn + "] rank " + std::to_string(state().rank) + ": " + ErrorString(rc);
    return state().broken;
  }
  return "";
}

std::string Run(const std::function<int()>& blocking, const std::function<int(std::vector<MPI_Request>&)>& start,
                double timeoutMs, const char* fn) {
  if (state().provided >= MPI_THREAD_SERIALIZED) return RunBlocking(blocking, timeoutMs, fn);
  std::vector<MPI_Request> reqs;
  const int rc = start(reqs);
  if (rc != MPI_SUCCESS) return state().broken = std::string("[mpi.") + fn + "] starting the collective failed: " + ErrorString(rc);
  return WaitAll(reqs, timeoutMs, fn);
}

}  // namespace mpi_wait
