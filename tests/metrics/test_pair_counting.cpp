#include <cellkit/metrics/pair_counting.hpp>

#include "metrics/clustering_cases.hpp"
#include "support/test_support.hpp"

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

using namespace cellkit;
using cellkit::test::policy_array;
using cellkit::test::policy_of;
using cellkit::test::relative_difference;

namespace {
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
}  // namespace

TEST_CASE_TEMPLATE("ARI, RI and FMI match scikit-learn 1.2 on every fixture case", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto policy = policy_of<P>();
  double worst[3] = {0, 0, 0};
  for (const auto& c : test::clustering_cases()) {
    CAPTURE(c.id);
    policy_array<P, std::int64_t> t(c.labels_true), p(c.labels_pred);
    const double ari = metrics::adjusted_rand_index(policy, t.view(), p.view());
    const double ri = metrics::rand_index(policy, t.view(), p.view());
    const double fmi = metrics::fowlkes_mallows(policy, t.view(), p.view());
    // Exact rationals rounded once: scikit-learn's ARI (Python integers, one true division) agrees to
    // ~1 ulp, its RI and FMI (float64 divisions and square roots) to a few ulp.
    CHECK(test::close(ari, c.sklearn.at("ari"), 1e-12, 1e-15));
    CHECK(test::close(ri, c.sklearn.at("ri"), 1e-12));
    CHECK(test::close(fmi, c.sklearn.at("fowlkes_mallows"), 1e-12));
    worst[0] = std::max(worst[0], relative_difference(ari, c.sklearn.at("ari")));
    worst[1] = std::max(worst[1], relative_difference(ri, c.sklearn.at("ri")));
    worst[2] = std::max(worst[2], relative_difference(fmi, c.sklearn.at("fowlkes_mallows")));
    // from the table: the same values bit for bit
    const auto table = metrics::contingency_table(policy, t.view(), p.view());
    CHECK(same_bits(metrics::adjusted_rand_index(table), ari));
    CHECK(same_bits(metrics::rand_index(table), ri));
    CHECK(same_bits(metrics::fowlkes_mallows(table), fmi));
  }
  MESSAGE("max relative difference to scikit-learn: ARI " << worst[0] << ", RI " << worst[1] << ", FMI " << worst[2]);
}

TEST_CASE("pair-counting metrics are bit-identical for serial, openmp{1}, openmp{2} and int32/int64 labels") {
  for (const auto& c : test::clustering_cases()) {
    CAPTURE(c.id);
    const double a = metrics::adjusted_rand_index(serial{}, c.labels_true, c.labels_pred);
    CHECK(same_bits(a, metrics::adjusted_rand_index(openmp{1}, c.labels_true, c.labels_pred)));
    CHECK(same_bits(a, metrics::adjusted_rand_index(openmp{2}, c.labels_true, c.labels_pred)));
    CHECK(same_bits(a, metrics::adjusted_rand_index(c.labels_true, c.labels_pred)));
    if (c.fits_int32) {
      const auto t32 = test::converted<std::int32_t>(c.labels_true);
      const auto p32 = test::converted<std::int32_t>(c.labels_pred);
      CHECK(same_bits(a, metrics::adjusted_rand_index(openmp{2}, t32, p32)));
      CHECK(same_bits(metrics::rand_index(serial{}, c.labels_true, c.labels_pred), metrics::rand_index(t32, p32)));
      CHECK(same_bits(metrics::fowlkes_mallows(serial{}, c.labels_true, c.labels_pred),
                      metrics::fowlkes_mallows(t32, c.labels_pred)));
    }
  }
}

