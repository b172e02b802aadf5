#pragma once
/// @file
/// Compile-time checks shared by the host-only metrics (ranking.hpp, silhouette.hpp): the policy
/// must be a host policy and no input may live in device memory.

#include <cellkit/core/memory_space.hpp>
#include <cellkit/execution/policy.hpp>

#include <type_traits>

namespace cellkit::metrics::detail {

/// True for sequence types that say they live in device memory (cellkit views with device_space).
template <class R, class = void>
inline constexpr bool is_device_sequence_v = false;
template <class R>
inline constexpr bool is_device_sequence_v<R, std::void_t<typename R::space>> =
    std::is_same_v<typename R::space, device_space>;

/// The ranking and silhouette metrics run on the host only: they sort, branch per threshold and
/// call the host GEMM. A `cuda` policy or a device view is refused at compile time with a sentence
/// that says what to do instead.
template <class Policy, class... Inputs>
constexpr void check_host_metric_inputs() {
  static_assert(is_execution_policy_v<Policy>,
                "cellkit::metrics: the first argument must be an execution policy: cellkit::serial{} or "
                "cellkit::openmp{threads} (or call the overload without a policy)");
  static_assert(!is_device_policy_v<Policy>,
                "cellkit::metrics ranking and silhouette functions run on the host only: pass cellkit::serial{} "
                "or cellkit::openmp{threads}, after copying device data to a host_buffer with cellkit::copy");
  static_assert(!(is_device_sequence_v<Inputs> || ...),
                "cellkit::metrics ranking and silhouette functions read their inputs on the host: copy device "
                "views to a host_buffer with cellkit::copy first");
}

}  // namespace cellkit::metrics::detail
