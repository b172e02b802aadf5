#pragma once
/// @file
/// Non-owning views: `vector_view`, `matrix_view` (row-major with a row stride) and `csr_view`.
///
/// Views are trivially copyable (pointer + extents), usable in `CELLKIT_HD` code, and carry the
/// memory space of their data as a type. Constructing one checks only extents (O(1)); the
/// expensive structural check of a CSR matrix is `validate(csr)` (O(nnz)).
/// Rows are cells and columns genes or features, as in AnnData.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/memory_space.hpp>

#include <string>
#include <type_traits>

namespace cellkit {

/// A contiguous 1-D range of `size()` elements of `T`.
template <class T, class Space = host_space>
class vector_view {
  static_assert(is_memory_space_v<Space>, "vector_view: Space must be cellkit::host_space or cellkit::device_space");

 public:
  using value_type = std::remove_cv_t<T>;
  using element_type = T;
  using space = Space;

  constexpr vector_view() = default;
  CELLKIT_HD constexpr vector_view(T* data, index_t size) : data_(data), size_(size) {}

  /// A view of const elements from a view of mutable ones.
  template <class U, std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>, int> = 0>
  CELLKIT_HD constexpr vector_view(vector_view<U, Space> other) : data_(other.data()), size_(other.size()) {}

  CELLKIT_HD constexpr T* data() const { return data_; }
  CELLKIT_HD constexpr index_t size() const { return size_; }
  CELLKIT_HD constexpr bool empty() const { return size_ == 0; }
  CELLKIT_HD constexpr T& operator[](index_t i) const { return data_[i]; }
  CELLKIT_HD constexpr T& operator()(index_t i) const { return data_[i]; }
  CELLKIT_HD constexpr T* begin() const { return data_; }
  CELLKIT_HD constexpr T* end() const { return data_ + size_; }
  constexpr shape2 shape() const { return {size_, 1}; }

 private:
  T* data_ = nullptr;
  index_t size_ = 0;
};

/// A row-major 2-D array: element (i, j) is at `data[i * stride + j]`, with `stride >= cols`.
template <class T, class Space = host_space>
class matrix_view {
  static_assert(is_memory_space_v<Space>, "matrix_view: Space must be cellkit::host_space or cellkit::device_space");

 public:
  using value_type = std::remove_cv_t<T>;
  using element_type = T;
  using space = Space;

  constexpr matrix_view() = default;
  /// Contiguous rows (stride = cols).
  matrix_view(T* data, index_t rows, index_t cols) : matrix_view(data, rows, cols, cols) {}
  /// Rows `stride` elements apart; throws `invalid_argument` for negative extents or stride < cols.
  matrix_view(T* data, index_t rows, index_t cols, index_t stride)
      : data_(data), rows_(rows), cols_(cols), stride_(stride) {
    CELLKIT_EXPECTS(rows >= 0 && cols >= 0, "matrix_view", "rows/cols",
                    "extents must be non-negative, got " + std::to_string(rows) + " x " + std::to_string(cols));
    CELLKIT_EXPECTS(stride >= cols, "matrix_view", "stride",
                    "row stride " + std::to_string(stride) + " is smaller than cols " + std::to_string(cols));
    CELLKIT_EXPECTS(data != nullptr || rows * cols == 0, "matrix_view", "data", "null pointer for a non-empty matrix");
  }

  template <class U, std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>, int> = 0>
  CELLKIT_HD constexpr matrix_view(matrix_view<U, Space> other)
      : data_(other.data()), rows_(other.rows()), cols_(other.cols()), stride_(other.stride()) {}

  CELLKIT_HD constexpr T* data() const { return data_; }
  CELLKIT_HD constexpr index_t rows() const { return rows_; }
  CELLKIT_HD constexpr index_t cols() const { return cols_; }
  CELLKIT_HD constexpr index_t stride() const { return stride_; }
  CELLKIT_HD constexpr index_t size() const { return rows_ * cols_; }
  CELLKIT_HD constexpr bool empty() const { return rows_ == 0 || cols_ == 0; }
  /// True when rows follow each other without gaps (one flat array of rows * cols elements).
  CELLKIT_HD constexpr bool is_contiguous() const { return stride_ == cols_ || rows_ <= 1; }
  CELLKIT_HD constexpr T& operator()(index_t i, index_t j) const { return data_[i * stride_ + j]; }
  CELLKIT_HD constexpr T* row_data(index_t i) const { return data_ + i * stride_; }
  CELLKIT_HD constexpr vector_view<T, Space> row(index_t i) const { return {data_ + i * stride_, cols_}; }
  constexpr shape2 shape() const { return {rows_, cols_}; }

  /// Rows [first, first + count) as a view (no copy). Throws if out of range.
  matrix_view row_block(index_t first, index_t count) const {
    CELLKIT_EXPECTS(first >= 0 && count >= 0 && first + count <= rows_, "matrix_view::row_block", "first/count",
                    "rows [" + std::to_string(first) + ", " + std::to_string(first + count) + ") are outside 0.." +
                        std::to_string(rows_));
    return matrix_view(data_ + first * stride_, count, cols_, stride_);
  }

