#include <cellkit/graph/normalize.hpp>
#include <cellkit/graph/propagate.hpp>
#include <cellkit/graph/tagcn.hpp>

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
struct tagcn_result {
  std::vector<T> y, hops, dx, dw, db;
};

/// Forward and backward of a TAGCN layer on host vectors.
template <class P, class T>
tagcn_result<T> run_tagcn(const P& policy, const propagator<T>& op, const std::vector<T>& x, index_t n, index_t f_in,
                          const std::vector<T>& w, const std::vector<T>& b, index_t f_out, const std::vector<T>& dy,
                          index_t k) {
  tagcn_result<T> r;
  r.y.resize(static_cast<std::size_t>(n * f_out));
  r.hops.resize(static_cast<std::size_t>(n * (k + 1) * f_in));
  r.dx.resize(static_cast<std::size_t>(n * f_in));
  r.dw.resize(w.size());
  r.db.resize(static_cast<std::size_t>(f_out));
  matrix_view<const T> xv(x.data(), n, f_in);
  matrix_view<const T> wv(w.data(), (k + 1) * f_in, f_out);
  matrix_view<T> hv(r.hops.data(), (k + 1) * n, f_in);
  tagcn_forward(policy, op, xv, wv, vector_view<const T>(b.data(), f_out), matrix_view<T>(r.y.data(), n, f_out), hv,
                {k});
  tagcn_backward(policy, op, matrix_view<const T>(hv), wv, matrix_view<const T>(dy.data(), n, f_out),
                 matrix_view<T>(r.dx.data(), n, f_in), matrix_view<T>(r.dw.data(), (k + 1) * f_in, f_out),
                 vector_view<T>(r.db.data(), f_out), {k});
  return r;
}

}  // namespace

TEST_CASE_TEMPLATE("tagcn forward and backward match PyG TAGConv", T, float, double) {
  const auto cases = test::read_fixture_cases("graph_layers.txt");
  REQUIRE(cases.size() >= 3);
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto f_in = static_cast<index_t>(c.params[1]);
    const auto f_out = static_cast<index_t>(c.params[2]);
    const auto k = static_cast<index_t>(c.params[3]);
    CAPTURE(n);
    auto g = graph_test::fixture_graph<T>(c, n);
    auto a_hat = normalize(serial{}, g.view(), {normalization::symmetric, T(0)});
    graph_test::check_close(graph_test::dense(a_hat.view()), c.matrix("norm_sym0"), 1e-6, tol, "A_hat");
    propagator<T> op(std::move(a_hat));
    CHECK(op.is_symmetric() == (c.params[4] != 0));
    auto r = run_tagcn(serial{}, op, cast<T>(c.matrix("X")), n, f_in, cast<T>(c.matrix("tag_W")),
                       cast<T>(c.matrix("tag_b")), f_out, cast<T>(c.matrix("tag_dY")), k);
    graph_test::check_close(r.y, c.matrix("tag_Y"), tol, tol, "Y");
    // The fixture has the hops side by side (n x (K+1) f_in); cellkit stacks them by rows.
    std::vector<double> stacked(r.hops.size());
    const auto& side_by_side = c.matrix("tag_hops");
    for (index_t h = 0; h <= k; ++h)
      for (index_t i = 0; i < n; ++i)
        for (index_t col = 0; col < f_in; ++col)
          stacked[static_cast<std::size_t>((h * n + i) * f_in + col)] =
              side_by_side[static_cast<std::size_t>(i * (k + 1) * f_in + h * f_in + col)];
    graph_test::check_close(r.hops, stacked, tol, tol, "hops");
    graph_test::check_close(r.dx, c.matrix("tag_dX"), tol, tol, "dX");
    graph_test::check_close(r.dw, c.matrix("tag_dW"), tol, tol, "dW");
    graph_test::check_close(r.db, c.matrix("tag_db"), tol, tol, "db");
  }
}

