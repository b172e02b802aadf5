#pragma once
/// @file
/// Silhouette coefficients with the Euclidean distance (namespace `cellkit::metrics`), matching
/// scikit-learn 1.2's `silhouette_samples` and `silhouette_score`, exactly (every pair of points),
/// in O(N x tile) memory.
///
/// ## Definition
///
/// For point i in cluster C(i) with n_C(i) members and d(i, j) = ||x_i - x_j||_2:
///
///     a(i) = sum_{j in C(i), j != i} d(i, j) / (n_C(i) - 1)
///     b(i) = min over clusters C != C(i) of sum_{j in C} d(i, j) / n_C
///     s(i) = (b(i) - a(i)) / max(a(i), b(i))
///
/// with s(i) = 0 when i is alone in its cluster, and s(i) = 0 when a(i) = b(i) = 0 (scikit-learn's
/// `nan_to_num` of 0/0). The score is the mean of s(i) over all points.
///
/// ## Inputs
///
/// - `X`: N x d `matrix_view` of `float` or `double` (row stride allowed), rows are points. Every
///   value must be finite (else `invalid_argument` naming X and the element); N >= 1 and d >= 1.
/// - `labels`: N integers of any integral type with arbitrary values (negative, gaps): they are
///   remapped. Length != N is `dimension_mismatch` naming labels and X. The number of distinct
///   labels must satisfy 2 <= n_labels <= N - 1, else `invalid_argument` naming labels (scikit-learn
///   raises ValueError for both functions), so N = 1 and a single label are errors.
/// - `out` (silhouette_samples): N elements of `float` or `double`, s(i) in the order of X's rows.
///
/// ## Algorithm, cost and memory
///
/// Points are grouped by cluster and centred on their mean (distances are unchanged; the norms, and
/// with them the cancellation of the GEMM formula, shrink), then cut into tiles of 256. A block of
/// pairs (tile I x tile J) is computed by one GEMM (`cellkit::gemm`, single-threaded: the threads
/// work on different blocks) giving -2 x.y; d^2 = ||x||^2 + ||y||^2 - 2 x.y is clamped at 0; pairs
/// with d^2 < r (||x||^2 + ||y||^2) (r = 2^-10 for double, 2^-6 for float: the point itself,
/// duplicates, near-duplicates) are recomputed from coordinate differences in double; square roots
/// are taken and each cluster's contiguous range is summed into per-point, per-cluster totals
/// (double). Two schedules:
///
/// - symmetric (default): each block with I <= J is computed once and feeds both tiles (row sums
///   for I, column sums for J). Blocks run in rounds of a round-robin tournament, in which every
///   tile appears at most once, so a round runs in parallel without sharing a total and each total
///   receives its contributions in round order. Chosen when the N x n_labels totals (doubles) take
///   at most max(64 MiB, the size of X).
/// - row tiles (otherwise, i.e. very many clusters): each tile of rows meets every point; its
///   totals live in per-thread scratch. Every pair is computed twice.
///
/// - Time: N^2 d / 2 multiply-adds and N^2 / 2 square roots (symmetric; twice that with row tiles).
/// - Memory: the centred points (N d values of T), O(N) indices and results, per thread a 256 x 256
///   block of T, and the totals: N x n_labels doubles (symmetric) or 256 x n_labels doubles per
///   thread (row tiles). Never N x N.
/// - Compute type: the GEMM and the square roots run in the input type T (float inputs stay in
///   float, so half the memory traffic of double), the totals in double. Float inputs whose centred
///   squared norms exceed 1e36 (where float would overflow) are computed in double instead.
///
/// ## Accuracy
///
/// Against an exact float64 silhouette computed from coordinate differences (see
/// tests/metrics/test_silhouette.cpp and docs/metrics_ranking.md):
///
/// - double: a GEMM distance is kept only when d^2 >= 2^-10 (||x||^2 + ||y||^2), where its relative
///   error is at most about (d + 2) eps 2^10 / 2 (3e-12 for d = 50; ~1e-14 typically), so |s(i) -
///   exact| stays below ~1e-11 by construction; measured on the fixtures: <= 4e-15 (the tests
///   require 1e-12). scikit-learn does not recompute close pairs: for duplicate or near-duplicate
///   points (and data far from the origin) its distances carry errors up to ~1e-8 |x|, so cellkit
///   and scikit-learn agree to ~1e-15 on ordinary data and only to scikit-learn's own error (up to
///   2e-8 on the fixtures) on such data; cellkit is the more accurate of the two there.
/// - float: distances from a float GEMM, kept when d^2 >= 2^-6 (||x||^2 + ||y||^2); |s(i) - exact|
///   (exact for the float inputs) measured <= 6e-7 on the fixtures, bounded by ~(d + 2) eps_f 2^6
///   (2e-4 for d = 50) for adversarial pairs just above the cut; the tests require 5e-5.
///
/// ## Determinism and execution
///
/// Host only (`serial{}`, `openmp{threads}`): the schedule, the blocks, the GEMM calls and the
/// summation order do not depend on the thread count, so every policy and thread count gives
/// bit-identical results. (The two schedules differ from each other by rounding only; which one
/// runs depends on N, d and n_labels alone.)
/// A `cuda` policy or device views are a compile error that says to copy the data to the host.
///
/// ## Example
///
/// ```cpp
/// std::vector<double> points = {0, 0,  0, 1,  5, 5,  5, 6};   // 4 points in 2-D
/// std::vector<int> labels = {7, 7, -1, -1};
/// cellkit::matrix_view<const double> x(points.data(), 4, 2);
/// double score = cellkit::metrics::silhouette_score(x, labels);  // 0.85858569600879...
/// std::vector<double> s(4);
/// cellkit::metrics::silhouette_samples(cellkit::openmp{2}, x, labels, cellkit::make_vector_view(s.data(), 4));
/// ```

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>
#include <cellkit/metrics/detail/host_metric_checks.hpp>
#include <cellkit/metrics/detail/silhouette_impl.hpp>
#include <cellkit/metrics/labels.hpp>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::metrics {