 private:
  T* data_ = nullptr;
  index_t rows_ = 0;
  index_t cols_ = 0;
  index_t stride_ = 0;
};

/// Compressed sparse rows: row i holds `indices[indptr[i] .. indptr[i+1])` and the matching `values`.
/// `Index` is any integral type (int32 as SciPy and cuSPARSE default, int64, or Boost.Graph's size_t).
/// Indices within a row are expected sorted and unique; `validate` checks it.
template <class T, class Index = std::int32_t, class Space = host_space>
class csr_view {
  static_assert(std::is_integral_v<std::remove_cv_t<Index>>, "csr_view: Index must be an integral type");
  static_assert(is_memory_space_v<Space>, "csr_view: Space must be cellkit::host_space or cellkit::device_space");

 public:
  using value_type = std::remove_cv_t<T>;
  using index_type = std::remove_cv_t<Index>;
  using space = Space;

  constexpr csr_view() = default;
  /// `indptr` has rows + 1 entries; `indices` and `values` have `indptr[rows]` (= nnz) entries.
  csr_view(index_t rows, index_t cols, index_t nnz, const Index* indptr, const Index* indices, T* values)
      : rows_(rows), cols_(cols), nnz_(nnz), indptr_(indptr), indices_(indices), values_(values) {
    CELLKIT_EXPECTS(rows >= 0 && cols >= 0, "csr_view", "rows/cols",
                    "extents must be non-negative, got " + std::to_string(rows) + " x " + std::to_string(cols));
    CELLKIT_EXPECTS(nnz >= 0, "csr_view", "nnz", "must be non-negative, got " + std::to_string(nnz));
    CELLKIT_EXPECTS(indptr != nullptr || rows == 0, "csr_view", "indptr", "null pointer with rows > 0");
    CELLKIT_EXPECTS((indices != nullptr && values != nullptr) || nnz == 0, "csr_view", "indices/values",
                    "null pointer with nnz > 0");
  }

  template <class U, std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>, int> = 0>
  CELLKIT_HD constexpr csr_view(csr_view<U, Index, Space> other)
      : rows_(other.rows()),
        cols_(other.cols()),
        nnz_(other.nnz()),
        indptr_(other.indptr()),
        indices_(other.indices()),
        values_(other.values()) {}

  CELLKIT_HD constexpr index_t rows() const { return rows_; }
  CELLKIT_HD constexpr index_t cols() const { return cols_; }
  CELLKIT_HD constexpr index_t nnz() const { return nnz_; }
  CELLKIT_HD constexpr const Index* indptr() const { return indptr_; }
  CELLKIT_HD constexpr const Index* indices() const { return indices_; }
  CELLKIT_HD constexpr T* values() const { return values_; }
  CELLKIT_HD constexpr index_t row_begin(index_t i) const { return static_cast<index_t>(indptr_[i]); }
  CELLKIT_HD constexpr index_t row_end(index_t i) const { return static_cast<index_t>(indptr_[i + 1]); }
  constexpr shape2 shape() const { return {rows_, cols_}; }

 private:
  index_t rows_ = 0;
  index_t cols_ = 0;
  index_t nnz_ = 0;
  const Index* indptr_ = nullptr;
  const Index* indices_ = nullptr;
  T* values_ = nullptr;
};

/// Checks a host CSR matrix's structure in O(rows + nnz): indptr starts at 0, is non-decreasing and
/// ends at nnz; every column index is in [0, cols) and strictly increasing within its row.
/// Throws `invalid_argument` naming the first offending row.
template <class T, class Index>
void validate(const csr_view<T, Index, host_space>& a) {
  CELLKIT_EXPECTS(a.rows() == 0 || a.indptr()[0] == 0, "validate(csr)", "indptr", "indptr[0] must be 0");
  CELLKIT_EXPECTS(a.rows() == 0 ? a.nnz() == 0 : static_cast<index_t>(a.indptr()[a.rows()]) == a.nnz(), "validate(csr)",
                  "indptr", "indptr[rows] must equal nnz = " + std::to_string(a.nnz()));
  for (index_t i = 0; i < a.rows(); ++i) {
    const index_t begin = a.row_begin(i);
    const index_t end = a.row_end(i);
    CELLKIT_EXPECTS(begin <= end, "validate(csr)", "indptr", "decreases at row " + std::to_string(i));
    CELLKIT_EXPECTS(
        end <= a.nnz(), "validate(csr)", "indptr",
        "row " + std::to_string(i) + " ends at " + std::to_string(end) + ", past nnz = " + std::to_string(a.nnz()));
    for (index_t p = begin; p < end; ++p) {
      const auto column = static_cast<index_t>(a.indices()[p]);
      CELLKIT_EXPECTS(column >= 0 && column < a.cols(), "validate(csr)", "indices",
                      "column " + std::to_string(column) + " in row " + std::to_string(i) + " is outside [0, " +
                          std::to_string(a.cols()) + ")");
      CELLKIT_EXPECTS(p == begin || static_cast<index_t>(a.indices()[p - 1]) < column, "validate(csr)", "indices",
                      "row " + std::to_string(i) + " is not sorted or has a duplicate column");
    }
  }
}

/// Makes a host vector view over a pointer and length.
template <class T>
vector_view<T> make_vector_view(T* data, index_t size) {
  CELLKIT_EXPECTS(size >= 0, "make_vector_view", "size", "must be non-negative");
  CELLKIT_EXPECTS(data != nullptr || size == 0, "make_vector_view", "data", "null pointer with size > 0");
  return vector_view<T>(data, size);
}

template <class View>
inline constexpr bool is_host_view_v = std::is_same_v<typename View::space, host_space>;
template <class View>
inline constexpr bool is_device_view_v = std::is_same_v<typename View::space, device_space>;

}  // namespace cellkit
