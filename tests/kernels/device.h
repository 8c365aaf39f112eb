// Device buffers for the CUDA cases of scion-kernel-check. Every buffer carries kSentinelCount
// guard elements after its n elements; Download() returns them as kSentinel when untouched, so
// SentinelsIntact() catches out-of-bounds writes on the device too. Without CUDA (or without a
// device) nothing here is called: the cases SKIP first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"

namespace scion::check {

enum class Precision { kF32, kBF16 };

// bf16 with round-to-nearest-even (what __float2bfloat16 does), on the host.
uint16_t ToBF16(float x);
float FromBF16(uint16_t b);
// x rounded through bf16: the CPU reference then sees exactly the inputs the device sees.
std::vector<float> RoundBF16(std::vector<float> x);

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  ~DeviceBuffer();

  // n elements copied from `host` (converted to `p`), then the guard elements.
  static DeviceBuffer Upload(const std::vector<float>& host, Precision p);
  // n elements of NaN (poison: an unwritten output shows up as NaN), then the guard elements.
  static DeviceBuffer Poisoned(size_t n, Precision p);
  // n + kSentinelCount floats; the guard part is kSentinel where its bits are unchanged.
  std::vector<float> Download() const;

  void* get() const { return ptr_; }
  float* f32() const { return static_cast<float*>(ptr_); }
  size_t size() const { return n_; }

 private:
  void* ptr_ = nullptr;
  size_t n_ = 0;
  Precision p_ = Precision::kF32;
};

// Throws std::runtime_error with the CUDA error string when the device reports one (the harness
// prints it as the case's failure).
void DeviceSync();

// Runs fn(stream) while a fresh stream is captured into a CUDA graph, then launches the graph and
// waits for it. Returns fn's status, else the capture's or the launch's error: an op that
// synchronises its stream (which capture forbids) fails here.
Status RunCaptured(const std::function<Status(void* stream)>& fn);

}  // namespace scion::check
