#include "search/fisheries.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "search/sdp.h"

namespace scion::search {
namespace {

double NormalCdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

// The next-stock distribution given escapement S, as a CDF.
using NextStockCdf = std::function<std::function<double(double)>(double escapement)>;

NextStockCdf LognormalAround(const PopulationModel& model) {
  return [model](double s) -> std::function<double(double)> {
    const double median = model.Recruitment(s);
    if (!(median > 0.0)) return [](double x) { return x >= 0.0 ? 1.0 : 0.0; };
    const double mu = std::log(median), sigma = std::max(model.sigma, 1e-9);
    return [mu, sigma](double x) { return x <= 0.0 ? 0.0 : NormalCdf((std::log(x) - mu) / sigma); };
  };
}

NextStockCdf GaussianFrom(const GaussianProcess& gp) {
  return [&gp](double s) -> std::function<double(double)> {
    const GpPrediction p = gp.Predict({s}, /*include_noise=*/true);
    const double sd = std::sqrt(std::max(p.variance, 1e-18));
    return [m = p.mean, sd](double x) { return NormalCdf((x - m) / sd); };
  };
}

Mdp BuildHarvestMdp(const std::vector<double>& grid, const NextStockCdf& next) {
  const int n = int(grid.size());
  Mdp mdp = MakeMdp(n, n);
  for (int s = 0; s < n; ++s) {
    for (int a = 0; a < n; ++a) {
      const double x = grid[s], h = grid[a];
      mdp.R(s, a) = std::min(x, h);
      const std::vector<double> p = DiscretizeOntoGrid(grid, next(std::max(0.0, x - h)), GridEdges::kLowestAbsorbsBelowSecond);
      std::copy(p.begin(), p.end(), &mdp.transition[(size_t(a) * n + s) * n]);
    }
  }
  return mdp;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

}  // namespace

double DiscountFactor(double delta, DiscountConvention convention) {
  return convention == DiscountConvention::kOneMinusDelta ? 1.0 - delta : 1.0 / (1.0 + delta);
}

Status ValidateFisheriesConfig(const FisheriesConfig& c) {
  if (int(c.truth.params.size()) != NumModelParameters(c.truth.kind))
    return Status::InvalidArgument("truth.params: expected " + std::to_string(NumModelParameters(c.truth.kind)) + " values");
  if (!(c.truth.sigma >= 0.0)) return Status::InvalidArgument("truth.sigma: must be >= 0");
  if (!(c.observed_x0 > 0.0)) return Status::InvalidArgument("observed_x0: must be > 0");
  if (c.num_observations < 3) return Status::InvalidArgument("num_observations: must be >= 3");
  if (!(c.grid_max > 0.0)) return Status::InvalidArgument("grid_max: must be > 0");
  if (c.grid_size < 3) return Status::InvalidArgument("grid_size: must be >= 3");
  if (!(c.delta >= 0.0 && c.delta < 1.0)) return Status::InvalidArgument("delta: must be in [0, 1)");
  if (DiscountFactor(c.delta, c.discount_convention) >= 1.0)
    return Status::InvalidArgument("delta: must be > 0 for an infinite-horizon SDP");
  if (!(c.value_tolerance > 0.0)) return Status::InvalidArgument("value_tolerance: must be > 0");
  if (c.replicates < 1) return Status::InvalidArgument("replicates: must be >= 1");
  if (c.steps < 1) return Status::InvalidArgument("steps: must be >= 1");
  if (!(c.evaluation_x0 >= 0.0)) return Status::InvalidArgument("evaluation_x0: must be >= 0");
  if (c.trajectories_kept < 0) return Status::InvalidArgument("trajectories_kept: must be >= 0");
  if (c.policies.empty()) return Status::InvalidArgument("policies: must not be empty");
  for (const std::string& p : c.policies)
    if (p != "true" && p != "gp" && !ParsePopulationModel(p).ok())
      return Status::InvalidArgument("policies: unknown policy '" + p + "' (true, gp, allen, ricker, myers)");
  return Status::Ok();
}

const PolicyOutcome* FindPolicy(const FisheriesResult& result, const std::string& name) {
  for (const PolicyOutcome& p : result.policies)
    if (p.name == name) return &p;
  return nullptr;
}

Result<FisheriesResult> RunFisheries(const FisheriesConfig& c) {
  SCION_RETURN_IF_ERROR(ValidateFisheriesConfig(c));
  FisheriesResult out;
  out.grid = Linspace(0.0, c.grid_max, c.grid_size);
  out.discount = DiscountFactor(c.delta, c.discount_convention);

  // Observations: an unharvested series from the true model.
  std::mt19937_64 data_rng(c.data_seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  out.observations.push_back(c.observed_x0);
  for (int t = 1; t < c.num_observations; ++t)
    out.observations.push_back(std::exp(c.truth.sigma * normal(data_rng)) * c.truth.Recruitment(out.observations.back()));
  std::vector<double> x_now(out.observations.begin(), out.observations.end() - 1);
  std::vector<double> x_next(out.observations.begin() + 1, out.observations.end());
  if (c.origin_pseudo_point) { x_now.push_back(0.0); x_next.push_back(0.0); }

  // Common random numbers for the evaluation: every policy meets the same Z_{r,t}.
  std::mt19937_64 eval_rng(c.evaluation_seed);
  std::vector<double> shocks(size_t(c.replicates) * c.steps);  // (R, T)
  for (double& z : shocks) z = std::exp(c.truth.sigma * normal(eval_rng));

  const bool wants_true = std::find(c.policies.begin(), c.policies.end(), "true") != c.policies.end();
  std::vector<std::string> names = c.policies;
  if (!wants_true) names.insert(names.begin(), "true");  // the baseline is always computed
  ValueIterationOptions vi;
  vi.discount = out.discount;
  vi.tolerance = c.value_tolerance;

  for (const std::string& name : names) {
    PolicyOutcome po;
    po.name = name;
    NextStockCdf next;
    std::optional<GaussianProcess> gp;
    if (name == "true") {
      next = LognormalAround(c.truth);
      po.model_params = c.truth.params;
      po.model_sigma = c.truth.sigma;
    } else if (name == "gp") {
      std::vector<std::vector<double>> x;
      for (double v : x_now) x.push_back({v});
      Result<GaussianProcess> fit = GaussianProcess::Fit(x, x_next, c.gp);
      if (!fit.ok()) return Status(fit.status());
      gp.emplace(std::move(*fit));
      out.gp_hyperparameters = gp->hyperparameters().front();
      for (double s : out.grid) out.gp_mean.push_back(gp->Predict({s}).mean);
      next = GaussianFrom(*gp);
    } else {
      Result<ModelFit> fit = FitMaximumLikelihood(*ParsePopulationModel(name), x_now, x_next);
      if (!fit.ok()) return Status(fit.status());
      po.model_params = fit->model.params;
      po.model_sigma = fit->model.sigma;
      po.aic = fit->aic;
      next = LognormalAround(fit->model);
    }
    Result<DpSolution> sol = SolveValueIteration(BuildHarvestMdp(out.grid, next), vi);
    if (!sol.ok()) return Status(sol.status());
    po.dp_iterations = sol->iterations;
    for (int s = 0; s < c.grid_size; ++s) {
      const double h = out.grid[sol->policy[s]];
      po.harvest.push_back(h);
      po.escapement.push_back(std::max(0.0, out.grid[s] - h));
    }
    // Simulate on the true model; the policy is read at the nearest stock grid point.
    int crashes = 0;
    for (int r = 0; r < c.replicates; ++r) {
      double x = c.evaluation_x0, npv = 0.0, weight = 1.0;
      std::vector<double> path;
      for (int t = 0; t < c.steps; ++t) {
        path.push_back(x);
        const double h = std::min(x, po.harvest[NearestIndex(out.grid, x)]);
        npv += weight * h;
        weight *= out.discount;
        x = shocks[size_t(r) * c.steps + t] * c.truth.Recruitment(std::max(0.0, x - h));
      }
      if (path.back() < c.crash_threshold) ++crashes;
      po.npv.push_back(npv);
      if (r < c.trajectories_kept) po.trajectories.push_back(std::move(path));
    }
    po.crash_fraction = double(crashes) / c.replicates;
    out.policies.push_back(std::move(po));
  }

  const PolicyOutcome& truth = out.policies.front();
  for (PolicyOutcome& po : out.policies) {
    for (int r = 0; r < c.replicates; ++r)
      // A true-policy NPV of 0 happens only with x0 = 0, where every policy earns 0 too.
      po.relative.push_back(truth.npv[r] > 0.0 ? po.npv[r] / truth.npv[r] : 1.0);
    double sum = 0.0;
    for (double v : po.relative) sum += v;
    po.mean_relative = sum / c.replicates;
    po.median_relative = Median(po.relative);
    po.min_relative = *std::min_element(po.relative.begin(), po.relative.end());
    po.max_relative = *std::max_element(po.relative.begin(), po.relative.end());
  }
  if (!wants_true) out.policies.erase(out.policies.begin());
  return out;
}

}  // namespace scion::search
