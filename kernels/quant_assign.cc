// Precision assignment: one width per channel minimising the total error subject to
// Σ widths ≤ budget · channels, a multiple-choice knapsack. Exact DP, or Lagrangian relaxation
// with a reported optimality gap for instances too large for the DP table.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/quant.h"

namespace scion::kernels::quant {
namespace {

struct Problem {
  int narrowest = 0;
  int64_t capacity = 0;  // total extra bits above narrowest·channels allowed
};

Result<Problem> Check(const std::vector<std::vector<double>>& errors, const std::vector<int>& widths,
                      double budget_bits) {
  if (widths.empty()) return Status::InvalidArgument("widths: empty");
  if (errors.empty()) return Status::InvalidArgument("errors: no channels");
  for (const auto& e : errors) {
    if (e.size() != widths.size()) return Status::InvalidArgument("errors: each channel needs one error per width");
    for (double v : e) {
      if (!std::isfinite(v)) return Status::InvalidArgument("errors: non-finite entry");
    }
  }
  Problem p;
  p.narrowest = *std::min_element(widths.begin(), widths.end());
  if (!std::isfinite(budget_bits) || budget_bits < p.narrowest) {
    return Status::InvalidArgument("budget_bits: " + std::to_string(budget_bits) + " is below the narrowest width (" +
                                   std::to_string(p.narrowest) + " bits); no assignment fits");
  }
  const int widest = *std::max_element(widths.begin(), widths.end());
  const int64_t n = static_cast<int64_t>(errors.size());
  // The 1e-9 absorbs budgets like 1.15 that are not exact in binary (1.15 · 100 = 114.99999…).
  const int64_t total = static_cast<int64_t>(std::floor(budget_bits * static_cast<double>(n) + 1e-9));
  p.capacity = std::min(total - p.narrowest * n, (widest - p.narrowest) * n);
  return p;
}

double Total(const std::vector<std::vector<double>>& errors, const std::vector<int>& choice) {
  double s = 0;
  for (size_t c = 0; c < errors.size(); ++c) s += errors[c][choice[c]];
  return s;
}

int TotalBits(const std::vector<int>& widths, const std::vector<int>& choice) {
  int s = 0;
  for (int i : choice) s += widths[i];
  return s;
}

}  // namespace

Result<Assignment> AssignExact(const std::vector<std::vector<double>>& errors, const std::vector<int>& widths,
                               double budget_bits, int64_t max_cells) {
  auto p = Check(errors, widths, budget_bits);
  if (!p.ok()) return p.status();
  const int64_t n = static_cast<int64_t>(errors.size()), cap = p->capacity;
  if (n * (cap + 1) > max_cells) {
    return Status::InvalidArgument("max_cells: the DP table needs " + std::to_string(n * (cap + 1)) +
                                   " cells; use AssignLagrangian");
  }
  constexpr double kInf = std::numeric_limits<double>::infinity();
  // best[k]: the least error of the channels so far using at most k extra bits.
  std::vector<double> best(cap + 1, 0.0), next(cap + 1);
  std::vector<uint8_t> pick(static_cast<size_t>(n) * (cap + 1));  // (channels, capacity + 1)
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t k = 0; k <= cap; ++k) {
      double v = kInf;
      uint8_t arg = 0;
      for (size_t i = 0; i < widths.size(); ++i) {
        const int64_t x = widths[i] - p->narrowest;
        if (x > k) continue;
        const double cand = best[k - x] + errors[c][i];
        if (cand < v) { v = cand; arg = static_cast<uint8_t>(i); }
      }
      next[k] = v;
      pick[c * (cap + 1) + k] = arg;
    }
    best.swap(next);
  }
  Assignment a;
  a.choice.resize(n);
  int64_t k = cap;
  for (int64_t c = n - 1; c >= 0; --c) {
    const int i = pick[c * (cap + 1) + k];
    a.choice[c] = i;
    k -= widths[i] - p->narrowest;
  }
  a.error = Total(errors, a.choice);
  a.lower_bound = best[cap];  // exact: the optimum itself
  a.total_bits = TotalBits(widths, a.choice);
  return a;
}

