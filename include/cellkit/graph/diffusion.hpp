#pragma once
/// @file
/// Graph diffusion: APPNP / personalised PageRank propagation, heat-kernel diffusion, and exact
/// dense PPR with sparsification (graph diffusion convolution, GDC, Gasteiger et al. 2019).
///
/// With T a normalised adjacency (PyG's APPNP and GDC use `normalize(A, {symmetric, 1})`):
/// - `appnp`: Z_0 = H, Z_{t+1} = (1 - alpha) T Z_t + alpha H, K steps (PyG's APPNP(K, alpha)).
///   Z_K = ((1-alpha) T)^K H + alpha sum_{t<K} ((1-alpha) T)^t H, linear in H, so
///   `appnp_backward` is the same iteration with T^T applied to dZ (Horner form): dH = G_K with
///   G_0 = dZ, G_{t+1} = (1 - alpha) T^T G_t + alpha dZ.
/// - `personalized_pagerank`: the same iteration until max |Z_{t+1} - Z_t| <= tol (or max_iter);
///   converges to alpha (I - (1-alpha) T)^-1 H for spectral radius of T <= 1. Returns iterations and
///   the last change.
/// - `heat_diffusion`: Y = e^{-t} sum_{k=0..K} t^k / k! T^k X, the K-term truncation of
///   exp(-t (I - T)) X (error <= e^{-t} t^{K+1} / (K+1)! x sum of the tail, for ||T|| <= 1).
///   Linear in X: the gradient is heat_diffusion with T^T applied to dY.
/// - `ppr_matrix_dense`: S = alpha (I - (1-alpha) T)^-1 (n x n, Eigen LU in double; O(n^3) time,
///   O(n^2) memory: small graphs only), and `sparsify_topk` / `sparsify_threshold` (GDC): keep each
///   row's k largest entries (ties: lower column) or every entry >= eps, as a csr_graph. In cellkit's
///   convention (row i receives from j), per-row top-k is PyG GDC's `topk` with dim=0 applied to
///   its transposed dense matrix; follow with `normalize(..., {random_walk})` for GDC's
///   normalization_out='col'.
///
/// Costs: appnp / ppr 2 nnz f flops per step plus 3 n f, heat 2 K nnz f; scratch one or two n x f
/// buffers. Deterministic for every thread count. `appnp`, `appnp_backward` (T^T as a CSR view),
/// `personalized_pagerank` and `heat_diffusion` run under every policy: with `cuda` (device views)
/// the portable evaluation of detail/portable.hpp (deterministic CSR row sums, no atomics),
/// asynchronously except PPR's per-step change; host calls return when done. `ppr_matrix_dense`
/// (an n x n LU) and the sparsifiers are host algorithms.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/spmm.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/detail/args.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/graph/detail/dense.hpp>
#include <cellkit/graph/detail/portable.hpp>
#include <cellkit/graph/propagate.hpp>

#include <Eigen/Core>
#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::graph {

template <class T>
struct appnp_params {
  index_t hops = 10;  ///< K
  T alpha = T(0.1);   ///< teleport probability
};

template <class T>
struct ppr_params {
  T alpha = T(0.15);
  index_t max_iter = 100;
  T tol = T(1e-6);  ///< stop when max |Z_{t+1} - Z_t| <= tol
};

struct ppr_result {
  index_t iterations = 0;
  double change = 0;  ///< max |Z_{t+1} - Z_t| of the last step
};

template <class T>
struct heat_params {
  T t = T(5);          ///< diffusion time
  index_t terms = 10;  ///< K: powers T^0 .. T^K
};

