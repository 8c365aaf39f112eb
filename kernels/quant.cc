// Codebooks (RTN, normal-float, Lloyd-Max), the per-channel fit and the whole-matrix quantizer.
// The precision assignment (knapsack) is in quant_assign.cc.
#include "kernels/quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>

namespace scion::kernels::quant {

// ---- fp16 ----------------------------------------------------------------------------------
uint16_t FloatToHalf(float x) {
  uint32_t f;
  std::memcpy(&f, &x, 4);
  const uint32_t sign = (f >> 16) & 0x8000u;
  const uint32_t abs = f & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504: inf
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal (or zero)
    const float a = std::fabs(x) * 16777216.0f;  // in units of 2^-24, the subnormal step
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a)));
  }
  // Normal: rebias the exponent and round the 23-bit mantissa to 10 bits, nearest even.
  const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float out;
  if (exp == 0) {
    out = std::ldexp(static_cast<float>(mant), -24);
    if (sign) out = -out;
    return out;
  }
  const uint32_t f = exp == 31 ? (sign | 0x7f800000u | (mant << 13)) : (sign | ((exp + 112) << 23) | (mant << 13));
  std::memcpy(&out, &f, 4);
  return out;
}

// A level as stored: fp16 with at most 8 significant bits, so that it is also exactly a bf16. The
// decode's tensor cores take levels in bf16; were they rounded there, every weight of a row with
// the same code would share one rounding error, and with activations of a common sign those errors
// add up along the row instead of cancelling (2.5e-2 of y on a 1-bit 1000-column row at x + 4).
// The fit's levels move by at most 2⁻⁸ relative, far inside their quantization error.
float RoundLevel(float x) {
  uint32_t f;
  std::memcpy(&f, &x, 4);
  f = (f + 0x7fffu + ((f >> 16) & 1u)) & 0xffff0000u;  // bf16, round to nearest even
  float b;
  std::memcpy(&b, &f, 4);
  return HalfToFloat(FloatToHalf(b));  // exact unless |b| is past fp16's range (levels lie in [−1, 1])
}

namespace {
float RoundHalf(float x) { return HalfToFloat(FloatToHalf(x)); }

// Φ⁻¹(p) by bisection on the normal CDF: slow but exact to double precision, and only a handful of
// levels are ever needed.
double NormalQuantile(double p) {
  double lo = -12, hi = 12;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// torch.linspace(a, b, n)[:-1]
std::vector<double> LinspaceDropLast(double a, double b, int n) {
  std::vector<double> v;
  for (int i = 0; i + 1 < n; ++i) v.push_back(n == 1 ? a : a + (b - a) * i / (n - 1));
  return v;
}

// Index of the nearest level (levels ascending): binary search over the midpoints.
int Nearest(const std::vector<float>& levels, float u) {
  int lo = 0, hi = static_cast<int>(levels.size()) - 1;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (u < 0.5f * (levels[mid] + levels[mid + 1])) hi = mid; else lo = mid + 1;
  }
  return lo;
}

// Σ ω_j (u_j − nearest level)²: a grid's error on normalised weights.
double GridError(const std::vector<float>& u, const std::vector<double>& omega, const std::vector<float>& levels) {
  double err = 0;
  for (size_t j = 0; j < u.size(); ++j) {
    const double d = static_cast<double>(u[j]) - levels[static_cast<size_t>(Nearest(levels, u[j]))];
    err += omega[j] * d * d;
  }
  return err;
}
}  // namespace

std::vector<float> RtnLevels(int bits) {
  const int n = 1 << bits;
  std::vector<float> l(n);
  for (int i = 0; i < n; ++i) l[i] = static_cast<float>(-1.0 + 2.0 * i / (n - 1));
  return l;
}

std::vector<float> NormalFloatLevels(int bits) {
  if (bits == 1) return {-1.0f, 1.0f};
  constexpr double kOffset = 0.9677083;  // QLoRA's choice: the 1 − 0.5·(1/(2·15) + 1/(2·16)) quantile
  const int half = 1 << (bits - 1);
  std::vector<double> v;
  for (double p : LinspaceDropLast(kOffset, 0.5, half + 1)) v.push_back(NormalQuantile(p));
  for (double p : LinspaceDropLast(kOffset, 0.5, half)) v.push_back(-NormalQuantile(p));
  v.push_back(0.0);
  std::sort(v.begin(), v.end());
  const double m = std::max(std::fabs(v.front()), std::fabs(v.back()));
  std::vector<float> out;
  for (double x : v) out.push_back(static_cast<float>(x / m));
  return out;
}

