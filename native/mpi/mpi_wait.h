// Waiting on MPI collectives without hanging (used by mpi_binding.cc): a timeout per call, a
// SIGTERM / SIGINT that wakes the wait, and the process-wide MPI state.
#pragma once
#include <mpi.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace mpi_wait {

struct State {
  std::string broken;          // first fatal error (a timeout, a signal), empty while usable
  std::thread::id initThread;  // MPI calls are funneled through the thread that initialized it
  int rank = 0, size = 1, provided = MPI_THREAD_SINGLE;
};
State& state();

// Chains a SIGTERM / SIGINT handler in front of the current ones (Node's): it flags the signal
// so a waiting collective returns, then passes the signal on.
void ChainSignalHandlers();

std::string ErrorString(int code);
bool IsActive();
// The error every collective checks first (not initialized, wrong thread, broken), or "".
std::string Usable(const char* fn);

// Runs one collective and waits at most `timeoutMs` (0: no limit): `blocking()` on a helper
// thread where MPI gave MPI_THREAD_SERIALIZED or more, else `start(reqs)` (the non-blocking
// forms) polled with MPI_Testall. Returns "" on success, else the error, after which the
// communicator is marked broken.
std::string Run(const std::function<int()>& blocking, const std::function<int(std::vector<MPI_Request>&)>& start,
                double timeoutMs, const char* fn);

}  // namespace mpi_wait
