#pragma once
/// @file
/// Eigen interoperability: cellkit views over Eigen storage and Eigen maps over cellkit views.
///
/// All functions live in namespace `cellkit` and come in two directions:
/// - `as_matrix_view(m)`, `as_vector_view(v)`, `as_csr_view(s)`: Eigen object -> cellkit view.
/// - `as_eigen(view)`: cellkit view -> `Eigen::Map`.
/// Every one of them is **zero-copy** and O(1) (except `as_csr_view`, which runs `validate` when
/// `CELLKIT_DEBUG_CHECKS` is on): the result points into the argument's memory and is valid as long
/// as that memory is (no ownership is taken; resizing the Eigen object invalidates the view).
/// Constness carries over: a const Eigen object, `Map<const ...>`, `Ref<const ...>` or a block of a
/// const matrix gives a view of `const T`, and a view of `const T` gives a `Map<const ...>`.
/// The one copying function is `to_row_major(m)`, named so that the copy is visible at the call site.
///
/// cellkit matrices are row-major (element (i, j) at `data[i * stride + j]`). Eigen's default storage
/// order is column-major (`Eigen::MatrixXd`); such matrices are rejected at compile time with a
/// message saying what to pass instead: a `Matrix<T, Dynamic, Dynamic, RowMajor>` (or a Map, Ref or
/// Block of one), `m.transpose()` (the transpose of a column-major matrix is a row-major view of the
/// same memory, so the view is of the transposed matrix), or the explicit copy `to_row_major(m)`.
///
/// This header is host-only and is never included by cellkit's core headers.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/memory_space.hpp>
#include <cellkit/core/views.hpp>

#include <Eigen/Core>
#include <Eigen/SparseCore>

#include <string>
#include <type_traits>

