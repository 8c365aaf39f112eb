// Stochastic dynamic programming over a discretised state × action grid: value iteration with a
// discount, for an infinite horizon (iterate to a tolerance) or a finite one (backward induction,
// one policy per stage). Transition probabilities come from a model's predictive distribution,
// discretised onto the state grid by DiscretizeOntoGrid.
#pragma once

#include <functional>
#include <vector>

#include "common/status.h"

namespace scion::search {

struct Mdp {
  int num_states = 0;
  int num_actions = 0;
  std::vector<double> transition;  // (A, S, S'): P(s' | s, a); each row sums to 1
  std::vector<double> reward;      // (S, A): expected immediate reward of taking a in s
  std::vector<double> terminal;    // (S) value after the last stage (finite horizon); empty = 0

  double& P(int a, int s, int next) {
    return transition[(size_t(a) * num_states + s) * num_states + next];
  }
  double P(int a, int s, int next) const {
    return transition[(size_t(a) * num_states + s) * num_states + next];
  }
  double& R(int s, int a) { return reward[size_t(s) * num_actions + a]; }
  double R(int s, int a) const { return reward[size_t(s) * num_actions + a]; }
};

// Allocates an MDP with all-zero transitions and rewards.
Mdp MakeMdp(int num_states, int num_actions);

// Shape and probability checks (rows sum to 1 within 1e-6, entries non-negative and finite).
Status ValidateMdp(const Mdp& mdp);

struct ValueIterationOptions {
  double discount = 0.99;    // γ in V = max_a R + γ P V
  int horizon = 0;           // 0: infinite horizon; > 0: that many stages of backward induction
  double tolerance = 1e-8;   // infinite horizon: stop when max |V_{k+1} − V_k| < tolerance
  int max_iterations = 100000;
};

struct DpSolution {
  std::vector<double> value;                   // (S) optimal value (stage 0 for finite horizons)
  std::vector<int> policy;                     // (S) optimal action (stage 0 for finite horizons)
  std::vector<std::vector<int>> stage_policy;  // finite horizon: (T, S), stage 0 first
  int iterations = 0;
  bool converged = false;
};

// Ties between actions go to the lowest index, so results are deterministic.
Result<DpSolution> SolveValueIteration(const Mdp& mdp, const ValueIterationOptions& options);

// How a continuous distribution's mass is assigned to grid points. With kMidpoints each point
// takes the mass between the midpoints to its neighbours (the ends take the tails). With
// kLowestAbsorbsBelowSecond point 0 takes all mass below grid[1] (a stock below the first non-zero
// grid point is treated as lost, as in the reference fisheries SDP) and point 1 takes
// [grid[1], midpoint(1, 2)).
enum class GridEdges { kMidpoints, kLowestAbsorbsBelowSecond };

// Probability mass of a next-state distribution (given by its CDF) on a sorted grid: (S), sums to 1.
std::vector<double> DiscretizeOntoGrid(const std::vector<double>& grid,
                                       const std::function<double(double)>& cdf,
                                       GridEdges edges = GridEdges::kMidpoints);

// One Bellman backup for every state: next_value[s] = max_a R(s,a) + γ Σ P(s'|s,a) V(s'), and the
// maximising action (ties to the lowest index). No validation: callers pass a valid MDP.
void BellmanBackup(const Mdp& mdp, double discount, const std::vector<double>& value,
                   std::vector<double>& next_value, std::vector<int>& policy);

// Nearest grid index to x (ties to the lower index).
int NearestIndex(const std::vector<double>& grid, double x);

// `count` evenly spaced points from lo to hi inclusive.
std::vector<double> Linspace(double lo, double hi, int count);

}  // namespace scion::search
