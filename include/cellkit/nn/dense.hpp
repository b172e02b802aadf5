#pragma once
/// @file
/// Fully connected layer: `Y = X W (+ b)`, forward and backward (namespace `cellkit::nn`).
///
/// Shapes: X n x f_in (a mini-batch of n rows), W f_in x f_out (row-major, so a layer's weights are
/// read as "input feature i feeds output j with W(i, j)"; PyTorch's `Linear.weight` is W^T), b f_out
/// (optional), Y n x f_out.
///
/// Backward, given dY = dL/dY (no tape: the caller passes the X of the forward pass):
///
///     dX = dY W^T,    dW = X^T dY,    db_j = sum_i dY_ij
///
/// Each requested gradient is overwritten, or added to: `{.accumulate = true}` adds dW and db (a
/// layer used twice in one step, e.g. a noisy and a clean encoder pass), `{.accumulate_input =
/// true}` adds dX (several layers reading the same input, e.g. the mean, dispersion and dropout
/// heads of a count decoder).
///
/// Execution:
/// - host (serial, openmp): the products are cut into fixed row blocks of serial GEMMs and the
///   reductions over rows (dW, db) add fixed-block partials in order, so serial, openmp{1} and
///   openmp{n} give the same bits (execution/detail/host_blocks.hpp). Synchronous.
/// - cuda: cuBLAS GEMMs and an element-wise bias kernel on the policy's stream (asynchronous); db is
///   one thread per column summing its rows in order (deterministic).
/// Cost: forward 2 n f_in f_out flops; backward 2 n f_in f_out per weight/input gradient plus n f_out
/// for db. Scratch: host dW/db partials, at most 64 x f_in x f_out for very large n.
///
/// Errors: `dimension_mismatch` naming both operands and shapes (X/W inner sizes, Y, dY, b, and
/// every gradient's shape).
///
/// ## Example (a two-layer MLP step)
///
/// ```cpp
/// namespace nn = cellkit::nn;
/// nn::dense_forward(policy, x, w1, b1, h);                         // h = x w1 + b1
/// nn::activation_forward(policy, nn::relu{}, h, a);                // a = relu(h)
/// nn::dense_forward(policy, a, w2, b2, y);
/// // ... dL/dy into dy ...
/// nn::dense_backward(policy, a, w2, dy, da, dw2, db2);
/// nn::activation_backward(policy, nn::relu{}, h, a, da, dh);
/// nn::dense_backward(policy, x, w1, dh, std::nullopt, dw1, db1);   // no dX needed at the input
/// ```

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/detail/host_blocks.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/nn/detail/common.hpp>

#include <optional>
#include <type_traits>

namespace cellkit::nn {

/// Options of `dense_backward`.
struct dense_backward_params {
  /// Add dW and db to the outputs instead of overwriting them.
  bool accumulate = false;
  /// Add dX to its output instead of overwriting it.
  bool accumulate_input = false;
};

namespace detail {

template <class T, class Space>
struct add_bias_fn {
  matrix_view<T, Space> y;
  vector_view<const T, Space> b;
  CELLKIT_HD void operator()(index_t r, index_t c) const { y(r, c) += b[c]; }
};

template <class T, class Space>
struct column_sum_fn {
  matrix_view<const T, Space> x;
  vector_view<T, Space> out;
  T beta;
  CELLKIT_HD void operator()(index_t c) const {
    T s = T(0);
    for (index_t r = 0; r < x.rows(); ++r) s += x(r, c);
    out[c] = beta == T(0) ? s : s + beta * out[c];
  }
};

template <class T, class Space>
void check_dense_forward(matrix_view<const T, Space> x, matrix_view<const T, Space> w,
                         const std::optional<vector_view<const T, Space>>& b, matrix_view<T, Space> y) {
  constexpr const char* fn = "dense_forward";
  expect_shapes(x.cols() == w.rows(), fn, "X", x.shape(), "W", w.shape(), "X.cols must equal W.rows");
  expect_shapes(y.rows() == x.rows() && y.cols() == w.cols(), fn, "Y", y.shape(), "X W", {x.rows(), w.cols()},
                "Y must have the shape of X W");
  if (b) expect_shapes(b->size() == w.cols(), fn, "b", b->shape(), "W", w.shape(), "one bias per column of W");
}

}  // namespace detail

/// Y = X W (+ b). See the file comment.
template <class Policy, class T, class Space>
void dense_forward(const Policy& policy, const_matrix_arg<T, Space> x, const_matrix_arg<T, Space> w,
                   optional_vector_arg<T, Space> bias, matrix_view<T, Space> y) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  detail::check_dense_forward<T, Space>(x, w, bias, y);
  if (y.rows() == 0 || y.cols() == 0) return;
  if constexpr (is_host_policy_v<Policy>) {
    cellkit::detail::blocked_gemm<Policy, T>(policy, x, w, y, T(1), T(0));
  } else {
    gemm(policy, x, w, y);
  }
  if (bias) detail::for_each_element(policy, y.rows(), y.cols(), detail::add_bias_fn<T, Space>{y, *bias});
}

