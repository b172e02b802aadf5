// Tests of cellkit/interop/boost_graph.hpp: the zero-copy view of a compressed_sparse_row_graph
// (pointer equality with the graph's arrays, debug check of unsorted rows), copies of adjacency_list
// graphs (directed, undirected, parallel edges, self-loops, bundled weights, no weights), and a
// round trip cellkit CSR -> Boost graph -> connected_components -> cellkit CSR.

#include <cellkit/interop/boost_graph.hpp>

#include <cellkit/core/csr_matrix.hpp>

#include "support/test_support.hpp"

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <boost/graph/connected_components.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using cellkit::index_t;

namespace {

/// The three arrays of a CSR view as vectors of doubles, for comparison with expectations.
struct csr_arrays {
  std::vector<double> indptr;
  std::vector<double> indices;
  std::vector<double> values;
  bool operator==(const csr_arrays&) const = default;
};

template <class View>
csr_arrays arrays_of(const View& a) {
  csr_arrays out;
  for (index_t i = 0; i <= a.rows(); ++i) out.indptr.push_back(static_cast<double>(a.indptr()[i]));
  for (index_t p = 0; p < a.nnz(); ++p) {
    out.indices.push_back(static_cast<double>(a.indices()[p]));
    out.values.push_back(static_cast<double>(a.values()[p]));
  }
  return out;
}

using weighted_csr_graph = boost::compressed_sparse_row_graph<boost::directedS, boost::no_property, float>;
using edge_list = std::vector<std::pair<std::size_t, std::size_t>>;

}  // namespace

TEST_CASE("as_csr_view of a compressed_sparse_row_graph with float weights is zero-copy") {
  // 0 -> 1 (0.5), 0 -> 3 (1.5), 1 -> 2 (2), 3 -> 0 (3), 3 -> 2 (4); vertex 2 has no out-edges.
  const edge_list edges{{0, 1}, {0, 3}, {1, 2}, {3, 0}, {3, 2}};
  const std::vector<float> weights{0.5f, 1.5f, 2.0f, 3.0f, 4.0f};
  weighted_csr_graph g(boost::edges_are_sorted, edges.begin(), edges.end(), weights.begin(), 4);

  const auto& const_g = g;
  auto view = cellkit::as_csr_view(const_g);
  static_assert(std::is_same_v<decltype(view), cellkit::csr_view<const float, std::size_t>>);
  CHECK(view.rows() == 4);
  CHECK(view.cols() == 4);
  CHECK(view.nnz() == 5);
  CHECK(view.indptr() == g.m_forward.m_rowstart.data());
  CHECK(view.indices() == g.m_forward.m_column.data());
  CHECK(view.values() == g.m_forward.m_edge_properties.data());
  CHECK(arrays_of(view) == csr_arrays{{0, 2, 3, 3, 5}, {1, 3, 2, 0, 2}, {0.5, 1.5, 2, 3, 4}});
  cellkit::validate(view);

  // Through a non-const graph the weights are writable, and writes reach the graph's edge bundles.
  auto mutable_view = cellkit::as_csr_view(g);
  static_assert(std::is_same_v<decltype(mutable_view), cellkit::csr_view<float, std::size_t>>);
  mutable_view.values()[2] = 20.0f;
  const auto e = boost::edge(std::size_t{1}, std::size_t{2}, g);
  REQUIRE(e.second);
  CHECK(g[e.first] == 20.0f);

  // An empty graph.
  const weighted_csr_graph empty;
  const auto empty_view = cellkit::as_csr_view(empty);
  CHECK(empty_view.rows() == 0);
  CHECK(empty_view.nnz() == 0);
}

