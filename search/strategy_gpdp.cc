#include "search/strategy_gpdp.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "search/sdp.h"

namespace scion::search {
namespace {

// Per-stage MDP: rewards are expectations of the known reward over the next-state cells.
Mdp StageMdp(const StagedProblem& p, int stage, const TransitionCdf& model) {
  const int n = int(p.state_grid.size());
  Mdp mdp = MakeMdp(n, p.num_actions);
  for (int s = 0; s < n; ++s) {
    for (int a = 0; a < p.num_actions; ++a) {
      const std::vector<double> prob = DiscretizeOntoGrid(p.state_grid, model(stage, p.state_grid[s], a));
      double r = 0.0;
      for (int k = 0; k < n; ++k) r += prob[k] * p.reward(stage, p.state_grid[s], a, p.state_grid[k]);
      mdp.R(s, a) = r;
      std::copy(prob.begin(), prob.end(), &mdp.transition[(size_t(a) * n + s) * n]);
    }
  }
  return mdp;
}

std::vector<double> TerminalValues(const StagedProblem& p) {
  std::vector<double> v(p.state_grid.size(), 0.0);
  if (p.terminal)
    for (size_t i = 0; i < v.size(); ++i) v[i] = p.terminal(p.state_grid[i]);
  return v;
}

std::vector<double> Features(const StagedProblem& p, const GpdpOptions& o, int stage, double state, int action) {
  std::vector<double> f{state};
  for (int a = 0; a < p.num_actions; ++a) f.push_back(a == action ? 1.0 : 0.0);
  if (o.stage_feature && p.num_stages > 1) f.push_back(double(stage) / (p.num_stages - 1));
  return f;
}

double NormalCdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

}  // namespace

int StagedPlan::Action(const std::vector<double>& grid, int stage, double state) const {
  return policy[std::clamp(stage, 0, int(policy.size()) - 1)][NearestIndex(grid, state)];
}

Status ValidateStagedProblem(const StagedProblem& p) {
  if (p.num_stages < 1) return Status::InvalidArgument("num_stages: must be >= 1");
  if (p.num_actions < 1) return Status::InvalidArgument("num_actions: must be >= 1");
  if (p.state_grid.size() < 2) return Status::InvalidArgument("state_grid: needs at least 2 points");
  if (!std::is_sorted(p.state_grid.begin(), p.state_grid.end()))
    return Status::InvalidArgument("state_grid: must be sorted");
  if (!p.reward) return Status::InvalidArgument("reward: must be set");
  if (!(p.discount >= 0.0 && p.discount <= 1.0)) return Status::InvalidArgument("discount: must be in [0, 1]");
  return Status::Ok();
}

Result<StagedPlan> PlanWithModel(const StagedProblem& p, const TransitionCdf& model) {
  SCION_RETURN_IF_ERROR(ValidateStagedProblem(p));
  const int n = int(p.state_grid.size());
  StagedPlan plan;
  plan.policy.assign(p.num_stages, std::vector<int>(n, 0));
  plan.value.assign(p.num_stages + 1, {});
  plan.value[p.num_stages] = TerminalValues(p);
  for (int t = p.num_stages - 1; t >= 0; --t) {
    const Mdp mdp = StageMdp(p, t, model);
    SCION_RETURN_IF_ERROR(ValidateMdp(mdp));
    plan.value[t].resize(n);
    BellmanBackup(mdp, p.discount, plan.value[t + 1], plan.value[t], plan.policy[t]);
  }
  return plan;
}

Result<std::vector<double>> EvaluatePlan(const StagedProblem& p, const TransitionCdf& truth,
                                         const StagedPlan& plan) {
  SCION_RETURN_IF_ERROR(ValidateStagedProblem(p));
  const int n = int(p.state_grid.size());
  if (int(plan.policy.size()) != p.num_stages) return Status::InvalidArgument("plan: wrong number of stages");
  std::vector<double> value = TerminalValues(p);
  for (int t = p.num_stages - 1; t >= 0; --t) {
    const Mdp mdp = StageMdp(p, t, truth);
    std::vector<double> next(n);
    for (int s = 0; s < n; ++s) {
      const int a = plan.policy[t][s];
      double expect = 0.0;
      for (int k = 0; k < n; ++k) expect += mdp.P(a, s, k) * value[k];
      next[s] = mdp.R(s, a) + p.discount * expect;
    }
    value.swap(next);
  }
  return value;
}

Result<GaussianProcess> FitTransitionModel(const StagedProblem& p, const std::vector<StageTransition>& data,
                                           const GpdpOptions& o) {
  SCION_RETURN_IF_ERROR(ValidateStagedProblem(p));
  if (data.size() < 2) return Status::InvalidArgument("gpdp: needs at least 2 completed transitions");
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  for (size_t i = 0; i < data.size(); ++i) {
    const StageTransition& d = data[i];
    if (d.stage < 0 || d.stage >= p.num_stages || d.action < 0 || d.action >= p.num_actions)
      return Status::InvalidArgument("gpdp: transition " + std::to_string(i) + " has a stage or action out of range");
    x.push_back(Features(p, o, d.stage, d.state, d.action));
    y.push_back(o.model_increment ? d.next_state - d.state : d.next_state);
  }
  return GaussianProcess::Fit(x, y, o.gp);
}

Result<StagedPlan> PlanGpdp(const StagedProblem& p, const std::vector<StageTransition>& data,
                            const GpdpOptions& o) {
  Result<GaussianProcess> fitted = FitTransitionModel(p, data, o);
  if (!fitted.ok()) return fitted.status();
  auto gp = std::make_shared<GaussianProcess>(std::move(*fitted));
  TransitionCdf model = [&p, &o, gp](int stage, double state, int action) -> std::function<double(double)> {
    const GpPrediction pred = gp->Predict(Features(p, o, stage, state, action), /*include_noise=*/true);
    const double mean = pred.mean + (o.model_increment ? state : 0.0);
    const double sd = std::sqrt(std::max(pred.variance, 1e-18));
    return [mean, sd](double x) { return NormalCdf((x - mean) / sd); };
  };
  return PlanWithModel(p, model);
}

int NextDecision(const StagedProblem& p, const StagedPlan& plan, int stage, double state, double epsilon,
                 std::mt19937_64& rng) {
  if (epsilon > 0.0 && std::uniform_real_distribution<double>(0.0, 1.0)(rng) < epsilon)
    return std::uniform_int_distribution<int>(0, p.num_actions - 1)(rng);
  return plan.Action(p.state_grid, stage, state);
}

}  // namespace scion::search
