#pragma once
/// @file
/// Gradient norms and clipping over a `parameter_list` (namespace `cellkit::nn`).
///
///     gradient_norm(params)                 ||g||_2 over all entries together
///     clip_grad_norm(params, max_norm)      PyTorch's clip_grad_norm_: with c = max_norm / (||g|| + 1e-6),
///                                           every gradient is scaled by min(c, 1); returns ||g|| before clipping
///     clip_grad_value(params, limit)        every gradient element clamped to [-limit, limit]
///
/// A non-finite gradient norm means the step diverged: `clip_grad_norm` then throws
/// `invalid_argument` naming the first entry with a non-finite gradient element (its name and the
/// element), unless `{.error_if_nonfinite = false}` (then it returns the norm and changes nothing).
/// Sums of squares are accumulated in double, entry by entry in list order, on the calling thread
/// (deterministic). Cost O(total parameters). Host memory; synchronous.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/nn/parameters.hpp>

#include <algorithm>
#include <cmath>
#include <string>

namespace cellkit::nn {

/// Options of `clip_grad_norm`.
struct clip_norm_params {
  /// Throw when the norm is NaN or infinite (naming the entry at fault); otherwise return it.
  bool error_if_nonfinite = true;
};

/// The 2-norm of all gradients together.
template <class T>
double gradient_norm(const parameter_list<T>& params) {
  double sum = 0.0;
  for (const auto& p : params) {
    const T* g = p.grad.data();
    double s = 0.0;
    for (index_t i = 0; i < p.size(); ++i) s += static_cast<double>(g[i]) * static_cast<double>(g[i]);
    sum += s;
  }
  return std::sqrt(sum);
}

namespace detail {
template <class T>
[[noreturn]] void throw_nonfinite_gradient(const char* fn, const parameter_list<T>& params) {
  for (const auto& p : params) {
    for (index_t i = 0; i < p.size(); ++i) {
      if (!std::isfinite(p.grad.data()[i])) {
        cellkit::detail::throw_invalid_argument(fn, "params",
                                                "gradient of '" + p.name + "' is " +
                                                    std::to_string(static_cast<double>(p.grad.data()[i])) +
                                                    " at element (" + std::to_string(i / p.value.cols()) + ", " +
                                                    std::to_string(i % p.value.cols()) + "): the step diverged");
      }
    }
  }
  cellkit::detail::throw_invalid_argument(fn, "params", "the gradient norm overflowed (every element is finite)");
}
}  // namespace detail

/// Scales all gradients so their joint 2-norm is at most `max_norm` (PyTorch's rule, see the file
/// comment). Returns the norm before clipping. Throws `invalid_argument` for max_norm <= 0 or not
/// finite, and for a non-finite norm unless `params.error_if_nonfinite` is false.
template <class T>
double clip_grad_norm(const parameter_list<T>& params, double max_norm, clip_norm_params options = {}) {
  constexpr const char* fn = "clip_grad_norm";
  CELLKIT_EXPECTS(std::isfinite(max_norm) && max_norm > 0.0, fn, "max_norm",
                  "must be finite and > 0, got " + std::to_string(max_norm));
  const double norm = gradient_norm(params);
  if (!std::isfinite(norm)) {
    if (options.error_if_nonfinite) detail::throw_nonfinite_gradient(fn, params);
    return norm;
  }
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    const T c = static_cast<T>(coef);
    for (const auto& p : params) {
      T* g = p.grad.data();
      for (index_t i = 0; i < p.size(); ++i) g[i] *= c;
    }
  }
  return norm;
}

/// Clamps every gradient element to [-limit, limit] (NaN stays NaN). Throws `invalid_argument` for
/// limit <= 0 or not finite.
template <class T>
void clip_grad_value(const parameter_list<T>& params, double limit) {
  CELLKIT_EXPECTS(std::isfinite(limit) && limit > 0.0, "clip_grad_value", "limit",
                  "must be finite and > 0, got " + std::to_string(limit));
  const T hi = static_cast<T>(limit);
  for (const auto& p : params) {
    T* g = p.grad.data();
    for (index_t i = 0; i < p.size(); ++i) g[i] = g[i] > hi ? hi : (g[i] < -hi ? -hi : g[i]);
  }
}

}  // namespace cellkit::nn
