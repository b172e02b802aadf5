#include <cellkit/metrics/ranking.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

// The ranking metrics run on the host only (they sort and merge on the CPU), so the tests are
// templated over the host policies even in the nvcc build; a cuda policy does not compile by design.

using namespace cellkit;
using cellkit::test::close;
using cellkit::test::policy_of;

namespace {

constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();

template <class T>
std::vector<T> converted(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

/// Mann-Whitney form of the ROC AUC with mid-ranks for ties: an oracle independent of the curve walk.
double auc_by_ranks(const std::vector<int>& y, const std::vector<double>& s) {
  const std::size_t n = y.size();
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return s[a] < s[b]; });
  double rank_sum = 0.0;
  double positives = 0.0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && s[order[j]] == s[order[i]]) ++j;
    const double mid_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1 .. j
    for (std::size_t t = i; t < j; ++t) {
      if (y[order[t]] == 1) {
        rank_sum += mid_rank;
        positives += 1.0;
      }
    }
    i = j;
  }
  const double negatives = static_cast<double>(n) - positives;
  return (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives);
}

template <class P, class T>
void check_fixture_case(const cellkit::test::fixture_case& c) {
  const auto policy = policy_of<P>();
  const std::vector<double>& labels_in = c.matrix("y_true");
  const std::vector<int> y(labels_in.begin(), labels_in.end());
  const std::vector<T> s = converted<T>(c.matrix("y_score"));
  const bool has_pos_label = c.params[3] != 0;
  const std::optional<std::int64_t> pos_label =
      has_pos_label ? std::optional<std::int64_t>(static_cast<std::int64_t>(c.params[4])) : std::nullopt;
  const metrics::binary_ranking_params params{pos_label};
  const double expected_auc = c.matrix("scores")[0];
  const double expected_ap = c.matrix("scores")[1];

  if (std::isnan(expected_auc)) {
    CHECK_THROWS_AS(metrics::roc_auc(policy, y, s, params), invalid_argument);
  } else {
    const double auc = metrics::roc_auc(policy, y, s, params);
    CHECK(close(auc, expected_auc, 1e-12, 1e-15));
  }
  if (std::isnan(expected_ap)) {
    CHECK_THROWS_AS(metrics::average_precision(policy, y, s, params), invalid_argument);
  } else {
    const double ap = metrics::average_precision(policy, y, s, params);
    CHECK(close(ap, expected_ap, 1e-12, 1e-15));
  }
  if (c.params[5] == 0) return;

  // Curves: the same divisions of the same integer counts as scikit-learn, so equal to rounding.
  const auto roc = metrics::roc_curve(policy, y, s, {.pos_label = pos_label});
  const auto& fpr = c.matrix("roc_fpr");
  const auto& tpr = c.matrix("roc_tpr");
  const auto& thresholds = c.matrix("roc_thresholds");
  REQUIRE(roc.fpr.size() == fpr.size());
  REQUIRE(roc.tpr.size() == tpr.size());
  REQUIRE(roc.thresholds.size() == thresholds.size());
  for (std::size_t i = 0; i < fpr.size(); ++i) {
    CAPTURE(i);
    CHECK(close(roc.fpr[i], fpr[i], 1e-15));
    CHECK(close(roc.tpr[i], tpr[i], 1e-15));
    CHECK(roc.thresholds[i] == static_cast<T>(thresholds[i]));  // -0.0 == +0.0 here
  }
  const auto pr = metrics::precision_recall_curve(policy, y, s, params);
  const auto& precision = c.matrix("pr_precision");
  const auto& recall = c.matrix("pr_recall");
  const auto& pr_thresholds = c.matrix("pr_thresholds");
  REQUIRE(pr.precision.size() == precision.size());
  REQUIRE(pr.recall.size() == recall.size());
  REQUIRE(pr.thresholds.size() == pr_thresholds.size());
  for (std::size_t i = 0; i < precision.size(); ++i) {
    CAPTURE(i);
    CHECK(close(pr.precision[i], precision[i], 1e-15));
    CHECK(close(pr.recall[i], recall[i], 1e-15));
    if (i < pr_thresholds.size()) CHECK(pr.thresholds[i] == static_cast<T>(pr_thresholds[i]));
  }
}

