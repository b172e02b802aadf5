// The kNN search evaluated for every policy (graph/detail/portable_knn.hpp), which the cuda policy
// runs: on host policies the portable search is called directly (so its arithmetic is checked
// without a GPU), with small tiles so that several query blocks and candidate chunks are merged;
// under nvcc the cuda instantiation calls the public view overload with device views (skipped
// without a GPU). Both are compared with the host search, which test_knn.cpp checks against
// scikit-learn.

#include <cellkit/graph/knn.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

using namespace cellkit;
using namespace cellkit::graph;
using cellkit::test::on_device;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

namespace {

template <class P, class T>
void run_search(matrix_view<const T, typename policy_array<P, T>::space> x,
                matrix_view<std::int32_t, typename policy_array<P, T>::space> idx,
                matrix_view<T, typename policy_array<P, T>::space> dist, const knn_params<T>& params,
                graph::detail::knn_tiling tiling) {
  const auto policy = policy_of<P>();
  if constexpr (on_device<P>) {
    knn_search(policy, x, idx, dist, params);
  } else {
    graph::detail::portable_knn_search(policy, x, idx, dist, params.k, params.metric == knn_metric::cosine,
                                       params.include_self, tiling);
  }
  synchronize(policy);
}

/// Clustered points with two equal rows (5 and 6: a tie at distance 0) and a zero row 0.
template <class T>
std::vector<T> clustered_points(index_t n, index_t d) {
  const auto noise = graph_test::random_vector<double>(static_cast<std::size_t>(n * d), 31, 0.3);
  std::vector<T> x(static_cast<std::size_t>(n * d));
  for (index_t i = 0; i < n; ++i)
    for (index_t c = 0; c < d; ++c)
      x[static_cast<std::size_t>(i * d + c)] =
          static_cast<T>(((i % 5) == c % 5 ? 2.0 : 0.0) + noise[static_cast<std::size_t>(i * d + c)]);
  for (index_t c = 0; c < d; ++c) {
    x[static_cast<std::size_t>(6 * d + c)] = x[static_cast<std::size_t>(5 * d + c)];
    x[static_cast<std::size_t>(c)] = T(0);
  }
  return x;
}

}  // namespace

TEST_CASE_TEMPLATE("portable kNN search (the cuda evaluation) finds the host search's neighbours", P,
                   CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const index_t n = 333, d = 7;
  const auto xd = clustered_points<double>(n, d);
  const auto xf = clustered_points<float>(n, d);
  // Several blocks of query rows and chunks of candidates (chunk 50 < k + 8 = 58 for k = 50),
  // and one block with one chunk.
  const graph::detail::knn_tiling tilings[] = {{.block_scores = 64 * n, .chunk = 50}, {}};
  for (const auto metric : {knn_metric::euclidean, knn_metric::cosine}) {
    for (const index_t k : {1, 15, 50}) {
      for (const bool include_self : {false, true}) {
        for (const auto& tiling : tilings) {
          CAPTURE(static_cast<int>(metric));
          CAPTURE(k);
          CAPTURE(include_self);
          CAPTURE(tiling.chunk);
          const knn_params<double> pd{.k = k, .metric = metric, .include_self = include_self};
          const auto ref = knn_search(serial{}, matrix_view<const double>(xd.data(), n, d), pd);
          const index_t w = ref.k;
          policy_array<P, double> x(xd), dist(n * w);
          policy_array<P, std::int32_t> idx(n * w);
          run_search<P, double>(x.matrix(n, d), idx.matrix(n, w), dist.matrix(n, w), pd, tiling);
          const auto got_idx = idx.to_host();
          CHECK(std::equal(got_idx.begin(), got_idx.end(), ref.indices.begin()));
          std::vector<double> expected(ref.distances.begin(), ref.distances.end());
          graph_test::check_close(dist.to_host(), expected, 1e-13, 1e-15, "distances");

          const knn_params<float> pf{.k = k, .metric = metric, .include_self = include_self};
          const auto reff = knn_search(serial{}, matrix_view<const float>(xf.data(), n, d), pf);
          policy_array<P, float> x32(xf), dist32(n * w);
          policy_array<P, std::int32_t> idx32(n * w);
          run_search<P, float>(x32.matrix(n, d), idx32.matrix(n, w), dist32.matrix(n, w), pf, tiling);
          const auto got32 = idx32.to_host();
          CHECK(std::equal(got32.begin(), got32.end(), reff.indices.begin()));
          std::vector<double> expected32(reff.distances.begin(), reff.distances.end());
          graph_test::check_close(dist32.to_host(), expected32, 1e-6, 1e-7, "float distances");
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("portable kNN search names a non-finite feature", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  auto xd = clustered_points<double>(20, 4);
  xd[3 * 4 + 2] = std::nan("");
  policy_array<P, double> x(xd), dist(20 * 3);
  policy_array<P, std::int32_t> idx(20 * 3);
  graph_test::check_throws_with<invalid_argument>(
      [&] { run_search<P, double>(x.matrix(20, 4), idx.matrix(20, 3), dist.matrix(20, 3), {.k = 3}, {}); },
      {"knn_search", "X", "entry (3, 2)", "not finite"});
}

TEST_CASE("the view overload of knn_search checks k and the output shapes, and copies the host search") {
  const index_t n = 40, d = 3;
  const auto xd = clustered_points<double>(n, d);
  const matrix_view<const double> x(xd.data(), n, d);
  std::vector<std::int32_t> idx(static_cast<std::size_t>(n * 6));
  std::vector<double> dist(idx.size());
  const knn_params<double> params{.k = 5, .include_self = true};
  knn_search(openmp{2}, x, matrix_view<std::int32_t>(idx.data(), n, 6), matrix_view<double>(dist.data(), n, 6), params);
  const auto ref = knn_search(serial{}, x, params);
  CHECK(std::equal(idx.begin(), idx.end(), ref.indices.begin()));
  CHECK(std::equal(dist.begin(), dist.end(), ref.distances.begin()));
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        knn_search(serial{}, x, matrix_view<std::int32_t>(idx.data(), n, 5), matrix_view<double>(dist.data(), n, 6),
                   params);
      },
      {"knn_search", "indices"});
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        knn_search(serial{}, x, matrix_view<std::int32_t>(idx.data(), n, 6), matrix_view<double>(dist.data(), n, 6),
                   knn_params<double>{.k = n, .include_self = true});
      },
      {"knn_search", "params.k", "smaller than the number of points"});
}
