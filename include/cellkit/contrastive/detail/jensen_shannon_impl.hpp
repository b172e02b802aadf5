#pragma once
/// @file
/// Internals of cellkit/contrastive/jensen_shannon.hpp: one row's divergence and gradients, in
/// double, from log-probabilities.

#include <cellkit/core/config.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace cellkit::contrastive::detail {

/// JS of one row (double) and, when the pointers are given, dJS/dx and dJS/dy times `scale`.
template <class T>
double jensen_shannon_row(const T* x, const T* y, index_t k, T* gx, T* gy, double scale, std::vector<double>& lp,
                          std::vector<double>& lq) {
  double mx = -std::numeric_limits<double>::infinity(), my = -std::numeric_limits<double>::infinity();
  for (index_t j = 0; j < k; ++j) {
    mx = std::max(mx, static_cast<double>(x[j]));
    my = std::max(my, static_cast<double>(y[j]));
  }
  double sx = 0, sy = 0;
  for (index_t j = 0; j < k; ++j) {
    sx += std::exp(static_cast<double>(x[j]) - mx);
    sy += std::exp(static_cast<double>(y[j]) - my);
  }
  const double lse_x = mx + std::log(sx);
  const double lse_y = my + std::log(sy);
  constexpr double log2 = 0.69314718055994530942;
  double kl_p = 0, kl_q = 0;  // KL(p || m), KL(q || m)
  for (index_t j = 0; j < k; ++j) {
    const double a = static_cast<double>(x[j]) - lse_x;
    const double b = static_cast<double>(y[j]) - lse_y;
    const double lm = std::max(a, b) + std::log1p(std::exp(-std::fabs(a - b))) - log2;
    lp[static_cast<std::size_t>(j)] = a - lm;  // log(p/m)
    lq[static_cast<std::size_t>(j)] = b - lm;  // log(q/m)
    kl_p += std::exp(a) * (a - lm);
    kl_q += std::exp(b) * (b - lm);
  }
  if (gx != nullptr) {
    for (index_t j = 0; j < k; ++j) {
      const double p = std::exp(static_cast<double>(x[j]) - lse_x);
      gx[j] = static_cast<T>(scale * 0.5 * p * (lp[static_cast<std::size_t>(j)] - kl_p));
    }
  }
  if (gy != nullptr) {
    for (index_t j = 0; j < k; ++j) {
      const double q = std::exp(static_cast<double>(y[j]) - lse_y);
      gy[j] = static_cast<T>(scale * 0.5 * q * (lq[static_cast<std::size_t>(j)] - kl_q));
    }
  }
  return 0.5 * (kl_p + kl_q);
}

}  // namespace cellkit::contrastive::detail
