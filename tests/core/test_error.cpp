#include <cellkit/core/error.hpp>

#include "support/test_support.hpp"

using namespace cellkit;

TEST_CASE("exceptions derive from cellkit::error and std::exception") {
  static_assert(std::is_base_of_v<std::exception, error>);
  static_assert(std::is_base_of_v<error, invalid_argument>);
  static_assert(std::is_base_of_v<error, dimension_mismatch>);
  static_assert(std::is_base_of_v<error, cuda_error>);
  try {
    throw cuda_error("cudaMalloc failed");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()) == "cudaMalloc failed");
  }
}

TEST_CASE("dimension_mismatch names both arguments and both shapes") {
  CHECK_THROWS_WITH_AS(expect_shapes(false, "f", "A", {3, 4}, "B", {5, 2}, "A.cols must equal B.rows"),
                       "f: dimension mismatch: A is 3 x 4 but B is 5 x 2 (A.cols must equal B.rows)",
                       dimension_mismatch);
  CHECK_NOTHROW(expect_shapes(true, "f", "A", {3, 4}, "B", {4, 2}, "ok"));
}

TEST_CASE("CELLKIT_EXPECTS throws invalid_argument naming the function and argument") {
  CHECK_THROWS_WITH_AS(CELLKIT_EXPECTS(1 > 2, "kmeans", "k", "must be at most n = 2"),
                       "kmeans: invalid argument 'k': must be at most n = 2", invalid_argument);
  CHECK_NOTHROW(CELLKIT_EXPECTS(2 > 1, "kmeans", "k", "unused"));
}

TEST_CASE("CELLKIT_DEBUG_EXPECTS is active in the test build") {
  static_assert(CELLKIT_DEBUG_CHECKS == 1, "tests are compiled with CELLKIT_DEBUG_CHECKS=1");
  CHECK_THROWS_AS(CELLKIT_DEBUG_EXPECTS(false, "f", "x", "checked"), invalid_argument);
}
