#include <cellkit/core/config.hpp>
#include <cellkit/version.hpp>

#include "support/test_support.hpp"

#include <string>

#if defined(__CUDACC__)
constexpr int compiled_by_nvcc = 1;
#else
constexpr int compiled_by_nvcc = 0;
#endif
#if defined(_OPENMP)
constexpr int compiled_with_openmp = 1;
#else
constexpr int compiled_with_openmp = 0;
#endif

TEST_CASE("config macros describe this translation unit") {
  CHECK(CELLKIT_CUDA_COMPILER == compiled_by_nvcc);
  CHECK(CELLKIT_DEVICE_CODE == 0);  // host pass
  CHECK(CELLKIT_HAS_OPENMP == compiled_with_openmp);
  static_assert(sizeof(cellkit::index_t) == 8 && std::is_signed_v<cellkit::index_t>);
}

TEST_CASE("version numbers agree with the version string") {
  const std::string expected = std::to_string(cellkit::version_major) + "." + std::to_string(cellkit::version_minor) +
                               "." + std::to_string(cellkit::version_patch);
  CHECK(expected == cellkit::version_string);
}