namespace cellkit {

namespace detail {

// Derived from Eigen::DenseBase<X> for some X (VectorBlock, for one, derives from DenseBase<Block<...>>).
template <class X>
std::true_type eigen_dense_probe(const Eigen::DenseBase<X>*);
std::false_type eigen_dense_probe(...);
template <class D>
inline constexpr bool is_eigen_dense_v = decltype(eigen_dense_probe(static_cast<const D*>(nullptr)))::value;

template <class D>
inline constexpr bool is_eigen_ref_v = false;
template <class M, int Options, class Stride>
inline constexpr bool is_eigen_ref_v<Eigen::Ref<M, Options, Stride>> = true;

/// Element type of a view over `E`: `const Scalar` when `E` gives read-only access.
template <class E>
using eigen_element_t = std::remove_pointer_t<decltype(std::declval<E&>().data())>;

template <class D>
inline constexpr bool eigen_direct_access_v = bool(D::Flags& Eigen::DirectAccessBit);

/// True when `E` (a forwarding-reference type) is a temporary that owns its data (a Matrix, Array or
/// a Ref that may hold a converted copy): a view of it would dangle.
template <class E, class D>
inline constexpr bool eigen_owning_temporary_v =
    !std::is_lvalue_reference_v<E> && (std::is_base_of_v<Eigen::PlainObjectBase<D>, D> || is_eigen_ref_v<D>);

[[noreturn]] inline void throw_inner_stride(const char* fn, const char* argument, index_t inner_stride,
                                            const char* fix) {
  throw invalid_argument(std::string(fn) + ": invalid argument '" + argument + "': consecutive elements are " +
                         std::to_string(inner_stride) + " apart in memory (inner stride " +
                         std::to_string(inner_stride) + "), but cellkit views need unit stride; " + fix);
}

}  // namespace detail

/// A zero-copy `matrix_view` of an Eigen dense object (Matrix, Array, Map, Ref, Block, Transpose, ...)
/// with direct memory access.
///
/// Requirements, checked at compile time where Eigen knows them:
/// - row-major storage (`Eigen::RowMajor`), or a single column at compile time (a column vector,
///   `m.col(j)`), which is viewed as rows x 1 with row stride = its element step. A column-major
///   matrix is a compile error; pass a row-major matrix or `to_row_major(m)` (a copy) instead.
/// - unit stride between consecutive columns (inner stride 1); a Map with `InnerStride<k>`, k != 1,
///   is a compile error, and a runtime inner stride != 1 throws `invalid_argument`.
/// - the argument has storage (an expression such as `a * b` is a compile error: evaluate it first)
///   and is not a temporary that owns it (`as_matrix_view(RowMatrix(...))` would dangle: compile
///   error). Temporary Blocks, Maps and Transposes of lvalues are fine.
/// The transpose of a column-major matrix is row-major: `as_matrix_view(m.transpose())` is a
/// zero-copy view of the transposed matrix.
/// Result: `matrix_view<T>`, or `matrix_view<const T>` for read-only arguments, with
/// rows() / cols() of `m` and stride() = `m.outerStride()` (the row stride). O(1), zero-copy.
template <class E>
requires detail::is_eigen_dense_v<std::remove_cvref_t<E>>
auto as_matrix_view(E&& m) {
  using D = std::remove_cvref_t<E>;
  constexpr bool row_major = bool(D::Flags & Eigen::RowMajorBit);
  constexpr bool single_column = D::ColsAtCompileTime == 1;
  if constexpr (!detail::eigen_direct_access_v<D>) {
    static_assert(detail::eigen_direct_access_v<D>,
                  "cellkit::as_matrix_view needs an Eigen object with direct memory access (a Matrix, Array, Map, "
                  "Ref or Block of one); evaluate the expression into a row-major matrix first");
    return matrix_view<typename D::Scalar>{};
  } else if constexpr (detail::eigen_owning_temporary_v<E, D>) {
    static_assert(!detail::eigen_owning_temporary_v<E, D>,
                  "cellkit::as_matrix_view: the argument is a temporary that owns its data, so the view would "
                  "dangle; store the matrix in a variable first");
    return matrix_view<typename D::Scalar>{};
  } else if constexpr (!(row_major || single_column)) {
    static_assert(row_major || single_column,
                  "cellkit views are row-major: use Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> "
                  "(or a Map/Ref of one), or convert explicitly with cellkit::to_row_major(m)");
    return matrix_view<typename D::Scalar>{};
  } else {
    using element = detail::eigen_element_t<std::remove_reference_t<E>>;
    if constexpr (row_major) {
      constexpr int inner = Eigen::internal::inner_stride_at_compile_time<D>::ret;
      static_assert(inner == Eigen::Dynamic || inner == 1 || D::ColsAtCompileTime == 1,
                    "cellkit::as_matrix_view: the Eigen object's inner stride (the step between consecutive "
                    "columns) must be 1; a Map with Eigen::InnerStride<k>, k != 1, cannot be viewed: copy it "
                    "into a row-major matrix first");
      if (m.cols() > 1 && m.innerStride() != 1) {
        detail::throw_inner_stride("as_matrix_view", "m", m.innerStride(),
                                   "copy it into an Eigen::Matrix<T, Dynamic, Dynamic, RowMajor> first");
      }
      // A single row may report any outer stride; cols is always a valid row stride for it.
      const index_t stride = m.rows() <= 1 ? static_cast<index_t>(m.cols()) : static_cast<index_t>(m.outerStride());
      return matrix_view<element>(m.data(), m.rows(), m.cols(), stride);
    } else {
      // A column (rows x 1): row i is at data[i * innerStride()].
      const index_t step = m.rows() <= 1 ? 1 : static_cast<index_t>(m.innerStride());
      if (step < 1) {
        detail::throw_invalid_argument(
            "as_matrix_view", "m", "a column whose elements are " + std::to_string(step) + " apart cannot be viewed");
      }
      return matrix_view<element>(m.data(), m.rows(), 1, step);
    }
  }
}

/// A zero-copy `vector_view` of an Eigen vector expression with contiguous elements:
/// `VectorX*`, `RowVectorX*`, `Map`/`Ref` of one, `segment`/`head`/`tail`, a row of a row-major
/// matrix, a column of a column-major one. A vector whose elements are not adjacent (a column of a
/// row-major matrix, a Map with InnerStride != 1) is a compile error when Eigen knows the stride at
/// compile time, else throws `invalid_argument`. Non-vector types (known at compile time) are a
/// compile error: use `as_matrix_view`. Temporaries owning their data are rejected as in
/// `as_matrix_view`. Result: `vector_view<T>` (`const T` for read-only arguments). O(1).
template <class E>
requires detail::is_eigen_dense_v<std::remove_cvref_t<E>>
auto as_vector_view(E&& v) {
  using D = std::remove_cvref_t<E>;
  if constexpr (!detail::eigen_direct_access_v<D>) {
    static_assert(detail::eigen_direct_access_v<D>,
                  "cellkit::as_vector_view needs an Eigen object with direct memory access (a vector, Map, Ref, "
                  "segment, row or column); evaluate the expression into a vector first");
    return vector_view<typename D::Scalar>{};
  } else if constexpr (detail::eigen_owning_temporary_v<E, D>) {
    static_assert(!detail::eigen_owning_temporary_v<E, D>,
                  "cellkit::as_vector_view: the argument is a temporary that owns its data, so the view would "
                  "dangle; store the vector in a variable first");
    return vector_view<typename D::Scalar>{};
  } else if constexpr (!D::IsVectorAtCompileTime) {
    static_assert(D::IsVectorAtCompileTime,
                  "cellkit::as_vector_view takes an Eigen vector (VectorX, RowVectorX, a segment, row or column); "
                  "for a matrix use cellkit::as_matrix_view");
    return vector_view<typename D::Scalar>{};
  } else {
    using element = detail::eigen_element_t<std::remove_reference_t<E>>;
    constexpr int inner = Eigen::internal::inner_stride_at_compile_time<D>::ret;
    static_assert(inner == Eigen::Dynamic || inner == 1 || D::SizeAtCompileTime == 1,
                  "cellkit::as_vector_view: the vector's elements are not adjacent in memory (inner stride != 1, "
                  "e.g. a column of a row-major matrix); copy it into an Eigen::VectorX first");
    if (v.size() > 1 && v.innerStride() != 1) {
      detail::throw_inner_stride("as_vector_view", "v", v.innerStride(), "copy it into an Eigen::VectorX first");
    }
    return vector_view<element>(v.data(), v.size());
  }
}

/// The explicitly named copy for column-major (or any) Eigen matrix expressions: evaluates `m` into a
/// new `Eigen::Matrix<Scalar, Dynamic, Dynamic, RowMajor>` that `as_matrix_view` accepts.
/// O(rows x cols) time and memory.
template <class Derived>
Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> to_row_major(
    const Eigen::MatrixBase<Derived>& m) {
  return Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>(m);
}

namespace detail {
template <class Sparse, class Element>
auto eigen_csr_view(Sparse& m) {
  using StorageIndex = typename std::remove_const_t<Sparse>::StorageIndex;
  static_assert(bool(std::remove_const_t<Sparse>::IsRowMajor),
                "cellkit CSR views are row-major: use Eigen::SparseMatrix<T, Eigen::RowMajor, StorageIndex>, "
                "or convert explicitly with Eigen::SparseMatrix<T, Eigen::RowMajor, StorageIndex>(m) (a copy)");
  if constexpr (bool(std::remove_const_t<Sparse>::IsRowMajor)) {
    CELLKIT_EXPECTS(m.isCompressed(), "as_csr_view", "m",
                    "the Eigen::SparseMatrix is not compressed (it has free space after insert()); call "
                    "m.makeCompressed() first");
    const auto rows = static_cast<index_t>(m.rows());
    const auto nnz = static_cast<index_t>(m.nonZeros());
    csr_view<Element, StorageIndex> view(rows, static_cast<index_t>(m.cols()), nnz, m.outerIndexPtr(),
                                         m.innerIndexPtr(), m.valuePtr());
#if CELLKIT_DEBUG_CHECKS
    validate(view);
#endif
    return view;
  } else {
    return csr_view<Element, StorageIndex>{};
  }
}
}  // namespace detail

/// A zero-copy `csr_view` of a compressed row-major `Eigen::SparseMatrix`: indptr = outerIndexPtr(),
/// indices = innerIndexPtr(), values = valuePtr(). Values stay writable through the view of a
/// non-const matrix; the structure is read-only.
/// Errors: a column-major SparseMatrix (Eigen's default) is a compile error (convert with
/// `Eigen::SparseMatrix<T, Eigen::RowMajor>(m)`, a copy); an uncompressed matrix (after `insert`
/// without `makeCompressed()`) throws `invalid_argument`. When `CELLKIT_DEBUG_CHECKS` is on, the
/// structure is also checked with `validate` (O(rows + nnz)); otherwise O(1).
template <class T, int Options, class StorageIndex>
csr_view<T, StorageIndex> as_csr_view(Eigen::SparseMatrix<T, Options, StorageIndex>& m) {
  return detail::eigen_csr_view<Eigen::SparseMatrix<T, Options, StorageIndex>, T>(m);
}
/// Read-only overload: `csr_view<const T, StorageIndex>`.
template <class T, int Options, class StorageIndex>
csr_view<const T, StorageIndex> as_csr_view(const Eigen::SparseMatrix<T, Options, StorageIndex>& m) {
  return detail::eigen_csr_view<const Eigen::SparseMatrix<T, Options, StorageIndex>, const T>(m);
}
/// A temporary SparseMatrix would leave the view dangling: rejected at compile time.
template <class T, int Options, class StorageIndex>
csr_view<const T, StorageIndex> as_csr_view(Eigen::SparseMatrix<T, Options, StorageIndex>&& m) {
  static_assert(sizeof(T) == 0,
                "cellkit::as_csr_view: the argument is a temporary SparseMatrix, so the view would dangle; store "
                "the matrix in a variable first");
  return as_csr_view(static_cast<const Eigen::SparseMatrix<T, Options, StorageIndex>&>(m));
}

// ---- cellkit views -> Eigen maps -----------------------------------------------------------------

/// The Eigen type `as_eigen(matrix_view<T>)` returns: a row-major Map with a runtime row stride.
template <class T>
using eigen_matrix_map_t = Eigen::Map<
    std::conditional_t<std::is_const_v<T>,
                       const Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                       Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>,
    Eigen::Unaligned, Eigen::OuterStride<>>;

/// The Eigen type `as_eigen(vector_view<T>)` returns: a Map of a column vector.
template <class T>
using eigen_vector_map_t =
    Eigen::Map<std::conditional_t<std::is_const_v<T>, const Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, 1>,
                                  Eigen::Matrix<T, Eigen::Dynamic, 1>>>;

/// The Eigen type `as_eigen(csr_view<T, Index>)` returns: a Map of a row-major SparseMatrix.
template <class T, class Index>
using eigen_csr_map_t = Eigen::Map<std::conditional_t<
    std::is_const_v<T>, const Eigen::SparseMatrix<std::remove_const_t<T>, Eigen::RowMajor, std::remove_cv_t<Index>>,
    Eigen::SparseMatrix<T, Eigen::RowMajor, std::remove_cv_t<Index>>>>;

/// An `Eigen::Map` over a host `matrix_view`: `Map<Matrix<T, Dynamic, Dynamic, RowMajor>, Unaligned,
/// OuterStride<>>` with the view's rows, cols and row stride (`Map<const ...>` for `const T`).
/// Zero-copy, O(1). Device views are a compile error (copy to a host_buffer first).
template <class T, class Space>
eigen_matrix_map_t<T> as_eigen(matrix_view<T, Space> a) {
  static_assert(std::is_same_v<Space, host_space>,
                "cellkit::as_eigen: Eigen cannot read device memory; copy the view to a host_buffer first "
                "(cellkit::copy with the cuda policy)");
  return eigen_matrix_map_t<T>(a.data(), a.rows(), a.cols(), Eigen::OuterStride<>(a.stride()));
}

/// An `Eigen::Map` of a column vector (`Matrix<T, Dynamic, 1>`) over a host `vector_view`.
/// Zero-copy, O(1). Device views are a compile error.
template <class T, class Space>
eigen_vector_map_t<T> as_eigen(vector_view<T, Space> v) {
  static_assert(std::is_same_v<Space, host_space>,
                "cellkit::as_eigen: Eigen cannot read device memory; copy the view to a host_buffer first "
                "(cellkit::copy with the cuda policy)");
  return eigen_vector_map_t<T>(v.data(), v.size());
}

/// An `Eigen::Map` of a row-major `SparseMatrix<T, RowMajor, Index>` over a host `csr_view`:
/// `Map<const SparseMatrix<...>>` for `csr_view<const T, Index>`, `Map<SparseMatrix<...>>` (values
/// writable) for `csr_view<T, Index>`. Zero-copy, O(1).
/// Eigen's writable sparse Map takes non-const index pointers although a Map never changes the
/// structure; the view's index arrays are passed through `const_cast` and must not be written
/// through the Map's `outerIndexPtr()` / `innerIndexPtr()`.
/// `Index` must be signed (Eigen requires a signed StorageIndex): a view with unsigned indices
/// (e.g. Boost.Graph's `std::size_t`) is a compile error; copy it with `csr_matrix` first.
/// Device views are a compile error.
template <class T, class Index, class Space>
eigen_csr_map_t<T, Index> as_eigen(csr_view<T, Index, Space> a) {
  static_assert(std::is_same_v<Space, host_space>,
                "cellkit::as_eigen: Eigen cannot read device memory; copy the view to host memory first");
  static_assert(std::is_signed_v<Index>,
                "cellkit::as_eigen: Eigen sparse matrices need a signed index type; this csr_view has unsigned "
                "indices (e.g. from Boost.Graph): copy it into a cellkit::csr_matrix<T, std::int64_t> first");
  using I = std::remove_cv_t<Index>;
  static const I zero_indptr[1] = {I(0)};  // Eigen reads indptr[0] even for 0 rows
  const I* indptr = a.indptr() != nullptr ? a.indptr() : zero_indptr;
  const auto rows = static_cast<Eigen::Index>(a.rows());
  const auto cols = static_cast<Eigen::Index>(a.cols());
  const auto nnz = static_cast<Eigen::Index>(a.nnz());
  if constexpr (std::is_const_v<T>) {
    return eigen_csr_map_t<T, Index>(rows, cols, nnz, indptr, a.indices(), a.values());
  } else {
    return eigen_csr_map_t<T, Index>(rows, cols, nnz, const_cast<I*>(indptr), const_cast<I*>(a.indices()), a.values());
  }
}

}  // namespace cellkit
