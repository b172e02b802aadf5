#include <cellkit/execution/for_each.hpp>

#include "support/test_support.hpp"

#include <atomic>

using namespace cellkit;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

namespace {
struct write_square {
  long long* out;
  CELLKIT_HD void operator()(index_t i) const { out[i] = static_cast<long long>(i) * i; }
};
}  // namespace

TEST_CASE_TEMPLATE("for_each_index visits every index exactly once", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  for (index_t n : {index_t(0), index_t(1), index_t(7), index_t(100003)}) {
    policy_array<P, long long> out(std::vector<long long>(static_cast<std::size_t>(n), -1));
    for_each_index(policy_of<P>(), n, write_square{out.data()});
    synchronize(policy_of<P>());
    const auto host = out.to_host();
    for (index_t i = 0; i < n; ++i) REQUIRE(host[static_cast<std::size_t>(i)] == i * i);
  }
}

TEST_CASE("openmp policy uses the requested number of threads") {
  if (!openmp::available()) return;
  std::atomic<int> max_thread{0};
  for_each_index(openmp{2}, 1000, [&](index_t) {
#if CELLKIT_HAS_OPENMP
    int t = omp_get_num_threads();
    int seen = max_thread.load();
    while (t > seen && !max_thread.compare_exchange_weak(seen, t)) {
    }
#endif
  });
  CHECK(max_thread.load() == 2);
  CHECK(openmp{3}.resolved_threads() == 3);
}

TEST_CASE("for_each_index rejects a negative count") {
  CHECK_THROWS_WITH_AS(for_each_index(serial{}, -1, [](index_t) {}),
                       "for_each_index: invalid argument 'n': must be non-negative, got -1", invalid_argument);
}

TEST_CASE("for_each_index without a policy uses the default host policy") {
  std::vector<int> hits(1000, 0);
  for_each_index(1000, [&](index_t i) { hits[static_cast<std::size_t>(i)] += 1; });
  CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
}
