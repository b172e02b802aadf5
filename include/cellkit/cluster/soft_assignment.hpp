#pragma once
/// @file
/// Student-t soft assignment (DEC, Xie et al. 2016), its sharpened target, the KL and BCE losses
/// between assignment matrices, the fused loss-and-gradient pass, and collapse diagnostics.
/// Namespace `cellkit::cluster`. Full description: docs/cluster.md.
///
/// ## Formulas
///
/// Cells z_i (rows of z, N x d), centres mu_j (rows of mu, K x d), degrees of freedom alpha > 0,
/// d_ij = ||z_i - mu_j||^2:
///
///     q_ij = (1 + d_ij / alpha)^(-(alpha + 1) / 2) / sum_l (1 + d_il / alpha)^(-(alpha + 1) / 2)
///     p_ij = (q_ij^power / f_j) / sum_l (q_il^power / f_l),   f_j = sum_i q_ij   (power = 2 in DEC)
///     KL(P || Q) = sum_ij p_ij log(p_ij / q_ij)         (DEC's loss; 0 log 0 = 0)
///     KL(Q || P) = sum_ij q_ij log(q_ij / p_ij)         (the reverse: only as kl_divergence_q_p)
///     BCE(P, Q)  = -sum_ij [p_ij log q_ij + (1 - p_ij) log(1 - q_ij)]   (logs clamped at -100, as PyTorch)
///
/// each then scaled by the reduction (`loss_reduction`: sum, batchmean = 1/N, mean = 1/(N K)).
/// Distances come from one GEMM per block, d_ij = ||z_i||^2 + ||mu_j||^2 - 2 z_i.mu_j clamped at 0;
/// q is normalised in log space (log-sum-exp per row), so far-away clusters underflow to q = 0
/// instead of producing 0/0.
///
/// Gradients of L = KL(P || Q) with P a constant target (DEC's convention: P is computed from Q
/// and detached), w_ij = (1 + d_ij/alpha)^-1, s_i = sum_j p_ij (= 1 for a normalised target):
///
///     dL/dz_i  =  (alpha+1)/alpha sum_j w_ij (p_ij - q_ij s_i) (z_i - mu_j)
///     dL/dmu_j = -(alpha+1)/alpha sum_i w_ij (p_ij - q_ij s_i) (z_i - mu_j)
///     dL/dalpha = -sum_ij (p_ij - q_ij s_i) [-log(1 + d_ij/alpha)/2 + (alpha+1)/(2 alpha) (1 - w_ij)]
///
/// (DEC's published formulas are the s_i = 1 case; they agree with PyTorch autograd, which the tests
/// check.) For BCE, dL/dlog k_ij = q_ij (G_ij - sum_l G_il q_il) with G = dBCE/dq replaces
/// -(p_ij - q_ij s_i); G uses PyTorch's clamp (q - p) / max(q (1 - q), 1e-12).
///
/// ## Execution, cost and determinism
///
/// Host only (`serial{}`, `openmp{threads}`; a `cuda` policy does not compile). Cells are processed
/// in fixed blocks of 256 rows, each on one thread with a serial GEMM; per-block partial sums are
/// merged in block order, so every function returns bit-identical results for every policy and
/// thread count. All functions return when done (synchronous).
/// - student_t_assign: 2 N K d flops (GEMM) + N K (log1p + exp); memory O(K) besides q.
/// - student_t_loss: student_t_assign + 4 N K d flops (two more GEMMs when both gradients are
///   requested) + O(N K) element-wise work; extra memory 2 N K values of T.
///
/// ## Input checks
///
/// Shapes: `dimension_mismatch` naming both arguments. alpha must be finite and > 0, power finite
/// and > 0 (`invalid_argument` naming it). K >= 1. With `CELLKIT_DEBUG_CHECKS` (default unless
/// NDEBUG) z and mu must be finite, q and p finite and >= 0 (`invalid_argument` naming the argument
/// and the element).
///
/// ## Example
///
/// ```cpp
/// namespace ck = cellkit::cluster;
/// ck::student_t_assign(cellkit::openmp{}, z, mu, q, 1.0);            // q: N x K
/// ck::target_distribution(cellkit::openmp{}, q, p);                  // p: N x K, power 2
/// double kl = ck::kl_divergence_p_q(cellkit::openmp{}, p, q);        // KL(P||Q) / N
/// // one training step of DEC: value and both gradients in one pass, P computed from Q
/// auto r = ck::student_t_loss(cellkit::openmp{}, z, mu, {.grad_z = gz, .grad_mu = gmu}, {.alpha = 1.0});
/// ```

