#pragma once
/// @file
/// `cellkit::graph::csr_graph<T, Index>`: an owning weighted graph stored as a square CSR adjacency
/// matrix, and the structural operations every other graph header builds on: transpose,
/// symmetrisation, symmetry test, and conversions to and from views and Eigen sparse matrices.
/// (Boost.Graph conversions and connected components are in `cellkit/graph/boost_graph.hpp`, so that
/// this header does not require Boost.)
///
/// Convention (all of cellkit::graph): entry (i, j) with weight w is the edge along which node i
/// receives from node j, so `Y = A X` gives `y_i = sum_j a_ij x_j`. A PyTorch Geometric `edge_index`
/// (source, target) with the default flow "source_to_target" is the CSR with rows = targets and
/// columns = sources. Undirected graphs store both (i, j) and (j, i).
///
/// All functions are host-only (policies `serial` and `openmp`), return when done, and are
/// deterministic: results are the same bits for every thread count.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/graph/detail/transpose.hpp>

#include <Eigen/SparseCore>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::graph {

/// An owning weighted graph on `num_nodes()` nodes: a square `csr_matrix<T, Index>` whose row i holds
/// the neighbours j of node i (sorted, unique) and the weights a_ij. Move-only, like csr_matrix.
/// Every constructor establishes the CSR invariants (see `cellkit::validate`) and squareness.
template <class T, class Index = std::int32_t>
class csr_graph {
  static_assert(std::is_floating_point_v<T>, "csr_graph: T must be float or double");

 public:
  using value_type = T;
  using index_type = Index;

  /// A graph without nodes.
  csr_graph() = default;
  /// `num_nodes` nodes, no edges. O(num_nodes).
  explicit csr_graph(index_t num_nodes) : adjacency_(num_nodes, num_nodes) {}
  /// Takes ownership of a square CSR matrix (no copy). Throws `dimension_mismatch` unless square.
  explicit csr_graph(csr_matrix<T, Index>&& adjacency) : adjacency_(std::move(adjacency)) {
    expect_shapes(adjacency_.rows() == adjacency_.cols(), "csr_graph", "adjacency", adjacency_.shape(), "adjacency",
                  adjacency_.shape(), "a graph's adjacency must be square");
  }
  /// Takes ownership of CSR arrays for `num_nodes` nodes; validated as `csr_matrix` does (O(n + nnz)).
  csr_graph(index_t num_nodes, host_buffer<Index> indptr, host_buffer<Index> indices, host_buffer<T> weights)
      : adjacency_(num_nodes, num_nodes, std::move(indptr), std::move(indices), std::move(weights)) {}

  /// A copy of a square CSR view. Checks the structure (O(n + nnz)); `invalid_argument` names the
  /// first bad row, `dimension_mismatch` a non-square view.
  static csr_graph from_view(csr_view<const T, Index> a) {
    detail::check_square("csr_graph::from_view", "a", a);
    detail::check_csr("csr_graph::from_view", "a", a);
    host_buffer<Index> indptr(a.rows() + 1, uninitialized);
    host_buffer<Index> indices(a.nnz(), uninitialized);
    host_buffer<T> values(a.nnz(), uninitialized);
    std::copy(a.indptr(), a.indptr() + a.rows() + 1, indptr.begin());
    std::copy(a.indices(), a.indices() + a.nnz(), indices.begin());
    std::copy(a.values(), a.values() + a.nnz(), values.begin());
    return csr_graph(a.rows(), std::move(indptr), std::move(indices), std::move(values));
  }

  /// A graph from edges (row i = receiving node, column j), in any order; **duplicates are summed**
  /// (as `csr_matrix::from_triplets`). O(E log d + n).
  static csr_graph from_edges(index_t num_nodes, std::span<const Index> rows, std::span<const Index> cols,
                              std::span<const T> weights) {
    return csr_graph(csr_matrix<T, Index>::from_triplets(num_nodes, num_nodes, rows, cols, weights));
  }

  index_t num_nodes() const { return adjacency_.rows(); }
  /// Stored entries (an undirected edge counts twice, a self-loop once).
  index_t num_edges() const { return adjacency_.nnz(); }
  /// Stored neighbours of node i.
  index_t degree(index_t i) const {
    return static_cast<index_t>(adjacency_.indptr()[i + 1]) - static_cast<index_t>(adjacency_.indptr()[i]);
  }

