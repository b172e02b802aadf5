#pragma once
/// @file
/// Memory spaces: tags that say where a view's data lives, so that passing host memory to a device
/// policy (or the reverse) is a compile error rather than a crash.

#include <type_traits>

namespace cellkit {

/// Ordinary host memory (new, malloc, std::vector, Eigen, xtensor, host_buffer).
struct host_space {};
/// CUDA global memory (cudaMalloc, device_buffer).
struct device_space {};

template <class Space>
inline constexpr bool is_memory_space_v = std::is_same_v<Space, host_space> || std::is_same_v<Space, device_space>;

}  // namespace cellkit
