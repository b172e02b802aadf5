#pragma once
/// @file
/// The cross-correlation (redundancy reduction) loss of Barlow Twins (Zbontar et al. 2021), used
/// by scSiameseClu's cross-correlation refinement, with its gradients (namespace
/// `cellkit::contrastive`).
///
/// ## Definition
///
/// Each view's columns are standardised over the batch (N rows), as `BatchNorm1d(d, affine=False)`
/// in training mode does in the reference implementation:
///
///     mu_k = (1/N) sum_n z_nk,   v_k = (1/N) sum_n (z_nk - mu_k)^2   (1/(N-1) with unbiased = true)
///     zhat_nk = (z_nk - mu_k) / sqrt(v_k + eps)
///
/// then C = Zhat_a^T Zhat_b / N (d x d) and
///
///     loss = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2.
///
/// Gradients (overwritten) with respect to the raw Z_a and Z_b, through the standardisation:
/// dC_ii = -2 (1 - C_ii), dC_ij = 2 lambda C_ij; dZhat_a = Zhat_b dC^T / N, dZhat_b = Zhat_a dC / N;
/// dz_nk = (g_nk - mean_n g_nk - zhat_nk (1/M) sum_m g_mk zhat_mk) / sqrt(v_k + eps), M = N (or N - 1).
///
/// ## Arguments
///
/// `cross_correlation_loss(policy, z_a, z_b, grad_a, grad_b, params)`: z_a, z_b are N x d
/// `matrix_view`s of float or double (strides allowed), rows are cells of the two views;
/// gradients are `std::optional<matrix_view<T, Space>>` of the same shape, in z_a's memory space
/// (std::nullopt skips one).
/// Parameters: `lambda` >= 0 (default 0.0051, Barlow Twins' `lambd`), `eps` > 0 (default 1e-5,
/// BatchNorm's), `unbiased` (default false: BatchNorm's biased batch variance; true: the
/// `(z - z.mean(0)) / z.std(0)` form used by some reimplementations, plus eps).
/// Errors: shapes differ (`dimension_mismatch`); N < 2 (a batch variance needs two rows, as
/// BatchNorm), d < 1, non-finite values, lambda < 0 or not finite, eps <= 0 (`invalid_argument`).
/// Outputs may alias inputs (inputs are copied first); the two gradients must not overlap.
///
/// ## Cost, memory, determinism
///
/// Three GEMMs of 2 N d^2 flops (C, and one per requested gradient) and O(N d) elementwise work;
/// memory: the standardised copies (2 N d of T) and C and dC (2 d^2 of T). Column statistics and
/// the loss accumulate in double. Host policies (`serial{}`, `openmp{threads}`): GEMMs run as fixed
/// row blocks of serial GEMMs, so results are bit-identical for every thread count.
/// `cuda{stream}` with `device_space` views (inputs and gradients): the portable evaluation
/// (detail/portable_cross_correlation.hpp): one functor call per column for the statistics and the
/// backward's column sums (rows in order, in double), one per element for the standardisation,
/// cuBLAS for the three GEMMs, a CUB reduction for the loss. No atomics, so the same bits on every
/// run; it agrees with the host to rounding. It synchronises the stream (the loss comes back to the
/// host; the finiteness check reads the inputs first).
///
/// ## Example
///
/// ```cpp
/// std::vector<float> ga(n * d), gb(n * d);
/// float loss = cellkit::contrastive::cross_correlation_loss(cellkit::openmp{2}, za, zb,
///     cellkit::matrix_view<float>(ga.data(), n, d), cellkit::matrix_view<float>(gb.data(), n, d),
///     {.lambda = 0.0051f});
/// ```

#include <cellkit/contrastive/detail/common.hpp>
#include <cellkit/contrastive/detail/cross_correlation_impl.hpp>
#include <cellkit/contrastive/detail/portable_common.hpp>
#include <cellkit/contrastive/detail/portable_cross_correlation.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::contrastive {

/// Parameters of `cross_correlation_loss`.
template <class T>
struct cross_correlation_params {
  T lambda = T(0.0051);   ///< weight of the off-diagonal (redundancy) terms, >= 0
  T eps = T(1e-5);        ///< added to the batch variance before the square root, > 0
  bool unbiased = false;  ///< divide the variance by N - 1 instead of N
};

