// Random search: proposal k is drawn from a generator seeded with (seed, k).
#include <random>

#include "search/strategy.h"

namespace scion::search {

uint64_t MixSeed(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

namespace {

class RandomStrategy : public Strategy {
 public:
  RandomStrategy(DecisionSpace space, uint64_t seed) : space_(std::move(space)), seed_(seed) {}
  std::string name() const override { return "random"; }

  Result<std::vector<Assignment>> Propose(const std::vector<Observation>& completed,
                                          const std::vector<Assignment>& pending, int count) override {
    std::vector<Assignment> out;
    const uint64_t first = completed.size() + pending.size();
    for (int i = 0; i < count; ++i) {
      std::mt19937_64 rng(MixSeed(seed_, first + uint64_t(i)));
      out.push_back(space_.Sample(rng));
    }
    return out;
  }

 private:
  DecisionSpace space_;
  uint64_t seed_;
};

}  // namespace

std::unique_ptr<Strategy> MakeRandomStrategy(DecisionSpace space, uint64_t seed) {
  return std::make_unique<RandomStrategy>(std::move(space), seed);
}

}  // namespace scion::search
