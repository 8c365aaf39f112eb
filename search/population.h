// Parametric stock–recruitment models and their maximum-likelihood fits under lognormal noise:
// x_{t+1} = Z·f(S_t), S_t = max(0, x_t − h_t), log Z ~ Normal(0, σ²).
//   Ricker: f(S) = S·exp(r(1 − S/K))                      params {r, K}
//   Allen (Ricker with an Allee effect):
//           f(S) = S·exp(r(1 − S/K)(S − C)/K)             params {r, K, C}
//   Myers:  f(S) = r·S^θ / (1 + S^θ/K)                     params {r, θ, K}
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace scion::search {

enum class PopulationModelKind { kRicker, kAllen, kMyers };

const char* PopulationModelName(PopulationModelKind kind);
// "ricker", "allen" (also "allee"), "myers"; error names the text.
Result<PopulationModelKind> ParsePopulationModel(const std::string& name);
int NumModelParameters(PopulationModelKind kind);

struct PopulationModel {
  PopulationModelKind kind = PopulationModelKind::kRicker;
  std::vector<double> params;  // in the order given above
  double sigma = 0.05;         // sd of log Z

  // Expected-median recruitment f(S) (the median of x_{t+1}; the mean is f·exp(σ²/2)).
  double Recruitment(double escapement) const;
};

struct ModelFit {
  PopulationModel model;
  double log_likelihood = 0.0;  // of the pairs used (lognormal density of x_{t+1})
  int num_pairs = 0;            // pairs with positive x_t and x_{t+1}
  double aic = 0.0;             // 2k − 2 log L, k counting σ
};

// Fits by maximum likelihood to observed transitions (x_t → x_{t+1}, no harvest). σ is profiled
// out (its MLE is the residual RMS); the rest by Nelder–Mead from several starts. Pairs with a
// non-positive x_t or x_{t+1} (e.g. the (0, 0) pseudo-point) carry no lognormal likelihood and are
// skipped.
Result<ModelFit> FitMaximumLikelihood(PopulationModelKind kind, const std::vector<double>& x_now,
                                      const std::vector<double>& x_next);

}  // namespace scion::search
