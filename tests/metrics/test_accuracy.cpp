#include <cellkit/metrics/accuracy.hpp>

#include "metrics/clustering_cases.hpp"
#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace cellkit;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

/// Textbook O(n^2 m) Hungarian algorithm with potentials (rows <= cols), an independent reference.
double reference_min_cost(const std::vector<double>& a, index_t rows, index_t cols) {
  const bool transposed = rows > cols;
  const index_t n = transposed ? cols : rows;
  const index_t m = transposed ? rows : cols;
  auto cost = [&](index_t i, index_t j) {
    return transposed ? a[static_cast<std::size_t>(j * cols + i)] : a[static_cast<std::size_t>(i * cols + j)];
  };
  std::vector<long double> u(static_cast<std::size_t>(n + 1), 0), v(static_cast<std::size_t>(m + 1), 0);
  std::vector<index_t> p(static_cast<std::size_t>(m + 1), 0), way(static_cast<std::size_t>(m + 1), 0);
  for (index_t i = 1; i <= n; ++i) {
    p[0] = i;
    index_t j0 = 0;
    std::vector<long double> minv(static_cast<std::size_t>(m + 1), 1e300L);
    std::vector<char> used(static_cast<std::size_t>(m + 1), 0);
    do {
      used[static_cast<std::size_t>(j0)] = 1;
      const index_t i0 = p[static_cast<std::size_t>(j0)];
      long double delta = 1e300L;
      index_t j1 = 0;
      for (index_t j = 1; j <= m; ++j) {
        if (used[static_cast<std::size_t>(j)]) continue;
        const long double cur = cost(i0 - 1, j - 1) - u[static_cast<std::size_t>(i0)] - v[static_cast<std::size_t>(j)];
        if (cur < minv[static_cast<std::size_t>(j)]) {
          minv[static_cast<std::size_t>(j)] = cur;
          way[static_cast<std::size_t>(j)] = j0;
        }
        if (minv[static_cast<std::size_t>(j)] < delta) {
          delta = minv[static_cast<std::size_t>(j)];
          j1 = j;
        }
      }
      for (index_t j = 0; j <= m; ++j) {
        if (used[static_cast<std::size_t>(j)]) {
          u[static_cast<std::size_t>(p[static_cast<std::size_t>(j)])] += delta;
          v[static_cast<std::size_t>(j)] -= delta;
        } else {
          minv[static_cast<std::size_t>(j)] -= delta;
        }
      }
      j0 = j1;
    } while (p[static_cast<std::size_t>(j0)] != 0);
    do {
      const index_t j1 = way[static_cast<std::size_t>(j0)];
      p[static_cast<std::size_t>(j0)] = p[static_cast<std::size_t>(j1)];
      j0 = j1;
    } while (j0 != 0);
  }
  long double total = 0;
  for (index_t j = 1; j <= m; ++j)
    if (p[static_cast<std::size_t>(j)] != 0) total += cost(p[static_cast<std::size_t>(j)] - 1, j - 1);
  return static_cast<double>(total);
}

