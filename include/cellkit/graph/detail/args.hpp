#pragma once
/// @file
/// Parameter types of the graph layers (internal header; the aliases live in cellkit::graph and are
/// the ones the nn blocks use, core/detail/arguments.hpp).

#include <cellkit/core/detail/arguments.hpp>
#include <cellkit/core/memory_space.hpp>

namespace cellkit::graph {

using cellkit::detail::const_matrix_arg;
using cellkit::detail::optional_matrix_out;
using cellkit::detail::optional_vector_out;
/// An optional read-only bias: a view or `std::nullopt`.
template <class T, class Space = host_space>
using optional_bias_arg = cellkit::detail::optional_vector_arg<T, Space>;

}  // namespace cellkit::graph
