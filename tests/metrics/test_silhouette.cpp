#include <cellkit/metrics/silhouette.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// The silhouette runs on the host only (tiles of host GEMM), so the tests are templated over the
// host policies even in the nvcc build; a cuda policy does not compile by design.
//
// Tolerances (absolute, on s in [-1, 1]):
// - double vs the exact oracle below: 1e-12 (the GEMM formula is used only where it keeps ~12
//   digits; close pairs are recomputed from differences);
// - double vs scikit-learn: the fixture's own sklearn-vs-exact error (up to ~2e-8 on cases with
//   duplicate or far-from-origin points, where sklearn's GEMM distances lose digits) plus 1e-12;
// - float vs the exact oracle on the float-rounded inputs: 5e-5.

using namespace cellkit;
using cellkit::test::policy_of;

namespace {

/// Exact reference: distances from coordinate differences in double, sums in index order.
std::vector<double> oracle_silhouette(const std::vector<double>& x, index_t n, index_t d,
                                      const std::vector<int>& labels) {
  std::vector<int> names(labels);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<std::size_t> cluster(labels.size());
  std::vector<index_t> sizes(names.size(), 0);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    cluster[i] = static_cast<std::size_t>(std::lower_bound(names.begin(), names.end(), labels[i]) - names.begin());
    ++sizes[cluster[i]];
  }
  std::vector<double> s(static_cast<std::size_t>(n), 0.0);
  std::vector<double> totals(names.size());
  for (index_t i = 0; i < n; ++i) {
    std::fill(totals.begin(), totals.end(), 0.0);
    for (index_t j = 0; j < n; ++j) {
      double sum = 0.0;
      for (index_t k = 0; k < d; ++k) {
        const double diff = x[static_cast<std::size_t>(i * d + k)] - x[static_cast<std::size_t>(j * d + k)];
        sum += diff * diff;
      }
      totals[cluster[static_cast<std::size_t>(j)]] += std::sqrt(sum);
    }
    const std::size_t own = cluster[static_cast<std::size_t>(i)];
    if (sizes[own] == 1) continue;
    const double a = totals[own] / static_cast<double>(sizes[own] - 1);
    double b = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < names.size(); ++c) {
      if (c != own) b = std::min(b, totals[c] / static_cast<double>(sizes[c]));
    }
    const double scale = std::max(a, b);
    s[static_cast<std::size_t>(i)] = scale > 0 ? (b - a) / scale : 0.0;
  }
  return s;
}

/// The oracle of fixture case `index` (double inputs, or their float roundings), computed once per
/// process: the policies' instantiations of a test share it.
const std::vector<double>& cached_oracle(int index, bool float_inputs, const std::vector<double>& x, index_t n,
                                         index_t d, const std::vector<int>& labels) {
  static std::map<std::pair<int, bool>, std::vector<double>> cache;
  auto& slot = cache[{index, float_inputs}];
  if (slot.empty()) slot = oracle_silhouette(x, n, d, labels);
  return slot;
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

/// Gaussian blobs with exact duplicates and a far offset (cancellation), labels with gaps.
void random_blobs(index_t n, index_t d, int clusters, std::uint64_t seed, std::vector<double>& x,
                  std::vector<int>& labels) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int> cluster(0, clusters - 1);
  std::vector<double> centres(static_cast<std::size_t>(clusters * d));
  for (auto& v : centres) v = 3.0 * normal(engine);
  x.resize(static_cast<std::size_t>(n * d));
  labels.resize(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    const int c = cluster(engine);
    labels[static_cast<std::size_t>(i)] = 10 * c - 35;
    for (index_t k = 0; k < d; ++k) {
      x[static_cast<std::size_t>(i * d + k)] = 100.0 + centres[static_cast<std::size_t>(c * d + k)] + normal(engine);
    }
  }
  for (index_t i = 0; i + 1 < n; i += 17) {  // duplicates, some across clusters
    std::copy_n(x.begin() + (i + 1) * d, d, x.begin() + i * d);
  }
}

