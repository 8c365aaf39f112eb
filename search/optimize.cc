#include "search/optimize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace scion::search {
namespace {

void Clamp(std::vector<double>& x, const NelderMeadOptions& o) {
  for (size_t i = 0; i < x.size(); ++i) {
    if (i < o.lower.size()) x[i] = std::max(x[i], o.lower[i]);
    if (i < o.upper.size()) x[i] = std::min(x[i], o.upper[i]);
  }
}

}  // namespace

MinimizeResult NelderMead(const std::function<double(const std::vector<double>&)>& f,
                          std::vector<double> x0, const NelderMeadOptions& options) {
  const size_t n = x0.size();
  MinimizeResult result;
  auto eval = [&](std::vector<double>& x) {
    Clamp(x, options);
    ++result.evaluations;
    double v = f(x);
    return std::isfinite(v) ? v : std::numeric_limits<double>::infinity();
  };
  std::vector<std::vector<double>> simplex(n + 1, x0);
  std::vector<double> values(n + 1);
  for (size_t i = 0; i < n; ++i) simplex[i + 1][i] += options.initial_step;
  for (size_t i = 0; i <= n; ++i) values[i] = eval(simplex[i]);

  std::vector<size_t> order(n + 1);
  while (result.evaluations < options.max_evaluations) {
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
    const size_t best = order.front(), worst = order.back(), second = order[n > 0 ? n - 1 : 0];
    if (n == 0 || std::fabs(values[worst] - values[best]) < options.tolerance) break;
    std::vector<double> centroid(n, 0.0);
    for (size_t i = 0; i <= n; ++i)
      if (i != worst)
        for (size_t j = 0; j < n; ++j) centroid[j] += simplex[i][j] / double(n);
    auto along = [&](double t) {
      std::vector<double> p(n);
      for (size_t j = 0; j < n; ++j) p[j] = centroid[j] + t * (simplex[worst][j] - centroid[j]);
      return p;
    };
    std::vector<double> reflected = along(-1.0);
    double fr = eval(reflected);
    if (fr < values[best]) {
      std::vector<double> expanded = along(-2.0);
      double fe = eval(expanded);
      if (fe < fr) { simplex[worst] = expanded; values[worst] = fe; }
      else { simplex[worst] = reflected; values[worst] = fr; }
    } else if (fr < values[second]) {
      simplex[worst] = reflected; values[worst] = fr;
    } else {
      std::vector<double> contracted = along(fr < values[worst] ? -0.5 : 0.5);
      double fc = eval(contracted);
      if (fc < std::min(fr, values[worst])) {
        simplex[worst] = contracted; values[worst] = fc;
      } else {
        // Shrink towards the best vertex.
        for (size_t i = 0; i <= n; ++i) {
          if (i == best) continue;
          for (size_t j = 0; j < n; ++j)
            simplex[i][j] = simplex[best][j] + 0.5 * (simplex[i][j] - simplex[best][j]);
          values[i] = eval(simplex[i]);
        }
      }
    }
  }
  size_t best = std::min_element(values.begin(), values.end()) - values.begin();
  result.x = simplex[best];
  result.value = values[best];
  return result;
}

}  // namespace scion::search
