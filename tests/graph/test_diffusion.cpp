#include <cellkit/graph/diffusion.hpp>
#include <cellkit/graph/normalize.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <vector>

using namespace cellkit;
using namespace cellkit::graph;
using graph_test::cast;

TEST_CASE("appnp matches PyG APPNP, and appnp_backward its autograd gradient") {
  const auto cases = test::read_fixture_cases("graph_layers.txt");
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto f = static_cast<index_t>(c.params[1]);
    auto g = graph_test::fixture_graph<double>(c, n);
    propagator<double> op(normalize(serial{}, g.view(), {normalization::symmetric, 1.0}));
    const auto& x = c.matrix("X");
    std::vector<double> z(n * f), dh(n * f);
    appnp(openmp{2}, op, matrix_view<const double>(x.data(), n, f), matrix_view<double>(z.data(), n, f), {4, 0.1});
    graph_test::check_close(z, c.matrix("appnp_Y"), 1e-12, 1e-12, "Z");
    appnp_backward(serial{}, op, matrix_view<const double>(c.matrix("appnp_dY").data(), n, f),
                   matrix_view<double>(dh.data(), n, f), {4, 0.1});
    graph_test::check_close(dh, c.matrix("appnp_dX"), 1e-12, 1e-12, "dH");
  }
}

TEST_CASE("heat kernel, exact and iterative PPR, and GDC sparsification match dense references") {
  const auto cases = test::read_fixture_cases("graph_diffusion.txt");
  REQUIRE(cases.size() == 2);
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const double alpha = c.params[1], t = c.params[2];
    const auto k = static_cast<index_t>(c.params[3]);
    auto g = graph_test::fixture_graph<double>(c, n);
    auto tm = normalize(serial{}, g.view(), {normalization::symmetric, 1.0});
    graph_test::check_close(graph_test::dense(tm.view()), c.matrix("T"), 1e-14, 1e-15, "T");
    const auto& h = c.matrix("H");
    std::vector<double> y(n * 3), z(n * 3);
    heat_diffusion(openmp{2}, tm.view(), matrix_view<const double>(h.data(), n, 3), matrix_view<double>(y.data(), n, 3),
                   {t, 30});
    graph_test::check_close(y, c.matrix("heat_Y"), 1e-12, 1e-12, "heat");
    auto s = ppr_matrix_dense(serial{}, tm.view(), alpha);
    graph_test::check_close(std::vector<double>(s.begin(), s.end()), c.matrix("ppr_S"), 1e-12, 1e-13, "S");
    const auto result = personalized_pagerank(serial{}, tm.view(), matrix_view<const double>(h.data(), n, 3),
                                              matrix_view<double>(z.data(), n, 3), {alpha, 1000, 1e-13});
    CHECK(result.iterations < 1000);
    CHECK(result.change <= 1e-13);
    graph_test::check_close(z, c.matrix("ppr_Z"), 1e-10, 1e-11, "PPR");
    auto top = sparsify_topk(s.as_matrix(n, n), k);
    CHECK(top.num_edges() == n * k);
    auto gdc = normalize(serial{}, top.view(), {normalization::random_walk, 0.0});
    graph_test::check_close(graph_test::dense(gdc.view()), c.matrix("gdc"), 1e-12, 1e-13, "GDC");
    auto thr = sparsify_threshold(s.as_matrix(n, n), 0.05);
    for (double v : thr.weights()) CHECK(v >= 0.05);
  }
}

TEST_CASE_TEMPLATE("diffusions give the same bits for every host policy", P, CELLKIT_HOST_TEST_POLICIES) {
  const index_t n = 3000, f = 7;
  auto g = graph_test::random_graph<float>(n, 8, 4, true);
  propagator<float> op(normalize(serial{}, g.view(), {normalization::symmetric, 1.0f}));
  auto x = graph_test::random_vector<float>(static_cast<std::size_t>(n * f), 2);
  std::vector<float> a(n * f), b(n * f);
  matrix_view<const float> xv(x.data(), n, f);
  appnp(serial{}, op, xv, matrix_view<float>(a.data(), n, f), {5, 0.2f});
  appnp(test::policy_of<P>(), op, xv, matrix_view<float>(b.data(), n, f), {5, 0.2f});
  CHECK(a == b);
  heat_diffusion(serial{}, op.matrix(), xv, matrix_view<float>(a.data(), n, f), {1.5f, 6});
  heat_diffusion(test::policy_of<P>(), op.matrix(), xv, matrix_view<float>(b.data(), n, f), {1.5f, 6});
  CHECK(a == b);
  personalized_pagerank(serial{}, op.matrix(), xv, matrix_view<float>(a.data(), n, f), {0.15f, 50, 1e-5f});
  personalized_pagerank(test::policy_of<P>(), op.matrix(), xv, matrix_view<float>(b.data(), n, f), {0.15f, 50, 1e-5f});
  CHECK(a == b);
}

TEST_CASE("diffusion rejects bad parameters and shapes") {
  auto g = graph_test::random_graph<double>(4, 2, 1, true);
  std::vector<double> x(8), y(8);
  matrix_view<const double> xv(x.data(), 4, 2);
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        appnp(serial{}, g.view(), xv, matrix_view<double>(y.data(), 4, 2), {3, 1.5});
      },
      {"appnp", "params.alpha", "[0, 1]"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        appnp(serial{}, g.view(), xv, matrix_view<double>(y.data(), 2, 4), {3, 0.1});
      },
      {"appnp", "output is 2 x 4"});
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        heat_diffusion(serial{}, g.view(), xv, matrix_view<double>(y.data(), 4, 2), {-1.0, 3});
      },
      {"heat_diffusion", "params.t"});
  graph_test::check_throws_with<invalid_argument>([&] { ppr_matrix_dense(serial{}, g.view(), 0.0); },
                                                  {"ppr_matrix_dense", "alpha"});
  std::vector<double> s(16);
  graph_test::check_throws_with<invalid_argument>([&] { sparsify_topk(matrix_view<const double>(s.data(), 4, 4), 5); },
                                                  {"sparsify_topk", "'k'"});
}