/// n samples with heavy ties (scores on a grid of `levels` values, positives shifted by 300 steps), ~30% positives.
void random_ties(std::size_t n, int levels, std::uint64_t seed, std::vector<int>& y, std::vector<double>& s) {
  std::mt19937_64 engine(seed);
  std::uniform_int_distribution<int> level(0, levels - 1);
  std::bernoulli_distribution positive(0.3);
  y.resize(n);
  s.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    y[i] = positive(engine) ? 1 : 0;
    s[i] = (static_cast<double>(level(engine)) + (y[i] == 1 ? 300.0 : 0.0)) / levels;
  }
}

}  // namespace

TEST_CASE_TEMPLATE("ranking metrics match scikit-learn 1.2 on the fixture cases", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto cases = cellkit::test::read_fixture_cases("ranking_cases.txt");
  REQUIRE(cases.size() >= 100);
  std::size_t with_curves = 0;
  for (const auto& c : cases) {
    CAPTURE(c.params[0]);  // case index
    CAPTURE(c.params[1]);  // n
    REQUIRE(static_cast<double>(c.matrix("y_true").size()) == c.params[1]);
    if (c.params[2] != 0) {
      check_fixture_case<P, float>(c);
    } else {
      check_fixture_case<P, double>(c);
    }
    with_curves += c.params[5] != 0 ? 1 : 0;
  }
  CHECK(with_curves >= 30);
}

TEST_CASE("ranking metrics on scikit-learn's documented examples") {
  const std::vector<int> y = {0, 0, 1, 1};
  const std::vector<double> s = {0.1, 0.4, 0.35, 0.8};
  CHECK(metrics::roc_auc(y, s) == 0.75);
  CHECK(close(metrics::average_precision(y, s), 0.8333333333333333, 1e-15));

  const std::vector<int> y2 = {1, 1, 2, 2};
  const auto roc = metrics::roc_curve(serial{}, y2, s, {.pos_label = 2});
  CHECK(roc.fpr == std::vector<double>{0, 0, 0.5, 0.5, 1});
  CHECK(roc.tpr == std::vector<double>{0, 0.5, 0.5, 1, 1});
  CHECK(roc.thresholds == std::vector<double>{1.8, 0.8, 0.4, 0.35, 0.1});  // 1.2: thresholds[1] + 1

  const auto pr = metrics::precision_recall_curve(serial{}, y, s);
  CHECK(pr.precision == std::vector<double>{0.5, 2.0 / 3.0, 0.5, 1, 1});
  CHECK(pr.recall == std::vector<double>{1, 1, 0.5, 0.5, 0});
  CHECK(pr.thresholds == std::vector<double>{0.1, 0.35, 0.4, 0.8});

  // Without drop_intermediate every distinct score is a point.
  const std::vector<int> y3 = {1, 1, 1, 0, 0, 0};
  const std::vector<double> s3 = {6, 5, 4, 3, 2, 1};
  CHECK(metrics::roc_curve(serial{}, y3, s3).fpr == std::vector<double>{0, 0, 0, 1});
  CHECK(metrics::roc_curve(serial{}, y3, s3, {.drop_intermediate = false}).fpr.size() == 7);
}

