#pragma once
/// @file
/// Best-matching clustering accuracy and the linear sum assignment solver behind it.
///
/// `linear_sum_assignment(policy, cost, maximize = false)`: for an R x C cost matrix, the injective
/// matching of min(R, C) rows to columns (or columns to rows when R > C) that minimises (maximises)
/// the total cost, like `scipy.optimize.linear_sum_assignment`: the result lists row indices in
/// ascending order with their columns, and the total. Entries equal to +inf (-inf when maximising)
/// are forbidden pairs; NaN, and -inf (+inf when maximising), are rejected with invalid_argument,
/// as is a matrix with no feasible complete matching. An empty matrix gives an empty matching.
/// Algorithm: Jonker-Volgenant (LAPJV): for square finite matrices, column reduction, reduction
/// transfer and augmenting row reduction, then shortest augmenting paths for the remaining rows;
/// rectangular or forbidden-entry matrices use shortest augmenting paths from zero prices (SciPy's
/// method). Time O(k^2 m) worst case for k = min(R, C), m = max(R, C), typically far less after JV's
/// initialisation; memory: one double copy of the matrix (transposed when R > C) + O(m). The solver
/// is sequential; the policy only states where the data lives (host).
/// With ties (several optimal matchings) the matching returned may differ from SciPy's; the total
/// is the same optimum.
///
/// `clustering_accuracy(policy, labels_true, labels_pred)`: the fraction of labels that agree after
/// the best one-to-one relabelling of predicted clusters to true classes,
///   accuracy = max over injective maps m of sum_i n_{i, m(i)} / n,
/// solved as a maximising assignment on the contingency table (R x C, rectangular allowed: the
/// unmatched classes or clusters count as errors). Returns the accuracy, the matched count and the
/// matching as (true label, predicted label) pairs of original label values, ordered by true label
/// (pairs with a zero count can appear when R or C exceeds the number of useful matches; they do
/// not change the accuracy). Throws `invalid_argument` for empty input (undefined: 0 / 0).
/// Cost: the contingency pass, then the assignment on R x C doubles (dense even when the table is
/// sparse: O(R C) memory).

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/metrics/contingency.hpp>
#include <cellkit/metrics/detail/linear_assignment.hpp>
#include <cellkit/metrics/detail/neumaier_sum.hpp>
#include <cellkit/metrics/labels.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::metrics {

/// A matching: row_indices[k] is matched to col_indices[k]; rows ascending.
struct assignment {
  std::vector<index_t> row_indices;
  std::vector<index_t> col_indices;
  double total_cost = 0.0;  ///< sum of cost(row_indices[k], col_indices[k]) in the input's values
};

/// The best one-to-one matching of true classes and predicted clusters.
template <class TrueLabel, class PredLabel>
struct clustering_accuracy_result {
  double accuracy = 0.0;                                  ///< matched / n
  std::int64_t matched = 0;                               ///< sum of the matched cells' counts
  std::vector<std::pair<TrueLabel, PredLabel>> matching;  ///< (true label, predicted label), by true label
};

namespace detail {

/// Solves the assignment on a contiguous double matrix with rows <= cols (already negated for
/// maximisation); returns each row's column.
inline std::vector<index_t> solve_assignment(const double* cost, index_t rows, index_t cols, bool all_finite) {
  if (rows == 0) return {};
  jonker_volgenant solver(cost, rows, cols, all_finite);
  return solver.row_to_col();
}

}  // namespace detail

