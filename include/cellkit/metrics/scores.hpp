#pragma once
/// @file
/// `score_clustering(policy, labels_true, labels_pred)`: every clustering agreement score from one
/// contingency pass — ARI, Rand index, NMI (arithmetic mean), AMI (arithmetic mean), homogeneity,
/// completeness, V-measure (beta = 1), Fowlkes-Mallows and best-matching accuracy.
///
/// Each field equals the corresponding single-metric function (pair_counting.hpp, information.hpp,
/// accuracy.hpp) bit for bit, including their limit cases; the shared parts (table, pair counts,
/// MI, entropies, EMI) are computed once. Also available from an existing table:
/// `score_clustering(policy, table)`.
///
/// Throws `dimension_mismatch` when the lengths differ and `invalid_argument` for empty input (the
/// accuracy is undefined there; the single-metric functions give scikit-learn's values instead).
/// Cost: the contingency pass, O(R + C + nnz) logarithms, the EMI (information.hpp), and the
/// assignment on the dense R x C table (accuracy.hpp: O(R C) memory, O(min(R, C)^2 max(R, C))
/// worst-case time), which dominates for thousands of classes.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/metrics/accuracy.hpp>
#include <cellkit/metrics/contingency.hpp>
#include <cellkit/metrics/information.hpp>
#include <cellkit/metrics/labels.hpp>
#include <cellkit/metrics/pair_counting.hpp>

namespace cellkit::metrics {

/// All clustering agreement scores of two labelings.
struct clustering_scores {
  double adjusted_rand_index = 0.0;
  double rand_index = 0.0;
  double normalized_mutual_info = 0.0;  ///< arithmetic mean of the entropies
  double adjusted_mutual_info = 0.0;    ///< arithmetic mean of the entropies
  double homogeneity = 0.0;
  double completeness = 0.0;
  double v_measure = 0.0;  ///< beta = 1
  double fowlkes_mallows = 0.0;
  double accuracy = 0.0;  ///< best one-to-one matching accuracy
};

/// All scores of a contingency table.
template <class Policy, class R, class C>
clustering_scores score_clustering(const Policy& policy, const contingency<R, C>& table) {
  CELLKIT_EXPECTS(table.total() > 0, "score_clustering", "labels", "is empty: the accuracy of no labels is undefined");
  const auto host = detail::host_policy_for(policy);
  clustering_scores s;
  const pair_counts pairs = count_pairs(table);
  s.adjusted_rand_index = adjusted_rand_index(pairs);
  s.rand_index = rand_index(pairs);
  s.fowlkes_mallows = fowlkes_mallows(pairs);
  if (detail::single_class_both(table) || detail::identical_partitions(table)) {
    s.normalized_mutual_info = 1.0;
    s.adjusted_mutual_info = 1.0;
    s.homogeneity = s.completeness = s.v_measure = 1.0;
  } else {
    const double mi = detail::mutual_info_of_table(host, table);
    const double h_true = detail::entropy_of_sizes(host, table.row_sums(), table.total());
    const double h_pred = detail::entropy_of_sizes(host, table.col_sums(), table.total());
    const double emi = detail::expected_mutual_info_of_sizes(host, table.row_sums(), table.col_sums(), table.total());
    s.normalized_mutual_info =
        mi == 0.0 ? 0.0 : mi / detail::generalized_mean(h_true, h_pred, average_method::arithmetic);
    s.adjusted_mutual_info = detail::adjusted_mutual_info_from(mi, emi, h_true, h_pred, average_method::arithmetic);
    const homogeneity_completeness_v hcv = detail::hcv_from(mi, h_true, h_pred, 1.0);
    s.homogeneity = hcv.homogeneity;
    s.completeness = hcv.completeness;
    s.v_measure = hcv.v_measure;
  }
  s.accuracy = clustering_accuracy(host, table).accuracy;
  return s;
}
template <class R, class C>
clustering_scores score_clustering(const contingency<R, C>& table) {
  return score_clustering(default_host_policy(), table);
}

/// All scores of two labelings from one contingency pass.
template <class Policy, label_sequence TrueLabels, label_sequence PredLabels>
clustering_scores score_clustering(const Policy& policy, const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return score_clustering(policy, detail::contingency_for("score_clustering", policy, labels_true, labels_pred));
}
template <label_sequence TrueLabels, label_sequence PredLabels>
clustering_scores score_clustering(const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return score_clustering(default_host_policy(), labels_true, labels_pred);
}

}  // namespace cellkit::metrics
