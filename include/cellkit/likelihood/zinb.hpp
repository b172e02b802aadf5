#pragma once
/// @file
/// Zero-inflated negative binomial (ZINB) log-likelihood with analytic gradients, the dropout
/// parameter given as a probability (DCA, scDeepCluster, scTAG, scGPCL) or as logits (scvi-tools):
/// element functors and array functions over dense or CSR counts (namespace `cellkit::likelihood`).
/// The NB part, the array conventions (outputs, options, checks, determinism) and the numerics of
/// the NB terms are documented in nb.hpp; derivations and measurements in docs/likelihood.md.
///
/// ## Formula
///
///     x = 0:  log ZINB = log(pi + (1 - pi) NB(0 | mu, theta))
///     x > 0:  log ZINB = log(1 - pi) + log NB(x | mu, theta)
///
/// With logits l (pi = sigmoid(l)) this is scvi-tools' form: x = 0: softplus(log NB(0) - l) -
/// softplus(-l), x > 0: -softplus(l) + log NB(x); the same numbers, computed as below.
///
/// ## Numerics
///
/// With N = NB(0), e = N - 1 (expm1 of log NB(0) when N > 1/2, exp(...) - 1 otherwise) and
/// Z = pi + (1 - pi) N:
///
/// - x = 0: log1p((1 - pi) e) when that is >= log(1/2) (full relative accuracy for values near 0,
///   e.g. mu -> 0), else log(Z) (Z a sum of non-negative terms), else, when Z < 1e-290 (float:
///   1e-30), log_sum_exp(log pi, log(1 - pi) + log NB(0)): no log(0) while the value is finite
///   (e.g. pi = 0 with NB(0) = e^-1000 gives -1000).
/// - pi and 1 - pi from logits come from e^-|l| (sigmoid without cancellation or overflow).
/// - Gradients at x = 0: with w = (1 - pi) N / Z (the posterior probability of an NB zero),
///   d/dmu = w dlogNB(0)/dmu, d/dtheta = w dlogNB(0)/dtheta, d/dpi = (1 - N)/Z,
///   d/dlogit = (1 - N) pi (1 - pi)/Z. At x > 0: NB's gradients, d/dpi = -1/(1 - pi), d/dlogit = -pi.
///
/// Edge cases (log ZINB; d/dmu, d/dtheta, d/dpi), exact limits:
///
/// | case                | log ZINB                        | gradients                                   |
/// |---------------------|---------------------------------|---------------------------------------------|
/// | pi = 0              | log NB                          | NB's; d/dpi(x=0) = 1/NB(0) - 1 (+inf if that overflows),
/// d/dpi(x>0) = -1 | | pi = 1, x = 0       | 0                               | d/dmu = d/dtheta = 0, d/dpi = 1 - NB(0)
/// | | pi = 1, x > 0       | -inf                            | NB's for mu and theta, d/dpi = -inf          | | logit =
/// -inf        | as pi = 0                       | d/dlogit = 0                                 | | logit = +inf | as
/// pi = 1                       | d/dlogit = 0 (x = 0), -1 (x > 0)             | | mu = 0, x = 0       | 0 | d/dmu =
/// -(1 - pi), d/dtheta = 0, d/dpi = 0   | | mu = 0, x > 0       | -inf                            | d/dmu = +inf
/// (NB's), d/dpi as above          | | invalid (pi outside [0, 1] or NaN, logit NaN, NB's invalid cases) | NaN | NaN |
///
/// ## Element functors
///
/// `zinb_log_prob_fn<T>`, `zinb_log_prob_grad_fn<T>` (pi a probability) and
/// `zinb_logits_log_prob_fn<T>`, `zinb_logits_log_prob_grad_fn<T>` (pi a logit), called as
/// `(x, mu, theta, pi)` or `(x, mu, nb_theta<T>, pi)`; the grad functors return
/// `zinb_value_grad<T>` {log_prob, d_mu, d_theta, d_pi}. Cost: NB's plus, at x = 0, one exp/expm1
/// pair and one log (branch-free, detail/fast_math.hpp; the x = 0 kernel has no branches, so the
/// array sweep vectorises it) and two divisions; logits add one exp and one division; at x > 0 one
/// log and one division (logits: one softplus, one sigmoid).
///
/// ## Array functions
///
///     T zinb_nll(policy, counts, mu, theta, pi, outputs = {}, options = {});
///     void zinb_log_prob(policy, counts, mu, theta, pi, log_prob, options = {});
///
/// As nb_nll (nb.hpp), plus `pi`: cells x genes `matrix_view<T>` of probabilities or logits
/// (`options.pi`), the `d_pi` output, and `options.ridge_lambda`: DCA's ridge penalty
/// lambda * pi^2 added to each included element's loss (pi the probability in both
/// parametrisations; its gradient is included in d_pi). Returns
/// sum_ij mask_ij * (-log ZINB(x_ij | s_i mu_ij, theta_ij, pi_ij) + lambda pi_ij^2), or the mean.
///
/// ## Example (scDeepCluster's loss: mean over elements, mean = size_factor * decoder output)
///
/// ```cpp
/// namespace lk = cellkit::likelihood;
/// float loss = lk::zinb_nll(cellkit::openmp{}, counts_csr, decoder_mean, theta_per_gene, pi,
///                           {.d_mu = d_mean, .d_theta = d_theta, .d_pi = d_pi},
///                           {.reduce = lk::reduction::mean, .size_factors = size_factors});
/// ```

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/likelihood/detail/common.hpp>
#include <cellkit/likelihood/detail/nb_kernels.hpp>
#include <cellkit/likelihood/detail/sweep.hpp>
#include <cellkit/likelihood/nb.hpp>

