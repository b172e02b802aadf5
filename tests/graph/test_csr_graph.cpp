#include <cellkit/graph/csr_graph.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <vector>

using namespace cellkit;
using namespace cellkit::graph;

TEST_CASE("csr_graph from edges sums duplicates; views, clone and release") {
  std::vector<std::int32_t> rows = {2, 0, 0, 1, 0}, cols = {0, 2, 1, 1, 2};
  std::vector<float> w = {1.f, 2.f, 3.f, 4.f, 5.f};
  auto g = csr_graph<float>::from_edges(3, rows, cols, w);
  CHECK(g.num_nodes() == 3);
  CHECK(g.num_edges() == 4);
  CHECK(g.degree(0) == 2);
  CHECK(graph_test::dense(g.view()) == std::vector<double>{0, 3, 7, 0, 4, 0, 1, 0, 0});
  auto copy = g.clone();
  copy.weights()[0] = 9.f;
  CHECK(g.weights()[0] == 3.f);
  auto from_view = csr_graph<float>::from_view(g.view());
  CHECK(graph_test::dense(from_view.view()) == graph_test::dense(g.view()));
  auto m = std::move(copy).release();
  CHECK(m.nnz() == 4);
  CHECK(csr_graph<float>(7).num_edges() == 0);
  graph_test::check_throws_with<dimension_mismatch>([] { csr_graph<float>(csr_matrix<float>(2, 3)); },
                                                    {"csr_graph", "adjacency is 2 x 3", "square"});
  std::vector<std::int32_t> bad = {0, 5};
  graph_test::check_throws_with<invalid_argument>(
      [&] {
        csr_graph<float>::from_edges(3, std::vector<std::int32_t>{0, 1}, bad, std::vector<float>{1, 1});
      },
      {"from_triplets", "col_indices", "column 5"});
}

TEST_CASE("transpose and symmetrize (every mode) agree with dense computations") {
  auto g = graph_test::random_graph<double>(25, 5, 3, false, /*self_loops=*/true);
  const index_t n = g.num_nodes();
  const auto d = graph_test::dense(g.view());
  auto t = transpose(serial{}, g);
  std::vector<double> dt(d.size());
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) dt[static_cast<std::size_t>(j * n + i)] = d[static_cast<std::size_t>(i * n + j)];
  CHECK(graph_test::dense(t.view()) == dt);
  validate(t.view());
  for (auto mode : {symmetrize_mode::max, symmetrize_mode::sum, symmetrize_mode::mean, symmetrize_mode::fuzzy_union,
                    symmetrize_mode::min, symmetrize_mode::fuzzy_intersection}) {
    auto s = symmetrize(openmp{2}, g.view(), mode);
    validate(s.view());
    CHECK(is_symmetric(s.view()));
    CHECK(graph_test::dense(s.view()) == graph_test::dense(symmetrize(serial{}, g.view(), mode).view()));
    const auto ds = graph_test::dense(s.view());
    for (std::size_t p = 0; p < d.size(); ++p) {
      const double a = d[p], b = dt[p];
      const bool ha = a != 0, hb = b != 0;
      double expected = 0;
      switch (mode) {
        case symmetrize_mode::max:
          expected = ha && hb ? std::max(a, b) : (ha ? a : b);
          break;
        case symmetrize_mode::sum:
          expected = a + b;
          break;
        case symmetrize_mode::mean:
          expected = (a + b) / 2;
          break;
        case symmetrize_mode::fuzzy_union:
          expected = a + b - a * b;
          break;
        case symmetrize_mode::min:
          expected = ha && hb ? std::min(a, b) : 0;
          break;
        case symmetrize_mode::fuzzy_intersection:
          expected = a * b;
          break;
      }
      CHECK(ds[p] == doctest::Approx(expected));
    }
  }
  CHECK_FALSE(is_symmetric(g.view()));
  CHECK(is_symmetric(g.view(), 10.0));
  auto no_loops = remove_self_loops(g.view());
  for (index_t i = 0; i < n; ++i)
    for (index_t p = no_loops.view().row_begin(i); p < no_loops.view().row_end(i); ++p)
      CHECK(no_loops.indices()[p] != i);
}

TEST_CASE("csr_graph converts to and from Eigen sparse matrices of both storage orders") {
  auto g = graph_test::random_graph<double>(12, 4, 6, false);
  auto e = to_eigen_sparse(g);
  CHECK(e.rows() == 12);
  CHECK(e.nonZeros() == g.num_edges());
  Eigen::SparseMatrix<double> column_major(e);
  auto back = from_eigen_sparse(column_major);
  CHECK(graph_test::dense(back.view()) == graph_test::dense(g.view()));
  auto back64 = from_eigen_sparse<std::int64_t>(e);
  CHECK(back64.num_edges() == g.num_edges());
  Eigen::SparseMatrix<double> rect(3, 4);
  graph_test::check_throws_with<dimension_mismatch>([&] { from_eigen_sparse(rect); }, {"from_eigen_sparse", "square"});
}
