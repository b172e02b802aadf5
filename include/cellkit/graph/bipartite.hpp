#pragma once
/// @file
/// The bipartite cell-gene graph of a count matrix (scGPCL): cells and genes are the two node sets,
/// an expressed gene links a cell to it with the count (or any non-negative value) as weight, and
/// message passing runs in both directions on one CSR structure and its transpose, built once.
///
/// With C the n_cells x n_genes matrix, r_c its row sums and s_g its column sums:
///
/// | normalisation | cells <- genes (Y_c = M X_g) | genes <- cells (Y_g = M' X_c) |
/// |---|---|---|
/// | `none` | C | C^T |
/// | `symmetric` | D_r^-1/2 C D_s^-1/2 | (the same)^T: GCN normalisation of [[0, C], [C^T, 0]] |
/// | `mean` | D_r^-1 C (mean over a cell's genes) | D_s^-1 C^T (mean over a gene's cells) |
///
/// Zero row or column sums give zero rows (no inf / NaN). The transpose's structure (indptr,
/// indices, position map) is built once by a stable counting sort and both directions are
/// row-parallel CSR products: deterministic, no atomics. `to_graph()` materialises the square
/// (n_cells + n_genes) block adjacency [[0, M], [M', 0]] (cells first) for generic graph code.
/// The gradient of cells_from_genes with respect to X_g is genes_from_cells applied to dY for
/// `none` and `symmetric` (M' = M^T); for `mean` it is `transpose(cells_from_genes_operator())`.
/// Costs: construction O(n + nnz), each product 2 nnz f flops. Host policies; calls return when the
/// work is done.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/spmm.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/detail/args.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/graph/detail/transpose.hpp>

#include <cmath>
#include <type_traits>
#include <utility>

namespace cellkit::graph {

enum class bipartite_normalization { none, symmetric, mean };

/// See the file comment. Owns both directions' arrays (the structure of C is copied once).
template <class T, class Index = std::int32_t>
class bipartite_graph {
  static_assert(std::is_floating_point_v<T>, "bipartite_graph: T must be float or double");

 public:
  /// Builds both directions from a cells x genes matrix with finite, non-negative values.
  /// Errors: `invalid_argument` naming "counts" for a malformed structure or a negative / non-finite value.
  template <class Policy, class TC>
  bipartite_graph(const Policy& policy, csr_view<TC, Index> counts,
                  bipartite_normalization normalization = bipartite_normalization::symmetric) {
    detail::require_host_policy<Policy>();
    constexpr const char* fn = "bipartite_graph";
    csr_view<const T, Index> c(counts);
    detail::check_csr(fn, "counts", c);
    detail::check_weights(fn, "counts", c, false);
    cells_ = c.rows();
    genes_ = c.cols();
    const index_t nnz = c.nnz();
    host_buffer<Index> indptr(cells_ + 1, uninitialized), indices(nnz, uninitialized);
    host_buffer<T> forward(nnz, uninitialized);
    std::copy(c.indptr(), c.indptr() + cells_ + 1, indptr.begin());
    std::copy(c.indices(), c.indices() + nnz, indices.begin());
    auto map = detail::build_transpose_map(c);
    // Row (cell) and column (gene) sums, each in a fixed order.
    host_buffer<T> row_sum(cells_), col_sum(genes_);
    detail::parallel_for(policy, cells_, [&](index_t i) {
      T s = T(0);
      for (index_t p = c.row_begin(i); p < c.row_end(i); ++p) s += c.values()[p];
      row_sum[i] = s;
    });
    detail::parallel_for(policy, genes_, [&](index_t g) {
      T s = T(0);
      for (index_t q = static_cast<index_t>(map.indptr[g]); q < static_cast<index_t>(map.indptr[g + 1]); ++q)
        s += c.values()[static_cast<index_t>(map.source[q])];
      col_sum[g] = s;
    });
    auto inv = [&](T d, bool root) { return d > T(0) ? (root ? T(1) / std::sqrt(d) : T(1) / d) : T(0); };
    host_buffer<T> backward(nnz, uninitialized);
    const bool root = normalization == bipartite_normalization::symmetric;
    detail::parallel_for(policy, cells_, [&](index_t i) {
      for (index_t p = c.row_begin(i); p < c.row_end(i); ++p) {
        const auto g = static_cast<index_t>(c.indices()[p]);
        const T v = c.values()[p];
        switch (normalization) {
          case bipartite_normalization::none:
            forward[p] = v;
            break;
          case bipartite_normalization::symmetric:
            forward[p] = v * (inv(row_sum[i], root) * inv(col_sum[g], root));
            break;
          case bipartite_normalization::mean:
            forward[p] = v * inv(row_sum[i], false);
            break;
        }
      }
    });
    detail::parallel_for(policy, genes_, [&](index_t g) {
      for (index_t q = static_cast<index_t>(map.indptr[g]); q < static_cast<index_t>(map.indptr[g + 1]); ++q) {
        const auto p = static_cast<index_t>(map.source[q]);
        backward[q] =
            normalization == bipartite_normalization::mean ? c.values()[p] * inv(col_sum[g], false) : forward[p];
      }
    });
    forward_ = csr_matrix<T, Index>(cells_, genes_, std::move(indptr), std::move(indices), std::move(forward));
    backward_ =
        csr_matrix<T, Index>(genes_, cells_, std::move(map.indptr), std::move(map.indices), std::move(backward));
  }

