#pragma once
/// @file
/// Topology-adaptive graph convolution (TAGCN, Du et al. 2017; PyG's TAGConv):
/// `Y = sum_{k=0..K} (A_hat^k X) W_k (+ b)`, forward and backward.
///
/// Layouts (row-major, all `matrix_view`s may have a row stride):
/// - X: n x f_in. A_hat: n x n CSR (PyG's TAGConv uses `normalize(A, {symmetric, 0})`: no self-loops).
/// - W: (K+1) f_in x f_out, the K+1 matrices stacked by rows: W_k = rows [k f_in, (k+1) f_in).
///   (PyG: W_k = lins[k].weight^T.)
/// - b: f_out, optional (PyG's TAGConv has one bias for the layer).
/// - hops: (K+1) n x f_in, the **hop basis** H_k = A_hat^k X stacked by rows: H_k = rows
///   [k n, (k+1) n) (H_0 = X). Forward writes it; backward reads it (nothing is taped), and it can
///   be reused, e.g. by SGC-style precomputation. (Stacking by rows keeps each H_k contiguous, which
///   makes the row gathers of the sparse products 1.7x faster than side-by-side blocks.)
///
/// Forward: H_0 = X; H_k = A_hat H_{k-1} (K sparse products at width f_in); Y = sum_k H_k W_k + b
/// (per block of 256 rows, K+1 accumulating serial GEMMs).
/// Cost: 2 K nnz f_in + 2 n (K+1) f_in f_out flops; no scratch beyond `hops`.
///
/// Backward (dY given; each requested gradient is **overwritten**):
/// - dW_k = H_k^T dY (K+1 reductions over the rows).
/// - db = sum_i dY_i.
/// - dX = sum_k (A_hat^T)^k dY W_k^T, in whichever form has the smaller sparse width:
///   Horner (width f_in, when f_in <= f_out): G_K = dY W_K^T, G_k = A_hat^T G_{k+1} + dY W_k^T, dX = G_0;
///   powers of dY (width f_out, when f_out < f_in): Q_0 = dY, Q_k = A_hat^T Q_{k-1}, dX = sum_k Q_k W_k^T.
/// Cost: 2 K nnz min(f_in, f_out) + 4 n (K+1) f_in f_out flops; scratch n x f_in (Horner) or
/// K n x f_out (powers form), plus (K+1) f_in f_out x (n / 2048, at most 64) partial sums for dW. A_hat^T comes from
/// the `propagator` (built once; shared when A_hat is symmetric).
///
/// Execution: every policy. Host: sparse products are row-parallel in entry order; dense products
/// are fixed row blocks of serial GEMMs, reductions over rows add fixed-block partials in order:
/// serial, openmp{1} and openmp{2} give the same bits; calls return when done. cuda (device views):
/// the sparse products sum each output element's row in index order (no atomics), the dense ones
/// are cuBLAS, one GEMM per hop (graph/detail/portable.hpp); asynchronous on the policy's stream,
/// scratch allocated per call. The backward overload that takes A_hat and A_hat^T as CSR views
/// serves every policy; the `propagator` overload is for host policies.
/// Errors: `dimension_mismatch` naming the operands (W must have (K+1) f_in rows, hops (K+1) n
/// rows and f_in columns); `invalid_argument` for K < 0 and (debug checks) a malformed A_hat.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/spmm.hpp>
#include <cellkit/graph/detail/args.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/graph/detail/dense.hpp>
#include <cellkit/graph/detail/portable.hpp>
#include <cellkit/graph/gcn.hpp>
#include <cellkit/graph/propagate.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <type_traits>