namespace detail {

template <class T, class Index, class Space>
void check_square_operator(const char* fn, const csr_view<const T, Index, Space>& a, shape2 x, shape2 y) {
  expect_shapes(a.rows() == a.cols() && a.cols() == x.rows, fn, "T", a.shape(), "H", x,
                "T must be n x n for n rows of the input");
  expect_shapes(y.rows == x.rows && y.cols == x.cols, fn, "output", y, "input", x, "output has the input's shape");
}

/// Z <- (1 - alpha) M Z_prev + alpha H, one step, into `next` (parallel over rows).
template <class Policy, class T, class Index>
void appnp_step(const Policy& policy, csr_view<const T, Index> m, matrix_view<const T> prev, matrix_view<const T> h,
                matrix_view<T> next, T alpha) {
  const index_t f = h.cols();
  parallel_for(policy, h.rows(), [&](index_t i) {
    const T* src = h.row_data(i);
    T* dst = next.row_data(i);
    for (index_t j = 0; j < f; ++j) dst[j] = alpha * src[j];
  });
  spmm(policy, m, prev, next, spmm_params<T>{T(1) - alpha, T(1)});
}

template <class Policy, class T, class Index>
void appnp_iterate(const Policy& policy, csr_view<const T, Index> m, matrix_view<const T> h, matrix_view<T> z,
                   index_t k, T alpha) {
  if (k == 0) {
    copy_rows(policy, h, z);
    return;
  }
  host_buffer<T> scratch(k >= 2 ? z.rows() * z.cols() : 0, uninitialized);
  matrix_view<T> other = k >= 2 ? scratch.as_matrix(z.rows(), z.cols()) : z;
  matrix_view<const T> previous = h;
  for (index_t s = 1; s <= k; ++s) {
    matrix_view<T> target = (k - s) % 2 == 0 ? z : other;
    appnp_step(policy, m, previous, h, target, alpha);
    previous = target;
  }
}

template <class T>
void check_alpha(const char* fn, T alpha) {
  CELLKIT_EXPECTS(alpha >= T(0) && alpha <= T(1), fn, "params.alpha",
                  "must be in [0, 1], got " + std::to_string(static_cast<double>(alpha)));
}

}  // namespace detail

/// Z = APPNP propagation of H (see the file comment). Z must not alias H. Every policy.
template <class Policy, class TA, class Index, class T, class Space>
void appnp(const Policy& policy, csr_view<TA, Index, Space> t, const_matrix_arg<T, Space> h, matrix_view<T, Space> z,
           appnp_params<T> params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "appnp";
  csr_view<const T, Index, Space> m(t);
  detail::check_square_operator(fn, m, h.shape(), z.shape());
  CELLKIT_EXPECTS(params.hops >= 0, fn, "params.hops", "K must be >= 0, got " + std::to_string(params.hops));
  detail::check_alpha(fn, params.alpha);
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_appnp(policy, m, h, z, params.hops, params.alpha);
  } else {
    detail::require_host_policy<Policy>();
    detail::debug_check_csr(fn, "T", m);
    detail::appnp_iterate(policy, m, h, z, params.hops, params.alpha);
  }
}

/// `appnp` with a propagator's matrix.
template <class Policy, class T, class Index>
void appnp(const Policy& policy, const propagator<T, Index>& t, const_matrix_arg<T> h, matrix_view<T> z,
           appnp_params<T> params = {}) {
  appnp(policy, t.matrix(), h, z, params);
}

/// dH from dZ for `appnp` (overwritten): the iteration with T^T, given as a CSR view in the
/// policy's memory space (every policy).
template <class Policy, class TA, class Index, class T, class Space>
void appnp_backward(const Policy& policy, csr_view<TA, Index, Space> t_transpose, const_matrix_arg<T, Space> dz,
                    matrix_view<T, Space> dh, appnp_params<T> params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "appnp_backward";
  csr_view<const T, Index, Space> mt(t_transpose);
  detail::check_square_operator(fn, mt, dz.shape(), dh.shape());
  CELLKIT_EXPECTS(params.hops >= 0, fn, "params.hops", "K must be >= 0, got " + std::to_string(params.hops));
  detail::check_alpha(fn, params.alpha);
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_appnp(policy, mt, dz, dh, params.hops, params.alpha);
  } else {
    detail::require_host_policy<Policy>();
    detail::appnp_iterate(policy, mt, dz, dh, params.hops, params.alpha);
  }
}

/// `appnp_backward` with T^T from the propagator (host policies).
template <class Policy, class T, class Index>
void appnp_backward(const Policy& policy, const propagator<T, Index>& t, const_matrix_arg<T> dz, matrix_view<T> dh,
                    appnp_params<T> params = {}) {
  detail::require_host_policy<Policy>();
  appnp_backward(policy, t.transpose(), dz, dh, params);
}

