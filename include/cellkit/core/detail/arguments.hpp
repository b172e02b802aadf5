#pragma once
/// @file
/// Parameter types of the layer functions (internal; `cellkit::nn` and `cellkit::graph` re-export
/// them). The element type T of a layer is deduced from its output (or its graph); these aliases
/// keep the other arguments out of template deduction, so a `matrix_view<T>` converts to
/// `matrix_view<const T>` and a view converts to `std::optional<view>` at the call site. `Space` is
/// deduced from another argument (device_space under the cuda policy).

#include <cellkit/core/memory_space.hpp>
#include <cellkit/core/views.hpp>

#include <optional>
#include <type_traits>

namespace cellkit::detail {

/// A read-only matrix input.
template <class T, class Space = host_space>
using const_matrix_arg = std::type_identity_t<matrix_view<const T, Space>>;
/// An optional read-only vector input (e.g. a bias): a view or `std::nullopt`.
template <class T, class Space = host_space>
using optional_vector_arg = std::type_identity_t<std::optional<vector_view<const T, Space>>>;
/// An optional matrix output (a gradient): a view or `std::nullopt` to skip it.
template <class T, class Space = host_space>
using optional_matrix_out = std::type_identity_t<std::optional<matrix_view<T, Space>>>;
/// An optional vector output (a gradient): a view or `std::nullopt` to skip it.
template <class T, class Space = host_space>
using optional_vector_out = std::type_identity_t<std::optional<vector_view<T, Space>>>;

}  // namespace cellkit::detail
