#include "search/gp.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <string>

#include "search/optimize.h"

namespace scion::search {
namespace {

using Rows = std::vector<std::vector<double>>;

// K = k(X, X) + σ_n² diag(noise_scale) (noise_scale empty: all ones).
Matrix KernelMatrix(KernelType kernel, const GpHyperparameters& h, const Rows& x,
                    const std::vector<double>& noise_scale = {}) {
  const int n = int(x.size());
  Matrix k(n, n);
  const double noise = std::exp(h.log_noise_variance);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j <= i; ++j) {
      double v = KernelValue(kernel, h, x[i], x[j]);
      k(i, j) = v;
      k(j, i) = v;
    }
    k(i, i) += noise * (noise_scale.empty() ? 1.0 : noise_scale[i]);
  }
  return k;
}

// Packs hyperparameters as [log σ_f², log ℓ..., log σ_n²] for the optimiser and the sampler.
std::vector<double> Pack(const GpHyperparameters& h) {
  std::vector<double> p{h.log_signal_variance};
  p.insert(p.end(), h.log_length_scales.begin(), h.log_length_scales.end());
  p.push_back(h.log_noise_variance);
  return p;
}

GpHyperparameters Unpack(const std::vector<double>& p) {
  GpHyperparameters h;
  h.log_signal_variance = p.front();
  h.log_length_scales.assign(p.begin() + 1, p.end() - 1);
  h.log_noise_variance = p.back();
  return h;
}

Status CheckData(const Rows& x, const std::vector<double>& y) {
  if (x.empty()) return Status::InvalidArgument("gp: no observations");
  if (x.size() != y.size()) return Status::InvalidArgument("gp: x and y differ in length");
  const size_t d = x.front().size();
  if (d == 0) return Status::InvalidArgument("gp: inputs have no dimensions");
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i].size() != d) return Status::InvalidArgument("gp: x row " + std::to_string(i) + " has a different dimension");
    for (double v : x[i])
      if (!std::isfinite(v)) return Status::InvalidArgument("gp: x row " + std::to_string(i) + " is not finite");
    if (!std::isfinite(y[i])) return Status::InvalidArgument("gp: y[" + std::to_string(i) + "] is not finite");
  }
  return Status::Ok();
}

// Univariate slice sampling with stepping out (Neal 2003), one coordinate at a time, inside a box.
void SliceSweep(const std::function<double(const std::vector<double>&)>& log_density,
                std::vector<double>& p, double& current, const std::vector<double>& lo,
                const std::vector<double>& hi, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  const double width = 1.0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double level = current + std::log(unif(rng));
    const double x0 = p[i];
    double left = x0 - width * unif(rng), right = left + width;
    auto at = [&](double v) { std::vector<double> q = p; q[i] = v; return log_density(q); };
    for (int s = 0; s < 8 && left > lo[i] && at(left) > level; ++s) left -= width;
    for (int s = 0; s < 8 && right < hi[i] && at(right) > level; ++s) right += width;
    left = std::max(left, lo[i]);
    right = std::min(right, hi[i]);
    for (int shrink = 0; shrink < 50; ++shrink) {
      const double v = left + (right - left) * unif(rng);
      const double lv = at(v);
      if (lv > level) { p[i] = v; current = lv; break; }
      if (v < x0) left = v; else right = v;
    }
  }
}

}  // namespace

double KernelValue(KernelType kernel, const GpHyperparameters& h, const std::vector<double>& a,
                   const std::vector<double>& b) {
  double r2 = 0.0;
  const bool shared = h.log_length_scales.size() == 1;
  for (size_t d = 0; d < a.size(); ++d) {
    const double ell = std::exp(h.log_length_scales[shared ? 0 : d]);
    const double t = (a[d] - b[d]) / ell;
    r2 += t * t;
  }
  const double sf2 = std::exp(h.log_signal_variance);
  if (kernel == KernelType::kSquaredExponential) return sf2 * std::exp(-0.5 * r2);
  const double r = std::sqrt(5.0 * r2);
  return sf2 * (1.0 + r + r * r / 3.0) * std::exp(-r);
}

Result<double> LogMarginalLikelihood(KernelType kernel, const GpHyperparameters& h, const Rows& x,
                                     const std::vector<double>& y) {
  SCION_RETURN_IF_ERROR(CheckData(x, y));
  Result<Cholesky> chol = FactorWithJitter(KernelMatrix(kernel, h, x));
  if (!chol.ok()) return chol.status();
  const std::vector<double> alpha = chol->Solve(y);
  double fit = 0.0;
  for (size_t i = 0; i < y.size(); ++i) fit += y[i] * alpha[i];
  return -0.5 * fit - 0.5 * chol->LogDet() - 0.5 * double(y.size()) * std::log(2.0 * std::numbers::pi);
}