TEST_CASE("tagcn backward matches central differences in both dX forms, directed graph") {
  const index_t n = 14;
  auto g = graph_test::random_graph<double>(n, 4, 5, /*symmetric=*/false);
  auto a_hat = normalize(serial{}, g.view(), {normalization::symmetric, 0.5});
  propagator<double> op(std::move(a_hat));
  REQUIRE_FALSE(op.is_symmetric());
  // f_in <= f_out: Horner form; f_in > f_out: powers of dY. K = 0 as an edge case.
  for (auto config : {std::tuple<index_t, index_t, index_t>{3, 4, 3}, {5, 2, 2}, {4, 3, 0}, {2, 2, 1}}) {
    // Plain variables, not structured bindings: clang 14 cannot capture bindings in lambdas.
    const index_t f_in = std::get<0>(config), f_out = std::get<1>(config), k = std::get<2>(config);
    CAPTURE(f_in);
    CAPTURE(f_out);
    CAPTURE(k);
    auto x = graph_test::random_vector<double>(static_cast<std::size_t>(n * f_in), 1);
    auto w = graph_test::random_vector<double>(static_cast<std::size_t>((k + 1) * f_in * f_out), 2);
    auto b = graph_test::random_vector<double>(static_cast<std::size_t>(f_out), 3);
    auto dy = graph_test::random_vector<double>(static_cast<std::size_t>(n * f_out), 4);
    auto r = run_tagcn(serial{}, op, x, n, f_in, w, b, f_out, dy, k);
    auto loss = [&] {
      std::vector<double> y(static_cast<std::size_t>(n * f_out));
      std::vector<double> hops(static_cast<std::size_t>(n * (k + 1) * f_in));
      tagcn_forward(serial{}, op.matrix(), matrix_view<const double>(x.data(), n, f_in),
                    matrix_view<const double>(w.data(), (k + 1) * f_in, f_out),
                    vector_view<const double>(b.data(), f_out), matrix_view<double>(y.data(), n, f_out),
                    matrix_view<double>(hops.data(), (k + 1) * n, f_in), {k});
      return graph_test::dot(y, dy);
    };
    graph_test::check_close(r.dx, graph_test::numeric_gradient(x, loss), 1e-6, 1e-7, "dX");
    graph_test::check_close(r.dw, graph_test::numeric_gradient(w, loss), 1e-6, 1e-7, "dW");
    graph_test::check_close(r.db, graph_test::numeric_gradient(b, loss), 1e-6, 1e-7, "db");
  }
}

TEST_CASE_TEMPLATE("tagcn gives the same bits for serial, openmp{1} and openmp{2}", P, CELLKIT_HOST_TEST_POLICIES) {
  // Large enough for several GEMM row blocks and reduction blocks; both dX forms.
  const index_t n = 4500;
  auto g = graph_test::random_graph<float>(n, 12, 9, /*symmetric=*/false);
  propagator<float> op(normalize(serial{}, g.view(), {normalization::symmetric, 1.0f}));
  for (auto [f_in, f_out] : {std::pair<index_t, index_t>{24, 16}, {8, 20}}) {
    const index_t k = 3;
    auto x = graph_test::random_vector<float>(static_cast<std::size_t>(n * f_in), 1);
    auto w = graph_test::random_vector<float>(static_cast<std::size_t>((k + 1) * f_in * f_out), 2, 0.1);
    auto b = graph_test::random_vector<float>(static_cast<std::size_t>(f_out), 3);
    auto dy = graph_test::random_vector<float>(static_cast<std::size_t>(n * f_out), 4);
    auto reference = run_tagcn(serial{}, op, x, n, f_in, w, b, f_out, dy, k);
    auto got = run_tagcn(test::policy_of<P>(), op, x, n, f_in, w, b, f_out, dy, k);
    CHECK(got.y == reference.y);
    CHECK(got.hops == reference.hops);
    CHECK(got.dx == reference.dx);
    CHECK(got.dw == reference.dw);
    CHECK(got.db == reference.db);
  }
}

