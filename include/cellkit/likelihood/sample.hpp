#pragma once
/// @file
/// Random count matrices from the likelihood models (namespace `cellkit::likelihood`): Poisson,
/// Gamma, NB (Gamma-Poisson mixture) and ZINB draws into cells x genes matrices, with cellkit's
/// counter-based generator (core/random.hpp).
///
/// ## Determinism
///
/// Element (i, j) draws only from `philox_engine(seed, stream, i * cols + j)`, so a matrix is a pure
/// function of (seed, stream, parameters): bit-identical for serial and any openmp{n}, and (up to
/// the rare rejection-branch differences documented in docs/random.md) on CUDA. Every draw is made
/// in double whatever the input and output types, so float and double inputs holding the same values
/// give the same counts.
///
/// ## Draws per element (in this order)
///
/// - Poisson(mu): `poisson(eng, mu)`.
/// - Gamma(shape, scale): `gamma(eng, shape, scale)` (mean shape * scale).
/// - NB(mu, theta): lambda = gamma(eng, theta, mu / theta), then `poisson(eng, lambda)`: mean mu,
///   variance mu + mu^2 / theta. theta = +inf draws Poisson(mu) directly; mu = 0 gives 0 without
///   drawing.
/// - ZINB(mu, theta, pi): `bernoulli(eng, pi)` first (pi as a probability, or sigmoid of the logit);
///   true gives 0, false an NB draw from the same engine.
///
/// ## Arguments
///
/// `mu`: cells x genes `matrix_view` (float or double); `theta`/`shape`: per gene (vector) or per
/// element (`gene_param_view`); `scale`, `pi`: cells x genes; `out`: cells x genes `matrix_view` of
/// any arithmetic type (counts are converted; an integer type too narrow for a draw is the
/// caller's concern). `sample_params{.seed, .stream, .pi, .check_inputs}`.
///
/// Errors: `dimension_mismatch` for shapes; with `CELLKIT_DEBUG_CHECKS` or `check_inputs`,
/// `invalid_argument` naming the first invalid element (mu or scale negative or not finite, theta or
/// shape <= 0 or NaN (theta = +inf is allowed), pi outside [0, 1] / a NaN logit). Without the checks
/// an invalid element is written as NaN (floating `out`) or -1 (integer `out`).
///
/// Cost: one philox block per 4 words; Poisson: see docs/random.md (X + 1 uniforms for mean < 10,
/// ~1.2 PTRS iterations above); Gamma ~3 uniforms. Host: returns when done; cuda: asynchronous.
///
/// ## Example
///
/// ```cpp
/// cellkit::host_buffer<float> counts(cells * genes);
/// cellkit::likelihood::sample_zinb(cellkit::openmp{}, mu, theta_per_gene, pi, counts.as_matrix(cells, genes),
///                                  {.seed = 42});
/// ```

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/likelihood/detail/common.hpp>
#include <cellkit/likelihood/detail/sweep.hpp>

#include <cstdint>
#include <type_traits>

namespace cellkit::likelihood {

/// Seed, stream and options of the samplers.
struct sample_params {
  std::uint64_t seed = 0;                       ///< Philox key
  std::uint32_t stream = 0;                     ///< Philox stream id (independent uses of one seed)
  pi_parameter pi = pi_parameter::probability;  ///< ZINB: pi as a probability or a logit
  bool check_inputs = false;                    ///< per-element checks also without CELLKIT_DEBUG_CHECKS
};

/// One NB draw (double): Gamma-Poisson; theta = +inf is Poisson; -1 for invalid parameters.
CELLKIT_HD inline double draw_nb(philox_engine& eng, double mu, double theta) {
  if (!(mu >= 0.0) || !(theta > 0.0) || mu == detail::inf_v<double>()) return -1.0;
  if (mu == 0.0) return 0.0;
  if (theta == detail::inf_v<double>()) return static_cast<double>(poisson(eng, mu));
  const double lambda = gamma(eng, theta, mu / theta);
  return static_cast<double>(poisson(eng, lambda));
}

/// One ZINB draw (double); pi a probability. -1 for invalid parameters.
CELLKIT_HD inline double draw_zinb(philox_engine& eng, double mu, double theta, double pi) {
  if (!(pi >= 0.0 && pi <= 1.0)) return -1.0;
  if (bernoulli(eng, pi)) return 0.0;
  return draw_nb(eng, mu, theta);
}

namespace detail {

template <class Out>
CELLKIT_HD inline Out invalid_draw() {
  if constexpr (std::is_floating_point_v<Out>) {
    return static_cast<Out>(nan_v<double>());
  } else {
    return static_cast<Out>(-1);
  }
}

enum class sampler { poisson, gamma, nb, zinb, zinb_logits };

template <sampler S, class T, class Out>
struct sample_fn {
  index_t cols = 0;
  const T* a = nullptr;  // mu (poisson, nb, zinb) or scale (gamma)
  index_t a_stride = 0;
  const T* b = nullptr;  // theta (nb, zinb) or shape (gamma); row stride 0 when per gene
  index_t b_stride = 0;
  const T* c = nullptr;  // pi
  index_t c_stride = 0;
  Out* out = nullptr;
  index_t out_stride = 0;
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;

