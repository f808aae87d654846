// A tiny persistent thread pool: `parallelFor(n, fn)` runs fn(i) for i in [0, n) on the calling
// thread plus the pool's workers, items taken from an atomic counter (dynamic balance).
// Workers sleep on a condition variable between calls; they live until the process exits.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

class ThreadPool {
 public:
  explicit ThreadPool(int nThreads) { resize(nThreads); }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int nThreads) {
    if (nThreads < 1) nThreads = 1;
    while (static_cast<int>(workers_.size()) + 1 < nThreads) {
      workers_.emplace_back([this] { workerLoop(); });
      workers_.back().detach();
    }
    active_ = nThreads;
  }
  int active() const { return active_; }

  void parallelFor(int n, const std::function<void(int)>& fn) {
    int helpers = std::min(active_ - 1, n - 1);
    if (helpers <= 0) {
      for (int i = 0; i < n; i++) fn(i);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      want_ = helpers;
      pending_ = helpers;
      gen_++;
    }
    cv_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mu_);
    // Helpers that have not woken up yet are not waited for (matters on a loaded machine).
    pending_ -= want_;
    want_ = 0;
    done_.wait(lock, [this] { return pending_ == 0; });
    fn_ = nullptr;
  }

 private:
  void drain() {
    for (;;) {
      int i = next_.fetch_add(1);
      if (i >= n_) break;
      (*fn_)(i);
    }
  }
  void workerLoop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return gen_ != seen && want_ > 0; });
        seen = gen_;
        want_--;
      }
      drain();
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_;
  const std::function<void(int)>* fn_ = nullptr;
  std::atomic<int> next_{0};
  int n_ = 0, want_ = 0, pending_ = 0, active_ = 1;
  uint64_t gen_ = 0;
};

ThreadPool& pool();
