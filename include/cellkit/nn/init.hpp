#pragma once
/// @file
/// Weight initialisation (namespace `cellkit::nn`).
///
/// For a weight matrix W of shape fan_in x fan_out (the `dense_forward` layout):
///
/// | scheme                      | distribution                                   | PyTorch equivalent              |
/// |-----------------------------|------------------------------------------------|---------------------------------|
/// | `glorot_uniform`            | U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)) | `xavier_uniform_`              |
/// | `glorot_normal`             | N(0, s^2), s = gain sqrt(2 / (fan_in + fan_out)) | `xavier_normal_`              |
/// | `he_uniform`                | U(-a, a), a = gain sqrt(3 / fan_in), gain sqrt(2) for ReLU | `kaiming_uniform_`
/// (fan_in) | | `he_normal`                 | N(0, s^2), s = gain / sqrt(fan_in)             | `kaiming_normal_`
/// (fan_in)      | | `fan_in_uniform`            | U(-1/sqrt(fan_in), 1/sqrt(fan_in))             | `nn.Linear`'s
/// default (weight and bias) |
///
/// `init_weights(policy, w, scheme, key)` fills W; for He schemes `gain` defaults to sqrt(2)
/// (ReLU), otherwise 1. Element (r, c) draws from `philox_engine(seed, stream, r * cols + c)`, so a
/// matrix gets the same values under every policy (uniform schemes bit for bit everywhere; normal
/// ones bit for bit across host policies) and regardless of the thread count. Give every layer its
/// own `stream`. `init_bias(policy, b, fan_in, scheme, key)` fills a bias vector (`fan_in_uniform`,
/// or zeros with `bias_init::zeros`).
///
/// Any policy; O(fan_in fan_out). cuda calls are asynchronous. Errors: `invalid_argument` for an
/// empty matrix, or a gain that is not finite and > 0.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/nn/detail/common.hpp>

#include <cmath>
#include <cstdint>
#include <string>

namespace cellkit::nn {

/// Weight initialisation schemes (see the file comment).
enum class weight_init { glorot_uniform, glorot_normal, he_uniform, he_normal, fan_in_uniform };

/// Bias initialisation: zeros, or U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as `nn.Linear`.
enum class bias_init { zeros, fan_in_uniform };

/// Seed and stream of an initialisation.
struct init_key {
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
};

/// Options of `init_weights`.
struct init_params {
  weight_init scheme = weight_init::glorot_uniform;
  init_key key{};
  /// Scale factor; 0 means the default (sqrt(2) for He schemes, 1 otherwise).
  double gain = 0.0;
};

namespace detail {

template <class T, class Space>
struct init_fn {
  matrix_view<T, Space> w;
  init_key key;
  bool normal_draws;
  T scale;  // bound a of U(-a, a), or standard deviation
  CELLKIT_HD void operator()(index_t r, index_t c) const {
    philox_engine eng(
        key.seed, key.stream,
        static_cast<std::uint64_t>(r) * static_cast<std::uint64_t>(w.cols()) + static_cast<std::uint64_t>(c));
    w(r, c) = normal_draws ? scale * normal<T>(eng) : uniform(eng, -scale, scale);
  }
};

template <class T, class Space>
struct fill_fn {
  vector_view<T, Space> v;
  T value;
  CELLKIT_HD void operator()(index_t i) const { v[i] = value; }
};

}  // namespace detail

/// Fills W (fan_in x fan_out) by `params.scheme`. See the file comment.
template <class Policy, class T, class Space>
void init_weights(const Policy& policy, matrix_view<T, Space> w, const init_params& params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "init_weights";
  CELLKIT_EXPECTS(w.rows() > 0 && w.cols() > 0, fn, "W",
                  "must not be empty, got " + std::to_string(w.rows()) + " x " + std::to_string(w.cols()));
  CELLKIT_EXPECTS(std::isfinite(params.gain) && params.gain >= 0.0, fn, "gain",
                  "must be finite and >= 0 (0 = default), got " + std::to_string(params.gain));
  const double fan_in = static_cast<double>(w.rows());
  const double fan_out = static_cast<double>(w.cols());
  const bool he = params.scheme == weight_init::he_uniform || params.scheme == weight_init::he_normal;
  const double gain = params.gain > 0.0 ? params.gain : (he ? std::sqrt(2.0) : 1.0);
  double scale = 0.0;
  bool normal_draws = false;
  switch (params.scheme) {
    case weight_init::glorot_uniform:
      scale = gain * std::sqrt(6.0 / (fan_in + fan_out));
      break;
    case weight_init::glorot_normal:
      scale = gain * std::sqrt(2.0 / (fan_in + fan_out));
      normal_draws = true;
      break;
    case weight_init::he_uniform:
      scale = gain * std::sqrt(3.0 / fan_in);
      break;
    case weight_init::he_normal:
      scale = gain / std::sqrt(fan_in);
      normal_draws = true;
      break;
    case weight_init::fan_in_uniform:
      scale = 1.0 / std::sqrt(fan_in);
      break;
  }
  detail::for_each_element(policy, w.rows(), w.cols(),
                           detail::init_fn<T, Space>{w, params.key, normal_draws, static_cast<T>(scale)});
}

/// Fills a bias b of a layer with `fan_in` inputs: zeros, or U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
template <class Policy, class T, class Space>
void init_bias(const Policy& policy, vector_view<T, Space> b, index_t fan_in, bias_init scheme = bias_init::zeros,
               init_key key = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  if (scheme == bias_init::zeros) {
    for_each_index(policy, b.size(), detail::fill_fn<T, Space>{b, T(0)});
    return;
  }
  CELLKIT_EXPECTS(fan_in > 0, "init_bias", "fan_in", "must be > 0, got " + std::to_string(fan_in));
  matrix_view<T, Space> as_row(b.data(), 1, b.size());
  detail::for_each_element(
      policy, 1, b.size(),
      detail::init_fn<T, Space>{as_row, key, false, static_cast<T>(1.0 / std::sqrt(static_cast<double>(fan_in)))});
}

}  // namespace cellkit::nn
