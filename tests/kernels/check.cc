// Helpers shared by every consistency case: registry, random inputs, errors, poisoned buffers.
#include "tests/kernels/check.h"

#include <cstdlib>
#include <cstdio>
#include <limits>

#if SCION_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace scion::check {

std::vector<Case>& Registry() {
  static std::vector<Case> cases;
  return cases;
}

uint64_t Seed() {
  static const uint64_t seed = [] {
    if (const char* env = std::getenv("SCION_CHECK_SEED"); env != nullptr && *env != '\0') {
      return static_cast<uint64_t>(std::strtoull(env, nullptr, 0));
    }
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  return seed;
}

std::vector<float> Random(size_t n, std::mt19937_64& rng, float scale) {
  // Normal draws: attention logits then spread like real activations; uniform inputs would keep
  // every softmax row nearly flat and hide errors in the max/rescale logic.
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> out(n);
  for (float& x : out) x = dist(rng);
  return out;
}

namespace {
template <typename Ref>
double RelL2Impl(const std::vector<float>& a, const std::vector<Ref>& ref) {
  if (a.size() < ref.size()) return std::numeric_limits<double>::quiet_NaN();
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double x = a[i], y = static_cast<double>(ref[i]);
    if (!std::isfinite(x) || !std::isfinite(y)) return std::numeric_limits<double>::quiet_NaN();
    num += (x - y) * (x - y);
    den += y * y;
  }
  if (den == 0) return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}
}  // namespace

double RelL2(const std::vector<float>& a, const std::vector<double>& ref) { return RelL2Impl(a, ref); }
double RelL2(const std::vector<float>& a, const std::vector<float>& ref) { return RelL2Impl(a, ref); }

bool AllFinite(const std::vector<float>& a) {
  for (float x : a) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

std::vector<float> Poisoned(size_t n) {
  std::vector<float> buf(n + kSentinelCount, std::numeric_limits<float>::quiet_NaN());
  for (size_t i = n; i < buf.size(); ++i) buf[i] = kSentinel;
  return buf;
}

bool SentinelsIntact(const std::vector<float>& buf, size_t n) {
  if (buf.size() < n + kSentinelCount) return false;
  for (size_t i = n; i < n + kSentinelCount; ++i) {
    if (buf[i] != kSentinel) return false;
  }
  return true;
}

bool HaveCudaDevice() {
#if SCION_WITH_CUDA
  static const bool have = [] {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
  }();
  return have;
#else
  return false;
#endif
}

}  // namespace scion::check