/// Personalised PageRank by power iteration from Z_0 = H (see the file comment). Every policy
/// (cuda: one reduction per step for the change, which synchronises the stream each step).
template <class Policy, class TA, class Index, class T, class Space>
ppr_result personalized_pagerank(const Policy& policy, csr_view<TA, Index, Space> t, const_matrix_arg<T, Space> h,
                                 matrix_view<T, Space> z, ppr_params<T> params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "personalized_pagerank";
  csr_view<const T, Index, Space> m(t);
  detail::check_square_operator(fn, m, h.shape(), z.shape());
  detail::check_alpha(fn, params.alpha);
  CELLKIT_EXPECTS(params.max_iter >= 0, fn, "params.max_iter", "must be >= 0");
  CELLKIT_EXPECTS(params.tol >= T(0), fn, "params.tol", "must be >= 0");
  if constexpr (is_device_policy_v<Policy>) {
    const auto [iterations, change] =
        detail::portable_personalized_pagerank(policy, m, h, z, params.alpha, params.max_iter, params.tol);
    return ppr_result{iterations, change};
  } else {
    detail::require_host_policy<Policy>();
    detail::debug_check_csr(fn, "T", m);
    detail::copy_rows(policy, h, z);
    host_buffer<T> scratch(z.rows() * z.cols(), uninitialized);
    auto other = scratch.as_matrix(z.rows(), z.cols());
    ppr_result result;
    matrix_view<T> current = z;
    std::vector<double> row_change(static_cast<std::size_t>(z.rows()));
    for (index_t it = 0; it < params.max_iter; ++it) {
      matrix_view<T> next = (current.data() == z.data()) ? other : z;
      detail::appnp_step(policy, m, matrix_view<const T>(current), h, next, params.alpha);
      detail::parallel_for(policy, z.rows(), [&](index_t i) {
        double c = 0;
        for (index_t j = 0; j < z.cols(); ++j)
          c = std::max(c, std::fabs(static_cast<double>(next(i, j)) - static_cast<double>(current(i, j))));
        row_change[static_cast<std::size_t>(i)] = c;
      });
      result.iterations = it + 1;
      result.change = row_change.empty() ? 0.0 : *std::max_element(row_change.begin(), row_change.end());
      current = next;
      if (result.change <= static_cast<double>(params.tol)) break;
    }
    if (current.data() != z.data()) detail::copy_rows(policy, matrix_view<const T>(current), z);
    return result;
  }
}

/// Y = e^{-t} sum_{k=0..K} t^k / k! T^k X (see the file comment). Y must not alias X. Every policy.
template <class Policy, class TA, class Index, class T, class Space>
void heat_diffusion(const Policy& policy, csr_view<TA, Index, Space> t, const_matrix_arg<T, Space> x,
                    matrix_view<T, Space> y, heat_params<T> params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "heat_diffusion";
  csr_view<const T, Index, Space> m(t);
  detail::check_square_operator(fn, m, x.shape(), y.shape());
  CELLKIT_EXPECTS(params.terms >= 0, fn, "params.terms", "K must be >= 0, got " + std::to_string(params.terms));
  CELLKIT_EXPECTS(params.t >= T(0) && std::isfinite(static_cast<double>(params.t)), fn, "params.t",
                  "must be finite and >= 0");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_heat_diffusion(policy, m, x, y, params.t, params.terms);
    return;
  } else {
    detail::require_host_policy<Policy>();
    detail::debug_check_csr(fn, "T", m);
    const index_t n = x.rows(), f = x.cols();
    const double tt = static_cast<double>(params.t);
    double coefficient = std::exp(-tt);
    detail::parallel_for(policy, n, [&](index_t i) {
      for (index_t j = 0; j < f; ++j) y(i, j) = static_cast<T>(coefficient) * x(i, j);
    });
    host_buffer<T> scratch(params.terms >= 1 ? 2 * n * f : 0, uninitialized);
    matrix_view<const T> previous = x;
    for (index_t k = 1; k <= params.terms; ++k) {
      matrix_view<T> term(scratch.data() + (k % 2) * n * f, n, f);
      spmm(policy, m, previous, term);
      coefficient *= tt / static_cast<double>(k);
      const T c = static_cast<T>(coefficient);
      detail::parallel_for(policy, n, [&](index_t i) {
        for (index_t j = 0; j < f; ++j) y(i, j) += c * term(i, j);
      });
      previous = term;
    }
  }
}

