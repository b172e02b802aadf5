#pragma once
/// @file
/// Internals of cellkit/contrastive/jensen_shannon.hpp: one row's divergence and gradients, in
/// double, from log-probabilities. `CELLKIT_HD`: the host loop and the portable (device) functor
/// call the same function, with the math wrappers of core/detail/math_impl.hpp (<cmath> on the host).

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/math_impl.hpp>

namespace cellkit::contrastive::detail {

/// log m = logaddexp(a, b) - log 2 for a = log p, b = log q.
CELLKIT_HD inline double log_midpoint(double a, double b) {
  namespace m = ::cellkit::math::detail;
  constexpr double log2 = 0.69314718055994530942;
  return (a < b ? b : a) + m::log1p_(m::exp_(-m::fabs_(a - b))) - log2;  // std::max(a, b) + ...
}

/// JS of one row (double) and, when the pointers are given, dJS/dx and dJS/dy times `scale`.
///
/// `lp` and `lq` (k doubles each, or both null) keep log(p/m) and log(q/m) from the divergence
/// loop for the gradient loop; without them the gradient loop recomputes log m (same operations,
/// so the same bits). Without scratch, element j of x and y is read before gx[j] and gy[j] are
/// written and never again, so the gradients may overwrite the inputs row by row.
template <class T>
CELLKIT_HD double jensen_shannon_row(const T* x, const T* y, index_t k, T* gx, T* gy, double scale,
                                     double* lp = nullptr, double* lq = nullptr) {
  namespace m = ::cellkit::math::detail;
  double mx = -m::inf<double>(), my = -m::inf<double>();
  for (index_t j = 0; j < k; ++j) {
    mx = mx < static_cast<double>(x[j]) ? static_cast<double>(x[j]) : mx;  // std::max(mx, x_j)
    my = my < static_cast<double>(y[j]) ? static_cast<double>(y[j]) : my;
  }
  double sx = 0, sy = 0;
  for (index_t j = 0; j < k; ++j) {
    sx += m::exp_(static_cast<double>(x[j]) - mx);
    sy += m::exp_(static_cast<double>(y[j]) - my);
  }
  const double lse_x = mx + m::log_(sx);
  const double lse_y = my + m::log_(sy);
  double kl_p = 0, kl_q = 0;  // KL(p || m), KL(q || m)
  for (index_t j = 0; j < k; ++j) {
    const double a = static_cast<double>(x[j]) - lse_x;
    const double b = static_cast<double>(y[j]) - lse_y;
    const double lm = log_midpoint(a, b);
    if (lp != nullptr) {
      lp[j] = a - lm;  // log(p/m)
      lq[j] = b - lm;  // log(q/m)
    }
    kl_p += m::exp_(a) * (a - lm);
    kl_q += m::exp_(b) * (b - lm);
  }
  if (gx != nullptr || gy != nullptr) {
    for (index_t j = 0; j < k; ++j) {
      const double a = static_cast<double>(x[j]) - lse_x;
      const double b = static_cast<double>(y[j]) - lse_y;
      double log_p_m, log_q_m;
      if (lp != nullptr) {
        log_p_m = lp[j];
        log_q_m = lq[j];
      } else {
        const double lm = log_midpoint(a, b);
        log_p_m = a - lm;
        log_q_m = b - lm;
      }
      if (gx != nullptr) gx[j] = static_cast<T>(scale * 0.5 * m::exp_(a) * (log_p_m - kl_p));
      if (gy != nullptr) gy[j] = static_cast<T>(scale * 0.5 * m::exp_(b) * (log_q_m - kl_q));
    }
  }
  return 0.5 * (kl_p + kl_q);
}

}  // namespace cellkit::contrastive::detail
