#include <cellkit/core/buffer.hpp>

#include "support/test_support.hpp"

#include <cstdint>

using namespace cellkit;

TEST_CASE("host_buffer is zero-initialised, aligned, move-only") {
  host_buffer<double> b(1000);
  CHECK(b.size() == 1000);
  CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 64 == 0);
  CHECK(std::all_of(b.begin(), b.end(), [](double x) { return x == 0.0; }));
  host_buffer<int> filled(5, 7);
  CHECK(filled[4] == 7);
  host_buffer<double> moved = std::move(b);
  CHECK(moved.size() == 1000);
  CHECK(b.size() == 0);  // NOLINT(bugprone-use-after-move): moved-from state is documented as empty
  CHECK(b.data() == nullptr);
  static_assert(!std::is_copy_constructible_v<host_buffer<double>>);
  host_buffer<float> empty;
  CHECK(empty.empty());
  host_buffer<float> uninit(3, uninitialized);
  CHECK(uninit.size() == 3);
}

TEST_CASE("host_buffer views as vector and matrix") {
  host_buffer<float> b(6);
  auto m = b.as_matrix(2, 3);
  m(1, 2) = 5;
  CHECK(b[5] == 5);
  CHECK(b.view().size() == 6);
  CHECK_THROWS_WITH_AS(
      b.as_matrix(4, 2),
      "host_buffer::as_matrix: invalid argument 'rows/cols': 4 x 2 does not match the buffer's 6 elements",
      invalid_argument);
  CHECK_THROWS_AS(host_buffer<float>(-2), invalid_argument);
}
