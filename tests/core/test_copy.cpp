#include <cellkit/core/copy.hpp>

#include "support/test_support.hpp"

#include <numeric>

using namespace cellkit;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

TEST_CASE_TEMPLATE("copy round-trips vectors and strided matrices through the policy's memory", P,
                   CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  auto policy = policy_of<P>();
  std::vector<double> source(5 * 7);
  std::iota(source.begin(), source.end(), 1.0);
  policy_array<P, double> staged(source);  // host -> policy space via copy
  CHECK(staged.to_host() == source);       // and back

  // strided host source: columns 2..5 of the 5 x 7 matrix, into a contiguous 5 x 4 in policy memory
  policy_array<P, double> block(5 * 4);
  copy(policy, matrix_view<const double>(source.data() + 2, 5, 4, 7), block.matrix(5, 4));
  synchronize(policy);
  const auto got = block.to_host();
  for (index_t i = 0; i < 5; ++i)
    for (index_t j = 0; j < 4; ++j)
      REQUIRE(got[static_cast<std::size_t>(i * 4 + j)] == source[static_cast<std::size_t>(i * 7 + j + 2)]);
}

TEST_CASE("copy checks shapes") {
  std::vector<float> a(6), b(8);
  CHECK_THROWS_WITH_AS(copy(serial{}, vector_view<const float>(a.data(), 6), vector_view<float>(b.data(), 8)),
                       "copy: dimension mismatch: src is 6 x 1 but dst is 8 x 1 (lengths must be equal)",
                       dimension_mismatch);
  CHECK_THROWS_AS(copy(serial{}, matrix_view<const float>(a.data(), 2, 3), matrix_view<float>(b.data(), 3, 2)),
                  dimension_mismatch);
  CHECK_NOTHROW(copy(serial{}, matrix_view<const float>(a.data(), 0, 3), matrix_view<float>(b.data(), 0, 3)));
}
