// Reconnect backoff (Paranoid Pirate): doubles from an initial delay up to a cap; Reset() after the
// peer is heard from again. Pure, deterministic.
#pragma once

#include <chrono>

namespace scion::worker {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max) : initial_(initial), max_(max), next_(initial) {}
  // The delay to wait now; the following call returns twice as much, capped.
  std::chrono::milliseconds Next() {
    auto d = next_;
    next_ = std::min(max_, next_ * 2);
    return d;
  }
  void Reset() { next_ = initial_; }

 private:
  std::chrono::milliseconds initial_, max_, next_;
};

}  // namespace scion::worker
