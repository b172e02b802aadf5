#pragma once
/// @file
/// Jensen-Shannon divergence between the row distributions of two matrices of logits, with its
/// gradients (namespace `cellkit::contrastive`): the propagation regulariser of scSiameseClu
/// (JS between the class distributions of a node and of its propagated neighbourhood, P-reg).
///
/// ## Definition (inputs are logits)
///
/// Row i of X and of Y (N x K each) are turned into distributions p_i = softmax(x_i),
/// q_i = softmax(y_i); with m = (p + q)/2,
///
///     JS(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m) = 1/2 sum_k [p_k log(p_k/m_k) + q_k log(q_k/m_k)]
///     loss = (1/N) sum_i JS(p_i || q_i)        (natural logarithm: nats, 0 <= JS <= log 2)
///
/// Everything is computed from log-probabilities (log p_k = x_k - logsumexp(x), log m_k =
/// logaddexp(log p_k, log q_k) - log 2), so no probability underflows into log(0) and terms with
/// p_k = 0 contribute 0. Gradients with respect to the logits (overwritten):
/// dL/dx_ik = (1/N) p_ik (g_ik - sum_j p_ij g_ij), g_ik = 1/2 log(p_ik/m_ik), and symmetrically for Y.
///
/// **Why logits:** they are what a network produces, the softmax's normalisation is then part of the
/// function (no simplex constraint to violate), and the log-space evaluation is stable. To compare
/// given probabilities P and Q, pass log(P) and log(Q) (softmax(log p) = p; rows must sum to 1, zero
/// entries as -inf are not accepted: use a tiny floor); the gradient is then dL/dlog p =
/// p * dL/dp projected onto the simplex.
///
/// ## Arguments
///
/// `jensen_shannon(policy, logits_p, logits_q, grad_p, grad_q)`: N x K `matrix_view`s of float or
/// double (strides allowed), gradients `std::optional<matrix_view<T, Space>>` of the same shape, in
/// logits_p's memory space (std::nullopt skips one). Errors: different shapes
/// (`dimension_mismatch`), N < 1 or K < 1 or a non-finite logit (`invalid_argument` naming the
/// argument and element).
///
/// ## Cost and determinism
///
/// O(N K): 3 exponentials and 1 log1p per element, rows in parallel, O(K) scratch per thread. Each
/// row's terms accumulate in double in index order and the row results are summed in index order,
/// so results are bit-identical for every host policy and thread count.
///
/// `cuda{stream}` with `device_space` views (inputs and gradients): the portable evaluation
/// (detail/portable_jensen_shannon.hpp): one functor call per row running the same row function
/// (it recomputes log m in the gradient loop instead of keeping O(K) scratch), the row divergences
/// summed by a CUB reduction. No atomics, so the same bits on every run; it agrees with the host to
/// rounding. It synchronises the stream (the loss comes back to the host; the finiteness check
/// reads the logits first).

#include <cellkit/contrastive/detail/common.hpp>
#include <cellkit/contrastive/detail/jensen_shannon_impl.hpp>
#include <cellkit/contrastive/detail/portable_common.hpp>
#include <cellkit/contrastive/detail/portable_jensen_shannon.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::contrastive {

/// Mean over rows of JS(softmax(logits_p[i]) || softmax(logits_q[i])); see the file comment.
template <class Policy, class TP, class SpaceP, class TQ, class SpaceQ>
std::remove_const_t<TP> jensen_shannon(
    const Policy& policy, matrix_view<TP, SpaceP> logits_p, matrix_view<TQ, SpaceQ> logits_q,
    std::type_identity_t<std::optional<matrix_view<std::remove_const_t<TP>, SpaceP>>> grad_p,
    std::type_identity_t<std::optional<matrix_view<std::remove_const_t<TP>, SpaceP>>> grad_q) {
  using T = std::remove_const_t<TP>;
  detail::check_policy<Policy, SpaceP, SpaceQ>();
  static_assert(detail::is_real_v<T>, "cellkit::contrastive::jensen_shannon: logits must be float or double");
  static_assert(std::is_same_v<std::remove_const_t<TQ>, T>,
                "cellkit::contrastive::jensen_shannon: both inputs need one type");
  constexpr const char* fn = "jensen_shannon";
  expect_shapes(logits_p.rows() == logits_q.rows() && logits_p.cols() == logits_q.cols(), fn, "logits_q",
                logits_q.shape(), "logits_p", logits_p.shape(),
                "both inputs hold one distribution per row over the same categories");
  CELLKIT_EXPECTS(logits_p.rows() >= 1, fn, "logits_p", "has no rows (distributions)");
  CELLKIT_EXPECTS(logits_p.cols() >= 1, fn, "logits_p", "has no columns (categories)");
  const matrix_view<const T, SpaceP> x(logits_p), y(logits_q);
  detail::check_finite_on(policy, fn, "logits_p", x, "logits");
  detail::check_finite_on(policy, fn, "logits_q", y, "logits");
  detail::check_output_shape(fn, "grad_p", grad_p, "logits_p", x.shape());
  detail::check_output_shape(fn, "grad_q", grad_q, "logits_q", y.shape());
  detail::check_no_overlap(fn, "grad_p", grad_p, "grad_q", grad_q);
  if constexpr (is_device_policy_v<Policy>) {
    return static_cast<T>(detail::portable_jensen_shannon(policy, x, y, grad_p, grad_q));
  } else {
    const index_t n = x.rows();
    const index_t k = x.cols();
    const double scale = 1.0 / static_cast<double>(n);
    std::vector<double> row_js(static_cast<std::size_t>(n));
    // Outputs may alias inputs: a row's gradients are written only after the row has been read.
    constexpr index_t block = 64;
    detail::parallel_blocks(
        ::cellkit::detail::host_threads(policy), (n + block - 1) / block,
        [&] {
          return std::pair{std::vector<double>(static_cast<std::size_t>(k)),
                           std::vector<double>(static_cast<std::size_t>(k))};
        },
        [&](index_t b, auto& scratch) {
          const index_t last = std::min(n, (b + 1) * block);
          std::vector<T> gx_row(grad_p ? static_cast<std::size_t>(k) : 0),
              gy_row(grad_q ? static_cast<std::size_t>(k) : 0);
          for (index_t i = b * block; i < last; ++i) {
            row_js[static_cast<std::size_t>(i)] = detail::jensen_shannon_row<T>(
                x.row_data(i), y.row_data(i), k, grad_p ? gx_row.data() : nullptr, grad_q ? gy_row.data() : nullptr,
                scale, scratch.first.data(), scratch.second.data());
            if (grad_p) std::copy(gx_row.begin(), gx_row.end(), grad_p->row_data(i));
            if (grad_q) std::copy(gy_row.begin(), gy_row.end(), grad_q->row_data(i));
          }
        });
    double total = 0;
    for (double v : row_js) total += v;
    return static_cast<T>(total * scale);
  }
}

/// `jensen_shannon` with `default_host_policy()`.
template <class TP, class TQ>
std::remove_const_t<TP> jensen_shannon(
    matrix_view<TP> logits_p, matrix_view<TQ> logits_q,
    std::type_identity_t<std::optional<matrix_view<std::remove_const_t<TP>>>> grad_p,
    std::type_identity_t<std::optional<matrix_view<std::remove_const_t<TP>>>> grad_q) {
  return jensen_shannon(default_host_policy(), logits_p, logits_q, grad_p, grad_q);
}

}  // namespace cellkit::contrastive
