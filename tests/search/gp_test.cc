#include "search/gp.h"

#include <cmath>
#include <numbers>
#include <random>

#include <gtest/gtest.h>

#include "search/linalg.h"

namespace scion::search {
namespace {

GpHyperparameters Hyp(double sf2, double ell, double sn2) {
  return {std::log(sf2), {std::log(ell)}, std::log(sn2)};
}

GpOptions Fixed(const GpHyperparameters& h, KernelType k = KernelType::kSquaredExponential) {
  GpOptions o;
  o.kernel = k;
  o.optimize = false;
  o.initial = h;
  return o;
}

TEST(Linalg, CholeskySolvesAndLogDet) {
  Matrix a(3, 3);
  const double v[9] = {4, 2, 0.4, 2, 5, 1, 0.4, 1, 3};
  a.data.assign(v, v + 9);
  Result<Cholesky> c = FactorWithJitter(a);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->jitter, 0.0);
  const std::vector<double> x = c->Solve({1, 2, 3});
  for (int i = 0; i < 3; ++i) {
    double ax = 0;
    for (int j = 0; j < 3; ++j) ax += a(i, j) * x[j];
    EXPECT_NEAR(ax, double(i + 1), 1e-12);  // well conditioned: only rounding error
  }
  // det = 4(15−1) − 2(6−0.4) + 0.4(2−2) = 44.8
  EXPECT_NEAR(c->LogDet(), std::log(44.8), 1e-12);
}

TEST(Linalg, SingularMatrixGetsJitter) {
  Matrix a(2, 2, 1.0);  // rank one
  Result<Cholesky> c = FactorWithJitter(a);
  ASSERT_TRUE(c.ok());
  EXPECT_GT(c->jitter, 0.0);
  Matrix neg(1, 1, -1.0);
  EXPECT_FALSE(FactorWithJitter(neg).ok());
}

TEST(GpKernel, ClosedFormValues) {
  const GpHyperparameters h = Hyp(2.0, 0.5, 0.1);
  // SE at distance ℓ: σ_f² e^{−1/2}.
  EXPECT_NEAR(KernelValue(KernelType::kSquaredExponential, h, {0.0}, {0.5}), 2.0 * std::exp(-0.5), 1e-14);
  // Matérn 5/2 at distance ℓ: σ_f² (1 + √5 + 5/3) e^{−√5}.
  EXPECT_NEAR(KernelValue(KernelType::kMatern52, h, {0.0}, {0.5}),
              2.0 * (1 + std::sqrt(5.0) + 5.0 / 3.0) * std::exp(-std::sqrt(5.0)), 1e-14);
  // ARD: each dimension scaled by its own length.
  GpHyperparameters ard{0.0, {0.0, std::log(2.0)}, -3.0};
  EXPECT_NEAR(KernelValue(KernelType::kSquaredExponential, ard, {0, 0}, {1, 2}), std::exp(-0.5 * 2.0), 1e-14);
}

TEST(GpRegression, OnePointPosterior) {
  const double sf2 = 1.5, ell = 0.7, sn2 = 0.2, y0 = 2.0;
  Result<GaussianProcess> gp = GaussianProcess::Fit({{0.0}}, {y0}, Fixed(Hyp(sf2, ell, sn2)));
  ASSERT_TRUE(gp.ok()) << gp.status().ToString();
  for (double x : {0.0, 0.3, 1.0, 3.0}) {
    const double k = sf2 * std::exp(-0.5 * x * x / (ell * ell));
    const GpPrediction p = gp->Predict({x});
    EXPECT_NEAR(p.mean, k * y0 / (sf2 + sn2), 1e-12) << x;
    EXPECT_NEAR(p.variance, sf2 - k * k / (sf2 + sn2), 1e-12) << x;
    EXPECT_NEAR(gp->Predict({x}, true).variance, sf2 - k * k / (sf2 + sn2) + sn2, 1e-12) << x;
  }
}

TEST(GpRegression, KnownLogMarginalLikelihood) {
  // Two points: K = [[a, b], [b, a]], a = σ_f² + σ_n², b = k(x1, x2).
  const double sf2 = 1.0, ell = 1.0, sn2 = 0.1;
  const double a = sf2 + sn2, b = sf2 * std::exp(-0.5), det = a * a - b * b;
  const double y1 = 0.5, y2 = -1.0;
  const double quad = (a * y1 * y1 - 2 * b * y1 * y2 + a * y2 * y2) / det;
  const double expected = -0.5 * quad - 0.5 * std::log(det) - std::log(2 * std::numbers::pi);
  Result<double> lml = LogMarginalLikelihood(KernelType::kSquaredExponential, Hyp(sf2, ell, sn2), {{0.0}, {1.0}}, {y1, y2});
  ASSERT_TRUE(lml.ok());
  EXPECT_NEAR(*lml, expected, 1e-12);
  Result<GaussianProcess> gp = GaussianProcess::Fit({{0.0}, {1.0}}, {y1, y2}, Fixed(Hyp(sf2, ell, sn2)));
  ASSERT_TRUE(gp.ok());
  EXPECT_NEAR(gp->log_marginal_likelihood(), expected, 1e-12);
}

TEST(GpRegression, NoiseFreeInterpolation) {
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  for (int i = 0; i < 8; ++i) { x.push_back({0.4 * i}); y.push_back(std::sin(0.4 * i)); }
  for (KernelType k : {KernelType::kSquaredExponential, KernelType::kMatern52}) {
    Result<GaussianProcess> gp = GaussianProcess::Fit(x, y, Fixed(Hyp(1.0, 1.0, 1e-12), k));
    ASSERT_TRUE(gp.ok());
    for (size_t i = 0; i < x.size(); ++i) {
      const GpPrediction p = gp->Predict(x[i]);
      // Noise 1e-12 (plus any jitter) on a well-separated design: residuals ~1e-9.
      EXPECT_NEAR(p.mean, y[i], 1e-6);
      EXPECT_LT(p.variance, 1e-6);
    }
    // Between points the smooth function is interpolated well, and uncertainty is positive.
    const GpPrediction mid = gp->Predict({1.0});
    EXPECT_NEAR(mid.mean, std::sin(1.0), 1e-2);
    EXPECT_GT(mid.variance, 0.0);
  }
}

std::pair<std::vector<std::vector<double>>, std::vector<double>> NoisySine(int n, double noise_sd, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0, noise_sd);
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  for (int i = 0; i < n; ++i) {
    const double t = 6.0 * i / (n - 1);
    x.push_back({t});
    y.push_back(std::sin(t) + z(rng));
  }
  return {x, y};
}

