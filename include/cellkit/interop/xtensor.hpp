#pragma once
/// @file
/// xtensor interoperability: cellkit views over xtensor containers, and xtensor adaptors over cellkit
/// views.
///
/// All functions live in namespace `cellkit`:
/// - `as_matrix_view(a)`, `as_vector_view(a)`: an xtensor container -> cellkit view.
/// - `as_xtensor(view)`: a cellkit view -> a non-owning `xt::xtensor_adaptor`.
/// Every one is **zero-copy** and O(1): the result points into the argument's memory and is valid as
/// long as that memory is (resizing the container invalidates the view). Constness carries over (a
/// const container gives a view of `const T`; a view of `const T` gives a read-only adaptor).
///
/// Accepted containers are xtensor's in-memory containers and adaptors (`xt::xtensor`, `xt::xarray`,
/// `xt::xtensor_fixed`, the results of `xt::adapt`, ...: everything derived from `xt::xcontainer`).
/// Views such as `xt::view` or `xt::transpose` are expressions, not containers: evaluate them first
/// (`xt::xtensor<T, 2> copy = expr;`).
///
/// cellkit matrices are row-major. A container whose layout is `xt::layout_type::column_major` at
/// compile time is rejected with a static_assert that says what to pass; a dynamic-layout container
/// (xt::adapt with strides, `layout_type::dynamic`) is checked at run time and throws
/// `invalid_argument` unless its columns are adjacent in memory.
///
/// This header is host-only and is never included by cellkit's core headers.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/memory_space.hpp>
#include <cellkit/core/views.hpp>

#include <xtensor/xadapt.hpp>
#include <xtensor/xcontainer.hpp>
#include <xtensor/xlayout.hpp>
#include <xtensor/xshape.hpp>
#include <xtensor/xtensor.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>

