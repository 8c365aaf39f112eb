// The kernel consistency check (ggml test-backend-ops style): one binary, every op, CUDA vs the
// CPU reference and CPU vs a float64 naive form, on fresh random inputs. No GoogleTest, so it also
// builds on the GPU machine. Each op file registers its cases with SCION_CHECK(...).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace scion::check {

struct Outcome {
  bool skipped = false;      // e.g. a CUDA case with no device
  double error = 0;          // the measured error (relative L2 unless `what` says otherwise)
  double tolerance = 0;      // the bound, with its reason in the case's source
  std::string what;          // what was compared, e.g. "dq rel-L2 vs CPU"
  std::string failure;       // non-empty: failed for a reason other than the bound (NaN, sentinel)
  bool passed() const { return skipped || (failure.empty() && error <= tolerance && !std::isnan(error)); }
};

// The three kinds of outcome a case returns.
inline Outcome Measured(std::string what, double error, double tolerance) {
  Outcome o;
  o.what = std::move(what);
  o.error = error;
  o.tolerance = tolerance;
  return o;
}
inline Outcome Skipped(std::string why) {
  Outcome o;
  o.skipped = true;
  o.what = std::move(why);
  return o;
}
inline Outcome Failed(std::string what, std::string failure) {
  Outcome o;
  o.what = std::move(what);
  o.failure = std::move(failure);
  return o;
}

struct Case {
  std::string op;     // "softmax_fwd", ...
  std::string shape;  // "B2 H3 N130 D64 causal"
  std::string mode;   // "cuda-vs-cpu", "cpu-vs-f64", "fd-grad", ...
  std::function<std::vector<Outcome>()> run;
};

std::vector<Case>& Registry();
struct Registrar {
  explicit Registrar(std::function<void(std::vector<Case>&)> add) { add(Registry()); }
};
#define SCION_CHECK_CAT2(a, b) a##b
#define SCION_CHECK_CAT(a, b) SCION_CHECK_CAT2(a, b)
// Usage: SCION_CHECK([](std::vector<scion::check::Case>& cases) { cases.push_back({...}); });
// Variadic so that commas inside the lambda need no extra parentheses.
#define SCION_CHECK(...) static ::scion::check::Registrar SCION_CHECK_CAT(scion_check_, __LINE__)(__VA_ARGS__)

// ---- helpers ------------------------------------------------------------------------------
// A fresh seed per process run unless SCION_CHECK_SEED is set (printed so failures reproduce).
uint64_t Seed();
std::vector<float> Random(size_t n, std::mt19937_64& rng, float scale = 1.0f);
// ‖a − b‖ / ‖b‖ in float64; NaN if either holds a NaN/Inf.
double RelL2(const std::vector<float>& a, const std::vector<double>& ref);
double RelL2(const std::vector<float>& a, const std::vector<float>& ref);
bool AllFinite(const std::vector<float>& a);
// Host buffer with `n` elements poisoned with NaN and kSentinelCount guard values after them;
// SentinelsIntact() reports an out-of-bounds write.
inline constexpr size_t kSentinelCount = 64;
inline constexpr float kSentinel = -123456.75f;
std::vector<float> Poisoned(size_t n);
bool SentinelsIntact(const std::vector<float>& buf, size_t n);
bool HaveCudaDevice();

}  // namespace scion::check
