#include <cellkit/graph/augment.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <set>
#include <vector>

using namespace cellkit;
using namespace cellkit::graph;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

TEST_CASE_TEMPLATE("edge_keep_mask is the documented Philox draw on every backend", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  auto g = graph_test::random_graph<float>(500, 12, 3, true);
  const auto v = g.view();
  std::vector<std::int32_t> indptr(v.indptr(), v.indptr() + v.rows() + 1), indices(v.indices(), v.indices() + v.nnz());
  policy_array<P, std::int32_t> ip(indptr), ix(indices);
  policy_array<P, float> values(std::vector<float>(v.values(), v.values() + v.nnz()));
  policy_array<P, std::uint8_t> keep(v.nnz());
  using space = typename policy_array<P, float>::space;
  csr_view<const float, std::int32_t, space> a(v.rows(), v.cols(), v.nnz(), ip.data(), ix.data(), values.data());
  for (bool symmetric : {false, true}) {
    edge_keep_mask(policy_of<P>(), a, keep.view(), {0.3, 42, 7, symmetric});
    synchronize(policy_of<P>());
    const auto got = keep.to_host();
    index_t dropped = 0;
    for (index_t i = 0; i < v.rows(); ++i) {
      for (index_t p = v.row_begin(i); p < v.row_end(i); ++p) {
        std::uint64_t r = static_cast<std::uint64_t>(i), c = static_cast<std::uint64_t>(v.indices()[p]);
        if (symmetric && c < r) std::swap(r, c);
        philox_engine eng(42, 7, r * 500 + c);
        CHECK(got[static_cast<std::size_t>(p)] == (bernoulli(eng, 0.3) ? 0 : 1));
        dropped += got[static_cast<std::size_t>(p)] == 0;
      }
    }
    CHECK(std::abs(static_cast<double>(dropped) / static_cast<double>(v.nnz()) - 0.3) < 0.03);
  }
}

TEST_CASE_TEMPLATE("mask_features and add_gaussian_noise are the documented draws on every backend", P,
                   CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const index_t n = 300, d = 17, stride = 20;  // a row stride wider than the row
  auto host = graph_test::random_vector<double>(static_cast<std::size_t>(n * stride), 1);
  policy_array<P, double> x(host), y(n * d);
  matrix_view<const double, typename policy_array<P, double>::space> xv(x.data(), n, d, stride);
  for (auto mode : {feature_mask_mode::elements, feature_mask_mode::columns}) {
    mask_features(policy_of<P>(), xv, y.matrix(n, d), {0.25, mode, 9, 2});
    synchronize(policy_of<P>());
    const auto got = y.to_host();
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < d; ++j) {
        philox_engine eng(9, 2, static_cast<std::uint64_t>(mode == feature_mask_mode::columns ? j : i * d + j));
        const double expected = bernoulli(eng, 0.25) ? 0.0 : host[static_cast<std::size_t>(i * stride + j)];
        CHECK(got[static_cast<std::size_t>(i * d + j)] == expected);
      }
  }
  add_gaussian_noise(policy_of<P>(), xv, y.matrix(n, d), noise_params<double>{0.5, 4, 1});
  synchronize(policy_of<P>());
  const auto got = y.to_host();
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < d; ++j) {
      philox_engine eng(4, 1, static_cast<std::uint64_t>(i * d + j));
      const double expected = host[static_cast<std::size_t>(i * stride + j)] + 0.5 * normal<double>(eng);
      if constexpr (is_device_policy_v<P>) {
        CHECK(got[static_cast<std::size_t>(i * d + j)] == doctest::Approx(expected).epsilon(1e-13));
      } else {
        CHECK(got[static_cast<std::size_t>(i * d + j)] == expected);
      }
    }
}

