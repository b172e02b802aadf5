#pragma once
/// @file
/// Execution policies: the first argument of every cellkit algorithm.
///
/// - `serial{}`: one host thread, in index order. The reference oracle for the other backends.
/// - `openmp{threads}`: host threads through OpenMP (`threads = 0` takes OpenMP's default). In a
///   translation unit compiled without OpenMP it runs on the calling thread; `openmp::available()`
///   says which.
/// - `cuda{stream}`: a CUDA stream (0 = the legacy default stream). Usable only in translation units
///   compiled by nvcc; operations are asynchronous on the stream unless their documentation says
///   they synchronise.
///
/// Policies are small value types; copying one is free.

#include <cellkit/core/config.hpp>
#include <cellkit/core/memory_space.hpp>

#include <type_traits>

#if CELLKIT_HAS_OPENMP
#include <omp.h>
#endif

struct CUstream_st;  // cudaStream_t is `CUstream_st*`; declared here so the policy needs no CUDA header

namespace cellkit {

struct serial {
  using memory_space = host_space;
};

struct openmp {
  using memory_space = host_space;
  int threads = 0;  ///< number of threads; 0 means OpenMP's current default (OMP_NUM_THREADS)

  /// True when this translation unit was compiled with OpenMP.
  static constexpr bool available() { return CELLKIT_HAS_OPENMP != 0; }
  /// The number of threads a parallel region of this policy uses.
  int resolved_threads() const {
#if CELLKIT_HAS_OPENMP
    return threads > 0 ? threads : omp_get_max_threads();
#else
    return 1;
#endif
  }
};

struct cuda {
  using memory_space = device_space;
  CUstream_st* stream = nullptr;  ///< the stream work is queued on
};

template <class Policy>
inline constexpr bool is_execution_policy_v =
    std::is_same_v<Policy, serial> || std::is_same_v<Policy, openmp> || std::is_same_v<Policy, cuda>;
template <class Policy>
inline constexpr bool is_host_policy_v = std::is_same_v<Policy, serial> || std::is_same_v<Policy, openmp>;
template <class Policy>
inline constexpr bool is_device_policy_v = std::is_same_v<Policy, cuda>;

/// The best host policy in this translation unit: OpenMP with its default threads when available.
inline auto default_host_policy() {
#if CELLKIT_HAS_OPENMP
  return openmp{};
#else
  return serial{};
#endif
}

namespace detail {
template <class...>
inline constexpr bool dependent_false_v = false;

/// Threads a host policy runs on: openmp's resolved count, 1 for serial.
template <class Policy>
int host_threads(const Policy& policy) {
  if constexpr (std::is_same_v<Policy, openmp>) {
    return policy.resolved_threads();
  } else {
    (void)policy;
    return 1;
  }
}

/// Compile-time checks every algorithm runs on its policy and on the space of each view it receives.
template <class Policy, class... Spaces>
constexpr void check_policy_and_spaces() {
  static_assert(is_execution_policy_v<Policy>,
                "cellkit: the first argument must be an execution policy: cellkit::serial{}, "
                "cellkit::openmp{threads} or cellkit::cuda{stream}");
  if constexpr (is_device_policy_v<Policy>) {
    static_assert(CELLKIT_CUDA_COMPILER || dependent_false_v<Policy>,
                  "cellkit::cuda policy used in a translation unit that is not compiled by nvcc: rename the "
                  "file to .cu (or set its LANGUAGE to CUDA in CMake) and build with -DCELLKIT_ENABLE_CUDA=ON, "
                  "or use cellkit::serial / cellkit::openmp");
    static_assert((std::is_same_v<Spaces, device_space> && ...),
                  "cellkit::cuda policy given a host view: copy the data to the device first (device_buffer + "
                  "cellkit::copy(policy, src, dst)) and pass views with cellkit::device_space");
  } else {
    static_assert((std::is_same_v<Spaces, host_space> && ...),
                  "host policy (cellkit::serial / cellkit::openmp) given a device view: use cellkit::cuda{stream} "
                  "for device data, or copy it to a host_buffer first with cellkit::copy");
  }
}
}  // namespace detail

}  // namespace cellkit