template <class P>
std::vector<double> samples_with(const std::vector<double>& x, index_t n, index_t d, const std::vector<int>& labels) {
  std::vector<double> s(static_cast<std::size_t>(n));
  metrics::silhouette_samples(policy_of<P>(), matrix_view<const double>(x.data(), n, d), labels,
                              make_vector_view(s.data(), n));
  return s;
}

}  // namespace

TEST_CASE_TEMPLATE("silhouette matches scikit-learn 1.2 and an exact oracle on the fixture cases", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  const auto cases = cellkit::test::read_fixture_cases("silhouette_cases.txt");
  REQUIRE(cases.size() >= 15);
  double worst_exact = 0.0;
  double worst_float = 0.0;
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[1]);
    const auto d = static_cast<index_t>(c.params[2]);
    const double sklearn_error = c.params[4];
    CAPTURE(c.params[0]);
    CAPTURE(n);
    CAPTURE(d);
    const std::vector<double>& x = c.matrix("X");
    const std::vector<int> labels(c.matrix("labels").begin(), c.matrix("labels").end());
    const std::vector<double>& expected = c.matrix("s");
    REQUIRE(static_cast<index_t>(x.size()) == n * d);

    const std::vector<double> s = samples_with<P>(x, n, d, labels);
    const int index = static_cast<int>(c.params[0]);
    const std::vector<double>& exact = cached_oracle(index, false, x, n, d, labels);
    const double error_exact = max_abs_difference(s, exact);
    const double error_sklearn = max_abs_difference(s, expected);
    worst_exact = std::max(worst_exact, error_exact);
    CHECK(error_exact <= 1e-12);
    CHECK(error_sklearn <= sklearn_error + 1e-12);

    if constexpr (std::is_same_v<P, serial>) {  // the score's policy independence is tested below
      const double score = metrics::silhouette_score(policy_of<P>(), matrix_view<const double>(x.data(), n, d), labels);
      CHECK(std::fabs(score - c.matrix("score")[0]) <= sklearn_error + 1e-12);
    }

    // float inputs: compared with the exact silhouette of the float-rounded points.
    const std::vector<float> xf(x.begin(), x.end());
    const std::vector<double> rounded(xf.begin(), xf.end());
    std::vector<float> sf(static_cast<std::size_t>(n));
    metrics::silhouette_samples(policy_of<P>(), matrix_view<const float>(xf.data(), n, d), labels,
                                make_vector_view(sf.data(), n));
    const double error_float = max_abs_difference(std::vector<double>(sf.begin(), sf.end()),
                                                  cached_oracle(index, true, rounded, n, d, labels));
    worst_float = std::max(worst_float, error_float);
    CHECK(error_float <= 5e-5);
  }
  MESSAGE("largest |s - exact|: double " << worst_exact << ", float " << worst_float);
}

TEST_CASE("silhouette on a hand-computed example, labels with arbitrary values") {
  // Two tight pairs far apart: a(i) = 1, b(i) = mean distance to the other pair.
  const std::vector<double> points = {0, 0, 0, 1, 5, 5, 5, 6};
  const std::vector<int> labels = {7, 7, -1, -1};
  const matrix_view<const double> x(points.data(), 4, 2);
  const double b0 = (std::sqrt(50.0) + std::sqrt(61.0)) / 2.0;    // from (0,0) to (5,5), (5,6)
  const double b1 = (std::sqrt(41.0) + std::sqrt(50.0)) / 2.0;    // from (0,1)
  const double expected = ((b0 - 1) / b0 + (b1 - 1) / b1) / 2.0;  // the other pair is symmetric
  CHECK(std::fabs(metrics::silhouette_score(x, labels) - expected) <= 1e-15);
  std::vector<double> s(4);
  metrics::silhouette_samples(serial{}, x, labels, make_vector_view(s.data(), 4));
  CHECK(std::fabs(s[0] - (b0 - 1) / b0) <= 1e-15);
  CHECK(std::fabs(s[1] - (b1 - 1) / b1) <= 1e-15);
  CHECK(s[2] == s[1]);  // (5,5) mirrors (0,1)
  CHECK(s[3] == s[0]);
}

