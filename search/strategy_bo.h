// Gaussian-process Bayesian optimisation. A GP (Matérn 5/2, ARD, standardised outputs) models the
// objective over the unit-cube encoding of the space; the next point maximises an acquisition
// function: expected improvement (EI) or the lower confidence bound μ − κσ (UCB for minimisation).
// Batches and running trials are handled by fantasies: each pending or just-proposed point is
// added to the GP with a made-up value (kriging believer: the GP mean; constant liar: the best,
// mean or worst observed value) under the same hyperparameters, so the next proposal moves away.
#pragma once

#include <cstdint>
#include <memory>

#include "search/gp.h"
#include "search/strategy.h"

namespace scion::search {

enum class Acquisition { kExpectedImprovement, kUpperConfidenceBound };
enum class BatchFantasy { kKrigingBeliever, kConstantLiarMin, kConstantLiarMean, kConstantLiarMax };

struct BayesOptOptions {
  Acquisition acquisition = Acquisition::kExpectedImprovement;
  double ucb_kappa = 2.0;        // exploration weight of σ in μ − κσ
  double ei_xi = 0.0;            // EI improvement margin (in objective units)
  BatchFantasy fantasy = BatchFantasy::kKrigingBeliever;
  int initial_random = 5;        // random proposals before the GP takes over
  int candidates = 1000;         // random candidates scored per proposal
  int local_starts = 4;          // best candidates refined by Nelder–Mead on the unit cube
  uint64_t seed = 1;
  GpOptions gp = [] {
    GpOptions g;
    g.kernel = KernelType::kMatern52;
    g.normalize_y = true;
    g.restarts = 2;
    g.max_evaluations = 250;
    return g;
  }();
};

// Acquisition values for a predictive (mean, sd) given the best observed value; larger is better.
double ExpectedImprovement(double mean, double sd, double best, double xi);
double LowerConfidenceScore(double mean, double sd, double kappa);

std::unique_ptr<Strategy> MakeBayesOptStrategy(DecisionSpace space, BayesOptOptions options);

}  // namespace scion::search
