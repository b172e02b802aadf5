#pragma once
/// @file
/// Quality filters on a cells x genes CSR count matrix (namespace `cellkit::preprocess`), as
/// scanpy's `sc.pp.filter_cells` / `sc.pp.filter_genes`, and row / column subsets. Full
/// description: docs/preprocess.md.
///
/// A cell is kept when   min_counts <= sum_j x_ij <= max_counts   and
///                       min_genes  <= #{j : x_ij != 0} <= max_genes
/// (scanpy applies one criterion per call; here all given bounds apply together). Genes likewise
/// with min/max_counts (column sums) and min/max_cells (cells with a non-zero value). Explicitly
/// stored zeros do not count as expressed.
///
/// `select_cells` / `select_genes` return the kept indices (ascending); `take_rows` /
/// `take_columns` build the subset matrix; `filter_cells` / `filter_genes` do both and throw
/// `invalid_argument` when nothing is left ("no cell passes the filter ..."), so a pipeline stops
/// with a message instead of continuing on an empty matrix.
/// Cost O(nnz + rows + cols); deterministic for every policy and thread count; host only,
/// synchronous. Errors: `invalid_argument` for negative bounds or out-of-range / unsorted indices.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/preprocess/detail/common.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::preprocess {

struct cell_filter_params {
  double min_counts = 0;                                        ///< minimum total count of a cell
  double max_counts = std::numeric_limits<double>::infinity();  ///< maximum total count
  index_t min_genes = 0;                                        ///< minimum number of expressed genes
  index_t max_genes = std::numeric_limits<index_t>::max();      ///< maximum number of expressed genes
};

struct gene_filter_params {
  double min_counts = 0;                                        ///< minimum total count of a gene
  double max_counts = std::numeric_limits<double>::infinity();  ///< maximum total count
  index_t min_cells = 0;                                        ///< minimum number of cells expressing it
  index_t max_cells = std::numeric_limits<index_t>::max();      ///< maximum number of cells expressing it
};

/// Indices of the cells (rows) that pass `params`, ascending.
template <class Policy, class T, class Index, class Space>
std::vector<index_t> select_cells(const Policy& policy, csr_view<T, Index, Space> x, const cell_filter_params& params) {
  detail::check_host_policy<Policy, Space>();
  constexpr const char* fn = "select_cells";
  CELLKIT_EXPECTS(params.min_counts >= 0 && params.min_genes >= 0, fn, "params", "bounds must be non-negative");
  const csr_view<const std::remove_const_t<T>, Index> xc = x;
  std::vector<char> keep(static_cast<std::size_t>(x.rows()), 0);
  const int threads = detail::effective_threads(detail::host_threads(policy), static_cast<double>(x.nnz()));
  detail::parallel_blocks(threads, detail::block_count(x.rows()), [&](int, index_t b) {
    const index_t last = std::min(x.rows(), (b + 1) * detail::block_rows);
    for (index_t i = b * detail::block_rows; i < last; ++i) {
      double total = 0.0;
      index_t expressed = 0;
      for (index_t k = xc.row_begin(i); k < xc.row_end(i); ++k) {
        total += static_cast<double>(xc.values()[k]);
        expressed += xc.values()[k] != 0 ? 1 : 0;
      }
      keep[static_cast<std::size_t>(i)] = total >= params.min_counts && total <= params.max_counts &&
                                          expressed >= params.min_genes && expressed <= params.max_genes;
    }
  });
  std::vector<index_t> kept;
  for (index_t i = 0; i < x.rows(); ++i)
    if (keep[static_cast<std::size_t>(i)] != 0) kept.push_back(i);
  return kept;
}