  CELLKIT_HD void operator()(index_t k) const {
    const index_t i = k / cols;
    const index_t j = k - i * cols;
    philox_engine eng(seed, stream, static_cast<std::uint64_t>(k));
    const auto av = static_cast<double>(a[i * a_stride + j]);
    double v;
    if constexpr (S == sampler::poisson) {
      v = static_cast<double>(poisson(eng, av));
    } else if constexpr (S == sampler::gamma) {
      v = gamma(eng, static_cast<double>(b[i * b_stride + j]), av);
      if (v != v) v = -1.0;
    } else if constexpr (S == sampler::nb) {
      v = draw_nb(eng, av, static_cast<double>(b[i * b_stride + j]));
    } else {
      double pi = static_cast<double>(c[i * c_stride + j]);
      if constexpr (S == sampler::zinb_logits) pi = pi == pi ? math::sigmoid(pi) : -1.0;
      v = draw_zinb(eng, av, static_cast<double>(b[i * b_stride + j]), pi);
    }
    out[i * out_stride + j] = v < 0.0 ? invalid_draw<Out>() : static_cast<Out>(v);
  }
};

template <sampler S, class Policy, class T, class Space, class Out>
void run_sampler(const Policy& policy, const char* fn, matrix_view<const T, Space> a, gene_param_view<const T, Space> b,
                 matrix_view<const T, Space> c, matrix_view<Out, Space> out, const sample_params& params) {
  static_assert(is_real_v<T>, "cellkit::likelihood samplers: parameters must be float or double");
  static_assert(std::is_arithmetic_v<Out> && !std::is_same_v<Out, bool>,
                "cellkit::likelihood samplers: out must hold numbers");
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  const index_t rows = out.rows();
  const index_t cols = out.cols();
  const char* a_name = S == sampler::gamma ? "scale" : "mu";
  const char* b_name = S == sampler::gamma ? "shape" : "theta";
  expect_shapes(a.rows() == rows && a.cols() == cols, fn, a_name, a.shape(), "out", out.shape(),
                "parameters and output have the same cells x genes shape");
  if constexpr (S != sampler::poisson) {
    expect_shapes(b.cols() == cols && (b.rows() == 1 || b.rows() == rows), fn, b_name, b.shape(), "out", out.shape(),
                  "a vector of genes entries (per gene) or the shape of out (per element)");
  }
  if constexpr (S == sampler::zinb || S == sampler::zinb_logits) {
    expect_shapes(c.rows() == rows && c.cols() == cols, fn, "pi", c.shape(), "out", out.shape(),
                  "pi has the shape of out");
  }
  if (rows == 0 || cols == 0) return;
  if (CELLKIT_DEBUG_CHECKS || params.check_inputs) {
    check_elements<Policy, T, Space>(policy, fn, a_name, a.data(), rows, cols, a.stride(), check_rule::mean);
    if constexpr (S != sampler::poisson) {
      check_elements<Policy, T, Space>(policy, fn, b_name, b.data(), b.rows(), cols, b.stride(), check_rule::theta,
                                       b.per_gene());
    }
    if constexpr (S == sampler::zinb || S == sampler::zinb_logits) {
      check_elements<Policy, T, Space>(policy, fn, "pi", c.data(), rows, cols, c.stride(),
                                       S == sampler::zinb_logits ? check_rule::logit : check_rule::probability);
    }
  }
  sample_fn<S, T, Out> f;
  f.cols = cols;
  f.a = a.data();
  f.a_stride = a.stride();
  if constexpr (S != sampler::poisson) {
    f.b = b.data();
    f.b_stride = b.row_stride();
  }
  if constexpr (S == sampler::zinb || S == sampler::zinb_logits) {
    f.c = c.data();
    f.c_stride = c.stride();
  }
  f.out = out.data();
  f.out_stride = out.stride();
  f.seed = params.seed;
  f.stream = params.stream;
  for_each_index(policy, rows * cols, f);
}

}  // namespace detail

/// out(i, j) ~ Poisson(mu(i, j)).
template <class Policy, class MuT, class Space, class Out>
requires is_execution_policy_v<Policy>
void sample_poisson(const Policy& policy, matrix_view<MuT, Space> mu, matrix_view<Out, Space> out,
                    const sample_params& params) {
  using T = std::remove_const_t<MuT>;
  detail::run_sampler<detail::sampler::poisson>(policy, "sample_poisson", matrix_view<const T, Space>(mu),
                                                gene_param_view<const T, Space>{}, matrix_view<const T, Space>{}, out,
                                                params);
}

/// out(i, j) ~ Gamma(shape(i, j), scale(i, j)) (mean shape * scale); shape per gene or per element.
template <class Policy, class ScaleT, class Space, class Out>
requires is_execution_policy_v<Policy>
void sample_gamma(const Policy& policy,
                  std::type_identity_t<gene_param_view<const std::remove_const_t<ScaleT>, Space>> shape,
                  matrix_view<ScaleT, Space> scale, matrix_view<Out, Space> out, const sample_params& params) {
  using T = std::remove_const_t<ScaleT>;
  detail::run_sampler<detail::sampler::gamma>(policy, "sample_gamma", matrix_view<const T, Space>(scale), shape,
                                              matrix_view<const T, Space>{}, out, params);
}

/// out(i, j) ~ NB(mu(i, j), theta) (Gamma-Poisson); theta per gene or per element.
template <class Policy, class MuT, class Space, class Out>
requires is_execution_policy_v<Policy>
void sample_nb(const Policy& policy, matrix_view<MuT, Space> mu,
               std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
               matrix_view<Out, Space> out, const sample_params& params) {
  using T = std::remove_const_t<MuT>;
  detail::run_sampler<detail::sampler::nb>(policy, "sample_nb", matrix_view<const T, Space>(mu), theta,
                                           matrix_view<const T, Space>{}, out, params);
}

/// out(i, j) ~ ZINB(mu(i, j), theta, pi(i, j)) (pi a probability or a logit: params.pi).
template <class Policy, class MuT, class Space, class Out>
requires is_execution_policy_v<Policy>
void sample_zinb(const Policy& policy, matrix_view<MuT, Space> mu,
                 std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
                 std::type_identity_t<matrix_view<const std::remove_const_t<MuT>, Space>> pi,
                 matrix_view<Out, Space> out, const sample_params& params) {
  using T = std::remove_const_t<MuT>;
  if (params.pi == pi_parameter::logits) {
    detail::run_sampler<detail::sampler::zinb_logits>(policy, "sample_zinb", matrix_view<const T, Space>(mu), theta, pi,
                                                      out, params);
  } else {
    detail::run_sampler<detail::sampler::zinb>(policy, "sample_zinb", matrix_view<const T, Space>(mu), theta, pi, out,
                                               params);
  }
}

/// The samplers with `default_host_policy()`.
template <class MuT, class Space, class Out>
void sample_poisson(matrix_view<MuT, Space> mu, matrix_view<Out, Space> out, const sample_params& params) {
  sample_poisson(default_host_policy(), mu, out, params);
}
template <class ScaleT, class Space, class Out>
void sample_gamma(std::type_identity_t<gene_param_view<const std::remove_const_t<ScaleT>, Space>> shape,
                  matrix_view<ScaleT, Space> scale, matrix_view<Out, Space> out, const sample_params& params) {
  sample_gamma(default_host_policy(), shape, scale, out, params);
}
template <class MuT, class Space, class Out>
void sample_nb(matrix_view<MuT, Space> mu,
               std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
               matrix_view<Out, Space> out, const sample_params& params) {
  sample_nb(default_host_policy(), mu, theta, out, params);
}
template <class MuT, class Space, class Out>
void sample_zinb(matrix_view<MuT, Space> mu,
                 std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
                 std::type_identity_t<matrix_view<const std::remove_const_t<MuT>, Space>> pi,
                 matrix_view<Out, Space> out, const sample_params& params) {
  sample_zinb(default_host_policy(), mu, theta, pi, out, params);
}

}  // namespace cellkit::likelihood
