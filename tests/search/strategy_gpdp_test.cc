#include "search/strategy_gpdp.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "search/sdp.h"

namespace scion::search {
namespace {

// A layer-by-layer conversion problem: five stages; the state q is the accumulated quality loss.
// Actions: keep (q unchanged, reward 0), convert (q + 0.3, reward 1), aggressive
// (q + 0.2 + 1.5 q, reward 2: cheap while the model is intact, ruinous once it is not). A final
// loss above 1 costs 10 per unit; rewards are discounted by 0.95 per stage so that doing the same
// thing earlier is strictly better (no ties between orderings). The optimum from q = 0 is
// aggressive, aggressive, convert, keep, keep (q: 0 → 0.2 → 0.7 → 1.0), worth 4.66; constant
// plans earn 0.66 at best.
constexpr double kNoiseSd = 0.03;

double MeanIncrement(double q, int action) {
  switch (action) {
    case 0: return 0.0;
    case 1: return 0.3;
    default: return 0.2 + 1.5 * q;
  }
}

StagedProblem Conversion() {
  StagedProblem p;
  p.num_stages = 5;
  p.state_grid = Linspace(0.0, 3.0, 31);
  p.num_actions = 3;
  p.reward = [](int, double, int action, double) { return double(action); };
  p.terminal = [](double q) { return -10.0 * std::max(0.0, q - 1.0); };
  p.discount = 0.95;
  return p;
}

TransitionCdf Truth() {
  return [](int, double q, int action) -> std::function<double(double)> {
    const double mean = q + MeanIncrement(q, action);
    return [mean](double x) { return 0.5 * std::erfc(-(x - mean) / (kNoiseSd * std::sqrt(2.0))); };
  };
}

StageTransition Step(int stage, double q, int action, std::mt19937_64& rng) {
  std::normal_distribution<double> z(0.0, kNoiseSd);
  return {stage, q, action, q + MeanIncrement(q, action) + z(rng)};
}

// Episodes from q = 0 with random actions.
std::vector<StageTransition> RandomEpisodes(const StagedProblem& p, int episodes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, p.num_actions - 1);
  std::vector<StageTransition> data;
  for (int e = 0; e < episodes; ++e) {
    double q = 0.0;
    for (int t = 0; t < p.num_stages; ++t) {
      data.push_back(Step(t, q, pick(rng), rng));
      q = data.back().next_state;
    }
  }
  return data;
}

TEST(StagedPlanning, ExactPlanIsStateDependent) {
  const StagedProblem p = Conversion();
  Result<StagedPlan> exact = PlanWithModel(p, Truth());
  ASSERT_TRUE(exact.ok()) << exact.status().ToString();
  const double best = exact->value[0][0];
  for (int a = 0; a < p.num_actions; ++a) {
    StagedPlan constant;
    constant.policy.assign(p.num_stages, std::vector<int>(p.state_grid.size(), a));
    Result<std::vector<double>> v = EvaluatePlan(p, Truth(), constant);
    ASSERT_TRUE(v.ok());
    EXPECT_LT((*v)[0], best - 0.5) << "constant action " << a;
  }
  double q = 0.0;
  const int path[] = {2, 2, 1, 0, 0};
  for (int t = 0; t < p.num_stages; ++t) {
    EXPECT_EQ(exact->Action(p.state_grid, t, q), path[t]) << "stage " << t;
    q += MeanIncrement(q, path[t]);
  }
  Result<std::vector<double>> self = EvaluatePlan(p, Truth(), *exact);
  ASSERT_TRUE(self.ok());
  EXPECT_NEAR((*self)[0], best, 1e-12);
  // State dependence at the last stage: aggressive when intact, convert at 0.5, keep at 1.0.
  EXPECT_EQ(exact->Action(p.state_grid, 4, 0.0), 2);
  EXPECT_EQ(exact->Action(p.state_grid, 4, 0.5), 1);
  EXPECT_EQ(exact->Action(p.state_grid, 4, 1.0), 0);
}

TEST(Gpdp, RecoversOptimalPolicyFromRandomTrials) {
  const StagedProblem p = Conversion();
  Result<StagedPlan> exact = PlanWithModel(p, Truth());
  ASSERT_TRUE(exact.ok());
  const std::vector<StageTransition> data = RandomEpisodes(p, 20, 3);  // 100 transitions
  Result<StagedPlan> gpdp = PlanGpdp(p, data, GpdpOptions{});
  ASSERT_TRUE(gpdp.ok()) << gpdp.status().ToString();
  // Same decisions along the optimal (noise-free) path from q = 0.
  double q = 0.0;
  for (int t = 0; t < p.num_stages; ++t) {
    const int a = exact->Action(p.state_grid, t, q);
    EXPECT_EQ(gpdp->Action(p.state_grid, t, q), a) << "stage " << t << " q " << q;
    q += MeanIncrement(q, a);
  }
  // And the GPDP policy, run on the true dynamics, earns the optimum's value. Over data seeds 1–10
  // it came within 0.1% nine times and 0.8% once; 2% leaves room for that, while delaying one
  // decision by a stage already costs about 1% and a wrong first decision far more.
  Result<std::vector<double>> v = EvaluatePlan(p, Truth(), *gpdp);
  ASSERT_TRUE(v.ok());
  EXPECT_GT((*v)[0], exact->value[0][0] - 0.02 * std::fabs(exact->value[0][0]));
}

TEST(Gpdp, SequentialTrialsConvergeToOptimum) {
  // The search loop: a few random trials, then each new trial follows the current GPDP plan
  // (ε-greedy); the plan is refitted every 4 trials from all completed transitions.
  const StagedProblem p = Conversion();
  Result<StagedPlan> exact = PlanWithModel(p, Truth());
  ASSERT_TRUE(exact.ok());
  std::vector<StageTransition> data = RandomEpisodes(p, 4, 11);
  std::mt19937_64 rng(12);
  Result<StagedPlan> plan = PlanGpdp(p, data, GpdpOptions{});
  ASSERT_TRUE(plan.ok());
  for (int trial = 0; trial < 12; ++trial) {
    double q = 0.0;
    for (int t = 0; t < p.num_stages; ++t) {
      data.push_back(Step(t, q, NextDecision(p, *plan, t, q, 0.2, rng), rng));
      q = data.back().next_state;
    }
    if (trial % 4 == 3) {
      plan = PlanGpdp(p, data, GpdpOptions{});
      ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    }
  }
  Result<std::vector<double>> v = EvaluatePlan(p, Truth(), *plan);
  ASSERT_TRUE(v.ok());
  EXPECT_GT((*v)[0], exact->value[0][0] - 0.02 * std::fabs(exact->value[0][0]));
}

TEST(Gpdp, ErrorsNameTheProblem) {
  StagedProblem p = Conversion();
  EXPECT_FALSE(PlanGpdp(p, {}, GpdpOptions{}).ok());
  Result<StagedPlan> bad = PlanGpdp(p, {{9, 0.0, 0, 0.1}, {0, 0.0, 0, 0.1}}, GpdpOptions{});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("transition 0"), std::string::npos);
  p.state_grid = {1.0};
  EXPECT_EQ(ValidateStagedProblem(p).message().rfind("state_grid", 0), 0u);
  p = Conversion();
  p.reward = nullptr;
  EXPECT_EQ(ValidateStagedProblem(p).message().rfind("reward", 0), 0u);
}

}  // namespace
}  // namespace scion::search
