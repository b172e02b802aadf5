#include <cellkit/graph/boost_graph.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <vector>

using namespace cellkit;
using namespace cellkit::graph;

TEST_CASE("Boost.Graph round trip and connected components") {
  // Two weak components {0, 1, 2} (0 -> 1, 2 -> 1) and {3, 4} (3 <-> 4), and an isolated node 5.
  std::vector<std::int32_t> rows = {0, 2, 3, 4}, cols = {1, 1, 4, 3};
  std::vector<double> w = {0.5, 1.5, 2.0, 2.0};
  auto g = csr_graph<double>::from_edges(6, rows, cols, w);
  auto bg = to_boost_graph(g);
  CHECK(boost::num_vertices(bg) == 6);
  CHECK(boost::num_edges(bg) == 4);
  auto view = cellkit::as_csr_view(bg);  // zero-copy back
  CHECK(graph_test::dense(view) == graph_test::dense(g.view()));
  auto back = from_boost_graph<double>(bg, boost::get(boost::edge_bundle, bg));
  CHECK(graph_test::dense(back.view()) == graph_test::dense(g.view()));

  std::vector<int> labels(6);
  CHECK(connected_components(g.view(), vector_view<int>(labels.data(), 6)) == 3);
  CHECK(labels == std::vector<int>{0, 0, 0, 1, 1, 2});
  CHECK(strong_components(g.view(), vector_view<int>(labels.data(), 6)) == 5);
  CHECK(labels == std::vector<int>{0, 1, 2, 3, 3, 4});

  boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS, boost::no_property,
                        boost::property<boost::edge_weight_t, float>>
      u(4);
  boost::add_edge(0, 3, 2.0f, u);
  boost::add_edge(1, 2, 1.0f, u);
  auto from_u = from_boost_graph(u, boost::get(boost::edge_weight, u));
  CHECK(graph_test::dense(from_u.view()) == std::vector<double>{0, 0, 0, 2, 0, 0, 1, 0, 0, 1, 0, 0, 2, 0, 0, 0});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] { connected_components(g.view(), vector_view<int>(labels.data(), 5)); },
      {"connected_components", "labels is 5 x 1"});
}

TEST_CASE("connected components agree with a breadth-first search on a random directed graph") {
  auto g = graph_test::random_graph<float>(400, 2, 13, false);
  const auto v = g.view();
  const index_t n = v.rows();
  // Reference: BFS on the undirected version, components numbered by lowest node.
  std::vector<std::vector<index_t>> adj(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    for (index_t p = v.row_begin(i); p < v.row_end(i); ++p) {
      adj[static_cast<std::size_t>(i)].push_back(v.indices()[p]);
      adj[static_cast<std::size_t>(v.indices()[p])].push_back(i);
    }
  std::vector<long> expected(static_cast<std::size_t>(n), -1);
  long count = 0;
  for (index_t s = 0; s < n; ++s) {
    if (expected[static_cast<std::size_t>(s)] >= 0) continue;
    std::vector<index_t> queue = {s};
    expected[static_cast<std::size_t>(s)] = count;
    for (std::size_t q = 0; q < queue.size(); ++q)
      for (index_t u : adj[static_cast<std::size_t>(queue[q])])
        if (expected[static_cast<std::size_t>(u)] < 0) {
          expected[static_cast<std::size_t>(u)] = count;
          queue.push_back(u);
        }
    ++count;
  }
  std::vector<long> labels(static_cast<std::size_t>(n));
  CHECK(connected_components(v, vector_view<long>(labels.data(), n)) == count);
  CHECK(labels == expected);
  std::vector<std::int32_t> indptr = {0, 2, 2}, unsorted = {1, 0};
  std::vector<double> w = {1, 1};
  csr_view<const double, std::int32_t> bad(2, 2, 2, indptr.data(), unsorted.data(), w.data());
  graph_test::check_throws_with<invalid_argument>([&] { to_boost_graph(bad); }, {"to_boost_graph", "not sorted"});
}
