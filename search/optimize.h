// A small derivative-free minimiser (Nelder–Mead) used for GP hyperparameters, parametric
// population-model likelihoods and acquisition refinement. Objectives here have at most a dozen
// parameters and are cheap, so robustness matters more than the evaluation count.
#pragma once

#include <functional>
#include <vector>

namespace scion::search {

struct NelderMeadOptions {
  int max_evaluations = 400;
  double initial_step = 0.5;     // simplex edge along each coordinate
  double tolerance = 1e-8;       // stop when the simplex's value spread falls below this
  std::vector<double> lower;     // optional box (empty: unbounded); points are clamped into it
  std::vector<double> upper;
};

struct MinimizeResult {
  std::vector<double> x;
  double value = 0.0;
  int evaluations = 0;
};

// Minimises f from x0. Non-finite values are treated as +infinity, so an objective may return
// NaN/inf where it is undefined.
MinimizeResult NelderMead(const std::function<double(const std::vector<double>&)>& f,
                          std::vector<double> x0, const NelderMeadOptions& options = {});

}  // namespace scion::search
