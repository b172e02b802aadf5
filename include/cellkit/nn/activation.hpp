#pragma once
/// @file
/// Activation functions with their backward pass (namespace `cellkit::nn`).
///
/// Each activation is a small functor with CELLKIT_HD members `value(x)` and `derivative(x, y)`
/// (y = value(x), so derivatives that are cheaper from the output use it):
///
/// | functor               | value y(x)                                   | dy/dx                               |
/// |-----------------------|----------------------------------------------|-------------------------------------|
/// | `identity`            | x                                            | 1                                   |
/// | `relu`                | max(x, 0)                                    | 1 if x > 0 else 0 (PyTorch's)       |
/// | `elu{alpha = 1}`      | x if x > 0 else alpha (e^x - 1)              | 1 if x > 0 else y + alpha           |
/// | `sigmoid`             | 1 / (1 + e^-x), from e^-abs(x) (no overflow)    | y (1 - y)                           |
/// | `softplus`            | max(x, 0) + log1p(e^-abs(x))  (exact; PyTorch   | sigmoid(x)                          |
/// |                       | returns x itself for x > 20, equal in float)  |                                     |
/// | `exp_activation`      | e^x                                          | y                                   |
/// | `mean_activation`     | clamp(e^x, lower, upper)                     | e^x inside [lower, upper], else 0   |
/// |   {1e-5, 1e6}         | (DCA/scDeepCluster's MeanAct: a ZINB/NB mean)|                                     |
/// | `dispersion_activation` | clamp(softplus(x), lower, upper)           | sigmoid(x) inside, else 0           |
/// |   {1e-4, 1e4}         | (DispAct: an NB/ZINB dispersion theta)       |                                     |
///
/// The bounded activations keep the count likelihoods away from mu = 0, theta = 0 and overflow:
/// their bounds are the defaults above (those of the published models) and can be set per use. The
/// clamp's derivative is PyTorch's: 1 where lower <= value <= upper, 0 outside (so a saturated unit
/// stops learning instead of producing inf). e^x overflowing to inf is clamped to `upper`, never NaN.
///
///     activation_forward(policy, act, x, y)              y = act(x)           (y may alias x)
///     activation_backward(policy, act, x, y, dy, dx)     dx = dy * act'(x)    (dx may alias dy)
///
/// Any policy (host or cuda; the functors run on the device). Element-wise: O(rows x cols), one
/// transcendental per element at most; host passes below 32768 elements run on the calling thread.
/// Results are identical for every host policy and thread count. cuda calls are asynchronous.
/// Errors: `dimension_mismatch` when x, y, dy, dx differ in shape; `invalid_argument` when a bound
/// is not finite, lower > upper, or the bound of a strictly positive activation is <= 0, or elu's
/// alpha is not finite.

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/vector_exp.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/nn/detail/common.hpp>

#include <cmath>
#include <string>
#include <type_traits>