#include <cellkit/cluster/common.hpp>
#include <cellkit/cluster/detail/parallel.hpp>
#include <cellkit/cluster/detail/soft_assignment_impl.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::cluster {

// ---- element-wise math (CELLKIT_HD: usable in host and device code) -------------------------------

/// The Student-t kernel k(d) = (1 + d / alpha)^(-(alpha + 1) / 2) of a squared distance d and its
/// derivatives. All members are O(1), noexcept, host and device callable.
template <class T>
struct student_t_kernel {
  static_assert(detail::is_real_v<T>, "student_t_kernel<T>: T must be float or double");
  T alpha = T(1);

  /// log k(d) = -(alpha + 1)/2 log1p(d / alpha).
  CELLKIT_HD T log_kernel(T squared_distance) const noexcept {
    return -(alpha + T(1)) / T(2) * math::log1p(squared_distance / alpha);
  }
  /// w(d) = (1 + d / alpha)^-1 = alpha / (alpha + d), the factor of the DEC gradients.
  CELLKIT_HD T inverse_factor(T squared_distance) const noexcept { return alpha / (alpha + squared_distance); }
  /// d log k / d d = -(alpha + 1) / (2 alpha) w(d).
  CELLKIT_HD T dlog_kernel_dd(T squared_distance) const noexcept {
    return -(alpha + T(1)) / (T(2) * alpha) * inverse_factor(squared_distance);
  }
  /// d log k / d alpha = -log1p(d / alpha) / 2 + (alpha + 1) / (2 alpha) (1 - w(d)).
  CELLKIT_HD T dlog_kernel_dalpha(T squared_distance) const noexcept {
    return -math::log1p(squared_distance / alpha) / T(2) +
           (alpha + T(1)) / (T(2) * alpha) * (T(1) - inverse_factor(squared_distance));
  }
};

/// p log(p / q) with 0 log 0 = 0: the summand of KL(P || Q) (q = 0 < p gives +inf).
struct kl_term {
  template <class T>
  CELLKIT_HD T operator()(T p, T q) const noexcept {
    return math::xlogy(p, p) - math::xlogy(p, q);
  }
};

/// -(p log q + (1 - p) log(1 - q)) with both logs clamped at -100 (PyTorch's BCELoss element).
struct bce_term {
  template <class T>
  CELLKIT_HD T operator()(T p, T q) const noexcept {
    const T lq = math::log(q);
    const T l1q = math::log1p(-q);
    return -(p * (lq > T(-100) ? lq : T(-100)) + (T(1) - p) * (l1q > T(-100) ? l1q : T(-100)));
  }
};

/// d bce_term / d q as PyTorch computes it: (q - p) / max(q (1 - q), 1e-12).
struct bce_gradient {
  template <class T>
  CELLKIT_HD T operator()(T p, T q) const noexcept {
    const T den = q * (T(1) - q);
    return (q - p) / (den > T(1e-12) ? den : T(1e-12));
  }
};

/// -x log x with 0 log 0 = 0: the summand of an entropy.
struct entropy_term {
  template <class T>
  CELLKIT_HD T operator()(T x) const noexcept {
    return -math::xlogy(x, x);
  }
};

// ---- parameters and results -------------------------------------------------------------------

/// The loss `student_t_loss` evaluates.
enum class assignment_loss {
  kl_p_q,               ///< KL(P || Q), DEC's clustering loss
  binary_cross_entropy  ///< BCE(P, Q) between the target and the assignment (scDEFER's mutual supervision)
};

template <class T>
struct student_t_loss_params {
  T alpha = T(1);                                        ///< degrees of freedom, > 0
  assignment_loss loss = assignment_loss::kl_p_q;        ///< which loss
  loss_reduction reduction = loss_reduction::batchmean;  ///< PyTorch KLDivLoss(reduction='batchmean') by default
  T power = T(2);                                        ///< exponent of the target when it is computed from q
  bool alpha_gradient = false;                           ///< also compute dL/dalpha (learnable alpha)
};

