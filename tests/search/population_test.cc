#include "search/population.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

namespace scion::search {
namespace {

// Transitions from stocks spread over [0.5, 12] (as if under varied harvests), so every
// parameter is identified.
void Simulate(const PopulationModel& m, int n, uint64_t seed, std::vector<double>& now, std::vector<double>& next) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> stock(0.5, 12.0);
  std::normal_distribution<double> z(0.0, m.sigma);
  for (int i = 0; i < n; ++i) {
    now.push_back(stock(rng));
    next.push_back(m.Recruitment(now.back()) * std::exp(z(rng)));
  }
}

TEST(PopulationModel, RecruitmentClosedForm) {
  PopulationModel allen{PopulationModelKind::kAllen, {2, 8, 5}, 0.05};
  EXPECT_DOUBLE_EQ(allen.Recruitment(8.0), 8.0);  // K is a fixed point
  EXPECT_DOUBLE_EQ(allen.Recruitment(5.0), 5.0);  // so is the tipping point C
  EXPECT_LT(allen.Recruitment(4.0), 4.0);         // below C the stock shrinks
  EXPECT_EQ(allen.Recruitment(0.0), 0.0);
  PopulationModel ricker{PopulationModelKind::kRicker, {1.0, 10.0}, 0.1};
  EXPECT_DOUBLE_EQ(ricker.Recruitment(2.0), 2.0 * std::exp(0.8));
  PopulationModel myers{PopulationModelKind::kMyers, {1.5, 2.0, 10.0}, 0.1};
  EXPECT_DOUBLE_EQ(myers.Recruitment(2.0), 1.5 * 4.0 / (1.0 + 0.4));
}

TEST(PopulationModel, MaximumLikelihoodRecoversParameters) {
  struct Case { PopulationModel truth; double tolerance; };
  // 300 transitions with σ = 0.05: parameter standard errors are a few percent at most.
  const Case cases[] = {
      {{PopulationModelKind::kRicker, {1.2, 9.0}, 0.05}, 0.05},
      {{PopulationModelKind::kAllen, {2.0, 8.0, 5.0}, 0.05}, 0.05},
      {{PopulationModelKind::kMyers, {1.5, 2.5, 6.0}, 0.05}, 0.1},
  };
  for (const Case& c : cases) {
    std::vector<double> now, next;
    Simulate(c.truth, 300, 11, now, next);
    Result<ModelFit> fit = FitMaximumLikelihood(c.truth.kind, now, next);
    ASSERT_TRUE(fit.ok()) << fit.status().ToString();
    for (size_t i = 0; i < c.truth.params.size(); ++i)
      EXPECT_NEAR(fit->model.params[i], c.truth.params[i], c.tolerance * std::fabs(c.truth.params[i]))
          << PopulationModelName(c.truth.kind) << " param " << i;
    EXPECT_NEAR(fit->model.sigma, 0.05, 0.01);
    EXPECT_EQ(fit->num_pairs, 300);
  }
}

TEST(PopulationModel, LikelihoodPrefersTrueFamily) {
  // On data spanning the tipping point, Allen (the truth) beats Ricker by AIC.
  PopulationModel truth{PopulationModelKind::kAllen, {2.0, 8.0, 5.0}, 0.05};
  std::vector<double> now, next;
  Simulate(truth, 100, 5, now, next);
  Result<ModelFit> allen = FitMaximumLikelihood(PopulationModelKind::kAllen, now, next);
  Result<ModelFit> ricker = FitMaximumLikelihood(PopulationModelKind::kRicker, now, next);
  ASSERT_TRUE(allen.ok() && ricker.ok());
  EXPECT_LT(allen->aic, ricker->aic);
}

TEST(PopulationModel, ErrorsAndParsing) {
  EXPECT_FALSE(FitMaximumLikelihood(PopulationModelKind::kRicker, {1, 2}, {1}).ok());
  EXPECT_FALSE(FitMaximumLikelihood(PopulationModelKind::kRicker, {0, 0, 0, 0}, {0, 0, 0, 0}).ok());
  EXPECT_FALSE(FitMaximumLikelihood(PopulationModelKind::kRicker, {1, NAN, 2}, {1, 2, 3}).ok());
  EXPECT_TRUE(ParsePopulationModel("allee").ok());
  Result<PopulationModelKind> bad = ParsePopulationModel("gompertz");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("gompertz"), std::string::npos);
}

}  // namespace
}  // namespace scion::search
