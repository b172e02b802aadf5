#pragma once
/// @file
/// Pair-counting agreement between two labelings: `adjusted_rand_index`, `rand_index`,
/// `fowlkes_mallows`, and the exact pair counts behind them (`count_pairs`).
///
/// With the contingency table n_ij, row sums a_i, column sums b_j and n labels, the pair counts are
///   x = sum_ij C(n_ij, 2)   (pairs together in both labelings),
///   A = sum_i C(a_i, 2)     (pairs together in labels_true),
///   B = sum_j C(b_j, 2)     (pairs together in labels_pred),
///   N = C(n, 2)             (all pairs),
/// and
///   ARI = (x - A B / N) / ((A + B) / 2 - A B / N) = 2 (N x - A B) / (N (A + B) - 2 A B)
///   RI  = (N - A - B + 2 x) / N                     (pairs on which the labelings agree)
///   FMI = x / sqrt(A B)                             (geometric mean of pair precision and recall)
///
/// **Exactness.** x, A, B, N are exact unsigned 128-bit integers (`uint128_t`, the GCC/Clang
/// `__int128` extension); the products N x, A B, N (A + B) are formed exactly in 256 bits; ARI and
/// RI are then the exact rational number rounded once to the nearest double (ties to even), for any
/// n < 2^63. FMI is sqrt of the correctly rounded x^2 / (A B): within 1.5 ulp. (With 64-bit
/// integers, A B already overflows for n ~ 1e5 and N x for n ~ 2e5 with large classes; doubles lose
/// the difference N x - A B to cancellation when the labelings nearly agree or are nearly
/// independent.)
///
/// **Limit cases** (as scikit-learn 1.2's adjusted_rand_score, rand_score, fowlkes_mallows_score):
/// | case                                            | ARI | RI  | FMI |
/// |-------------------------------------------------|-----|-----|-----|
/// | n = 0 or n = 1                                  | 1.0 | 1.0 | 0.0 |
/// | identical partitions (incl. all singletons both, one cluster both) | 1.0 | 1.0 | 1.0 (0.0 if all singletons) |
/// | x = 0 (no pair together in both)                 | formula | formula | 0.0 |
/// ARI is 1.0 whenever A = B = x (scikit-learn's "fn == fp == 0" test); RI is 1.0 when N = 0.
/// ARI can be negative (down to -1/2 for two clusters).
///
/// Cost: one contingency pass over the labels (see contingency.hpp) plus O(R + C + nnz) integer
/// operations; from a table, O(R + C + nnz) and no allocation.

#include <cellkit/core/config.hpp>
#include <cellkit/metrics/contingency.hpp>
#include <cellkit/metrics/detail/exact_integer.hpp>
#include <cellkit/metrics/labels.hpp>

#include <cmath>
#include <cstdint>

namespace cellkit::metrics {

/// Exact pair counts of a contingency table (see the file comment).
struct pair_counts {
  uint128_t same_both = 0;  ///< x = sum_ij C(n_ij, 2)
  uint128_t same_true = 0;  ///< A = sum_i C(a_i, 2)
  uint128_t same_pred = 0;  ///< B = sum_j C(b_j, 2)
  uint128_t total = 0;      ///< N = C(n, 2)
};

/// x, A, B and N of a table, exactly. O(R + C + nnz).
template <class R, class C>
pair_counts count_pairs(const contingency<R, C>& table) {
  pair_counts counts;
  table.for_each_nonzero([&](index_t, index_t, std::int64_t c) { counts.same_both += detail::pairs_of(c); });
  for (std::int64_t a : table.row_sums()) counts.same_true += detail::pairs_of(a);
  for (std::int64_t b : table.col_sums()) counts.same_pred += detail::pairs_of(b);
  counts.total = detail::pairs_of(table.total());
  return counts;
}

/// ARI from exact pair counts, rounded once.
inline double adjusted_rand_index(const pair_counts& p) {
  if (p.same_true == p.same_both && p.same_pred == p.same_both) return 1.0;  // scikit-learn: fn == fp == 0
  const detail::wide_u256 n_x = detail::multiply_wide(p.total, p.same_both);
  const detail::wide_u256 a_b = detail::multiply_wide(p.same_true, p.same_pred);
  // Denominator N (A + B) - 2 A B = A (N - B) + B (N - A) >= 0, and > 0 outside the case above.
  const detail::wide_u256 denominator = detail::multiply_wide(p.total, p.same_true + p.same_pred) - (a_b + a_b);
  const bool negative = n_x < a_b;
  const detail::wide_u256 difference = negative ? a_b - n_x : n_x - a_b;
  const double magnitude = detail::exact_ratio_to_double(difference + difference, denominator);
  return negative ? -magnitude : magnitude;
}

/// RI from exact pair counts, rounded once.
inline double rand_index(const pair_counts& p) {
  if (p.total == 0) return 1.0;
  const uint128_t agreeing = p.total + 2 * p.same_both - p.same_true - p.same_pred;
  if (agreeing == p.total) return 1.0;
  return detail::exact_ratio_to_double(agreeing, p.total);
}

/// FMI from exact pair counts: sqrt of the correctly rounded x^2 / (A B); 0 when x = 0.
inline double fowlkes_mallows(const pair_counts& p) {
  if (p.same_both == 0) return 0.0;
  const double squared = detail::exact_ratio_to_double(detail::multiply_wide(p.same_both, p.same_both),
                                                       detail::multiply_wide(p.same_true, p.same_pred));
  return std::sqrt(squared);
}

/// ARI of a contingency table.
template <class R, class C>
double adjusted_rand_index(const contingency<R, C>& table) {
  return adjusted_rand_index(count_pairs(table));
}
/// RI of a contingency table.
template <class R, class C>
double rand_index(const contingency<R, C>& table) {
  return rand_index(count_pairs(table));
}
/// FMI of a contingency table.
template <class R, class C>
double fowlkes_mallows(const contingency<R, C>& table) {
  return fowlkes_mallows(count_pairs(table));
}

/// Adjusted Rand index of two labelings (Hubert and Arabie 1985). Throws `dimension_mismatch` when
/// the lengths differ. Empty input: 1.0 (as scikit-learn).
template <class Policy, label_sequence TrueLabels, label_sequence PredLabels>
double adjusted_rand_index(const Policy& policy, const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return adjusted_rand_index(detail::contingency_for("adjusted_rand_index", policy, labels_true, labels_pred));
}
template <label_sequence TrueLabels, label_sequence PredLabels>
double adjusted_rand_index(const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return adjusted_rand_index(default_host_policy(), labels_true, labels_pred);
}

/// Rand index (scikit-learn's rand_score): the fraction of pairs on which the labelings agree.
/// Empty input: 1.0.
template <class Policy, label_sequence TrueLabels, label_sequence PredLabels>
double rand_index(const Policy& policy, const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return rand_index(detail::contingency_for("rand_index", policy, labels_true, labels_pred));
}
template <label_sequence TrueLabels, label_sequence PredLabels>
double rand_index(const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return rand_index(default_host_policy(), labels_true, labels_pred);
}

/// Fowlkes-Mallows index x / sqrt(A B). Empty input: 0.0 (as scikit-learn).
template <class Policy, label_sequence TrueLabels, label_sequence PredLabels>
double fowlkes_mallows(const Policy& policy, const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return fowlkes_mallows(detail::contingency_for("fowlkes_mallows", policy, labels_true, labels_pred));
}
template <label_sequence TrueLabels, label_sequence PredLabels>
double fowlkes_mallows(const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return fowlkes_mallows(default_host_policy(), labels_true, labels_pred);
}

}  // namespace cellkit::metrics
