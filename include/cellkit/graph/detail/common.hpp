#pragma once
/// @file
/// Internal helpers shared by the cellkit::graph headers: policy checks, CSR checks with messages
/// that name the caller and the argument, and a host parallel loop with a choice of schedule.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/detail/host_parallel.hpp>
#include <cellkit/execution/policy.hpp>

#include <cmath>
#include <string>
#include <type_traits>

namespace cellkit::graph::detail {

/// Host policies only: the graph module builds owning structures and sorts on the host.
template <class Policy>
constexpr void require_host_policy() {
  static_assert(is_execution_policy_v<Policy>,
                "cellkit::graph: the first argument must be an execution policy: cellkit::serial{} or "
                "cellkit::openmp{threads}");
  static_assert(is_host_policy_v<Policy>,
                "cellkit::graph: this function runs on host policies (cellkit::serial, cellkit::openmp); copy "
                "device data to host buffers first (see docs/graph.md for the functions that take cellkit::cuda)");
}

using cellkit::detail::host_threads;

using cellkit::detail::parallel_for;

/// Full structural check of a host CSR matrix (O(rows + nnz)), with messages naming `fn` and `name`:
/// indptr from 0 to nnz, non-decreasing; columns in [0, cols), strictly increasing in each row.
template <class T, class Index>
void check_csr(const char* fn, const char* name, const csr_view<T, Index, host_space>& a) {
  if (a.rows() == 0) {
    CELLKIT_EXPECTS(a.nnz() == 0, fn, name, "a matrix without rows must have nnz = 0");
    return;
  }
  CELLKIT_EXPECTS(static_cast<index_t>(a.indptr()[0]) == 0, fn, name, "indptr[0] must be 0");
  CELLKIT_EXPECTS(static_cast<index_t>(a.indptr()[a.rows()]) == a.nnz(), fn, name,
                  "indptr[rows] = " + std::to_string(static_cast<index_t>(a.indptr()[a.rows()])) +
                      " must equal nnz = " + std::to_string(a.nnz()));
  for (index_t i = 0; i < a.rows(); ++i) {
    const index_t begin = a.row_begin(i);
    const index_t end = a.row_end(i);
    CELLKIT_EXPECTS(begin <= end && end <= a.nnz(), fn, name, "indptr decreases at row " + std::to_string(i));
    for (index_t p = begin; p < end; ++p) {
      const auto column = static_cast<index_t>(a.indices()[p]);
      CELLKIT_EXPECTS(column >= 0 && column < a.cols(), fn, name,
                      "column index " + std::to_string(column) + " in row " + std::to_string(i) + " is outside [0, " +
                          std::to_string(a.cols()) + ")");
      CELLKIT_EXPECTS(p == begin || static_cast<index_t>(a.indices()[p - 1]) < column, fn, name,
                      "the column indices of row " + std::to_string(i) +
                          " are not sorted or contain a duplicate (CSR rows must be strictly increasing)");
    }
  }
}

/// The structural check for per-call hot paths: run when CELLKIT_DEBUG_CHECKS is 1.
template <class T, class Index>
void debug_check_csr([[maybe_unused]] const char* fn, [[maybe_unused]] const char* name,
                     [[maybe_unused]] const csr_view<T, Index, host_space>& a) {
#if CELLKIT_DEBUG_CHECKS
  check_csr(fn, name, a);
#endif
}

/// Weights must be finite and, unless `allow_negative`, >= 0. O(nnz).
template <class T, class Index>
void check_weights(const char* fn, const char* name, const csr_view<T, Index, host_space>& a, bool allow_negative) {
  for (index_t i = 0; i < a.rows(); ++i) {
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) {
      const double w = static_cast<double>(a.values()[p]);
      CELLKIT_EXPECTS(
          std::isfinite(w), fn, name,
          "weight of entry (" + std::to_string(i) + ", " + std::to_string(a.indices()[p]) + ") is not finite");
      CELLKIT_EXPECTS(allow_negative || w >= 0.0, fn, name,
                      "weight of entry (" + std::to_string(i) + ", " + std::to_string(a.indices()[p]) + ") is " +
                          std::to_string(w) + "; negative weights are not allowed here");
    }
  }
}

template <class T, class Index>
void check_square(const char* fn, const char* name, const csr_view<T, Index, host_space>& a) {
  expect_shapes(a.rows() == a.cols(), fn, name, a.shape(), name, a.shape(), "a graph's adjacency must be square");
}

/// Every value of a matrix is finite. O(rows * cols).
template <class T>
void check_finite(const char* fn, const char* name, const matrix_view<T, host_space>& x) {
  for (index_t i = 0; i < x.rows(); ++i) {
    const T* row = x.row_data(i);
    bool ok = true;
    for (index_t j = 0; j < x.cols(); ++j) ok &= std::isfinite(static_cast<double>(row[j]));
    if (!ok) {
      for (index_t j = 0; j < x.cols(); ++j) {
        CELLKIT_EXPECTS(std::isfinite(static_cast<double>(row[j])), fn, name,
                        "entry (" + std::to_string(i) + ", " + std::to_string(j) + ") is not finite (NaN or inf)");
      }
    }
  }
}

}  // namespace cellkit::graph::detail
