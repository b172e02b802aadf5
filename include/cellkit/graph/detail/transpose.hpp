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

/// O(rows + cols + nnz), serial (memory-bound; a few milliseconds per million entries).
template <class T, class Index>
transpose_map<Index> build_transpose_map(const csr_view<T, Index, host_space>& a) {
  transpose_map<Index> t;
  t.rows = a.cols();
  t.cols = a.rows();
  const index_t nnz = a.nnz();
  t.indptr = host_buffer<Index>(a.cols() + 1);
  t.indices = host_buffer<Index>(nnz, uninitialized);
  t.source = host_buffer<Index>(nnz, uninitialized);
  for (index_t p = 0; p < nnz; ++p) ++t.indptr[static_cast<index_t>(a.indices()[p]) + 1];
  for (index_t j = 0; j < a.cols(); ++j) t.indptr[j + 1] = static_cast<Index>(t.indptr[j + 1] + t.indptr[j]);
  host_buffer<Index> next(a.cols(), uninitialized);
  for (index_t j = 0; j < a.cols(); ++j) next[j] = t.indptr[j];
  for (index_t i = 0; i < a.rows(); ++i) {
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) {
      const auto j = static_cast<index_t>(a.indices()[p]);
      const auto q = static_cast<index_t>(next[j]);
      next[j] = static_cast<Index>(q + 1);
      t.indices[q] = static_cast<Index>(i);
      t.source[q] = static_cast<Index>(p);
    }
  }
  return t;
}

}  // namespace cellkit::graph::detail