/// Minimum over all injective matchings by enumeration (rows <= cols <= 8).
double brute_force_min_cost(const std::vector<double>& a, index_t rows, index_t cols) {
  std::vector<index_t> perm(static_cast<std::size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  double best = inf;
  do {
    double total = 0;
    for (index_t i = 0; i < rows; ++i)
      total += a[static_cast<std::size_t>(i * cols + perm[static_cast<std::size_t>(i)])];
    best = std::min(best, total);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

/// The matching is a valid partial permutation of min(rows, cols) pairs with rows ascending, and its
/// total is the sum of its entries.
void check_valid(const metrics::assignment& a, const std::vector<double>& cost, index_t rows, index_t cols) {
  const index_t k = std::min(rows, cols);
  REQUIRE(static_cast<index_t>(a.row_indices.size()) == k);
  REQUIRE(static_cast<index_t>(a.col_indices.size()) == k);
  std::vector<char> row_used(static_cast<std::size_t>(rows), 0), col_used(static_cast<std::size_t>(cols), 0);
  long double total = 0;
  for (index_t q = 0; q < k; ++q) {
    const index_t i = a.row_indices[static_cast<std::size_t>(q)];
    const index_t j = a.col_indices[static_cast<std::size_t>(q)];
    REQUIRE((i >= 0 && i < rows && j >= 0 && j < cols));
    CHECK(!row_used[static_cast<std::size_t>(i)]);
    CHECK(!col_used[static_cast<std::size_t>(j)]);
    row_used[static_cast<std::size_t>(i)] = col_used[static_cast<std::size_t>(j)] = 1;
    if (q > 0) CHECK(a.row_indices[static_cast<std::size_t>(q - 1)] < i);
    total += cost[static_cast<std::size_t>(i * cols + j)];
  }
  CHECK(test::close(a.total_cost, static_cast<double>(total), 1e-12, 1e-12));
}

std::vector<double> random_costs(std::mt19937_64& rng, index_t rows, index_t cols, int kind) {
  std::vector<double> c(static_cast<std::size_t>(rows * cols));
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (auto& x : c) {
    if (kind == 0) x = uniform(rng);                                        // continuous: unique optimum
    if (kind == 1) x = static_cast<double>(rng() % 10);                     // many ties
    if (kind == 2) x = static_cast<double>(rng() % 1000) - 500.0;           // negative integers
    if (kind == 3) x = uniform(rng) * 1e6 * (rng() % 2 == 0 ? 1.0 : 1e-6);  // wide range
  }
  return c;
}

}  // namespace

TEST_CASE("linear_sum_assignment is optimal: brute force on small matrices, square and rectangular") {
  std::mt19937_64 rng(1);
  for (index_t rows = 1; rows <= 6; ++rows) {
    for (index_t cols = 1; cols <= 6; ++cols) {
      for (int kind = 0; kind < 4; ++kind) {
        for (int rep = 0; rep < 4; ++rep) {
          CAPTURE(rows);
          CAPTURE(cols);
          CAPTURE(kind);
          const auto cost = random_costs(rng, rows, cols, kind);
          const auto result =
              metrics::linear_sum_assignment(serial{}, matrix_view<const double>(cost.data(), rows, cols));
          check_valid(result, cost, rows, cols);
          // transpose for rows > cols: brute force on the transposed matrix
          std::vector<double> t(cost.size());
          for (index_t i = 0; i < rows; ++i)
            for (index_t j = 0; j < cols; ++j)
              t[static_cast<std::size_t>(j * rows + i)] = cost[static_cast<std::size_t>(i * cols + j)];
          const double best =
              rows <= cols ? brute_force_min_cost(cost, rows, cols) : brute_force_min_cost(t, cols, rows);
          CHECK(test::close(result.total_cost, best, 1e-12, 1e-12));
        }
      }
    }
  }
}

TEST_CASE("linear_sum_assignment matches a textbook Hungarian algorithm on larger matrices") {
  std::mt19937_64 rng(2);
  const index_t shapes[][2] = {{40, 40}, {100, 100}, {157, 157}, {60, 90}, {90, 60}, {1, 50}, {50, 1}, {200, 201}};
  for (const auto& shape : shapes) {
    for (int kind = 0; kind < 4; ++kind) {
      for (bool maximize : {false, true}) {
        const index_t rows = shape[0];
        const index_t cols = shape[1];
        CAPTURE(rows);
        CAPTURE(cols);
        CAPTURE(kind);
        CAPTURE(maximize);
        const auto cost = random_costs(rng, rows, cols, kind);
        const auto result =
            metrics::linear_sum_assignment(openmp{2}, matrix_view<const double>(cost.data(), rows, cols), maximize);
        check_valid(result, cost, rows, cols);
        std::vector<double> signed_cost(cost);
        if (maximize)
          for (auto& x : signed_cost) x = -x;
        const double best = (maximize ? -1.0 : 1.0) * reference_min_cost(signed_cost, rows, cols);
        CHECK(test::close(result.total_cost, best, 1e-12, 1e-9));
      }
    }
  }
}

TEST_CASE("linear_sum_assignment accepts integer and float costs, non-contiguous rows, and both policies") {
  const std::vector<int> cost = {4, 1, 3, 99,  //
                                 2, 0, 5, 99,  //
                                 3, 2, 2, 99};
  // a 3 x 3 view with stride 4 (the 99 column is padding)
  const matrix_view<const int> view(cost.data(), 3, 3, 4);
  const auto a = metrics::linear_sum_assignment(view);
  CHECK(a.total_cost == 5.0);  // SciPy's example: rows 0,1,2 -> cols 1,0,2
  CHECK(a.col_indices == std::vector<index_t>{1, 0, 2});
  const auto b = metrics::linear_sum_assignment(serial{}, view, true);
  CHECK(b.total_cost == 11.0);
  const std::vector<float> f = {0.5f, 0.25f, 0.125f, 1.0f};
  const auto c = metrics::linear_sum_assignment(matrix_view<const float>(f.data(), 2, 2));
  CHECK(c.total_cost == 0.375);
  const std::vector<double> empty;
  CHECK(metrics::linear_sum_assignment(matrix_view<const double>(empty.data(), 0, 0)).row_indices.empty());
  CHECK(metrics::linear_sum_assignment(matrix_view<const double>(empty.data(), 0, 3)).row_indices.empty());
  CHECK(metrics::linear_sum_assignment(matrix_view<const double>(empty.data(), 3, 0)).row_indices.empty());
}

TEST_CASE("forbidden (+inf) entries are avoided; infeasible, NaN and wrong-signed infinities are rejected") {
  std::mt19937_64 rng(3);
  for (int rep = 0; rep < 20; ++rep) {
    const index_t n = 30 + rep;
    auto cost = random_costs(rng, n, n, rep % 2);
    std::vector<double> finite_big(cost);
    for (index_t i = 0; i < n; ++i) {
      for (index_t j = 0; j < n; ++j) {
        if (i != j && rng() % 3 == 0) {  // the diagonal stays allowed: feasible
          cost[static_cast<std::size_t>(i * n + j)] = inf;
          finite_big[static_cast<std::size_t>(i * n + j)] = 1e9;
        }
      }
    }
    const auto result = metrics::linear_sum_assignment(matrix_view<const double>(cost.data(), n, n));
    CHECK(std::isfinite(result.total_cost));
    CHECK(test::close(result.total_cost, reference_min_cost(finite_big, n, n), 1e-12, 1e-9));
    // maximising with -inf as the forbidden value
    for (auto& x : cost) x = -x;
    const auto maximised = metrics::linear_sum_assignment(matrix_view<const double>(cost.data(), n, n), true);
    CHECK(test::close(maximised.total_cost, -result.total_cost, 1e-12, 1e-9));
  }
  const std::vector<double> infeasible = {inf, 1.0, inf, 2.0};  // column 0 is forbidden for every row
  CHECK_THROWS_AS(metrics::linear_sum_assignment(matrix_view<const double>(infeasible.data(), 2, 2)), invalid_argument);
  const std::vector<double> row_forbidden = {inf, inf, inf, 1.0, 2.0, 3.0};
  CHECK_THROWS_AS(metrics::linear_sum_assignment(matrix_view<const double>(row_forbidden.data(), 2, 3)),
                  invalid_argument);
  const std::vector<double> with_nan = {1.0, std::nan(""), 2.0, 3.0};
  CHECK_THROWS_AS(metrics::linear_sum_assignment(matrix_view<const double>(with_nan.data(), 2, 2)), invalid_argument);
  const std::vector<double> minus_inf = {1.0, -inf, 2.0, 3.0};
  CHECK_THROWS_AS(metrics::linear_sum_assignment(matrix_view<const double>(minus_inf.data(), 2, 2)), invalid_argument);
  const std::vector<double> plus_inf = {1.0, inf, 2.0, 3.0};
  CHECK_THROWS_AS(metrics::linear_sum_assignment(matrix_view<const double>(plus_inf.data(), 2, 2), true),
                  invalid_argument);
  try {
    metrics::linear_sum_assignment(matrix_view<const double>(with_nan.data(), 2, 2));
  } catch (const invalid_argument& e) {
    CHECK(std::string(e.what()) == "linear_sum_assignment: invalid argument 'cost': entry (0, 1) is NaN");
  }
}

TEST_CASE_TEMPLATE("clustering accuracy matches scipy's assignment on every fixture case", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto policy = policy_of<P>();
  for (const auto& c : test::clustering_cases()) {
    if (c.n == 0) continue;
    CAPTURE(c.id);
    policy_array<P, std::int64_t> t(c.labels_true), p(c.labels_pred);
    const auto result = metrics::clustering_accuracy(policy, t.view(), p.view());
    // matched / n is the same rational in both, divided once: identical doubles
    CHECK(result.accuracy == c.sklearn.at("accuracy"));
    const auto table = metrics::contingency_table(policy, t.view(), p.view());
    CHECK(static_cast<index_t>(result.matching.size()) == std::min(table.rows(), table.cols()));
    // the matching's counts add up to `matched`, and it pairs distinct labels
    std::int64_t matched = 0;
    std::map<std::int64_t, index_t> row_of, col_of;
    for (index_t i = 0; i < table.rows(); ++i) row_of[table.row_labels()[static_cast<std::size_t>(i)]] = i;
    for (index_t j = 0; j < table.cols(); ++j) col_of[table.col_labels()[static_cast<std::size_t>(j)]] = j;
    std::map<std::int64_t, int> pred_seen;
    for (const auto& [true_label, pred_label] : result.matching) {
      matched += table.count(row_of.at(true_label), col_of.at(pred_label));
      CHECK(++pred_seen[pred_label] == 1);
    }
    CHECK(matched == result.matched);
  }
}

TEST_CASE("clustering accuracy: matching of original labels, rectangular tables, bad input") {
  // true classes {10, 20, 30}; predicted clusters {-1, -2} relabel 10 -> -2 and 20 -> -1
  const std::vector<int> t = {10, 10, 10, 20, 20, 30, 30, 30, 30};
  const std::vector<long> p = {-2, -2, -1, -1, -1, -2, -2, -1, -2};
  const auto r = metrics::clustering_accuracy(t, p);
  // best: 30 -> -2 (3) and 20 -> -1 (2): 5 / 9
  CHECK(r.matched == 5);
  CHECK(r.accuracy == 5.0 / 9.0);
  REQUIRE(r.matching.size() == 2);
  CHECK(r.matching[0] == std::pair<int, long>{20, -1});
  CHECK(r.matching[1] == std::pair<int, long>{30, -2});
  // swapped roles: 2 rows x 3 columns, the same optimum
  const auto s = metrics::clustering_accuracy(serial{}, p, t);
  CHECK(s.matched == 5);
  CHECK(s.matching[0] == std::pair<long, int>{-2, 30});
  CHECK(s.matching[1] == std::pair<long, int>{-1, 20});
  // identical labelings up to renaming: accuracy 1
  CHECK(metrics::clustering_accuracy(openmp{2}, std::vector<int>{1, 1, 2, 3}, std::vector<int>{7, 7, 5, 6}).accuracy ==
        1.0);
  const std::vector<int> empty;
  CHECK_THROWS_AS(metrics::clustering_accuracy(empty, empty), invalid_argument);
  CHECK_THROWS_AS(metrics::clustering_accuracy(std::vector<int>{1, 2}, std::vector<int>{1}), dimension_mismatch);
}
