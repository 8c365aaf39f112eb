// Simulated workers for the control-plane benchmark: each a thread with its own DEALER speaking
// the real worker protocol (READY, HEARTBEAT, ACCEPT, PROGRESS, RESULT), running no-op jobs that
// succeed at once. They record when each job's ASSIGN arrived, so submit -> assign latency can be
// measured against the client's submit times.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace zmq {
class context_t;
}

namespace scion::bench {

using Clock = std::chrono::steady_clock;

class Fleet {
 public:
  // `n` workers named sim-0..sim-(n-1), each offering `slots` CPU cores.
  Fleet(std::string worker_addr, int n, int slots, std::chrono::milliseconds heartbeat);
  ~Fleet();

  void Start();
  void Stop();
  // Worker `index` stops answering and sending (as if its host died); returns the time of its
  // last message to the coordinator.
  Clock::time_point Silence(int index);
  // Worker `index` still accepts jobs but never finishes them (to have a job in flight when lost).
  void Hold(int index);

  int64_t completed() const { return completed_.load(); }
  // Time each job's ASSIGN reached a worker (first attempt only).
  std::unordered_map<int64_t, Clock::time_point> AssignTimes();
  size_t assigned_count();

 private:
  struct Sim;
  void Run(Sim* sim);

  const std::string addr_;
  const int slots_;
  const std::chrono::milliseconds heartbeat_;
  std::unique_ptr<zmq::context_t> ctx_;
  std::vector<std::unique_ptr<Sim>> sims_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> completed_{0};
  std::mutex mu_;  // guards assigned_
  std::unordered_map<int64_t, Clock::time_point> assigned_;
};

}  // namespace scion::bench