  index_t cells() const { return cells_; }
  index_t genes() const { return genes_; }
  /// M: n_cells x n_genes.
  csr_view<const T, Index> cells_from_genes_operator() const { return forward_.view(); }
  /// M': n_genes x n_cells.
  csr_view<const T, Index> genes_from_cells_operator() const { return backward_.view(); }

  /// Y_c = alpha M X_g + beta Y_c.
  template <class Policy>
  void cells_from_genes(const Policy& policy, const_matrix_arg<T> x_genes, matrix_view<T> y_cells,
                        spmm_params<T> params = {}) const {
    detail::require_host_policy<Policy>();
    expect_shapes(x_genes.rows() == genes_, "cells_from_genes", "X_genes", x_genes.shape(), "counts", {cells_, genes_},
                  "one row of X_genes per gene");
    expect_shapes(y_cells.rows() == cells_ && y_cells.cols() == x_genes.cols(), "cells_from_genes", "Y_cells",
                  y_cells.shape(), "n_cells x f", {cells_, x_genes.cols()}, "one row of Y_cells per cell");
    spmm(policy, forward_.view(), x_genes, y_cells, params);
  }

  /// Y_g = alpha M' X_c + beta Y_g.
  template <class Policy>
  void genes_from_cells(const Policy& policy, const_matrix_arg<T> x_cells, matrix_view<T> y_genes,
                        spmm_params<T> params = {}) const {
    detail::require_host_policy<Policy>();
    expect_shapes(x_cells.rows() == cells_, "genes_from_cells", "X_cells", x_cells.shape(), "counts", {cells_, genes_},
                  "one row of X_cells per cell");
    expect_shapes(y_genes.rows() == genes_ && y_genes.cols() == x_cells.cols(), "genes_from_cells", "Y_genes",
                  y_genes.shape(), "n_genes x f", {genes_, x_cells.cols()}, "one row of Y_genes per gene");
    spmm(policy, backward_.view(), x_cells, y_genes, params);
  }

  /// The (n_cells + n_genes) square block adjacency [[0, M], [M', 0]], cells first (a copy).
  csr_graph<T, Index> to_graph() const {
    const index_t n = cells_ + genes_;
    const index_t nnz = forward_.nnz();
    host_buffer<Index> indptr(n + 1, uninitialized), indices(2 * nnz, uninitialized);
    host_buffer<T> values(2 * nnz, uninitialized);
    const auto f = forward_.view();
    const auto b = backward_.view();
    indptr[0] = 0;
    for (index_t i = 0; i < cells_; ++i) indptr[i + 1] = f.indptr()[i + 1];
    for (index_t g = 0; g < genes_; ++g)
      indptr[cells_ + g + 1] = static_cast<Index>(nnz + static_cast<index_t>(b.indptr()[g + 1]));
    for (index_t p = 0; p < nnz; ++p) {
      indices[p] = static_cast<Index>(cells_ + static_cast<index_t>(f.indices()[p]));
      values[p] = f.values()[p];
      indices[nnz + p] = b.indices()[p];
      values[nnz + p] = b.values()[p];
    }
    return csr_graph<T, Index>(n, std::move(indptr), std::move(indices), std::move(values));
  }

 private:
  index_t cells_ = 0;
  index_t genes_ = 0;
  csr_matrix<T, Index> forward_;
  csr_matrix<T, Index> backward_;
};

}  // namespace cellkit::graph