TEST_CASE("as_csr_view rejects a CSR graph whose rows are unsorted or have parallel edges (debug checks)") {
  static_assert(CELLKIT_DEBUG_CHECKS == 1, "the tests are compiled with CELLKIT_DEBUG_CHECKS=1");
  // Built from unsorted edges: Boost keeps the targets of vertex 0 in input order (3, then 1).
  const edge_list unsorted{{0, 3}, {2, 1}, {0, 1}};
  const std::vector<float> weights{1.0f, 2.0f, 3.0f};
  const weighted_csr_graph g(boost::edges_are_unsorted_multi_pass, unsorted.begin(), unsorted.end(), weights.begin(),
                             4);
  CHECK_THROWS_AS(cellkit::as_csr_view(g), cellkit::invalid_argument);
  std::string message;
  try {
    cellkit::as_csr_view(g);
  } catch (const cellkit::invalid_argument& error) {
    message = error.what();
  }
  CHECK(message.find("vertex 0") != std::string::npos);
  CHECK(message.find("to_csr_matrix") != std::string::npos);

  // The copying conversion accepts it and sorts each row.
  const auto copy = cellkit::to_csr_matrix(g, boost::get(boost::edge_bundle, g));
  static_assert(std::is_same_v<decltype(copy), const cellkit::csr_matrix<float, std::int32_t>>);
  CHECK(arrays_of(copy.view()) == csr_arrays{{0, 2, 2, 3, 3}, {1, 3, 1}, {3, 1, 2}});

  const edge_list parallel{{0, 1}, {0, 1}};
  const weighted_csr_graph with_parallel(boost::edges_are_sorted, parallel.begin(), parallel.end(), weights.begin(), 2);
  CHECK_THROWS_AS(cellkit::as_csr_view(with_parallel), cellkit::invalid_argument);
  const auto summed =
      cellkit::to_csr_matrix<double, std::int64_t>(with_parallel, boost::get(boost::edge_bundle, with_parallel));
  CHECK(arrays_of(summed.view()) == csr_arrays{{0, 1, 1}, {1}, {3}});
}

TEST_CASE("to_csr_matrix of a directed adjacency_list sums parallel edges and sorts rows") {
  using digraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, boost::no_property,
                                        boost::property<boost::edge_weight_t, double>>;
  digraph g(5);
  boost::add_edge(2, 0, 1.0, g);
  boost::add_edge(0, 3, 2.0, g);
  boost::add_edge(0, 1, 3.0, g);
  boost::add_edge(0, 3, 0.5, g);  // parallel to the second edge: summed
  boost::add_edge(3, 3, 7.0, g);  // self-loop
  boost::add_edge(4, 2, -1.0, g);
  const auto a = cellkit::to_csr_matrix(g, boost::get(boost::edge_weight, g));
  static_assert(std::is_same_v<decltype(a), const cellkit::csr_matrix<double, std::int32_t>>);
  CHECK(a.rows() == 5);
  CHECK(a.cols() == 5);
  CHECK(arrays_of(a.view()) == csr_arrays{{0, 2, 2, 3, 4, 5}, {1, 3, 0, 3, 2}, {3, 2.5, 1, 7, -1}});

  // Unweighted: each entry counts the edges between its vertices.
  const auto counts = cellkit::to_csr_matrix<float, std::int64_t>(g);
  static_assert(std::is_same_v<decltype(counts), const cellkit::csr_matrix<float, std::int64_t>>);
  CHECK(arrays_of(counts.view()) == csr_arrays{{0, 2, 2, 3, 4, 5}, {1, 3, 0, 3, 2}, {1, 2, 1, 1, 1}});
}

