#include "search/linalg.h"

#include <cmath>
#include <string>

namespace scion::search {
namespace {

// Plain Cholesky–Banachiewicz; false when a pivot is not positive.
bool TryFactor(const Matrix& a, double jitter, Matrix& l) {
  const int n = a.rows;
  l = Matrix(n, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j <= i; ++j) {
      double sum = a(i, j) + (i == j ? jitter : 0.0);
      for (int k = 0; k < j; ++k) sum -= l(i, k) * l(j, k);
      if (i == j) {
        if (!(sum > 0.0) || !std::isfinite(sum)) return false;
        l(i, i) = std::sqrt(sum);
      } else {
        l(i, j) = sum / l(j, j);
      }
    }
  }
  return true;
}

}  // namespace

std::vector<double> Cholesky::SolveLower(const std::vector<double>& b) const {
  const int n = size();
  std::vector<double> z(b);
  for (int i = 0; i < n; ++i) {
    double s = z[i];
    for (int k = 0; k < i; ++k) s -= lower(i, k) * z[k];
    z[i] = s / lower(i, i);
  }
  return z;
}

std::vector<double> Cholesky::SolveUpper(const std::vector<double>& b) const {
  const int n = size();
  std::vector<double> z(b);
  for (int i = n - 1; i >= 0; --i) {
    double s = z[i];
    for (int k = i + 1; k < n; ++k) s -= lower(k, i) * z[k];
    z[i] = s / lower(i, i);
  }
  return z;
}

std::vector<double> Cholesky::Solve(const std::vector<double>& b) const {
  return SolveUpper(SolveLower(b));
}

double Cholesky::LogDet() const {
  double s = 0.0;
  for (int i = 0; i < size(); ++i) s += std::log(lower(i, i));
  return 2.0 * s;
}

Result<Cholesky> FactorWithJitter(const Matrix& a, double initial_jitter, int max_tries) {
  if (a.rows != a.cols) return Status::InvalidArgument("cholesky: matrix is not square");
  Cholesky c;
  if (a.rows == 0) return c;
  if (TryFactor(a, 0.0, c.lower)) return c;
  double mean_diag = 0.0;
  for (int i = 0; i < a.rows; ++i) mean_diag += std::fabs(a(i, i));
  mean_diag = mean_diag > 0.0 ? mean_diag / a.rows : 1.0;
  double jitter = initial_jitter * mean_diag;
  for (int t = 0; t < max_tries; ++t, jitter *= 10.0) {
    if (TryFactor(a, jitter, c.lower)) {
      c.jitter = jitter;
      return c;
    }
  }
  return Status::FailedPrecondition("cholesky: matrix not positive definite even with jitter " +
                                    std::to_string(jitter / 10.0));
}

}  // namespace scion::search
