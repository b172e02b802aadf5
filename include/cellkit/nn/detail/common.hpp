#pragma once
/// @file
/// Internal helpers of the nn blocks: argument aliases and an element-wise loop over a (strided)
/// matrix on any policy.

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/arguments.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/detail/host_parallel.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>

#include <optional>
#include <type_traits>

namespace cellkit::nn {

using cellkit::detail::const_matrix_arg;
using cellkit::detail::optional_matrix_out;
using cellkit::detail::optional_vector_arg;
using cellkit::detail::optional_vector_out;

}  // namespace cellkit::nn

namespace cellkit::nn::detail {

/// Below this many elements a host pass runs on the calling thread: waking a team costs more
/// than it saves (element-wise results never depend on the thread count).
inline constexpr index_t parallel_elements_threshold = 32768;

/// Calls f(r, c) for every element of a rows x cols matrix. Host: rows in parallel, columns in an
/// inner loop (vectorisable when f inlines). cuda: one grid-stride index per element; f must be a
/// CELLKIT_HD functor.
template <class F>
struct element_index_adapter {
  index_t cols;
  F f;
  CELLKIT_HD void operator()(index_t i) const { f(i / cols, i % cols); }
};

template <class Policy, class F>
void for_each_element(const Policy& policy, index_t rows, index_t cols, const F& f) {
  if (rows <= 0 || cols <= 0) return;
  if constexpr (is_host_policy_v<Policy>) {
    auto row_loop = [&](index_t r) {
      for (index_t c = 0; c < cols; ++c) f(r, c);
    };
    if (rows * cols < parallel_elements_threshold) {
      for (index_t r = 0; r < rows; ++r) row_loop(r);
    } else {
      cellkit::detail::parallel_for(policy, rows, row_loop);
    }
  } else {
    for_each_index(policy, rows * cols, element_index_adapter<F>{cols, f});
  }
}

/// Host only: calls f(r) for every row r of a rows x cols matrix (rows in parallel above the
/// threshold); f runs its own, vectorisable, loop over the row's columns.
template <class Policy, class F>
void for_each_row(const Policy& policy, index_t rows, index_t cols, const F& f) {
  static_assert(is_host_policy_v<Policy>, "for_each_row is host-only");
  if (rows <= 0 || cols <= 0) return;
  if (rows * cols < parallel_elements_threshold) {
    for (index_t r = 0; r < rows; ++r) f(r);
  } else {
    cellkit::detail::parallel_for(policy, rows, f);
  }
}

}  // namespace cellkit::nn::detail
