#pragma once
/// @file
/// Small dense linear algebra in double for the GMM's d x d parameter matrices (d is the embedding
/// dimension, tens to a few hundred): Cholesky, triangular inverse, symmetric eigen-decomposition
/// by cyclic Jacobi (used only to repair a covariance that is not positive definite), all
/// row-major. The per-iteration cost is K d^3 / 3 flops at most, far below the N K d^2 of a pass.

#include <cellkit/core/config.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace cellkit::cluster::detail {

/// Lower Cholesky factor L (A = L L^T) of the symmetric d x d `a` in place (the upper triangle is
/// zeroed). Returns false, leaving `a` partly overwritten, when a pivot is not positive and finite.
inline bool cholesky_lower(double* a, index_t d) {
  // Right-looking, so that every inner loop is a unit-stride axpy the compiler vectorises: the
  // dot-product form is one dependent multiply-add chain per entry, and the factorisations of a
  // sweep's fits (K of them every iteration) ran at the latency of that chain. Column j of L is
  // copied into row j's upper part (never read, zeroed at the end) to make it unit-stride.
  for (index_t j = 0; j < d; ++j) {
    const double diag = a[j * d + j];
    if (!(diag > 0.0) || !std::isfinite(diag)) return false;
    const double ljj = std::sqrt(diag);
    a[j * d + j] = ljj;
    double* lj = a + j * d;  // lj[i] = L_ij for i > j
    for (index_t i = j + 1; i < d; ++i) {
      a[i * d + j] /= ljj;
      lj[i] = a[i * d + j];
    }
    const double* CELLKIT_RESTRICT column = lj;  // row j: never the row being updated
    for (index_t i = j + 1; i < d; ++i) {
      const double lij = column[i];
      double* CELLKIT_RESTRICT row = a + i * d;
      for (index_t c = j + 1; c <= i; ++c) row[c] -= lij * column[c];
    }
  }
  for (index_t i = 0; i < d; ++i)
    for (index_t j = i + 1; j < d; ++j) a[i * d + j] = 0.0;
  return true;
}

/// Inverse of the lower-triangular `l` (d x d, row-major) written to `out` (lower triangular).
inline void invert_lower(const double* l, index_t d, double* out) {
  // Row i of L^-1 is (e_i - sum_{t < i} l_it row_t) / l_ii: unit-stride axpys over earlier rows.
  std::fill(out, out + d * d, 0.0);
  for (index_t i = 0; i < d; ++i) {
    double* CELLKIT_RESTRICT row = out + i * d;
    row[i] = 1.0;
    for (index_t t = 0; t < i; ++t) {
      const double lit = l[i * d + t];
      const double* CELLKIT_RESTRICT earlier = out + t * d;
      for (index_t c = 0; c <= t; ++c) row[c] -= lit * earlier[c];
    }
    const double lii = l[i * d + i];
    for (index_t c = 0; c <= i; ++c) row[c] /= lii;
  }
}

/// out = m m^T for a d x d `m` (zeros of m, such as a triangle, are skipped).
inline void multiply_by_transpose(const double* m, index_t d, double* out) {
  // Row i of the lower triangle is sum_t m_it (row t of m^T)[0 .. i]: unit-stride axpys.
  std::vector<double> mt(static_cast<std::size_t>(d * d));
  for (index_t i = 0; i < d; ++i)
    for (index_t t = 0; t < d; ++t) mt[static_cast<std::size_t>(t * d + i)] = m[i * d + t];
  std::fill(out, out + d * d, 0.0);
  for (index_t i = 0; i < d; ++i) {
    double* CELLKIT_RESTRICT row = out + i * d;
    for (index_t t = 0; t < d; ++t) {
      const double mit = m[i * d + t];
      if (mit == 0.0) continue;
      const double* CELLKIT_RESTRICT column = mt.data() + t * d;
      for (index_t j = 0; j <= i; ++j) row[j] += mit * column[j];
    }
    for (index_t j = 0; j < i; ++j) out[j * d + i] = row[j];
  }
}

