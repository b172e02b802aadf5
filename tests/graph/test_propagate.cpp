#include <cellkit/graph/normalize.hpp>
#include <cellkit/graph/propagate.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <vector>

using namespace cellkit;
using namespace cellkit::graph;

TEST_CASE("propagate and propagate_transpose match dense products; symmetry is detected") {
  const index_t n = 40, f = 5;
  auto g = graph_test::random_graph<double>(n, 6, 2, /*symmetric=*/false);
  const auto d = graph_test::dense(g.view());
  auto x = graph_test::random_vector<double>(static_cast<std::size_t>(n * f), 3);
  propagator<double> op(g.view());
  CHECK_FALSE(op.is_symmetric());
  std::vector<double> y(n * f, 1.0), yt(n * f, 1.0);
  propagate(serial{}, op, matrix_view<const double>(x.data(), n, f), matrix_view<double>(y.data(), n, f), {2.0, 0.5});
  propagate_transpose(serial{}, op, matrix_view<const double>(x.data(), n, f), matrix_view<double>(yt.data(), n, f));
  std::vector<double> ey(n * f), eyt(n * f);
  for (index_t i = 0; i < n; ++i)
    for (index_t c = 0; c < f; ++c) {
      double s = 0, st = 0;
      for (index_t j = 0; j < n; ++j) {
        s += d[static_cast<std::size_t>(i * n + j)] * x[static_cast<std::size_t>(j * f + c)];
        st += d[static_cast<std::size_t>(j * n + i)] * x[static_cast<std::size_t>(j * f + c)];
      }
      ey[static_cast<std::size_t>(i * f + c)] = 2.0 * s + 0.5;
      eyt[static_cast<std::size_t>(i * f + c)] = st;
    }
  graph_test::check_close(y, ey, 1e-13, 1e-13, "A X");
  graph_test::check_close(yt, eyt, 1e-13, 1e-13, "A^T X");

  auto s = symmetrize(serial{}, g.view());
  propagator<double> sym(s.view());
  CHECK(sym.is_symmetric());
  CHECK(sym.transpose().indices() == sym.matrix().indices());  // shared, not copied
  propagator<double> general(s.view(), operator_symmetry::general);
  CHECK_FALSE(general.is_symmetric());
  CHECK(general.transpose().indices() != general.matrix().indices());
}

TEST_CASE_TEMPLATE("propagate_transpose gives the same bits for every host policy", P, CELLKIT_HOST_TEST_POLICIES) {
  const index_t n = 5000, f = 19;
  auto g = graph_test::random_graph<float>(n, 20, 8, false);
  propagator<float> op(normalize(serial{}, g.view(), {normalization::random_walk, 0.0f}));
  auto x = graph_test::random_vector<float>(static_cast<std::size_t>(n * f), 1);
  std::vector<float> reference(n * f), got(n * f);
  propagate_transpose(serial{}, op, matrix_view<const float>(x.data(), n, f),
                      matrix_view<float>(reference.data(), n, f));
  propagate_transpose(test::policy_of<P>(), op, matrix_view<const float>(x.data(), n, f),
                      matrix_view<float>(got.data(), n, f));
  CHECK(got == reference);
}

TEST_CASE("propagator owns a moved-in graph and survives being moved") {
  auto g = graph_test::random_graph<double>(30, 5, 4, false);
  const auto d = graph_test::dense(g.view());
  propagator<double> first(g.clone());
  propagator<double> op(std::move(first));
  CHECK(graph_test::dense(op.matrix()) == d);
  auto t = transpose(serial{}, g.view());
  CHECK(graph_test::dense(op.transpose()) == graph_test::dense(t.view()));
}

TEST_CASE("propagate rejects mismatched shapes and malformed or falsely symmetric operators") {
  auto g = graph_test::random_graph<double>(6, 3, 4, false);
  std::vector<double> x(6 * 2), y(6 * 2);
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        propagate(serial{}, g.view(), matrix_view<const double>(x.data(), 5, 2), matrix_view<double>(y.data(), 6, 2));
      },
      {"propagate", "A is 6 x 6", "X is 5 x 2"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        propagate(serial{}, g.view(), matrix_view<const double>(x.data(), 6, 2), matrix_view<double>(y.data(), 6, 1));
      },
      {"propagate", "Y is 6 x 1"});
  propagator<double> op(g.view());
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        propagate_transpose(serial{}, op, matrix_view<const double>(x.data(), 3, 2),
                            matrix_view<double>(y.data(), 6, 2));
      },
      {"propagate_transpose", "X is 3 x 2"});
  if (!is_symmetric(g.view())) {
    graph_test::check_throws_with<invalid_argument>([&] { propagator<double>(g.view(), operator_symmetry::symmetric); },
                                                    {"propagator", "not symmetric"});
  }
  std::vector<std::int32_t> indptr = {0, 2, 2}, unsorted = {1, 0};
  std::vector<double> v = {1, 1};
  csr_view<const double, std::int32_t> u(2, 2, 2, indptr.data(), unsorted.data(), v.data());
  graph_test::check_throws_with<invalid_argument>([&] { propagator<double>{u}; }, {"propagator", "not sorted"});
}

TEST_CASE("the graph layers' CSR product (cellkit::spmm) leaves the padding of a strided output untouched") {
  const index_t n = 700;
  auto g = graph_test::random_graph<float>(n, 15, 6, false);
  for (index_t f : {1, 3, 8, 16, 37, 64, 128, 200}) {
    CAPTURE(f);
    auto x = graph_test::random_vector<float>(static_cast<std::size_t>(n * f), 2);
    std::vector<float> wide(static_cast<std::size_t>(n * (f + 5)), 7.0f);
    spmm(serial{}, g.view(), matrix_view<const float>(x.data(), n, f), matrix_view<float>(wide.data(), n, f, f + 5),
         spmm_params<float>{1.0f, 0.0f});
    for (index_t i = 0; i < n; ++i)
      for (index_t c = f; c < f + 5; ++c) CHECK(wide[static_cast<std::size_t>(i * (f + 5) + c)] == 7.0f);
  }
}