TEST_CASE("limit cases follow scikit-learn 1.2") {
  const std::vector<int> empty;
  CHECK(metrics::adjusted_rand_index(empty, empty) == 1.0);
  CHECK(metrics::rand_index(empty, empty) == 1.0);
  CHECK(metrics::fowlkes_mallows(empty, empty) == 0.0);
  const std::vector<int> one = {4}, other = {-9};
  CHECK(metrics::adjusted_rand_index(one, other) == 1.0);
  CHECK(metrics::rand_index(one, other) == 1.0);
  CHECK(metrics::fowlkes_mallows(one, other) == 0.0);
  const std::vector<int> singletons = {0, 1, 2, 3, 4}, reversed = {9, 8, 7, 6, 5}, constant = {3, 3, 3, 3, 3};
  CHECK(metrics::adjusted_rand_index(singletons, reversed) == 1.0);  // identical partitions
  CHECK(metrics::rand_index(singletons, reversed) == 1.0);
  CHECK(metrics::fowlkes_mallows(singletons, reversed) == 0.0);  // no pair together in both
  CHECK(metrics::adjusted_rand_index(constant, constant) == 1.0);
  CHECK(metrics::fowlkes_mallows(constant, constant) == 1.0);
  CHECK(metrics::adjusted_rand_index(singletons, constant) == 0.0);
  CHECK(metrics::rand_index(singletons, constant) == 0.0);
  // two clusters against the swapped pair split: the most negative ARI for 4 labels is -1/2
  const std::vector<int> a = {0, 0, 1, 1}, b = {0, 1, 0, 1};
  CHECK(metrics::adjusted_rand_index(a, b) == -0.5);
  CHECK(metrics::rand_index(a, b) == 1.0 / 3.0);
}

TEST_CASE("pair counts and ARI / RI / FMI of huge tables are exact (Python Fraction references)") {
  for (const auto& t : test::exact_tables()) {
    CAPTURE(t.name);
    const auto table = metrics::contingency_from_triplets(t.rows, t.cols, t.counts);
    const metrics::pair_counts pairs = metrics::count_pairs(table);
    CHECK(pairs.same_both == t.x);
    CHECK(pairs.same_true == t.a);
    CHECK(pairs.same_pred == t.b);
    CHECK(pairs.total == t.pairs);
    // float(Fraction) is the correctly rounded value: ours must be that double exactly.
    CHECK(same_bits(metrics::adjusted_rand_index(table), t.values.at("ari")));
    CHECK(same_bits(metrics::rand_index(table), t.values.at("ri")));
    CHECK(test::close(metrics::fowlkes_mallows(table), t.values.at("fmi"), 1e-15));
  }
}

TEST_CASE("64-bit pair products would overflow: the n = 1e8 table needs the 128/256-bit path") {
  const auto tables = test::exact_tables();
  const auto& t = tables.at(0);  // n1e8_3x3: n = 1e8, N = C(n, 2) ~ 5e15, A, B ~ 1.6e15
  REQUIRE(t.name == "n1e8_3x3");
  const std::uint64_t x = static_cast<std::uint64_t>(t.x);
  const std::uint64_t a = static_cast<std::uint64_t>(t.a);
  const std::uint64_t b = static_cast<std::uint64_t>(t.b);
  const std::uint64_t n = static_cast<std::uint64_t>(t.pairs);
  // With 64-bit integers (wrapping, as int64 would overflow: UB) N x and A B, ~1e31, are taken mod
  // 2^64 and the ARI numerator 2 (N x - A B) comes out as garbage:
  //   exact:  ARI = 0.8391820966146847
  //   int64:  2 (N x - A B) mod 2^64 / (N (A + B) - 2 A B) mod 2^64 = a meaningless value
  CHECK(metrics::uint128_t(n) * x > metrics::uint128_t(UINT64_MAX));
  const std::uint64_t wrapped_numerator = 2 * (n * x - a * b);
  const std::uint64_t wrapped_denominator = n * (a + b) - 2 * a * b;
  const double int64_ari = static_cast<double>(static_cast<std::int64_t>(wrapped_numerator)) /
                           static_cast<double>(static_cast<std::int64_t>(wrapped_denominator));
  const auto table = metrics::contingency_from_triplets(t.rows, t.cols, t.counts);
  CHECK(metrics::adjusted_rand_index(table) == t.values.at("ari"));
  CHECK(std::fabs(int64_ari - t.values.at("ari")) > 1e-3);
  // Doubles avoid the overflow but not the cancellation: for exactly independent counts the
  // numerator N x - A B ~ 1e-11 of its terms; the exact value is -9.81e-12.
  const auto& independent = tables.at(3);
  REQUIRE(independent.name == "independent_1e8");
  const auto itable = metrics::contingency_from_triplets(independent.rows, independent.cols, independent.counts);
  CHECK(metrics::adjusted_rand_index(itable) == independent.values.at("ari"));
  CHECK(independent.values.at("ari") < 0.0);
  const auto ip = metrics::count_pairs(itable);
  const double dn = static_cast<double>(ip.total), dx = static_cast<double>(ip.same_both);
  const double da = static_cast<double>(ip.same_true), db = static_cast<double>(ip.same_pred);
  const double double_ari = 2.0 * (dn * dx - da * db) / (dn * (da + db) - 2.0 * da * db);
  MESSAGE("int64 ARI of n1e8_3x3: " << int64_ari << " (exact " << t.values.at("ari")
                                    << "); double ARI of independent_1e8: " << double_ari << " (exact "
                                    << independent.values.at("ari") << ")");
  CHECK(std::fabs(double_ari - independent.values.at("ari")) > 1e-8 * std::fabs(independent.values.at("ari")));
}