namespace cellkit::graph {

struct tagcn_params {
  index_t hops = 3;  ///< K: the layer uses A_hat^0 .. A_hat^K
};

namespace detail {
template <class T, class Index, class Space>
void check_tagcn_common(const char* fn, const csr_view<const T, Index, Space>& a, index_t n, index_t f_in, shape2 w,
                        shape2 hops, index_t k) {
  CELLKIT_EXPECTS(k >= 0, fn, "params.hops", "K must be >= 0, got " + std::to_string(k));
  expect_shapes(a.rows() == n && a.cols() == n, fn, "A_hat", a.shape(), "X", {n, f_in},
                "A_hat must be n x n for n rows of X");
  expect_shapes(w.rows == (k + 1) * f_in, fn, "W", w, "(K+1) f_in x f_out", {(k + 1) * f_in, w.cols},
                "W stacks K+1 matrices of f_in rows");
  expect_shapes(hops.rows == (k + 1) * n && hops.cols == f_in, fn, "hops", hops, "(K+1) n x f_in", {(k + 1) * n, f_in},
                "hops stacks A_hat^k X for k = 0..K by rows");
}
}  // namespace detail

/// Writes the hop basis H_k = A_hat^k X (k = 0..K) into `hops` ((K+1) n x f_in, H_k = rows
/// [k n, (k+1) n)). Cost 2 K nnz f_in.
template <class Policy, class TA, class Index, class T, class Space>
void tagcn_hops(const Policy& policy, csr_view<TA, Index, Space> a_hat, const_matrix_arg<T, Space> x,
                matrix_view<T, Space> hops, tagcn_params params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  static_assert(std::is_same_v<std::remove_const_t<TA>, T>, "tagcn: A_hat and X must have the same element type");
  constexpr const char* fn = "tagcn_hops";
  const index_t k = params.hops;
  const index_t f_in = x.cols();
  CELLKIT_EXPECTS(k >= 0, fn, "params.hops", "K must be >= 0, got " + std::to_string(k));
  expect_shapes(a_hat.rows() == x.rows() && a_hat.cols() == x.rows(), fn, "A_hat", a_hat.shape(), "X", x.shape(),
                "A_hat must be n x n for n rows of X");
  expect_shapes(hops.rows() == (k + 1) * x.rows() && hops.cols() == f_in, fn, "hops", hops.shape(), "(K+1) n x f_in",
                {(k + 1) * x.rows(), f_in}, "hops stacks A_hat^k X for k = 0..K by rows");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_tagcn_hops(policy, csr_view<const T, Index, Space>(a_hat), x, hops, k);
  } else {
    detail::require_host_policy<Policy>();
    detail::debug_check_csr(fn, "A_hat", a_hat);
    csr_view<const T, Index> a(a_hat);
    const index_t n = x.rows();
    detail::copy_rows(policy, x, hops.row_block(0, n));
    for (index_t h = 1; h <= k; ++h) {
      spmm(policy, a, matrix_view<const T>(hops.row_block((h - 1) * n, n)), hops.row_block(h * n, n));
    }
  }
}

/// Y = sum_k (A_hat^k X) W_k (+ b), writing the hop basis. See the file comment.
template <class Policy, class TA, class Index, class T, class Space>
void tagcn_forward(const Policy& policy, csr_view<TA, Index, Space> a_hat, const_matrix_arg<T, Space> x,
                   const_matrix_arg<T, Space> w, optional_bias_arg<T, Space> bias, matrix_view<T, Space> y,
                   matrix_view<T, Space> hops, tagcn_params params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  static_assert(std::is_same_v<std::remove_const_t<TA>, T>, "tagcn: A_hat and Y must have the same element type");
  constexpr const char* fn = "tagcn_forward";
  const index_t n = x.rows();
  csr_view<const T, Index, Space> a(a_hat);
  detail::check_tagcn_common<T, Index, Space>(fn, a, n, x.cols(), w.shape(), hops.shape(), params.hops);
  expect_shapes(y.rows() == n && y.cols() == w.cols(), fn, "Y", y.shape(), "n x f_out", {n, w.cols()},
                "Y must have n rows and W's columns");
  if (bias) expect_shapes(bias->size() == w.cols(), fn, "b", bias->shape(), "W", w.shape(), "one bias per column of W");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_tagcn_forward(policy, a, x, w, bias, y, hops, params.hops);
  } else {
    tagcn_hops(policy, a, x, hops, params);
    // Y = sum_h H_h W_h per fixed block of rows (serial GEMMs: bits independent of the thread count).
    const index_t f_in = x.cols();
    const index_t b = detail::gemm_block_rows;
    detail::parallel_for(policy, (n + b - 1) / b, [&](index_t blk) {
      const index_t first = blk * b;
      const index_t count = std::min(b, n - first);
      for (index_t h = 0; h <= params.hops; ++h) {
        gemm(serial{}, matrix_view<const T>(hops).row_block(h * n + first, count), w.row_block(h * f_in, f_in),
             y.row_block(first, count), gemm_params<T>{.alpha = T(1), .beta = h == 0 ? T(0) : T(1)});
      }
    });
    if (bias) detail::add_row_vector(policy, *bias, y);
  }
}

/// `tagcn_forward` with a propagator's A.
template <class Policy, class T, class Index>
void tagcn_forward(const Policy& policy, const propagator<T, Index>& a_hat, const_matrix_arg<T> x,
                   const_matrix_arg<T> w, optional_bias_arg<T> bias, matrix_view<T> y, matrix_view<T> hops,
                   tagcn_params params = {}) {
  tagcn_forward(policy, a_hat.matrix(), x, w, bias, y, hops, params);
}

