#pragma once
/// @file
/// Negative binomial (NB) log-likelihood in the (mean, inverse dispersion) parametrisation, with
/// analytic gradients: element functors for host and device code, and array functions over dense or
/// CSR count matrices (namespace `cellkit::likelihood`). ZINB is in zinb.hpp, Poisson in
/// poisson.hpp, sampling in sample.hpp; docs/likelihood.md has the derivations and measurements.
///
/// ## Formula
///
///     log NB(x | mu, theta) = lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)
///                             + theta log(theta / (theta + mu)) + x log(mu / (theta + mu))
///
/// mean mu, variance mu + mu^2 / theta; theta -> inf is Poisson(mu). Counts x >= 0 may be
/// non-integer (the formula is then the usual continuous extension).
///
/// ## Numerics
///
/// x = 0: log NB(0) = -theta log1p(mu / theta) (-> -mu as theta -> inf).
/// x > 0: Loader's saddle-point form (as R's dbinom/dnbinom), with n = theta + x and
/// delta = theta (x - mu) / (theta + mu):
///
///     log NB = log(theta / (2 pi x n)) / 2 + stirlerr(n) - stirlerr(theta) - stirlerr(x)
///              + theta log1pmx(delta / theta) + x log1pmx(-delta / x)
///
/// with stirlerr(z) = lgamma(z + 1) - (z + 1/2) log z + z - log(2 pi)/2 and log1pmx(t) = log1p(t) - t
/// (series for |t| < 1/4). No two large terms cancel, so the relative error stays at a few ulp for
/// theta in [1e-8, 1e10], mu in [0, 1e8], x in [0, 1e7] (the plain formula loses ~7 digits at
/// theta = 1e10 and ~6 at x = 1e7: its terms reach 1e11 for results of order 10).
///
/// Gradients: d/dmu = delta / mu = x / mu - (x + theta) / (theta + mu);
/// d/dtheta = digamma(x + theta) - digamma(theta) + log(theta / (theta + mu)) + (mu - x)/(theta + mu),
/// evaluated as [phi(n) - phi(theta)] + log1pmx(delta / theta) with phi(z) = digamma(z) - log z (a
/// divided-difference asymptotic series for theta >= 10, digamma for theta < 10; for x = 1,
/// mu / (theta (theta + mu)) - [log1p(mu/theta) - mu/(theta + mu)]), x = 0:
/// -[log1p(s) - s/(1 + s)], s = mu / theta. These keep relative accuracy as theta -> inf, where the
/// textbook form cancels completely (its terms are O(1/theta), the result O(1/theta^2)).
///
/// Edge cases (value; d/dmu; d/dtheta), all exact limits:
///
/// | case                  | log NB               | d/dmu              | d/dtheta                              |
/// |-----------------------|----------------------|--------------------|---------------------------------------|
/// | mu = 0, x = 0         | 0                    | -1                 | 0                                     |
/// | mu = 0, x > 0         | -inf                 | +inf               | digamma(x+theta) - digamma(theta) - x/theta |
/// | theta = +inf          | log Poisson(x | mu)  | x/mu - 1           | 0                                     |
/// | x = 0, theta -> 0     | -theta log1p(mu/theta) -> 0 | -1/(1 + mu/theta) | finite                          |
/// | invalid (x < 0, x or mu not finite, mu < 0, theta <= 0 or NaN) | NaN | NaN | NaN                         |
///
/// Accuracy (measured against mpmath at 50 digits on tests/reference/data/likelihood_nb.txt, 4890
/// points over theta in [1e-8, 1e10], mu in [0, 1e8], x in [0, 1e7]; see docs/likelihood.md): double:
/// value 2.5e-15 relative, d/dmu 3.8e-16, d/dtheta 5.5e-13 (relative to |d/dtheta| + eps times its
/// sensitivity to mu and theta: it matters only near roots of d/dtheta and for theta ~ 1e-8);
/// float: value 2.5e-6, d/dmu 1.9e-7, d/dtheta 3.1e-5.
///
/// ## Element functors
///
/// `nb_log_prob_fn<T>{}(x, mu, theta)` and `nb_log_prob_grad_fn<T>{}(x, mu, theta)` (-> `nb_value_grad<T>`
/// {log_prob, d_mu, d_theta}), `CELLKIT_HD`, for T = float or double; each also takes a prepared
/// `nb_theta<T>` instead of theta (`nb_theta<T>::make(theta)`, once per gene) to skip the per-theta
/// work. Cost: x = 0: one log (branch-free, detail/fast_math.hpp; + two divisions and a short
/// polynomial for the gradients); x > 0: 3-4 divisions, one log, two log1pmx (series or one log
/// each), two or three stirlerr (a series from 10; below, a recurrence of at most 10 positive terms
/// and one log), and for d/dtheta a sum of x - 1 fractions (integer x <= 16), a divided-difference
/// series (theta >= 10) or one digamma (theta < 10). No lgamma. The host array functions gather the
/// x > 0 elements and run this kernel vectorised (detail/nb_kernels.hpp, positive_kernel), with
/// the same formulas.
///
/// ## Array functions
///
///     T nb_nll(policy, counts, mu, theta, outputs = {}, options = {});
///     void nb_log_prob(policy, counts, mu, theta, log_prob, options = {});
///
/// - `counts`: cells x genes, `matrix_view` (dense) or `csr_view` (CSR; most entries zero) of any
///   arithmetic type (converted to T). Each row is processed once: the branch-free x = 0 kernel (one
///   log, no lgamma) for every column in a vectorised loop, then the x > 0 kernel at the nonzero
///   counts (the CSR entries, or a scan of the dense row). With 90% zeros the CSR path is faster than
///   the dense one (it never reads the zeros; bench/likelihood/bench_zinb.cpp). Both give
///   bit-identical results.
/// - `mu`: cells x genes `matrix_view<T>`, the NB means (times size factors when those are given).
/// - `theta`: a `vector_view<T>` of genes entries (per gene) or a cells x genes `matrix_view<T>`
///   (per element); `gene_param_view` accepts both.
/// - `outputs` (`nll_outputs<T>`): optional d_mu, d_theta (theta's shape; summed over cells for a
///   per-gene theta), per_cell, per_gene, log_prob; see detail/common.hpp.
/// - `options` (`nll_options<T, Space, Mask>`): reduction (sum or mean), size_factors, mask,
///   check_inputs.
///
/// Returns the negative log-likelihood sum_ij mask_ij * (-log NB(x_ij | s_i mu_ij, theta_ij)),
/// or its mean over the included elements. Value and all requested gradients come from ONE pass over
/// the elements. Gradients overwrite their outputs.
///
/// Complexity: O(cells x genes) kernel evaluations (dense and CSR alike: mu and theta are dense),
/// plus O(genes) per-gene preparations; scratch: cells doubles, and when per_gene or a per-gene
/// d_theta is requested, 64 x genes doubles per such output. Synchronises: host policies return when
/// done; with `cuda` the result is copied back (synchronises the stream).
///
/// Determinism: every output is bit-identical for serial and any openmp{n}, and between the
/// dense and the CSR path (see detail/sweep.hpp).
///
/// Errors: `dimension_mismatch` naming both arguments when shapes disagree; `invalid_argument` for a
/// d_pi output, a ridge penalty or logits (ZINB only); with `CELLKIT_DEBUG_CHECKS` or
/// `options.check_inputs`, `invalid_argument` naming the argument and the first invalid element
/// (negative or non-finite counts or mu, theta <= 0 or NaN, size factors < 0, mask not 0/1) and
/// `validate` of a host CSR structure. Without the checks invalid elements give NaN.
///
/// ## Example
///
/// ```cpp
/// namespace lk = cellkit::likelihood;
/// // counts: csr_view<const float>, mu: matrix_view<const float> (cells x genes), theta: vector_view<const float>
/// cellkit::host_buffer<float> d_mu(cells * genes), d_theta(genes);
/// float loss = lk::nb_nll(cellkit::openmp{}, counts, mu, theta,
///                         {.d_mu = d_mu.as_matrix(cells, genes), .d_theta = d_theta.view()},
///                         {.reduce = lk::reduction::mean});
/// ```

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/likelihood/detail/common.hpp>
#include <cellkit/likelihood/detail/nb_kernels.hpp>
#include <cellkit/likelihood/detail/sweep.hpp>

