#include <cellkit/core/memory_space.hpp>
#include <cellkit/core/views.hpp>

#include "support/test_support.hpp"

using namespace cellkit;

TEST_CASE("memory spaces are distinct tags carried by views") {
  static_assert(is_memory_space_v<host_space> && is_memory_space_v<device_space> && !is_memory_space_v<int>);
  static_assert(is_host_view_v<matrix_view<float>> && !is_device_view_v<matrix_view<float>>);
  static_assert(is_device_view_v<vector_view<float, device_space>>);
  static_assert(!std::is_convertible_v<matrix_view<float, device_space>, matrix_view<float, host_space>>);
  CHECK(true);
}