std::vector<float> LloydMax(const std::vector<float>& u, const std::vector<double>& omega, std::vector<float> init,
                            int max_iterations, std::vector<double>* history) {
  // Sorted once; each bin is then a contiguous range, and its weight, first and second moments come
  // from prefix sums, so an iteration costs O(levels · log n) rather than O(n).
  const size_t n = u.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return u[a] < u[b]; });
  std::vector<float> us(n);
  std::vector<double> pw(n + 1, 0), pwu(n + 1, 0), pwuu(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    const double x = u[order[i]], w = omega[order[i]];
    us[i] = u[order[i]];
    pw[i + 1] = pw[i] + w;
    pwu[i + 1] = pwu[i] + w * x;
    pwuu[i + 1] = pwuu[i] + w * x * x;
  }
  std::vector<float> levels = std::move(init);
  const size_t L = levels.size();
  std::vector<size_t> edge(L + 1);  // bin i = sorted indices [edge[i], edge[i+1])
  auto assign = [&]() {
    edge[0] = 0;
    edge[L] = n;
    for (size_t i = 0; i + 1 < L; ++i) {
      const float t = 0.5f * (levels[i] + levels[i + 1]);
      edge[i + 1] = static_cast<size_t>(std::lower_bound(us.begin(), us.end(), t) - us.begin());
    }
    double err = 0;
    for (size_t i = 0; i < L; ++i) {
      const double w = pw[edge[i + 1]] - pw[edge[i]], wu = pwu[edge[i + 1]] - pwu[edge[i]];
      const double wuu = pwuu[edge[i + 1]] - pwuu[edge[i]];
      const double l = levels[i];
      err += std::max(0.0, wuu - 2 * l * wu + l * l * w);
    }
    return err;
  };
  double err = assign();
  if (history) history->push_back(err);
  for (int it = 0; it < max_iterations; ++it) {
    std::vector<float> next = levels;
    for (size_t i = 0; i < L; ++i) {
      const double w = pw[edge[i + 1]] - pw[edge[i]];
      if (w > 0) next[i] = static_cast<float>((pwu[edge[i + 1]] - pwu[edge[i]]) / w);  // empty bins keep theirs
    }
    const std::vector<float> prev = levels;
    levels = next;
    const double e = assign();
    if (e > err) {  // float rounding of a bin mean can cost a hair; keep the better levels
      levels = prev;
      assign();
      break;
    }
    if (history) history->push_back(e);
    const bool stalled = err - e <= 1e-12 * err;
    err = e;
    if (stalled) break;
  }
  return levels;
}

// With one scale a row, the scale is redundant beside the row's own levels, so it becomes the power
// of two p ≥ s and the levels absorb s / p ∈ (1/2, 1]. Then every s·ℓ is a bf16 exactly (ℓ has at
// most 8 significant bits once rounded), and so is each weight of a bf16 copy of Ŵ: the prefill's
// GEMM shares no rounding along a row. With several groups a row each group keeps its own absmax
// scale (a power of two there would cost each group up to half its grid).
namespace {
void ExactScale(const float* w, int64_t cols, ChannelFit& fit, std::vector<float>& u) {
  const float s = fit.scales[0];
  if (s <= 0) return;
  float p = std::ldexp(1.0f, std::ilogb(s));  // 2^⌊log2 s⌋
  if (p < s) p *= 2;
  if (RoundHalf(p) != p) return;  // past fp16's range: keep s
  for (float& l : fit.levels) l *= s / p;
  fit.scales[0] = p;
  for (int64_t j = 0; j < cols; ++j) u[j] = w[j] / p;
}
}  // namespace

