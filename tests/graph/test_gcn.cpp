#include <cellkit/graph/gcn.hpp>
#include <cellkit/graph/normalize.hpp>
#include <cellkit/graph/propagate.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <optional>
#include <tuple>
#include <vector>

using namespace cellkit;
using namespace cellkit::graph;
using graph_test::cast;

namespace {

template <class T>
struct gcn_result {
  std::vector<T> y, dx, dw, db;
};

template <class P, class T>
gcn_result<T> run_gcn(const P& policy, const propagator<T>& op, const std::vector<T>& x, index_t f_in,
                      const std::vector<T>& w, const std::vector<T>& b, index_t f_out, const std::vector<T>& dy,
                      bool want_dx = true, bool want_dw = true) {
  const index_t n = op.rows();
  const index_t m = op.cols();
  gcn_result<T> r;
  r.y.resize(static_cast<std::size_t>(n * f_out));
  r.dx.resize(static_cast<std::size_t>(m * f_in));
  r.dw.resize(w.size());
  r.db.resize(static_cast<std::size_t>(f_out));
  matrix_view<const T> xv(x.data(), m, f_in);
  matrix_view<const T> wv(w.data(), f_in, f_out);
  gcn_forward(policy, op, xv, wv, vector_view<const T>(b.data(), f_out), matrix_view<T>(r.y.data(), n, f_out));
  gcn_backward(policy, op, xv, wv, matrix_view<const T>(dy.data(), n, f_out),
               want_dx ? optional_matrix_out<T>(matrix_view<T>(r.dx.data(), m, f_in)) : std::nullopt,
               want_dw ? optional_matrix_out<T>(matrix_view<T>(r.dw.data(), f_in, f_out)) : std::nullopt,
               vector_view<T>(r.db.data(), f_out));
  return r;
}

}  // namespace

TEST_CASE_TEMPLATE("gcn forward and backward match PyG GCNConv", T, float, double) {
  const auto cases = test::read_fixture_cases("graph_layers.txt");
  REQUIRE(cases.size() >= 3);
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto f_in = static_cast<index_t>(c.params[1]);
    const auto f_out = static_cast<index_t>(c.params[2]);
    CAPTURE(n);
    auto g = graph_test::fixture_graph<T>(c, n);
    propagator<T> op(normalize(serial{}, g.view(), {normalization::symmetric, T(1)}));
    auto r = run_gcn(serial{}, op, cast<T>(c.matrix("X")), f_in, cast<T>(c.matrix("gcn_W")), cast<T>(c.matrix("gcn_b")),
                     f_out, cast<T>(c.matrix("gcn_dY")));
    graph_test::check_close(r.y, c.matrix("gcn_Y"), tol, tol, "Y");
    graph_test::check_close(r.dx, c.matrix("gcn_dX"), tol, tol, "dX");
    graph_test::check_close(r.dw, c.matrix("gcn_dW"), tol, tol, "dW");
    graph_test::check_close(r.db, c.matrix("gcn_db"), tol, tol, "db");
  }
}

TEST_CASE("gcn backward matches central differences in every evaluation order, rectangular A") {
  // A rectangular (bipartite-like) operator: 9 receivers, 12 senders.
  const index_t n = 9, m = 12;
  std::vector<std::int32_t> rows, cols;
  std::vector<double> vals;
  auto weights = graph_test::random_vector<double>(200, 17);
  std::size_t next = 0;
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < m; ++j)
      if ((i * 7 + j * 3) % 5 < 2) {
        rows.push_back(static_cast<std::int32_t>(i));
        cols.push_back(static_cast<std::int32_t>(j));
        vals.push_back(weights[next++]);
      }
  propagator<double> op(csr_matrix<double>::from_triplets(n, m, rows, cols, vals));
  // (f_in, f_out, want dX, want dW): covers order (a) and (b) of gcn_backward.
  for (auto config : {std::tuple<index_t, index_t, bool, bool>{4, 2, true, true},
                      {2, 5, true, true},
                      {2, 3, true, false},
                      {2, 3, false, true},
                      {3, 7, true, true}}) {
    // Plain variables, not structured bindings: clang 14 cannot capture bindings in lambdas.
    const index_t f_in = std::get<0>(config), f_out = std::get<1>(config);
    const bool want_dx = std::get<2>(config), want_dw = std::get<3>(config);
    CAPTURE(f_in);
    CAPTURE(f_out);
    auto x = graph_test::random_vector<double>(static_cast<std::size_t>(m * f_in), 1);
    auto w = graph_test::random_vector<double>(static_cast<std::size_t>(f_in * f_out), 2);
    auto b = graph_test::random_vector<double>(static_cast<std::size_t>(f_out), 3);
    auto dy = graph_test::random_vector<double>(static_cast<std::size_t>(n * f_out), 4);
    auto r = run_gcn(serial{}, op, x, f_in, w, b, f_out, dy, want_dx, want_dw);
    auto loss = [&] {
      std::vector<double> y(static_cast<std::size_t>(n * f_out));
      gcn_forward(serial{}, op.matrix(), matrix_view<const double>(x.data(), m, f_in),
                  matrix_view<const double>(w.data(), f_in, f_out), vector_view<const double>(b.data(), f_out),
                  matrix_view<double>(y.data(), n, f_out));
      return graph_test::dot(y, dy);
    };
    if (want_dx) graph_test::check_close(r.dx, graph_test::numeric_gradient(x, loss), 1e-6, 1e-7, "dX");
    if (want_dw) graph_test::check_close(r.dw, graph_test::numeric_gradient(w, loss), 1e-6, 1e-7, "dW");
    graph_test::check_close(r.db, graph_test::numeric_gradient(b, loss), 1e-6, 1e-7, "db");
  }
}