namespace cellkit {

namespace detail {

template <class X>
std::true_type xcontainer_probe(const xt::xcontainer<X>*);
std::false_type xcontainer_probe(...);
/// True for xtensor containers and adaptors (types derived from `xt::xcontainer<X>`).
template <class D>
inline constexpr bool is_xtensor_container_v = decltype(xcontainer_probe(static_cast<const D*>(nullptr)))::value;

template <class D>
inline constexpr std::ptrdiff_t xtensor_static_dimension_v = xt::static_dimension<typename D::shape_type>::value;

}  // namespace detail

/// A zero-copy `matrix_view` of a 2-D xtensor container: rows = shape[0], cols = shape[1], row
/// stride = strides[0].
///
/// Requirements: the container is an lvalue (a temporary would leave the view dangling: compile
/// error); its layout is not `column_major` at compile time (compile error: use the default
/// `xt::xtensor<T, 2>`, whose layout is row_major, or copy into one); a container with a fixed
/// dimension must have dimension 2 (compile error). At run time: the dimension is 2 (for
/// `xt::xarray`) and, for dynamic layouts, consecutive columns are adjacent (`strides[1] == 1`) and
/// rows do not overlap (`strides[0] >= cols`); otherwise `invalid_argument`.
/// Result: `matrix_view<T>`, `matrix_view<const T>` for a const container. O(1), zero-copy.
template <class E>
requires detail::is_xtensor_container_v<std::remove_cvref_t<E>>
auto as_matrix_view(E&& a) {
  using D = std::remove_cvref_t<E>;
  using element = std::remove_pointer_t<decltype(a.data())>;
  constexpr std::ptrdiff_t dimension = detail::xtensor_static_dimension_v<D>;
  if constexpr (!std::is_lvalue_reference_v<E>) {
    static_assert(std::is_lvalue_reference_v<E>,
                  "cellkit::as_matrix_view: the xtensor argument is a temporary, so the view could dangle; store "
                  "it in a variable first");
    return matrix_view<element>{};
  } else if constexpr (D::static_layout == xt::layout_type::column_major) {
    static_assert(D::static_layout != xt::layout_type::column_major,
                  "cellkit views are row-major: use xt::xtensor<T, 2> (layout_type::row_major, the default), or "
                  "copy explicitly into one: xt::xtensor<T, 2, xt::layout_type::row_major> copy = a;");
    return matrix_view<element>{};
  } else if constexpr (dimension != -1 && dimension != 2) {
    static_assert(dimension == -1 || dimension == 2,
                  "cellkit::as_matrix_view needs a 2-D xtensor container (for 1-D use cellkit::as_vector_view)");
    return matrix_view<element>{};
  } else {
    if (a.dimension() != 2) {
      detail::throw_invalid_argument("as_matrix_view", "a",
                                     "needs a 2-D array, got dimension " + std::to_string(a.dimension()));
    }
    const auto rows = static_cast<index_t>(a.shape()[0]);
    const auto cols = static_cast<index_t>(a.shape()[1]);
    index_t stride = cols;
    if constexpr (D::static_layout != xt::layout_type::row_major) {
      // xtensor stores stride 0 for dimensions of extent 1.
      const auto row_stride = static_cast<index_t>(a.strides()[0]);
      const auto column_stride = static_cast<index_t>(a.strides()[1]);
      if (cols > 1 && column_stride != 1) {
        detail::throw_invalid_argument("as_matrix_view", "a",
                                       "cellkit views are row-major, but consecutive columns are " +
                                           std::to_string(column_stride) + " elements apart (strides {" +
                                           std::to_string(row_stride) + ", " + std::to_string(column_stride) +
                                           "}); copy into xt::xtensor<T, 2> (row-major) first");
      }
      if (rows > 1) stride = row_stride;
      if (stride < cols) {
        detail::throw_invalid_argument("as_matrix_view", "a",
                                       "row stride " + std::to_string(stride) + " is smaller than cols " +
                                           std::to_string(cols) + "; copy into xt::xtensor<T, 2> (row-major) first");
      }
    }
    return matrix_view<element>(a.data() + a.data_offset(), rows, cols, stride);
  }
}

/// A zero-copy `vector_view` of a 1-D xtensor container (`xt::xtensor<T, 1>`, a 1-D `xt::xarray`,
/// a 1-D adaptor). Requirements as for `as_matrix_view`: an lvalue; dimension 1 (compile error for a
/// fixed dimension, `invalid_argument` at run time for `xt::xarray`); adjacent elements
/// (`strides[0] == 1`, else `invalid_argument`). Result: `vector_view<T>` (`const T` for a const
/// container). O(1), zero-copy.
template <class E>
requires detail::is_xtensor_container_v<std::remove_cvref_t<E>>
auto as_vector_view(E&& a) {
  using D = std::remove_cvref_t<E>;
  using element = std::remove_pointer_t<decltype(a.data())>;
  constexpr std::ptrdiff_t dimension = detail::xtensor_static_dimension_v<D>;
  if constexpr (!std::is_lvalue_reference_v<E>) {
    static_assert(std::is_lvalue_reference_v<E>,
                  "cellkit::as_vector_view: the xtensor argument is a temporary, so the view could dangle; store "
                  "it in a variable first");
    return vector_view<element>{};
  } else if constexpr (dimension != -1 && dimension != 1) {
    static_assert(dimension == -1 || dimension == 1,
                  "cellkit::as_vector_view needs a 1-D xtensor container (for 2-D use cellkit::as_matrix_view)");
    return vector_view<element>{};
  } else {
    if (a.dimension() != 1) {
      detail::throw_invalid_argument("as_vector_view", "a",
                                     "needs a 1-D array, got dimension " + std::to_string(a.dimension()));
    }
    const auto size = static_cast<index_t>(a.shape()[0]);
    const auto step = static_cast<index_t>(a.strides()[0]);
    if (size > 1 && step != 1) {
      detail::throw_invalid_argument(
          "as_vector_view", "a",
          "consecutive elements are " + std::to_string(step) +
              " apart, but cellkit vector views are contiguous; copy into xt::xtensor<T, 1> first");
    }
    return vector_view<element>(a.data() + a.data_offset(), size);
  }
}

/// The xtensor type `as_xtensor(matrix_view<T>)` / `as_xtensor(vector_view<T>)` returns: a
/// non-owning `xt::xtensor_adaptor` of N dimensions over `T*` (`const T*` for read-only views), with
/// explicit strides (layout_type::dynamic).
template <class T, std::size_t N>
using xtensor_view_adaptor_t =
    xt::xtensor_adaptor<xt::xbuffer_adaptor<T*, xt::no_ownership, std::allocator<std::remove_const_t<T>>>, N,
                        xt::layout_type::dynamic>;

/// A non-owning xtensor expression over a host `matrix_view`: an `xt::xtensor_adaptor` of shape
/// {rows, cols} and strides {stride, 1} (0 for dimensions of extent 1, xtensor's convention), as
/// `xt::adapt(data, size, xt::no_ownership(), shape, strides)` builds it. Writes through it reach the
/// view's memory; for `matrix_view<const T>` it is read-only. Zero-copy, O(1). To own a copy:
/// `xt::xtensor<T, 2> copy = as_xtensor(view);`. Device views are a compile error.
template <class T, class Space>
xtensor_view_adaptor_t<T, 2> as_xtensor(matrix_view<T, Space> a) {
  static_assert(std::is_same_v<Space, host_space>,
                "cellkit::as_xtensor: xtensor cannot read device memory; copy the view to a host_buffer first "
                "(cellkit::copy with the cuda policy)");
  // xtensor sizes an adaptor's buffer by its element count (rows x cols), whatever the strides.
  const auto size = static_cast<std::size_t>(a.rows() * a.cols());
  const std::array<std::size_t, 2> shape{static_cast<std::size_t>(a.rows()), static_cast<std::size_t>(a.cols())};
  const std::array<std::ptrdiff_t, 2> strides{a.rows() == 1 ? 0 : static_cast<std::ptrdiff_t>(a.stride()),
                                              a.cols() == 1 ? 0 : 1};
  return xt::adapt(a.data(), size, xt::no_ownership(), shape, strides, std::allocator<std::remove_const_t<T>>());
}

/// A non-owning 1-D `xt::xtensor_adaptor` of shape {size} over a host `vector_view` (read-only for
/// `vector_view<const T>`). Zero-copy, O(1). Device views are a compile error.
template <class T, class Space>
xtensor_view_adaptor_t<T, 1> as_xtensor(vector_view<T, Space> v) {
  static_assert(std::is_same_v<Space, host_space>,
                "cellkit::as_xtensor: xtensor cannot read device memory; copy the view to a host_buffer first "
                "(cellkit::copy with the cuda policy)");
  const std::array<std::size_t, 1> shape{static_cast<std::size_t>(v.size())};
  const std::array<std::ptrdiff_t, 1> strides{v.size() == 1 ? 0 : 1};
  return xt::adapt(v.data(), static_cast<std::size_t>(v.size()), xt::no_ownership(), shape, strides,
                   std::allocator<std::remove_const_t<T>>());
}

}  // namespace cellkit