Result<ChannelFit> FitChannel(const float* w, const std::vector<double>& column_weight, int64_t cols, int bits,
                              int group_size, Method method, int lloyd_iterations) {
  if (bits < 1 || bits > 4) return Status::InvalidArgument("bits: " + std::to_string(bits) + " not in 1..4");
  if (cols <= 0 || static_cast<int64_t>(column_weight.size()) != cols) {
    return Status::InvalidArgument("column_weight: size must equal cols (" + std::to_string(cols) + ")");
  }
  const int64_t g = group_size <= 0 ? cols : group_size;
  const int64_t groups = (cols + g - 1) / g;
  ChannelFit fit;
  fit.bits = bits;
  fit.scales.resize(groups);
  std::vector<float> u(cols);
  std::vector<double> omega(cols);
  for (int64_t gi = 0; gi < groups; ++gi) {
    const int64_t begin = gi * g, end = std::min(cols, begin + g);
    float amax = 0;
    for (int64_t j = begin; j < end; ++j) amax = std::max(amax, std::fabs(w[j]));
    const float s = RoundHalf(amax);
    fit.scales[gi] = s;
    for (int64_t j = begin; j < end; ++j) {
      u[j] = s > 0 ? w[j] / s : 0.0f;
      // Error in weight units is s²·(u − ℓ)², so the normalised fit weighs each point by a_j·s².
      omega[j] = column_weight[j] * static_cast<double>(s) * s;
    }
  }
  switch (method) {
    case Method::kRtnAbsmax: fit.levels = RtnLevels(bits); break;
    case Method::kNormalFloat: fit.levels = NormalFloatLevels(bits); break;
    case Method::kLloydMax: {
      // Lloyd only descends to the nearest fixed point, and from the even grid that can be a worse
      // one than the normal-float grid already is on bell-shaped rows; starting from the better of
      // the two grids makes the fit never worse than either baseline.
      std::vector<float> rtn = RtnLevels(bits), nf = NormalFloatLevels(bits);
      std::vector<float>& init = GridError(u, omega, nf) < GridError(u, omega, rtn) ? nf : rtn;
      fit.levels = LloydMax(u, omega, std::move(init), lloyd_iterations, &fit.history);
      break;
    }
  }
  if (groups == 1) ExactScale(w, cols, fit, u);
  for (float& l : fit.levels) l = RoundLevel(l);
  std::sort(fit.levels.begin(), fit.levels.end());
  fit.codes.resize(cols);
  double err = 0;
  for (int64_t j = 0; j < cols; ++j) {
    const int c = Nearest(fit.levels, u[j]);
    fit.codes[j] = static_cast<uint8_t>(c);
    const double d = static_cast<double>(w[j]) - static_cast<double>(fit.scales[j / g]) * fit.levels[c];
    err += column_weight[j] * d * d;
  }
  fit.error = err;
  return fit;
}

Status ValidateConfig(const QuantConfig& c, int64_t cols) {
  if (c.widths.empty()) return Status::InvalidArgument("widths: empty");
  for (size_t i = 0; i < c.widths.size(); ++i) {
    if (c.widths[i] < 1 || c.widths[i] > 4) {
      return Status::InvalidArgument("widths: " + std::to_string(c.widths[i]) + " not in 1..4");
    }
    for (size_t k = 0; k < i; ++k) {
      if (c.widths[k] == c.widths[i]) return Status::InvalidArgument("widths: " + std::to_string(c.widths[i]) + " twice");
    }
  }
  if (c.group_size < 0 || (c.group_size > 0 && c.group_size % 32 != 0)) {
    return Status::InvalidArgument("group_size: " + std::to_string(c.group_size) +
                                   " must be 0 (whole row) or a positive multiple of 32");
  }
  const int narrowest = *std::min_element(c.widths.begin(), c.widths.end());
  if (!std::isfinite(c.budget_bits) || c.budget_bits < narrowest) {
    return Status::InvalidArgument("budget_bits: " + std::to_string(c.budget_bits) +
                                   " is below the narrowest width (" + std::to_string(narrowest) +
                                   " bits); no assignment fits");
  }
  if (c.lloyd_iterations < 0) return Status::InvalidArgument("lloyd_iterations: negative");
  if (c.max_dp_cells < 1) return Status::InvalidArgument("max_dp_cells: must be positive");
  if (cols <= 0) return Status::InvalidArgument("cols: must be positive");
  return Status::Ok();
}