/// dX = dY W^T, dW = X^T dY, db = column sums of dY (each optional; overwritten, or accumulated with
/// `params.accumulate` / `params.accumulate_input`). See the file comment.
template <class Policy, class T, class Space>
void dense_backward(const Policy& policy, const_matrix_arg<T, Space> x, const_matrix_arg<T, Space> w,
                    matrix_view<const T, Space> dy, optional_matrix_out<T, Space> dx, optional_matrix_out<T, Space> dw,
                    optional_vector_out<T, Space> db, dense_backward_params params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "dense_backward";
  expect_shapes(x.cols() == w.rows(), fn, "X", x.shape(), "W", w.shape(), "X.cols must equal W.rows");
  expect_shapes(dy.rows() == x.rows() && dy.cols() == w.cols(), fn, "dY", dy.shape(), "X W", {x.rows(), w.cols()},
                "dY must have the shape of the forward output X W");
  if (dx)
    expect_shapes(dx->rows() == x.rows() && dx->cols() == x.cols(), fn, "dX", dx->shape(), "X", x.shape(),
                  "dX must have the shape of X");
  if (dw)
    expect_shapes(dw->rows() == w.rows() && dw->cols() == w.cols(), fn, "dW", dw->shape(), "W", w.shape(),
                  "dW must have the shape of W");
  if (db)
    expect_shapes(db->size() == w.cols(), fn, "db", db->shape(), "W", w.shape(), "one bias gradient per column of W");
  const T beta = params.accumulate ? T(1) : T(0);
  const T beta_input = params.accumulate_input ? T(1) : T(0);
  if constexpr (is_host_policy_v<Policy>) {
    if (dx) cellkit::detail::blocked_gemm<Policy, T>(policy, dy, w, *dx, T(1), beta_input, /*transpose_b=*/true);
    if (dw) cellkit::detail::blocked_gemm_tn<Policy, T>(policy, x, dy, *dw, T(1), beta);
    if (db) cellkit::detail::blocked_column_sums<Policy, T>(policy, dy, *db, T(1), beta);
  } else {
    if (dx) gemm(policy, dy, w, *dx, gemm_params<T>{.beta = beta_input, .transpose_b = true});
    if (dw) gemm(policy, x, dy, *dw, gemm_params<T>{.beta = beta, .transpose_a = true});
    if (db) for_each_index(policy, db->size(), detail::column_sum_fn<T, Space>{dy, *db, beta});
  }
}

/// Overload deducing T from a non-const dY.
template <class Policy, class T, class Space>
requires(!std::is_const_v<T>) void dense_backward(const Policy& policy, const_matrix_arg<T, Space> x,
                                                  const_matrix_arg<T, Space> w, matrix_view<T, Space> dy,
                                                  optional_matrix_out<T, Space> dx, optional_matrix_out<T, Space> dw,
                                                  optional_vector_out<T, Space> db, dense_backward_params params = {}) {
  dense_backward(policy, x, w, matrix_view<const T, Space>(dy), dx, dw, db, params);
}

}  // namespace cellkit::nn