namespace detail::silhouette {

/// Checks the inputs shared by silhouette_samples and silhouette_score and returns the clusters.
template <class TX, class Labels>
silhouette_clusters prepare_silhouette(const char* function, matrix_view<TX> x, const Labels& labels) {
  static_assert(std::is_same_v<std::remove_const_t<TX>, float> || std::is_same_v<std::remove_const_t<TX>, double>,
                "cellkit::metrics silhouette: X must hold float or double");
  const index_t n = x.rows();
  expect_shapes(static_cast<index_t>(labels.size()) == n, function, "labels", {static_cast<index_t>(labels.size()), 1},
                "X", x.shape(), "labels needs one entry per row of X");
  CELLKIT_EXPECTS(n >= 1, function, "X", "has no rows (points)");
  CELLKIT_EXPECTS(x.cols() >= 1, function, "X", "has no columns (features)");
  for (index_t i = 0; i < n; ++i) {
    const auto* row = x.row_data(i);
    for (index_t k = 0; k < x.cols(); ++k) {
      if (!std::isfinite(row[k])) {
        ::cellkit::detail::throw_invalid_argument(function, "X",
                                                  "X(" + std::to_string(i) + ", " + std::to_string(k) + ") is " +
                                                      (std::isnan(row[k]) ? "NaN" : "infinite") +
                                                      ": coordinates must be finite");
      }
    }
  }
  silhouette_clusters clusters = group_by_cluster(as_span(labels));
  CELLKIT_EXPECTS(clusters.count >= 2 && clusters.count <= n - 1, function, "labels",
                  "the number of distinct labels is " + std::to_string(clusters.count) +
                      "; the silhouette needs 2 <= n_labels <= n_samples - 1 = " + std::to_string(n - 1));
  return clusters;
}

template <class TX, class Labels>
std::vector<double> silhouette_compute(int threads, matrix_view<TX> x, const Labels& labels, const char* function) {
  const silhouette_clusters clusters = prepare_silhouette(function, x, labels);
  return silhouette_values<std::remove_const_t<TX>>(threads, matrix_view<const std::remove_const_t<TX>>(x), clusters);
}

}  // namespace detail::silhouette

/// Writes s(i) for every row of X into `out` (same order as X's rows). See the file comment.
template <class Policy, class TX, class SpaceX, label_sequence Labels, class O, class SpaceO>
void silhouette_samples(const Policy& policy, matrix_view<TX, SpaceX> x, const Labels& labels,
                        vector_view<O, SpaceO> out) {
  detail::check_host_metric_inputs<Policy, matrix_view<TX, SpaceX>, Labels, vector_view<O, SpaceO>>();
  static_assert(std::is_same_v<O, float> || std::is_same_v<O, double>,
                "cellkit::metrics::silhouette_samples: out must be a mutable view of float or double");
  expect_shapes(out.size() == x.rows(), "silhouette_samples", "out", out.shape(), "X", x.shape(),
                "out needs one entry per row of X");
  const std::vector<double> s =
      detail::silhouette::silhouette_compute(::cellkit::detail::host_threads(policy), x, labels, "silhouette_samples");
  for (index_t i = 0; i < out.size(); ++i) out[i] = static_cast<O>(s[static_cast<std::size_t>(i)]);
}

/// The mean of s(i) over all points (scikit-learn's `silhouette_score` without sampling).
template <class Policy, class TX, class SpaceX, label_sequence Labels>
double silhouette_score(const Policy& policy, matrix_view<TX, SpaceX> x, const Labels& labels) {
  detail::check_host_metric_inputs<Policy, matrix_view<TX, SpaceX>, Labels>();
  const std::vector<double> s =
      detail::silhouette::silhouette_compute(::cellkit::detail::host_threads(policy), x, labels, "silhouette_score");
  // A fixed reduction tree (serial): the same bits for every policy.
  const double total = transform_reduce(serial{}, static_cast<index_t>(s.size()), 0.0, plus_op{},
                                        [&](index_t i) { return s[static_cast<std::size_t>(i)]; });
  return total / static_cast<double>(s.size());
}

/// `silhouette_samples` with `default_host_policy()`.
template <class TX, label_sequence Labels, class O>
void silhouette_samples(matrix_view<TX> x, const Labels& labels, vector_view<O> out) {
  silhouette_samples(default_host_policy(), x, labels, out);
}

/// `silhouette_score` with `default_host_policy()`.
template <class TX, label_sequence Labels>
double silhouette_score(matrix_view<TX> x, const Labels& labels) {
  return silhouette_score(default_host_policy(), x, labels);
}

}  // namespace cellkit::metrics