Result<QuantizedMatrix> Quantize(const float* w, int64_t rows, int64_t cols, const QuantConfig& config,
                                 const std::vector<float>& col_sq_mean) {
  SCION_RETURN_IF_ERROR(ValidateConfig(config, cols));
  if (rows <= 0) return Status::InvalidArgument("rows: must be positive");
  if (w == nullptr) return Status::InvalidArgument("w: null");
  std::vector<double> a(cols, 1.0);
  if (config.objective == Objective::kOutputDiag) {
    if (static_cast<int64_t>(col_sq_mean.size()) != cols) {
      return Status::InvalidArgument("col_sq_mean: needs one E[x_j^2] per column (" + std::to_string(cols) + ")");
    }
    double mean = 0;
    for (float v : col_sq_mean) {
      if (!std::isfinite(v) || v < 0) return Status::InvalidArgument("col_sq_mean: negative or non-finite entry");
      mean += v;
    }
    mean /= cols;
    if (!(mean > 0)) return Status::InvalidArgument("col_sq_mean: all zero");
    // A column never active in calibration still counts a little, so its weights stay sensible.
    for (int64_t j = 0; j < cols; ++j) a[j] = col_sq_mean[j] + 1e-6 * mean;
  }
  const size_t nw = config.widths.size();
  std::vector<std::vector<double>> errors(rows, std::vector<double>(nw));
  QuantizedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.group_size = config.group_size == 0 ? static_cast<int>(cols) : config.group_size;
  q.channels.resize(rows);

  // Rows are independent: spread them over the cores. First every width's error, then (after the
  // assignment) the chosen width again, so only one fit per row is ever kept in memory.
  auto parallel_rows = [&](auto&& body) -> Status {
    const int threads = static_cast<int>(std::max(1u, std::min(16u, std::thread::hardware_concurrency())));
    std::atomic<int64_t> next{0};
    std::vector<Status> status(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        for (int64_t r = next++; r < rows; r = next++) {
          Status s = body(r);
          if (!s.ok()) { status[t] = s; return; }
        }
      });
    }
    for (auto& th : pool) th.join();
    for (auto& s : status) SCION_RETURN_IF_ERROR(s);
    return Status::Ok();
  };
  SCION_RETURN_IF_ERROR(parallel_rows([&](int64_t r) -> Status {
    for (size_t i = 0; i < nw; ++i) {
      auto fit = FitChannel(w + r * cols, a, cols, config.widths[i], config.group_size, config.method,
                            config.lloyd_iterations);
      if (!fit.ok()) return fit.status();
      errors[r][i] = fit->error;
    }
    return Status::Ok();
  }));
  const int narrowest = *std::min_element(config.widths.begin(), config.widths.end());
  const int widest = *std::max_element(config.widths.begin(), config.widths.end());
  const double extra = std::min<double>(config.budget_bits - narrowest, widest - narrowest) * rows;
  Result<Assignment> assignment = rows * (extra + 1) <= static_cast<double>(config.max_dp_cells)
                                      ? AssignExact(errors, config.widths, config.budget_bits, config.max_dp_cells)
                                      : AssignLagrangian(errors, config.widths, config.budget_bits);
  if (!assignment.ok()) return assignment.status();
  SCION_RETURN_IF_ERROR(parallel_rows([&](int64_t r) -> Status {
    auto fit = FitChannel(w + r * cols, a, cols, config.widths[assignment->choice[r]], config.group_size,
                          config.method, config.lloyd_iterations);
    if (!fit.ok()) return fit.status();
    q.channels[r] = std::move(fit.value());
    return Status::Ok();
  }));
  double code_bits = 0, overhead_bits = 0;
  for (const ChannelFit& f : q.channels) {
    code_bits += static_cast<double>(f.bits) * cols;
    overhead_bits += 16.0 * f.levels.size() + 16.0 * f.scales.size();  // fp16 levels and scales
    q.total_error += f.error;
  }
  q.code_bits_per_weight = code_bits / (static_cast<double>(rows) * cols);
  q.total_bits_per_weight = (code_bits + overhead_bits) / (static_cast<double>(rows) * cols);
  q.lower_bound = assignment->lower_bound;
  return q;
}

}  // namespace scion::kernels::quant