Result<GaussianProcess> GaussianProcess::Fit(const Rows& x, const std::vector<double>& y,
                                             const GpOptions& options) {
  SCION_RETURN_IF_ERROR(CheckData(x, y));
  const int n = int(x.size()), d = int(x.front().size());
  const int num_lengths = options.ard ? d : 1;

  // Output normalisation; the hyperparameter box is set relative to the normalised outputs.
  double offset = 0.0, scale = 1.0;
  if (options.normalize_y) {
    for (double v : y) offset += v / n;
    double var = 0.0;
    for (double v : y) var += (v - offset) * (v - offset) / n;
    scale = var > 1e-300 ? std::sqrt(var) : 1.0;
  }
  std::vector<double> yn(n);
  double second_moment = 0.0;
  for (int i = 0; i < n; ++i) {
    yn[i] = (y[i] - offset) / scale;
    second_moment += yn[i] * yn[i] / n;
  }
  if (second_moment < 1e-12) second_moment = 1.0;
  std::vector<double> range(d, 1.0);
  for (int j = 0; j < d; ++j) {
    double lo = x[0][j], hi = x[0][j];
    for (const auto& row : x) { lo = std::min(lo, row[j]); hi = std::max(hi, row[j]); }
    if (hi > lo) range[j] = hi - lo;
  }
  double mean_range = 0.0;
  for (double r : range) mean_range += r / d;

  std::vector<double> lo, hi;
  lo.push_back(std::log(options.min_signal_ratio * second_moment));
  hi.push_back(std::log(options.max_signal_ratio * second_moment));
  for (int j = 0; j < num_lengths; ++j) {
    const double r = options.ard ? range[j] : mean_range;
    lo.push_back(std::log(options.min_length_scale * r));
    hi.push_back(std::log(options.max_length_scale * r));
  }
  lo.push_back(std::log(options.min_noise_ratio * second_moment));
  hi.push_back(std::log(options.max_noise_ratio * second_moment));

  GpHyperparameters start;
  if (options.initial) {
    start = *options.initial;
    if (int(start.log_length_scales.size()) != num_lengths)
      return Status::InvalidArgument("gp: initial hyperparameters have " +
                                     std::to_string(start.log_length_scales.size()) +
                                     " length scales, expected " + std::to_string(num_lengths));
  } else {
    start.log_signal_variance = std::log(second_moment);
    for (int j = 0; j < num_lengths; ++j)
      start.log_length_scales.push_back(std::log(0.3 * (options.ard ? range[j] : mean_range)));
    start.log_noise_variance = std::log(1e-2 * second_moment);
  }
  if (!options.optimize) return Build(x, y, options, {start});

  auto neg_lml = [&](const std::vector<double>& p) {
    Result<double> v = LogMarginalLikelihood(options.kernel, Unpack(p), x, yn);
    return v.ok() ? -*v : std::numeric_limits<double>::infinity();
  };
  NelderMeadOptions nm;
  nm.max_evaluations = options.max_evaluations;
  nm.lower = lo;
  nm.upper = hi;
  nm.initial_step = 0.7;
  std::mt19937_64 rng(options.seed);
  MinimizeResult best = NelderMead(neg_lml, Pack(start), nm);
  for (int r = 0; r < options.restarts; ++r) {
    std::vector<double> p0(lo.size());
    for (size_t i = 0; i < p0.size(); ++i) {
      // Restarts sample the middle of the box, where sensible hyperparameters live; a start at an
      // extreme corner wastes evaluations on a flat likelihood.
      const double mid = 0.5 * (lo[i] + hi[i]), half = 0.35 * (hi[i] - lo[i]);
      p0[i] = std::uniform_real_distribution<double>(mid - half, mid + half)(rng);
    }
    MinimizeResult m = NelderMead(neg_lml, p0, nm);
    if (m.value < best.value) best = m;
  }
  if (!std::isfinite(best.value)) return Status::FailedPrecondition("gp: no finite likelihood found");
  if (options.mode == HyperparameterMode::kMaximumLikelihood) return Build(x, y, options, {Unpack(best.x)});

  // MCMC from the ML-II optimum: flat prior on the log-parameters inside the box.
  auto log_post = [&](const std::vector<double>& p) {
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i] < lo[i] || p[i] > hi[i]) return -std::numeric_limits<double>::infinity();
    return -neg_lml(p);
  };
  std::vector<double> p = best.x;
  double current = log_post(p);
  std::vector<GpHyperparameters> samples;
  const int total = options.mcmc_burn_in + options.mcmc_samples * std::max(1, options.mcmc_thin);
  for (int it = 0; it < total; ++it) {
    SliceSweep(log_post, p, current, lo, hi, rng);
    const int k = it - options.mcmc_burn_in;
    if (k >= 0 && k % std::max(1, options.mcmc_thin) == 0) samples.push_back(Unpack(p));
  }
  if (samples.empty()) samples.push_back(Unpack(best.x));
  return Build(x, y, options, std::move(samples));
}

