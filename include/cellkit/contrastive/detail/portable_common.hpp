#pragma once
/// @file
/// The contrastive losses' evaluation for every policy (internal): argument checks that read device
/// memory, and the row L2 normalisation (forward and backward) as `CELLKIT_HD` functors over
/// `for_each_index`. The `cuda` policy runs the portable paths built on these (portable_*.hpp); the
/// host policies keep their tuned kernels and run the portable paths only in the tests, which is
/// how the device arithmetic is checked on machines without a GPU (docs/design.md, item 12).
///
/// Every functor writes its own outputs and sums in a fixed order (no atomics), so a device run
/// gives the same bits every time; it agrees with the host kernels to rounding.

#include <cellkit/contrastive/detail/common.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/copy.hpp>
#include <cellkit/core/detail/functors.hpp>
#include <cellkit/core/detail/math_impl.hpp>
#include <cellkit/core/detail/scratch.hpp>
#include <cellkit/core/detail/transfer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>

#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::contrastive::detail {

using ::cellkit::detail::axpby_fn;
using ::cellkit::detail::download;
using ::cellkit::detail::element_at;
using ::cellkit::detail::fill_fn;
using ::cellkit::detail::make_scratch;
using ::cellkit::detail::no_element;
using ::cellkit::detail::non_finite_element_fn;
using ::cellkit::detail::portable_sum;
using ::cellkit::detail::upload;

/// Compile-time checks of a contrastive loss's policy and the spaces of its views.
template <class Policy, class... Spaces>
constexpr void check_policy() {
  ::cellkit::detail::check_policy_and_spaces<Policy, Spaces...>();
}

/// Every element of x finite, else invalid_argument naming the argument and the first bad element
/// (the same message as the host check). Device views: one reduction, and one element copied back
/// when a value is bad; synchronises the stream.
template <class Policy, class T, class Space>
void check_finite_on(const Policy& policy, const char* function, const char* argument, matrix_view<const T, Space> x,
                     const char* values = "embeddings") {
  if constexpr (std::is_same_v<Space, host_space>) {
    (void)policy;
    check_finite<T>(function, argument, x, values);
  } else {
    if (x.rows() == 0 || x.cols() == 0) return;
    const index_t bad =
        transform_reduce(policy, x.rows() * x.cols(), no_element, min_op{}, non_finite_element_fn<T, Space>{x});
    if (bad == no_element) return;
    const index_t i = bad / x.cols();
    const index_t k = bad - i * x.cols();
    T value{};
    copy(policy, matrix_view<const T, Space>(x.row_data(i) + k, 1, 1), matrix_view<T>(&value, 1, 1));
    synchronize(policy);
    ::cellkit::detail::throw_invalid_argument(function, argument,
                                              std::string(argument) + "(" + std::to_string(i) + ", " +
                                                  std::to_string(k) + ") is " + (value != value ? "NaN" : "infinite") +
                                                  ": " + values + " must be finite");
  }
}

// ---------------------------------------------------------------------------------------------
// Row normalisation (F.normalize(x, p=2, dim=1, eps)) in any memory space
// ---------------------------------------------------------------------------------------------

/// u = h / max(||h||, eps) row by row, and the state its backward pass needs, in Space.
template <class T, class Space>
struct portable_normalized_rows {
  decltype(make_scratch<T, Space>(0)) u;
  decltype(make_scratch<T, Space>(0)) inv_denom;
  decltype(make_scratch<unsigned char, Space>(0)) clamped;
  index_t rows = 0;
  index_t cols = 0;

  portable_normalized_rows(index_t rows_, index_t cols_)
      : u(make_scratch<T, Space>(rows_ * cols_)),
        inv_denom(make_scratch<T, Space>(rows_)),
        clamped(make_scratch<unsigned char, Space>(rows_)),
        rows(rows_),
        cols(cols_) {}

  matrix_view<const T, Space> view() const { return {u.data(), rows, cols}; }
  matrix_view<const T, Space> row_block(index_t first, index_t count) const {
    return {u.data() + first * cols, count, cols};
  }
};

/// Row i of h into row offset + i of the normalised state (the norm accumulated in double, as the
/// host's normalize_into).
template <class T, class Space>
struct normalize_row_fn {
  matrix_view<const T, Space> h;
  T eps;
  T* u;
  T* inv_denom;
  unsigned char* clamped;
  index_t offset;
  CELLKIT_HD void operator()(index_t i) const {
    const index_t d = h.cols();
    const T* src = h.row_data(i);
    double sum = 0;
    for (index_t k = 0; k < d; ++k) sum += static_cast<double>(src[k]) * static_cast<double>(src[k]);
    const T norm = static_cast<T>(::cellkit::math::detail::sqrt_(sum));
    const bool is_clamped = !(norm > eps);
    const T denom = is_clamped ? eps : norm;
    T* dst = u + (offset + i) * d;
    for (index_t k = 0; k < d; ++k) dst[k] = src[k] / denom;
    inv_denom[offset + i] = T(1) / denom;
    clamped[offset + i] = is_clamped ? 1 : 0;
  }
};

/// Normalises the rows of h into rows [offset, offset + h.rows()) of `out`.
template <class Policy, class T, class Space>
void portable_normalize_into(const Policy& policy, matrix_view<const T, Space> h, T eps,
                             portable_normalized_rows<T, Space>& out, index_t offset) {
  for_each_index(policy, h.rows(),
                 normalize_row_fn<T, Space>{h, eps, out.u.data(), out.inv_denom.data(), out.clamped.data(), offset});
}

/// Backward of the normalisation for row offset + i: g (dL/du on entry) becomes dL/dh, times scale
/// (the host's normalize_backward).
template <class T, class Space>
struct normalize_backward_row_fn {
  const T* u;
  const T* inv_denom;
  const unsigned char* clamped;
  index_t offset;
  matrix_view<T, Space> g;
  T scale;
  CELLKIT_HD void operator()(index_t i) const {
    const index_t d = g.cols();
    T* gi = g.row_data(i);
    const T* ui = u + (offset + i) * d;
    const T inv = inv_denom[offset + i];
    if (clamped[offset + i]) {
      for (index_t k = 0; k < d; ++k) gi[k] = gi[k] * scale * inv;
      return;
    }
    double dot = 0;
    for (index_t k = 0; k < d; ++k) dot += static_cast<double>(ui[k]) * static_cast<double>(gi[k]);
    const T proj = static_cast<T>(dot);
    for (index_t k = 0; k < d; ++k) gi[k] = (gi[k] - ui[k] * proj) * (scale * inv);
  }
};

template <class Policy, class T, class Space>
void portable_normalize_backward(const Policy& policy, const portable_normalized_rows<T, Space>& state, index_t offset,
                                 matrix_view<T, Space> g, T scale) {
  for_each_index(policy, g.rows(),
                 normalize_backward_row_fn<T, Space>{state.u.data(), state.inv_denom.data(), state.clamped.data(),
                                                     offset, g, scale});
}

}  // namespace cellkit::contrastive::detail
