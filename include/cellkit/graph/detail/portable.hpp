#pragma once
/// @file
/// The graph layers written once for every policy (internal): CELLKIT_HD functors over
/// `for_each_index` and `cellkit::gemm`. The `cuda` policy runs these; the host policies have their
/// own tuned kernels (host_blocks.hpp, spmm.hpp) and run these only in the tests, which is how the
/// device code's arithmetic is checked on machines without a GPU.
///
/// Determinism: every output element is computed by one call of a functor that sums in a fixed
/// order (a CSR row's entries in index order, a column's rows in row order): no atomics, so a
/// device run gives the same bits every time. Dense products are `cellkit::gemm` (cuBLAS on the
/// device, whose default algorithms are deterministic for a fixed device and configuration).

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/functors.hpp>
#include <cellkit/core/detail/scratch.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>
#include <cellkit/execution/spmm.hpp>

#include <cmath>
#include <optional>
#include <utility>

namespace cellkit::graph::detail {

using cellkit::detail::axpby_fn;
using cellkit::detail::element_at;
using cellkit::detail::make_scratch;

/// y(i, j) = alpha sum_p a_ip x(idx_p, j) (+ beta y(i, j); y is not read when beta = 0): one
/// element per call, the row's entries in index order. Threads of a warp take consecutive j of one
/// row, so the reads of x and the writes of y are coalesced.
template <class T, class Index, class Space>
struct csr_product_fn {
  csr_view<const T, Index, Space> a;
  matrix_view<const T, Space> x;
  matrix_view<T, Space> y;
  T alpha;
  T beta;
  CELLKIT_HD void operator()(index_t e) const {
    const auto [i, j] = element_at(e, y.cols());
    T sum = T(0);
    for (auto p = static_cast<index_t>(a.indptr()[i]); p < static_cast<index_t>(a.indptr()[i + 1]); ++p)
      sum += a.values()[p] * x(static_cast<index_t>(a.indices()[p]), j);
    y(i, j) = beta == T(0) ? alpha * sum : alpha * sum + beta * y(i, j);
  }
};

/// y(i, j) += b(j).
template <class T, class Space>
struct add_row_vector_fn {
  vector_view<const T, Space> b;
  matrix_view<T, Space> y;
  CELLKIT_HD void operator()(index_t e) const {
    const auto [i, j] = element_at(e, y.cols());
    y(i, j) += b[j];
  }
};

/// out(j) = sum_i x(i, j), rows in order (one column per call).
template <class T, class Space>
struct column_sums_fn {
  matrix_view<const T, Space> x;
  vector_view<T, Space> out;
  CELLKIT_HD void operator()(index_t j) const {
    T sum = T(0);
    for (index_t i = 0; i < x.rows(); ++i) sum += x(i, j);
    out[j] = sum;
  }
};

/// dst(i, j) = src(i, j) (strides may differ).
template <class T, class Space>
struct copy_matrix_fn {
  matrix_view<const T, Space> src;
  matrix_view<T, Space> dst;
  CELLKIT_HD void operator()(index_t e) const {
    const auto [i, j] = element_at(e, dst.cols());
    dst(i, j) = src(i, j);
  }
};

template <class Policy, class T, class Index, class Space>
void portable_propagate(const Policy& policy, csr_view<const T, Index, Space> a, matrix_view<const T, Space> x,
                        matrix_view<T, Space> y, spmm_params<T> params = {}) {
  for_each_index(policy, y.rows() * y.cols(), csr_product_fn<T, Index, Space>{a, x, y, params.alpha, params.beta});
}

template <class Policy, class T, class Space>
void portable_add_row_vector(const Policy& policy, vector_view<const T, Space> b, matrix_view<T, Space> y) {
  for_each_index(policy, y.rows() * y.cols(), add_row_vector_fn<T, Space>{b, y});
}

template <class Policy, class T, class Space>
void portable_column_sums(const Policy& policy, matrix_view<const T, Space> x, vector_view<T, Space> out) {
  for_each_index(policy, x.cols(), column_sums_fn<T, Space>{x, out});
}

template <class Policy, class T, class Space>
void portable_copy(const Policy& policy, matrix_view<const T, Space> src, matrix_view<T, Space> dst) {
  for_each_index(policy, dst.rows() * dst.cols(), copy_matrix_fn<T, Space>{src, dst});
}

/// C = alpha op(A) op(B) + beta C with the policy's GEMM.
template <class Policy, class T, class Space>
void portable_gemm(const Policy& policy, matrix_view<const T, Space> a, matrix_view<const T, Space> b,
                   matrix_view<T, Space> c, T beta = T(0), bool transpose_a = false, bool transpose_b = false) {
  gemm(policy, a, b, c,
       gemm_params<T>{.alpha = T(1), .beta = beta, .transpose_a = transpose_a, .transpose_b = transpose_b});
}

/// gcn_forward's evaluation (shapes checked by the caller): the sparse product at the smaller width.
template <class Policy, class T, class Index, class Space>
void portable_gcn_forward(const Policy& policy, csr_view<const T, Index, Space> a, matrix_view<const T, Space> x,
                          matrix_view<const T, Space> w, std::optional<vector_view<const T, Space>> bias,
                          matrix_view<T, Space> y) {
  const index_t f_in = x.cols();
  const index_t f_out = w.cols();
  if (f_out < f_in) {
    auto z = make_scratch<T, Space>(x.rows() * f_out);
    auto zv = z.as_matrix(x.rows(), f_out);
    portable_gemm(policy, x, matrix_view<const T, Space>(w), zv);
    portable_propagate(policy, a, matrix_view<const T, Space>(zv), y);
  } else {
    auto z = make_scratch<T, Space>(a.rows() * f_in);
    auto zv = z.as_matrix(a.rows(), f_in);
    portable_propagate(policy, a, x, zv);
    portable_gemm(policy, matrix_view<const T, Space>(zv), w, y);
  }
  if (bias) portable_add_row_vector(policy, *bias, y);
}

/// gcn_backward's evaluation with A and A^T given (see gcn.hpp for the two orders).
template <class Policy, class T, class Index, class Space>
void portable_gcn_backward(const Policy& policy, csr_view<const T, Index, Space> a, csr_view<const T, Index, Space> at,
                           matrix_view<const T, Space> x, matrix_view<const T, Space> w, matrix_view<const T, Space> dy,
                           std::optional<matrix_view<T, Space>> dx, std::optional<matrix_view<T, Space>> dw,
                           std::optional<vector_view<T, Space>> db) {
  const index_t f_in = x.cols();
  const index_t f_out = w.cols();
  if (db) portable_column_sums(policy, dy, *db);
  if (!dx && !dw) return;
  const index_t width_b = (dx ? f_in : 0) + (dw ? f_in : 0);
  if (f_out <= width_b) {
    auto g = make_scratch<T, Space>(x.rows() * f_out);
    auto gv = g.as_matrix(x.rows(), f_out);
    portable_propagate(policy, at, dy, gv);
    const matrix_view<const T, Space> gc(gv);
    if (dx) portable_gemm(policy, gc, w, *dx, T(0), false, true);
    if (dw) portable_gemm(policy, x, gc, *dw, T(0), true, false);
  } else {
    auto p = make_scratch<T, Space>(a.rows() * f_in);
    auto pv = p.as_matrix(a.rows(), f_in);
    const matrix_view<const T, Space> pc(pv);
    if (dx) {
      portable_gemm(policy, dy, w, pv, T(0), false, true);  // dY W^T
      portable_propagate(policy, at, pc, *dx);
    }
    if (dw) {
      portable_propagate(policy, a, x, pv);  // A X
      portable_gemm(policy, pc, dy, *dw, T(0), true, false);
    }
  }
}

/// The hop basis H_k = A^k X, stacked by rows in `hops`.
template <class Policy, class T, class Index, class Space>
void portable_tagcn_hops(const Policy& policy, csr_view<const T, Index, Space> a, matrix_view<const T, Space> x,
                         matrix_view<T, Space> hops, index_t k) {
  const index_t n = x.rows();
  portable_copy(policy, x, hops.row_block(0, n));
  for (index_t h = 1; h <= k; ++h)
    portable_propagate(policy, a, matrix_view<const T, Space>(hops.row_block((h - 1) * n, n)),
                       hops.row_block(h * n, n));
}

/// tagcn_forward's evaluation: hops, then Y = sum_h H_h W_h (+ b).
template <class Policy, class T, class Index, class Space>
void portable_tagcn_forward(const Policy& policy, csr_view<const T, Index, Space> a, matrix_view<const T, Space> x,
                            matrix_view<const T, Space> w, std::optional<vector_view<const T, Space>> bias,
                            matrix_view<T, Space> y, matrix_view<T, Space> hops, index_t k) {
  const index_t n = x.rows();
  const index_t f_in = x.cols();
  portable_tagcn_hops(policy, a, x, hops, k);
  const matrix_view<const T, Space> hc(hops);
  for (index_t h = 0; h <= k; ++h)
    portable_gemm(policy, hc.row_block(h * n, n), w.row_block(h * f_in, f_in), y, h == 0 ? T(0) : T(1));
  if (bias) portable_add_row_vector(policy, *bias, y);
}

/// tagcn_backward's evaluation with A^T given (Horner or powers of dY, as tagcn.hpp describes).
template <class Policy, class T, class Index, class Space>
void portable_tagcn_backward(const Policy& policy, csr_view<const T, Index, Space> at, matrix_view<const T, Space> hops,
                             matrix_view<const T, Space> w, matrix_view<const T, Space> dy,
                             std::optional<matrix_view<T, Space>> dx, std::optional<matrix_view<T, Space>> dw,
                             std::optional<vector_view<T, Space>> db, index_t k) {
  const index_t n = hops.rows() / (k + 1);
  const index_t f_in = hops.cols();
  const index_t f_out = w.cols();
  if (db) portable_column_sums(policy, dy, *db);
  if (dw) {
    for (index_t h = 0; h <= k; ++h)
      portable_gemm(policy, hops.row_block(h * n, n), dy, dw->row_block(h * f_in, f_in), T(0), true, false);
  }
  if (!dx) return;
  auto w_block = [&](index_t h) { return w.row_block(h * f_in, f_in); };
  if (f_in <= f_out) {
    // Horner: G_K = dY W_K^T; G_h = A^T G_{h+1} + dY W_h^T; dX = G_0 (G_h in dX for even h).
    auto scratch = make_scratch<T, Space>(k > 0 ? n * f_in : 0);
    const matrix_view<T, Space> odd = k > 0 ? scratch.as_matrix(n, f_in) : *dx;
    auto slot = [&](index_t h) { return h % 2 == 0 ? *dx : odd; };
    portable_gemm(policy, dy, w_block(k), slot(k), T(0), false, true);
    for (index_t h = k - 1; h >= 0; --h) {
      portable_gemm(policy, dy, w_block(h), slot(h), T(0), false, true);
      portable_propagate(policy, at, matrix_view<const T, Space>(slot(h + 1)), slot(h), spmm_params<T>{T(1), T(1)});
    }
  } else {
    // Powers of dY: Q_0 = dY, Q_h = A^T Q_{h-1}; dX = sum_h Q_h W_h^T.
    auto scratch = make_scratch<T, Space>(k * n * f_out);
    auto q = [&](index_t h) {
      return h == 0 ? dy : matrix_view<const T, Space>(scratch.data() + (h - 1) * n * f_out, n, f_out);
    };
    for (index_t h = 1; h <= k; ++h)
      portable_propagate(policy, at, q(h - 1), matrix_view<T, Space>(scratch.data() + (h - 1) * n * f_out, n, f_out));
    for (index_t h = 0; h <= k; ++h) portable_gemm(policy, q(h), w_block(h), *dx, h == 0 ? T(0) : T(1), false, true);
  }
}

// ---------------------------------------------------------------------------------------------
// SGC and diffusion (sgc.hpp, diffusion.hpp)
// ---------------------------------------------------------------------------------------------

/// |a(i, j) - b(i, j)| in double.
template <class T, class Space>
struct abs_difference_fn {
  matrix_view<const T, Space> a;
  matrix_view<const T, Space> b;
  CELLKIT_HD double operator()(index_t e) const {
    const auto [i, j] = element_at(e, a.cols());
    const double d = static_cast<double>(a(i, j)) - static_cast<double>(b(i, j));
    return d < 0 ? -d : d;
  }
};

template <class Policy, class T, class Space>
void portable_axpby(const Policy& policy, T a, matrix_view<const T, Space> x, T b, matrix_view<T, Space> y) {
  for_each_index(policy, y.rows() * y.cols(), axpby_fn<T, Space>{a, x, b, y});
}

/// out = M^K X with one scratch (the host's power_apply); out may not alias x.
template <class Policy, class T, class Index, class Space>
void portable_power_apply(const Policy& policy, csr_view<const T, Index, Space> m, matrix_view<const T, Space> x,
                          matrix_view<T, Space> out, index_t k) {
  if (k == 0) {
    portable_copy(policy, x, out);
    return;
  }
  auto scratch = make_scratch<T, Space>(k >= 2 ? out.rows() * out.cols() : 0);
  const matrix_view<T, Space> other = k >= 2 ? matrix_view<T, Space>(scratch.data(), out.rows(), out.cols()) : out;
  matrix_view<const T, Space> previous = x;
  for (index_t s = 1; s <= k; ++s) {
    const matrix_view<T, Space> target = (k - s) % 2 == 0 ? out : other;
    portable_propagate(policy, m, previous, target);
    previous = target;
  }
}

/// sgc_backward's evaluation with A^T given: dX at the smaller of f_in and f_out.
template <class Policy, class T, class Index, class Space>
void portable_sgc_backward(const Policy& policy, csr_view<const T, Index, Space> at,
                           matrix_view<const T, Space> features, matrix_view<const T, Space> w,
                           matrix_view<const T, Space> dy, std::optional<matrix_view<T, Space>> dx,
                           std::optional<matrix_view<T, Space>> dw, std::optional<vector_view<T, Space>> db,
                           index_t k) {
  const index_t n = features.rows();
  const index_t f_in = features.cols();
  const index_t f_out = w.cols();
  if (db) portable_column_sums(policy, dy, *db);
  if (dw) portable_gemm(policy, features, dy, *dw, T(0), true, false);
  if (!dx) return;
  if (f_in <= f_out) {
    auto g = make_scratch<T, Space>(n * f_in);
    const matrix_view<T, Space> gv(g.data(), n, f_in);
    portable_gemm(policy, dy, w, gv, T(0), false, true);
    portable_power_apply(policy, at, matrix_view<const T, Space>(gv), *dx, k);
  } else {
    auto q = make_scratch<T, Space>(n * f_out);
    const matrix_view<T, Space> qv(q.data(), n, f_out);
    portable_power_apply(policy, at, dy, qv, k);
    portable_gemm(policy, matrix_view<const T, Space>(qv), w, *dx, T(0), false, true);
  }
}

/// One APPNP step: next = (1 - alpha) M prev + alpha H.
template <class Policy, class T, class Index, class Space>
void portable_appnp_step(const Policy& policy, csr_view<const T, Index, Space> m, matrix_view<const T, Space> prev,
                         matrix_view<const T, Space> h, matrix_view<T, Space> next, T alpha) {
  portable_axpby(policy, alpha, h, T(0), next);
  portable_propagate(policy, m, prev, next, spmm_params<T>{T(1) - alpha, T(1)});
}

/// K APPNP steps from Z_0 = H into z (the host's appnp_iterate).
template <class Policy, class T, class Index, class Space>
void portable_appnp(const Policy& policy, csr_view<const T, Index, Space> m, matrix_view<const T, Space> h,
                    matrix_view<T, Space> z, index_t k, T alpha) {
  if (k == 0) {
    portable_copy(policy, h, z);
    return;
  }
  auto scratch = make_scratch<T, Space>(k >= 2 ? z.rows() * z.cols() : 0);
  const matrix_view<T, Space> other = k >= 2 ? matrix_view<T, Space>(scratch.data(), z.rows(), z.cols()) : z;
  matrix_view<const T, Space> previous = h;
  for (index_t s = 1; s <= k; ++s) {
    const matrix_view<T, Space> target = (k - s) % 2 == 0 ? z : other;
    portable_appnp_step(policy, m, previous, h, target, alpha);
    previous = target;
  }
}

/// Personalised PageRank by power iteration (the host's loop); the change of each step is one
/// reduction (device: synchronises every step). Returns (iterations, last change).
template <class Policy, class T, class Index, class Space>
std::pair<index_t, double> portable_personalized_pagerank(const Policy& policy, csr_view<const T, Index, Space> m,
                                                          matrix_view<const T, Space> h, matrix_view<T, Space> z,
                                                          T alpha, index_t max_iter, T tol) {
  portable_copy(policy, h, z);
  auto scratch = make_scratch<T, Space>(z.rows() * z.cols());
  const matrix_view<T, Space> other(scratch.data(), z.rows(), z.cols());
  matrix_view<T, Space> current = z;
  index_t iterations = 0;
  double change = 0;
  for (index_t it = 0; it < max_iter; ++it) {
    const matrix_view<T, Space> next = current.data() == z.data() ? other : z;
    portable_appnp_step(policy, m, matrix_view<const T, Space>(current), h, next, alpha);
    change = transform_reduce(
        policy, z.rows() * z.cols(), 0.0, max_op{},
        abs_difference_fn<T, Space>{matrix_view<const T, Space>(next), matrix_view<const T, Space>(current)});
    iterations = it + 1;
    current = next;
    if (change <= static_cast<double>(tol)) break;
  }
  if (current.data() != z.data()) portable_copy(policy, matrix_view<const T, Space>(current), z);
  return {iterations, change};
}

/// Y = e^{-t} sum_{k=0..K} t^k / k! M^k X (the host's heat_diffusion, coefficients in double).
template <class Policy, class T, class Index, class Space>
void portable_heat_diffusion(const Policy& policy, csr_view<const T, Index, Space> m, matrix_view<const T, Space> x,
                             matrix_view<T, Space> y, T time, index_t terms) {
  const index_t n = x.rows(), f = x.cols();
  const double tt = static_cast<double>(time);
  double coefficient = std::exp(-tt);
  portable_axpby(policy, static_cast<T>(coefficient), x, T(0), y);
  auto scratch = make_scratch<T, Space>(terms >= 1 ? 2 * n * f : 0);
  matrix_view<const T, Space> previous = x;
  for (index_t k = 1; k <= terms; ++k) {
    const matrix_view<T, Space> term(scratch.data() + (k % 2) * n * f, n, f);
    portable_propagate(policy, m, previous, term);
    coefficient *= tt / static_cast<double>(k);
    portable_axpby(policy, static_cast<T>(coefficient), matrix_view<const T, Space>(term), T(1), y);
    previous = term;
  }
}

}  // namespace cellkit::graph::detail
