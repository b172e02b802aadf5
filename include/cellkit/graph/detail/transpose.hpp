#pragma once
/// @file
/// The structure of a CSR matrix's transpose, with the position of every transposed entry in the
/// original arrays (internal). Built once by a stable counting sort, so each transposed row lists
/// its columns (the original rows) in increasing order: the result is unique and deterministic.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/views.hpp>

#include <cstdint>

namespace cellkit::graph::detail {

template <class Index>
struct transpose_map {
  index_t rows = 0;  ///< rows of the transpose (= columns of the original)
  index_t cols = 0;  ///< columns of the transpose (= rows of the original)
  host_buffer<Index> indptr;
  host_buffer<Index> indices;
  host_buffer<Index> source;  ///< source[q]: position in the original arrays of transposed entry q

  index_t nnz() const { return indices.size(); }
};

/// O(rows + cols + nnz), serial (memory-bound; a few milliseconds per million entries). The CSR
/// structure (indptr: rows + 1 entries, indices: indptr[rows]) is read from host memory.
template <class Index>
transpose_map<Index> build_transpose_map(index_t rows, index_t cols, const Index* indptr, const Index* indices) {
  transpose_map<Index> t;
  t.rows = cols;
  t.cols = rows;
  const auto nnz = static_cast<index_t>(indptr[rows]);
  t.indptr = host_buffer<Index>(cols + 1);
  t.indices = host_buffer<Index>(nnz, uninitialized);
  t.source = host_buffer<Index>(nnz, uninitialized);
  for (index_t p = 0; p < nnz; ++p) ++t.indptr[static_cast<index_t>(indices[p]) + 1];
  for (index_t j = 0; j < cols; ++j) t.indptr[j + 1] = static_cast<Index>(t.indptr[j + 1] + t.indptr[j]);
  host_buffer<Index> next(cols, uninitialized);
  for (index_t j = 0; j < cols; ++j) next[j] = t.indptr[j];
  for (index_t i = 0; i < rows; ++i) {
    for (auto p = static_cast<index_t>(indptr[i]); p < static_cast<index_t>(indptr[i + 1]); ++p) {
      const auto j = static_cast<index_t>(indices[p]);
      const auto q = static_cast<index_t>(next[j]);
      next[j] = static_cast<Index>(q + 1);
      t.indices[q] = static_cast<Index>(i);
      t.source[q] = static_cast<Index>(p);
    }
  }
  return t;
}

template <class T, class Index>
transpose_map<Index> build_transpose_map(const csr_view<T, Index, host_space>& a) {
  return build_transpose_map(a.rows(), a.cols(), a.indptr(), a.indices());
}

}  // namespace cellkit::graph::detail