TEST_CASE("singletons, duplicates and strided views") {
  // A singleton cluster gives s = 0; all points of a cluster identical gives a = 0 and s = 1.
  const std::vector<double> points = {1, 1, 1, 1, 1, 1, 4, 4, 9, 9};
  const std::vector<long long> labels = {3, 3, 3, 8, 9};
  std::vector<double> s(5);
  metrics::silhouette_samples(serial{}, matrix_view<const double>(points.data(), 5, 2), labels,
                              make_vector_view(s.data(), 5));
  CHECK(s[0] == 1.0);  // duplicates: a is exactly 0 (recomputed from differences, not the GEMM formula)
  CHECK(s[1] == 1.0);
  CHECK(s[2] == 1.0);
  CHECK(s[3] == 0.0);
  CHECK(s[4] == 0.0);

  // A block of a wider matrix (row stride 5) and float output.
  std::vector<double> wide(static_cast<std::size_t>(300 * 5), -1e300);
  std::vector<double> packed;
  std::vector<int> blob_labels;
  random_blobs(300, 3, 4, 5, packed, blob_labels);
  for (index_t i = 0; i < 300; ++i) std::copy_n(packed.begin() + i * 3, 3, wide.begin() + i * 5);
  std::vector<float> strided(300);
  metrics::silhouette_samples(openmp{2}, matrix_view<const double>(wide.data(), 300, 3, 5), blob_labels,
                              make_vector_view(strided.data(), 300));
  const std::vector<double> exact = oracle_silhouette(packed, 300, 3, blob_labels);
  for (std::size_t i = 0; i < exact.size(); ++i) CHECK(std::fabs(strided[i] - exact[i]) <= 1e-6);
}

TEST_CASE("float coordinates whose squares overflow float are computed in double") {
  const std::vector<float> huge = {0, 0, 0, 1e19f, 3e19f, 3e19f, 3e19f, 4e19f};  // squares beyond FLT_MAX
  const std::vector<double> huge_d(huge.begin(), huge.end());
  const std::vector<int> labels = {0, 0, 1, 1};
  std::vector<float> s(4);
  metrics::silhouette_samples(serial{}, matrix_view<const float>(huge.data(), 4, 2), labels,
                              make_vector_view(s.data(), 4));
  const std::vector<double> exact = oracle_silhouette(huge_d, 4, 2, labels);
  for (std::size_t i = 0; i < 4; ++i) CHECK(std::fabs(s[i] - exact[i]) <= 1e-6);
}

TEST_CASE("results are bit-identical for serial, openmp{1} and openmp{2}") {
  // Several row tiles and column blocks (256 points each), clusters crossing block boundaries.
  const index_t n = 1200;
  const index_t d = 5;
  std::vector<double> x;
  std::vector<int> labels;
  random_blobs(n, d, 9, 3, x, labels);
  const std::vector<double> serial_s = samples_with<serial>(x, n, d, labels);
  CHECK(samples_with<test::openmp1>(x, n, d, labels) == serial_s);
  CHECK(samples_with<test::openmp2>(x, n, d, labels) == serial_s);
  const matrix_view<const double> view(x.data(), n, d);
  const double score = metrics::silhouette_score(serial{}, view, labels);
  CHECK(metrics::silhouette_score(openmp{1}, view, labels) == score);
  CHECK(metrics::silhouette_score(openmp{2}, view, labels) == score);

  const std::vector<float> xf(x.begin(), x.end());
  const matrix_view<const float> view_f(xf.data(), n, d);
  CHECK(metrics::silhouette_score(openmp{2}, view_f, labels) == metrics::silhouette_score(serial{}, view_f, labels));
}

