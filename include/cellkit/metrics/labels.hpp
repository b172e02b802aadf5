#pragma once
/// @file
/// How metrics accept their inputs: any contiguous sequence with `data()` and `size()` (std::vector,
/// std::span, std::array, Eigen vectors, xtensor 1-D containers, cellkit::vector_view) or a raw
/// pointer with a length (`cellkit::metrics::labels(ptr, n)`). Labels are any integral type with
/// arbitrary values (negative, non-contiguous); scores are any floating-point type.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>

#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>

namespace cellkit::metrics {

/// A contiguous sequence exposing `data()` and `size()`.
template <class R>
concept contiguous_sequence = requires(const R& r) {
  { r.data() } -> std::convertible_to<const void*>;
  { r.size() } -> std::convertible_to<std::size_t>;
};

template <class R>
using sequence_value_t = std::remove_cv_t<std::remove_pointer_t<decltype(std::declval<const R&>().data())>>;

/// A contiguous sequence of integral labels (bool excluded: use it for binary ranking labels).
template <class R>
concept label_sequence =
    contiguous_sequence<R> && std::integral<sequence_value_t<R>> && !std::same_as<sequence_value_t<R>, bool>;

/// A contiguous sequence of floating-point values (scores, coordinates).
template <class R>
concept real_sequence = contiguous_sequence<R> && std::floating_point<sequence_value_t<R>>;

/// Read-only view of a sequence as a std::span (no copy).
template <contiguous_sequence R>
std::span<const sequence_value_t<R>> as_span(const R& r) {
  return {r.data(), static_cast<std::size_t>(r.size())};
}

/// Labels given as a raw pointer and a length.
template <class T>
std::span<const T> labels(const T* data, index_t size) {
  CELLKIT_EXPECTS(size >= 0, "metrics::labels", "size", "must be non-negative, got " + std::to_string(size));
  CELLKIT_EXPECTS(data != nullptr || size == 0, "metrics::labels", "data", "null pointer with size > 0");
  return {data, static_cast<std::size_t>(size)};
}

namespace detail {
/// Throws `dimension_mismatch` naming both inputs when their lengths differ.
inline void expect_same_length(const char* function, const char* name_a, std::size_t a, const char* name_b,
                               std::size_t b) {
  expect_shapes(a == b, function, name_a, {static_cast<index_t>(a), 1}, name_b, {static_cast<index_t>(b), 1},
                "the inputs must have the same length");
}
}  // namespace detail

}  // namespace cellkit::metrics