TEST_CASE_TEMPLATE("drop_edges and perturb_edges are deterministic and keep their promises", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  auto g = graph_test::random_graph<double>(800, 10, 5, true);
  const auto d = graph_test::dense(g.view());
  auto dropped = drop_edges(policy_of<P>(), g.view(), {0.4, 3, 0, true});
  auto reference = drop_edges(serial{}, g.view(), {0.4, 3, 0, true});
  CHECK(graph_test::dense(dropped.view()) == graph_test::dense(reference.view()));
  CHECK(is_symmetric(dropped.view()));
  const auto dd = graph_test::dense(dropped.view());
  std::size_t bad = 0;
  for (std::size_t p = 0; p < d.size(); ++p) bad += !(dd[p] == 0 || dd[p] == d[p]);
  CHECK(bad == 0);
  auto perturbed = perturb_edges(policy_of<P>(), g.view(), {0.2, 0.3, 0.5, 11, 4, true});
  CHECK(is_symmetric(perturbed.view()));
  const auto dp = graph_test::dense(perturbed.view());
  index_t added = 0, kept = 0;
  for (index_t i = 0; i < 800; ++i)
    for (index_t j = 0; j < 800; ++j) {
      const double before = d[static_cast<std::size_t>(i * 800 + j)], after = dp[static_cast<std::size_t>(i * 800 + j)];
      if (after == 0) continue;
      if (before == 0) {
        bad += !(after == 0.5 && i != j);
        ++added;
      } else {
        bad += after != before;
        ++kept;
      }
    }
  CHECK(bad == 0);
  CHECK(added > 0);
  CHECK(kept > 0);
  CHECK(graph_test::dense(perturb_edges(serial{}, g.view(), {0.2, 0.3, 0.5, 11, 4, true}).view()) == dp);
}

TEST_CASE_TEMPLATE("node and neighbourhood sampling", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto nodes = sample_nodes(policy_of<P>(), 10000, {0.3, 5, 0});
  CHECK(nodes == sample_nodes(serial{}, 10000, {0.3, 5, 0}));
  CHECK(std::is_sorted(nodes.begin(), nodes.end()));
  CHECK(std::abs(static_cast<double>(nodes.size()) / 10000.0 - 0.3) < 0.02);

  auto g = graph_test::random_graph<float>(600, 12, 8, true);
  const std::vector<std::int32_t> seeds = {5, 17, 5, 300};
  auto sampled = sample_neighborhood(policy_of<P>(), g.view(), seeds, {2, 3, false, 21, 0});
  auto again = sample_neighborhood(serial{}, g.view(), seeds, {2, 3, false, 21, 0});
  CHECK(sampled.nodes == again.nodes);
  CHECK(graph_test::dense(sampled.graph.view()) == graph_test::dense(again.graph.view()));
  REQUIRE(sampled.nodes.size() >= 3);
  CHECK(sampled.nodes[0] == 5);
  CHECK(sampled.nodes[1] == 17);
  CHECK(sampled.nodes[2] == 300);
  const auto full = g.view();
  const auto sv = sampled.graph.view();
  for (index_t l = 0; l < sv.rows(); ++l) {
    CHECK(sv.row_end(l) - sv.row_begin(l) <= 3);  // fanout
    for (index_t p = sv.row_begin(l); p < sv.row_end(l); ++p) {
      const auto u = sampled.nodes[static_cast<std::size_t>(l)];
      const auto v = sampled.nodes[static_cast<std::size_t>(sv.indices()[p])];
      CHECK(std::binary_search(full.indices() + full.row_begin(u), full.indices() + full.row_end(u), v));
    }
  }
  auto induced = sample_neighborhood(policy_of<P>(), g.view(), seeds, {2, 3, true, 21, 0});
  CHECK(induced.nodes == sampled.nodes);
  auto direct = induced_subgraph(g.view(), induced.nodes);
  CHECK(graph_test::dense(direct.graph.view()) == graph_test::dense(induced.graph.view()));
  CHECK(induced.graph.num_edges() >= sampled.graph.num_edges());
}

TEST_CASE("augmentations reject probabilities outside [0, 1] and negative sigma") {
  auto g = graph_test::random_graph<double>(10, 3, 1, true);
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        drop_edges(serial{}, g.view(), {1.5, 0, 0, false});
      },
      {"edge_keep_mask", "params.p", "[0, 1]"});
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        perturb_edges(serial{}, g.view(), {-0.1, 0.1, 1, 0, 0, false});
      },
      {"perturb_edges", "params.p_remove"});
  std::vector<double> x(6);
  matrix_view<double> xv(x.data(), 2, 3);
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        add_gaussian_noise(serial{}, xv, xv, noise_params<double>{-1.0, 0, 0});
      },
      {"add_gaussian_noise", "params.sigma"});
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        mask_features(serial{}, xv, xv, {2.0, feature_mask_mode::elements, 0, 0});
      },
      {"mask_features", "params.p"});
  graph_test::check_throws_with<invalid_argument>(
      [&] { sample_neighborhood(serial{}, g.view(), std::vector<std::int32_t>{12}, {}); },
      {"sample_neighborhood", "seeds", "node 12"});
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        induced_subgraph(g.view(), std::vector<std::int32_t>{1, 1});
      },
      {"induced_subgraph", "listed twice"});
}