/// Optional outputs of `student_t_loss`: each present view is overwritten, absent ones are skipped
/// (and their work is not done).
template <class T>
struct student_t_loss_outputs {
  std::optional<matrix_view<T>> q = std::nullopt;        ///< N x K soft assignment
  std::optional<matrix_view<T>> p = std::nullopt;        ///< N x K target used (computed, or a copy of the given one)
  std::optional<matrix_view<T>> grad_z = std::nullopt;   ///< N x d, dL/dz
  std::optional<matrix_view<T>> grad_mu = std::nullopt;  ///< K x d, dL/dmu
};

template <class T>
struct student_t_loss_result {
  T loss;                                      ///< the reduced loss value
  std::optional<T> grad_alpha = std::nullopt;  ///< dL/dalpha when params.alpha_gradient, else empty
};

namespace detail {

template <class T>
void check_alpha(T alpha, const char* function) {
  CELLKIT_EXPECTS(std::isfinite(alpha) && alpha > T(0), function, "alpha",
                  "must be finite and > 0, got " + detail::value_text(alpha));
}

template <class T>
void check_z_mu(matrix_view<const T> z, matrix_view<const T> mu, const char* function) {
  expect_shapes(z.cols() == mu.cols(), function, "z", z.shape(), "mu", mu.shape(),
                "z and mu must have the same number of columns (the embedding dimension)");
  CELLKIT_EXPECTS(mu.rows() >= 1, function, "mu", "must have at least one row (one cluster centre)");
  if constexpr (CELLKIT_DEBUG_CHECKS) {
    expect_all_finite(z, function, "z");
    expect_all_finite(mu, function, "mu");
  }
}

template <class T>
void check_assignment_matrix(matrix_view<const T> m, const char* function, const char* name) {
  if constexpr (CELLKIT_DEBUG_CHECKS) {
    for (index_t i = 0; i < m.rows(); ++i) {
      const T* row = m.row_data(i);
      for (index_t j = 0; j < m.cols(); ++j) {
        CELLKIT_EXPECTS(std::isfinite(row[j]) && row[j] >= T(0), function, name,
                        std::string(name) + "(" + std::to_string(i) + ", " + std::to_string(j) + ") is " +
                            value_text(row[j]) + ": entries must be finite and >= 0");
      }
    }
  } else {
    (void)m;
    (void)function;
    (void)name;
  }
}

template <class T>
void check_same_shape(matrix_view<const T> a, const char* name_a, matrix_view<const T> b, const char* name_b,
                      const char* function) {
  expect_shapes(a.rows() == b.rows() && a.cols() == b.cols(), function, name_a, a.shape(), name_b, b.shape(),
                "both must be N x K");
}

template <class T>
student_t_loss_result<T> student_t_loss_checked(int threads, matrix_view<const T> z, matrix_view<const T> mu,
                                                std::optional<matrix_view<const T>> target,
                                                const student_t_loss_outputs<T>& out,
                                                const student_t_loss_params<T>& params) {
  constexpr const char* fn = "student_t_loss";
  check_z_mu(z, mu, fn);
  check_alpha(params.alpha, fn);
  CELLKIT_EXPECTS(std::isfinite(params.power) && params.power > T(0), fn, "params.power",
                  "must be finite and > 0, got " + detail::value_text(params.power));
  const shape2 nk{z.rows(), mu.rows()};
  if (target) {
    expect_shapes(target->rows() == nk.rows && target->cols() == nk.cols, fn, "p", target->shape(), "z mu^T", nk,
                  "the target must be N x K (cells x clusters)");
    check_assignment_matrix(*target, fn, "p");
  }
  if (out.q)
    expect_shapes(out.q->rows() == nk.rows && out.q->cols() == nk.cols, fn, "outputs.q", out.q->shape(), "z mu^T", nk,
                  "q must be N x K (cells x clusters)");
  if (out.p)
    expect_shapes(out.p->rows() == nk.rows && out.p->cols() == nk.cols, fn, "outputs.p", out.p->shape(), "z mu^T", nk,
                  "p must be N x K (cells x clusters)");
  if (out.grad_z)
    expect_shapes(out.grad_z->rows() == z.rows() && out.grad_z->cols() == z.cols(), fn, "outputs.grad_z",
                  out.grad_z->shape(), "z", z.shape(), "grad_z must have the shape of z");
  if (out.grad_mu)
    expect_shapes(out.grad_mu->rows() == mu.rows() && out.grad_mu->cols() == mu.cols(), fn, "outputs.grad_mu",
                  out.grad_mu->shape(), "mu", mu.shape(), "grad_mu must have the shape of mu");
  loss_request<T> req{z,
                      mu,
                      target,
                      out.q,
                      out.p,
                      out.grad_z,
                      out.grad_mu,
                      params.alpha,
                      params.power,
                      params.loss == assignment_loss::kl_p_q ? loss_kind::kl_p_q : loss_kind::binary_cross_entropy,
                      params.reduction,
                      params.alpha_gradient};
  const auto values =
      student_t_loss_host(effective_threads(threads, static_cast<double>(z.rows()) * static_cast<double>(mu.rows()) *
                                                         static_cast<double>(z.cols() + 1)),
                          req);
  return {values.loss, values.grad_alpha};
}

template <class T>
double pairwise_sum(int threads, matrix_view<const T> a, matrix_view<const T> b, T (*term)(T, T)) {
  return blocked_row_sum(threads, a.rows(), [&](index_t i) {
    const T* ar = a.row_data(i);
    const T* br = b.row_data(i);
    double s = 0.0;
    for (index_t j = 0; j < a.cols(); ++j) s += static_cast<double>(term(ar[j], br[j]));
    return s;
  });
}

template <class T>
T kl_element(T p, T q) {
  return kl_term{}(p, q);
}
template <class T>
T bce_element_public(T p, T q) {
  return bce_term{}(p, q);
}

}  // namespace detail

