#pragma once
/// @file
/// Graph normalisations for message passing: symmetric `D^-1/2 (A + w I) D^-1/2` (GCN), random walk
/// `D^-1 (A + w I)` (row-stochastic) and column `(A + w I) D_col^-1` (column-stochastic), with an
/// optional self-loop weight w, and the degrees they use.
///
/// | kind | entry (i, j) of the result | degree |
/// |---|---|---|
/// | `symmetric` | a_ij / sqrt(d_i d_j) | d_i = sum_j a_ij + w (row sums) |
/// | `random_walk` | a_ij / d_i | row sums |
/// | `column` | a_ij / c_j | c_j = sum_i a_ij + w (column sums) |
/// | `none` | a_ij | (only adds the self-loops) |
///
/// Here a_ij already includes the self-loop: A + w I adds w to an existing diagonal entry and
/// inserts (i, i) = w where there is none (PyG's `add_remaining_self_loops` instead keeps an existing
/// self-loop's weight; the two agree on graphs without self-loops). A node of degree 0 gets an all-zero
/// row (and column): 1/sqrt(0) and 1/0 are taken as 0, never inf or NaN.
/// The symmetric case is computed as a_ij * (s_i * s_j) with s = 1/sqrt(d), so a symmetric A gives a
/// bit-for-bit symmetric result. For symmetric A (with row sums = column sums) `symmetric` equals
/// PyG's `gcn_norm` (GCNConv: w = 1; TAGConv: w = 0).
///
/// Weights must be finite and >= 0 for `symmetric`, `random_walk` and `column` (`invalid_argument`
/// names the entry); `none` accepts any finite weight. Host policies, synchronous; deterministic (row sums in
/// entry order; column sums in one serial pass in row order). Cost O(n + nnz) time and memory.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/detail/common.hpp>

#include <cmath>
#include <string>
#include <type_traits>
#include <utility>

namespace cellkit::graph {

enum class normalization { none, symmetric, random_walk, column };

template <class T>
struct normalize_params {
  normalization kind = normalization::symmetric;
  T self_loop_weight = T(0);  ///< w in A + w I; 0 = no self-loops added
};

namespace detail {

/// 1/sqrt(d) (symmetric) or 1/d, with 0 for d == 0.
template <class T>
struct inverse_degree {
  const T* degree;
  T* inverse;
  bool square_root;
  CELLKIT_HD void operator()(index_t i) const {
    const T d = degree[i];
    inverse[i] = d > T(0) ? (square_root ? T(1) / std::sqrt(d) : T(1) / d) : T(0);
  }
};

/// Scales the entries of row i: symmetric a_ij * (s_i s_j); row a_ij * s_i; column a_ij * s_j.
template <class T, class Index>
struct scale_row {
  const Index* indptr;
  const Index* indices;
  T* values;
  const T* scale;
  normalization kind;
  CELLKIT_HD void operator()(index_t i) const {
    const index_t begin = static_cast<index_t>(indptr[i]);
    const index_t end = static_cast<index_t>(indptr[i + 1]);
    for (index_t p = begin; p < end; ++p) {
      const auto j = static_cast<index_t>(indices[p]);
      if (kind == normalization::symmetric) {
        values[p] = values[p] * (scale[i] * scale[j]);
      } else if (kind == normalization::random_walk) {
        values[p] = values[p] * scale[i];
      } else if (kind == normalization::column) {
        values[p] = values[p] * scale[j];
      }
    }
  }
};

/// Row sums of a CSR matrix, each in entry order.
template <class T, class Index>
struct row_sum {
  const Index* indptr;
  const T* values;
  T extra;
  T* out;
  CELLKIT_HD void operator()(index_t i) const {
    T s = T(0);
    for (index_t p = static_cast<index_t>(indptr[i]); p < static_cast<index_t>(indptr[i + 1]); ++p) s += values[p];
    out[i] = s + extra;
  }
};

/// A + w I as a new graph (w == 0: a copy). O(n + nnz).
template <class T, class Index>
csr_graph<T, Index> add_self_loops(csr_view<const T, Index> a, T w) {
  const index_t n = a.rows();
  if (w == T(0)) return csr_graph<T, Index>::from_view(a);
  host_buffer<Index> indptr(n + 1);
  index_t total = 0;
  for (index_t i = 0; i < n; ++i) {
    bool has_diagonal = false;
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) has_diagonal |= static_cast<index_t>(a.indices()[p]) == i;
    total += a.row_end(i) - a.row_begin(i) + (has_diagonal ? 0 : 1);
    indptr[i + 1] = static_cast<Index>(total);
  }
  host_buffer<Index> indices(total, uninitialized);
  host_buffer<T> values(total, uninitialized);
  index_t out = 0;
  for (index_t i = 0; i < n; ++i) {
    bool placed = false;
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) {
      const auto j = static_cast<index_t>(a.indices()[p]);
      if (!placed && j > i) {
        indices[out] = static_cast<Index>(i);
        values[out++] = w;
        placed = true;
      }
      indices[out] = a.indices()[p];
      values[out++] = j == i ? static_cast<T>(a.values()[p] + w) : a.values()[p];
      placed |= j == i;
    }
    if (!placed) {
      indices[out] = static_cast<Index>(i);
      values[out++] = w;
    }
  }
  return csr_graph<T, Index>(n, std::move(indptr), std::move(indices), std::move(values));
}

}  // namespace detail

