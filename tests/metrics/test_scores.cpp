#include <cellkit/metrics/scores.hpp>

#include "metrics/clustering_cases.hpp"
#include "support/test_support.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

using namespace cellkit;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

namespace {
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
}  // namespace

TEST_CASE_TEMPLATE("score_clustering matches scikit-learn 1.2 on every fixture case", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto policy = policy_of<P>();
  for (const auto& c : test::clustering_cases()) {
    if (c.n == 0) continue;
    CAPTURE(c.id);
    policy_array<P, std::int64_t> t(c.labels_true), p(c.labels_pred);
    const auto s = metrics::score_clustering(policy, t.view(), p.view());
    // and scikit-learn's values (tolerances: see test_information.cpp)
    CHECK(test::close(s.adjusted_rand_index, c.sklearn.at("ari"), 1e-12, 1e-15));
    CHECK(test::close(s.rand_index, c.sklearn.at("ri"), 1e-12));
    CHECK(test::close(s.fowlkes_mallows, c.sklearn.at("fowlkes_mallows"), 1e-12));
    CHECK(test::close(s.normalized_mutual_info, c.sklearn.at("nmi_arithmetic"), 1e-12, 1e-13));
    if (!c.sklearn_ami_is_noise)
      CHECK(test::close(s.adjusted_mutual_info, c.sklearn.at("ami_arithmetic"), 1e-12, 1e-10));
    CHECK(test::close(s.homogeneity, c.sklearn.at("homogeneity"), 1e-12, 1e-13));
    CHECK(test::close(s.completeness, c.sklearn.at("completeness"), 1e-12, 1e-13));
    CHECK(test::close(s.v_measure, c.sklearn.at("v_measure"), 1e-12, 1e-13));
    CHECK(s.accuracy == c.sklearn.at("accuracy"));
  }
}

TEST_CASE("score_clustering equals the single-metric functions bit for bit") {
  for (const auto& c : test::clustering_cases()) {
    if (c.n == 0) continue;
    CAPTURE(c.id);
    const auto table = metrics::contingency_table(serial{}, c.labels_true, c.labels_pred);
    const auto s = metrics::score_clustering(table);
    const auto policy = default_host_policy();
    CHECK(same_bits(s.adjusted_rand_index, metrics::adjusted_rand_index(table)));
    CHECK(same_bits(s.rand_index, metrics::rand_index(table)));
    CHECK(same_bits(s.fowlkes_mallows, metrics::fowlkes_mallows(table)));
    CHECK(same_bits(s.normalized_mutual_info, metrics::normalized_mutual_info(policy, table)));
    CHECK(same_bits(s.adjusted_mutual_info, metrics::adjusted_mutual_info(policy, table)));
    const auto hcv = metrics::homogeneity_completeness_v_measure(policy, table);
    CHECK(same_bits(s.homogeneity, hcv.homogeneity));
    CHECK(same_bits(s.completeness, hcv.completeness));
    CHECK(same_bits(s.v_measure, hcv.v_measure));
    CHECK(same_bits(s.accuracy, metrics::clustering_accuracy(policy, table).accuracy));
  }
}

TEST_CASE("score_clustering is bit-identical for serial and openmp{2}") {
  for (const auto& c : test::clustering_cases()) {
    if (c.n == 0) continue;
    CAPTURE(c.id);
    const auto a = metrics::score_clustering(serial{}, c.labels_true, c.labels_pred);
    const auto b = metrics::score_clustering(openmp{2}, c.labels_true, c.labels_pred);
    CHECK(std::memcmp(&a, &b, sizeof a) == 0);
  }
}

TEST_CASE("score_clustering: limit cases and bad input") {
  const std::vector<int> one = {3}, other = {8};
  const auto s = metrics::score_clustering(one, other);
  CHECK(s.adjusted_rand_index == 1.0);
  CHECK(s.rand_index == 1.0);
  CHECK(s.normalized_mutual_info == 1.0);
  CHECK(s.adjusted_mutual_info == 1.0);
  CHECK(s.v_measure == 1.0);
  CHECK(s.fowlkes_mallows == 0.0);
  CHECK(s.accuracy == 1.0);
  const std::vector<int> empty;
  CHECK_THROWS_AS(metrics::score_clustering(empty, empty), invalid_argument);
  CHECK_THROWS_AS(metrics::score_clustering(serial{}, std::vector<int>{1, 2, 3}, std::vector<int>{1, 2}),
                  dimension_mismatch);
}
