#pragma once
/// @file
/// Poisson log-likelihood with its gradient: element functors and array functions over dense or CSR
/// counts (namespace `cellkit::likelihood`). Array conventions (outputs, options, checks,
/// determinism, cost) as in nb.hpp; the Poisson model has no theta and no pi.
///
/// ## Formula and numerics
///
///     log Poisson(x | mu) = x log mu - mu - lgamma(x + 1)
///
/// x = 0: -mu. x > 0: Loader's form -log(2 pi x)/2 - stirlerr(x) + x log1pmx((mu - x)/x), whose
/// terms do not cancel (the plain formula loses ~6 digits at x = mu = 1e7).
/// d/dmu = x/mu - 1 = (x - mu)/mu.
///
/// | case          | log Poisson | d/dmu |
/// |---------------|-------------|-------|
/// | mu = 0, x = 0 | 0           | -1    |
/// | mu = 0, x > 0 | -inf        | +inf  |
/// | invalid (x < 0, x or mu not finite, mu < 0) | NaN | NaN |
///
/// `poisson_log_prob_fn<T>{}(x, mu)`, `poisson_log_prob_grad_fn<T>{}(x, mu)` (-> `poisson_value_grad<T>`);
/// `poisson_nll(policy, counts, mu, outputs = {}, options = {})` (outputs: d_mu, per_cell, per_gene,
/// log_prob) and `poisson_log_prob(policy, counts, mu, log_prob, options = {})`.

#include <cellkit/core/config.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/likelihood/detail/common.hpp>
#include <cellkit/likelihood/detail/nb_kernels.hpp>
#include <cellkit/likelihood/detail/sweep.hpp>

#include <cstdint>
#include <type_traits>

namespace cellkit::likelihood {

/// log Poisson(x | mu). NaN for invalid arguments.
template <class T>
struct poisson_log_prob_fn {
  static_assert(detail::is_real_v<T>, "cellkit::likelihood: T must be float or double");
  CELLKIT_HD T operator()(T x, T mu) const noexcept { return detail::poisson_element<T, false>(x, mu).log_prob; }
};

/// log Poisson(x | mu) and d/dmu.
template <class T>
struct poisson_log_prob_grad_fn {
  static_assert(detail::is_real_v<T>, "cellkit::likelihood: T must be float or double");
  CELLKIT_HD poisson_value_grad<T> operator()(T x, T mu) const noexcept {
    return detail::poisson_element<T, true>(x, mu);
  }
};

/// Negative log-likelihood of a Poisson model over a count matrix.
template <class Policy, class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires is_execution_policy_v<Policy> std::remove_const_t<MuT> poisson_nll(
    const Policy& policy, const Counts& counts, matrix_view<MuT, Space> mu,
    const nll_outputs<std::remove_const_t<MuT>, Space>& outputs = {},
    const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  using T = std::remove_const_t<MuT>;
  static_assert(detail::is_real_v<T>, "cellkit::likelihood::poisson_nll: mu must hold float or double");
  cellkit::detail::check_policy_and_spaces<Policy, Space, typename detail::counts_traits<Counts>::space>();
  const auto rq = detail::make_request<T, Space, Mask>(counts, mu, gene_param_view<const T, Space>{},
                                                       matrix_view<const T, Space>{});
  return detail::run_nll<detail::model_kind::poisson>(policy, "poisson_nll", rq, outputs, options);
}

/// `poisson_nll` with `default_host_policy()`.
template <class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires(!is_execution_policy_v<Counts>) std::remove_const_t<MuT> poisson_nll(
    const Counts& counts, matrix_view<MuT, Space> mu, const nll_outputs<std::remove_const_t<MuT>, Space>& outputs = {},
    const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  return poisson_nll(default_host_policy(), counts, mu, outputs, options);
}

/// log Poisson(x_ij | s_i mu_ij) of every element into `log_prob` (size_factors and check_inputs apply).
template <class Policy, class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires is_execution_policy_v<Policy>
void poisson_log_prob(const Policy& policy, const Counts& counts, matrix_view<MuT, Space> mu,
                      matrix_view<std::remove_const_t<MuT>, Space> log_prob,
                      const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  using T = std::remove_const_t<MuT>;
  nll_options<T, Space, Mask> o = options;
  o.mask.reset();
  o.reduce = reduction::sum;
  poisson_nll(policy, counts, mu, nll_outputs<T, Space>{.log_prob = log_prob}, o);
}

/// `poisson_log_prob` with `default_host_policy()`.
template <class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires(!is_execution_policy_v<Counts>) void poisson_log_prob(
    const Counts& counts, matrix_view<MuT, Space> mu, matrix_view<std::remove_const_t<MuT>, Space> log_prob,
    const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  poisson_log_prob(default_host_policy(), counts, mu, log_prob, options);
}

}  // namespace cellkit::likelihood