#include <cstdint>
#include <type_traits>

namespace cellkit::likelihood {

namespace detail {
template <class T, bool Logits, bool Grad>
struct zinb_fn_base {
  static_assert(is_real_v<T>, "cellkit::likelihood: T must be float or double");
  CELLKIT_HD static zinb_value_grad<T> eval(T x, T mu, T theta, T pi, bool want_theta) noexcept {
    return zinb_element<T, Grad, Logits>(x, mu, x == T(0) ? nb_theta<T>::make_light(theta) : nb_theta<T>::make(theta),
                                         pi, want_theta);
  }
};
}  // namespace detail

/// log ZINB(x | mu, theta, pi), pi a probability in [0, 1]. NaN for invalid arguments.
template <class T>
struct zinb_log_prob_fn {
  CELLKIT_HD T operator()(T x, T mu, T theta, T pi) const noexcept {
    return detail::zinb_fn_base<T, false, false>::eval(x, mu, theta, pi, false).log_prob;
  }
  CELLKIT_HD T operator()(T x, T mu, const nb_theta<T>& theta, T pi) const noexcept {
    return detail::zinb_element<T, false, false>(x, mu, theta, pi, false).log_prob;
  }
};

/// log ZINB and its gradients with respect to mu, theta and pi (a probability).
/// `theta_gradient = false` skips d/dtheta (returned as 0).
template <class T>
struct zinb_log_prob_grad_fn {
  bool theta_gradient = true;
  CELLKIT_HD zinb_value_grad<T> operator()(T x, T mu, T theta, T pi) const noexcept {
    return detail::zinb_fn_base<T, false, true>::eval(x, mu, theta, pi, theta_gradient);
  }
  CELLKIT_HD zinb_value_grad<T> operator()(T x, T mu, const nb_theta<T>& theta, T pi) const noexcept {
    return detail::zinb_element<T, true, false>(x, mu, theta, pi, theta_gradient);
  }
};

/// log ZINB(x | mu, theta, sigmoid(logit)). NaN for invalid arguments (a NaN logit among them).
template <class T>
struct zinb_logits_log_prob_fn {
  CELLKIT_HD T operator()(T x, T mu, T theta, T logit) const noexcept {
    return detail::zinb_fn_base<T, true, false>::eval(x, mu, theta, logit, false).log_prob;
  }
  CELLKIT_HD T operator()(T x, T mu, const nb_theta<T>& theta, T logit) const noexcept {
    return detail::zinb_element<T, false, true>(x, mu, theta, logit, false).log_prob;
  }
};

/// log ZINB with pi as a logit, and its gradients with respect to mu, theta and the logit.
template <class T>
struct zinb_logits_log_prob_grad_fn {
  bool theta_gradient = true;
  CELLKIT_HD zinb_value_grad<T> operator()(T x, T mu, T theta, T logit) const noexcept {
    return detail::zinb_fn_base<T, true, true>::eval(x, mu, theta, logit, theta_gradient);
  }
  CELLKIT_HD zinb_value_grad<T> operator()(T x, T mu, const nb_theta<T>& theta, T logit) const noexcept {
    return detail::zinb_element<T, true, true>(x, mu, theta, logit, theta_gradient);
  }
};

/// Negative log-likelihood of a ZINB model over a count matrix (see the file comment and nb.hpp).
template <class Policy, class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires is_execution_policy_v<Policy> std::remove_const_t<MuT> zinb_nll(
    const Policy& policy, const Counts& counts, matrix_view<MuT, Space> mu,
    std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
    std::type_identity_t<matrix_view<const std::remove_const_t<MuT>, Space>> pi,
    const nll_outputs<std::remove_const_t<MuT>, Space>& outputs = {},
    const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  using T = std::remove_const_t<MuT>;
  static_assert(detail::is_real_v<T>, "cellkit::likelihood::zinb_nll: mu must hold float or double");
  cellkit::detail::check_policy_and_spaces<Policy, Space, typename detail::counts_traits<Counts>::space>();
  const auto rq = detail::make_request<T, Space, Mask>(counts, mu, theta, pi);
  if (options.pi == pi_parameter::logits) {
    return detail::run_nll<detail::model_kind::zinb_logits>(policy, "zinb_nll", rq, outputs, options);
  }
  return detail::run_nll<detail::model_kind::zinb>(policy, "zinb_nll", rq, outputs, options);
}

/// `zinb_nll` with `default_host_policy()`.
template <class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires(!is_execution_policy_v<Counts>) std::remove_const_t<MuT> zinb_nll(
    const Counts& counts, matrix_view<MuT, Space> mu,
    std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
    std::type_identity_t<matrix_view<const std::remove_const_t<MuT>, Space>> pi,
    const nll_outputs<std::remove_const_t<MuT>, Space>& outputs = {},
    const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  return zinb_nll(default_host_policy(), counts, mu, theta, pi, outputs, options);
}

/// log ZINB(x_ij | s_i mu_ij, theta_ij, pi_ij) of every element into `log_prob`. Options:
/// size_factors, pi and check_inputs apply (reduce, mask and ridge_lambda do not).
template <class Policy, class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires is_execution_policy_v<Policy>
void zinb_log_prob(const Policy& policy, const Counts& counts, matrix_view<MuT, Space> mu,
                   std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
                   std::type_identity_t<matrix_view<const std::remove_const_t<MuT>, Space>> pi,
                   matrix_view<std::remove_const_t<MuT>, Space> log_prob,
                   const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  using T = std::remove_const_t<MuT>;
  nll_options<T, Space, Mask> o = options;
  o.mask.reset();
  o.reduce = reduction::sum;
  o.ridge_lambda = T(0);
  zinb_nll(policy, counts, mu, theta, pi, nll_outputs<T, Space>{.log_prob = log_prob}, o);
}

/// `zinb_log_prob` with `default_host_policy()`.
template <class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires(!is_execution_policy_v<Counts>) void zinb_log_prob(
    const Counts& counts, matrix_view<MuT, Space> mu,
    std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
    std::type_identity_t<matrix_view<const std::remove_const_t<MuT>, Space>> pi,
    matrix_view<std::remove_const_t<MuT>, Space> log_prob,
    const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  zinb_log_prob(default_host_policy(), counts, mu, theta, pi, log_prob, options);
}

}  // namespace cellkit::likelihood