/// `tagcn_forward` with the best host policy.
template <class TA, class Index, class T>
void tagcn_forward(csr_view<TA, Index> a_hat, const_matrix_arg<T> x, const_matrix_arg<T> w, optional_bias_arg<T> bias,
                   matrix_view<T> y, matrix_view<T> hops, tagcn_params params = {}) {
  tagcn_forward(default_host_policy(), a_hat, x, w, bias, y, hops, params);
}

namespace detail {

/// The host evaluation of tagcn_backward (arguments checked by the caller).
template <class Policy, class T, class Index>
void host_tagcn_backward(const Policy& policy, csr_view<const T, Index> at, matrix_view<const T> hops,
                         matrix_view<const T> w, matrix_view<const T> dy, std::optional<matrix_view<T>> dx,
                         std::optional<matrix_view<T>> dw, std::optional<vector_view<T>> db, index_t k) {
  const index_t n = hops.rows() / (k + 1);
  const index_t f_in = hops.cols();
  const index_t f_out = w.cols();
  if (db) blocked_column_sums(policy, dy, *db, T(1), T(0));
  if (dw) {
    // dW_h = H_h^T dY for every h: per fixed chunk of rows one serial GEMM per hop (the dY chunk stays
    // in cache), then the chunk partials are added in chunk order.
    const index_t per = reduction_rows_per_block(n);
    const index_t chunks = std::max<index_t>(1, (n + per - 1) / per);
    const index_t size = f_in * f_out;
    host_buffer<T> partial(chunks * (k + 1) * size, uninitialized);
    parallel_for(
        policy, chunks,
        [&](index_t c) {
          const index_t first = c * per;
          const index_t count = std::min(per, n - first);
          for (index_t h = 0; h <= k; ++h) {
            gemm(serial{}, hops.row_block(h * n + first, count), dy.row_block(first, count),
                 matrix_view<T>(partial.data() + (c * (k + 1) + h) * size, f_in, f_out),
                 gemm_params<T>{.transpose_a = true});
          }
        },
        true);
    parallel_for(policy, (k + 1) * f_in, [&](index_t r) {
      T* out = dw->row_data(r);
      for (index_t j = 0; j < f_out; ++j) {
        T sum = partial[r * f_out + j];
        for (index_t c = 1; c < chunks; ++c) sum += partial[c * (k + 1) * size + r * f_out + j];
        out[j] = sum;
      }
    });
  }
  if (!dx) return;
  auto w_block = [&](index_t h) { return w.row_block(h * f_in, f_in); };  // W_h, f_in x f_out
  if (f_in <= f_out) {
    // Horner: G_K = dY W_K^T; G_h = A^T G_{h+1} + dY W_h^T; dX = G_0. G_h lives in dX for even h.
    host_buffer<T> scratch(k > 0 ? n * f_in : 0, uninitialized);
    matrix_view<T> odd = k > 0 ? scratch.as_matrix(n, f_in) : *dx;
    auto slot = [&](index_t h) { return h % 2 == 0 ? *dx : odd; };
    blocked_gemm<Policy, T>(policy, dy, w_block(k), slot(k), T(1), T(0), true);
    for (index_t h = k - 1; h >= 0; --h) {
      blocked_gemm<Policy, T>(policy, dy, w_block(h), slot(h), T(1), T(0), true);
      spmm(policy, at, matrix_view<const T>(slot(h + 1)), slot(h), spmm_params<T>{T(1), T(1)});
    }
  } else {
    // Powers of dY: Q_0 = dY, Q_h = A^T Q_{h-1} (stacked, K n x f_out); then per block of rows
    // dX = sum_h Q_h W_h^T with the dX block kept in cache.
    host_buffer<T> scratch(k * n * f_out, uninitialized);
    auto q = [&](index_t h) {
      return h == 0 ? dy : matrix_view<const T>(scratch.data() + (h - 1) * n * f_out, n, f_out);
    };
    for (index_t h = 1; h <= k; ++h) {
      spmm(policy, at, q(h - 1), matrix_view<T>(scratch.data() + (h - 1) * n * f_out, n, f_out));
    }
    const index_t b = gemm_block_rows;
    parallel_for(policy, (n + b - 1) / b, [&](index_t blk) {
      const index_t first = blk * b;
      const index_t count = std::min(b, n - first);
      for (index_t h = 0; h <= k; ++h) {
        gemm(serial{}, q(h).row_block(first, count), w_block(h), dx->row_block(first, count),
             gemm_params<T>{.alpha = T(1), .beta = h == 0 ? T(0) : T(1), .transpose_b = true});
      }
    });
  }
}

}  // namespace detail