TEST_CASE("ties count one half in the ROC AUC and one threshold in the curves") {
  const std::vector<int> y = {1, 0};
  const std::vector<double> tied = {0.5, 0.5};
  CHECK(metrics::roc_auc(y, tied) == 0.5);
  CHECK(metrics::average_precision(y, tied) == 0.5);
  const auto roc = metrics::roc_curve(y, tied);
  CHECK(roc.fpr == std::vector<double>{0, 1});
  CHECK(roc.thresholds == std::vector<double>{1.5, 0.5});
  // -0.0 and +0.0 are one threshold (reported as +0.0).
  const std::vector<int> y2 = {1, 0, 1};
  const std::vector<double> zeros = {-0.0, 0.0, 1.0};
  const auto pr = metrics::precision_recall_curve(y2, zeros);
  REQUIRE(pr.thresholds.size() == 2);
  CHECK(pr.thresholds[0] == 0.0);
  CHECK(!std::signbit(pr.thresholds[0]));
  // float scores: the leading ROC threshold is computed in float, as NumPy does for float32.
  const std::vector<float> sf = {0.3f, 0.2f};
  const auto roc_f = metrics::roc_curve(std::vector<int>{0, 1}, sf);
  CHECK(roc_f.thresholds[0] == 0.3f + 1.0f);
}

TEST_CASE("limit cases: one class, all-equal scores, one sample") {
  const std::vector<int> positives = {1, 1, 1};
  const std::vector<int> negatives = {0, 0, 0};
  const std::vector<double> s = {0.1, 0.2, 0.3};
  CHECK(metrics::average_precision(positives, s) == 1.0);  // no negatives: precision is 1 throughout
  const auto roc_pos = metrics::roc_curve(positives, s);
  CHECK(std::all_of(roc_pos.fpr.begin(), roc_pos.fpr.end(), [](double v) { return std::isnan(v); }));
  CHECK(roc_pos.tpr.back() == 1.0);
  const auto roc_neg = metrics::roc_curve(negatives, s);
  CHECK(std::all_of(roc_neg.tpr.begin(), roc_neg.tpr.end(), [](double v) { return std::isnan(v); }));
  const auto pr_neg = metrics::precision_recall_curve(negatives, s);
  CHECK(pr_neg.recall == std::vector<double>{1, 1, 1, 0});  // scikit-learn 1.2's convention
  CHECK(pr_neg.precision == std::vector<double>{0, 0, 0, 1});

  const std::vector<int> y = {0, 1, 0, 1, 1};
  const std::vector<double> equal(5, 2.5);
  CHECK(metrics::roc_auc(y, equal) == 0.5);
  CHECK(metrics::average_precision(y, equal) == 0.6);
  CHECK(metrics::roc_curve(y, equal).fpr == std::vector<double>{0, 1});

  const std::vector<int> one = {1};
  const std::vector<double> one_score = {4.0};
  CHECK(metrics::average_precision(one, one_score) == 1.0);
  CHECK(metrics::precision_recall_curve(one, one_score).thresholds == std::vector<double>{4.0});
}

TEST_CASE("label encodings: bool, narrow and wide integers, pos_label, views and raw pointers") {
  const std::array<bool, 5> flags = {false, true, true, false, true};
  const std::vector<double> s = {0.2, 0.9, 0.4, 0.5, 0.1};
  const double expected = metrics::roc_auc(std::vector<int>{0, 1, 1, 0, 1}, s);
  CHECK(metrics::roc_auc(flags, s) == expected);
  const std::vector<unsigned char> bytes = {0, 1, 1, 0, 1};
  CHECK(metrics::roc_auc(bytes, s) == expected);
  const std::vector<std::int64_t> wide = {-1, 1, 1, -1, 1};
  CHECK(metrics::roc_auc(wide, s, {.pos_label = 1}) == expected);
  const std::vector<std::uint64_t> two_five = {2, 5, 5, 2, 5};
  CHECK(metrics::roc_auc(two_five, s, {.pos_label = 5}) == expected);
  CHECK(metrics::roc_auc(two_five, s, {.pos_label = 2}) == 1.0 - expected);  // classes swapped
  const std::vector<int> only_twos = {2, 2, 2};
  const std::vector<double> three = {0.1, 0.2, 0.3};
  CHECK(metrics::precision_recall_curve(only_twos, three, {.pos_label = 5}).recall.front() == 1.0);  // no positive

  const int raw_labels[] = {0, 1, 1, 0, 1};
  CHECK(metrics::roc_auc(serial{}, metrics::labels(raw_labels, 5), std::span<const double>(s)) == expected);
  const vector_view<const double> score_view(s.data(), 5);
  CHECK(metrics::average_precision(openmp{2}, std::span<const bool>(flags), score_view) ==
        metrics::average_precision(std::vector<int>{0, 1, 1, 0, 1}, s));
}

