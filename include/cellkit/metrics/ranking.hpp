#pragma once
/// @file
/// Ranking metrics for a binary classifier's scores (namespace `cellkit::metrics`), matching
/// scikit-learn 1.2: `roc_auc` (roc_auc_score), `average_precision` (average_precision_score),
/// `roc_curve` and `precision_recall_curve`.
///
/// ## Inputs
///
/// - `y_true`: any contiguous sequence of an integral type, bool included (std::vector<int>,
///   std::span<const bool>, std::array, Eigen vectors, cellkit::vector_view, `metrics::labels(ptr, n)`).
///   By default the labels must be 0 or 1 (false or true) and 1 is the positive class; any other
///   value is `invalid_argument` naming y_true, the index and the value. With
///   `{.pos_label = p}` the positives are the labels equal to p and y_true may hold one other
///   value (e.g. {-1, 1} with pos_label = 1, or {2, 5} with pos_label = 5); a third distinct value,
///   or two values neither of which is p, is `invalid_argument`.
/// - `y_score`: a contiguous sequence of `float` or `double` of the same length (else
///   `dimension_mismatch` naming both). Every score must be finite: NaN or ±inf is
///   `invalid_argument` naming y_score and the index (scikit-learn rejects both too).
/// - Empty inputs are `invalid_argument` (y_true).
///
/// ## Definitions (n samples, P positives, N negatives)
///
/// Let s_1 > s_2 > ... > s_m be the distinct scores, and for threshold s_k let tp_k / fp_k be the
/// number of positives / negatives scoring >= s_k (tp_0 = fp_0 = 0). Samples with equal scores are
/// therefore always counted together (a tie is one threshold, never split): this is exactly
/// scikit-learn's `_binary_clf_curve`.
///
/// - ROC AUC = sum_k (fp_k - fp_{k-1}) (tp_k + tp_{k-1}) / (2 P N): the trapezoid rule over the
///   distinct thresholds (a tie between a positive and a negative counts one half). cellkit sums the
///   numerator in exact 64-bit integer arithmetic and divides once, so the result is the correctly
///   rounded area up to two roundings (scikit-learn's `auc(fpr, tpr)` agrees to ~1e-15 relative).
/// - Average precision = sum_k (R_k - R_{k-1}) P_k with R_k = tp_k / P and P_k = tp_k / (tp_k + fp_k):
///   the step integral of the precision-recall curve without interpolation, evaluated as
///   (1/P) sum_k (tp_k - tp_{k-1}) tp_k / (tp_k + fp_k) with a compensated sum.
///
/// ## Limit cases
///
/// - `roc_auc` with one class only (P = 0 or N = 0): `invalid_argument` naming y_true, as
///   scikit-learn's "Only one class present in y_true" ValueError.
/// - `average_precision` with no positives: `invalid_argument` naming y_true. **Deliberate
///   departure:** scikit-learn 1.2 warns and returns -0.0 there (its recall is set to 1 at every
///   threshold), a number that looks like a score but is not one. With no negatives the average
///   precision is 1, as in scikit-learn.
/// - `roc_curve` with one class only: the undefined rate is NaN at every point (fpr when N = 0, tpr
///   when P = 0), as scikit-learn 1.2 returns (it also warns; cellkit never prints).
/// - `precision_recall_curve` with no positives: recall is 1 at every threshold (then the final 0),
///   scikit-learn 1.2's convention.
/// - A threshold of -0.0 is reported as +0.0 (-0 and +0 are one threshold, as in NumPy).
///
/// ## Execution and cost
///
/// Host only: `serial{}` or `openmp{threads}` (a `cuda` policy or a device view is a compile error
/// that says to copy the data to the host first). The scores are split by class and each class is
/// sorted with an MSD radix sort on the scores' bit patterns: each level takes up to 11 bits just
/// below the highest bit on which the keys of a range differ, so ties and shared prefixes cost
/// nothing; expected O(n) for spread-out scores, at most O(n x bits / 3) in general. The
/// validation, the split, the first radix level and the buckets run in parallel under `openmp`.
/// The thresholds are then merged in one O(n) sequential pass. Results are identical for every
/// policy and thread count: the sorted keys are unique and the sums run in one fixed order.
/// Memory: 2 n keys (2 x 4 bytes per sample for float, 2 x 8 for double) plus O(n / 65536) chunk
/// summaries, and the returned curves (at most n + 1 points).
///
/// ## Example
///
/// ```cpp
/// std::vector<int> y = {0, 0, 1, 1};
/// std::vector<double> s = {0.1, 0.4, 0.35, 0.8};
/// double auc = cellkit::metrics::roc_auc(y, s);             // 0.75
/// double ap = cellkit::metrics::average_precision(y, s);    // 0.8333...
/// auto roc = cellkit::metrics::roc_curve(cellkit::serial{}, y, s);
/// // roc.fpr = {0, 0, 0.5, 0.5, 1}, roc.tpr = {0, 0.5, 0.5, 1, 1}, roc.thresholds = {1.8, 0.8, 0.4, 0.35, 0.1}
/// ```

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/metrics/detail/host_metric_checks.hpp>
#include <cellkit/metrics/detail/ranking_impl.hpp>
#include <cellkit/metrics/labels.hpp>

