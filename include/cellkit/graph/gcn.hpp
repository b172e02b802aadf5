#pragma once
/// @file
/// Graph convolution layer (Kipf and Welling 2017): `Y = A_hat X W (+ b)`, forward and backward.
///
/// Shapes: A_hat n x m CSR (n = m for a graph; usually `normalize(A, {symmetric, 1})`, which is
/// PyG's GCNConv), X m x f_in, W f_in x f_out, b f_out (optional), Y n x f_out.
///
/// Forward uses (A X) W = A (X W) to run the sparse product at the smaller width: when f_out < f_in,
/// Z = X W then Y = A Z; otherwise Z = A X then Y = Z W. Cost: 2 nnz min(f_in, f_out) + 2 (n or m)
/// f_in f_out flops; scratch (n or m) x min(f_in, f_out).
///
/// Backward (dY = dL/dY given; each requested gradient is **overwritten**):
///   dX = A^T dY W^T,  dW = (A X)^T dY = X^T (A^T dY),  db = sum_i dY_i.
/// Two evaluation orders; the one with the smaller sparse width is taken:
///   (a) G = A^T dY once (width f_out), dX = G W^T, dW = X^T G;
///   (b) dX = A^T (dY W^T) and dW = (A X)^T dY (width f_in each, only for the gradients requested).
/// A^T comes from the `propagator` (built once, no atomics), or is passed as a second CSR view
/// (the overload every policy takes). Nothing is taped: backward receives X.
///
/// Execution: every policy. Host (serial, openmp): dense products run as fixed row blocks of serial
/// GEMMs and reductions over rows add fixed-block partials in order, so serial, openmp{1} and
/// openmp{2} give the same bits; calls return when done. cuda (device views, `a_hat` a device CSR
/// view): the sparse products sum each output element's row in index order (no atomics), the dense
/// products are cuBLAS, bias and column sums are one functor each (graph/detail/portable.hpp);
/// asynchronous on the policy's stream, scratch allocated per call.
/// Errors: `dimension_mismatch` naming the operands; `invalid_argument` (debug checks) for a
/// malformed host A.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/spmm.hpp>
#include <cellkit/graph/detail/args.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/graph/detail/dense.hpp>
#include <cellkit/graph/detail/portable.hpp>
#include <cellkit/graph/propagate.hpp>

#include <optional>
#include <type_traits>

namespace cellkit::graph {

namespace detail {

template <class Policy, class T, class Index>
void host_gcn_forward(const Policy& policy, csr_view<const T, Index> a, matrix_view<const T> x, matrix_view<const T> w,
                      std::optional<vector_view<const T>> bias, matrix_view<T> y) {
  debug_check_csr("gcn_forward", "A_hat", a);
  const index_t f_in = x.cols();
  const index_t f_out = w.cols();
  if (f_out < f_in) {
    host_buffer<T> z(x.rows() * f_out, uninitialized);
    auto zv = z.as_matrix(x.rows(), f_out);
    blocked_gemm<Policy, T>(policy, x, w, zv, T(1), T(0));
    spmm(policy, a, matrix_view<const T>(zv), y);
  } else {
    host_buffer<T> z(a.rows() * f_in, uninitialized);
    auto zv = z.as_matrix(a.rows(), f_in);
    spmm(policy, a, x, zv);
    blocked_gemm<Policy, T>(policy, matrix_view<const T>(zv), w, y, T(1), T(0));
  }
  if (bias) add_row_vector(policy, *bias, y);
}

template <class Policy, class T, class Index>
void host_gcn_backward(const Policy& policy, csr_view<const T, Index> a, csr_view<const T, Index> at,
                       matrix_view<const T> x, matrix_view<const T> w, matrix_view<const T> dy,
                       std::optional<matrix_view<T>> dx, std::optional<matrix_view<T>> dw,
                       std::optional<vector_view<T>> db) {
  const index_t f_in = x.cols();
  const index_t f_out = w.cols();
  if (db) blocked_column_sums(policy, dy, *db, T(1), T(0));
  if (!dx && !dw) return;
  const index_t width_b = (dx ? f_in : 0) + (dw ? f_in : 0);
  if (f_out <= width_b) {
    // (a) G = A^T dY.
    host_buffer<T> g(x.rows() * f_out, uninitialized);
    auto gv = g.as_matrix(x.rows(), f_out);
    spmm(policy, at, dy, gv);
    if (dx) blocked_gemm<Policy, T>(policy, matrix_view<const T>(gv), w, *dx, T(1), T(0), true);
    if (dw) blocked_gemm_tn<Policy, T>(policy, x, matrix_view<const T>(gv), *dw, T(1), T(0));
  } else {
    host_buffer<T> p(a.rows() * f_in, uninitialized);
    auto pv = p.as_matrix(a.rows(), f_in);
    if (dx) {
      blocked_gemm<Policy, T>(policy, dy, w, pv, T(1), T(0), true);  // dY W^T
      spmm(policy, at, matrix_view<const T>(pv), *dx);
    }
    if (dw) {
      spmm(policy, a, x, pv);  // A X
      blocked_gemm_tn<Policy, T>(policy, matrix_view<const T>(pv), dy, *dw, T(1), T(0));
    }
  }
}

}  // namespace detail

/// Y = A_hat X W (+ b). See the file comment.
template <class Policy, class TA, class Index, class T, class Space>
void gcn_forward(const Policy& policy, csr_view<TA, Index, Space> a_hat, const_matrix_arg<T, Space> x,
                 const_matrix_arg<T, Space> w, optional_bias_arg<T, Space> bias, matrix_view<T, Space> y) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  static_assert(std::is_same_v<std::remove_const_t<TA>, T>, "gcn_forward: A_hat and Y must have the same element type");
  constexpr const char* fn = "gcn_forward";
  expect_shapes(a_hat.cols() == x.rows(), fn, "A_hat", a_hat.shape(), "X", x.shape(), "A_hat.cols must equal X.rows");
  expect_shapes(w.rows() == x.cols(), fn, "W", w.shape(), "X", x.shape(), "W.rows must equal X.cols");
  expect_shapes(y.rows() == a_hat.rows() && y.cols() == w.cols(), fn, "Y", y.shape(), "A_hat X W",
                {a_hat.rows(), w.cols()}, "Y must have the shape of A_hat X W");
  if (bias) expect_shapes(bias->size() == w.cols(), fn, "b", bias->shape(), "W", w.shape(), "one bias per column of W");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_gcn_forward(policy, csr_view<const T, Index, Space>(a_hat), x, w, bias, y);
  } else {
    detail::require_host_policy<Policy>();
    detail::host_gcn_forward(policy, csr_view<const T, Index>(a_hat), x, w, bias, y);
  }
}