#include <cstdint>
#include <type_traits>

namespace cellkit::likelihood {

/// log NB(x | mu, theta). NaN for invalid arguments (see the table above).
template <class T>
struct nb_log_prob_fn {
  static_assert(detail::is_real_v<T>, "cellkit::likelihood: T must be float or double");
  CELLKIT_HD T operator()(T x, T mu, T theta) const noexcept {
    return (*this)(x, mu, x == T(0) ? nb_theta<T>::make_light(theta) : nb_theta<T>::make(theta));
  }
  CELLKIT_HD T operator()(T x, T mu, const nb_theta<T>& theta) const noexcept {
    return detail::nb_element<T, false>(x, mu, theta, false).log_prob;
  }
};

/// log NB(x | mu, theta) with d/dmu and d/dtheta (see the file comment for formulas and limits).
/// Set `theta_gradient = false` to skip d/dtheta (returned as 0), the dearest part for x > 0.
template <class T>
struct nb_log_prob_grad_fn {
  static_assert(detail::is_real_v<T>, "cellkit::likelihood: T must be float or double");
  bool theta_gradient = true;
  CELLKIT_HD nb_value_grad<T> operator()(T x, T mu, T theta) const noexcept {
    return (*this)(x, mu, x == T(0) ? nb_theta<T>::make_light(theta) : nb_theta<T>::make(theta));
  }
  CELLKIT_HD nb_value_grad<T> operator()(T x, T mu, const nb_theta<T>& theta) const noexcept {
    return detail::nb_element<T, true>(x, mu, theta, theta_gradient);
  }
};

/// Negative log-likelihood of an NB model over a count matrix (see the file comment).
template <class Policy, class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires is_execution_policy_v<Policy> std::remove_const_t<MuT> nb_nll(
    const Policy& policy, const Counts& counts, matrix_view<MuT, Space> mu,
    std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
    const nll_outputs<std::remove_const_t<MuT>, Space>& outputs = {},
    const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  using T = std::remove_const_t<MuT>;
  static_assert(detail::is_real_v<T>, "cellkit::likelihood::nb_nll: mu must hold float or double");
  cellkit::detail::check_policy_and_spaces<Policy, Space, typename detail::counts_traits<Counts>::space>();
  const auto rq = detail::make_request<T, Space, Mask>(counts, mu, theta, matrix_view<const T, Space>{});
  return detail::run_nll<detail::model_kind::nb>(policy, "nb_nll", rq, outputs, options);
}

/// `nb_nll` with `default_host_policy()`.
template <class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires(!is_execution_policy_v<Counts>) std::remove_const_t<MuT> nb_nll(
    const Counts& counts, matrix_view<MuT, Space> mu,
    std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
    const nll_outputs<std::remove_const_t<MuT>, Space>& outputs = {},
    const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  return nb_nll(default_host_policy(), counts, mu, theta, outputs, options);
}

/// log NB(x_ij | s_i mu_ij, theta_ij) of every element into `log_prob` (cells x genes). Options:
/// size_factors and check_inputs apply (reduce and mask do not). Same cost, checks and determinism
/// as `nb_nll` (which writes the same values through `outputs.log_prob`).
template <class Policy, class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires is_execution_policy_v<Policy>
void nb_log_prob(const Policy& policy, const Counts& counts, matrix_view<MuT, Space> mu,
                 std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
                 matrix_view<std::remove_const_t<MuT>, Space> log_prob,
                 const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  using T = std::remove_const_t<MuT>;
  nll_options<T, Space, Mask> o = options;
  o.mask.reset();
  o.reduce = reduction::sum;
  nb_nll(policy, counts, mu, theta, nll_outputs<T, Space>{.log_prob = log_prob}, o);
}

/// `nb_log_prob` with `default_host_policy()`.
template <class Counts, class MuT, class Space, class Mask = std::uint8_t>
requires(!is_execution_policy_v<Counts>) void nb_log_prob(
    const Counts& counts, matrix_view<MuT, Space> mu,
    std::type_identity_t<gene_param_view<const std::remove_const_t<MuT>, Space>> theta,
    matrix_view<std::remove_const_t<MuT>, Space> log_prob,
    const nll_options<std::remove_const_t<MuT>, Space, Mask>& options = {}) {
  nb_log_prob(default_host_policy(), counts, mu, theta, log_prob, options);
}

}  // namespace cellkit::likelihood