Result<GaussianProcess> GaussianProcess::Build(const Rows& x, const std::vector<double>& y,
                                               const GpOptions& options,
                                               std::vector<GpHyperparameters> hyper,
                                               std::vector<double> noise_scale) {
  GaussianProcess gp;
  gp.options_ = options;
  gp.dim_ = int(x.front().size());
  gp.x_ = x;
  gp.y_ = y;
  const int n = int(y.size());
  if (options.normalize_y) {
    double mean = 0.0, var = 0.0;
    for (double v : y) mean += v / n;
    for (double v : y) var += (v - mean) * (v - mean) / n;
    gp.y_offset_ = mean;
    gp.y_scale_ = var > 1e-300 ? std::sqrt(var) : 1.0;
  }
  std::vector<double> yn(n);
  for (int i = 0; i < n; ++i) yn[i] = (y[i] - gp.y_offset_) / gp.y_scale_;
  for (size_t s = 0; s < hyper.size(); ++s) {
    Result<Cholesky> chol = FactorWithJitter(KernelMatrix(options.kernel, hyper[s], x, noise_scale));
    if (!chol.ok()) return chol.status();
    Posterior post{std::move(*chol), {}};
    post.alpha = post.chol.Solve(yn);
    if (s == 0) {
      double fit = 0.0;
      for (int i = 0; i < n; ++i) fit += yn[i] * post.alpha[i];
      gp.lml_ = -0.5 * fit - 0.5 * post.chol.LogDet() - 0.5 * n * std::log(2.0 * std::numbers::pi);
    }
    gp.posteriors_.push_back(std::move(post));
  }
  gp.hyper_ = std::move(hyper);
  gp.noise_scale_ = std::move(noise_scale);
  return gp;
}

GpPrediction GaussianProcess::Predict(const std::vector<double>& x, bool include_noise) const {
  // Mixture over samples: mean = E[μ_s], variance = E[σ_s² + μ_s²] − mean².
  double sum_mean = 0.0, sum_second = 0.0;
  const int n = int(x_.size());
  std::vector<double> kstar(n);
  for (size_t s = 0; s < hyper_.size(); ++s) {
    const GpHyperparameters& h = hyper_[s];
    for (int i = 0; i < n; ++i) kstar[i] = KernelValue(options_.kernel, h, x, x_[i]);
    double mean = 0.0;
    for (int i = 0; i < n; ++i) mean += kstar[i] * posteriors_[s].alpha[i];
    const std::vector<double> v = posteriors_[s].chol.SolveLower(kstar);
    double var = KernelValue(options_.kernel, h, x, x);
    for (double t : v) var -= t * t;
    var = std::max(var, 0.0);
    if (include_noise) var += std::exp(h.log_noise_variance);
    sum_mean += mean;
    sum_second += var + mean * mean;
  }
  const double m = sum_mean / double(hyper_.size());
  const double var = std::max(sum_second / double(hyper_.size()) - m * m, 0.0);
  return {y_offset_ + y_scale_ * m, y_scale_ * y_scale_ * var};
}

Result<GaussianProcess> GaussianProcess::Condition(const Rows& extra_x,
                                                   const std::vector<double>& extra_y, bool exact) const {
  if (extra_x.empty()) return *this;
  if (extra_x.size() != extra_y.size()) return Status::InvalidArgument("gp: extra x and y differ in length");
  Rows x = x_;
  std::vector<double> y = y_;
  x.insert(x.end(), extra_x.begin(), extra_x.end());
  y.insert(y.end(), extra_y.begin(), extra_y.end());
  SCION_RETURN_IF_ERROR(CheckData(x, y));
  // Keep the normalisation of the real observations: fantasies must not rescale the model.
  GpOptions o = options_;
  o.normalize_y = false;
  std::vector<double> shifted(y.size());
  for (size_t i = 0; i < y.size(); ++i) shifted[i] = (y[i] - y_offset_) / y_scale_;
  std::vector<double> scale = noise_scale_;
  scale.resize(x_.size(), 1.0);
  scale.resize(x.size(), exact ? 0.0 : 1.0);
  Result<GaussianProcess> gp = Build(x, shifted, o, hyper_, std::move(scale));
  if (!gp.ok()) return gp;
  gp->y_ = y;
  gp->y_offset_ = y_offset_;
  gp->y_scale_ = y_scale_;
  gp->options_.normalize_y = options_.normalize_y;
  return gp;
}

}  // namespace scion::search
