#pragma once
/// @file
/// Simplified graph convolution (SGC, Wu et al. 2019; PyG's SGConv): `Y = (A_hat^K X) W (+ b)`.
///
/// The propagated features F = A_hat^K X do not depend on the weights, so they are computed once
/// (`sgc_precompute`, K sparse products, cacheable like PyG's `cached=True`) and training is a
/// linear layer on F: `sgc_forward` (Y = F W + b) and `sgc_backward` (dW = F^T dY, db = sum_i dY_i,
/// and optionally dX = (A_hat^T)^K dY W^T, evaluated at the smaller of f_in and f_out).
/// PyG's SGConv uses `normalize(A, {symmetric, 1})` (GCN normalisation with self-loops).
///
/// Shapes: A_hat n x n, X and F n x f_in, W f_in x f_out, b f_out, Y n x f_out.
/// Cost: precompute 2 K nnz f_in flops, one n x f_in scratch when K >= 2; forward / backward 2 n
/// f_in f_out flops per product. Deterministic across thread counts (see tagcn.hpp). Every policy: under
/// `cuda` (device views; A_hat^T as a second CSR view for the backward pass) the portable
/// evaluation of detail/portable.hpp runs, asynchronously; host calls return when done.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/spmm.hpp>
#include <cellkit/graph/detail/args.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/graph/detail/dense.hpp>
#include <cellkit/graph/detail/portable.hpp>
#include <cellkit/graph/propagate.hpp>

#include <string>
#include <type_traits>

namespace cellkit::graph {

struct sgc_params {
  index_t hops = 2;  ///< K
};

namespace detail {
/// out = M^K X (M = A or A^T given as a CSR view), with one scratch buffer; out may not alias x.
template <class Policy, class T, class Index>
void power_apply(const Policy& policy, csr_view<const T, Index> m, matrix_view<const T> x, matrix_view<T> out,
                 index_t k) {
  if (k == 0) {
    copy_rows(policy, x, out);
    return;
  }
  host_buffer<T> scratch(k >= 2 ? out.rows() * out.cols() : 0, uninitialized);
  matrix_view<T> other = k >= 2 ? scratch.as_matrix(out.rows(), out.cols()) : out;
  // The last product must land in `out`: step s (1-based) writes out when (k - s) is even.
  matrix_view<const T> previous = x;
  for (index_t s = 1; s <= k; ++s) {
    matrix_view<T> target = (k - s) % 2 == 0 ? out : other;
    spmm(policy, m, previous, target);
    previous = target;
  }
}
}  // namespace detail

/// F = A_hat^K X. Every policy (cuda: device views, asynchronous). Errors: `dimension_mismatch`
/// naming A_hat, X and F; `invalid_argument` for K < 0.
template <class Policy, class TA, class Index, class T, class Space>
void sgc_precompute(const Policy& policy, csr_view<TA, Index, Space> a_hat, const_matrix_arg<T, Space> x,
                    matrix_view<T, Space> features, sgc_params params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  static_assert(std::is_same_v<std::remove_const_t<TA>, T>, "sgc_precompute: A_hat and X must have the same type");
  constexpr const char* fn = "sgc_precompute";
  CELLKIT_EXPECTS(params.hops >= 0, fn, "params.hops", "K must be >= 0, got " + std::to_string(params.hops));
  expect_shapes(a_hat.rows() == x.rows() && a_hat.cols() == x.rows(), fn, "A_hat", a_hat.shape(), "X", x.shape(),
                "A_hat must be n x n for n rows of X");
  expect_shapes(features.rows() == x.rows() && features.cols() == x.cols(), fn, "features", features.shape(), "X",
                x.shape(), "features has the shape of X");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_power_apply(policy, csr_view<const T, Index, Space>(a_hat), x, features, params.hops);
  } else {
    detail::require_host_policy<Policy>();
    detail::debug_check_csr(fn, "A_hat", a_hat);
    detail::power_apply(policy, csr_view<const T, Index>(a_hat), x, features, params.hops);
  }
}