  csr_view<T, Index> view() { return adjacency_.view(); }
  csr_view<const T, Index> view() const { return adjacency_.view(); }
  const csr_matrix<T, Index>& matrix() const { return adjacency_; }
  /// Gives up the matrix (the graph is left without nodes).
  csr_matrix<T, Index> release() && { return std::move(adjacency_); }

  vector_view<const Index> indptr() const { return adjacency_.indptr(); }
  vector_view<const Index> indices() const { return adjacency_.indices(); }
  vector_view<const T> weights() const { return adjacency_.values(); }
  vector_view<T> weights() { return adjacency_.values(); }

  /// An explicit deep copy (O(n + nnz)).
  csr_graph clone() const { return from_view(view()); }

 private:
  csr_matrix<T, Index> adjacency_;
};

// ---------------------------------------------------------------------------------------------------
// transpose

/// A^T as a new matrix (rectangular allowed): O(rows + cols + nnz), one stable counting sort, so
/// each row of the result is sorted. Checks A's structure first (`invalid_argument` naming "a").
template <class Policy, class T, class Index>
csr_matrix<std::remove_const_t<T>, Index> transpose(const Policy& policy, csr_view<T, Index> a) {
  detail::require_host_policy<Policy>();
  (void)policy;
  using V = std::remove_const_t<T>;
  detail::check_csr("transpose", "a", a);
  auto map = detail::build_transpose_map(a);
  host_buffer<V> values(map.nnz(), uninitialized);
  for (index_t q = 0; q < map.nnz(); ++q) values[q] = a.values()[static_cast<index_t>(map.source[q])];
  return csr_matrix<V, Index>(map.rows, map.cols, std::move(map.indptr), std::move(map.indices), std::move(values));
}

/// The reversed graph (every edge i <- j becomes j <- i).
template <class Policy, class T, class Index>
csr_graph<T, Index> transpose(const Policy& policy, const csr_graph<T, Index>& g) {
  return csr_graph<T, Index>(transpose(policy, g.view()));
}

/// `transpose` with the best host policy.
template <class T, class Index>
csr_matrix<std::remove_const_t<T>, Index> transpose(csr_view<T, Index> a) {
  return transpose(default_host_policy(), a);
}

