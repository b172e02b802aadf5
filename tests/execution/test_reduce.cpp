#include <cellkit/execution/reduce.hpp>

#include "support/test_support.hpp"

#include <cmath>
#include <random>

using namespace cellkit;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

namespace {
struct load_value {
  const double* values;
  CELLKIT_HD double operator()(index_t i) const { return values[i]; }
};
struct index_as_integer {
  CELLKIT_HD long long operator()(index_t i) const { return static_cast<long long>(i); }
};
}  // namespace

TEST_CASE_TEMPLATE("transform_reduce sums, maxes and handles empty and tiny ranges", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto policy = policy_of<P>();
  for (index_t n : {index_t(0), index_t(1), index_t(15), index_t(16), index_t(4097), index_t(1000003)}) {
    CAPTURE(n);
    // integer sum is exact whatever the tree: n (n - 1) / 2
    CHECK(transform_reduce(policy, n, 0LL, plus_op{}, index_as_integer{}) == n * (n - 1) / 2);
    CHECK(transform_reduce(policy, n, 5LL, plus_op{}, index_as_integer{}) == 5 + n * (n - 1) / 2);
    CHECK(transform_reduce(policy, n, -1LL, max_op{}, index_as_integer{}) == n - 1);
  }
}

TEST_CASE_TEMPLATE("transform_reduce of doubles matches an exactly rounded sum", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<double> v(2000000);
  long double exact = 0;
  for (auto& x : v) {
    x = uniform(rng);
    exact += x;
  }
  policy_array<P, double> values(v);
  const double got =
      transform_reduce(policy_of<P>(), static_cast<index_t>(v.size()), 0.0, plus_op{}, load_value{values.data()});
  CHECK(cellkit::test::close(got, static_cast<double>(exact), 1e-14));
}

TEST_CASE("host transform_reduce is bit-identical for serial and 1 or 2 OpenMP threads") {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> v(3333333);
  for (auto& x : v) x = normal(rng) * 1e3f;
  auto f = [&](index_t i) { return v[static_cast<std::size_t>(i)]; };
  const auto n = static_cast<index_t>(v.size());
  const float a = transform_reduce(serial{}, n, 0.0f, plus_op{}, f);
  const float b = transform_reduce(openmp{1}, n, 0.0f, plus_op{}, f);
  const float c = transform_reduce(openmp{2}, n, 0.0f, plus_op{}, f);
  CHECK(std::memcmp(&a, &b, sizeof a) == 0);
  CHECK(std::memcmp(&a, &c, sizeof a) == 0);
  // the blocked tree keeps float error small: compare with a double sum
  double exact = 0;
  for (float x : v) exact += x;
  CHECK(std::fabs(a - exact) <= 1e-5 * std::fabs(exact) + 1.0);
}

TEST_CASE("transform_reduce works on non-arithmetic partial types (min and max together)") {
  struct min_max {
    double lo, hi;
  };
  std::vector<double> v = {3, -1, 4, 1, -5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, -6};
  auto result = transform_reduce(
      serial{}, static_cast<index_t>(v.size()), min_max{1e300, -1e300},
      [](min_max a, min_max b) {
        return min_max{std::min(a.lo, b.lo), std::max(a.hi, b.hi)};
      },
      [&](index_t i) {
        return min_max{v[static_cast<std::size_t>(i)], v[static_cast<std::size_t>(i)]};
      });
  CHECK(result.lo == -6);
  CHECK(result.hi == 9);
  CHECK_THROWS_AS(transform_reduce(serial{}, -3, 0, plus_op{}, [](index_t) { return 1; }), invalid_argument);
}
