// A search spec (docs/ARCHITECTURE.md, "Searches"): a decision space, a trial template (a job spec
// whose strings hold "{{decision}}" placeholders), one or two objectives, a budget and a strategy.
// Parsing validates everything a search needs before its first trial is created, with errors that
// name the field ("space[2].high: must be >= low"). Substitution turns a template and one point of
// the space into the job spec of a trial. Pure functions, no coordinator state.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/spec.h"
#include "common/status.h"
#include "search/space.h"
#include "search/strategy.h"
#include "search/strategy_bo.h"

namespace scion::coord {

enum class Goal { kMinimize, kMaximize };

struct Objective {
  std::string metric;  // a key of the trial job's summary metrics
  Goal goal = Goal::kMinimize;
};

// Median stopping: a running trial whose `metric` at step s (s >= min_step) is worse than the
// median of the finished trials' values at that step is cancelled, once `min_trials` finished
// trials reached that step.
struct EarlyStop {
  bool enabled = false;
  std::string metric;
  Goal goal = Goal::kMinimize;
  int64_t min_step = 0;
  int min_trials = 3;
};

struct SearchBudget {
  int max_trials = 0;
  int max_concurrent = 1;
  EarlyStop early_stop;
};

enum class StrategyType { kGrid, kRandom, kBayes, kGpdp };

struct StrategySpec {
  StrategyType type = StrategyType::kRandom;
  int grid_points = 5;                 // grid: values per real (and wide integer) dimension
  search::BayesOptOptions bo;          // bo: acquisition, kappa, initial_random
  // gpdp: one per-layer group is decided stage by stage; trials report `state_metric` at step 0
  // (before the first layer) and at step i+1 (after layer i's choice); the objective is that
  // metric, and the plan minimises (or maximises, with the objective's goal) its final value.
  std::string stage_group;
  std::string state_metric;
  double state_low = 0, state_high = 1;
  int state_points = 41;
  double epsilon = 0.1;                // gpdp: chance of a random choice per layer
};

// A group of dimensions one placeholder can name as a whole: a per-layer decision "layer_ops" owns
// dimensions "layer_ops[0]" … "layer_ops[n-1]"; every other decision is a group of one.
struct DecisionGroup {
  std::string name;
  bool per_layer = false;
  std::vector<int> dims;  // indices into the space
};

struct SearchSpec {
  std::string name;
  search::DecisionSpace space;
  std::vector<DecisionGroup> groups;
  nlohmann::json trial;  // the job-spec template
  std::vector<Objective> objectives;  // one, or two for a Pareto front
  SearchBudget budget;
  StrategySpec strategy;
  uint64_t seed = 1;
};

// Parses and validates a search spec. `kinds` validates the trial template (substituted with one
// sampled point) exactly as `submit` would. Never throws.
Result<SearchSpec> ParseSearchSpec(const nlohmann::json& spec, const KindCatalog& kinds);

// The placeholder names used in a template's strings, e.g. {"lr", "layer_ops", "layer_ops[2]"}.
std::set<std::string> Placeholders(const nlohmann::json& tmpl);

// The template with every placeholder replaced for point `x` (a string that is exactly one
// placeholder becomes the typed value: number, string, or array of strings for a per-layer group;
// inside a longer string the value's text, per-layer choices joined with ","). Also "{{trial}}"
// (the trial number) and "{{search}}" (the search id). Unknown placeholders fail naming the field.
Result<nlohmann::json> Substitute(const nlohmann::json& tmpl, const SearchSpec& spec, const search::Assignment& x,
                                  int64_t search_id, int trial);

// The point as {decision: value} for display (per-layer groups as arrays).
nlohmann::json DescribePoint(const SearchSpec& spec, const search::Assignment& x);

// The strategy the spec asks for. gpdp is built by the driver (it needs trial state curves).
std::unique_ptr<search::Strategy> MakeSearchStrategy(const SearchSpec& spec);

// Objective values turned into "lower is better".
double Minimized(Goal goal, double value);

const char* GoalName(Goal goal);
const char* StrategyName(StrategyType type);

}  // namespace scion::coord