/// Eigen-decomposition of the symmetric d x d `a` by cyclic Jacobi: a = V diag(values) V^T, V
/// row-major with eigenvectors in columns. Converges quadratically; stops when the off-diagonal
/// mass is below 1e-15 of the Frobenius norm or after 60 sweeps.
inline void symmetric_eigen(const double* a, index_t d, std::vector<double>& values, std::vector<double>& vectors) {
  std::vector<double> m(a, a + d * d);
  vectors.assign(static_cast<std::size_t>(d * d), 0.0);
  for (index_t i = 0; i < d; ++i) vectors[static_cast<std::size_t>(i * d + i)] = 1.0;
  double frobenius = 0.0;
  for (double v : m) frobenius += v * v;
  for (int sweep = 0; sweep < 60; ++sweep) {
    double off = 0.0;
    for (index_t i = 0; i < d; ++i)
      for (index_t j = i + 1; j < d; ++j)
        off += 2.0 * m[static_cast<std::size_t>(i * d + j)] * m[static_cast<std::size_t>(i * d + j)];
    if (!(off > 1e-30 * frobenius)) break;
    for (index_t p = 0; p < d; ++p)
      for (index_t q = p + 1; q < d; ++q) {
        const double apq = m[static_cast<std::size_t>(p * d + q)];
        if (apq == 0.0) continue;
        const double app = m[static_cast<std::size_t>(p * d + p)];
        const double aqq = m[static_cast<std::size_t>(q * d + q)];
        const double theta = (aqq - app) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0);
        const double s = t * c;
        for (index_t r = 0; r < d; ++r) {  // columns p, q
          const double mrp = m[static_cast<std::size_t>(r * d + p)];
          const double mrq = m[static_cast<std::size_t>(r * d + q)];
          m[static_cast<std::size_t>(r * d + p)] = c * mrp - s * mrq;
          m[static_cast<std::size_t>(r * d + q)] = s * mrp + c * mrq;
        }
        for (index_t r = 0; r < d; ++r) {  // rows p, q
          const double mpr = m[static_cast<std::size_t>(p * d + r)];
          const double mqr = m[static_cast<std::size_t>(q * d + r)];
          m[static_cast<std::size_t>(p * d + r)] = c * mpr - s * mqr;
          m[static_cast<std::size_t>(q * d + r)] = s * mpr + c * mqr;
        }
        for (index_t r = 0; r < d; ++r) {
          const double vrp = vectors[static_cast<std::size_t>(r * d + p)];
          const double vrq = vectors[static_cast<std::size_t>(r * d + q)];
          vectors[static_cast<std::size_t>(r * d + p)] = c * vrp - s * vrq;
          vectors[static_cast<std::size_t>(r * d + q)] = s * vrp + c * vrq;
        }
      }
  }
  values.resize(static_cast<std::size_t>(d));
  for (index_t i = 0; i < d; ++i) values[static_cast<std::size_t>(i)] = m[static_cast<std::size_t>(i * d + i)];
}

/// Raises every eigenvalue of the symmetric `a` (d x d) to at least `floor` (> 0) in place and
/// returns the smallest eigenvalue before the repair (NaN entries are treated as 0 first).
inline double floor_eigenvalues(double* a, index_t d, double floor) {
  for (index_t e = 0; e < d * d; ++e)
    if (!std::isfinite(a[e])) a[e] = 0.0;
  for (index_t i = 0; i < d; ++i)  // symmetrise: rounding in the statistics can leave a tiny skew
    for (index_t j = 0; j < i; ++j) {
      const double v = 0.5 * (a[i * d + j] + a[j * d + i]);
      a[i * d + j] = v;
      a[j * d + i] = v;
    }
  std::vector<double> values;
  std::vector<double> vectors;
  symmetric_eigen(a, d, values, vectors);
  const double smallest = *std::min_element(values.begin(), values.end());
  for (double& v : values) v = std::max(v, floor);
  for (index_t i = 0; i < d; ++i)
    for (index_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (index_t t = 0; t < d; ++t)
        s += vectors[static_cast<std::size_t>(i * d + t)] * values[static_cast<std::size_t>(t)] *
             vectors[static_cast<std::size_t>(j * d + t)];
      a[i * d + j] = s;
      a[j * d + i] = s;
    }
  return smallest;
}

}  // namespace cellkit::cluster::detail