/// Indices of the genes (columns) that pass `params`, ascending.
template <class Policy, class T, class Index, class Space>
std::vector<index_t> select_genes(const Policy& policy, csr_view<T, Index, Space> x, const gene_filter_params& params) {
  detail::check_host_policy<Policy, Space>();
  constexpr const char* fn = "select_genes";
  CELLKIT_EXPECTS(params.min_counts >= 0 && params.min_cells >= 0, fn, "params", "bounds must be non-negative");
  const csr_view<const std::remove_const_t<T>, Index> xc = x;
  std::vector<double> totals;
  std::vector<double> expressed;
  const int threads = detail::host_threads(policy);
  detail::column_sums(
      threads, xc, [](double v, index_t) { return v; }, totals, nullptr);
  detail::column_sums(
      threads, xc, [](double v, index_t) { return v != 0.0 ? 1.0 : 0.0; }, expressed, nullptr);
  std::vector<index_t> kept;
  for (index_t j = 0; j < x.cols(); ++j) {
    const double t = totals[static_cast<std::size_t>(j)];
    const double e = expressed[static_cast<std::size_t>(j)];
    if (t >= params.min_counts && t <= params.max_counts && e >= static_cast<double>(params.min_cells) &&
        e <= static_cast<double>(params.max_cells))
      kept.push_back(j);
  }
  return kept;
}

/// The rows `rows` (ascending or not; repeats allowed) of x as a new CSR matrix. O(rows + their nnz).
template <class Policy, class T, class Index, class Space>
csr_matrix<std::remove_const_t<T>, Index> take_rows(const Policy& policy, csr_view<T, Index, Space> x,
                                                    const std::vector<index_t>& rows) {
  detail::check_host_policy<Policy, Space>();
  using V = std::remove_const_t<T>;
  const auto n = static_cast<index_t>(rows.size());
  host_buffer<Index> indptr(n + 1, uninitialized);
  indptr[0] = Index(0);
  index_t nnz = 0;
  for (index_t r = 0; r < n; ++r) {
    const index_t i = rows[static_cast<std::size_t>(r)];
    CELLKIT_EXPECTS(i >= 0 && i < x.rows(), "take_rows", "rows",
                    "row " + std::to_string(i) + " is outside [0, " + std::to_string(x.rows()) + ")");
    nnz += x.row_end(i) - x.row_begin(i);
    CELLKIT_EXPECTS(nnz <= static_cast<index_t>(std::numeric_limits<Index>::max()), "take_rows", "rows",
                    "the subset has more entries than the index type holds");
    indptr[r + 1] = static_cast<Index>(nnz);
  }
  host_buffer<Index> indices(nnz, uninitialized);
  host_buffer<V> values(nnz, uninitialized);
  const int threads = detail::effective_threads(detail::host_threads(policy), static_cast<double>(nnz));
  detail::parallel_blocks(threads, detail::block_count(n), [&](int, index_t b) {
    const index_t last = std::min(n, (b + 1) * detail::block_rows);
    for (index_t r = b * detail::block_rows; r < last; ++r) {
      const index_t i = rows[static_cast<std::size_t>(r)];
      index_t out = static_cast<index_t>(indptr[r]);
      for (index_t k = x.row_begin(i); k < x.row_end(i); ++k, ++out) {
        indices[out] = x.indices()[k];
        values[out] = x.values()[k];
      }
    }
  });
  return csr_matrix<V, Index>(n, x.cols(), std::move(indptr), std::move(indices), std::move(values));
}

