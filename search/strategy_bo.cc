#include "search/strategy_bo.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <set>

#include "search/optimize.h"

namespace scion::search {

double ExpectedImprovement(double mean, double sd, double best, double xi) {
  const double improvement = best - mean - xi;
  if (sd <= 1e-12) return std::max(improvement, 0.0);
  const double z = improvement / sd;
  const double cdf = 0.5 * std::erfc(-z / std::numbers::sqrt2);
  const double pdf = std::exp(-0.5 * z * z) / std::sqrt(2.0 * std::numbers::pi);
  return improvement * cdf + sd * pdf;
}

double LowerConfidenceScore(double mean, double sd, double kappa) { return -(mean - kappa * sd); }

namespace {

class BayesOptStrategy : public Strategy {
 public:
  BayesOptStrategy(DecisionSpace space, BayesOptOptions options)
      : space_(std::move(space)), options_(std::move(options)) {}

  std::string name() const override {
    return options_.acquisition == Acquisition::kExpectedImprovement ? "bo-ei" : "bo-ucb";
  }

  Result<std::vector<Assignment>> Propose(const std::vector<Observation>& completed,
                                          const std::vector<Assignment>& pending, int count) override {
    std::vector<Assignment> out;
    std::set<std::string> taken;
    for (const Observation& o : completed) taken.insert(space_.Key(o.x));
    for (const Assignment& a : pending) taken.insert(space_.Key(a));
    const uint64_t first = completed.size() + pending.size();

    // Too little data for a model (fewer than two distinct values): random proposals.
    bool varied = false;
    for (const Observation& o : completed) varied |= o.value != completed.front().value;
    if (int(completed.size()) < std::max(options_.initial_random, 2) || !varied) {
      for (int i = 0; i < count; ++i) {
        std::mt19937_64 rng(MixSeed(options_.seed, first + uint64_t(i)));
        Assignment a = space_.Sample(rng);
        taken.insert(space_.Key(a));
        out.push_back(std::move(a));
      }
      return out;
    }

    std::vector<std::vector<double>> x;
    std::vector<double> y;
    double best = completed.front().value, sum = 0.0, worst = best;
    for (const Observation& o : completed) {
      x.push_back(space_.Encode(o.x));
      y.push_back(o.value);
      best = std::min(best, o.value);
      worst = std::max(worst, o.value);
      sum += o.value;
    }
    GpOptions gp_options = options_.gp;
    gp_options.seed = MixSeed(options_.seed ^ 0x5eed, first);
    Result<GaussianProcess> fitted = GaussianProcess::Fit(x, y, gp_options);
    if (!fitted.ok()) return fitted.status();
    GaussianProcess gp = std::move(*fitted);

    auto fantasy_value = [&](const std::vector<double>& encoded) {
      switch (options_.fantasy) {
        case BatchFantasy::kKrigingBeliever: return gp.Predict(encoded).mean;
        case BatchFantasy::kConstantLiarMin: return best;
        case BatchFantasy::kConstantLiarMean: return sum / double(completed.size());
        case BatchFantasy::kConstantLiarMax: return worst;
      }
      return best;
    };
    double incumbent = best;
    auto add_fantasy = [&](const Assignment& a) -> Status {
      const std::vector<double> e = space_.Encode(a);
      const double believed = fantasy_value(e);
      Result<GaussianProcess> next = gp.Condition({e}, {believed}, /*exact=*/true);
      if (!next.ok()) return next.status();
      gp = std::move(*next);
      // The fantasy counts as observed, also as the incumbent: otherwise a believed improvement
      // keeps EI high right beside it and the batch collapses onto one point.
      incumbent = std::min(incumbent, believed);
      return Status::Ok();
    };
    for (const Assignment& a : pending) SCION_RETURN_IF_ERROR(add_fantasy(a));

    for (int i = 0; i < count; ++i) {
      std::mt19937_64 rng(MixSeed(options_.seed, first + uint64_t(i)));
      Assignment a = Maximize(gp, incumbent, taken, rng);
      taken.insert(space_.Key(a));
      SCION_RETURN_IF_ERROR(add_fantasy(a));
      out.push_back(std::move(a));
    }
    return out;
  }

 private:
  double Score(const GaussianProcess& gp, const Assignment& a, double best) const {
    const GpPrediction p = gp.Predict(space_.Encode(a));
    const double sd = std::sqrt(p.variance);
    return options_.acquisition == Acquisition::kExpectedImprovement
               ? ExpectedImprovement(p.mean, sd, best, options_.ei_xi)
               : LowerConfidenceScore(p.mean, sd, options_.ucb_kappa);
  }

  // Random candidates, then Nelder–Mead on the unit coordinates from the best few; the result
  // avoids points already observed, pending or proposed.
  Assignment Maximize(const GaussianProcess& gp, double best, const std::set<std::string>& taken,
                      std::mt19937_64& rng) const {
    std::uniform_real_distribution<double> unif(0.0, 1.0);
    const int d = space_.size();
    std::vector<std::pair<double, std::vector<double>>> scored;  // (score, unit point)
    for (int c = 0; c < options_.candidates; ++c) {
      std::vector<double> u(d);
      for (double& v : u) v = unif(rng);
      scored.push_back({Score(gp, space_.FromUnit(u), best), std::move(u)});
    }
    std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    NelderMeadOptions nm;
    nm.max_evaluations = 60 * d;
    nm.initial_step = 0.05;
    nm.lower.assign(d, 0.0);
    nm.upper.assign(d, 1.0);
    const int starts = std::min<int>(options_.local_starts, int(scored.size()));
    for (int s = 0; s < starts; ++s) {
      MinimizeResult m = NelderMead([&](const std::vector<double>& u) { return -Score(gp, space_.FromUnit(u), best); },
                                    scored[s].second, nm);
      scored.push_back({-m.value, m.x});
    }
    std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [score, u] : scored) {
      Assignment a = space_.FromUnit(u);
      if (!taken.count(space_.Key(a))) return a;
    }
    return space_.Sample(rng);  // every candidate taken (a tiny discrete space): any point
  }

  DecisionSpace space_;
  BayesOptOptions options_;
};

}  // namespace

std::unique_ptr<Strategy> MakeBayesOptStrategy(DecisionSpace space, BayesOptOptions options) {
  return std::make_unique<BayesOptStrategy>(std::move(space), std::move(options));
}

}  // namespace scion::search