/// Minimum (or, with maximize, maximum) weight matching of an R x C cost matrix; see the file comment.
template <class Policy, class T, class Space>
assignment linear_sum_assignment(const Policy& policy, matrix_view<T, Space> cost, bool maximize = false) {
  static_assert(std::is_arithmetic_v<std::remove_const_t<T>>, "linear_sum_assignment: costs must be numbers");
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  static_assert(!is_device_policy_v<Policy>, "linear_sum_assignment runs on the host: pass serial{} or openmp{}");
  (void)policy;
  const index_t rows = cost.rows();
  const index_t cols = cost.cols();
  assignment result;
  if (rows == 0 || cols == 0) return result;
  const bool transposed = rows > cols;
  const index_t r = transposed ? cols : rows;
  const index_t c = transposed ? rows : cols;
  std::vector<double> work(static_cast<std::size_t>(r * c));
  bool all_finite = true;
  const double sign = maximize ? -1.0 : 1.0;
  for (index_t i = 0; i < rows; ++i) {
    for (index_t j = 0; j < cols; ++j) {
      const double value = sign * static_cast<double>(cost(i, j));
      if (!(value < std::numeric_limits<double>::infinity())) {
        CELLKIT_EXPECTS(value == std::numeric_limits<double>::infinity(), "linear_sum_assignment", "cost",
                        "entry (" + std::to_string(i) + ", " + std::to_string(j) + ") is NaN");
        all_finite = false;
      }
      CELLKIT_EXPECTS(value > -std::numeric_limits<double>::infinity(), "linear_sum_assignment", "cost",
                      std::string("entry (") + std::to_string(i) + ", " + std::to_string(j) + ") is " +
                          (maximize ? "+inf (a maximised cost must be finite or -inf)"
                                    : "-inf (a minimised cost must be finite or +inf)"));
      work[static_cast<std::size_t>(transposed ? j * c + i : i * c + j)] = value;
    }
  }
  const std::vector<index_t> match = detail::solve_assignment(work.data(), r, c, all_finite);
  result.row_indices.resize(static_cast<std::size_t>(r));
  result.col_indices.resize(static_cast<std::size_t>(r));
  if (!transposed) {
    for (index_t i = 0; i < r; ++i) {
      result.row_indices[static_cast<std::size_t>(i)] = i;
      result.col_indices[static_cast<std::size_t>(i)] = match[static_cast<std::size_t>(i)];
    }
  } else {
    // Rows of the transposed problem are the original columns: list the original rows ascending.
    std::vector<index_t> col_of_row(static_cast<std::size_t>(rows), -1);
    for (index_t j = 0; j < r; ++j) col_of_row[static_cast<std::size_t>(match[static_cast<std::size_t>(j)])] = j;
    index_t k = 0;
    for (index_t i = 0; i < rows; ++i) {
      if (col_of_row[static_cast<std::size_t>(i)] < 0) continue;
      result.row_indices[static_cast<std::size_t>(k)] = i;
      result.col_indices[static_cast<std::size_t>(k)] = col_of_row[static_cast<std::size_t>(i)];
      ++k;
    }
  }
  for (std::size_t k = 0; k < result.row_indices.size(); ++k)
    result.total_cost += static_cast<double>(cost(result.row_indices[k], result.col_indices[k]));
  return result;
}

/// `linear_sum_assignment` with the default host policy.
template <class T, class Space>
assignment linear_sum_assignment(matrix_view<T, Space> cost, bool maximize = false) {
  return linear_sum_assignment(default_host_policy(), cost, maximize);
}

/// Best-matching accuracy of a contingency table (see the file comment).
template <class Policy, class R, class C>
clustering_accuracy_result<R, C> clustering_accuracy(const Policy& policy, const contingency<R, C>& table) {
  CELLKIT_EXPECTS(table.total() > 0, "clustering_accuracy", "labels",
                  "is empty: the accuracy of no labels is undefined");
  const std::vector<std::int64_t> counts = table.to_dense();
  const matrix_view<const std::int64_t> count_matrix(counts.data(), table.rows(), table.cols());
  const assignment best = linear_sum_assignment(detail::host_policy_for(policy), count_matrix, true);
  clustering_accuracy_result<R, C> result;
  for (std::size_t k = 0; k < best.row_indices.size(); ++k) {
    const index_t i = best.row_indices[k];
    const index_t j = best.col_indices[k];
    result.matched += counts[static_cast<std::size_t>(i * table.cols() + j)];
    result.matching.emplace_back(table.row_labels()[static_cast<std::size_t>(i)],
                                 table.col_labels()[static_cast<std::size_t>(j)]);
  }
  result.accuracy = static_cast<double>(result.matched) / static_cast<double>(table.total());
  return result;
}
template <class R, class C>
clustering_accuracy_result<R, C> clustering_accuracy(const contingency<R, C>& table) {
  return clustering_accuracy(default_host_policy(), table);
}

/// Best-matching accuracy of two labelings. Throws `dimension_mismatch` when the lengths differ and
/// `invalid_argument` for empty input.
template <class Policy, label_sequence TrueLabels, label_sequence PredLabels>
clustering_accuracy_result<sequence_value_t<TrueLabels>, sequence_value_t<PredLabels>> clustering_accuracy(
    const Policy& policy, const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return clustering_accuracy(policy, detail::contingency_for("clustering_accuracy", policy, labels_true, labels_pred));
}
template <label_sequence TrueLabels, label_sequence PredLabels>
clustering_accuracy_result<sequence_value_t<TrueLabels>, sequence_value_t<PredLabels>> clustering_accuracy(
    const TrueLabels& labels_true, const PredLabels& labels_pred) {
  return clustering_accuracy(default_host_policy(), labels_true, labels_pred);
}

}  // namespace cellkit::metrics
