// device_buffer exists only under nvcc; this file is compiled only in the CUDA build.
#include <cellkit/core/copy.hpp>
#include <cellkit/core/device_buffer.cuh>

#include "support/test_support.hpp"

using namespace cellkit;

TEST_CASE("device_buffer allocates, moves, and round-trips through copy") {
  if (!detail::cuda_device_available()) {
    MESSAGE("skipped: this case needs a CUDA device and none is present");
    return;
  }
  std::vector<float> host = {1, 2, 3, 4, 5, 6};
  device_buffer<float> d(6);
  cuda policy{};
  copy(policy, vector_view<const float>(host.data(), 6), d.view());
  device_buffer<float> moved = std::move(d);
  CHECK(d.data() == nullptr);
  std::vector<float> back(6);
  copy(policy, moved.view(), vector_view<float>(back.data(), 6));
  synchronize(policy);
  CHECK(back == host);
  auto m = moved.as_matrix(2, 3);
  CHECK(m.rows() == 2);
  CHECK_THROWS_AS(moved.as_matrix(4, 2), invalid_argument);
}

TEST_CASE("device_buffer rejects a negative size without touching the GPU") {
  CHECK_THROWS_AS(device_buffer<double>(-1), invalid_argument);
}
