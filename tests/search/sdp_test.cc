#include "search/sdp.h"

#include <cmath>

#include <gtest/gtest.h>

namespace scion::search {
namespace {

// Three states in a row; action 0 steps left, action 1 steps right (walls at the ends); being in
// state 2 pays 1 per step whatever the action. Optimal: always right.
Mdp Corridor() {
  Mdp m = MakeMdp(3, 2);
  for (int s = 0; s < 3; ++s) {
    m.P(0, s, std::max(s - 1, 0)) = 1.0;
    m.P(1, s, std::min(s + 1, 2)) = 1.0;
  }
  m.R(2, 0) = m.R(2, 1) = 1.0;
  return m;
}

TEST(ValueIteration, CorridorClosedForm) {
  ValueIterationOptions o;
  o.discount = 0.9;
  o.tolerance = 1e-12;
  Result<DpSolution> sol = SolveValueIteration(Corridor(), o);
  ASSERT_TRUE(sol.ok());
  EXPECT_TRUE(sol->converged);
  EXPECT_EQ(sol->policy, (std::vector<int>{1, 1, 1}));
  // Tolerance 1e-12 on the update bounds the error by 1e-12·γ/(1−γ) ≈ 1e-11.
  EXPECT_NEAR(sol->value[2], 1.0 / 0.1, 1e-9);
  EXPECT_NEAR(sol->value[1], 0.9 / 0.1, 1e-9);
  EXPECT_NEAR(sol->value[0], 0.81 / 0.1, 1e-9);
}

// State 0: "take" pays 1 and stays; "invest" pays 0 and moves to state 1, which pays 2 forever.
// Investing is optimal iff 2γ > 1 (infinite horizon).
Mdp TakeOrInvest() {
  Mdp m = MakeMdp(2, 2);
  m.P(0, 0, 0) = 1.0;
  m.P(1, 0, 1) = 1.0;
  m.P(0, 1, 1) = m.P(1, 1, 1) = 1.0;
  m.R(0, 0) = 1.0;
  m.R(1, 0) = m.R(1, 1) = 2.0;
  return m;
}

TEST(ValueIteration, PolicyDependsOnDiscount) {
  struct Case { double discount; int action_in_0; };
  for (const Case& c : {Case{0.3, 0}, Case{0.45, 0}, Case{0.55, 1}, Case{0.9, 1}}) {
    ValueIterationOptions o;
    o.discount = c.discount;
    Result<DpSolution> sol = SolveValueIteration(TakeOrInvest(), o);
    ASSERT_TRUE(sol.ok());
    EXPECT_EQ(sol->policy[0], c.action_in_0) << "discount " << c.discount;
    const double expected = c.action_in_0 == 0 ? 1 / (1 - c.discount) : 2 * c.discount / (1 - c.discount);
    EXPECT_NEAR(sol->value[0], expected, 1e-6) << "discount " << c.discount;
  }
}

TEST(ValueIteration, FiniteHorizonStagePolicies) {
  // γ = 0.9. Horizon 1: take (1 > 0). Horizon 2: take 1 + 0.9 = 1.9 beats invest 0.9·2 = 1.8.
  // Horizon 3: invest 1.8 + 1.62 = 3.42 beats take 1 + 0.9 + 0.81 = 2.71.
  struct Case { int horizon; int first_action; double value0; };
  for (const Case& c : {Case{1, 0, 1.0}, Case{2, 0, 1.9}, Case{3, 1, 3.42}}) {
    ValueIterationOptions o;
    o.discount = 0.9;
    o.horizon = c.horizon;
    Result<DpSolution> sol = SolveValueIteration(TakeOrInvest(), o);
    ASSERT_TRUE(sol.ok());
    ASSERT_EQ(int(sol->stage_policy.size()), c.horizon);
    EXPECT_EQ(sol->stage_policy[0][0], c.first_action) << "horizon " << c.horizon;
    EXPECT_EQ(sol->stage_policy.back()[0], 0) << "the last stage always takes";
    EXPECT_NEAR(sol->value[0], c.value0, 1e-12);
  }
}

TEST(ValueIteration, StochasticGamble) {
  // From state 0: "safe" pays 0.5 and ends in the absorbing state 2; "gamble" reaches the paying
  // state 1 (pays 1 per step) with probability p, else state 2. Both 1 and 2 absorb.
  // Gamble value γ p/(1−γ) vs 0.5: with γ = 0.5 the gamble wins iff p > 0.5.
  for (double p : {0.3, 0.7}) {
    Mdp m = MakeMdp(3, 2);
    m.P(0, 0, 2) = 1.0;
    m.P(1, 0, 1) = p;
    m.P(1, 0, 2) = 1 - p;
    for (int a = 0; a < 2; ++a) { m.P(a, 1, 1) = 1.0; m.P(a, 2, 2) = 1.0; m.R(1, a) = 1.0; }
    m.R(0, 0) = 0.5;
    ValueIterationOptions o;
    o.discount = 0.5;
    Result<DpSolution> sol = SolveValueIteration(m, o);
    ASSERT_TRUE(sol.ok());
    EXPECT_EQ(sol->policy[0], p > 0.5 ? 1 : 0) << p;
    EXPECT_NEAR(sol->value[0], std::max(0.5, 0.5 * p / 0.5), 1e-6) << p;
  }
}

TEST(ValueIteration, RejectsBadModels) {
  Mdp m = Corridor();
  m.P(0, 1, 0) = 0.5;  // row sums to 0.5
  Result<DpSolution> sol = SolveValueIteration(m, {});
  ASSERT_FALSE(sol.ok());
  EXPECT_NE(sol.status().message().find("action 0, state 1"), std::string::npos) << sol.status().message();
  ValueIterationOptions o;
  o.discount = 1.0;
  EXPECT_FALSE(SolveValueIteration(Corridor(), o).ok()) << "infinite horizon without discounting";
  EXPECT_FALSE(SolveValueIteration(MakeMdp(0, 1), {}).ok());
}

double NormalCdf(double x, double mean, double sd) { return 0.5 * std::erfc(-(x - mean) / (sd * std::sqrt(2.0))); }

TEST(Discretize, MassOnGrid) {
  const std::vector<double> grid = Linspace(0.0, 4.0, 5);
  // Centred on a grid point: symmetric mass, all of it accounted for.
  std::vector<double> p = DiscretizeOntoGrid(grid, [](double x) { return NormalCdf(x, 2.0, 0.5); });
  double sum = 0;
  for (double v : p) sum += v;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_NEAR(p[1], p[3], 1e-12);
  EXPECT_NEAR(p[2], NormalCdf(2.5, 2, 0.5) - NormalCdf(1.5, 2, 0.5), 1e-12);
  // Mass below grid[1] = 1 goes to point 0 in the fisheries convention, only below 0.5 otherwise.
  auto cdf = [](double x) { return NormalCdf(x, 0.8, 0.1); };
  EXPECT_NEAR(DiscretizeOntoGrid(grid, cdf, GridEdges::kLowestAbsorbsBelowSecond)[0], NormalCdf(1.0, 0.8, 0.1), 1e-12);
  EXPECT_NEAR(DiscretizeOntoGrid(grid, cdf)[0], NormalCdf(0.5, 0.8, 0.1), 1e-12);
  // A point mass beyond the grid lands on the last point.
  EXPECT_EQ(DiscretizeOntoGrid(grid, [](double x) { return x >= 9.0 ? 1.0 : 0.0; })[4], 1.0);
}

TEST(Discretize, NearestIndexAndLinspace) {
  const std::vector<double> g = Linspace(0.0, 15.0, 50);
  ASSERT_EQ(g.size(), 50u);
  EXPECT_DOUBLE_EQ(g.back(), 15.0);
  EXPECT_EQ(NearestIndex(g, -3.0), 0);
  EXPECT_EQ(NearestIndex(g, 100.0), 49);
  EXPECT_EQ(NearestIndex(g, g[17] + 0.1), 17);
}

}  // namespace
}  // namespace scion::search