/// Y = F W (+ b). Every policy.
template <class Policy, class T, class Space>
void sgc_forward(const Policy& policy, const_matrix_arg<T, Space> features, const_matrix_arg<T, Space> w,
                 optional_bias_arg<T, Space> bias, matrix_view<T, Space> y) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "sgc_forward";
  expect_shapes(w.rows() == features.cols(), fn, "W", w.shape(), "features", features.shape(),
                "W.rows must equal features.cols");
  expect_shapes(y.rows() == features.rows() && y.cols() == w.cols(), fn, "Y", y.shape(), "features W",
                {features.rows(), w.cols()}, "Y must have the shape of features W");
  if (bias) expect_shapes(bias->size() == w.cols(), fn, "b", bias->shape(), "W", w.shape(), "one bias per column of W");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_gemm(policy, features, w, y);
    if (bias) detail::portable_add_row_vector(policy, *bias, y);
  } else {
    detail::require_host_policy<Policy>();
    detail::blocked_gemm<Policy, T>(policy, features, w, y, T(1), T(0));
    if (bias) detail::add_row_vector(policy, *bias, y);
  }
}

/// dW = F^T dY, db = sum_i dY_i and dX = (A_hat^T)^K dY W^T (each optional, overwritten), with
/// A_hat^T given as a CSR view in the policy's memory space (every policy).
template <class Policy, class TA, class Index, class Space, class T = std::remove_const_t<TA>>
void sgc_backward(const Policy& policy, csr_view<TA, Index, Space> a_hat_t, const_matrix_arg<T, Space> features,
                  const_matrix_arg<T, Space> w, const_matrix_arg<T, Space> dy, optional_matrix_out<T, Space> dx,
                  optional_matrix_out<T, Space> dw, optional_vector_out<T, Space> db, sgc_params params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "sgc_backward";
  CELLKIT_EXPECTS(params.hops >= 0, fn, "params.hops", "K must be >= 0, got " + std::to_string(params.hops));
  const csr_view<const T, Index, Space> at(a_hat_t);
  const index_t n = features.rows();
  const index_t f_in = features.cols();
  const index_t f_out = w.cols();
  expect_shapes(w.rows() == f_in, fn, "W", w.shape(), "features", features.shape(), "W.rows must equal features.cols");
  expect_shapes(dy.rows() == n && dy.cols() == f_out, fn, "dY", dy.shape(), "features W", {n, f_out},
                "dY must have the shape of Y");
  expect_shapes(at.rows() == n && at.cols() == n, fn, "A_hat^T", at.shape(), "features", features.shape(),
                "A_hat must be n x n");
  if (dx)
    expect_shapes(dx->rows() == n && dx->cols() == f_in, fn, "dX", dx->shape(), "features", features.shape(),
                  "dX must have the shape of X");
  if (dw)
    expect_shapes(dw->rows() == f_in && dw->cols() == f_out, fn, "dW", dw->shape(), "W", w.shape(),
                  "dW must have the shape of W");
  if (db) expect_shapes(db->size() == f_out, fn, "db", db->shape(), "W", w.shape(), "one bias per column of W");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_sgc_backward(policy, at, features, w, dy, dx, dw, db, params.hops);
  } else {
    detail::require_host_policy<Policy>();
    if (db) detail::blocked_column_sums(policy, dy, *db, T(1), T(0));
    if (dw) detail::blocked_gemm_tn<Policy, T>(policy, features, dy, *dw, T(1), T(0));
    if (!dx) return;
    if (f_in <= f_out) {
      host_buffer<T> g(n * f_in, uninitialized);
      detail::blocked_gemm<Policy, T>(policy, dy, w, g.as_matrix(n, f_in), T(1), T(0), true);
      detail::power_apply(policy, at, matrix_view<const T>(g.as_matrix(n, f_in)), *dx, params.hops);
    } else {
      host_buffer<T> q(n * f_out, uninitialized);
      detail::power_apply(policy, at, dy, q.as_matrix(n, f_out), params.hops);
      detail::blocked_gemm<Policy, T>(policy, matrix_view<const T>(q.as_matrix(n, f_out)), w, *dx, T(1), T(0), true);
    }
  }
}

/// `sgc_backward` with A_hat^T from the propagator (host policies).
template <class Policy, class T, class Index>
void sgc_backward(const Policy& policy, const propagator<T, Index>& a_hat, const_matrix_arg<T> features,
                  const_matrix_arg<T> w, const_matrix_arg<T> dy, optional_matrix_out<T> dx, optional_matrix_out<T> dw,
                  optional_vector_out<T> db, sgc_params params = {}) {
  detail::require_host_policy<Policy>();
  sgc_backward(policy, a_hat.transpose(), features, w, dy, dx, dw, db, params);
}

}  // namespace cellkit::graph