/// True when A is square and a_ij == a_ji for every stored entry, up to |a_ij - a_ji| <= tolerance
/// (an entry missing on one side counts as 0). O(nnz log d). Checks the structure first.
template <class T, class Index>
bool is_symmetric(csr_view<T, Index> a, double tolerance = 0.0) {
  detail::check_csr("is_symmetric", "a", a);
  if (a.rows() != a.cols()) return false;
  for (index_t i = 0; i < a.rows(); ++i) {
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) {
      const auto j = static_cast<index_t>(a.indices()[p]);
      const Index* first = a.indices() + a.row_begin(j);
      const Index* last = a.indices() + a.row_end(j);
      const Index* it = std::lower_bound(first, last, static_cast<Index>(i));
      const double other = (it != last && static_cast<index_t>(*it) == i)
                               ? static_cast<double>(a.values()[a.row_begin(j) + (it - first)])
                               : 0.0;
      if (!(std::fabs(static_cast<double>(a.values()[p]) - other) <= tolerance)) return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------
// symmetrisation

/// How `symmetrize` combines a_ij and a_ji (a missing entry is "absent", not 0, for max/min).
enum class symmetrize_mode {
  max,                 ///< union: max(a_ij, a_ji); an entry present on one side only is kept
  sum,                 ///< A + A^T
  mean,                ///< (A + A^T) / 2
  fuzzy_union,         ///< a + b - a b (UMAP's fuzzy set union; a missing side is 0)
  min,                 ///< mutual: only pairs present both ways, min(a_ij, a_ji)
  fuzzy_intersection,  ///< mutual: only pairs present both ways, a_ij a_ji
};

namespace detail {
template <class T>
inline T combine_symmetric(symmetrize_mode mode, bool has_a, T a, bool has_b, T b) {
  switch (mode) {
    case symmetrize_mode::max:
      return has_a && has_b ? std::max(a, b) : (has_a ? a : b);
    case symmetrize_mode::sum:
      return (has_a ? a : T(0)) + (has_b ? b : T(0));
    case symmetrize_mode::mean:
      return ((has_a ? a : T(0)) + (has_b ? b : T(0))) / T(2);
    case symmetrize_mode::fuzzy_union: {
      const T x = has_a ? a : T(0);
      const T y = has_b ? b : T(0);
      return x + y - x * y;
    }
    case symmetrize_mode::min:
      return std::min(a, b);
    case symmetrize_mode::fuzzy_intersection:
      return a * b;
  }
  return T(0);
}
inline bool symmetrize_keeps_one_sided(symmetrize_mode mode) {
  return mode != symmetrize_mode::min && mode != symmetrize_mode::fuzzy_intersection;
}
}  // namespace detail

/// A symmetric graph from a square A: row i is the merge of row i of A and row i of A^T, combined by
/// `mode`. Union modes (max, sum, mean, fuzzy_union) keep pairs present on either side; mutual modes
/// (min, fuzzy_intersection) keep pairs present on both. Diagonal entries combine with themselves
/// (sum doubles them). Cost O(n + nnz) time and memory, parallel over rows; deterministic.
/// Errors: `dimension_mismatch` for a non-square A, `invalid_argument` for a malformed structure.
template <class Policy, class T, class Index>
csr_graph<std::remove_const_t<T>, Index> symmetrize(const Policy& policy, csr_view<T, Index> a,
                                                    symmetrize_mode mode = symmetrize_mode::max) {
  detail::require_host_policy<Policy>();
  using V = std::remove_const_t<T>;
  constexpr const char* fn = "symmetrize";
  detail::check_square(fn, "a", a);
  detail::check_csr(fn, "a", a);
  const index_t n = a.rows();
  const auto t = detail::build_transpose_map(a);
  const bool one_sided = detail::symmetrize_keeps_one_sided(mode);
  // Walks row i of A and of A^T in merged column order, calling emit(column, value).
  auto merge_row = [&](index_t i, auto&& emit) {
    index_t p = a.row_begin(i);
    const index_t pe = a.row_end(i);
    index_t q = static_cast<index_t>(t.indptr[i]);
    const index_t qe = static_cast<index_t>(t.indptr[i + 1]);
    while (p < pe || q < qe) {
      const index_t ca = p < pe ? static_cast<index_t>(a.indices()[p]) : n;
      const index_t cb = q < qe ? static_cast<index_t>(t.indices[q]) : n;
      if (ca == cb) {
        emit(ca, detail::combine_symmetric<V>(mode, true, a.values()[p], true,
                                              a.values()[static_cast<index_t>(t.source[q])]));
        ++p;
        ++q;
      } else if (ca < cb) {
        if (one_sided) emit(ca, detail::combine_symmetric<V>(mode, true, a.values()[p], false, V(0)));
        ++p;
      } else {
        if (one_sided)
          emit(cb,
               detail::combine_symmetric<V>(mode, false, V(0), true, a.values()[static_cast<index_t>(t.source[q])]));
        ++q;
      }
    }
  };
  host_buffer<Index> indptr(n + 1);
  detail::parallel_for(policy, n, [&](index_t i) {
    index_t count = 0;
    merge_row(i, [&](index_t, V) { ++count; });
    indptr[i + 1] = static_cast<Index>(count);
  });
  for (index_t i = 0; i < n; ++i) indptr[i + 1] = static_cast<Index>(indptr[i + 1] + indptr[i]);
  const auto nnz = static_cast<index_t>(indptr[n]);
  host_buffer<Index> indices(nnz, uninitialized);
  host_buffer<V> values(nnz, uninitialized);
  detail::parallel_for(policy, n, [&](index_t i) {
    index_t out = static_cast<index_t>(indptr[i]);
    merge_row(i, [&](index_t c, V v) {
      indices[out] = static_cast<Index>(c);
      values[out] = v;
      ++out;
    });
  });
  return csr_graph<V, Index>(n, std::move(indptr), std::move(indices), std::move(values));
}

/// `symmetrize` with the best host policy.
template <class T, class Index>
csr_graph<std::remove_const_t<T>, Index> symmetrize(csr_view<T, Index> a, symmetrize_mode mode = symmetrize_mode::max) {
  return symmetrize(default_host_policy(), a, mode);
}

// ---------------------------------------------------------------------------------------------------
// Eigen sparse

/// A compressed row-major `Eigen::SparseMatrix<T, RowMajor, Index>` copy of a CSR view (O(n + nnz)).
/// `Index` must be signed (Eigen's rule). For a zero-copy map use `cellkit::as_eigen` (interop/eigen.hpp).
template <class T, class Index>
Eigen::SparseMatrix<std::remove_const_t<T>, Eigen::RowMajor, Index> to_eigen_sparse(csr_view<T, Index> a) {
  static_assert(std::is_signed_v<Index>, "to_eigen_sparse: Eigen needs a signed index type");
  detail::check_csr("to_eigen_sparse", "a", a);
  using V = std::remove_const_t<T>;
  Eigen::SparseMatrix<V, Eigen::RowMajor, Index> m(a.rows(), a.cols());
  m.resizeNonZeros(a.nnz());
  std::copy(a.indptr(), a.indptr() + a.rows() + 1, m.outerIndexPtr());
  std::copy(a.indices(), a.indices() + a.nnz(), m.innerIndexPtr());
  std::copy(a.values(), a.values() + a.nnz(), m.valuePtr());
  return m;
}

/// `to_eigen_sparse(g.view())`.
template <class T, class Index>
Eigen::SparseMatrix<T, Eigen::RowMajor, Index> to_eigen_sparse(const csr_graph<T, Index>& g) {
  return to_eigen_sparse(g.view());
}

/// A `csr_graph` copy of a square Eigen sparse matrix of either storage order (column-major input is
/// converted by Eigen first). Explicitly stored zeros are kept. O(n + nnz), plus Eigen's conversion.
/// Throws `dimension_mismatch` for a non-square matrix.
template <class Index = std::int32_t, class T, int Options, class StorageIndex>
csr_graph<T, Index> from_eigen_sparse(const Eigen::SparseMatrix<T, Options, StorageIndex>& m) {
  constexpr const char* fn = "from_eigen_sparse";
  expect_shapes(m.rows() == m.cols(), fn, "m", {m.rows(), m.cols()}, "m", {m.rows(), m.cols()},
                "a graph's adjacency must be square");
  Eigen::SparseMatrix<T, Eigen::RowMajor, StorageIndex> r(m);  // sorted inner indices
  r.makeCompressed();
  const index_t n = r.rows();
  const index_t nnz = r.nonZeros();
  host_buffer<Index> indptr(n + 1, uninitialized);
  host_buffer<Index> indices(nnz, uninitialized);
  host_buffer<T> values(nnz, uninitialized);
  for (index_t i = 0; i <= n; ++i) indptr[i] = static_cast<Index>(r.outerIndexPtr()[i]);
  for (index_t p = 0; p < nnz; ++p) {
    indices[p] = static_cast<Index>(r.innerIndexPtr()[p]);
    values[p] = r.valuePtr()[p];
  }
  return csr_graph<T, Index>(n, std::move(indptr), std::move(indices), std::move(values));
}

/// A graph without its self-loops (entries (i, i)). O(n + nnz).
template <class T, class Index>
csr_graph<std::remove_const_t<T>, Index> remove_self_loops(csr_view<T, Index> a) {
  using V = std::remove_const_t<T>;
  detail::check_square("remove_self_loops", "a", a);
  detail::check_csr("remove_self_loops", "a", a);
  const index_t n = a.rows();
  host_buffer<Index> indptr(n + 1);
  index_t out = 0;
  for (index_t i = 0; i < n; ++i) {
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) out += static_cast<index_t>(a.indices()[p]) != i;
    indptr[i + 1] = static_cast<Index>(out);
  }
  host_buffer<Index> indices(out, uninitialized);
  host_buffer<V> values(out, uninitialized);
  out = 0;
  for (index_t i = 0; i < n; ++i) {
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) {
      if (static_cast<index_t>(a.indices()[p]) == i) continue;
      indices[out] = a.indices()[p];
      values[out] = a.values()[p];
      ++out;
    }
  }
  return csr_graph<V, Index>(n, std::move(indptr), std::move(indices), std::move(values));
}

}  // namespace cellkit::graph