/// Gradients of `tagcn_forward` with A_hat and its transpose given as CSR views in the policy's
/// memory space (every policy): dX (n x f_in), dW ((K+1) f_in x f_out), db (f_out), each optional
/// and overwritten. `hops` is the basis written by the forward pass, `w` the forward weights, `dy`
/// dL/dY (n x f_out). See the file comment for the two dX forms. `a_hat_t` must be A_hat^T (its
/// shape is checked, its entries are trusted).
template <class Policy, class TA, class Index, class Space, class T = std::remove_const_t<TA>>
void tagcn_backward(const Policy& policy, csr_view<TA, Index, Space> a_hat, csr_view<TA, Index, Space> a_hat_t,
                    const_matrix_arg<T, Space> hops, const_matrix_arg<T, Space> w, const_matrix_arg<T, Space> dy,
                    optional_matrix_out<T, Space> dx, optional_matrix_out<T, Space> dw,
                    optional_vector_out<T, Space> db, tagcn_params params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "tagcn_backward";
  const index_t k = params.hops;
  CELLKIT_EXPECTS(k >= 0, fn, "params.hops", "K must be >= 0, got " + std::to_string(k));
  CELLKIT_EXPECTS(hops.rows() % (k + 1) == 0, fn, "hops",
                  "has " + std::to_string(hops.rows()) + " rows, not a multiple of K+1 = " + std::to_string(k + 1));
  const index_t n = hops.rows() / (k + 1);
  const index_t f_in = hops.cols();
  const index_t f_out = w.cols();
  const csr_view<const T, Index, Space> a(a_hat);
  const csr_view<const T, Index, Space> at(a_hat_t);
  detail::check_tagcn_common<T, Index, Space>(fn, a, n, f_in, w.shape(), hops.shape(), k);
  expect_shapes(at.rows() == a.cols() && at.cols() == a.rows() && at.nnz() == a.nnz(), fn, "A_hat^T", at.shape(),
                "A_hat", a.shape(), "A_hat^T must be the transpose of A_hat (same nnz)");
  expect_shapes(dy.rows() == n && dy.cols() == f_out, fn, "dY", dy.shape(), "n x f_out", {n, f_out},
                "dY must have the shape of Y");
  if (dx)
    expect_shapes(dx->rows() == n && dx->cols() == f_in, fn, "dX", dx->shape(), "X", {n, f_in},
                  "dX must have the shape of X");
  if (dw)
    expect_shapes(dw->rows() == w.rows() && dw->cols() == f_out, fn, "dW", dw->shape(), "W", w.shape(),
                  "dW must have the shape of W");
  if (db) expect_shapes(db->size() == f_out, fn, "db", db->shape(), "W", w.shape(), "one bias per column of W");

  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_tagcn_backward(policy, at, hops, w, dy, dx, dw, db, k);
  } else {
    detail::require_host_policy<Policy>();
    detail::host_tagcn_backward(policy, csr_view<const T, Index>(at), hops, w, dy, dx, dw, db, k);
  }
}

/// Gradients of `tagcn_forward` with A_hat^T from the propagator (host policies).
template <class Policy, class T, class Index>
void tagcn_backward(const Policy& policy, const propagator<T, Index>& a_hat, const_matrix_arg<T> hops,
                    const_matrix_arg<T> w, const_matrix_arg<T> dy, optional_matrix_out<T> dx, optional_matrix_out<T> dw,
                    optional_vector_out<T> db, tagcn_params params = {}) {
  detail::require_host_policy<Policy>();
  tagcn_backward(policy, a_hat.matrix(), a_hat.transpose(), hops, w, dy, dx, dw, db, params);
}

/// `tagcn_backward` with the best host policy.
template <class T, class Index>
void tagcn_backward(const propagator<T, Index>& a_hat, const_matrix_arg<T> hops, const_matrix_arg<T> w,
                    const_matrix_arg<T> dy, optional_matrix_out<T> dx, optional_matrix_out<T> dw,
                    optional_vector_out<T> db, tagcn_params params = {}) {
  tagcn_backward(default_host_policy(), a_hat, hops, w, dy, dx, dw, db, params);
}

}  // namespace cellkit::graph