TEST_CASE("exact_ratio_to_double rounds once, to nearest, ties to even") {
  using metrics::uint128_t;
  using metrics::detail::exact_ratio_to_double;
  CHECK(exact_ratio_to_double(uint128_t(1), uint128_t(3)) == 1.0 / 3.0);
  CHECK(exact_ratio_to_double(uint128_t(2), uint128_t(3)) == 2.0 / 3.0);
  CHECK(exact_ratio_to_double(uint128_t(0), uint128_t(7)) == 0.0);
  CHECK(exact_ratio_to_double(uint128_t(7), uint128_t(7)) == 1.0);
  const uint128_t two53 = uint128_t(1) << 53;
  CHECK(exact_ratio_to_double(two53 + 1, uint128_t(1)) == 9007199254740992.0);            // tie -> even
  CHECK(exact_ratio_to_double(two53 + 3, uint128_t(1)) == 9007199254740996.0);            // tie -> even (up)
  CHECK(exact_ratio_to_double((two53 + 1) * 4 + 1, uint128_t(4)) == 9007199254740994.0);  // just above the tie
  // products of two 128-bit values: (3 * 2^100)^2 / (2^100)^2 = 9
  const auto big = metrics::detail::multiply_wide(uint128_t(3) << 100, uint128_t(3) << 100);
  const auto unit = metrics::detail::multiply_wide(uint128_t(1) << 100, uint128_t(1) << 100);
  CHECK(exact_ratio_to_double(big, unit) == 9.0);
  // against long double on random 64-bit ratios (exact in long double's 64-bit mantissa + one division)
  std::mt19937_64 rng(11);
  for (int k = 0; k < 2000; ++k) {
    const std::uint64_t p = rng() >> (rng() % 60);
    const std::uint64_t q = (rng() >> (rng() % 60)) | 1;
    const double expected = static_cast<double>(static_cast<long double>(p) / static_cast<long double>(q));
    const double got = exact_ratio_to_double(uint128_t(p), uint128_t(q));
    CHECK(test::close(got, expected, 2.3e-16));
  }
}

TEST_CASE("pair-counting metrics accept raw pointers, spans and mixed label types; reject length mismatch") {
  const std::int16_t t[] = {5, 5, -2, -2, 9};
  const std::uint64_t p[] = {1, 1, 1, 7, 7};
  const double expected =
      metrics::adjusted_rand_index(std::vector<int>{5, 5, -2, -2, 9}, std::vector<int>{1, 1, 1, 7, 7});
  CHECK(metrics::adjusted_rand_index(metrics::labels(t, 5), metrics::labels(p, 5)) == expected);
  CHECK(metrics::adjusted_rand_index(serial{}, std::span<const std::int16_t>(t, 5), metrics::labels(p, 5)) == expected);
  const std::vector<int> four = {1, 2, 3, 4}, five = {1, 2, 3, 4, 5};
  CHECK_THROWS_AS(metrics::adjusted_rand_index(four, five), dimension_mismatch);
  CHECK_THROWS_AS(metrics::rand_index(serial{}, four, five), dimension_mismatch);
  CHECK_THROWS_AS(metrics::fowlkes_mallows(openmp{2}, four, five), dimension_mismatch);
  try {
    metrics::adjusted_rand_index(four, five);
  } catch (const dimension_mismatch& e) {
    const std::string message = e.what();
    CHECK(message.find("adjusted_rand_index") != std::string::npos);
    CHECK(message.find("labels_true is 4") != std::string::npos);
    CHECK(message.find("labels_pred is 5") != std::string::npos);
  }
  CHECK_THROWS_AS(metrics::labels(t, -1), invalid_argument);
}
