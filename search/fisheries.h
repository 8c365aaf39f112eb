// The Boettiger, Mangel & Munch (2015) experiment: a fish stock follows a model with a tipping
// point (Allen/Allee); a manager sees 40 unharvested years and must set a harvest policy. Policies
// from a Gaussian process and from parametric fits (Ricker, Allen, Myers) are each solved by SDP
// and then simulated on the true model with the same noise, so their net present values compare
// directly against the policy that knows the truth.
//
// Timing: harvest before growth, S = max(0, x − h), x' = Z·f(S), log Z ~ N(0, σ_g²).
// Reward min(x, h). Discount factor γ from δ by `discount_convention` (the reference code uses
// 1 − δ; 1/(1 + δ) is the continuous-compounding alternative); the same γ discounts the
// simulated NPV.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "search/gp.h"
#include "search/population.h"

namespace scion::search {

enum class DiscountConvention { kOneMinusDelta, kOneOverOnePlusDelta };

struct FisheriesConfig {
  PopulationModel truth{PopulationModelKind::kAllen, {2.0, 8.0, 5.0}, 0.05};  // r, K, C; σ_g
  // Observations: `num_observations` unharvested stock values from `observed_x0`.
  double observed_x0 = 5.5;
  int num_observations = 40;
  bool origin_pseudo_point = true;  // add the (0, 0) transition: no fish, no recruits
  uint64_t data_seed = 1;
  uint64_t evaluation_seed = 2;
  // SDP: the same grid for stock and harvest.
  double grid_max = 15.0;
  int grid_size = 50;
  double delta = 0.01;
  DiscountConvention discount_convention = DiscountConvention::kOneMinusDelta;
  double value_tolerance = 1e-6;
  // Evaluation.
  int replicates = 100;
  int steps = 50;
  double evaluation_x0 = 10.0;
  double crash_threshold = 1.0;   // final stock below this counts as a collapse
  int trajectories_kept = 5;      // per policy, for plots
  // Which policies to build: "true", "gp", "allen", "ricker", "myers".
  std::vector<std::string> policies = {"true", "gp", "allen", "ricker", "myers"};
  GpOptions gp;                   // zero mean, SE kernel by default (as in the paper)
};

struct PolicyOutcome {
  std::string name;
  std::vector<double> harvest;     // (S) harvest chosen at each stock grid point
  std::vector<double> escapement;  // (S) max(0, x − h)
  std::vector<double> npv;         // (R) per replicate
  std::vector<double> relative;    // (R) npv / npv of the true-model policy, same noise
  double mean_relative = 0.0, median_relative = 0.0, min_relative = 0.0, max_relative = 0.0;
  double crash_fraction = 0.0;
  std::vector<std::vector<double>> trajectories;  // (kept, steps) stock before harvest
  std::vector<double> model_params;  // fitted parameters (parametric), empty otherwise
  double model_sigma = 0.0;
  double aic = 0.0;                   // parametric fits only
  int dp_iterations = 0;
};

struct FisheriesResult {
  std::vector<double> observations;  // the simulated series
  std::vector<double> grid;          // (S) stock and harvest grid
  double discount = 0.0;
  GpHyperparameters gp_hyperparameters;  // first (or only) set
  std::vector<double> gp_mean;       // (S) GP predictive mean of x' at S = grid
  std::vector<PolicyOutcome> policies;
};

Status ValidateFisheriesConfig(const FisheriesConfig& config);
double DiscountFactor(double delta, DiscountConvention convention);

Result<FisheriesResult> RunFisheries(const FisheriesConfig& config);

// Finds a policy by name in a result, nullptr if absent.
const PolicyOutcome* FindPolicy(const FisheriesResult& result, const std::string& name);

}  // namespace scion::search
