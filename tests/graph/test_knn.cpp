#include <cellkit/graph/knn.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

using namespace cellkit;
using namespace cellkit::graph;
using graph_test::cast;

namespace {

/// Checks rows against sklearn: distances equal (sorted), and the neighbour set equal wherever the
/// k-th and (k+1)-th sklearn distances are not tied. Returns the number of rows compared as sets.
template <class T>
index_t compare_with_sklearn(const knn_neighbors<T>& nb, const std::vector<double>& idx,
                             const std::vector<double>& dist, index_t k, double rtol) {
  index_t compared = 0;
  for (index_t i = 0; i < nb.n; ++i) {
    CAPTURE(i);
    std::set<index_t> ours, theirs;
    for (index_t p = 0; p < k; ++p) {
      const double expected = dist[static_cast<std::size_t>(i * (k + 1) + p)];
      CHECK(test::close(static_cast<double>(nb.distances[i * k + p]), expected, rtol, rtol));
      ours.insert(nb.indices[i * k + p]);
      theirs.insert(static_cast<index_t>(idx[static_cast<std::size_t>(i * (k + 1) + p)]));
      if (p > 0) {  // sorted by (distance, index)
        const bool ordered = nb.distances[i * k + p - 1] < nb.distances[i * k + p] ||
                             (nb.distances[i * k + p - 1] == nb.distances[i * k + p] &&
                              nb.indices[i * k + p - 1] < nb.indices[i * k + p]);
        CHECK(ordered);
      }
      CHECK(nb.indices[i * k + p] != i);
    }
    const double dk = dist[static_cast<std::size_t>(i * (k + 1) + k - 1)];
    const double dk1 = dist[static_cast<std::size_t>(i * (k + 1) + k)];
    if (dk1 - dk > 20 * rtol * (1 + dk)) {
      CHECK(ours == theirs);
      ++compared;
    }
  }
  return compared;
}

}  // namespace

TEST_CASE_TEMPLATE("knn_search matches scikit-learn brute-force neighbours", T, float, double) {
  const auto cases = test::read_fixture_cases("graph_knn.txt");
  REQUIRE(cases.size() >= 5);
  const double rtol = std::is_same_v<T, float> ? 2e-6 : 1e-12;
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto d = static_cast<index_t>(c.params[1]);
    const auto k = static_cast<index_t>(c.params[2]);
    const bool cosine = c.params[3] != 0;
    CAPTURE(n);
    CAPTURE(cosine);
    const auto x = cast<T>(c.matrix("X"));
    knn_params<T> params;
    params.k = k;
    params.metric = cosine ? knn_metric::cosine : knn_metric::euclidean;
    const auto nb = knn_search(openmp{2}, matrix_view<const T>(x.data(), n, d), params);
    REQUIRE(nb.k == k);
    const index_t compared = compare_with_sklearn(nb, c.matrix("idx"), c.matrix("dist"), k, rtol);
    CHECK(compared >= n * 9 / 10);
  }
}

TEST_CASE("knn UMAP connectivities match umap-learn's smooth_knn_dist and fuzzy union") {
  const auto cases = test::read_fixture_cases("graph_knn.txt");
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto d = static_cast<index_t>(c.params[1]);
    const auto k = static_cast<index_t>(c.params[2]);
    if (c.params[4] != 1) continue;
    CAPTURE(n);
    const auto& x = c.matrix("X");
    knn_params<double> params;
    params.k = k;
    params.metric = c.params[3] != 0 ? knn_metric::cosine : knn_metric::euclidean;
    params.weights = knn_weights::umap;
    const auto nb = knn_search(serial{}, matrix_view<const double>(x.data(), n, d), params);
    std::vector<double> sigma, rho;
    smooth_knn_distances(nb, sigma, rho);
    graph_test::check_close(sigma, c.matrix("umap_sigma"), 1e-10, 1e-12, "sigma");
    graph_test::check_close(rho, c.matrix("umap_rho"), 1e-12, 1e-12, "rho");
    // Directed memberships: rows whose neighbour set agrees with sklearn's are identical.
    auto p_ref = graph_test::fixture_graph<double>(c, n, "umap_P_");
    auto directed = knn_graph_from_neighbors(serial{}, nb, params);
    const auto dp = graph_test::dense(directed.view());
    const auto dref = graph_test::dense(p_ref.view());
    const auto& idx = c.matrix("idx");
    index_t rows_compared = 0;
    for (index_t i = 0; i < n; ++i) {
      std::set<index_t> ours(nb.indices.begin() + i * k, nb.indices.begin() + (i + 1) * k), theirs;
      for (index_t p = 0; p < k; ++p)
        theirs.insert(static_cast<index_t>(idx[static_cast<std::size_t>(i * (k + 1) + p)]));
      if (ours != theirs) continue;
      ++rows_compared;
      for (index_t j = 0; j < n; ++j)
        CHECK(test::close(dp[static_cast<std::size_t>(i * n + j)], dref[static_cast<std::size_t>(i * n + j)], 1e-9,
                          1e-12));
    }
    CHECK(rows_compared >= n * 9 / 10);
    if (rows_compared == n) {  // fuzzy union against the reference's
      params.symmetrize = knn_symmetrize::union_edges;
      const auto g = graph_test::dense(knn_graph(serial{}, matrix_view<const double>(x.data(), n, d), params).view());
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j < n; ++j) {
          const double a = dref[static_cast<std::size_t>(i * n + j)], b = dref[static_cast<std::size_t>(j * n + i)];
          CHECK(test::close(g[static_cast<std::size_t>(i * n + j)], a + b - a * b, 1e-9, 1e-12));
        }
    }
  }
}