/// The columns `columns` (strictly ascending) of x as a new CSR matrix, renumbered 0..size-1.
/// Throws `invalid_argument` for an index out of range or not ascending. O(nnz + cols).
template <class Policy, class T, class Index, class Space>
csr_matrix<std::remove_const_t<T>, Index> take_columns(const Policy& policy, csr_view<T, Index, Space> x,
                                                       const std::vector<index_t>& columns) {
  detail::check_host_policy<Policy, Space>();
  using V = std::remove_const_t<T>;
  std::vector<Index> new_index(static_cast<std::size_t>(x.cols()), Index(-1));
  for (std::size_t c = 0; c < columns.size(); ++c) {
    const index_t j = columns[c];
    CELLKIT_EXPECTS(j >= 0 && j < x.cols(), "take_columns", "columns",
                    "column " + std::to_string(j) + " is outside [0, " + std::to_string(x.cols()) + ")");
    CELLKIT_EXPECTS(c == 0 || columns[c - 1] < j, "take_columns", "columns",
                    "must be strictly ascending (keeps each row's indices sorted)");
    new_index[static_cast<std::size_t>(j)] = static_cast<Index>(c);
  }
  const index_t n = x.rows();
  std::vector<index_t> row_nnz(static_cast<std::size_t>(n), 0);
  const int threads = detail::effective_threads(detail::host_threads(policy), static_cast<double>(x.nnz()));
  detail::parallel_blocks(threads, detail::block_count(n), [&](int, index_t b) {
    const index_t last = std::min(n, (b + 1) * detail::block_rows);
    for (index_t i = b * detail::block_rows; i < last; ++i)
      for (index_t k = x.row_begin(i); k < x.row_end(i); ++k)
        row_nnz[static_cast<std::size_t>(i)] += new_index[static_cast<std::size_t>(x.indices()[k])] >= 0 ? 1 : 0;
  });
  host_buffer<Index> indptr(n + 1, uninitialized);
  indptr[0] = Index(0);
  index_t nnz = 0;
  for (index_t i = 0; i < n; ++i) {
    nnz += row_nnz[static_cast<std::size_t>(i)];
    indptr[i + 1] = static_cast<Index>(nnz);
  }
  host_buffer<Index> indices(nnz, uninitialized);
  host_buffer<V> values(nnz, uninitialized);
  detail::parallel_blocks(threads, detail::block_count(n), [&](int, index_t b) {
    const index_t last = std::min(n, (b + 1) * detail::block_rows);
    for (index_t i = b * detail::block_rows; i < last; ++i) {
      index_t out = static_cast<index_t>(indptr[i]);
      for (index_t k = x.row_begin(i); k < x.row_end(i); ++k) {
        const Index c = new_index[static_cast<std::size_t>(x.indices()[k])];
        if (c < 0) continue;
        indices[out] = c;
        values[out] = x.values()[k];
        ++out;
      }
    }
  });
  return csr_matrix<V, Index>(n, static_cast<index_t>(columns.size()), std::move(indptr), std::move(indices),
                              std::move(values));
}

/// `take_rows(select_cells(...))`; throws `invalid_argument` when no cell passes.
template <class Policy, class T, class Index, class Space>
csr_matrix<std::remove_const_t<T>, Index> filter_cells(const Policy& policy, csr_view<T, Index, Space> x,
                                                       const cell_filter_params& params) {
  const auto kept = select_cells(policy, x, params);
  CELLKIT_EXPECTS(!kept.empty(), "filter_cells", "params",
                  "no cell passes the filter (min_counts = " + detail::value_text(params.min_counts) +
                      ", min_genes = " + std::to_string(params.min_genes) + ") out of " + std::to_string(x.rows()));
  return take_rows(policy, x, kept);
}

/// `take_columns(select_genes(...))`; throws `invalid_argument` when no gene passes.
template <class Policy, class T, class Index, class Space>
csr_matrix<std::remove_const_t<T>, Index> filter_genes(const Policy& policy, csr_view<T, Index, Space> x,
                                                       const gene_filter_params& params) {
  const auto kept = select_genes(policy, x, params);
  CELLKIT_EXPECTS(!kept.empty(), "filter_genes", "params",
                  "no gene passes the filter (min_counts = " + detail::value_text(params.min_counts) +
                      ", min_cells = " + std::to_string(params.min_cells) + ") out of " + std::to_string(x.cols()));
  return take_columns(policy, x, kept);
}

}  // namespace cellkit::preprocess