TEST_CASE("both schedules (symmetric blocks, row tiles) agree with the oracle and are thread-independent") {
  // The public functions choose the symmetric schedule unless its N x clusters totals are large;
  // both are exercised here directly, with an odd number of tiles (a bye in every round).
  namespace sil = metrics::detail::silhouette;
  const index_t n = 1100;  // 5 tiles of 256
  const index_t d = 4;
  std::vector<double> x;
  std::vector<int> labels;
  random_blobs(n, d, 7, 9, x, labels);
  const matrix_view<const double> view(x.data(), n, d);
  const sil::silhouette_clusters clusters = sil::group_by_cluster(std::span<const int>(labels));
  const std::vector<double> exact = oracle_silhouette(x, n, d, labels);
  for (const auto schedule : {sil::silhouette_schedule::symmetric, sil::silhouette_schedule::row_tiles}) {
    CAPTURE(static_cast<int>(schedule));
    const std::vector<double> one = sil::silhouette_values<double>(1, view, clusters, schedule);
    CHECK(max_abs_difference(one, exact) <= 1e-12);
    CHECK(sil::silhouette_values<double>(2, view, clusters, schedule) == one);
    CHECK(sil::silhouette_values<double>(3, view, clusters, schedule) == one);
    const std::vector<float> xf(x.begin(), x.end());
    const matrix_view<const float> view_f(xf.data(), n, d);
    const std::vector<double> one_f = sil::silhouette_values<float>(1, view_f, clusters, schedule);
    CHECK(sil::silhouette_values<float>(2, view_f, clusters, schedule) == one_f);
    CHECK(max_abs_difference(one_f, exact) <= 5e-5);
  }
}

TEST_CASE_TEMPLATE("bad inputs are refused with a message naming the argument", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const std::vector<double> points = {0, 0, 0, 1, 5, 5, 5, 6};
  const matrix_view<const double> x(points.data(), 4, 2);
  std::vector<double> out(4);

  CHECK_THROWS_WITH_AS(metrics::silhouette_score(policy, x, std::vector<int>{0, 0, 1}),
                       "silhouette_score: dimension mismatch: labels is 3 x 1 but X is 4 x 2 (labels needs one entry "
                       "per row of X)",
                       dimension_mismatch);
  CHECK_THROWS_WITH_AS(
      metrics::silhouette_samples(policy, x, std::vector<int>{0, 0, 1, 1}, make_vector_view(out.data(), 3)),
      "silhouette_samples: dimension mismatch: out is 3 x 1 but X is 4 x 2 (out needs one entry per "
      "row of X)",
      dimension_mismatch);
  CHECK_THROWS_WITH_AS(metrics::silhouette_score(policy, x, std::vector<int>{2, 2, 2, 2}),
                       "silhouette_score: invalid argument 'labels': the number of distinct labels is 1; the "
                       "silhouette needs 2 <= n_labels <= n_samples - 1 = 3",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(
      metrics::silhouette_samples(policy, x, std::vector<int>{0, 1, 2, 3}, make_vector_view(out.data(), 4)),
      doctest::Contains("'labels': the number of distinct labels is 4"), invalid_argument);
  CHECK_THROWS_WITH_AS(
      metrics::silhouette_score(policy, matrix_view<const double>(points.data(), 1, 2), std::vector<int>{0}),
      doctest::Contains("the number of distinct labels is 1; the silhouette needs 2 <= n_labels <= "
                        "n_samples - 1 = 0"),
      invalid_argument);
  CHECK_THROWS_WITH_AS(
      metrics::silhouette_score(policy, matrix_view<const double>(points.data(), 0, 2), std::vector<int>{}),
      "silhouette_score: invalid argument 'X': has no rows (points)", invalid_argument);
  CHECK_THROWS_WITH_AS(
      metrics::silhouette_score(policy, matrix_view<const double>(points.data(), 4, 0), std::vector<int>{0, 0, 1, 1}),
      "silhouette_score: invalid argument 'X': has no columns (features)", invalid_argument);

  std::vector<double> with_nan = points;
  with_nan[5] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(
      metrics::silhouette_score(policy, matrix_view<const double>(with_nan.data(), 4, 2), std::vector<int>{0, 0, 1, 1}),
      "silhouette_score: invalid argument 'X': X(2, 1) is NaN: coordinates must be finite", invalid_argument);
  std::vector<float> with_inf(points.begin(), points.end());
  with_inf[0] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS(metrics::silhouette_samples(policy, matrix_view<const float>(with_inf.data(), 4, 2),
                                                   std::vector<int>{0, 0, 1, 1}, make_vector_view(out.data(), 4)),
                       doctest::Contains("X(0, 0) is infinite"), invalid_argument);
}
