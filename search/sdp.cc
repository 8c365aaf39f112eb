#include "search/sdp.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace scion::search {

Mdp MakeMdp(int num_states, int num_actions) {
  Mdp m;
  m.num_states = num_states;
  m.num_actions = num_actions;
  m.transition.assign(size_t(num_actions) * num_states * num_states, 0.0);
  m.reward.assign(size_t(num_states) * num_actions, 0.0);
  return m;
}

Status ValidateMdp(const Mdp& mdp) {
  const size_t s = size_t(mdp.num_states), a = size_t(mdp.num_actions);
  if (s == 0 || a == 0) return Status::InvalidArgument("mdp: needs at least one state and one action");
  if (mdp.transition.size() != a * s * s) return Status::InvalidArgument("mdp: transition has the wrong size");
  if (mdp.reward.size() != s * a) return Status::InvalidArgument("mdp: reward has the wrong size");
  if (!mdp.terminal.empty() && mdp.terminal.size() != s)
    return Status::InvalidArgument("mdp: terminal has the wrong size");
  for (double r : mdp.reward)
    if (!std::isfinite(r)) return Status::InvalidArgument("mdp: reward is not finite");
  for (int act = 0; act < mdp.num_actions; ++act) {
    for (int st = 0; st < mdp.num_states; ++st) {
      double sum = 0.0;
      for (int nx = 0; nx < mdp.num_states; ++nx) {
        const double p = mdp.P(act, st, nx);
        if (!(p >= 0.0) || !std::isfinite(p))
          return Status::InvalidArgument("mdp: transition has a negative or non-finite entry");
        sum += p;
      }
      // 1e-6: rows are built by differencing CDFs, so rounding leaves ~1e-12; a real error is O(1).
      if (std::fabs(sum - 1.0) > 1e-6)
        return Status::InvalidArgument("mdp: transition row (action " + std::to_string(act) + ", state " +
                                       std::to_string(st) + ") sums to " + std::to_string(sum));
    }
  }
  return Status::Ok();
}

namespace {

// [first, last] non-zero next states of each (action, state) row. Transitions from a narrow
// predictive distribution touch a handful of grid points, so skipping the zeros makes value
// iteration several times faster on the fisheries grids.
struct RowSpans {
  std::vector<int> first, last;  // (A, S)
};

RowSpans FindSpans(const Mdp& mdp) {
  RowSpans spans;
  const size_t rows = size_t(mdp.num_actions) * mdp.num_states;
  spans.first.assign(rows, 0);
  spans.last.assign(rows, -1);
  for (size_t r = 0; r < rows; ++r) {
    const double* row = &mdp.transition[r * mdp.num_states];
    int lo = 0, hi = mdp.num_states - 1;
    while (lo <= hi && row[lo] == 0.0) ++lo;
    while (hi >= lo && row[hi] == 0.0) --hi;
    spans.first[r] = lo;
    spans.last[r] = hi;
  }
  return spans;
}

void Backup(const Mdp& mdp, const RowSpans* spans, double discount, const std::vector<double>& value,
            std::vector<double>& next_value, std::vector<int>& policy) {
  for (int s = 0; s < mdp.num_states; ++s) {
    double best = -std::numeric_limits<double>::infinity();
    int best_a = 0;
    for (int a = 0; a < mdp.num_actions; ++a) {
      const size_t r = size_t(a) * mdp.num_states + s;
      const double* row = &mdp.transition[r * mdp.num_states];
      const int lo = spans ? spans->first[r] : 0, hi = spans ? spans->last[r] : mdp.num_states - 1;
      double expect = 0.0;
      for (int n = lo; n <= hi; ++n) expect += row[n] * value[n];
      const double q = mdp.R(s, a) + discount * expect;
      // A relative margin keeps ties on the lowest action index even when rounding differs by an
      // ulp between actions.
      if (a == 0 || q > best + 1e-12 * std::max(1.0, std::fabs(best))) { best = q; best_a = a; }
    }
    next_value[s] = best;
    policy[s] = best_a;
  }
}

}  // namespace

void BellmanBackup(const Mdp& mdp, double discount, const std::vector<double>& value,
                   std::vector<double>& next_value, std::vector<int>& policy) {
  Backup(mdp, nullptr, discount, value, next_value, policy);
}

Result<DpSolution> SolveValueIteration(const Mdp& mdp, const ValueIterationOptions& options) {
  SCION_RETURN_IF_ERROR(ValidateMdp(mdp));
  if (!(options.discount >= 0.0 && options.discount <= 1.0))
    return Status::InvalidArgument("value iteration: discount must be in [0, 1]");
  if (options.horizon < 0) return Status::InvalidArgument("value iteration: horizon must be >= 0");
  if (options.horizon == 0 && options.discount >= 1.0)
    return Status::InvalidArgument("value iteration: an infinite horizon needs discount < 1");
  const int s = mdp.num_states;
  DpSolution sol;
  std::vector<double> value = mdp.terminal.empty() ? std::vector<double>(s, 0.0) : mdp.terminal;
  std::vector<double> next(s);
  std::vector<int> policy(s, 0);
  const RowSpans spans = FindSpans(mdp);
  if (options.horizon > 0) {
    sol.stage_policy.assign(options.horizon, {});
    for (int t = options.horizon - 1; t >= 0; --t) {
      Backup(mdp, &spans, options.discount, value, next, policy);
      sol.stage_policy[t] = policy;
      value.swap(next);
    }
    sol.value = value;
    sol.policy = sol.stage_policy.front();
    sol.iterations = options.horizon;
    sol.converged = true;
    return sol;
  }
  for (int it = 0; it < options.max_iterations; ++it) {
    Backup(mdp, &spans, options.discount, value, next, policy);
    double change = 0.0;
    for (int i = 0; i < s; ++i) change = std::max(change, std::fabs(next[i] - value[i]));
    value.swap(next);
    sol.iterations = it + 1;
    if (change < options.tolerance) { sol.converged = true; break; }
  }
  // The greedy policy with respect to the final values.
  Backup(mdp, &spans, options.discount, value, next, policy);
  sol.value = value;
  sol.policy = policy;
  return sol;
}

std::vector<double> DiscretizeOntoGrid(const std::vector<double>& grid,
                                       const std::function<double(double)>& cdf, GridEdges edges) {
  const size_t n = grid.size();
  std::vector<double> p(n, 0.0);
  if (n == 0) return p;
  if (n == 1) { p[0] = 1.0; return p; }
  std::vector<double> upper(n);  // upper edge of each cell's interval
  upper[0] = edges == GridEdges::kMidpoints ? 0.5 * (grid[0] + grid[1]) : grid[1];
  for (size_t i = 1; i + 1 < n; ++i) upper[i] = 0.5 * (grid[i] + grid[i + 1]);
  double below = 0.0;
  for (size_t i = 0; i + 1 < n; ++i) {
    const double c = std::clamp(cdf(upper[i]), below, 1.0);
    p[i] = c - below;
    below = c;
  }
  p[n - 1] = 1.0 - below;
  return p;
}

int NearestIndex(const std::vector<double>& grid, double x) {
  int best = 0;
  for (int i = 1; i < int(grid.size()); ++i)
    if (std::fabs(grid[i] - x) < std::fabs(grid[best] - x)) best = i;
  return best;
}

std::vector<double> Linspace(double lo, double hi, int count) {
  std::vector<double> v(std::max(count, 0));
  for (int i = 0; i < count; ++i) v[i] = count == 1 ? lo : lo + (hi - lo) * i / double(count - 1);
  return v;
}

}  // namespace scion::search
