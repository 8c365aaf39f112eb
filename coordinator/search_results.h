// Pure functions over a search's trials: the Pareto front of two objectives, the scalar a strategy
// minimises, and the median stopping rule. Values here are already "lower is better"
// (search_spec.h, Minimized).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace scion::coord {

// Indices of the points no other point dominates (<= in every objective, < in one), in input
// order. Points with a different number of objectives than the first are ignored.
std::vector<int> ParetoFront(const std::vector<std::vector<double>>& points);

// One scalar per point for a single-objective strategy. One objective: the value itself. Two:
// augmented Chebyshev scalarisation of the objectives scaled to [0, 1] over the points, with a
// weight that moves along a low-discrepancy sequence with `round` (ParEGO), so successive
// proposals aim at different parts of the front.
std::vector<double> Scalarize(const std::vector<std::vector<double>>& points, uint64_t round);

// Median stopping: true when `value` (lower is better) at `step` is worse than the median of the
// `references` (finished trials' curves: step -> value) that reached `step`, given at least
// `min_references` of them and step >= min_step.
bool BelowMedian(double value, int64_t step, const std::vector<const std::map<int64_t, double>*>& references,
                 int64_t min_step, int min_references);

}  // namespace scion::coord