/// Barlow Twins' cross-correlation loss of `z_a` and `z_b` (N x d each); see the file comment.
template <class Policy, class TA, class SpaceA, class TB, class SpaceB>
std::remove_const_t<TA> cross_correlation_loss(
    const Policy& policy, matrix_view<TA, SpaceA> z_a, matrix_view<TB, SpaceB> z_b,
    std::type_identity_t<std::optional<matrix_view<std::remove_const_t<TA>, SpaceA>>> grad_a,
    std::type_identity_t<std::optional<matrix_view<std::remove_const_t<TA>, SpaceA>>> grad_b,
    const std::type_identity_t<cross_correlation_params<std::remove_const_t<TA>>>& params = {}) {
  using T = std::remove_const_t<TA>;
  detail::check_policy<Policy, SpaceA, SpaceB>();
  static_assert(detail::is_real_v<T>, "cellkit::contrastive::cross_correlation_loss: z_a must hold float or double");
  static_assert(std::is_same_v<std::remove_const_t<TB>, T>,
                "cellkit::contrastive::cross_correlation_loss: both views need one type");
  constexpr const char* fn = "cross_correlation_loss";
  expect_shapes(z_a.rows() == z_b.rows() && z_a.cols() == z_b.cols(), fn, "z_b", z_b.shape(), "z_a", z_a.shape(),
                "the two views must have the same shape");
  CELLKIT_EXPECTS(z_a.rows() >= 2, fn, "z_a",
                  "has " + std::to_string(z_a.rows()) + " rows; the batch standardisation needs at least 2");
  CELLKIT_EXPECTS(z_a.cols() >= 1, fn, "z_a", "has no columns (embedding dimensions)");
  CELLKIT_EXPECTS(params.lambda >= T(0) && params.lambda <= std::numeric_limits<T>::max(), fn, "lambda",
                  "must be non-negative and finite, got " + detail::number_text(static_cast<double>(params.lambda)));
  detail::check_positive_finite(fn, "eps", params.eps);
  const matrix_view<const T, SpaceA> a(z_a), b(z_b);
  detail::check_finite_on(policy, fn, "z_a", a);
  detail::check_finite_on(policy, fn, "z_b", b);
  detail::check_output_shape(fn, "grad_a", grad_a, "z_a", a.shape());
  detail::check_output_shape(fn, "grad_b", grad_b, "z_b", b.shape());
  detail::check_no_overlap(fn, "grad_a", grad_a, "grad_b", grad_b);
  if constexpr (is_device_policy_v<Policy>) {
    return static_cast<T>(detail::portable_cross_correlation_loss(policy, a, b, grad_a, grad_b, params.lambda,
                                                                  params.eps, params.unbiased));
  } else {
    const int threads = ::cellkit::detail::host_threads(policy);
    const index_t n = a.rows();
    const index_t d = a.cols();
    const auto sa = detail::standardize(threads, a, params.eps, params.unbiased);
    const auto sb = detail::standardize(threads, b, params.eps, params.unbiased);
    const auto za = sa.zhat.as_matrix(n, d);
    const auto zb = sb.zhat.as_matrix(n, d);
    host_buffer<T> c(d * d, uninitialized);
    const auto cm = c.as_matrix(d, d);
    // C = Zhat_a^T Zhat_b / N
    detail::gemm_rows_blocked<T>(threads, za, zb, cm,
                                 gemm_params<T>{static_cast<T>(1.0 / static_cast<double>(n)), T(0), true, false});
    double on_diagonal = 0;
    double off_diagonal = 0;
    for (index_t i = 0; i < d; ++i) {
      for (index_t j = 0; j < d; ++j) {
        const double v = static_cast<double>(cm(i, j));
        if (i == j) {
          on_diagonal += (1.0 - v) * (1.0 - v);
        } else {
          off_diagonal += v * v;
        }
      }
    }
    const double loss = on_diagonal + static_cast<double>(params.lambda) * off_diagonal;
    if (!grad_a && !grad_b) return static_cast<T>(loss);

    // dC / N, overwriting C
    const double inv_n = 1.0 / static_cast<double>(n);
    for (index_t i = 0; i < d; ++i) {
      for (index_t j = 0; j < d; ++j) {
        const double v = static_cast<double>(cm(i, j));
        const double g = i == j ? -2.0 * (1.0 - v) : 2.0 * static_cast<double>(params.lambda) * v;
        cm(i, j) = static_cast<T>(g * inv_n);
      }
    }
    const matrix_view<const T> dc(cm);
    if (grad_a) {  // dZhat_a = Zhat_b dC^T / N
      detail::gemm_rows_blocked<T>(threads, zb, dc, *grad_a, gemm_params<T>{T(1), T(0), false, true});
      detail::standardize_backward(sa, *grad_a, params.unbiased);
    }
    if (grad_b) {  // dZhat_b = Zhat_a dC / N
      detail::gemm_rows_blocked<T>(threads, za, dc, *grad_b, gemm_params<T>{T(1), T(0), false, false});
      detail::standardize_backward(sb, *grad_b, params.unbiased);
    }
    return static_cast<T>(loss);
  }
}

/// `cross_correlation_loss` with `default_host_policy()`.
template <class TA, class TB>
std::remove_const_t<TA> cross_correlation_loss(
    matrix_view<TA> z_a, matrix_view<TB> z_b,
    std::type_identity_t<std::optional<matrix_view<std::remove_const_t<TA>>>> grad_a,
    std::type_identity_t<std::optional<matrix_view<std::remove_const_t<TA>>>> grad_b,
    const std::type_identity_t<cross_correlation_params<std::remove_const_t<TA>>>& params = {}) {
  return cross_correlation_loss(default_host_policy(), z_a, z_b, grad_a, grad_b, params);
}

}  // namespace cellkit::contrastive
