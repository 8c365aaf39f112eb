#include "coordinator/search_results.h"

#include <algorithm>
#include <cmath>

namespace scion::coord {

std::vector<int> ParetoFront(const std::vector<std::vector<double>>& points) {
  std::vector<int> front;
  if (points.empty()) return front;
  const size_t m = points[0].size();
  auto dominates = [&](const std::vector<double>& a, const std::vector<double>& b) {
    bool strictly = false;
    for (size_t k = 0; k < m; ++k) {
      if (a[k] > b[k]) return false;
      strictly = strictly || a[k] < b[k];
    }
    return strictly;
  };
  for (size_t i = 0; i < points.size(); ++i) {
    if (points[i].size() != m) continue;
    bool dominated = false;
    for (size_t j = 0; j < points.size() && !dominated; ++j)
      dominated = j != i && points[j].size() == m && dominates(points[j], points[i]);
    if (!dominated) front.push_back(int(i));
  }
  return front;
}

std::vector<double> Scalarize(const std::vector<std::vector<double>>& points, uint64_t round) {
  std::vector<double> out;
  out.reserve(points.size());
  if (points.empty()) return out;
  if (points[0].size() == 1) {
    for (const auto& p : points) out.push_back(p[0]);
    return out;
  }
  const size_t m = points[0].size();
  std::vector<double> lo(m, INFINITY), hi(m, -INFINITY);
  for (const auto& p : points)
    for (size_t k = 0; k < m && k < p.size(); ++k) {
      lo[k] = std::min(lo[k], p[k]);
      hi[k] = std::max(hi[k], p[k]);
    }
  // Golden-ratio sequence in (0, 1): evenly spread weights for any number of rounds.
  const double w = 0.05 + 0.9 * std::fmod(0.5 + double(round) * 0.6180339887498949, 1.0);
  const double weights[2] = {w, 1.0 - w};
  constexpr double kAugment = 0.05;  // ParEGO's small linear term breaks ties along the front
  for (const auto& p : points) {
    double worst = 0.0, sum = 0.0;
    for (size_t k = 0; k < m && k < 2; ++k) {
      const double scaled = hi[k] > lo[k] ? (p[k] - lo[k]) / (hi[k] - lo[k]) : 0.0;
      worst = std::max(worst, weights[k] * scaled);
      sum += weights[k] * scaled;
    }
    out.push_back(worst + kAugment * sum);
  }
  return out;
}

bool BelowMedian(double value, int64_t step, const std::vector<const std::map<int64_t, double>*>& references,
                 int64_t min_step, int min_references) {
  if (step < min_step) return false;
  std::vector<double> at;
  for (const auto* curve : references) {
    if (!curve) continue;
    auto it = curve->find(step);
    if (it != curve->end()) at.push_back(it->second);
  }
  if (at.empty() || int(at.size()) < min_references) return false;
  std::sort(at.begin(), at.end());
  const size_t n = at.size();
  const double median = n % 2 ? at[n / 2] : 0.5 * (at[n / 2 - 1] + at[n / 2]);
  return value > median;
}

}  // namespace scion::coord
