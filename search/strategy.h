// Search strategies: given the finished trials (assignment, objective) and the ones still running,
// propose the next assignments. Strategies minimise the objective (negate to maximise). They are
// deterministic functions of (seed, history), so a search driver that restarts proposes the same
// points again.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "search/space.h"

namespace scion::search {

struct Observation {
  Assignment x;
  double value = 0.0;  // objective; lower is better
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  // Up to `count` new assignments, none equal to a completed or pending one where the space
  // allows. An empty answer means the strategy has nothing left to propose (an exhausted grid).
  virtual Result<std::vector<Assignment>> Propose(const std::vector<Observation>& completed,
                                                  const std::vector<Assignment>& pending, int count) = 0;
};

// Every combination in mixed-radix order (first dimension fastest); reals and wide integer
// ranges are cut into `points_per_real` evenly spaced values.
std::unique_ptr<Strategy> MakeGridStrategy(DecisionSpace space, int points_per_real);

// Independent uniform samples (in the unit cube, so log-scaled dimensions are log-uniform).
std::unique_ptr<Strategy> MakeRandomStrategy(DecisionSpace space, uint64_t seed);

// A seed for proposal number `index` of a run seeded with `seed` (splitmix64), so stateless
// strategies draw fresh, reproducible numbers.
uint64_t MixSeed(uint64_t seed, uint64_t index);

}  // namespace scion::search