namespace cellkit::nn {

/// y = x.
struct identity {
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T value(T x) const {
    return x;
  }
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T derivative(T, T) const {
    return T(1);
  }
};

/// y = max(x, 0).
struct relu {
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T value(T x) const {
    return x > T(0) ? x : T(0);
  }
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T derivative(T x, T) const {
    return x > T(0) ? T(1) : T(0);
  }
};

/// y = x (x > 0), alpha (e^x - 1) otherwise (expm1: accurate near 0).
struct elu {
  double alpha = 1.0;
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T value(T x) const {
    return cellkit::detail::vsel(x > T(0), x, T(alpha) * cellkit::detail::vexpm1(x));
  }
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T derivative(T x, T y) const {
    return cellkit::detail::vsel(x > T(0), T(1), y + T(alpha));
  }
};

namespace detail {
/// 1 / (1 + e^-x) without overflow: e^-|x| is at most 1.
template <class T>
CELLKIT_HD CELLKIT_VX_INLINE T stable_sigmoid(T x) {
  const T e = cellkit::detail::vexp(-std::fabs(x));
  const T d = T(1) + e;
  return cellkit::detail::vsel(x >= T(0), T(1) / d, e / d);
}
/// log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x, full accuracy for x << 0.
template <class T>
CELLKIT_HD CELLKIT_VX_INLINE T stable_softplus(T x) {
  return cellkit::detail::vsel(x > T(0), x, T(0)) + cellkit::detail::vlog1p_unit(cellkit::detail::vexp(-std::fabs(x)));
}
}  // namespace detail

/// y = 1 / (1 + e^-x).
struct sigmoid {
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T value(T x) const {
    return detail::stable_sigmoid(x);
  }
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T derivative(T, T y) const {
    return y * (T(1) - y);
  }
};

/// y = log(1 + e^x).
struct softplus {
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T value(T x) const {
    return detail::stable_softplus(x);
  }
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T derivative(T x, T) const {
    return detail::stable_sigmoid(x);
  }
};

/// y = e^x (unbounded; overflows to inf for large x: prefer `mean_activation` for count means).
struct exp_activation {
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T value(T x) const {
    return cellkit::detail::vexp(x);
  }
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T derivative(T, T y) const {
    return y;
  }
};

/// y = clamp(e^x, lower, upper): the mean head of count autoencoders (DCA, scDeepCluster MeanAct).
struct mean_activation {
  double lower = 1e-5;
  double upper = 1e6;
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T value(T x) const {
    const T e = cellkit::detail::vexp(x);
    return cellkit::detail::vsel(e < T(lower), T(lower), cellkit::detail::vsel(e > T(upper), T(upper), e));
  }
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T derivative(T x, T y) const {
#if CELLKIT_DEVICE_CODE
    // Strictly inside the bounds y is e^x itself: no second exp. Only a value on a bound needs
    // e^x to tell a clamped unit (gradient 0) from one exactly at the bound (gradient e^x).
    if (y > T(lower) && y < T(upper)) return y;
    const T e = cellkit::detail::vexp(x);
    return (e >= T(lower) && e <= T(upper)) ? e : T(0);
#else
    // Host: branch-free so that the row loop vectorises; recomputing the (vectorised) e^x costs
    // less than a data-dependent branch. Same value: e^x = y inside the bounds.
    (void)y;
    const T e = cellkit::detail::vexp(x);
    return cellkit::detail::vsel((e >= T(lower)) & (e <= T(upper)), e, T(0));
#endif
  }
};

/// y = clamp(softplus(x), lower, upper): the dispersion head (DispAct).
struct dispersion_activation {
  double lower = 1e-4;
  double upper = 1e4;
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T value(T x) const {
    const T s = detail::stable_softplus(x);
    return cellkit::detail::vsel(s < T(lower), T(lower), cellkit::detail::vsel(s > T(upper), T(upper), s));
  }
  template <class T>
  CELLKIT_HD CELLKIT_VX_INLINE T derivative(T x, T y) const {
#if CELLKIT_DEVICE_CODE
    // Inside the bounds y = softplus(x), and sigmoid(x) = 1 - e^-softplus(x) = -expm1(-y): one
    // expm1 instead of recomputing softplus and the sigmoid (relative error stays ~1 ulp).
    if (y > T(lower) && y < T(upper)) return -cellkit::detail::vexpm1(-y);
    const T s = detail::stable_softplus(x);
    return (s >= T(lower) && s <= T(upper)) ? detail::stable_sigmoid(x) : T(0);
#else
    // Host: branch-free (the row loop vectorises): e = e^-|x| once gives both softplus(x) (for the
    // bounds test, bit-identical to the forward value) and sigmoid(x).
    (void)y;
    const T e = cellkit::detail::vexp(-std::fabs(x));
    const T s = cellkit::detail::vsel(x > T(0), x, T(0)) + cellkit::detail::vlog1p_unit(e);
    const T d = T(1) + e;
    const T sig = cellkit::detail::vsel(x >= T(0), T(1) / d, e / d);
    return cellkit::detail::vsel((s >= T(lower)) & (s <= T(upper)), sig, T(0));
#endif
  }
};

namespace detail {

template <class Act>
void check_activation(const Act& act, const char* fn) {
  if constexpr (std::is_same_v<Act, elu>) {
    CELLKIT_EXPECTS(std::isfinite(act.alpha), fn, "elu.alpha", "must be finite, got " + std::to_string(act.alpha));
  } else if constexpr (std::is_same_v<Act, mean_activation> || std::is_same_v<Act, dispersion_activation>) {
    CELLKIT_EXPECTS(std::isfinite(act.lower) && std::isfinite(act.upper) && act.lower > 0 && act.lower <= act.upper, fn,
                    "bounds",
                    "need 0 < lower <= upper, both finite; got lower = " + std::to_string(act.lower) +
                        ", upper = " + std::to_string(act.upper));
  } else {
    (void)act;
    (void)fn;
  }
}

template <class Act, class T, class Space>
struct activation_forward_fn {
  Act act;
  matrix_view<const T, Space> x;
  matrix_view<T, Space> y;
  CELLKIT_HD void operator()(index_t r, index_t c) const { y(r, c) = act.value(x(r, c)); }
};

template <class Act, class T, class Space>
struct activation_backward_fn {
  Act act;
  matrix_view<const T, Space> x;
  matrix_view<const T, Space> y;
  matrix_view<const T, Space> dy;
  matrix_view<T, Space> dx;
  CELLKIT_HD void operator()(index_t r, index_t c) const { dx(r, c) = dy(r, c) * act.derivative(x(r, c), y(r, c)); }
};

/// Host row kernels: restrict-qualified contiguous rows so that the loop vectorises (the functors
/// are branch-free on the host). Separate in-place variants: y == x and dx == dy are allowed.
template <class Act, class T>
void forward_row(const Act act, const T* __restrict x, T* __restrict y, index_t n) {
  for (index_t c = 0; c < n; ++c) y[c] = act.value(x[c]);
}
template <class Act, class T>
void forward_row_in_place(const Act act, T* __restrict y, index_t n) {
  for (index_t c = 0; c < n; ++c) y[c] = act.value(y[c]);
}
template <class Act, class T>
void backward_row(const Act act, const T* __restrict x, const T* __restrict y, const T* __restrict dy, T* __restrict dx,
                  index_t n) {
  for (index_t c = 0; c < n; ++c) dx[c] = dy[c] * act.derivative(x[c], y[c]);
}
template <class Act, class T>
void backward_row_in_place(const Act act, const T* __restrict x, const T* __restrict y, T* __restrict d, index_t n) {
  for (index_t c = 0; c < n; ++c) d[c] = d[c] * act.derivative(x[c], y[c]);
}

}  // namespace detail

/// y = act(x), element-wise. y may be x itself (in place).
template <class Policy, class Act, class T, class Space>
void activation_forward(const Policy& policy, const Act& act, const_matrix_arg<T, Space> x, matrix_view<T, Space> y) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "activation_forward";
  expect_shapes(x.rows() == y.rows() && x.cols() == y.cols(), fn, "x", x.shape(), "y", y.shape(),
                "x and y must have the same shape");
  detail::check_activation(act, fn);
  if constexpr (is_host_policy_v<Policy>) {
    detail::for_each_row(policy, x.rows(), x.cols(), [&](index_t r) {
      const T* xr = x.row_data(r);
      T* yr = y.row_data(r);
      if (xr == yr) {
        detail::forward_row_in_place(act, yr, x.cols());
      } else {
        detail::forward_row(act, xr, yr, x.cols());
      }
    });
  } else {
    detail::for_each_element(policy, x.rows(), x.cols(), detail::activation_forward_fn<Act, T, Space>{act, x, y});
  }
}