/// `gcn_forward` with a propagator's A.
template <class Policy, class T, class Index>
void gcn_forward(const Policy& policy, const propagator<T, Index>& a_hat, const_matrix_arg<T> x, const_matrix_arg<T> w,
                 optional_bias_arg<T> bias, matrix_view<T> y) {
  gcn_forward(policy, a_hat.matrix(), x, w, bias, y);
}

/// `gcn_forward` with the best host policy.
template <class TA, class Index, class T>
void gcn_forward(csr_view<TA, Index> a_hat, const_matrix_arg<T> x, const_matrix_arg<T> w, optional_bias_arg<T> bias,
                 matrix_view<T> y) {
  gcn_forward(default_host_policy(), a_hat, x, w, bias, y);
}

/// Gradients of `gcn_forward` (see the file comment) with A_hat and its transpose given as CSR views
/// in the policy's memory space (every policy): dX (m x f_in), dW (f_in x f_out), db (f_out), each
/// optional and overwritten. `x` and `w` are the forward inputs, `dy` is dL/dY (n x f_out).
/// `a_hat_t` must be A_hat^T (its shape is checked, its entries are trusted).
template <class Policy, class TA, class Index, class Space, class T = std::remove_const_t<TA>>
void gcn_backward(const Policy& policy, csr_view<TA, Index, Space> a_hat, csr_view<TA, Index, Space> a_hat_t,
                  const_matrix_arg<T, Space> x, const_matrix_arg<T, Space> w, const_matrix_arg<T, Space> dy,
                  optional_matrix_out<T, Space> dx, optional_matrix_out<T, Space> dw,
                  optional_vector_out<T, Space> db) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "gcn_backward";
  const csr_view<const T, Index, Space> a(a_hat);
  const csr_view<const T, Index, Space> at(a_hat_t);
  expect_shapes(at.rows() == a.cols() && at.cols() == a.rows() && at.nnz() == a.nnz(), fn, "A_hat^T", at.shape(),
                "A_hat", a.shape(), "A_hat^T must be the transpose of A_hat (same nnz)");
  expect_shapes(a.cols() == x.rows(), fn, "A_hat", a.shape(), "X", x.shape(), "A_hat.cols must equal X.rows");
  expect_shapes(w.rows() == x.cols(), fn, "W", w.shape(), "X", x.shape(), "W.rows must equal X.cols");
  expect_shapes(dy.rows() == a.rows() && dy.cols() == w.cols(), fn, "dY", dy.shape(), "A_hat X W", {a.rows(), w.cols()},
                "dY must have the shape of Y");
  if (dx)
    expect_shapes(dx->rows() == x.rows() && dx->cols() == x.cols(), fn, "dX", dx->shape(), "X", x.shape(),
                  "dX must have the shape of X");
  if (dw)
    expect_shapes(dw->rows() == w.rows() && dw->cols() == w.cols(), fn, "dW", dw->shape(), "W", w.shape(),
                  "dW must have the shape of W");
  if (db) expect_shapes(db->size() == w.cols(), fn, "db", db->shape(), "W", w.shape(), "one bias per column of W");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_gcn_backward(policy, a, at, x, w, dy, dx, dw, db);
  } else {
    detail::require_host_policy<Policy>();
    detail::host_gcn_backward(policy, a, at, x, w, dy, dx, dw, db);
  }
}

/// Gradients of `gcn_forward` with A_hat^T from the propagator (host policies).
template <class Policy, class T, class Index>
void gcn_backward(const Policy& policy, const propagator<T, Index>& a_hat, const_matrix_arg<T> x, const_matrix_arg<T> w,
                  const_matrix_arg<T> dy, optional_matrix_out<T> dx, optional_matrix_out<T> dw,
                  optional_vector_out<T> db) {
  detail::require_host_policy<Policy>();
  gcn_backward(policy, a_hat.matrix(), a_hat.transpose(), x, w, dy, dx, dw, db);
}

/// `gcn_backward` with the best host policy.
template <class T, class Index>
void gcn_backward(const propagator<T, Index>& a_hat, const_matrix_arg<T> x, const_matrix_arg<T> w,
                  const_matrix_arg<T> dy, optional_matrix_out<T> dx, optional_matrix_out<T> dw,
                  optional_vector_out<T> db) {
  gcn_backward(default_host_policy(), a_hat, x, w, dy, dx, dw, db);
}

}  // namespace cellkit::graph
