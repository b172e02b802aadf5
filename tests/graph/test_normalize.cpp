#include <cellkit/graph/normalize.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <cmath>
#include <vector>

using namespace cellkit;
using namespace cellkit::graph;

TEST_CASE_TEMPLATE("normalize matches PyG gcn_norm and dense references", T, float, double) {
  const auto cases = test::read_fixture_cases("graph_layers.txt");
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-14;
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    auto g = graph_test::fixture_graph<T>(c, n);
    graph_test::check_close(graph_test::dense(normalize(serial{}, g.view(), {normalization::symmetric, T(1)}).view()),
                            c.matrix("norm_sym1"), tol, tol, "sym w=1");
    graph_test::check_close(graph_test::dense(normalize(serial{}, g.view(), {normalization::symmetric, T(0)}).view()),
                            c.matrix("norm_sym0"), tol, tol, "sym w=0");
    graph_test::check_close(graph_test::dense(normalize(serial{}, g.view(), {normalization::random_walk, T(1)}).view()),
                            c.matrix("norm_rw1"), tol, tol, "random walk");
    graph_test::check_close(graph_test::dense(normalize(serial{}, g.view(), {normalization::column, T(1)}).view()),
                            c.matrix("norm_col1"), tol, tol, "column");
  }
}

TEST_CASE("normalize: zero-degree nodes give zero rows, symmetric input gives bitwise symmetric output") {
  // Node 2 isolated, node 3 has only a zero-weight edge: both have degree 0 without self-loops.
  std::vector<std::int32_t> rows = {0, 1, 3, 4, 0, 4}, cols = {1, 0, 4, 3, 4, 0};
  std::vector<double> w = {1.0, 1.0, 0.0, 0.0, 2.0, 2.0};
  auto g = csr_graph<double>::from_edges(5, rows, cols, w);
  for (auto kind : {normalization::symmetric, normalization::random_walk, normalization::column}) {
    auto a = normalize(serial{}, g.view(), {kind, 0.0});
    for (double v : a.weights()) CHECK(std::isfinite(v));
    const auto d = graph_test::dense(a.view());
    for (index_t j = 0; j < 5; ++j) {
      CHECK(d[static_cast<std::size_t>(2 * 5 + j)] == 0.0);
      CHECK(d[static_cast<std::size_t>(3 * 5 + j)] == 0.0);
    }
  }
  auto sym = normalize(serial{}, g.view(), {normalization::symmetric, 0.0});
  CHECK(is_symmetric(sym.view()));  // exact, bit for bit
  // Row sums of the random-walk normalisation are 1 (or 0 for degree-0 rows).
  auto rw = normalize(serial{}, g.view(), {normalization::random_walk, 0.5});
  const auto d = graph_test::dense(rw.view());
  for (index_t i = 0; i < 5; ++i) {
    double s = 0;
    for (index_t j = 0; j < 5; ++j) s += d[static_cast<std::size_t>(i * 5 + j)];
    CHECK(s == doctest::Approx(1.0));
  }
}

TEST_CASE("normalize: the self-loop weight adds to an existing diagonal and inserts a missing one") {
  std::vector<std::int32_t> rows = {0, 0, 1, 2}, cols = {0, 2, 0, 1};
  std::vector<double> w = {3.0, 1.0, 2.0, 4.0};
  auto g = csr_graph<double>::from_edges(3, rows, cols, w);
  auto a = normalize(serial{}, g.view(), {normalization::none, 0.5});
  const auto d = graph_test::dense(a.view());
  CHECK(d == std::vector<double>{3.5, 0, 1, 2, 0.5, 0, 0, 4, 0.5});
  CHECK(a.num_edges() == 6);
  validate(a.view());
  std::vector<double> deg(3);
  degrees(serial{}, g.view(), vector_view<double>(deg.data(), 3), 1.0);
  CHECK(deg == std::vector<double>{5.0, 3.0, 5.0});
}

TEST_CASE_TEMPLATE("normalize gives the same bits for every host policy", P, CELLKIT_HOST_TEST_POLICIES) {
  auto g = graph_test::random_graph<float>(3000, 9, 21, false);
  for (auto kind : {normalization::symmetric, normalization::random_walk, normalization::column}) {
    auto reference = normalize(serial{}, g.view(), {kind, 1.0f});
    auto got = normalize(test::policy_of<P>(), g.view(), {kind, 1.0f});
    CHECK(std::equal(got.weights().begin(), got.weights().end(), reference.weights().begin()));
  }
}

TEST_CASE("normalize rejects negative or non-finite weights, bad self-loop weights and malformed graphs") {
  std::vector<std::int32_t> indptr = {0, 1, 2, 2}, indices = {1, 0};
  std::vector<double> negative = {1.0, -0.5}, nan = {1.0, std::nan("")};
  csr_view<const double, std::int32_t> neg(3, 3, 2, indptr.data(), indices.data(), negative.data());
  csr_view<const double, std::int32_t> bad(3, 3, 2, indptr.data(), indices.data(), nan.data());
  for (auto kind : {normalization::symmetric, normalization::random_walk, normalization::column}) {
    graph_test::check_throws_with<invalid_argument>(
        [&] {
          normalize(serial{}, neg, {kind, 0.0});
        },
        {"normalize", "'A'", "entry (1, 0)", "negative weights"});
  }
  CHECK_NOTHROW(normalize(serial{}, neg, {normalization::none, 0.0}));
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        normalize(serial{}, bad, {normalization::none, 0.0});
      },
      {"normalize", "entry (1, 0)", "not finite"});
  std::vector<double> ok = {1.0, 1.0};
  csr_view<const double, std::int32_t> good(3, 3, 2, indptr.data(), indices.data(), ok.data());
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        normalize(serial{}, good, {normalization::symmetric, -1.0});
      },
      {"normalize", "self_loop_weight", "must be finite and >= 0"});
  std::vector<std::int32_t> unsorted_ptr = {0, 2, 2, 2}, unsorted = {2, 1};
  csr_view<const double, std::int32_t> u(3, 3, 2, unsorted_ptr.data(), unsorted.data(), ok.data());
  graph_test::check_throws_with<invalid_argument>([&] { normalize(serial{}, u); },
                                                  {"normalize", "'A'", "row 0 are not sorted"});
  std::vector<std::int32_t> far = {5, 0};
  csr_view<const double, std::int32_t> o(3, 3, 2, indptr.data(), far.data(), ok.data());
  graph_test::check_throws_with<invalid_argument>([&] { normalize(serial{}, o); },
                                                  {"normalize", "column index 5 in row 0 is outside [0, 3)"});
  csr_view<const double, std::int32_t> rect(3, 4, 2, indptr.data(), indices.data(), ok.data());
  graph_test::check_throws_with<dimension_mismatch>([&] { normalize(serial{}, rect); },
                                                    {"normalize", "A is 3 x 4", "must be square"});
}