/// d_i = sum_j a_ij + self_loop_weight (row sums, the degrees of `symmetric` and `random_walk`),
/// written to `out` (length n). Rows are summed in entry order: bits independent of the thread count.
/// Errors: `dimension_mismatch` when out's length differs from A's rows.
template <class Policy, class TA, class Index, class T>
void degrees(const Policy& policy, csr_view<TA, Index> a, vector_view<T> out, T self_loop_weight = T(0)) {
  detail::require_host_policy<Policy>();
  static_assert(std::is_same_v<std::remove_const_t<TA>, T>, "degrees: A and out must have the same element type");
  expect_shapes(out.size() == a.rows(), "degrees", "out", out.shape(), "A", a.shape(), "one degree per row of A");
  detail::debug_check_csr("degrees", "A", a);
  for_each_index(policy, a.rows(), detail::row_sum<T, Index>{a.indptr(), a.values(), self_loop_weight, out.data()});
}

/// The normalised graph (see the table in the file comment) as a new `csr_graph`; the structure is
/// A's, plus the diagonal when `self_loop_weight` != 0.
/// Errors: `dimension_mismatch` for non-square A; `invalid_argument` for a malformed structure, a
/// negative or non-finite weight (kinds other than none), or a negative / non-finite self-loop weight.
template <class Policy, class TA, class Index>
csr_graph<std::remove_const_t<TA>, Index> normalize(const Policy& policy, csr_view<TA, Index> a,
                                                    normalize_params<std::remove_const_t<TA>> params = {}) {
  detail::require_host_policy<Policy>();
  using T = std::remove_const_t<TA>;
  constexpr const char* fn = "normalize";
  detail::check_square(fn, "A", a);
  detail::check_csr(fn, "A", a);
  const bool allow_negative = params.kind == normalization::none;
  detail::check_weights(fn, "A", csr_view<const T, Index>(a), allow_negative);
  CELLKIT_EXPECTS(std::isfinite(static_cast<double>(params.self_loop_weight)) &&
                      (allow_negative || params.self_loop_weight >= T(0)),
                  fn, "self_loop_weight",
                  "must be finite and >= 0, got " + std::to_string(static_cast<double>(params.self_loop_weight)));
  auto g = detail::add_self_loops(csr_view<const T, Index>(a), params.self_loop_weight);
  if (params.kind == normalization::none) return g;
  const index_t n = g.num_nodes();
  auto view = g.view();
  host_buffer<T> degree(n);
  if (params.kind == normalization::column) {
    for (index_t p = 0; p < view.nnz(); ++p) degree[static_cast<index_t>(view.indices()[p])] += view.values()[p];
  } else {
    for_each_index(policy, n, detail::row_sum<T, Index>{view.indptr(), view.values(), T(0), degree.data()});
  }
  host_buffer<T> scale(n, uninitialized);
  for_each_index(policy, n,
                 detail::inverse_degree<T>{degree.data(), scale.data(), params.kind == normalization::symmetric});
  for_each_index(policy, n,
                 detail::scale_row<T, Index>{view.indptr(), view.indices(), view.values(), scale.data(), params.kind});
  return g;
}

/// `normalize` with the best host policy.
template <class TA, class Index>
csr_graph<std::remove_const_t<TA>, Index> normalize(csr_view<TA, Index> a,
                                                    normalize_params<std::remove_const_t<TA>> params = {}) {
  return normalize(default_host_policy(), a, params);
}

/// `normalize(policy, g.view(), params)`.
template <class Policy, class T, class Index>
csr_graph<T, Index> normalize(const Policy& policy, const csr_graph<T, Index>& g, normalize_params<T> params = {}) {
  return normalize(policy, g.view(), params);
}

}  // namespace cellkit::graph
