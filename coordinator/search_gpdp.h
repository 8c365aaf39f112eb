// The gpdp strategy of a search: layer choices decided stage by stage. Each finished trial
// contributes its state curve (the state metric at step 0 before any layer, at step i+1 after
// layer i) as transitions (stage, state, choice) -> next state; GPDP (search/strategy_gpdp.h) plans
// over a GP of those transitions for the best final state (the objective), and a new trial's
// choices follow the plan from the observed initial state, each next state taken as the mean
// observed change for that (stage, choice).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "common/status.h"
#include "coordinator/search_spec.h"

namespace scion::coord {

struct GpdpTrial {
  search::Assignment x;               // one choice per layer
  std::map<int64_t, double> states;   // step -> state metric
};

// `count` new choice sequences. Until `initial_random` trials have full state curves the points are
// random (seeded with (seed, round + i)). A plan that repeats a sequence in `tried` (or one proposed
// earlier in the batch) is rolled out again with more exploration, so the budget buys new points
// while there are any.
Result<std::vector<search::Assignment>> ProposeGpdp(const SearchSpec& spec, const std::vector<GpdpTrial>& trials,
                                                    const std::vector<search::Assignment>& tried, int count,
                                                    uint64_t round);

}  // namespace scion::coord
