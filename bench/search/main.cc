// Search-engine experiments: seeds-averaged best-so-far curves of the strategies on Branin, and
// the fisheries reproduction over data seeds. Usage:
//   bench_search branin [seeds=10] [trials=60]
//   bench_search fisheries [data_seeds=20] [ml|mcmc]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "search/fisheries.h"
#include "search/strategy.h"
#include "search/strategy_bo.h"

using namespace scion::search;

namespace {

double Branin(const Assignment& a) {
  const double x1 = a[0], x2 = a[1], pi = 3.14159265358979323846;
  const double b = 5.1 / (4 * pi * pi), c = 5 / pi, t = 1 / (8 * pi);
  return std::pow(x2 - b * x1 * x1 + c * x1 - 6, 2) + 10 * (1 - t) * std::cos(x1) + 10;
}
constexpr double kBraninMin = 0.397887357729739;

// Best value after each trial, proposing `batch` at a time (the batch is evaluated together).
std::vector<double> Run(Strategy& s, int trials, int batch) {
  std::vector<Observation> done;
  std::vector<double> best;
  double b = 1e300;
  while (int(done.size()) < trials) {
    auto proposals = s.Propose(done, {}, std::min(batch, trials - int(done.size())));
    if (!proposals.ok() || proposals->empty()) break;
    for (const Assignment& a : *proposals) {
      done.push_back({a, Branin(a)});
      b = std::min(b, done.back().value);
      best.push_back(b);
    }
  }
  return best;
}

int BraninCurves(int seeds, int trials) {
  DecisionSpace space;
  (void)space.AddReal("x1", -5, 10);
  (void)space.AddReal("x2", 0, 15);
  const std::vector<std::string> names = {"random", "grid", "bo-ei", "bo-ucb", "bo-ei-batch4"};
  std::map<std::string, std::vector<std::vector<double>>> gaps;  // name -> seed -> log10 gap
  std::map<std::string, std::vector<int>> hit;                   // trials to reach 1%
  for (const std::string& n : names) {
    for (int seed = 1; seed <= seeds; ++seed) {
      std::unique_ptr<Strategy> s;
      BayesOptOptions o;
      o.seed = uint64_t(seed);
      int batch = 1;
      if (n == "random") s = MakeRandomStrategy(space, uint64_t(seed));
      else if (n == "grid") s = MakeGridStrategy(space, 8);  // 64 points; deterministic
      else if (n == "bo-ucb") { o.acquisition = Acquisition::kUpperConfidenceBound; s = MakeBayesOptStrategy(space, o); }
      else { if (n == "bo-ei-batch4") batch = 4; s = MakeBayesOptStrategy(space, o); }
      // Random search is cheap: run it long enough to see when it reaches 1%.
      std::vector<double> best = Run(*s, n == "random" ? std::max(trials, 5000) : trials, batch);
      std::vector<double> g;
      int first = -1;
      for (size_t i = 0; i < best.size(); ++i) {
        const double rel = (best[i] - kBraninMin) / kBraninMin;
        g.push_back(rel);
        if (first < 0 && rel <= 0.01) first = int(i) + 1;
      }
      gaps[n].push_back(g);
      hit[n].push_back(first);
    }
  }
  std::printf("Branin: median relative gap (best - min)/min after n trials over %d seeds\n", seeds);
  std::printf("%-14s", "trials");
  for (int t : {5, 10, 15, 20, 30, 40, 50, 60}) if (t <= trials) std::printf(" %9d", t);
  std::printf("   reached 1%%   median trials to 1%% (random: up to 5000 trials)\n");
  for (const std::string& n : names) {
    std::printf("%-14s", n.c_str());
    for (int t : {5, 10, 15, 20, 30, 40, 50, 60}) {
      if (t > trials) continue;
      std::vector<double> v;
      for (const auto& g : gaps[n]) if (int(g.size()) >= t) v.push_back(g[t - 1]);
      std::sort(v.begin(), v.end());
      std::printf(" %9.4f", v.empty() ? NAN : v[v.size() / 2]);
    }
    std::vector<int> h;
    for (int x : hit[n]) if (x > 0) h.push_back(x);
    std::sort(h.begin(), h.end());
    if (h.empty()) std::printf("   %3d/%-3d      never\n", 0, seeds);
    else
      std::printf("   %3zu/%-3d      %d (range %d-%d)\n", h.size(), seeds, h[h.size() / 2], h.front(), h.back());
  }
  return 0;
}

int FisheriesSeeds(int data_seeds, bool mcmc) {
  std::printf("%-6s %-8s %8s %8s %8s %8s %7s\n", "seed", "policy", "mean", "median", "min", "max", "crash");
  std::map<std::string, std::vector<double>> means;
  for (int seed = 1; seed <= data_seeds; ++seed) {
    FisheriesConfig c;
    c.data_seed = uint64_t(seed);
    c.evaluation_seed = uint64_t(1000 + seed);
    if (mcmc) c.gp.mode = HyperparameterMode::kMcmc;
    auto r = RunFisheries(c);
    if (!r.ok()) { std::printf("seed %d: %s\n", seed, r.status().ToString().c_str()); return 1; }
    for (const auto& p : r->policies) {
      std::printf("%-6d %-8s %8.3f %8.3f %8.3f %8.3f %7.2f\n", seed, p.name.c_str(), p.mean_relative,
                  p.median_relative, p.min_relative, p.max_relative, p.crash_fraction);
      means[p.name].push_back(p.mean_relative);
    }
  }
  std::printf("\nover %d data seeds: policy, mean of per-seed mean relative NPV, median, min\n", data_seeds);
  for (auto& [name, v] : means) {
    double s = 0;
    for (double x : v) s += x;
    std::sort(v.begin(), v.end());
    std::printf("%-8s %6.3f %6.3f %6.3f\n", name.c_str(), s / v.size(), v[v.size() / 2], v.front());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "branin";
  if (what == "branin") return BraninCurves(argc > 2 ? std::atoi(argv[2]) : 10, argc > 3 ? std::atoi(argv[3]) : 60);
  if (what == "fisheries")
    return FisheriesSeeds(argc > 2 ? std::atoi(argv[2]) : 20, argc > 3 && std::string(argv[3]) == "mcmc");
  std::fprintf(stderr, "usage: bench_search branin [seeds] [trials] | fisheries [data_seeds] [ml|mcmc]\n");
  return 2;
}
