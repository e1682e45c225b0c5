#include "fheml/quant/weight_rounding.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace fheml::quant {
namespace {

// Lower Cholesky factor L of a symmetric positive definite a [n, n] (a = L L^T), in place in the
// lower triangle (the upper one is zeroed). Written here rather than taken from a linear algebra
// library: the project's only dense factorisations are these, on at most a few hundred inputs
// and damped to be well conditioned.
void cholesky_in_place(std::vector<double>& a, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (std::size_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) throw std::invalid_argument("calibration covariance is not positive definite");
    const double ljj = std::sqrt(d);
    a[j * n + j] = ljj;
    for (std::size_t i = j + 1; i < n; ++i) {
      double v = a[i * n + j];
      for (std::size_t k = 0; k < j; ++k) v -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = v / ljj;
    }
    for (std::size_t i = 0; i < j; ++i) a[i * n + j] = 0.0;
  }
}

}  // namespace

std::vector<double> damped_inverse_covariance(std::span<const double> samples, std::size_t rows,
                                              std::size_t features) {
  const std::size_t n = features;
  if (rows == 0 || n == 0 || samples.size() != rows * n) {
    throw std::invalid_argument("weight rounding: " + std::to_string(samples.size()) +
                                " calibration values for " + std::to_string(rows) + " rows of " +
                                std::to_string(n) + " inputs");
  }
  std::vector<double> mean(n, 0.0), h(n * n, 0.0), centred(n);
  const auto count = static_cast<double>(rows);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t f = 0; f < n; ++f) mean[f] += samples[r * n + f] / count;
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t f = 0; f < n; ++f) centred[f] = samples[r * n + f] - mean[f];
    for (std::size_t i = 0; i < n; ++i) {
      if (centred[i] == 0.0) continue;
      for (std::size_t j = 0; j <= i; ++j) h[i * n + j] += centred[i] * centred[j] / count;
    }
  }
  double diagonal = 0;
  for (std::size_t i = 0; i < n; ++i) diagonal += h[i * n + i] / static_cast<double>(n);
  const double damping = diagonal > 0 ? 0.01 * diagonal : 1.0;
  for (std::size_t i = 0; i < n; ++i) {
    h[i * n + i] += damping;
    for (std::size_t j = 0; j < i; ++j) h[j * n + i] = h[i * n + j];
  }
  // h = L L^T; M = L^-1 (lower triangular); h^-1 = M^T M.
  cholesky_in_place(h, n);
  std::vector<double> m(n * n, 0.0);
  for (std::size_t j = 0; j < n; ++j) {
    m[j * n + j] = 1.0 / h[j * n + j];
    for (std::size_t i = j + 1; i < n; ++i) {
      double v = 0;
      for (std::size_t k = j; k < i; ++k) v -= h[i * n + k] * m[k * n + j];
      m[i * n + j] = v / h[i * n + i];
    }
  }
  std::vector<double> inverse(n * n, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j <= i; ++j) {
      double v = 0;
      for (std::size_t k = i; k < n; ++k) v += m[k * n + i] * m[k * n + j];
      inverse[i * n + j] = inverse[j * n + i] = v;
    }
  return inverse;
}

std::vector<std::int64_t> round_with_error_feedback(
    std::span<const double> weights, std::size_t features, std::span<const double> steps,
    std::span<const double> h_inverse, std::span<const std::size_t> order, std::int64_t qmax) {
  const std::size_t n = features, columns = steps.size();
  std::vector<bool> seen(n, false);
  bool permutation = order.size() == n;
  for (const std::size_t f : order) {
    permutation = permutation && f < n && !seen[f];
    if (f < n) seen[f] = true;
  }
  if (weights.size() != n * columns || h_inverse.size() != n * n || !permutation || qmax < 1) {
    throw std::invalid_argument("weight rounding: weights " + std::to_string(weights.size()) +
                                " for " + std::to_string(n) + " inputs x " +
                                std::to_string(columns) + " outputs, inverse covariance " +
                                std::to_string(h_inverse.size()) + ", order of " +
                                std::to_string(order.size()) + ", qmax " + std::to_string(qmax));
  }
  // Rounding feature order[0], correcting the others, then removing it from the inverse
  // covariance (its Schur complement), and so on, is the same as walking the rows of U, the
  // upper Cholesky factor of the inverse covariance in that order (GPTQ's formulation): the
  // correction of feature j for the error e of feature i is e * U[i, j] / U[i, i]. One
  // factorisation serves every column.
  std::vector<double> u(n * n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) u[i * n + j] = h_inverse[order[i] * n + order[j]];
  cholesky_in_place(u, n);  // lower L; U = L^T, so U[i, j] = L[j, i]
  const auto q = static_cast<double>(qmax);
  std::vector<std::int64_t> levels(n * columns, 0);
  std::vector<double> w(n);
  for (std::size_t c = 0; c < columns; ++c) {
    if (!(steps[c] > 0)) continue;
    for (std::size_t i = 0; i < n; ++i) w[i] = weights[order[i] * columns + c] / steps[c];
    for (std::size_t i = 0; i < n; ++i) {
      const double k = std::clamp(std::nearbyint(w[i]), -q, q);
      levels[order[i] * columns + c] = static_cast<std::int64_t>(k);
      const double error = (w[i] - k) / u[i * n + i];
      for (std::size_t j = i + 1; j < n; ++j) w[j] -= error * u[j * n + i];
    }
  }
  return levels;
}

}  // namespace fheml::quant