TEST_CASE("knn_search_batched matches per-batch brute force (BBKNN)") {
  const auto cases = test::read_fixture_cases("graph_knn.txt");
  index_t seen = 0;
  for (const auto& c : cases) {
    const auto batches = static_cast<index_t>(c.params[4]);
    if (batches == 1) continue;
    ++seen;
    const auto n = static_cast<index_t>(c.params[0]);
    const auto d = static_cast<index_t>(c.params[1]);
    const auto k = static_cast<index_t>(c.params[2]);
    std::vector<int> labels(c.matrix("batch").begin(), c.matrix("batch").end());
    knn_params<double> params;
    params.k = k;
    params.metric = c.params[3] != 0 ? knn_metric::cosine : knn_metric::euclidean;
    const auto& x = c.matrix("X");
    const auto nb = knn_search_batched(openmp{2}, matrix_view<const double>(x.data(), n, d),
                                       vector_view<const int>(labels.data(), n), batches, params);
    REQUIRE(nb.k == k * batches);
    std::vector<double> got(nb.distances.begin(), nb.distances.end());
    graph_test::check_close(got, c.matrix("bb_dist"), 1e-12, 1e-12, "distances");
    for (index_t i = 0; i < n; ++i) {
      std::vector<int> per_batch(static_cast<std::size_t>(batches));
      for (index_t p = 0; p < nb.k; ++p) {
        CHECK(nb.indices[i * nb.k + p] != i);
        ++per_batch[static_cast<std::size_t>(labels[static_cast<std::size_t>(nb.indices[i * nb.k + p])])];
      }
      for (int count : per_batch) CHECK(count == k);
    }
    const auto serial_nb = knn_search_batched(serial{}, matrix_view<const double>(x.data(), n, d),
                                              vector_view<const int>(labels.data(), n), batches, params);
    CHECK(std::equal(nb.indices.begin(), nb.indices.end(), serial_nb.indices.begin()));
  }
  CHECK(seen == 2);
}

TEST_CASE_TEMPLATE("knn_search gives the same neighbours and bits for every host policy", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  // Several tile rows (n not a multiple of 512), many near-ties: integer-valued features.
  const index_t n = 2100, d = 12, k = 9;
  std::vector<float> x(static_cast<std::size_t>(n * d));
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> value(-3, 3);
  for (auto& v : x) v = static_cast<float>(value(rng));
  for (auto metric : {knn_metric::euclidean, knn_metric::cosine}) {
    knn_params<float> params;
    params.k = k;
    params.metric = metric;
    const auto reference = knn_search(serial{}, matrix_view<const float>(x.data(), n, d), params);
    const auto got = knn_search(test::policy_of<P>(), matrix_view<const float>(x.data(), n, d), params);
    CHECK(std::equal(got.indices.begin(), got.indices.end(), reference.indices.begin()));
    CHECK(std::equal(got.distances.begin(), got.distances.end(), reference.distances.begin()));
    // Against a naive double-precision brute force, ties broken by the lower index.
    for (index_t i = 0; i < n; i += 37) {
      std::vector<std::pair<double, index_t>> all;
      for (index_t j = 0; j < n; ++j) {
        if (j == i) continue;
        double s = 0, dot = 0, ni = 0, nj = 0;
        for (index_t c = 0; c < d; ++c) {
          const double a = x[static_cast<std::size_t>(i * d + c)], b = x[static_cast<std::size_t>(j * d + c)];
          s += (a - b) * (a - b);
          dot += a * b;
          ni += a * a;
          nj += b * b;
        }
        const double dist = metric == knn_metric::euclidean
                                ? std::sqrt(s)
                                : (ni == 0 || nj == 0 ? 1.0 : std::clamp(1 - dot / std::sqrt(ni * nj), 0.0, 2.0));
        all.emplace_back(static_cast<double>(static_cast<float>(dist)), j);
      }
      std::sort(all.begin(), all.end());
      for (index_t p = 0; p < k; ++p) {
        CAPTURE(i);
        CAPTURE(p);
        CHECK(got.indices[i * k + p] == all[static_cast<std::size_t>(p)].second);
      }
    }
  }
}

