#pragma once
/// @file
/// Element functors shared by the portable (every-policy) evaluations of the algorithm families
/// (internal): `for_each_index` bodies that the host policies and the cuda policy run alike.

#include <cellkit/core/config.hpp>
#include <cellkit/core/views.hpp>

#include <limits>

namespace cellkit::detail {

/// Row and column of element e of a row-major enumeration of a matrix with `cols` columns.
struct matrix_element {
  index_t i, j;
};
CELLKIT_HD inline matrix_element element_at(index_t e, index_t cols) {
  const index_t i = e / cols;
  return {i, e - i * cols};
}

/// data[k] = value.
template <class U>
struct fill_fn {
  U* data;
  U value;
  CELLKIT_HD void operator()(index_t k) const { data[k] = value; }
};

/// y(i, j) = a x(i, j) + b y(i, j), one element per call (y is not read when b = 0; strides may
/// differ).
template <class T, class Space>
struct axpby_fn {
  T a;
  matrix_view<const T, Space> x;
  T b;
  matrix_view<T, Space> y;
  CELLKIT_HD void operator()(index_t e) const {
    const auto [i, j] = element_at(e, y.cols());
    y(i, j) = b == T(0) ? a * x(i, j) : a * x(i, j) + b * y(i, j);
  }
};

/// The "none" of an element search (min-reduced with element indices).
inline constexpr index_t no_element = std::numeric_limits<index_t>::max();

/// e (row-major index) when x's element e is NaN or infinite, else no_element.
template <class T, class Space>
struct non_finite_element_fn {
  matrix_view<const T, Space> x;
  CELLKIT_HD index_t operator()(index_t e) const {
    const index_t i = e / x.cols();
    const T v = x(i, e - i * x.cols());
    return v - v == T(0) ? no_element : e;
  }
};

}  // namespace cellkit::detail