#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

namespace cellkit::metrics {

/// A contiguous sequence of binary labels: any integral type, bool included.
template <class R>
concept binary_label_sequence = contiguous_sequence<R> && std::integral<sequence_value_t<R>>;

/// Parameters of `roc_auc`, `average_precision` and `precision_recall_curve`.
struct binary_ranking_params {
  /// The positive class. Empty (default): labels must be 0 or 1 and 1 is positive. Set: labels equal
  /// to pos_label are positive; y_true may hold one other value.
  std::optional<std::int64_t> pos_label = std::nullopt;
};

/// Parameters of `roc_curve`.
struct roc_curve_params {
  /// As in `binary_ranking_params`.
  std::optional<std::int64_t> pos_label = std::nullopt;
  /// Drop the thresholds whose (fpr, tpr) point lies on a straight line between its neighbours
  /// (scikit-learn's default, `drop_intermediate=True`): a point k is kept when it is the first or
  /// the last, or when fp or tp has a nonzero second difference at k. The area is unchanged.
  bool drop_intermediate = true;
};

/// The ROC curve: points (fpr[i], tpr[i]) for the decision "score >= thresholds[i]", thresholds
/// decreasing. Point 0 is (0, 0) with threshold thresholds[1] + 1 (scikit-learn 1.2's convention;
/// later scikit-learn versions use +inf), computed in the score type T.
template <class T>
struct roc_curve_result {
  std::vector<double> fpr;
  std::vector<double> tpr;
  std::vector<T> thresholds;
};

/// The precision-recall curve, thresholds increasing: precision[i], recall[i] for "score >=
/// thresholds[i]" (i < thresholds.size()), then a final point precision 1, recall 0 without a
/// threshold, as scikit-learn 1.2 returns. Every distinct score is a threshold (1.2 no longer
/// truncates the curve at full recall).
template <class T>
struct precision_recall_curve_result {
  std::vector<double> precision;
  std::vector<double> recall;
  std::vector<T> thresholds;
};

namespace detail::ranking {
template <class S>
constexpr void check_score_type() {
  static_assert(std::is_same_v<sequence_value_t<S>, float> || std::is_same_v<sequence_value_t<S>, double>,
                "cellkit::metrics ranking: y_score must hold float or double");
}

inline double rate_or_nan(index_t count, index_t total) {
  return total > 0 ? static_cast<double>(count) / static_cast<double>(total) : std::numeric_limits<double>::quiet_NaN();
}
}  // namespace detail::ranking

/// Area under the ROC curve (scikit-learn's `roc_auc_score` for binary y_true).
/// Throws `invalid_argument` (y_true) when only one class is present. See the file comment.
template <class Policy, binary_label_sequence L, real_sequence S>
double roc_auc(const Policy& policy, const L& y_true, const S& y_score, binary_ranking_params params = {}) {
  detail::check_host_metric_inputs<Policy, L, S>();
  detail::ranking::check_score_type<S>();
  detail::expect_same_length("roc_auc", "y_true", y_true.size(), "y_score", y_score.size());
  const auto sorted =
      detail::ranking::sort_by_class(policy, "roc_auc", as_span(y_true), as_span(y_score), params.pos_label);
  CELLKIT_EXPECTS(sorted.positives > 0 && sorted.negatives > 0, "roc_auc", "y_true",
                  std::string("only one class present in y_true (") + std::to_string(y_true.size()) + " " +
                      (sorted.positives > 0 ? "positives" : "negatives") +
                      "): ROC AUC is not defined in that case (scikit-learn raises ValueError too)");
  // Twice the area in units of 1/(P N): an exact integer < 2 P N <= n^2 / 2 <= 2^63 for n <= 2^32.
  std::uint64_t twice_area = 0;
  index_t fp_before = 0;
  index_t tp_before = 0;
  detail::ranking::for_each_threshold(sorted, [&](index_t fp, index_t tp, auto) {
    twice_area += static_cast<std::uint64_t>(fp - fp_before) * static_cast<std::uint64_t>(tp + tp_before);
    fp_before = fp;
    tp_before = tp;
  });
  return static_cast<double>(twice_area) /
         (2.0 * static_cast<double>(sorted.positives) * static_cast<double>(sorted.negatives));
}

/// Average precision (scikit-learn's `average_precision_score` for binary y_true): the step
/// integral of the precision-recall curve, without interpolation.
/// Throws `invalid_argument` (y_true) when there is no positive sample. See the file comment.
template <class Policy, binary_label_sequence L, real_sequence S>
double average_precision(const Policy& policy, const L& y_true, const S& y_score, binary_ranking_params params = {}) {
  detail::check_host_metric_inputs<Policy, L, S>();
  detail::ranking::check_score_type<S>();
  detail::expect_same_length("average_precision", "y_true", y_true.size(), "y_score", y_score.size());
  const auto sorted =
      detail::ranking::sort_by_class(policy, "average_precision", as_span(y_true), as_span(y_score), params.pos_label);
  CELLKIT_EXPECTS(sorted.positives > 0, "average_precision", "y_true",
                  "has no positive samples (pos_label = " + std::to_string(params.pos_label.value_or(1)) +
                      "): average precision is undefined (scikit-learn 1.2 warns and returns -0.0; cellkit "
                      "refuses)");
  detail::ranking::neumaier_accumulator sum;
  index_t tp_before = 0;
  detail::ranking::for_each_threshold(sorted, [&](index_t fp, index_t tp, auto) {
    if (tp != tp_before) {
      sum.add(static_cast<double>(tp - tp_before) * (static_cast<double>(tp) / static_cast<double>(tp + fp)));
    }
    tp_before = tp;
  });
  return sum.value() / static_cast<double>(sorted.positives);
}

/// The ROC curve as scikit-learn 1.2's `roc_curve` returns it (see `roc_curve_result`).
/// Memory: the three returned arrays (at most m + 1 points for m distinct scores).
template <class Policy, binary_label_sequence L, real_sequence S>
roc_curve_result<sequence_value_t<S>> roc_curve(const Policy& policy, const L& y_true, const S& y_score,
                                                roc_curve_params params = {}) {
  using T = sequence_value_t<S>;
  detail::check_host_metric_inputs<Policy, L, S>();
  detail::ranking::check_score_type<S>();
  detail::expect_same_length("roc_curve", "y_true", y_true.size(), "y_score", y_score.size());
  const auto sorted =
      detail::ranking::sort_by_class(policy, "roc_curve", as_span(y_true), as_span(y_score), params.pos_label);
  using K = detail::ranking::score_key_t<T>;

  roc_curve_result<T> result;
  auto emit = [&](index_t fp, index_t tp, K key) {
    result.fpr.push_back(detail::ranking::rate_or_nan(fp, sorted.negatives));
    result.tpr.push_back(detail::ranking::rate_or_nan(tp, sorted.positives));
    result.thresholds.push_back(detail::ranking::score_of_key<T>(key));
  };
  emit(0, 0, K(0));  // the leading (0, 0) point; its threshold is set below

  // Streaming version of scikit-learn's second-difference test: a point is decided when its
  // successor arrives; `held` is the undecided point, `before` its predecessor on the full curve.
  struct point {
    index_t fp, tp;
    K key;
  };
  point before{};
  point held{};
  index_t seen = 0;
  detail::ranking::for_each_threshold(sorted, [&](index_t fp, index_t tp, K key) {
    const point current{fp, tp, key};
    if (seen >= 1) {
      const bool corner = (current.fp - 2 * held.fp + before.fp) != 0 || (current.tp - 2 * held.tp + before.tp) != 0;
      if (seen == 1 || !params.drop_intermediate || corner) emit(held.fp, held.tp, held.key);
    }
    before = held;
    held = current;
    ++seen;
  });
  emit(held.fp, held.tp, held.key);  // the last point is always kept (n >= 1, so seen >= 1)
  result.thresholds[0] = static_cast<T>(result.thresholds[1] + T(1));
  return result;
}

/// The precision-recall curve as scikit-learn 1.2's `precision_recall_curve` returns it (see
/// `precision_recall_curve_result`). Memory: the three returned arrays (m + 1 points).
template <class Policy, binary_label_sequence L, real_sequence S>
precision_recall_curve_result<sequence_value_t<S>> precision_recall_curve(const Policy& policy, const L& y_true,
                                                                          const S& y_score,
                                                                          binary_ranking_params params = {}) {
  using T = sequence_value_t<S>;
  detail::check_host_metric_inputs<Policy, L, S>();
  detail::ranking::check_score_type<S>();
  detail::expect_same_length("precision_recall_curve", "y_true", y_true.size(), "y_score", y_score.size());
  const auto sorted = detail::ranking::sort_by_class(policy, "precision_recall_curve", as_span(y_true),
                                                     as_span(y_score), params.pos_label);

  precision_recall_curve_result<T> result;
  detail::ranking::for_each_threshold(sorted, [&](index_t fp, index_t tp, detail::ranking::score_key_t<T> key) {
    result.precision.push_back(static_cast<double>(tp) / static_cast<double>(tp + fp));
    // No positives: scikit-learn 1.2 sets recall to 1 at every threshold.
    result.recall.push_back(sorted.positives > 0 ? static_cast<double>(tp) / static_cast<double>(sorted.positives)
                                                 : 1.0);
    result.thresholds.push_back(detail::ranking::score_of_key<T>(key));
  });
  // Walked from the highest score down; the result runs from the lowest threshold up.
  std::reverse(result.precision.begin(), result.precision.end());
  std::reverse(result.recall.begin(), result.recall.end());
  std::reverse(result.thresholds.begin(), result.thresholds.end());
  result.precision.push_back(1.0);
  result.recall.push_back(0.0);
  return result;
}

// ---- overloads with the best host policy ----------------------------------------------------------

/// `roc_auc` with `default_host_policy()`.
template <binary_label_sequence L, real_sequence S>
double roc_auc(const L& y_true, const S& y_score, binary_ranking_params params = {}) {
  return roc_auc(default_host_policy(), y_true, y_score, params);
}

/// `average_precision` with `default_host_policy()`.
template <binary_label_sequence L, real_sequence S>
double average_precision(const L& y_true, const S& y_score, binary_ranking_params params = {}) {
  return average_precision(default_host_policy(), y_true, y_score, params);
}

/// `roc_curve` with `default_host_policy()`.
template <binary_label_sequence L, real_sequence S>
roc_curve_result<sequence_value_t<S>> roc_curve(const L& y_true, const S& y_score, roc_curve_params params = {}) {
  return roc_curve(default_host_policy(), y_true, y_score, params);
}

/// `precision_recall_curve` with `default_host_policy()`.
template <binary_label_sequence L, real_sequence S>
precision_recall_curve_result<sequence_value_t<S>> precision_recall_curve(const L& y_true, const S& y_score,
                                                                          binary_ranking_params params = {}) {
  return precision_recall_curve(default_host_policy(), y_true, y_score, params);
}

}  // namespace cellkit::metrics
