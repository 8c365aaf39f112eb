#include "search/population.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "search/optimize.h"

namespace scion::search {

const char* PopulationModelName(PopulationModelKind kind) {
  switch (kind) {
    case PopulationModelKind::kRicker: return "ricker";
    case PopulationModelKind::kAllen: return "allen";
    case PopulationModelKind::kMyers: return "myers";
  }
  return "unknown";
}

Result<PopulationModelKind> ParsePopulationModel(const std::string& name) {
  if (name == "ricker") return PopulationModelKind::kRicker;
  if (name == "allen" || name == "allee") return PopulationModelKind::kAllen;
  if (name == "myers") return PopulationModelKind::kMyers;
  return Status::InvalidArgument("unknown population model '" + name + "' (ricker, allen, myers)");
}

int NumModelParameters(PopulationModelKind kind) {
  return kind == PopulationModelKind::kRicker ? 2 : 3;
}

double PopulationModel::Recruitment(double s) const {
  if (s <= 0.0) return 0.0;
  const std::vector<double>& p = params;
  switch (kind) {
    case PopulationModelKind::kRicker: return s * std::exp(p[0] * (1.0 - s / p[1]));
    case PopulationModelKind::kAllen:
      return s * std::exp(p[0] * (1.0 - s / p[1]) * (s - p[2]) / p[1]);
    case PopulationModelKind::kMyers: {
      const double st = std::pow(s, p[1]);
      return p[0] * st / (1.0 + st / p[2]);
    }
  }
  return 0.0;
}

namespace {

// Optimiser coordinates: positive parameters as logs; Allen's threshold C is unconstrained.
std::vector<double> ToParams(PopulationModelKind kind, const std::vector<double>& z) {
  std::vector<double> p(z.size());
  for (size_t i = 0; i < z.size(); ++i)
    p[i] = (kind == PopulationModelKind::kAllen && i == 2) ? z[i] : std::exp(z[i]);
  return p;
}

}  // namespace

Result<ModelFit> FitMaximumLikelihood(PopulationModelKind kind, const std::vector<double>& x_now,
                                      const std::vector<double>& x_next) {
  if (x_now.size() != x_next.size()) return Status::InvalidArgument("fit: x_now and x_next differ in length");
  std::vector<double> s, log_y;
  for (size_t i = 0; i < x_now.size(); ++i) {
    if (!std::isfinite(x_now[i]) || !std::isfinite(x_next[i]))
      return Status::InvalidArgument("fit: observation " + std::to_string(i) + " is not finite");
    if (x_now[i] > 0.0 && x_next[i] > 0.0) { s.push_back(x_now[i]); log_y.push_back(std::log(x_next[i])); }
  }
  const int k = NumModelParameters(kind);
  if (int(s.size()) < k + 1)
    return Status::InvalidArgument("fit: needs at least " + std::to_string(k + 1) + " positive transitions");
  const double n = double(s.size());

  // Profile likelihood: for given f, σ̂² = mean squared log residual, and
  // −log L = n/2 (log 2π σ̂² + 1) + Σ log y.
  auto sse = [&](const std::vector<double>& z) {
    PopulationModel m{kind, ToParams(kind, z), 0.0};
    double e = 0.0;
    for (size_t i = 0; i < s.size(); ++i) {
      const double f = m.Recruitment(s[i]);
      if (!(f > 0.0) || !std::isfinite(f)) return std::numeric_limits<double>::infinity();
      const double r = log_y[i] - std::log(f);
      e += r * r;
    }
    return e;
  };
  double mean_x = 0.0, max_x = 0.0;
  for (double v : s) { mean_x += v / n; max_x = std::max(max_x, v); }
  // Starts spread over plausible growth rates and carrying capacities around the data.
  std::vector<std::vector<double>> starts;
  for (double r : {0.5, 1.5, 3.0})
    for (double kk : {mean_x, 1.5 * max_x}) {
      switch (kind) {
        case PopulationModelKind::kRicker: starts.push_back({std::log(r), std::log(kk)}); break;
        case PopulationModelKind::kAllen:
          for (double c : {0.0, 0.5 * mean_x}) starts.push_back({std::log(r), std::log(kk), c});
          break;
        case PopulationModelKind::kMyers:
          for (double theta : {1.0, 2.0}) starts.push_back({std::log(r), std::log(theta), std::log(kk)});
          break;
      }
    }
  NelderMeadOptions nm;
  nm.max_evaluations = 1500;
  nm.tolerance = 1e-12;
  MinimizeResult best;
  best.value = std::numeric_limits<double>::infinity();
  for (const auto& z0 : starts) {
    MinimizeResult m = NelderMead(sse, z0, nm);
    m = NelderMead(sse, m.x, nm);  // a restart at the optimum escapes a collapsed simplex
    if (m.value < best.value) best = m;
  }
  if (!std::isfinite(best.value)) return Status::FailedPrecondition(std::string("fit: no finite likelihood for ") + PopulationModelName(kind));
  ModelFit fit;
  // A perfect fit would give σ̂ = 0 and an infinite likelihood; 1e-12 keeps it finite.
  const double sigma2 = std::max(best.value / n, 1e-12);
  fit.model = PopulationModel{kind, ToParams(kind, best.x), std::sqrt(sigma2)};
  double sum_log_y = 0.0;
  for (double v : log_y) sum_log_y += v;
  fit.log_likelihood = -0.5 * n * (std::log(2.0 * std::numbers::pi * sigma2) + 1.0) - sum_log_y;
  fit.num_pairs = int(s.size());
  fit.aic = 2.0 * (k + 1) - 2.0 * fit.log_likelihood;
  return fit;
}

}  // namespace scion::search
