// GPDP for sequential decisions: a trial makes decisions in stages (e.g. "operator for layer i",
// one layer after another) and, after each, observes a scalar state (e.g. the accumulated quality
// loss). A GP models the next state from (state, action, stage) using the transitions of completed
// trials; finite-horizon value iteration over the GP's predictive distribution, discretised on a
// state grid, gives a policy: the action for each (stage, state). A running trial's next decision
// is that policy's action at its current state (optionally ε-greedy, to keep exploring).
// The same planner, given the true transition distribution instead of the GP, gives the exact
// optimum, which is how the tests check that GPDP recovers it.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"
#include "search/gp.h"

namespace scion::search {

struct StagedProblem {
  int num_stages = 1;
  std::vector<double> state_grid;  // sorted; the states the policy is defined on
  int num_actions = 2;
  // Known reward for taking `action` at `stage` in `state` and landing in `next_state`.
  std::function<double(int stage, double state, int action, double next_state)> reward;
  std::function<double(double final_state)> terminal;  // optional; 0 when unset
  double discount = 1.0;
};

struct StageTransition {
  int stage = 0;
  double state = 0.0;
  int action = 0;
  double next_state = 0.0;
};

// The next-state distribution of (stage, state, action), as a CDF.
using TransitionCdf = std::function<std::function<double(double)>(int stage, double state, int action)>;

struct StagedPlan {
  std::vector<std::vector<int>> policy;    // (T, S) best action per stage and grid state
  std::vector<std::vector<double>> value;  // (T + 1, S) expected return to go; value[T] = terminal
  // The policy's action at the grid point nearest to `state`.
  int Action(const std::vector<double>& grid, int stage, double state) const;
};

Status ValidateStagedProblem(const StagedProblem& problem);

// Backward induction with transitions from `model` discretised on the state grid (midpoint cells).
Result<StagedPlan> PlanWithModel(const StagedProblem& problem, const TransitionCdf& model);

// Expected return at stage 0 of following `plan` when transitions follow `truth`: (S).
Result<std::vector<double>> EvaluatePlan(const StagedProblem& problem, const TransitionCdf& truth,
                                         const StagedPlan& plan);

struct GpdpOptions {
  GpOptions gp = [] {
    GpOptions g;
    g.normalize_y = true;
    g.restarts = 2;
    return g;
  }();
  bool stage_feature = true;    // give the GP the stage (transitions may differ between stages)
  bool model_increment = true;  // model next_state − state: far from data the GP then predicts
                                // "the average change" rather than "the average state"
};

// The GP fitted to the transitions (features: state, one-hot action, stage fraction).
Result<GaussianProcess> FitTransitionModel(const StagedProblem& problem,
                                           const std::vector<StageTransition>& data,
                                           const GpdpOptions& options);

// GPDP: fit the transition GP, then plan over its predictive distribution.
Result<StagedPlan> PlanGpdp(const StagedProblem& problem, const std::vector<StageTransition>& data,
                            const GpdpOptions& options);

// The next decision for a running trial: the plan's action, or with probability `epsilon` a
// uniformly random one.
int NextDecision(const StagedProblem& problem, const StagedPlan& plan, int stage, double state,
                 double epsilon, std::mt19937_64& rng);

}  // namespace scion::search
