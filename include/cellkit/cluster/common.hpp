#pragma once
/// @file
/// Types shared by the clustering heads in `cellkit/cluster/` (namespace `cellkit::cluster`):
/// how an iterative algorithm stopped, and how a loss over cells is reduced.
///
/// Every clustering head lives in `cellkit::cluster` (soft_assignment.hpp, sinkhorn.hpp,
/// kmeans.hpp); see docs/cluster.md. The heads run on the host (`serial{}`, `openmp{threads}`):
/// passing a `cuda` policy or device views is a compile error that says to copy the data to the
/// host first.

#include <cellkit/core/config.hpp>
#include <cellkit/execution/policy.hpp>

#include <type_traits>

namespace cellkit::cluster {

/// Why an iterative algorithm returned. Every iterative head returns it in its result struct next
/// to `iterations`, `converged` and the final error.
enum class stop_reason {
  converged,            ///< the stopping criterion (tolerance, unchanged labels) was met
  max_iterations,       ///< the iteration budget ran out first
  numerical_error,      ///< a non-finite or zero intermediate appeared; the last finite iterate is returned
  stopped_by_callback,  ///< the progress callback returned false
};

/// A short English name of a stop reason ("converged", "max_iterations", ...).
constexpr const char* to_string(stop_reason reason) {
  switch (reason) {
    case stop_reason::converged:
      return "converged";
    case stop_reason::max_iterations:
      return "max_iterations";
    case stop_reason::numerical_error:
      return "numerical_error";
    case stop_reason::stopped_by_callback:
      return "stopped_by_callback";
  }
  return "unknown";
}

/// How a loss summed over the N x K entries of an assignment matrix is normalised.
/// - `sum`: no normalisation.
/// - `batchmean`: divided by N, the number of cells (PyTorch `KLDivLoss(reduction='batchmean')`,
///   the mathematically correct KL per cell; the default of the KL losses).
/// - `mean`: divided by N K, the number of entries (PyTorch's `reduction='mean'`, the default of
///   `BCELoss`).
enum class loss_reduction { sum, batchmean, mean };

namespace detail {

/// Compile-time check shared by the cluster heads: host policy and host views only.
template <class Policy, class... Spaces>
constexpr void check_host_policy_and_spaces() {
  cellkit::detail::check_policy_and_spaces<Policy, Spaces...>();
  static_assert(is_host_policy_v<Policy>,
                "cellkit::cluster heads run on the host: use cellkit::serial{} or cellkit::openmp{threads}, and "
                "copy device data to a host_buffer first (cellkit::copy)");
}

template <class T>
inline constexpr bool is_real_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

}  // namespace detail

}  // namespace cellkit::cluster