TEST(GpRegression, MaximumLikelihoodFindsNoiseAndBeatsStart) {
  auto [x, y] = NoisySine(40, 0.1, 7);
  GpOptions o;
  Result<GaussianProcess> gp = GaussianProcess::Fit(x, y, o);
  ASSERT_TRUE(gp.ok()) << gp.status().ToString();
  const GpHyperparameters& h = gp->hyperparameters().front();
  const double noise_sd = std::exp(0.5 * h.log_noise_variance);
  // 40 points estimate a noise sd of 0.1 to within roughly ±30%.
  EXPECT_GT(noise_sd, 0.06);
  EXPECT_LT(noise_sd, 0.15);
  Result<double> at_start = LogMarginalLikelihood(o.kernel, Hyp(1.0, 3.0, 1.0), x, y);
  ASSERT_TRUE(at_start.ok());
  EXPECT_GT(gp->log_marginal_likelihood(), *at_start);
  for (double t : {1.0, 2.5, 4.0}) EXPECT_NEAR(gp->Predict({t}).mean, std::sin(t), 0.1);  // ≈ noise sd
}

TEST(GpRegression, McmcAveragesSamples) {
  auto [x, y] = NoisySine(25, 0.1, 3);
  GpOptions ml;
  GpOptions mc;
  mc.mode = HyperparameterMode::kMcmc;
  mc.mcmc_burn_in = 30;
  mc.mcmc_samples = 15;
  Result<GaussianProcess> a = GaussianProcess::Fit(x, y, ml);
  Result<GaussianProcess> b = GaussianProcess::Fit(x, y, mc);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(b->hyperparameters().size(), 15u);
  bool differ = false;
  for (const auto& h : b->hyperparameters())
    differ |= h.log_length_scales[0] != b->hyperparameters().front().log_length_scales[0];
  EXPECT_TRUE(differ) << "the sampler never moved";
  for (double t : {1.0, 3.0, 5.0}) {
    // Posterior samples stay near the ML-II optimum on this well-determined problem.
    EXPECT_NEAR(b->Predict({t}).mean, a->Predict({t}).mean, 0.05);
    EXPECT_GT(b->Predict({t}).variance, 0.0);
  }
}

TEST(GpRegression, ConditionMatchesRefit) {
  const GpHyperparameters h = Hyp(1.0, 0.8, 0.01);
  GpOptions o = Fixed(h);
  o.normalize_y = true;
  Result<GaussianProcess> small = GaussianProcess::Fit({{0.0}, {1.0}, {2.0}}, {1.0, 2.0, 0.5}, o);
  ASSERT_TRUE(small.ok());
  Result<GaussianProcess> more = small->Condition({{1.5}}, {3.0});
  ASSERT_TRUE(more.ok());
  // Direct GP with the same normalisation constants (those of the first three points).
  const double mean = 3.5 / 3, sd = std::sqrt(((1 - mean) * (1 - mean) + (2 - mean) * (2 - mean) + (0.5 - mean) * (0.5 - mean)) / 3);
  GpOptions raw = Fixed(h);
  Result<GaussianProcess> direct = GaussianProcess::Fit({{0.0}, {1.0}, {2.0}, {1.5}},
                                                        {(1 - mean) / sd, (2 - mean) / sd, (0.5 - mean) / sd, (3 - mean) / sd}, raw);
  ASSERT_TRUE(direct.ok());
  for (double t : {0.2, 1.4, 2.5}) {
    EXPECT_NEAR(more->Predict({t}).mean, mean + sd * direct->Predict({t}).mean, 1e-10);
    EXPECT_NEAR(more->Predict({t}).variance, sd * sd * direct->Predict({t}).variance, 1e-10);
  }
}

TEST(GpRegression, RejectsBadData) {
  EXPECT_FALSE(GaussianProcess::Fit({}, {}, {}).ok());
  EXPECT_FALSE(GaussianProcess::Fit({{0.0}, {1.0, 2.0}}, {1, 2}, {}).ok());
  EXPECT_FALSE(GaussianProcess::Fit({{0.0}}, {NAN}, {}).ok());
  EXPECT_FALSE(GaussianProcess::Fit({{0.0}}, {1.0, 2.0}, {}).ok());
}

}  // namespace
}  // namespace scion::search
