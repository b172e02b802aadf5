#include <cellkit/execution/policy.hpp>

#include "support/test_support.hpp"

using namespace cellkit;

TEST_CASE("policy traits classify the three policies") {
  static_assert(is_execution_policy_v<serial> && is_execution_policy_v<openmp> && is_execution_policy_v<cuda>);
  static_assert(!is_execution_policy_v<int>);
  static_assert(is_host_policy_v<serial> && is_host_policy_v<openmp> && !is_host_policy_v<cuda>);
  static_assert(is_device_policy_v<cuda> && !is_device_policy_v<serial>);
  static_assert(std::is_same_v<serial::memory_space, host_space>);
  static_assert(std::is_same_v<cuda::memory_space, device_space>);
  static_assert(std::is_trivially_copyable_v<openmp> && std::is_trivially_copyable_v<cuda>);
  CHECK(openmp{}.threads == 0);
  CHECK(cuda{}.stream == nullptr);
}

TEST_CASE("default host policy is OpenMP exactly when OpenMP is compiled in") {
  auto p = default_host_policy();
  CHECK(std::is_same_v<decltype(p), openmp> == (CELLKIT_HAS_OPENMP != 0));
  CHECK(openmp::available() == (CELLKIT_HAS_OPENMP != 0));
  CHECK(openmp{4}.resolved_threads() == (openmp::available() ? 4 : 1));
  CHECK(openmp{}.resolved_threads() >= 1);
}
