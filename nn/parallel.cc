#include "nn/parallel.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace scion::nn {
namespace {

// Below this much work per call a single thread is faster than waking the pool.
constexpr int64_t kMinParallelCost = 1 << 15;

class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this, i] { Loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_; }

  void Run(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    std::lock_guard<std::mutex> run_lock(run_mu_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_items_ = n;
      pending_ = n_ - 1;
      ++generation_;
    }
    cv_.notify_all();
    Chunk(0, n, fn);
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return pending_ == 0; });
    fn_ = nullptr;
  }

 private:
  void Chunk(int index, int64_t n, const std::function<void(int64_t, int64_t)>& fn) const {
    int64_t per = (n + n_ - 1) / n_;
    int64_t b = std::min<int64_t>(n, per * index), e = std::min<int64_t>(n, b + per);
    if (b < e) fn(b, e);
  }
  void Loop(int index) {
    uint64_t seen = 0;
    while (true) {
      const std::function<void(int64_t, int64_t)>* fn;
      int64_t n;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (quit_) return;
        fn = fn_;
        n = n_items_;
      }
      Chunk(index, n, *fn);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (--pending_ == 0) done_cv_.notify_one();
      }
    }
  }

  const int n_;
  std::vector<std::thread> workers_;
  std::mutex run_mu_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_, done_cv_;
  uint64_t generation_ = 0;
  bool quit_ = false;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_items_ = 0;
  int pending_ = 0;
};

Pool& GlobalPool() {
  static Pool pool(NumThreads());
  return pool;
}

}  // namespace

int NumThreads() {
  static const int n = [] {
    if (const char* env = std::getenv("SCION_THREADS")) {
      int v = std::atoi(env);
      if (v > 0) return std::min(v, 256);
    }
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return n;
}

void ParallelFor(int64_t n, int64_t cost_per_item, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (NumThreads() == 1 || n == 1 || n * cost_per_item < kMinParallelCost) {
    fn(0, n);
    return;
  }
  GlobalPool().Run(n, fn);
}

}  // namespace scion::nn
