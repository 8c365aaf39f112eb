#include "coordinator/search_gpdp.h"

#include <random>
#include <set>
#include <string>

#include "search/strategy_gpdp.h"

namespace scion::coord {

namespace {

// Roll-outs tried per proposal before a repeat is accepted; exploration grows to uniform by the last.
constexpr int kNoveltyTries = 20;

}  // namespace

Result<std::vector<search::Assignment>> ProposeGpdp(const SearchSpec& spec, const std::vector<GpdpTrial>& trials,
                                                    const std::vector<search::Assignment>& tried, int count,
                                                    uint64_t round) {
  const StrategySpec& st = spec.strategy;
  const int layers = spec.space.size();
  const int actions = int(spec.space.dimensions()[0].choices.size());
  std::vector<search::StageTransition> data;
  double initial_sum = 0;
  int complete = 0;
  for (const GpdpTrial& t : trials) {
    bool full = int(t.x.size()) == layers;
    for (int i = 0; full && i <= layers; ++i) full = t.states.count(i) > 0;
    if (!full) continue;
    ++complete;
    initial_sum += t.states.at(0);
    for (int i = 0; i < layers; ++i)
      data.push_back({i, t.states.at(i), int(t.x[size_t(i)]), t.states.at(i + 1)});
  }
  std::vector<search::Assignment> out;
  if (complete < st.bo.initial_random) {
    for (int i = 0; i < count; ++i) {
      std::mt19937_64 rng(search::MixSeed(spec.seed, round + uint64_t(i)));
      out.push_back(spec.space.Sample(rng));
    }
    return out;
  }

  search::StagedProblem problem;
  problem.num_stages = layers;
  problem.num_actions = actions;
  for (int k = 0; k < st.state_points; ++k)
    problem.state_grid.push_back(st.state_low + (st.state_high - st.state_low) * k / (st.state_points - 1));
  problem.reward = [](int, double, int, double) { return 0.0; };  // all of the objective is the final state
  const Goal goal = spec.objectives[0].goal;
  problem.terminal = [goal](double final_state) { return -Minimized(goal, final_state); };  // plans maximise
  auto plan = search::PlanGpdp(problem, data, search::GpdpOptions{});
  if (!plan.ok()) return plan.status();

  // Open-loop roll-out: the mean observed change per (stage, choice), else per choice, else none.
  std::map<std::pair<int, int>, std::pair<double, int>> by_stage;
  std::map<int, std::pair<double, int>> by_action;
  for (const auto& d : data) {
    auto& s = by_stage[{d.stage, d.action}];
    s.first += d.next_state - d.state;
    ++s.second;
    auto& a = by_action[d.action];
    a.first += d.next_state - d.state;
    ++a.second;
  }
  auto change = [&](int stage, int action) {
    if (auto it = by_stage.find({stage, action}); it != by_stage.end()) return it->second.first / it->second.second;
    if (auto it = by_action.find(action); it != by_action.end()) return it->second.first / it->second.second;
    return 0.0;
  };
  std::set<std::string> seen;
  for (const auto& x : tried) seen.insert(spec.space.Key(x));
  for (int i = 0; i < count; ++i) {
    std::mt19937_64 rng(search::MixSeed(spec.seed, round + uint64_t(i)));
    search::Assignment x(size_t(layers), 0.0);
    for (int attempt = 0; attempt < kNoveltyTries; ++attempt) {
      // The first proposal of a round follows the plan exactly; the rest explore with ε, and a
      // repeat is retried with ε rising towards 1.
      const double base = i == 0 ? 0.0 : st.epsilon;
      const double epsilon = base + (1.0 - base) * attempt / (kNoveltyTries - 1);
      double state = initial_sum / complete;
      for (int t = 0; t < layers; ++t) {
        const int a = search::NextDecision(problem, *plan, t, state, epsilon, rng);
        x[size_t(t)] = a;
        state += change(t, a);
      }
      if (!seen.count(spec.space.Key(x))) break;
    }
    seen.insert(spec.space.Key(x));
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace scion::coord
