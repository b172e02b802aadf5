#pragma once
/// @file
/// Scratch arrays in the memory space a policy computes in (internal).

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/memory_space.hpp>

#include <type_traits>

#if CELLKIT_CUDA_COMPILER
#include <cellkit/core/device_buffer.cuh>
#endif

namespace cellkit::detail {

/// `n` uninitialised elements: a host_buffer for host_space, a device_buffer (nvcc only) for
/// device_space. Callers reject a device space outside nvcc first (check_policy_and_spaces).
template <class U, class Space>
auto make_scratch(index_t n) {
  if constexpr (std::is_same_v<Space, host_space>) {
    return host_buffer<U>(n, uninitialized);
  } else {
#if CELLKIT_CUDA_COMPILER
    return device_buffer<U>(n);
#else
    return host_buffer<U>(n, uninitialized);
#endif
  }
}

}  // namespace cellkit::detail