TEST_CASE("tagcn rejects bad shapes, K < 0 and malformed graphs with named arguments") {
  const index_t n = 5, f_in = 2, f_out = 3, k = 2;
  auto g = graph_test::random_graph<double>(n, 2, 1, true);
  propagator<double> op(normalize(serial{}, g.view()));
  std::vector<double> x(n * f_in, 1.0), w((k + 1) * f_in * f_out, 0.5), b(f_out), y(n * f_out),
      hops(n * (k + 1) * f_in), dy(n * f_out, 1.0), dx(n * f_in), dw(w.size()), db(f_out);
  matrix_view<const double> xv(x.data(), n, f_in);
  matrix_view<const double> wv(w.data(), (k + 1) * f_in, f_out);
  matrix_view<double> yv(y.data(), n, f_out);
  matrix_view<double> hv(hops.data(), (k + 1) * n, f_in);
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        tagcn_forward(serial{}, op, xv, matrix_view<const double>(w.data(), k * f_in, f_out), std::nullopt, yv, hv,
                      {k});
      },
      {"tagcn_forward", "W is 4 x 3", "W stacks K+1 matrices"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        tagcn_forward(serial{}, op, xv, wv, std::nullopt, yv, matrix_view<double>(hops.data(), k * n, f_in), {k});
      },
      {"tagcn_forward", "hops is 10 x 2", "(K+1) n x f_in is 15 x 2"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] { tagcn_forward(serial{}, op, xv, wv, std::nullopt, matrix_view<double>(y.data(), n, f_out - 1), hv, {k}); },
      {"tagcn_forward", "Y is 5 x 2"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] { tagcn_forward(serial{}, op, xv, wv, vector_view<const double>(b.data(), f_out - 1), yv, hv, {k}); },
      {"tagcn_forward", "b is 2 x 1"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        tagcn_forward(serial{}, op, matrix_view<const double>(x.data(), n - 1, f_in), wv, std::nullopt, yv, hv, {k});
      },
      {"tagcn_forward", "A_hat is 5 x 5"});
  graph_test::check_throws_with<invalid_argument>(
      [&] { tagcn_forward(serial{}, op, xv, wv, std::nullopt, yv, hv, {-1}); },
      {"tagcn_forward", "params.hops", "K must be >= 0"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        tagcn_backward(serial{}, op, matrix_view<const double>(hv), wv,
                       matrix_view<const double>(dy.data(), n, f_out - 1), std::nullopt, std::nullopt, std::nullopt,
                       {k});
      },
      {"tagcn_backward", "dY is 5 x 2"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        tagcn_backward(serial{}, op, matrix_view<const double>(hv), wv, matrix_view<const double>(dy.data(), n, f_out),
                       matrix_view<double>(dx.data(), n, f_in - 1), std::nullopt, std::nullopt, {k});
      },
      {"tagcn_backward", "dX is 5 x 1"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        tagcn_backward(serial{}, op, matrix_view<const double>(hv), wv, matrix_view<const double>(dy.data(), n, f_out),
                       std::nullopt, matrix_view<double>(dw.data(), (k + 1) * f_in - 1, f_out), std::nullopt, {k});
      },
      {"tagcn_backward", "dW is 5 x 3"});
  // A CSR view with an unsorted row and one with an out-of-range column.
  std::vector<std::int32_t> indptr = {0, 2, 3, 3, 3, 3}, bad_order = {3, 1, 0}, out_of_range = {1, 7, 0};
  std::vector<double> values = {1, 1, 1};
  csr_view<const double, std::int32_t> unsorted(n, n, 3, indptr.data(), bad_order.data(), values.data());
  csr_view<const double, std::int32_t> outside(n, n, 3, indptr.data(), out_of_range.data(), values.data());
  graph_test::check_throws_with<invalid_argument>(
      [&] { tagcn_forward(serial{}, unsorted, xv, wv, std::nullopt, yv, hv, {k}); },
      {"tagcn_hops", "'A_hat'", "row 0 are not sorted"});
  graph_test::check_throws_with<invalid_argument>(
      [&] { tagcn_forward(serial{}, outside, xv, wv, std::nullopt, yv, hv, {k}); },
      {"tagcn_hops", "'A_hat'", "column index 7 in row 0 is outside [0, 5)"});
}
