#pragma once
/// @file
/// Internal helpers of cellkit/preprocess: fixed row blocks (so results never depend on the thread
/// count), column sums merged in block order, and argument checks.

#include <cellkit/cluster/detail/parallel.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::preprocess::detail {

using cellkit::cluster::detail::effective_threads;
using cellkit::cluster::detail::host_threads;
using cellkit::cluster::detail::parallel_blocks;
using cellkit::cluster::detail::value_text;

/// Rows per block of every row-parallel pass; fixed, so partial sums merge in the same order for
/// every thread count.
inline constexpr index_t block_rows = 512;

inline index_t block_count(index_t rows) { return (rows + block_rows - 1) / block_rows; }

template <class T>
inline constexpr bool is_real_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

/// Host policy check shared by every preprocessing function (a cuda policy does not compile).
template <class Policy, class... Spaces>
constexpr void check_host_policy() {
  static_assert(is_execution_policy_v<Policy>,
                "cellkit::preprocess: the first argument must be an execution policy (cellkit::serial{}, "
                "cellkit::openmp{threads})");
  static_assert(!is_device_policy_v<Policy>,
                "cellkit::preprocess runs on the host only: use cellkit::serial{} or cellkit::openmp{threads} "
                "with host data (copy device data to a host_buffer first)");
  static_assert((std::is_same_v<Spaces, host_space> && ...),
                "cellkit::preprocess: views must be in host memory (cellkit::host_space)");
}

/// Per-column sums of f(value) over the stored entries of a CSR matrix, and the number of stored
/// entries per column, in double, merged over fixed row blocks in block order.
template <class T, class Index, class F>
void column_sums(int threads, const csr_view<const T, Index>& x, F&& f, std::vector<double>& sums,
                 std::vector<index_t>* counts) {
  const index_t d = x.cols();
  const index_t blocks = block_count(x.rows());
  std::vector<double> partial(static_cast<std::size_t>(blocks * d), 0.0);
  std::vector<index_t> partial_counts(counts != nullptr ? static_cast<std::size_t>(blocks * d) : 0, 0);
  threads = effective_threads(threads, static_cast<double>(x.nnz()));
  parallel_blocks(threads, blocks, [&](int, index_t b) {
    double* p = partial.data() + b * d;
    index_t* c = counts != nullptr ? partial_counts.data() + b * d : nullptr;
    const index_t last = std::min(x.rows(), (b + 1) * block_rows);
    for (index_t i = b * block_rows; i < last; ++i)
      for (index_t k = x.row_begin(i); k < x.row_end(i); ++k) {
        const auto j = static_cast<index_t>(x.indices()[k]);
        p[j] += f(static_cast<double>(x.values()[k]), j);
        if (c != nullptr) ++c[j];
      }
  });
  sums.assign(static_cast<std::size_t>(d), 0.0);
  if (counts != nullptr) counts->assign(static_cast<std::size_t>(d), 0);
  for (index_t b = 0; b < blocks; ++b)
    for (index_t j = 0; j < d; ++j) {
      sums[static_cast<std::size_t>(j)] += partial[static_cast<std::size_t>(b * d + j)];
      if (counts != nullptr)
        (*counts)[static_cast<std::size_t>(j)] += partial_counts[static_cast<std::size_t>(b * d + j)];
    }
}

/// scanpy's sparse mean and variance of each column (`sparse_mean_var_minor_axis`): mean = sum/n,
/// var = (sum over stored (x - mean)^2 + (n - stored) mean^2) / n, then times n/(n-1) (ddof = 1).
/// `transform` maps each stored value first (expm1 for the Seurat flavour).
template <class T, class Index, class F>
void column_mean_var(int threads, const csr_view<const T, Index>& x, F&& transform, std::vector<double>& mean,
                     std::vector<double>& var) {
  const auto n = static_cast<double>(x.rows());
  std::vector<index_t> stored;
  column_sums(
      threads, x, [&](double v, index_t) { return transform(v); }, mean, &stored);
  for (double& m : mean) m /= n;
  column_sums(
      threads, x,
      [&](double v, index_t j) {
        const double diff = transform(v) - mean[static_cast<std::size_t>(j)];
        return diff * diff;
      },
      var, nullptr);
  for (std::size_t j = 0; j < var.size(); ++j) {
    var[j] += (n - static_cast<double>(stored[j])) * mean[j] * mean[j];
    var[j] /= n;
    var[j] *= n / (n - 1.0);
  }
}

template <class T, class Index>
void expect_finite_values(const csr_view<const T, Index>& x, const char* function, const char* argument) {
  for (index_t k = 0; k < x.nnz(); ++k) {
    if (!std::isfinite(x.values()[k])) {
      index_t row = 0;
      while (x.row_end(row) <= k) ++row;
      cellkit::detail::throw_invalid_argument(function, argument,
                                              "stored value of row " + std::to_string(row) + ", column " +
                                                  std::to_string(static_cast<index_t>(x.indices()[k])) + " is " +
                                                  value_text(x.values()[k]) + ": every value must be finite");
    }
  }
}

}  // namespace cellkit::preprocess::detail
