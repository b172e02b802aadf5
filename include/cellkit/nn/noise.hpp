#pragma once
/// @file
/// Stochastic regularisers driven by the counter-based RNG: dropout and Gaussian noise
/// (namespace `cellkit::nn`).
///
/// ## Draws
///
/// Element (r, c) of a rows x cols input at call `step` draws from
/// `philox_engine(seed, stream, step * rows * cols + r * cols + c)` (core/random.hpp); Gaussian
/// noise draws one Box-Muller pair for columns (2j, 2j + 1) from the engine of "element" (r, j) of
/// a rows x ceil(cols / 2) grid (`normal_pair`: first value to column 2j). The draws
/// depend only on (seed, stream, step, r, c): identical under serial, openmp{any} and cuda
/// (dropout's Bernoulli draws bit for bit everywhere; Gaussian noise bit for bit across host
/// policies, see random.hpp for host vs device), independent of the scheduling. Advance `step`
/// once per training step (e.g. the global mini-batch counter) so every step gets fresh draws; use
/// different `stream`s for different layers.
///
/// ## Dropout (inverted, as PyTorch's `nn.Dropout` in training mode)
///
///     y_rc = x_rc * m_rc / (1 - rate),   m_rc ~ Bernoulli(1 - rate)
///     dx_rc = dy_rc * m_rc / (1 - rate)
///
/// `dropout_backward` regenerates m from the same (seed, stream, step): no mask is stored.
/// rate = 0 copies; rate = 1 is rejected (every unit dropped, the scale is infinite).
///
/// ## Gaussian noise (scDeepCluster's input corruption, DCA's hidden noise)
///
///     y_rc = x_rc + sigma * n_rc,   n_rc ~ N(0, 1);   dL/dx = dL/dy (the noise is additive)
///
/// Any policy (host or cuda). One Philox block per element (dropout) or per two elements (noise); host passes below
/// 32768 elements run on the calling thread. y may alias x; dx may alias dy. cuda calls are asynchronous. Errors:
/// `dimension_mismatch` for shape differences; `invalid_argument` for rate outside [0, 1) or sigma negative / not
/// finite.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/nn/detail/common.hpp>

#include <cmath>
#include <cstdint>
#include <string>

namespace cellkit::nn {

/// Where a stochastic layer's draws come from (see the file comment).
struct noise_key {
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
  /// The training step: advance it every call that needs fresh draws.
  std::uint64_t step = 0;
};

/// Parameters of `dropout_forward` / `dropout_backward`.
struct dropout_params {
  /// Probability of dropping a unit, in [0, 1).
  double rate = 0.5;
  noise_key key{};
};

/// Parameters of `gaussian_noise`.
struct gaussian_noise_params {
  /// Standard deviation of the added noise, >= 0.
  double sigma = 1.0;
  noise_key key{};
};

namespace detail {

CELLKIT_HD inline philox_engine element_engine(const noise_key& key, index_t rows, index_t cols, index_t r, index_t c) {
  const auto n = static_cast<std::uint64_t>(rows) * static_cast<std::uint64_t>(cols);
  return philox_engine(
      key.seed, key.stream,
      key.step * n + static_cast<std::uint64_t>(r) * static_cast<std::uint64_t>(cols) + static_cast<std::uint64_t>(c));
}

template <class T, class Space>
struct dropout_fn {
  matrix_view<const T, Space> in;
  matrix_view<T, Space> out;
  noise_key key;
  double keep;
  T scale;
  CELLKIT_HD void operator()(index_t r, index_t c) const {
    philox_engine eng = element_engine(key, in.rows(), in.cols(), r, c);
    out(r, c) = bernoulli(eng, keep) ? in(r, c) * scale : T(0);
  }
};

/// One Box-Muller pair serves columns 2j and 2j + 1 (half the Philox blocks, logs and square roots).
template <class T, class Space>
struct gaussian_noise_fn {
  matrix_view<const T, Space> in;
  matrix_view<T, Space> out;
  noise_key key;
  T sigma;
  CELLKIT_HD void operator()(index_t r, index_t pair) const {
    const index_t pairs = (in.cols() + 1) / 2;
    philox_engine eng = element_engine(key, in.rows(), pairs, r, pair);
    const auto z = normal_pair<T>(eng);
    const index_t c = 2 * pair;
    out(r, c) = in(r, c) + sigma * z.first;
    if (c + 1 < in.cols()) out(r, c + 1) = in(r, c + 1) + sigma * z.second;
  }
};

inline void check_rate(const char* fn, double rate) {
  CELLKIT_EXPECTS(rate >= 0.0 && rate < 1.0, fn, "rate", "must lie in [0, 1), got " + std::to_string(rate));
}

template <class Policy, class T, class Space>
void dropout_apply(const Policy& policy, const char* fn, matrix_view<const T, Space> in, matrix_view<T, Space> out,
                   const dropout_params& params) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  expect_shapes(in.rows() == out.rows() && in.cols() == out.cols(), fn, "input", in.shape(), "output", out.shape(),
                "input and output must have the same shape");
  check_rate(fn, params.rate);
  const T scale = T(1) / static_cast<T>(1.0 - params.rate);
  for_each_element(policy, in.rows(), in.cols(), dropout_fn<T, Space>{in, out, params.key, 1.0 - params.rate, scale});
}

}  // namespace detail

/// y = x * m / (1 - rate) with m ~ Bernoulli(1 - rate) per element. See the file comment.
template <class Policy, class T, class Space>
void dropout_forward(const Policy& policy, const_matrix_arg<T, Space> x, matrix_view<T, Space> y,
                     const dropout_params& params) {
  detail::dropout_apply(policy, "dropout_forward", x, y, params);
}

/// dx = dy * m / (1 - rate) with the mask of the `dropout_forward` call that used the same params.
template <class Policy, class T, class Space>
void dropout_backward(const Policy& policy, const_matrix_arg<T, Space> dy, matrix_view<T, Space> dx,
                      const dropout_params& params) {
  detail::dropout_apply(policy, "dropout_backward", dy, dx, params);
}

/// y = x + sigma * N(0, 1) per element. See the file comment. Its backward is the identity.
template <class Policy, class T, class Space>
void gaussian_noise(const Policy& policy, const_matrix_arg<T, Space> x, matrix_view<T, Space> y,
                    const gaussian_noise_params& params) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "gaussian_noise";
  expect_shapes(x.rows() == y.rows() && x.cols() == y.cols(), fn, "x", x.shape(), "y", y.shape(),
                "x and y must have the same shape");
  CELLKIT_EXPECTS(std::isfinite(params.sigma) && params.sigma >= 0.0, fn, "sigma",
                  "must be finite and >= 0, got " + std::to_string(params.sigma));
  detail::for_each_element(policy, x.rows(), (x.cols() + 1) / 2,
                           detail::gaussian_noise_fn<T, Space>{x, y, params.key, static_cast<T>(params.sigma)});
}

}  // namespace cellkit::nn