TEST_CASE_TEMPLATE("bad inputs are refused with a message naming the argument", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const std::vector<int> y = {0, 1, 1};
  const std::vector<double> s = {0.1, 0.5, 0.3};

  CHECK_THROWS_WITH_AS(metrics::roc_auc(policy, y, std::vector<double>{0.1, 0.2}),
                       "roc_auc: dimension mismatch: y_true is 3 x 1 but y_score is 2 x 1 (the inputs must have "
                       "the same length)",
                       dimension_mismatch);
  CHECK_THROWS_AS(metrics::average_precision(policy, y, std::vector<double>{0.1}), dimension_mismatch);
  CHECK_THROWS_AS(metrics::roc_curve(policy, y, std::vector<double>{}), dimension_mismatch);
  CHECK_THROWS_AS(metrics::precision_recall_curve(policy, std::vector<int>{1}, s), dimension_mismatch);

  const std::vector<double> with_nan = {0.1, nan_value, 0.3};
  CHECK_THROWS_WITH_AS(metrics::roc_auc(policy, y, with_nan),
                       "roc_auc: invalid argument 'y_score': y_score[1] is NaN: scores must be finite "
                       "(scikit-learn rejects NaN and infinity too)",
                       invalid_argument);
  const std::vector<float> with_inf = {0.1f, 0.2f, -std::numeric_limits<float>::infinity()};
  CHECK_THROWS_WITH_AS(metrics::average_precision(policy, y, with_inf),
                       doctest::Contains("'y_score': y_score[2] is -inf"), invalid_argument);
  CHECK_THROWS_WITH_AS(metrics::roc_curve(policy, y, with_nan), doctest::Contains("y_score[1] is NaN"),
                       invalid_argument);
  CHECK_THROWS_WITH_AS(metrics::precision_recall_curve(policy, y, with_nan), doctest::Contains("y_score[1] is NaN"),
                       invalid_argument);

  const std::vector<int> three_classes = {0, 2, 1};
  CHECK_THROWS_WITH_AS(metrics::roc_auc(policy, three_classes, s),
                       "roc_auc: invalid argument 'y_true': y_true[1] = 2 is not a binary label: expected 0 or 1 "
                       "(or bool); pass pos_label for other encodings",
                       invalid_argument);
  const std::vector<int> minus_one = {-1, 1, 1};
  CHECK_THROWS_WITH_AS(metrics::average_precision(policy, minus_one, s),
                       doctest::Contains("y_true[0] = -1 is not a binary label"), invalid_argument);
  CHECK(metrics::roc_curve(policy, minus_one, s, {.pos_label = 1}).fpr.size() >= 2);  // valid with pos_label
  CHECK_THROWS_WITH_AS(metrics::roc_auc(policy, std::vector<int>{0, 2, 1}, s, {.pos_label = 1}),
                       "roc_auc: invalid argument 'y_true': y_true[1] = 2: y_true must hold at most two classes, "
                       "pos_label = 1 and one other (here 0)",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(metrics::precision_recall_curve(policy, std::vector<int>{0, 2, 2}, s, {.pos_label = 1}),
                       "precision_recall_curve: invalid argument 'pos_label': pos_label = 1 is not one of the labels "
                       "in y_true (found 0 and 2)",
                       invalid_argument);

  CHECK_THROWS_WITH_AS(metrics::roc_auc(policy, std::vector<int>{1, 1, 1}, s),
                       "roc_auc: invalid argument 'y_true': only one class present in y_true (3 positives): ROC AUC "
                       "is not defined in that case (scikit-learn raises ValueError too)",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(metrics::roc_auc(policy, std::vector<int>{0, 0, 0}, s),
                       doctest::Contains("only one class present in y_true (3 negatives)"), invalid_argument);
  CHECK_THROWS_WITH_AS(metrics::average_precision(policy, std::vector<int>{0, 0, 0}, s),
                       "average_precision: invalid argument 'y_true': has no positive samples (pos_label = 1): "
                       "average precision is undefined (scikit-learn 1.2 warns and returns -0.0; cellkit refuses)",
                       invalid_argument);

  const std::vector<int> none;
  const std::vector<double> no_scores;
  CHECK_THROWS_WITH_AS(metrics::roc_auc(policy, none, no_scores),
                       "roc_auc: invalid argument 'y_true': is empty: a ranking metric needs at least one sample",
                       invalid_argument);
  CHECK_THROWS_AS(metrics::precision_recall_curve(policy, none, no_scores), invalid_argument);

  // The first offending element in index order is reported, whatever the chunking.
  std::vector<int> long_labels(200000, 0);
  std::vector<double> long_scores(200000, 1.0);
  long_labels[150000] = 7;
  long_labels[199999] = 9;
  long_scores[100] = nan_value;
  CHECK_THROWS_WITH_AS(metrics::roc_auc(policy, long_labels, long_scores),
                       doctest::Contains("y_true[150000] = 7 is not a binary label"), invalid_argument);
  long_labels[150000] = 0;
  long_labels[199999] = 0;
  CHECK_THROWS_WITH_AS(metrics::roc_auc(policy, long_labels, long_scores), doctest::Contains("y_score[100] is NaN"),
                       invalid_argument);
}

TEST_CASE("results are identical for serial, openmp{1} and openmp{2} (large input, heavy ties)") {
  std::vector<int> y;
  std::vector<double> s;
  random_ties(700000, 997, 7, y, s);  // > 4 x 65536 per class: the parallel sort path
  const std::vector<float> sf = converted<float>(s);
  const test::openmp1 one;
  const test::openmp2 two;

  const double auc = metrics::roc_auc(serial{}, y, s);
  CHECK(metrics::roc_auc(static_cast<openmp>(one), y, s) == auc);
  CHECK(metrics::roc_auc(static_cast<openmp>(two), y, s) == auc);
  CHECK(close(auc, auc_by_ranks(y, s), 1e-12));

  const double ap = metrics::average_precision(serial{}, y, s);
  CHECK(metrics::average_precision(static_cast<openmp>(one), y, s) == ap);
  CHECK(metrics::average_precision(static_cast<openmp>(two), y, s) == ap);

  const auto roc = metrics::roc_curve(serial{}, y, sf);
  const auto roc2 = metrics::roc_curve(static_cast<openmp>(two), y, sf);
  CHECK(roc.fpr == roc2.fpr);
  CHECK(roc.tpr == roc2.tpr);
  CHECK(roc.thresholds == roc2.thresholds);
  const auto pr = metrics::precision_recall_curve(serial{}, y, s);
  const auto pr2 = metrics::precision_recall_curve(static_cast<openmp>(two), y, s);
  CHECK(pr.precision == pr2.precision);
  CHECK(pr.recall == pr2.recall);
  CHECK(pr.thresholds == pr2.thresholds);
  CHECK(pr.thresholds.size() == 997 + 300);  // distinct grid values

  // Distinct continuous scores, both signs: the radix sort must order negatives correctly.
  std::mt19937_64 engine(11);
  std::normal_distribution<double> normal;
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = normal(engine) + (y[i] == 1 ? 0.7 : 0.0);
  const double auc_continuous = metrics::roc_auc(static_cast<openmp>(two), y, s);
  CHECK(metrics::roc_auc(serial{}, y, s) == auc_continuous);
  CHECK(close(auc_continuous, auc_by_ranks(y, s), 1e-12));
  const std::vector<float> sf2 = converted<float>(s);
  std::vector<double> rounded(sf2.begin(), sf2.end());
  CHECK(close(metrics::roc_auc(static_cast<openmp>(two), y, sf2), auc_by_ranks(y, rounded), 1e-12));
}
