#include <cellkit/graph/normalize.hpp>
#include <cellkit/graph/sgc.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <tuple>
#include <vector>

using namespace cellkit;
using namespace cellkit::graph;
using graph_test::cast;

TEST_CASE_TEMPLATE("sgc matches PyG SGConv (forward and gradients)", T, float, double) {
  const auto cases = test::read_fixture_cases("graph_layers.txt");
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto f_in = static_cast<index_t>(c.params[1]);
    const auto f_out = static_cast<index_t>(c.params[2]);
    const auto k = static_cast<index_t>(c.params[3]);
    auto g = graph_test::fixture_graph<T>(c, n);
    propagator<T> op(normalize(serial{}, g.view(), {normalization::symmetric, T(1)}));
    const auto x = cast<T>(c.matrix("X"));
    const auto w = cast<T>(c.matrix("sgc_W"));
    const auto b = cast<T>(c.matrix("sgc_b"));
    const auto dy = cast<T>(c.matrix("sgc_dY"));
    std::vector<T> features(n * f_in), y(n * f_out), dx(n * f_in), dw(f_in * f_out), db(f_out);
    sgc_precompute(openmp{2}, op.matrix(), matrix_view<const T>(x.data(), n, f_in),
                   matrix_view<T>(features.data(), n, f_in), {k});
    sgc_forward(serial{}, matrix_view<const T>(features.data(), n, f_in), matrix_view<const T>(w.data(), f_in, f_out),
                vector_view<const T>(b.data(), f_out), matrix_view<T>(y.data(), n, f_out));
    sgc_backward(serial{}, op, matrix_view<const T>(features.data(), n, f_in),
                 matrix_view<const T>(w.data(), f_in, f_out), matrix_view<const T>(dy.data(), n, f_out),
                 matrix_view<T>(dx.data(), n, f_in), matrix_view<T>(dw.data(), f_in, f_out),
                 vector_view<T>(db.data(), f_out), {k});
    graph_test::check_close(y, c.matrix("sgc_Y"), tol, tol, "Y");
    graph_test::check_close(dx, c.matrix("sgc_dX"), tol, tol, "dX");
    graph_test::check_close(dw, c.matrix("sgc_dW"), tol, tol, "dW");
    graph_test::check_close(db, c.matrix("sgc_db"), tol, tol, "db");
  }
}

TEST_CASE("sgc dX matches central differences for K = 0..3 and both widths, directed graph") {
  const index_t n = 11;
  auto g = graph_test::random_graph<double>(n, 4, 12, false);
  propagator<double> op(normalize(serial{}, g.view(), {normalization::random_walk, 1.0}));
  for (index_t k = 0; k <= 3; ++k) {
    for (auto widths : {std::pair<index_t, index_t>{2, 3}, {4, 2}}) {
      const index_t f_in = widths.first, f_out = widths.second;  // not bindings: captured below (clang 14)
      auto x = graph_test::random_vector<double>(static_cast<std::size_t>(n * f_in), 1);
      auto w = graph_test::random_vector<double>(static_cast<std::size_t>(f_in * f_out), 2);
      auto dy = graph_test::random_vector<double>(static_cast<std::size_t>(n * f_out), 3);
      auto loss = [&] {
        std::vector<double> f(n * f_in), y(n * f_out);
        sgc_precompute(serial{}, op.matrix(), matrix_view<const double>(x.data(), n, f_in),
                       matrix_view<double>(f.data(), n, f_in), {k});
        sgc_forward(serial{}, matrix_view<const double>(f.data(), n, f_in),
                    matrix_view<const double>(w.data(), f_in, f_out), std::nullopt,
                    matrix_view<double>(y.data(), n, f_out));
        return graph_test::dot(y, dy);
      };
      std::vector<double> f(n * f_in), dx(n * f_in);
      sgc_precompute(serial{}, op.matrix(), matrix_view<const double>(x.data(), n, f_in),
                     matrix_view<double>(f.data(), n, f_in), {k});
      sgc_backward(serial{}, op, matrix_view<const double>(f.data(), n, f_in),
                   matrix_view<const double>(w.data(), f_in, f_out), matrix_view<const double>(dy.data(), n, f_out),
                   matrix_view<double>(dx.data(), n, f_in), std::nullopt, std::nullopt, {k});
      graph_test::check_close(dx, graph_test::numeric_gradient(x, loss), 1e-6, 1e-7, "dX");
    }
  }
}

TEST_CASE("sgc rejects bad shapes and K < 0") {
  auto g = graph_test::random_graph<double>(5, 2, 1, true);
  std::vector<double> x(10), f(10), w(6), y(15);
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        sgc_precompute(serial{}, g.view(), matrix_view<const double>(x.data(), 5, 2),
                       matrix_view<double>(f.data(), 5, 2), {-1});
      },
      {"sgc_precompute", "params.hops"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        sgc_precompute(serial{}, g.view(), matrix_view<const double>(x.data(), 5, 2),
                       matrix_view<double>(f.data(), 2, 5), {1});
      },
      {"sgc_precompute", "features is 2 x 5"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        sgc_forward(serial{}, matrix_view<const double>(f.data(), 5, 2), matrix_view<const double>(w.data(), 3, 2),
                    std::nullopt, matrix_view<double>(y.data(), 5, 2));
      },
      {"sgc_forward", "W is 3 x 2"});
}

TEST_CASE_TEMPLATE("sgc gives the same bits for every host policy", P, CELLKIT_HOST_TEST_POLICIES) {
  const index_t n = 3000, f_in = 12, f_out = 5;
  auto g = graph_test::random_graph<float>(n, 8, 2, false);
  propagator<float> op(normalize(serial{}, g.view(), {normalization::symmetric, 1.0f}));
  auto x = graph_test::random_vector<float>(static_cast<std::size_t>(n * f_in), 1);
  auto w = graph_test::random_vector<float>(static_cast<std::size_t>(f_in * f_out), 2);
  auto dy = graph_test::random_vector<float>(static_cast<std::size_t>(n * f_out), 3);
  auto run = [&](const auto& policy) {
    std::vector<float> f(n * f_in), y(n * f_out), dx(n * f_in), dw(f_in * f_out);
    sgc_precompute(policy, op.matrix(), matrix_view<const float>(x.data(), n, f_in),
                   matrix_view<float>(f.data(), n, f_in), {3});
    sgc_forward(policy, matrix_view<const float>(f.data(), n, f_in), matrix_view<const float>(w.data(), f_in, f_out),
                std::nullopt, matrix_view<float>(y.data(), n, f_out));
    sgc_backward(policy, op, matrix_view<const float>(f.data(), n, f_in),
                 matrix_view<const float>(w.data(), f_in, f_out), matrix_view<const float>(dy.data(), n, f_out),
                 matrix_view<float>(dx.data(), n, f_in), matrix_view<float>(dw.data(), f_in, f_out), std::nullopt, {3});
    return std::vector<std::vector<float>>{f, y, dx, dw};
  };
  CHECK(run(serial{}) == run(test::policy_of<P>()));
}