TEST_CASE_TEMPLATE("gcn gives the same bits for serial, openmp{1} and openmp{2}", P, CELLKIT_HOST_TEST_POLICIES) {
  const index_t n = 4500;
  auto g = graph_test::random_graph<float>(n, 10, 3, /*symmetric=*/false);
  propagator<float> op(normalize(serial{}, g.view(), {normalization::symmetric, 1.0f}));
  for (auto [f_in, f_out] : {std::pair<index_t, index_t>{24, 8}, {8, 24}, {4, 24}}) {
    auto x = graph_test::random_vector<float>(static_cast<std::size_t>(n * f_in), 1);
    auto w = graph_test::random_vector<float>(static_cast<std::size_t>(f_in * f_out), 2, 0.2);
    auto b = graph_test::random_vector<float>(static_cast<std::size_t>(f_out), 3);
    auto dy = graph_test::random_vector<float>(static_cast<std::size_t>(n * f_out), 4);
    auto reference = run_gcn(serial{}, op, x, f_in, w, b, f_out, dy);
    auto got = run_gcn(test::policy_of<P>(), op, x, f_in, w, b, f_out, dy);
    CHECK(got.y == reference.y);
    CHECK(got.dx == reference.dx);
    CHECK(got.dw == reference.dw);
    CHECK(got.db == reference.db);
  }
}

TEST_CASE("gcn rejects bad shapes with named arguments") {
  const index_t n = 6, f_in = 3, f_out = 2;
  auto g = graph_test::random_graph<double>(n, 2, 1, true);
  propagator<double> op(normalize(serial{}, g.view()));
  std::vector<double> x(n * f_in, 1.0), w(f_in * f_out), b(f_out), y(n * f_out), dy(n * f_out), dx(n * f_in),
      dw(w.size());
  matrix_view<const double> xv(x.data(), n, f_in), wv(w.data(), f_in, f_out);
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        gcn_forward(serial{}, op, xv, matrix_view<const double>(w.data(), f_out, f_in), std::nullopt,
                    matrix_view<double>(y.data(), n, f_out));
      },
      {"gcn_forward", "W is 2 x 3", "X is 6 x 3"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        gcn_forward(serial{}, op, matrix_view<const double>(x.data(), n - 1, f_in), wv, std::nullopt,
                    matrix_view<double>(y.data(), n, f_out));
      },
      {"gcn_forward", "A_hat is 6 x 6", "X is 5 x 3"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        gcn_forward(serial{}, op, xv, wv, vector_view<const double>(b.data(), 1),
                    matrix_view<double>(y.data(), n, f_out));
      },
      {"gcn_forward", "b is 1 x 1"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        gcn_backward(serial{}, op, xv, wv, matrix_view<const double>(dy.data(), n, f_out),
                     matrix_view<double>(dx.data(), n, f_in - 1), std::nullopt, std::nullopt);
      },
      {"gcn_backward", "dX is 6 x 2"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        gcn_backward(serial{}, op, xv, wv, matrix_view<const double>(dy.data(), n - 1, f_out), std::nullopt,
                     matrix_view<double>(dw.data(), f_in, f_out), std::nullopt);
      },
      {"gcn_backward", "dY is 5 x 2"});
}
