#pragma once
/// @file
/// `csr_matrix<T, Index>`: an owning host matrix in compressed sparse row form, and the way to build
/// one from (row, column, value) triplets.
///
/// The matrix owns three `host_buffer`s: `indptr` (rows + 1 entries), `indices` and `values` (nnz
/// entries each). Row i holds columns `indices[indptr[i] .. indptr[i+1])`, sorted and unique, with
/// the matching `values`; every constructor guarantees this (it is what `validate` checks), so a
/// `csr_matrix`'s `view()` can be passed to any cellkit algorithm that takes a host `csr_view`.
/// Like `host_buffer`, a `csr_matrix` is move-only: no hidden copies.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit {

/// An owning host CSR matrix of `T` with indices of integral type `Index` (int32 by default, as SciPy
/// and cuSPARSE use). Invariants (established by every constructor): `indptr` has rows + 1
/// non-decreasing entries from 0 to nnz, and each row's column indices are in [0, cols), strictly
/// increasing.
template <class T, class Index = std::int32_t>
class csr_matrix {
  static_assert(std::is_integral_v<Index> && !std::is_const_v<Index>,
                "csr_matrix: Index must be a (non-const) integral type, e.g. std::int32_t or std::int64_t");
  static_assert(!std::is_const_v<T>, "csr_matrix: T must not be const (use view() const for read-only access)");

 public:
  using value_type = T;
  using index_type = Index;

  /// An empty 0 x 0 matrix.
  csr_matrix() : csr_matrix(0, 0) {}

  /// A `rows` x `cols` matrix without stored entries (all zero). O(rows).
  /// Throws `invalid_argument` for negative extents.
  csr_matrix(index_t rows, index_t cols) : rows_(rows), cols_(cols) {
    check_extents("csr_matrix", rows, cols);
    indptr_ = host_buffer<Index>(rows + 1);  // zero-initialised: every row empty
  }

  /// Takes ownership of existing CSR arrays (no copy of the data). Checks the array lengths
  /// (`indptr` has rows + 1 entries, `indices` and `values` the same length, equal to
  /// `indptr[rows]`) and then the structure with `validate` (O(rows + nnz)).
  /// Throws `dimension_mismatch` for wrong lengths, `invalid_argument` for a malformed structure
  /// (unsorted or duplicate columns, column out of range, decreasing indptr).
  csr_matrix(index_t rows, index_t cols, host_buffer<Index> indptr, host_buffer<Index> indices, host_buffer<T> values)
      : rows_(rows), cols_(cols), indptr_(std::move(indptr)), indices_(std::move(indices)), values_(std::move(values)) {
    check_extents("csr_matrix", rows, cols);
    check_and_validate();
  }

  /// Copies CSR arrays from `std::vector`s (O(rows + nnz)); same checks as the `host_buffer`
  /// constructor.
  csr_matrix(index_t rows, index_t cols, const std::vector<Index>& indptr, const std::vector<Index>& indices,
             const std::vector<T>& values)
      : csr_matrix(rows, cols, to_buffer(indptr), to_buffer(indices), to_buffer(values)) {}

  /// Moves the arrays; the moved-from matrix is left 0 x 0 without entries (its view() is valid).
  csr_matrix(csr_matrix&& other) noexcept
      : rows_(std::exchange(other.rows_, 0)),
        cols_(std::exchange(other.cols_, 0)),
        indptr_(std::move(other.indptr_)),
        indices_(std::move(other.indices_)),
        values_(std::move(other.values_)) {}
  csr_matrix& operator=(csr_matrix&& other) noexcept {
    if (this != &other) {
      rows_ = std::exchange(other.rows_, 0);
      cols_ = std::exchange(other.cols_, 0);
      indptr_ = std::move(other.indptr_);
      indices_ = std::move(other.indices_);
      values_ = std::move(other.values_);
    }
    return *this;
  }
  csr_matrix(const csr_matrix&) = delete;
  csr_matrix& operator=(const csr_matrix&) = delete;
  ~csr_matrix() = default;

