// Small dense linear algebra for the GP: a row-major matrix and a Cholesky factorisation that adds
// diagonal jitter when a kernel matrix is numerically singular. Sizes here are tens to a few
// hundred rows, so plain loops are the right tool.
#pragma once

#include <vector>

#include "common/status.h"

namespace scion::search {

struct Matrix {
  int rows = 0;
  int cols = 0;
  std::vector<double> data;  // (rows, cols), row-major

  Matrix() = default;
  Matrix(int r, int c, double fill = 0.0) : rows(r), cols(c), data(size_t(r) * size_t(c), fill) {}
  double& operator()(int i, int j) { return data[size_t(i) * size_t(cols) + size_t(j)]; }
  double operator()(int i, int j) const { return data[size_t(i) * size_t(cols) + size_t(j)]; }
};

// Lower-triangular factor L with A + jitter·I = L·Lᵀ.
struct Cholesky {
  Matrix lower;         // (n, n)
  double jitter = 0.0;  // the diagonal term that had to be added (0 when A was PD as given)

  int size() const { return lower.rows; }
  // Solves L·z = b.
  std::vector<double> SolveLower(const std::vector<double>& b) const;
  // Solves Lᵀ·z = b.
  std::vector<double> SolveUpper(const std::vector<double>& b) const;
  // Solves (L·Lᵀ)·z = b.
  std::vector<double> Solve(const std::vector<double>& b) const;
  // log det(L·Lᵀ) = 2 Σ log L_ii.
  double LogDet() const;
};

// Factorises a symmetric matrix. When it is not positive definite, retries with jitter starting at
// `initial_jitter` times the mean diagonal and growing tenfold, up to `max_tries` times.
Result<Cholesky> FactorWithJitter(const Matrix& a, double initial_jitter = 1e-10, int max_tries = 8);

}  // namespace scion::search
