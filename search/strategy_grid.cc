// Grid search: the k-th proposal is the k-th point of the grid, k = completed + pending.
#include <cmath>

#include "search/strategy.h"

namespace scion::search {
namespace {

class GridStrategy : public Strategy {
 public:
  GridStrategy(DecisionSpace space, int points_per_real) : space_(std::move(space)) {
    for (const Dimension& d : space_.dimensions()) {
      std::vector<double> values;
      if (d.type == Dimension::Type::kCategorical) {
        for (size_t c = 0; c < d.choices.size(); ++c) values.push_back(double(c));
      } else if (d.type == Dimension::Type::kInteger && d.high - d.low + 1 <= points_per_real) {
        for (double v = d.low; v <= d.high; v += 1.0) values.push_back(v);
      } else {
        const int n = std::max(points_per_real, 1);
        for (int i = 0; i < n; ++i) {
          std::vector<double> u(space_.size(), 0.0);
          const double t = n == 1 ? 0.5 : double(i) / (n - 1);
          // Reuse the space's own unit mapping (log scale, integer rounding) for one coordinate.
          size_t idx = &d - space_.dimensions().data();
          u[idx] = t;
          const double v = space_.FromUnit(u)[idx];
          if (values.empty() || values.back() != v) values.push_back(v);
        }
      }
      axes_.push_back(std::move(values));
    }
  }

  std::string name() const override { return "grid"; }

  Result<std::vector<Assignment>> Propose(const std::vector<Observation>& completed,
                                          const std::vector<Assignment>& pending, int count) override {
    double total = 1.0;
    for (const auto& axis : axes_) total *= double(axis.size());
    std::vector<Assignment> out;
    for (double k = double(completed.size() + pending.size()); int(out.size()) < count && k < total; k += 1.0) {
      Assignment a(axes_.size());
      double rest = k;
      for (size_t i = 0; i < axes_.size(); ++i) {
        const double n = double(axes_[i].size());
        const double digit = std::fmod(rest, n);
        a[i] = axes_[i][size_t(digit)];
        rest = std::floor(rest / n);
      }
      out.push_back(std::move(a));
    }
    return out;
  }

 private:
  DecisionSpace space_;
  std::vector<std::vector<double>> axes_;
};

}  // namespace

std::unique_ptr<Strategy> MakeGridStrategy(DecisionSpace space, int points_per_real) {
  return std::make_unique<GridStrategy>(std::move(space), points_per_real);
}

}  // namespace scion::search