  /// Builds a `rows` x `cols` matrix from triplets: entry k is (`row_indices[k]`, `col_indices[k]`,
  /// `values[k]`), in any order.
  ///
  /// Entries are sorted by (row, column). **Duplicate (row, column) pairs are summed** (in input
  /// order, so the result is deterministic), as `scipy.sparse.coo_matrix.tocsr()` and Eigen's
  /// `setFromTriplets` do; sums that come to zero stay stored (explicit zeros are kept).
  ///
  /// Parameters: `rows`, `cols` >= 0; the three spans have the same length (the number of triplets,
  /// which must fit in `Index`). A `std::vector` converts to each span implicitly.
  /// Complexity: O(n log d + rows) for n triplets and at most d per row (a stable counting sort by
  /// row, then a stable sort within each row); O(n + rows) extra memory. Copies the values.
  /// Errors: `dimension_mismatch` when the spans differ in length; `invalid_argument` naming the
  /// argument, the entry and the value when a row index is outside [0, rows) or a column index
  /// outside [0, cols), or when `rows`/`cols` is negative.
  static csr_matrix from_triplets(index_t rows, index_t cols, std::span<const Index> row_indices,
                                  std::span<const Index> col_indices, std::span<const T> values) {
    constexpr const char* fn = "csr_matrix::from_triplets";
    check_extents(fn, rows, cols);
    const auto n = static_cast<index_t>(values.size());
    expect_shapes(row_indices.size() == values.size(), fn, "row_indices", {static_cast<index_t>(row_indices.size()), 1},
                  "values", {n, 1}, "one row index per value");
    expect_shapes(col_indices.size() == values.size(), fn, "col_indices", {static_cast<index_t>(col_indices.size()), 1},
                  "values", {n, 1}, "one column index per value");
    if (static_cast<std::make_unsigned_t<index_t>>(n) >
        static_cast<std::make_unsigned_t<Index>>(std::numeric_limits<Index>::max())) {
      detail::throw_invalid_argument(fn, "values",
                                     std::to_string(n) + " triplets do not fit the index type (max " +
                                         std::to_string(std::numeric_limits<Index>::max()) + "); use a wider Index");
    }
    for (index_t k = 0; k < n; ++k) {
      const auto r = static_cast<index_t>(row_indices[static_cast<std::size_t>(k)]);
      if (r < 0 || r >= rows) {
        detail::throw_invalid_argument(fn, "row_indices",
                                       "entry " + std::to_string(k) + " is row " + std::to_string(r) +
                                           ", outside [0, " + std::to_string(rows) + ")");
      }
      const auto c = static_cast<index_t>(col_indices[static_cast<std::size_t>(k)]);
      if (c < 0 || c >= cols) {
        detail::throw_invalid_argument(fn, "col_indices",
                                       "entry " + std::to_string(k) + " is column " + std::to_string(c) +
                                           ", outside [0, " + std::to_string(cols) + ")");
      }
    }

    // Counting sort by row (stable: input order is kept within a row).
    std::vector<index_t> row_start(static_cast<std::size_t>(rows) + 1, 0);
    for (index_t k = 0; k < n; ++k) ++row_start[static_cast<std::size_t>(row_indices[static_cast<std::size_t>(k)]) + 1];
    for (index_t i = 0; i < rows; ++i)
      row_start[static_cast<std::size_t>(i + 1)] += row_start[static_cast<std::size_t>(i)];
    // Entries move with their values, so the later passes read memory in order.
    struct entry {
      Index column;
      T value;
    };
    std::vector<entry> entries(static_cast<std::size_t>(n));
    {
      std::vector<index_t> next(row_start.begin(), row_start.end() - 1);
      for (index_t k = 0; k < n; ++k) {
        const auto r = static_cast<std::size_t>(row_indices[static_cast<std::size_t>(k)]);
        entries[static_cast<std::size_t>(next[r]++)] =
            entry{col_indices[static_cast<std::size_t>(k)], values[static_cast<std::size_t>(k)]};
      }
    }
    // Sort each row by column, stably (the counting sort kept input order within a row), so that
    // duplicates are summed in input order: insertion sort for short rows (no allocation),
    // std::stable_sort for long ones.
    const auto by_column = [](const entry& a, const entry& b) { return a.column < b.column; };
    index_t unique = 0;
    for (index_t i = 0; i < rows; ++i) {
      const auto first = entries.begin() + row_start[static_cast<std::size_t>(i)];
      const auto last = entries.begin() + row_start[static_cast<std::size_t>(i + 1)];
      if (!std::is_sorted(first, last, by_column)) {
        if (last - first <= 32) {
          for (auto it = first + 1; it != last; ++it) {
            const entry moving = *it;
            auto hole = it;
            for (; hole != first && moving.column < (hole - 1)->column; --hole) *hole = *(hole - 1);
            *hole = moving;
          }
        } else {
          std::stable_sort(first, last, by_column);
        }
      }
      for (auto it = first; it != last; ++it) unique += (it == first || it->column != (it - 1)->column) ? 1 : 0;
    }
    // Fill exact-size buffers, summing duplicates.
    host_buffer<Index> indptr(rows + 1, uninitialized);
    host_buffer<Index> indices(unique, uninitialized);
    host_buffer<T> sums(unique, uninitialized);
    index_t out = 0;
    indptr[0] = Index(0);
    for (index_t i = 0; i < rows; ++i) {
      const index_t begin = row_start[static_cast<std::size_t>(i)];
      const index_t end = row_start[static_cast<std::size_t>(i + 1)];
      for (index_t p = begin; p < end; ++p) {
        const entry& e = entries[static_cast<std::size_t>(p)];
        if (p > begin && e.column == indices[out - 1]) {
          sums[out - 1] = static_cast<T>(sums[out - 1] + e.value);
        } else {
          indices[out] = e.column;
          sums[out] = e.value;
          ++out;
        }
      }
      indptr[i + 1] = static_cast<Index>(out);
    }
    csr_matrix result;
    result.rows_ = rows;
    result.cols_ = cols;
    result.indptr_ = std::move(indptr);
    result.indices_ = std::move(indices);
    result.values_ = std::move(sums);
    return result;
  }

  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }
  /// Number of stored entries (explicit zeros included).
  index_t nnz() const { return indices_.size(); }
  shape2 shape() const { return {rows_, cols_}; }

  /// A non-owning view whose values can be written (the structure cannot). Valid while the matrix lives.
  csr_view<T, Index> view() { return {rows_, cols_, nnz(), indptr_.data(), indices_.data(), values_.data()}; }
  /// A read-only view. Valid while the matrix lives.
  csr_view<const T, Index> view() const {
    return {rows_, cols_, nnz(), indptr_.data(), indices_.data(), values_.data()};
  }

  /// The three arrays, read-only (`indptr` has rows + 1 entries; the others nnz).
  vector_view<const Index> indptr() const { return indptr_.view(); }
  vector_view<const Index> indices() const { return indices_.view(); }
  vector_view<const T> values() const { return values_.view(); }
  /// The values, writable (changing a value keeps the structure valid).
  vector_view<T> values() { return values_.view(); }

 private:
  static void check_extents(const char* fn, index_t rows, index_t cols) {
    if (rows < 0 || cols < 0) {
      detail::throw_invalid_argument(
          fn, "rows/cols", "extents must be non-negative, got " + std::to_string(rows) + " x " + std::to_string(cols));
    }
  }

  template <class U>
  static host_buffer<U> to_buffer(const std::vector<U>& v) {
    host_buffer<U> buffer(static_cast<index_t>(v.size()), uninitialized);
    std::copy(v.begin(), v.end(), buffer.begin());
    return buffer;
  }

  void check_and_validate() const {
    constexpr const char* fn = "csr_matrix";
    expect_shapes(indptr_.size() == rows_ + 1, fn, "indptr", {indptr_.size(), 1}, "rows + 1", {rows_ + 1, 1},
                  "indptr has one entry per row plus one");
    expect_shapes(indices_.size() == values_.size(), fn, "indices", {indices_.size(), 1}, "values", {values_.size(), 1},
                  "one column index per value");
    expect_shapes(static_cast<index_t>(indptr_[rows_]) == indices_.size(), fn, "indptr[rows]",
                  {static_cast<index_t>(indptr_[rows_]), 1}, "indices", {indices_.size(), 1},
                  "indptr must end at nnz, the length of indices");
    // indptr first (validate reads indices[indptr[i] .. indptr[i+1]) and needs it in bounds).
    CELLKIT_EXPECTS(indptr_[0] == Index(0), fn, "indptr", "indptr[0] must be 0");
    for (index_t i = 0; i < rows_; ++i) {
      if (indptr_[i] > indptr_[i + 1]) {
        detail::throw_invalid_argument(fn, "indptr", "decreases at row " + std::to_string(i));
      }
    }
    validate(view());
  }

  index_t rows_ = 0;
  index_t cols_ = 0;
  host_buffer<Index> indptr_;
  host_buffer<Index> indices_;
  host_buffer<T> values_;
};

}  // namespace cellkit