/// dx = dy * act'(x) given the forward input x and output y = act(x). dx may be dy itself.
template <class Policy, class Act, class T, class Space>
void activation_backward(const Policy& policy, const Act& act, const_matrix_arg<T, Space> x,
                         const_matrix_arg<T, Space> y, const_matrix_arg<T, Space> dy, matrix_view<T, Space> dx) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "activation_backward";
  expect_shapes(x.rows() == y.rows() && x.cols() == y.cols(), fn, "x", x.shape(), "y", y.shape(),
                "x and y must have the same shape");
  expect_shapes(x.rows() == dy.rows() && x.cols() == dy.cols(), fn, "x", x.shape(), "dy", dy.shape(),
                "x and dy must have the same shape");
  expect_shapes(x.rows() == dx.rows() && x.cols() == dx.cols(), fn, "x", x.shape(), "dx", dx.shape(),
                "x and dx must have the same shape");
  detail::check_activation(act, fn);
  if constexpr (is_host_policy_v<Policy>) {
    detail::for_each_row(policy, x.rows(), x.cols(), [&](index_t r) {
      const T* dyr = dy.row_data(r);
      T* dxr = dx.row_data(r);
      if (dyr == dxr) {
        detail::backward_row_in_place(act, x.row_data(r), y.row_data(r), dxr, x.cols());
      } else {
        detail::backward_row(act, x.row_data(r), y.row_data(r), dyr, dxr, x.cols());
      }
    });
  } else {
    detail::for_each_element(policy, x.rows(), x.cols(),
                             detail::activation_backward_fn<Act, T, Space>{act, x, y, dy, dx});
  }
}

}  // namespace cellkit::nn