TEST_CASE("to_csr_matrix of an undirected adjacency_list is symmetric; a self-loop is counted once") {
  using graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS, boost::no_property,
                                      boost::property<boost::edge_weight_t, float>>;
  graph g(4);
  boost::add_edge(0, 1, 1.0f, g);
  boost::add_edge(1, 0, 2.0f, g);  // parallel to {0, 1}: summed to 3
  boost::add_edge(2, 2, 5.0f, g);  // self-loop: one diagonal entry of 5
  boost::add_edge(3, 1, 4.0f, g);
  const auto a = cellkit::to_csr_matrix(g, boost::get(boost::edge_weight, g));
  static_assert(std::is_same_v<decltype(a), const cellkit::csr_matrix<float, std::int32_t>>);
  CHECK(arrays_of(a.view()) == csr_arrays{{0, 1, 3, 4, 5}, {1, 0, 3, 2, 1}, {3, 3, 4, 5, 4}});

  const auto unweighted = cellkit::to_csr_matrix(g);
  static_assert(std::is_same_v<decltype(unweighted), const cellkit::csr_matrix<double, std::int32_t>>);
  CHECK(arrays_of(unweighted.view()) == csr_arrays{{0, 1, 3, 4, 5}, {1, 0, 3, 2, 1}, {2, 2, 1, 1, 1}});
}

TEST_CASE("to_csr_matrix with a bundled struct weight") {
  struct edge_data {
    double weight;
    int id;
  };
  using graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, boost::no_property, edge_data>;
  graph g(3);
  boost::add_edge(1, 2, edge_data{0.25, 7}, g);
  boost::add_edge(1, 0, edge_data{0.75, 8}, g);
  const auto a = cellkit::to_csr_matrix<float>(g, boost::get(&edge_data::weight, g));
  static_assert(std::is_same_v<decltype(a), const cellkit::csr_matrix<float, std::int32_t>>);
  CHECK(arrays_of(a.view()) == csr_arrays{{0, 0, 2, 2}, {0, 2}, {0.75, 0.25}});
}

TEST_CASE("a cellkit CSR matrix as a Boost graph: connected_components, and back") {
  // Symmetric adjacency of three components: {0, 1, 4}, {2, 5}, {3}.
  const std::vector<std::int32_t> rows{0, 1, 1, 4, 2, 5};
  const std::vector<std::int32_t> cols{1, 0, 4, 1, 5, 2};
  const std::vector<double> weights{0.9, 0.9, 0.4, 0.4, 0.7, 0.7};
  const auto knn = cellkit::csr_matrix<double>::from_triplets(6, 6, rows, cols, weights);

  using graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS, boost::no_property,
                                      boost::property<boost::edge_weight_t, double>>;
  graph g(static_cast<std::size_t>(knn.rows()));
  const auto view = knn.view();
  for (index_t i = 0; i < view.rows(); ++i)
    for (index_t p = view.row_begin(i); p < view.row_end(i); ++p)
      if (view.indices()[p] > i)
        boost::add_edge(static_cast<std::size_t>(i), static_cast<std::size_t>(view.indices()[p]), view.values()[p], g);

  std::vector<int> component(boost::num_vertices(g));
  const int count = boost::connected_components(g, component.data());
  CHECK(count == 3);
  CHECK(component == std::vector<int>{0, 0, 1, 2, 0, 1});

  // Back to a matrix: the same entries as the matrix the graph was built from.
  const auto back = cellkit::to_csr_matrix(g, boost::get(boost::edge_weight, g));
  CHECK(arrays_of(back.view()) == arrays_of(knn.view()));

  // The same matrix as a directed CSR graph built from the sorted (row, column) pairs: viewing it
  // gives back the matrix's arrays.
  edge_list pairs;
  std::vector<double> values;
  for (index_t i = 0; i < view.rows(); ++i)
    for (index_t p = view.row_begin(i); p < view.row_end(i); ++p) {
      pairs.emplace_back(static_cast<std::size_t>(i), static_cast<std::size_t>(view.indices()[p]));
      values.push_back(view.values()[p]);
    }
  const boost::compressed_sparse_row_graph<boost::directedS, boost::no_property, double> csr_graph(
      boost::edges_are_sorted, pairs.begin(), pairs.end(), values.begin(), 6);
  CHECK(arrays_of(cellkit::as_csr_view(csr_graph)) == arrays_of(knn.view()));
}
