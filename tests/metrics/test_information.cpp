#include <cellkit/metrics/information.hpp>

#include "metrics/clustering_cases.hpp"
#include "support/test_support.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace cellkit;
using cellkit::metrics::average_method;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

namespace {
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Tolerances against scikit-learn 1.2. Our values agree with 40-digit mpmath to ~1e-15 (the
// "exact" checks below); the allowance beyond 1e-12 relative is scikit-learn's own error:
// - MI-based values: it sums (n_ij / n)(log n_ij - log n) + (n_ij / n)(log n + log n - log(a_i b_j)),
//   whose terms cancel to ~eps * log(n) absolute; near independence (MI ~ 1e-6) that is ~1e-10
//   relative. Allowed: 1e-12 relative + 1e-13 absolute (observed max: see the MESSAGE lines).
// - AMI: its EMI multiplies exp(lgamma(a+1) + lgamma(b+1) + ... - lgamma(n+1)) terms whose
//   lgamma(n + 1) ~ n log n carries an absolute error ~eps n log n (1e-11 relative at n = 2e4,
//   ~1e-10 at n = 1e5, measured against mpmath in gen_metrics_fixtures.py's check). AMI inherits
//   ~|dEMI| (H - MI) / (H - EMI)^2: allowed 1e-12 relative + 1e-10 absolute.
constexpr double sklearn_rel = 1e-12;
constexpr double sklearn_mi_abs = 1e-13;
constexpr double sklearn_ami_abs = 1e-10;
// Against the mpmath values (rounded to double): a few ulp per term, compensated sums.
constexpr double exact_rel = 1e-13;
constexpr double exact_abs = 1e-15;

/// Largest relative difference over references with |ref| >= 1e-6, and largest absolute one below.
struct worst_case {
  double relative = 0;
  double absolute = 0;
  int relative_id = -1;
  int absolute_id = -1;
  void update(double ours, double ref, int case_id) {
    const double diff = std::fabs(ours - ref);
    if (std::fabs(ref) >= 1e-6) {
      if (diff / std::fabs(ref) > relative) {
        relative = diff / std::fabs(ref);
        relative_id = case_id;
      }
    } else if (diff > absolute) {
      absolute = diff;
      absolute_id = case_id;
    }
  }
};

void report(const std::map<std::string, worst_case>& worst) {
  for (const auto& [name, w] : worst)
    MESSAGE(name << ": max relative difference " << w.relative << " (case " << w.relative_id
                 << "), max absolute difference where |ref| < 1e-6: " << w.absolute << " (case " << w.absolute_id
                 << ")");
}
}  // namespace

TEST_CASE_TEMPLATE("MI, NMI, AMI, homogeneity, completeness and V match scikit-learn 1.2", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto policy = policy_of<P>();
  std::map<std::string, worst_case> worst;
  for (const auto& c : test::clustering_cases()) {
    CAPTURE(c.id);
    policy_array<P, std::int64_t> t(c.labels_true), p(c.labels_pred);
    auto check_value = [&](const std::string& name, double ours, double abs_tol) {
      const double ref = c.sklearn.at(name);
      if (std::isnan(ref)) return;  // not computed by the generator (cost) or undefined in scikit-learn
      CAPTURE(name);
      CHECK(test::close(ours, ref, sklearn_rel, abs_tol));
      worst[name].update(ours, ref, c.id);
    };
    if (c.n > 0) check_value("mi", metrics::mutual_info(policy, t.view(), p.view()), sklearn_mi_abs);
    check_value("nmi_arithmetic", metrics::normalized_mutual_info(policy, t.view(), p.view()), sklearn_mi_abs);
    check_value("nmi_geometric", metrics::normalized_mutual_info(policy, t.view(), p.view(), average_method::geometric),
                sklearn_mi_abs);
    check_value("nmi_min", metrics::normalized_mutual_info(policy, t.view(), p.view(), average_method::min),
                sklearn_mi_abs);
    check_value("nmi_max", metrics::normalized_mutual_info(policy, t.view(), p.view(), average_method::max),
                sklearn_mi_abs);
    const auto hcv = metrics::homogeneity_completeness_v_measure(policy, t.view(), p.view());
    check_value("homogeneity", hcv.homogeneity, sklearn_mi_abs);
    check_value("completeness", hcv.completeness, sklearn_mi_abs);
    check_value("v_measure", hcv.v_measure, sklearn_mi_abs);
    check_value("v_measure_beta_0.5", metrics::v_measure(policy, t.view(), p.view(), 0.5), sklearn_mi_abs);
    const auto table = metrics::contingency_table(policy, t.view(), p.view());
    if (c.sklearn_ami_is_noise) {
      // scikit-learn: 0.0 (0/0 decided by rounding); cellkit: identical partitions give 1.0.
      CHECK(c.sklearn.at("ami_arithmetic") == 0.0);
      CHECK(metrics::adjusted_mutual_info(policy, table) == 1.0);
    } else {
      check_value("ami_arithmetic", metrics::adjusted_mutual_info(policy, table), sklearn_ami_abs);
      if (table.rows() * table.cols() <= 40000) {  // each call computes the EMI again: small tables only
        check_value("ami_geometric", metrics::adjusted_mutual_info(policy, table, average_method::geometric),
                    sklearn_ami_abs);
        check_value("ami_min", metrics::adjusted_mutual_info(policy, table, average_method::min), sklearn_ami_abs);
        check_value("ami_max", metrics::adjusted_mutual_info(policy, table, average_method::max), sklearn_ami_abs);
      }
    }
  }
  report(worst);
}

TEST_CASE("MI, entropies, EMI and AMI agree with 40-digit mpmath") {
  std::map<std::string, worst_case> worst;
  int emi_cases = 0;
  for (const auto& c : test::clustering_cases()) {
    if (std::isnan(c.exact.at("mi"))) continue;  // degenerate table: covered by the limit-case tests
    CAPTURE(c.id);
    const auto table = metrics::contingency_table(serial{}, c.labels_true, c.labels_pred);
    auto check_value = [&](const std::string& name, double ours) {
      const double ref = c.exact.at(name);
      CAPTURE(name);
      CHECK(test::close(ours, ref, exact_rel, exact_abs));
      worst[name].update(ours, ref, c.id);
    };
    check_value("mi", metrics::mutual_info(table));
    check_value("nmi_arithmetic", metrics::normalized_mutual_info(table));
    const auto hcv = metrics::homogeneity_completeness_v_measure(table);
    check_value("homogeneity", hcv.homogeneity);
    check_value("completeness", hcv.completeness);
    if (!std::isnan(c.exact.at("emi"))) {
      ++emi_cases;
      check_value("emi", metrics::expected_mutual_info(table));
      check_value("ami_arithmetic", metrics::adjusted_mutual_info(table));
    }
  }
  CHECK(emi_cases > 150);
  report(worst);
}

TEST_CASE("information metrics are bit-identical for serial, openmp{1}, openmp{2} and all input forms") {
  for (const auto& c : test::clustering_cases()) {
    CAPTURE(c.id);
    const auto t1 = metrics::contingency_table(serial{}, c.labels_true, c.labels_pred);
    const auto t2 = metrics::contingency_table(openmp{2}, c.labels_true, c.labels_pred);
    REQUIRE(t1 == t2);
    CHECK(same_bits(metrics::adjusted_mutual_info(serial{}, t1), metrics::adjusted_mutual_info(openmp{2}, t2)));
    CHECK(same_bits(metrics::normalized_mutual_info(serial{}, t1, average_method::geometric),
                    metrics::normalized_mutual_info(openmp{2}, t2, average_method::geometric)));
    if (c.n > 0) {
      CHECK(same_bits(metrics::mutual_info(serial{}, t1), metrics::mutual_info(openmp{2}, t2)));
      const double emi = metrics::expected_mutual_info(serial{}, t1);
      CHECK(same_bits(emi, metrics::expected_mutual_info(openmp{1}, t1)));
      CHECK(same_bits(emi, metrics::expected_mutual_info(openmp{2}, t2)));
    }
    const auto h1 = metrics::homogeneity_completeness_v_measure(serial{}, c.labels_true, c.labels_pred, 2.0);
    const auto h2 = metrics::homogeneity_completeness_v_measure(openmp{2}, t2, 2.0);
    CHECK(same_bits(h1.homogeneity, h2.homogeneity));
    CHECK(same_bits(h1.completeness, h2.completeness));
    CHECK(same_bits(h1.v_measure, h2.v_measure));
    CHECK(same_bits(h1.homogeneity, metrics::homogeneity(c.labels_true, c.labels_pred)));
    CHECK(same_bits(h1.completeness, metrics::completeness(t1)));
    CHECK(same_bits(h1.v_measure, metrics::v_measure(openmp{1}, c.labels_true, c.labels_pred, 2.0)));
    if (c.fits_int32) {
      const auto t32 = test::converted<std::int32_t>(c.labels_true);
      CHECK(same_bits(metrics::normalized_mutual_info(c.labels_true, c.labels_pred),
                      metrics::normalized_mutual_info(t32, c.labels_pred)));
    }
  }
}

TEST_CASE("limit cases: scikit-learn 1.2's values, and exactly 1.0 for identical partitions") {
  const std::vector<int> empty;
  CHECK_THROWS_AS(metrics::mutual_info(empty, empty), invalid_argument);  // scikit-learn raises too
  CHECK(metrics::normalized_mutual_info(empty, empty) == 1.0);
  CHECK(metrics::adjusted_mutual_info(empty, empty) == 1.0);
  const auto e = metrics::homogeneity_completeness_v_measure(empty, empty);
  CHECK((e.homogeneity == 1.0 && e.completeness == 1.0 && e.v_measure == 1.0));
  CHECK_THROWS_AS(metrics::expected_mutual_info(metrics::contingency_table(empty, empty)), invalid_argument);

  const std::vector<int> one_class = {2, 2, 2, 2}, other_class = {-7, -7, -7, -7}, two = {0, 0, 1, 1};
  CHECK(metrics::mutual_info(one_class, other_class) == 0.0);
  CHECK(metrics::normalized_mutual_info(one_class, other_class) == 1.0);
  CHECK(metrics::adjusted_mutual_info(one_class, other_class) == 1.0);
  CHECK(metrics::normalized_mutual_info(one_class, two) == 0.0);
  CHECK(metrics::adjusted_mutual_info(one_class, two) == 0.0);
  CHECK(metrics::adjusted_mutual_info(one_class, two, average_method::min) == 0.0);
  const auto h = metrics::homogeneity_completeness_v_measure(one_class, two);
  CHECK((h.homogeneity == 1.0 && h.completeness == 0.0 && h.v_measure == 0.0));
  const auto h2 = metrics::homogeneity_completeness_v_measure(two, one_class);
  CHECK((h2.homogeneity == 0.0 && h2.completeness == 1.0 && h2.v_measure == 0.0));

  // exactly independent labelings: every term's log1p argument is exactly 0
  const std::vector<int> a = {0, 0, 1, 1}, b = {0, 1, 0, 1};
  CHECK(metrics::mutual_info(a, b) == 0.0);
  CHECK(metrics::normalized_mutual_info(a, b) == 0.0);
  CHECK(metrics::homogeneity(a, b) == 0.0);

  // identical partitions, permuted label values: 1.0 exactly (scikit-learn: 1 +- a few ulp)
  const std::vector<std::int64_t> x = {5, 5, 9, 9, 9, -1}, y = {0, 0, 7, 7, 7, 3};
  CHECK(metrics::normalized_mutual_info(x, y, average_method::geometric) == 1.0);
  CHECK(metrics::adjusted_mutual_info(x, y) == 1.0);
  CHECK(metrics::v_measure(x, y, 0.5) == 1.0);
  const std::vector<int> singletons = {0, 1}, other_singletons = {5, 4};
  CHECK(metrics::adjusted_mutual_info(singletons, other_singletons) == 1.0);  // scikit-learn: 0.0 (rounding)
  CHECK(metrics::mutual_info(singletons, other_singletons) == std::log(2.0));

  // EMI is 0 when a side has one class (scikit-learn's rule)
  CHECK(metrics::expected_mutual_info(metrics::contingency_table(one_class, two)) == 0.0);
}

TEST_CASE("MI, NMI and AMI of huge-count tables agree with mpmath") {
  int checked = 0;
  for (const auto& t : test::exact_tables()) {
    CAPTURE(t.name);
    const auto table = metrics::contingency_from_triplets(t.rows, t.cols, t.counts);
    // Near independence (independent_*: MI ~ 1e-22) the MI is a sum of terms of both signs ~1e-11:
    // each term is exact to a few ulp, so the absolute error is ~eps * sum |terms| ~ 1e-27.
    CHECK(test::close(metrics::mutual_info(table), t.values.at("mi"), 1e-14, 1e-24));
    CHECK(test::close(metrics::normalized_mutual_info(table), t.values.at("nmi"), 1e-14, 1e-24));
    MESSAGE(t.name << ": MI " << metrics::mutual_info(table) << " (mpmath " << t.values.at("mi") << ")");
    if (t.values.count("ami")) {
      CHECK(test::close(metrics::adjusted_mutual_info(table), t.values.at("ami"), 1e-13));
      ++checked;
    }
    // EMI without lgamma(n): by summation, or by the moment expansion when Var n_ij > 2^32 (n_2e18).
    const double ami = metrics::adjusted_mutual_info(serial{}, table);
    CHECK(std::isfinite(ami));
    CHECK(same_bits(ami, metrics::adjusted_mutual_info(openmp{2}, table)));
  }
  CHECK(checked >= 3);
}

TEST_CASE("information metrics reject mismatched lengths and negative beta") {
  const std::vector<int> four = {1, 2, 3, 4};
  const std::vector<long> five = {1, 2, 3, 4, 5};
  CHECK_THROWS_AS(metrics::mutual_info(four, five), dimension_mismatch);
  CHECK_THROWS_AS(metrics::normalized_mutual_info(serial{}, four, five), dimension_mismatch);
  CHECK_THROWS_AS(metrics::adjusted_mutual_info(openmp{2}, four, five), dimension_mismatch);
  CHECK_THROWS_AS(metrics::homogeneity_completeness_v_measure(four, five), dimension_mismatch);
  CHECK_THROWS_AS(metrics::homogeneity(four, five), dimension_mismatch);
  CHECK_THROWS_AS(metrics::completeness(four, five), dimension_mismatch);
  CHECK_THROWS_AS(metrics::v_measure(four, five), dimension_mismatch);
  CHECK_THROWS_AS(metrics::v_measure(four, four, -1.0), invalid_argument);
  try {
    metrics::adjusted_mutual_info(four, five);
  } catch (const dimension_mismatch& e) {
    CHECK(std::string(e.what()).find("adjusted_mutual_info: dimension mismatch: labels_true is 4") == 0);
  }
}