Result<Assignment> AssignLagrangian(const std::vector<std::vector<double>>& errors, const std::vector<int>& widths,
                                    double budget_bits) {
  auto p = Check(errors, widths, budget_bits);
  if (!p.ok()) return p.status();
  const int64_t n = static_cast<int64_t>(errors.size());
  const double cap_bits = static_cast<double>(p->capacity + p->narrowest * n);
  // For a price λ per bit each channel minimises error + λ·bits on its own; ties go to the
  // narrower width so that the bits used fall as λ rises.
  auto solve = [&](double lambda, std::vector<int>* choice) {
    double dual = 0;
    int64_t bits = 0;
    for (int64_t c = 0; c < n; ++c) {
      int arg = -1;
      double v = 0;
      for (size_t i = 0; i < widths.size(); ++i) {
        const double cand = errors[c][i] + lambda * widths[i];
        if (arg < 0 || cand < v || (cand == v && widths[i] < widths[arg])) { v = cand; arg = static_cast<int>(i); }
      }
      (*choice)[c] = arg;
      dual += v;
      bits += widths[arg];
    }
    return std::pair<double, int64_t>{dual - lambda * cap_bits, bits};
  };
  std::vector<int> lo_choice(n), hi_choice(n);
  double lo = 0, hi = 1;
  double best_dual = -std::numeric_limits<double>::infinity();
  auto [d0, b0] = solve(lo, &lo_choice);
  best_dual = std::max(best_dual, d0);
  if (b0 <= cap_bits) {  // the unconstrained optimum fits: it is optimal
    Assignment a{lo_choice, Total(errors, lo_choice), 0, static_cast<int>(b0)};
    a.lower_bound = a.error;
    return a;
  }
  for (;;) {  // grow λ until every channel sits at a width the budget allows in total
    auto [d, b] = solve(hi, &hi_choice);
    best_dual = std::max(best_dual, d);
    if (b <= cap_bits) break;
    lo = hi;
    hi *= 2;
    if (!std::isfinite(hi)) return Status::Internal("AssignLagrangian: no feasible price");
  }
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    std::vector<int> choice(n);
    auto [d, b] = solve(mid, &choice);
    best_dual = std::max(best_dual, d);
    if (b <= cap_bits) { hi = mid; hi_choice = choice; } else { lo = mid; }
  }
  // Greedy fill: spend the bits the feasible side leaves over on the upgrades that buy the most
  // error per bit. It only lowers the error and never breaks the budget.
  std::vector<int> choice = hi_choice;
  int64_t left = static_cast<int64_t>(cap_bits) - TotalBits(widths, choice);
  struct Upgrade { double gain_per_bit; int64_t channel; int to; };
  std::vector<Upgrade> ups;
  for (int64_t c = 0; c < n; ++c) {
    for (size_t i = 0; i < widths.size(); ++i) {
      const int extra = widths[i] - widths[choice[c]];
      const double gain = errors[c][choice[c]] - errors[c][i];
      if (extra > 0 && gain > 0) ups.push_back({gain / extra, c, static_cast<int>(i)});
    }
  }
  std::sort(ups.begin(), ups.end(), [](const Upgrade& a, const Upgrade& b) { return a.gain_per_bit > b.gain_per_bit; });
  const std::vector<int> base = choice;
  for (const Upgrade& u : ups) {
    if (choice[u.channel] != base[u.channel]) continue;
    const int extra = widths[u.to] - widths[choice[u.channel]];
    if (extra <= left) { choice[u.channel] = u.to; left -= extra; }
  }
  Assignment a;
  a.choice = choice;
  a.error = Total(errors, choice);
  a.lower_bound = std::min(best_dual, a.error);
  a.total_bits = TotalBits(widths, choice);
  return a;
}

}  // namespace scion::kernels::quant
