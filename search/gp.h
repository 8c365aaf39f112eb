// Gaussian-process regression: squared-exponential and Matérn-5/2 kernels with ARD length scales,
// Gaussian noise, hyperparameters by maximising the log marginal likelihood (ML-II, Nelder–Mead on
// log-parameters with restarts) or by slice sampling of the log-hyperparameters (predictions are
// then averaged over the samples). Pure: no I/O, randomness only from the seed in GpOptions.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/status.h"
#include "search/linalg.h"

namespace scion::search {

enum class KernelType { kSquaredExponential, kMatern52 };

struct GpHyperparameters {
  double log_signal_variance = 0.0;        // log σ_f²
  std::vector<double> log_length_scales;   // one per input dimension (ARD), or one shared
  double log_noise_variance = -4.0;        // log σ_n²
};

// k(a, b) = σ_f² · g(r), r² = Σ_d ((a_d − b_d)/ℓ_d)²; g = exp(−r²/2) (SE) or
// (1 + √5 r + 5r²/3)·exp(−√5 r) (Matérn 5/2). A single length scale is shared by all dimensions.
double KernelValue(KernelType kernel, const GpHyperparameters& h, const std::vector<double>& a,
                   const std::vector<double>& b);

// log p(y | X, θ) = −½ yᵀK⁻¹y − ½ log|K| − (n/2) log 2π, with K = k(X, X) + σ_n² I.
Result<double> LogMarginalLikelihood(KernelType kernel, const GpHyperparameters& h,
                                     const std::vector<std::vector<double>>& x,
                                     const std::vector<double>& y);

enum class HyperparameterMode { kMaximumLikelihood, kMcmc };

struct GpOptions {
  KernelType kernel = KernelType::kSquaredExponential;
  bool ard = true;               // one length scale per input dimension
  bool normalize_y = false;      // standardise y (constant mean); otherwise zero mean, as in the paper
  HyperparameterMode mode = HyperparameterMode::kMaximumLikelihood;
  bool optimize = true;          // false: use `initial` as given
  std::optional<GpHyperparameters> initial;  // start (and, with optimize = false, the answer)
  int restarts = 4;              // ML-II starts beyond the first (heuristic) one
  int max_evaluations = 300;     // per start
  // Box on log-parameters. Length scales relative to each input's range; variances relative to
  // the (normalised) output's second moment.
  double min_length_scale = 1e-2, max_length_scale = 1e2;
  double min_noise_ratio = 1e-8, max_noise_ratio = 1.0;
  double min_signal_ratio = 1e-3, max_signal_ratio = 1e3;
  // MCMC: slice sampling with a flat prior on the log-parameters inside the box.
  int mcmc_burn_in = 60;
  int mcmc_samples = 20;
  int mcmc_thin = 2;
  uint64_t seed = 1;
};

struct GpPrediction {
  double mean = 0.0;
  double variance = 0.0;
};

class GaussianProcess {
 public:
  // Fits to x (n, d) and y (n). Errors: empty data, ragged rows, non-finite values.
  static Result<GaussianProcess> Fit(const std::vector<std::vector<double>>& x,
                                     const std::vector<double>& y, const GpOptions& options);

  // Predictive mean and variance at `x`; with include_noise the variance is that of a new
  // observation (latent variance + σ_n²). Averaged over hyperparameter samples in MCMC mode.
  GpPrediction Predict(const std::vector<double>& x, bool include_noise = false) const;

  // The same hyperparameters conditioned on extra observations (kriging believer / constant liar).
  // With `exact` the extra values are taken as noise-free (values of the latent function, as a
  // fantasy is): otherwise a noisy GP would barely lower its variance there and a batch would
  // pile onto one point.
  Result<GaussianProcess> Condition(const std::vector<std::vector<double>>& extra_x,
                                    const std::vector<double>& extra_y, bool exact = false) const;

  // One entry in ML-II mode; the retained samples in MCMC mode.
  const std::vector<GpHyperparameters>& hyperparameters() const { return hyper_; }
  // Log marginal likelihood of the (normalised) data under the first hyperparameter set.
  double log_marginal_likelihood() const { return lml_; }
  int num_observations() const { return int(y_.size()); }
  int dimension() const { return dim_; }

 private:
  struct Posterior {
    Cholesky chol;
    std::vector<double> alpha;  // (n) K⁻¹ y
  };
  static Result<GaussianProcess> Build(const std::vector<std::vector<double>>& x,
                                       const std::vector<double>& y, const GpOptions& options,
                                       std::vector<GpHyperparameters> hyper,
                                       std::vector<double> noise_scale = {});

  GpOptions options_;
  int dim_ = 0;
  std::vector<std::vector<double>> x_;  // (n, d)
  std::vector<double> y_;               // (n) raw outputs
  std::vector<double> noise_scale_;     // (n) 1 for observations, 0 for exact fantasies; empty = all 1
  double y_offset_ = 0.0, y_scale_ = 1.0;
  std::vector<GpHyperparameters> hyper_;
  std::vector<Posterior> posteriors_;   // one per hyperparameter set
  double lml_ = 0.0;
};

}  // namespace scion::search
