#include <cellkit/graph/decoders.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <cmath>
#include <vector>

using namespace cellkit;
using namespace cellkit::graph;
using graph_test::cast;

TEST_CASE_TEMPLATE("dense inner-product decoder losses and dZ match torch autograd", T, float, double) {
  const auto cases = test::read_fixture_cases("graph_decoders.txt");
  REQUIRE(cases.size() == 2);
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto d = static_cast<index_t>(c.params[1]);
    auto a = graph_test::fixture_graph<T>(c, n);
    const auto z = cast<T>(c.matrix("Z"));
    std::vector<T> dz(n * d);
    decoder_params<T> params;
    params.pos_weight = static_cast<T>(c.params[2]);
    const T bce = inner_product_loss_dense(openmp{2}, matrix_view<const T>(z.data(), n, d), a.view(),
                                           matrix_view<T>(dz.data(), n, d), params);
    CHECK(test::close(bce, c.matrix("bce_loss")[0], tol, tol));
    graph_test::check_close(dz, c.matrix("bce_dZ"), tol, tol, "bce dZ");
    params.loss = reconstruction_loss::squared;
    const T sq = inner_product_loss_dense(serial{}, matrix_view<const T>(z.data(), n, d), a.view(),
                                          matrix_view<T>(dz.data(), n, d), params);
    CHECK(test::close(sq, c.matrix("sq_loss")[0], tol, tol));
    graph_test::check_close(dz, c.matrix("sq_dZ"), tol, tol, "squared dZ");
    std::vector<T> rec(n * n);
    inner_product_decode(serial{}, matrix_view<const T>(z.data(), n, d), matrix_view<T>(rec.data(), n, n));
    T s01 = 0;
    for (index_t k = 0; k < d; ++k) s01 += z[static_cast<std::size_t>(k)] * z[static_cast<std::size_t>(d + k)];
    CHECK(rec[1] == doctest::Approx(1 / (1 + std::exp(-s01))));
  }
}

TEST_CASE("sampled decoder: gradient matches central differences; same bits for every policy") {
  const index_t n = 60, d = 4;
  auto a = graph_test::random_graph<double>(n, 5, 2, true, true);
  auto z = graph_test::random_vector<double>(static_cast<std::size_t>(n * d), 3, 0.5);
  for (auto kind : {reconstruction_loss::bce, reconstruction_loss::squared}) {
    decoder_params<double> params;
    params.loss = kind;
    params.negatives = 2;
    params.seed = 17;
    std::vector<double> dz(n * d);
    inner_product_loss_sampled(serial{}, matrix_view<const double>(z.data(), n, d), a.view(),
                               matrix_view<double>(dz.data(), n, d), params);
    auto loss = [&] {
      return static_cast<double>(inner_product_loss_sampled(serial{}, matrix_view<const double>(z.data(), n, d),
                                                            a.view(), std::nullopt, params));
    };
    graph_test::check_close(dz, graph_test::numeric_gradient(z, loss), 1e-6, 1e-8, "dZ");
    std::vector<double> dz2(n * d);
    const double l1 = inner_product_loss_sampled(openmp{2}, matrix_view<const double>(z.data(), n, d), a.view(),
                                                 matrix_view<double>(dz2.data(), n, d), params);
    CHECK(l1 == loss());
    CHECK(dz2 == dz);
  }
  // Dense with a large n: rows in several blocks, against central differences on a few coordinates.
  const index_t big = 300;
  auto ab = graph_test::random_graph<double>(big, 4, 9, false);
  auto zb = graph_test::random_vector<double>(static_cast<std::size_t>(big * 2), 5, 0.5);
  std::vector<double> dzb(big * 2), dzb2(big * 2);
  inner_product_loss_dense(serial{}, matrix_view<const double>(zb.data(), big, 2), ab.view(),
                           matrix_view<double>(dzb.data(), big, 2));
  inner_product_loss_dense(openmp{2}, matrix_view<const double>(zb.data(), big, 2), ab.view(),
                           matrix_view<double>(dzb2.data(), big, 2));
  CHECK(dzb == dzb2);
  for (std::size_t coordinate : {0ul, 301ul, 599ul}) {
    const double saved = zb[coordinate], h = 1e-5;
    auto eval = [&] {
      return inner_product_loss_dense(serial{}, matrix_view<const double>(zb.data(), big, 2), ab.view(), std::nullopt);
    };
    zb[coordinate] = saved + h;
    const double up = eval();
    zb[coordinate] = saved - h;
    const double down = eval();
    zb[coordinate] = saved;
    CHECK(dzb[coordinate] == doctest::Approx((up - down) / (2 * h)).epsilon(1e-6));
  }
}

TEST_CASE("decoders reject bad shapes and parameters") {
  auto a = graph_test::random_graph<double>(5, 2, 1, true);
  std::vector<double> z(10), dz(10);
  graph_test::check_throws_with<dimension_mismatch>(
      [&] { inner_product_loss_dense(serial{}, matrix_view<const double>(z.data(), 4, 2), a.view(), std::nullopt); },
      {"inner_product_loss_dense", "A is 5 x 5", "Z is 4 x 2"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        inner_product_loss_sampled(serial{}, matrix_view<const double>(z.data(), 5, 2), a.view(),
                                   matrix_view<double>(dz.data(), 2, 5));
      },
      {"inner_product_loss_sampled", "dZ is 2 x 5"});
  decoder_params<double> bad;
  bad.pos_weight = 0;
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        inner_product_loss_dense(serial{}, matrix_view<const double>(z.data(), 5, 2), a.view(), std::nullopt, bad);
      },
      {"params.pos_weight"});
}

TEST_CASE("an empty graph (n = 0) has loss 0 and no gradient rows on every host policy") {
  // The mean over zero pairs is defined as 0 (the host used to return 0 / 0 = NaN for the dense loss).
  const auto a = csr_graph<double>::from_edges(0, {}, {}, {});
  std::vector<double> z(1), dz(1);
  const matrix_view<const double> z0(z.data(), 0, 3);
  const matrix_view<double> dz0(dz.data(), 0, 3);
  auto check = [&](const auto& policy) {
    CHECK(inner_product_loss_dense(policy, z0, a.view(), dz0) == 0.0);
    CHECK(inner_product_loss_dense(policy, z0, a.view(), std::nullopt) == 0.0);
    CHECK(inner_product_loss_sampled(policy, z0, a.view(), dz0) == 0.0);
  };
  check(serial{});
  check(openmp{2});
}