/// S = alpha (I - (1 - alpha) T)^-1 as a dense n x n row-major buffer (double LU). O(n^3).
template <class Policy, class TA, class Index>
host_buffer<std::remove_const_t<TA>> ppr_matrix_dense(const Policy& policy, csr_view<TA, Index> t,
                                                      std::remove_const_t<TA> alpha) {
  detail::require_host_policy<Policy>();
  (void)policy;
  using T = std::remove_const_t<TA>;
  constexpr const char* fn = "ppr_matrix_dense";
  detail::check_square(fn, "T", t);
  detail::check_csr(fn, "T", t);
  CELLKIT_EXPECTS(alpha > T(0) && alpha <= T(1), fn, "alpha",
                  "must be in (0, 1], got " + std::to_string(static_cast<double>(alpha)));
  const index_t n = t.rows();
  using dense = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  dense m = dense::Identity(n, n);
  for (index_t i = 0; i < n; ++i)
    for (index_t p = t.row_begin(i); p < t.row_end(i); ++p)
      m(i, static_cast<index_t>(t.indices()[p])) -=
          (1.0 - static_cast<double>(alpha)) * static_cast<double>(t.values()[p]);
  dense s = Eigen::PartialPivLU<dense>(m).solve(dense::Identity(n, n)) * static_cast<double>(alpha);
  host_buffer<T> out(n * n, uninitialized);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) out[i * n + j] = static_cast<T>(s(i, j));
  return out;
}

/// Keeps the k largest entries of each row of a dense n x n matrix (ties: lower column), sorted by
/// column, as a csr_graph. Errors: k outside [0, n], a non-square shape.
template <class Index = std::int32_t, class TS>
csr_graph<std::remove_const_t<TS>, Index> sparsify_topk(matrix_view<TS> s, index_t k) {
  using T = std::remove_const_t<TS>;
  constexpr const char* fn = "sparsify_topk";
  expect_shapes(s.rows() == s.cols(), fn, "S", s.shape(), "S", s.shape(), "a dense diffusion matrix is square");
  CELLKIT_EXPECTS(k >= 0 && k <= s.cols(), fn, "k", "must be in [0, n], got " + std::to_string(k));
  const index_t n = s.rows();
  host_buffer<Index> indptr(n + 1), indices(n * k, uninitialized);
  host_buffer<T> values(n * k, uninitialized);
  std::vector<index_t> order(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    for (index_t j = 0; j < n; ++j) order[static_cast<std::size_t>(j)] = j;
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](index_t a, index_t b) { return s(i, a) > s(i, b) || (s(i, a) == s(i, b) && a < b); });
    std::sort(order.begin(), order.begin() + k);
    for (index_t p = 0; p < k; ++p) {
      indices[i * k + p] = static_cast<Index>(order[static_cast<std::size_t>(p)]);
      values[i * k + p] = s(i, order[static_cast<std::size_t>(p)]);
    }
    indptr[i + 1] = static_cast<Index>((i + 1) * k);
  }
  return csr_graph<T, Index>(n, std::move(indptr), std::move(indices), std::move(values));
}

/// Keeps every entry >= eps of a dense n x n matrix as a csr_graph.
template <class Index = std::int32_t, class TS>
csr_graph<std::remove_const_t<TS>, Index> sparsify_threshold(matrix_view<TS> s, std::remove_const_t<TS> eps) {
  using T = std::remove_const_t<TS>;
  constexpr const char* fn = "sparsify_threshold";
  expect_shapes(s.rows() == s.cols(), fn, "S", s.shape(), "S", s.shape(), "a dense diffusion matrix is square");
  CELLKIT_EXPECTS(std::isfinite(static_cast<double>(eps)), fn, "eps", "must be finite");
  const index_t n = s.rows();
  std::vector<Index> rows, cols;
  std::vector<T> vals;
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j)
      if (s(i, j) >= eps) {
        rows.push_back(static_cast<Index>(i));
        cols.push_back(static_cast<Index>(j));
        vals.push_back(s(i, j));
      }
  return csr_graph<T, Index>::from_edges(n, rows, cols, vals);
}

}  // namespace cellkit::graph