// ---- Student-t assignment -------------------------------------------------------------------------

/// q (N x K) = Student-t soft assignment of the cells z (N x d) to the centres mu (K x d) with
/// alpha degrees of freedom (see the file comment). Rows of q sum to 1.
/// Cost: 2 N K d flops + N K (log1p + exp). Synchronous. Deterministic for any thread count.
/// Throws `dimension_mismatch` (z/mu columns, q not N x K), `invalid_argument` (alpha <= 0 or not
/// finite, K = 0, non-finite z or mu with debug checks).
template <class Policy, class TZ, class TM, class T, class SZ, class SM, class SQ>
requires is_execution_policy_v<Policy>
void student_t_assign(const Policy& policy, matrix_view<TZ, SZ> z, matrix_view<TM, SM> mu, matrix_view<T, SQ> q,
                      std::type_identity_t<T> alpha = T(1)) {
  static_assert(
      detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TZ>, T> && std::is_same_v<std::remove_const_t<TM>, T>,
      "student_t_assign: z, mu and q must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SZ, SM, SQ>();
  constexpr const char* fn = "student_t_assign";
  detail::check_z_mu<T>(z, mu, fn);
  detail::check_alpha(alpha, fn);
  expect_shapes(q.rows() == z.rows() && q.cols() == mu.rows(), fn, "q", q.shape(), "z mu^T", {z.rows(), mu.rows()},
                "q must be N x K (cells x clusters)");
  detail::student_t_assign_host<T>(
      detail::effective_threads(
          detail::host_threads(policy),
          static_cast<double>(z.rows()) * static_cast<double>(mu.rows()) * static_cast<double>(z.cols() + 1)),
      z, mu, q, alpha);
}

/// `student_t_assign` with `default_host_policy()`.
template <class TZ, class TM, class T>
void student_t_assign(matrix_view<TZ> z, matrix_view<TM> mu, matrix_view<T> q, std::type_identity_t<T> alpha = T(1)) {
  student_t_assign(default_host_policy(), z, mu, q, alpha);
}

/// p (N x K) = the sharpened target of q: p_ij ∝ q_ij^power / f_j, f_j = sum_i q_ij, rows sum to 1.
/// A cluster with f_j = 0 gets p_ij = 0; a row whose terms are all 0 stays 0.
/// Cost: 2 N K + O(K) (power 2: multiplies only; other powers one pow per entry). Synchronous,
/// deterministic for any thread count. p may alias q (the masses are summed first).
/// Throws `dimension_mismatch` (p not the shape of q), `invalid_argument` (power <= 0; with debug
/// checks, q entries negative or not finite).
template <class Policy, class TQ, class T, class SQ, class SP>
requires is_execution_policy_v<Policy>
void target_distribution(const Policy& policy, matrix_view<TQ, SQ> q, matrix_view<T, SP> p,
                         std::type_identity_t<T> power = T(2)) {
  static_assert(detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TQ>, T>,
                "target_distribution: q and p must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SQ, SP>();
  constexpr const char* fn = "target_distribution";
  detail::check_same_shape<T>(q, "q", p, "p", fn);
  CELLKIT_EXPECTS(std::isfinite(power) && power > T(0), fn, "power",
                  "must be finite and > 0, got " + detail::value_text(power));
  detail::check_assignment_matrix<T>(q, fn, "q");
  detail::target_distribution_host<T>(detail::host_threads(policy), q, p, power);
}

template <class TQ, class T>
void target_distribution(matrix_view<TQ> q, matrix_view<T> p, std::type_identity_t<T> power = T(2)) {
  target_distribution(default_host_policy(), q, p, power);
}

// ---- divergences ------------------------------------------------------------------------------------

/// KL(P || Q) = sum_ij p_ij log(p_ij / q_ij) (terms with p_ij = 0 are 0; q_ij = 0 < p_ij gives +inf),
/// scaled by `reduction` (default batchmean = 1/N, PyTorch's `KLDivLoss(reduction='batchmean')(log q, p)`).
/// This is DEC's loss direction: P is the target, Q the model's assignment.
/// Cost: N K (2 logs); sums in double, blocked (deterministic). Synchronous.
template <class Policy, class TP, class TQ, class SP, class SQ>
requires is_execution_policy_v<Policy> std::remove_const_t<TP> kl_divergence_p_q(
    const Policy& policy, matrix_view<TP, SP> p, matrix_view<TQ, SQ> q,
    loss_reduction reduction = loss_reduction::batchmean) {
  using T = std::remove_const_t<TP>;
  static_assert(detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TQ>, T>,
                "kl_divergence_p_q: p and q must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SP, SQ>();
  constexpr const char* fn = "kl_divergence_p_q";
  detail::check_same_shape<T>(p, "p", q, "q", fn);
  detail::check_assignment_matrix<T>(p, fn, "p");
  detail::check_assignment_matrix<T>(q, fn, "q");
  const double s = detail::pairwise_sum<T>(detail::host_threads(policy), p, q, &detail::kl_element<T>);
  return static_cast<T>(s * static_cast<double>(detail::reduction_scale<T>(reduction, p.rows(), p.cols())));
}

template <class TP, class TQ>
std::remove_const_t<TP> kl_divergence_p_q(matrix_view<TP> p, matrix_view<TQ> q,
                                          loss_reduction reduction = loss_reduction::batchmean) {
  return kl_divergence_p_q(default_host_policy(), p, q, reduction);
}

/// The REVERSE divergence KL(Q || P) = sum_ij q_ij log(q_ij / p_ij), with the arguments in the same
/// order as `kl_divergence_p_q` (p first), so that swapping the direction is always explicit.
/// Scaled by `reduction` (default batchmean). Cost as kl_divergence_p_q.
template <class Policy, class TP, class TQ, class SP, class SQ>
requires is_execution_policy_v<Policy> std::remove_const_t<TP> kl_divergence_q_p(
    const Policy& policy, matrix_view<TP, SP> p, matrix_view<TQ, SQ> q,
    loss_reduction reduction = loss_reduction::batchmean) {
  using T = std::remove_const_t<TP>;
  static_assert(detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TQ>, T>,
                "kl_divergence_q_p: p and q must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SP, SQ>();
  constexpr const char* fn = "kl_divergence_q_p";
  detail::check_same_shape<T>(p, "p", q, "q", fn);
  detail::check_assignment_matrix<T>(p, fn, "p");
  detail::check_assignment_matrix<T>(q, fn, "q");
  const double s = detail::pairwise_sum<T>(detail::host_threads(policy), matrix_view<const T>(q),
                                           matrix_view<const T>(p), &detail::kl_element<T>);
  return static_cast<T>(s * static_cast<double>(detail::reduction_scale<T>(reduction, p.rows(), p.cols())));
}

template <class TP, class TQ>
std::remove_const_t<TP> kl_divergence_q_p(matrix_view<TP> p, matrix_view<TQ> q,
                                          loss_reduction reduction = loss_reduction::batchmean) {
  return kl_divergence_q_p(default_host_policy(), p, q, reduction);
}

/// BCE(P, Q) = -sum_ij [p_ij log q_ij + (1 - p_ij) log(1 - q_ij)], logs clamped at -100, scaled by
/// `reduction` (default mean = 1/(N K), PyTorch's `BCELoss()(q, p)`); p is the target, q the
/// prediction; entries must lie in [0, 1]. Cost: N K (2 logs). Synchronous, deterministic.
template <class Policy, class TP, class TQ, class SP, class SQ>
requires is_execution_policy_v<Policy> std::remove_const_t<TP> binary_cross_entropy(
    const Policy& policy, matrix_view<TP, SP> p, matrix_view<TQ, SQ> q,
    loss_reduction reduction = loss_reduction::mean) {
  using T = std::remove_const_t<TP>;
  static_assert(detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TQ>, T>,
                "binary_cross_entropy: p and q must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SP, SQ>();
  constexpr const char* fn = "binary_cross_entropy";
  detail::check_same_shape<T>(p, "p", q, "q", fn);
  detail::check_assignment_matrix<T>(p, fn, "p");
  detail::check_assignment_matrix<T>(q, fn, "q");
  const double s = detail::pairwise_sum<T>(detail::host_threads(policy), p, q, &detail::bce_element_public<T>);
  return static_cast<T>(s * static_cast<double>(detail::reduction_scale<T>(reduction, p.rows(), p.cols())));
}

template <class TP, class TQ>
std::remove_const_t<TP> binary_cross_entropy(matrix_view<TP> p, matrix_view<TQ> q,
                                             loss_reduction reduction = loss_reduction::mean) {
  return binary_cross_entropy(default_host_policy(), p, q, reduction);
}

// ---- the fused loss and gradients -------------------------------------------------------------------

/// One pass of value and gradients of a soft-assignment loss (see the file comment for formulas):
/// computes q from (z, mu, alpha), the target p from q (`params.power`, detached: P is a constant
/// of the gradients, as DEC), the loss `params.loss` (default KL(P || Q)) with `params.reduction`
/// (default batchmean), and every requested output: q, p, dL/dz, dL/dmu (overwritten) and, with
/// `params.alpha_gradient`, dL/dalpha in the result.
/// Cost: 2 N K d flops for q, plus 2 N K d per requested gradient (GEMMs), plus O(N K) element-wise
/// (one log1p and one exp per entry); extra memory 2 N K values (3 N K without the q output).
/// Synchronous; bit-identical for every policy and thread count.
template <class Policy, class TZ, class TM, class SZ, class SM>
requires is_execution_policy_v<Policy> student_t_loss_result<std::remove_const_t<TZ>> student_t_loss(
    const Policy& policy, matrix_view<TZ, SZ> z, matrix_view<TM, SM> mu,
    const student_t_loss_outputs<std::remove_const_t<TZ>>& outputs,
    const student_t_loss_params<std::remove_const_t<TZ>>& params = {}) {
  using T = std::remove_const_t<TZ>;
  static_assert(detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TM>, T>,
                "student_t_loss: z and mu must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SZ, SM>();
  return detail::student_t_loss_checked<T>(detail::host_threads(policy), z, mu, std::nullopt, outputs, params);
}

/// As above with a given target p (N x K, constant; e.g. P computed every T iterations as in DEC,
/// or another network's assignment for BCE). Rows of p need not sum to 1 (the gradient uses
/// s_i = sum_j p_ij).
template <class Policy, class TZ, class TM, class TP, class SZ, class SM, class SP>
requires is_execution_policy_v<Policy> student_t_loss_result<std::remove_const_t<TZ>> student_t_loss(
    const Policy& policy, matrix_view<TZ, SZ> z, matrix_view<TM, SM> mu, matrix_view<TP, SP> p,
    const student_t_loss_outputs<std::remove_const_t<TZ>>& outputs,
    const student_t_loss_params<std::remove_const_t<TZ>>& params = {}) {
  using T = std::remove_const_t<TZ>;
  static_assert(
      detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TM>, T> && std::is_same_v<std::remove_const_t<TP>, T>,
      "student_t_loss: z, mu and p must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SZ, SM, SP>();
  return detail::student_t_loss_checked<T>(detail::host_threads(policy), z, mu, matrix_view<const T>(p), outputs,
                                           params);
}

template <class TZ, class TM>
student_t_loss_result<std::remove_const_t<TZ>> student_t_loss(
    matrix_view<TZ> z, matrix_view<TM> mu, const student_t_loss_outputs<std::remove_const_t<TZ>>& outputs,
    const student_t_loss_params<std::remove_const_t<TZ>>& params = {}) {
  return student_t_loss(default_host_policy(), z, mu, outputs, params);
}

template <class TZ, class TM, class TP>
student_t_loss_result<std::remove_const_t<TZ>> student_t_loss(
    matrix_view<TZ> z, matrix_view<TM> mu, matrix_view<TP> p,
    const student_t_loss_outputs<std::remove_const_t<TZ>>& outputs,
    const student_t_loss_params<std::remove_const_t<TZ>>& params = {}) {
  return student_t_loss(default_host_policy(), z, mu, p, outputs, params);
}

// ---- labels and diagnostics ---------------------------------------------------------------------

/// labels[i] = argmax_j q_ij, the lowest j on ties (a NaN entry is never chosen unless in column 0).
/// Cost: N K compares. Synchronous. Throws `dimension_mismatch` unless labels has N entries and
/// `invalid_argument` when K = 0.
template <class Policy, class TQ, class L, class SQ, class SL>
requires is_execution_policy_v<Policy>
void argmax_labels(const Policy& policy, matrix_view<TQ, SQ> q, vector_view<L, SL> labels) {
  using T = std::remove_const_t<TQ>;
  static_assert(std::is_integral_v<L> && !std::is_const_v<L>, "argmax_labels: labels must be a mutable integral view");
  detail::check_host_policy_and_spaces<Policy, SQ, SL>();
  constexpr const char* fn = "argmax_labels";
  expect_shapes(labels.size() == q.rows(), fn, "labels", labels.shape(), "q", q.shape(),
                "labels needs one entry per row of q");
  CELLKIT_EXPECTS(q.cols() >= 1 || q.rows() == 0, fn, "q", "must have at least one column");
  const index_t n = q.rows();
  const index_t k = q.cols();
  detail::parallel_blocks(detail::host_threads(policy), detail::block_count(n, 4096), [&](int, index_t b) {
    const index_t last = std::min(n, (b + 1) * 4096);
    for (index_t i = b * 4096; i < last; ++i) {
      const T* row = q.row_data(i);
      index_t best = 0;
      T value = row[0];
      for (index_t j = 1; j < k; ++j) {
        if (row[j] > value) {
          value = row[j];
          best = j;
        }
      }
      labels[i] = static_cast<L>(best);
    }
  });
}

template <class TQ, class L>
void argmax_labels(matrix_view<TQ> q, vector_view<L> labels) {
  argmax_labels(default_host_policy(), q, labels);
}

/// entropy[i] = -sum_j q_ij log q_ij (nats; 0 log 0 = 0) for every cell: the per-cell uncertainty
/// of the assignment (0 = hard, log K = uniform). Cost: N K logs. Synchronous.
template <class Policy, class TQ, class T, class SQ, class SE>
requires is_execution_policy_v<Policy>
void assignment_entropy(const Policy& policy, matrix_view<TQ, SQ> q, vector_view<T, SE> entropy) {
  static_assert(detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TQ>, T>,
                "assignment_entropy: q and entropy must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SQ, SE>();
  constexpr const char* fn = "assignment_entropy";
  expect_shapes(entropy.size() == q.rows(), fn, "entropy", entropy.shape(), "q", q.shape(),
                "entropy needs one entry per row of q");
  detail::check_assignment_matrix<T>(q, fn, "q");
  const index_t n = q.rows();
  detail::parallel_blocks(detail::host_threads(policy), detail::block_count(n, 4096), [&](int, index_t b) {
    const index_t last = std::min(n, (b + 1) * 4096);
    for (index_t i = b * 4096; i < last; ++i) {
      const T* row = q.row_data(i);
      double h = 0.0;
      for (index_t j = 0; j < q.cols(); ++j) h += static_cast<double>(entropy_term{}(row[j]));
      entropy[i] = static_cast<T>(h);
    }
  });
}

template <class TQ, class T>
void assignment_entropy(matrix_view<TQ> q, vector_view<T> entropy) {
  assignment_entropy(default_host_policy(), q, entropy);
}

/// Entropy of the cluster masses m_j = f_j / sum_l f_l, f_j = sum_i q_ij: H = -sum_j m_j log m_j in
/// nats. log K means perfectly balanced clusters; values near 0 signal collapse onto one cluster.
/// Cost: N K adds + K logs; deterministic. Throws `invalid_argument` if q sums to 0.
template <class Policy, class TQ, class SQ>
requires is_execution_policy_v<Policy> std::remove_const_t<TQ> cluster_mass_entropy(const Policy& policy,
                                                                                    matrix_view<TQ, SQ> q) {
  using T = std::remove_const_t<TQ>;
  static_assert(detail::is_real_v<T>, "cluster_mass_entropy: q must be float or double");
  detail::check_host_policy_and_spaces<Policy, SQ>();
  constexpr const char* fn = "cluster_mass_entropy";
  detail::check_assignment_matrix<T>(q, fn, "q");
  const std::vector<double> f = detail::column_sums<T>(detail::host_threads(policy), q);
  double total = 0.0;
  for (double v : f) total += v;
  CELLKIT_EXPECTS(total > 0.0, fn, "q", "has total mass 0 (no cells, or every entry is 0)");
  double h = 0.0;
  for (double v : f) h += entropy_term{}(v / total);
  return static_cast<T>(h);
}

template <class TQ>
std::remove_const_t<TQ> cluster_mass_entropy(matrix_view<TQ> q) {
  return cluster_mass_entropy(default_host_policy(), q);
}

/// The size of the smallest of the k clusters of hard `labels` (0 when some cluster is empty): the
/// collapse diagnostic of DEC-style training. Cost: N. Throws `invalid_argument` when k < 1 or a
/// label lies outside [0, k) (naming the first such position).
template <class Policy, class L, class SL>
requires is_execution_policy_v<Policy> index_t min_cluster_size(const Policy& policy, vector_view<L, SL> labels,
                                                                index_t k) {
  static_assert(std::is_integral_v<std::remove_const_t<L>>, "min_cluster_size: labels must be integral");
  detail::check_host_policy_and_spaces<Policy, SL>();
  (void)policy;
  constexpr const char* fn = "min_cluster_size";
  CELLKIT_EXPECTS(k >= 1, fn, "k", "must be >= 1, got " + std::to_string(k));
  std::vector<index_t> counts(static_cast<std::size_t>(k), 0);
  for (index_t i = 0; i < labels.size(); ++i) {
    const auto l = static_cast<long long>(labels[i]);
    CELLKIT_EXPECTS(l >= 0 && l < k, fn, "labels",
                    "label " + std::to_string(l) + " at position " + std::to_string(i) + " is outside [0, " +
                        std::to_string(k) + ")");
    ++counts[static_cast<std::size_t>(l)];
  }
  index_t smallest = counts[0];
  for (index_t c : counts) smallest = c < smallest ? c : smallest;
  return smallest;
}

template <class L>
index_t min_cluster_size(vector_view<L> labels, index_t k) {
  return min_cluster_size(default_host_policy(), labels, k);
}

/// The fraction of cells whose label differs between two assignments, compared position by
/// position (not up to a permutation of the labels): DEC's stopping rule stops when it falls below
/// a tolerance (0.1 % in the paper). 0 for N = 0. Cost: N. Throws `dimension_mismatch` on unequal
/// lengths.
template <class Policy, class LA, class LB, class SA, class SB>
requires is_execution_policy_v<Policy>
double fraction_labels_changed(const Policy& policy, vector_view<LA, SA> previous, vector_view<LB, SB> current) {
  static_assert(std::is_integral_v<std::remove_const_t<LA>> && std::is_integral_v<std::remove_const_t<LB>>,
                "fraction_labels_changed: labels must be integral");
  detail::check_host_policy_and_spaces<Policy, SA, SB>();
  expect_shapes(previous.size() == current.size(), "fraction_labels_changed", "previous", previous.shape(), "current",
                current.shape(), "both label vectors must have one entry per cell");
  const index_t n = previous.size();
  if (n == 0) return 0.0;
  const double changed = detail::blocked_row_sum(detail::host_threads(policy), n, [&](index_t i) {
    return static_cast<long long>(previous[i]) != static_cast<long long>(current[i]) ? 1.0 : 0.0;
  });
  return changed / static_cast<double>(n);
}

template <class LA, class LB>
double fraction_labels_changed(vector_view<LA> previous, vector_view<LB> current) {
  return fraction_labels_changed(default_host_policy(), previous, current);
}

}  // namespace cellkit::cluster
