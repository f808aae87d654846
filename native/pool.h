// A tiny persistent thread pool: `parallelFor(n, fn)` runs fn(i) for i in [0, n) on the calling
// thread plus the pool's workers, items taken from an atomic counter (dynamic balance).
//
// Waiting: workers spin briefly (SPIN_US) for the next call before sleeping on a condition
// variable, and the caller spins while the last claimed items finish. On a busy machine a thread
// that sleeps must wait for a core to run again, often for milliseconds; the short spins keep
// back-to-back kernel calls (RoPE store, then attention) from paying that twice per call.
// Helpers that have not claimed a share of a call by the time the caller ran out of items are not
// waited for. Workers live until the process exits.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpuRelax() { _mm_pause(); }
#else
static inline void cpuRelax() {}
#endif

class ThreadPool {
 public:
  static constexpr int SPIN_US = 200;

  explicit ThreadPool(int nThreads) { resize(nThreads); }
  int active() const { return active_; }

  void resize(int nThreads) {
    if (nThreads < 1) nThreads = 1;
    while (static_cast<int>(workers_.size()) + 1 < nThreads) {
      workers_.emplace_back([this] { workerLoop(); });
      workers_.back().detach();
    }
    active_ = nThreads;
  }

  void parallelFor(int n, const std::function<void(int)>& fn) {
    int helpers = std::min(active_ - 1, n - 1);
    if (helpers <= 0) {
      for (int i = 0; i < n; i++) fn(i);
      return;
    }
    fn_ = &fn;
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    want_.store(helpers, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mu_);
      gen_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    drain();
    const int claimed = helpers - want_.exchange(0, std::memory_order_acq_rel);
    auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(4 * SPIN_US);
    while (done_.load(std::memory_order_acquire) < claimed) {
      if (std::chrono::steady_clock::now() > until) {
        std::unique_lock<std::mutex> lock(mu_);
        finished_.wait(lock, [&] { return done_.load(std::memory_order_acquire) >= claimed; });
        break;
      }
      cpuRelax();
    }
    fn_ = nullptr;
  }

 private:
  void drain() {
    for (;;) {
      int i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= n_) break;
      (*fn_)(i);
    }
  }

  void workerLoop() {
    uint64_t seen = gen_.load(std::memory_order_acquire);
    for (;;) {
      // Wait for a new call: spin a little, then sleep.
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(SPIN_US);
      while (gen_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until) cpuRelax();
      if (gen_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return gen_.load(std::memory_order_acquire) != seen; });
      }
      seen = gen_.load(std::memory_order_acquire);
      // Claim a helper slot of the current call, if one is still open.
      int w = want_.load(std::memory_order_acquire);
      while (w > 0 && !want_.compare_exchange_weak(w, w - 1, std::memory_order_acq_rel)) {}
      if (w <= 0) continue;
      drain();
      done_.fetch_add(1, std::memory_order_acq_rel);
      std::lock_guard<std::mutex> lock(mu_);
      finished_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, finished_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_ = 0;
  std::atomic<int> next_{0}, want_{0}, done_{0};
  std::atomic<uint64_t> gen_{0};
  int active_ = 1;
};

ThreadPool& pool();