TEST_CASE("knn_graph weights, include_self and symmetrisation") {
  // Points on a line: 0, 1, 3, 6, 10.
  std::vector<double> x = {0, 1, 3, 6, 10};
  matrix_view<const double> xv(x.data(), 5, 1);
  knn_params<double> params;
  params.k = 2;
  auto nb = knn_search(serial{}, xv, params);
  CHECK(std::vector<int>(nb.indices.begin(), nb.indices.end()) == std::vector<int>{1, 2, 0, 2, 1, 0, 2, 4, 3, 2});
  CHECK(std::vector<double>(nb.distances.begin(), nb.distances.end()) ==
        std::vector<double>{1, 3, 1, 2, 2, 3, 3, 4, 4, 7});
  params.weights = knn_weights::distance;
  auto g = knn_graph(serial{}, xv, params);
  CHECK(graph_test::dense(g.view()) ==
        std::vector<double>{0, 1, 3, 0, 0, 1, 0, 2, 0, 0, 3, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 7, 4, 0});
  params.symmetrize = knn_symmetrize::mutual;
  auto mutual = graph_test::dense(knn_graph(serial{}, xv, params).view());
  CHECK(mutual == std::vector<double>{0, 1, 3, 0, 0, 1, 0, 2, 0, 0, 3, 2, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0});
  params.symmetrize = knn_symmetrize::union_edges;
  auto uni = knn_graph(serial{}, xv, params);
  CHECK(is_symmetric(uni.view()));
  CHECK(uni.num_edges() == 12);
  params.weights = knn_weights::gaussian;
  params.gaussian_sigma = 2.0;
  params.symmetrize = knn_symmetrize::none;
  auto gauss = graph_test::dense(knn_graph(serial{}, xv, params).view());
  CHECK(gauss[1] == doctest::Approx(std::exp(-1.0 / 8)));
  CHECK(gauss[2] == doctest::Approx(std::exp(-9.0 / 8)));
  params.gaussian_sigma = 0.0;  // self-tuning: s = {3, 2, 3, 4, 7}
  auto tuned = graph_test::dense(knn_graph(serial{}, xv, params).view());
  CHECK(tuned[1] == doctest::Approx(std::exp(-1.0 / 6)));
  CHECK(tuned[4 * 5 + 3] == doctest::Approx(std::exp(-16.0 / 28)));
  params.weights = knn_weights::binary;
  params.include_self = true;
  auto with_self = knn_search(serial{}, xv, params);
  CHECK(with_self.k == 3);
  for (index_t i = 0; i < 5; ++i) {
    CHECK(with_self.indices[i * 3] == i);
    CHECK(with_self.distances[i * 3] == 0.0);
  }
  auto gs = knn_graph(serial{}, xv, params);
  CHECK(gs.num_edges() == 15);
  params.weights = knn_weights::umap;  // self entries are dropped
  CHECK(knn_graph(serial{}, xv, params).num_edges() == 10);
}

TEST_CASE("knn rejects k >= n, k < 1, non-finite features and bad batches") {
  std::vector<double> x = {0, 1, 2, 3, 4, 5, 6, 7};
  matrix_view<const double> xv(x.data(), 4, 2);
  knn_params<double> params;
  params.k = 4;
  graph_test::check_throws_with<invalid_argument>(
      [&] { knn_search(serial{}, xv, params); },
      {"knn_search", "params.k", "k = 4 must be smaller than the number of points n = 4"});
  params.k = 0;
  graph_test::check_throws_with<invalid_argument>([&] { knn_graph(serial{}, xv, params); },
                                                  {"knn_search", "params.k", ">= 1"});
  params.k = 2;
  x[5] = std::nan("");
  graph_test::check_throws_with<invalid_argument>([&] { knn_search(serial{}, xv, params); },
                                                  {"knn_search", "'X'", "entry (2, 1) is not finite"});
  x[5] = INFINITY;
  graph_test::check_throws_with<invalid_argument>([&] { knn_search(serial{}, xv, params); },
                                                  {"entry (2, 1) is not finite"});
  x[5] = 5;
  std::vector<int> labels = {0, 1, 0, 3};
  graph_test::check_throws_with<invalid_argument>(
      [&] { knn_search_batched(serial{}, xv, vector_view<const int>(labels.data(), 4), 2, params); },
      {"knn_search_batched", "'batch'", "label 3 of row 3 is outside [0, 2)"});
  labels = {0, 1, 0, 0};
  params.k = 1;
  graph_test::check_throws_with<invalid_argument>(
      [&] { knn_search_batched(serial{}, xv, vector_view<const int>(labels.data(), 4), 2, params); },
      {"knn_search_batched", "batch 1 has 1 points"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] { knn_search_batched(serial{}, xv, vector_view<const int>(labels.data(), 3), 2, params); },
      {"knn_search_batched", "batch is 3 x 1"});
}
