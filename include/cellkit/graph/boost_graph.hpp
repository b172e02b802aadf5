#pragma once
/// @file
/// Boost.Graph for cellkit graphs: conversions both ways and connected components.
///
/// Kept out of `csr_graph.hpp` so that only code that includes this header needs Boost (as for
/// `cellkit/interop/boost_graph.hpp`, whose adapters this header uses).
///
/// - `to_boost_graph(a)`: a `boost::compressed_sparse_row_graph<directedS, no_property, T>` with one
///   edge u -> v of bundle weight a_uv per stored entry (u, v); copies, O(n + nnz). Because the
///   edges are given sorted, `cellkit::as_csr_view` (interop) views the result again without copying.
/// - `from_boost_graph<T, Index>(g[, weight_map])`: any Boost graph accepted by
///   `cellkit::to_csr_matrix` (adjacency_list, CSR graphs, ...) as a `csr_graph`; parallel edges are
///   summed, undirected edges give both entries.
/// - `connected_components(a, labels)`: weakly connected components (edge direction ignored),
///   through `boost::connected_components` on an undirected copy; `strong_components(a, labels)`:
///   strongly connected components through `boost::strong_components`. Labels are renumbered
///   0, 1, ... in order of each component's lowest node, so they are deterministic; both return
///   the number of components. Cost O(n + nnz) time and memory (the Boost copy). Host code,
///   synchronous.

#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/interop/boost_graph.hpp>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <boost/graph/connected_components.hpp>
#include <boost/graph/strong_components.hpp>

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::graph {

template <class T, class Vertex = std::size_t>
using boost_csr_graph =
    boost::compressed_sparse_row_graph<boost::directedS, boost::no_property, T, boost::no_property, Vertex, Vertex>;

/// A Boost CSR graph with the same edges and weights (see the file comment). Checks A's structure.
template <class Vertex = std::size_t, class T, class Index>
boost_csr_graph<std::remove_const_t<T>, Vertex> to_boost_graph(csr_view<T, Index> a) {
  detail::check_square("to_boost_graph", "a", a);
  detail::check_csr("to_boost_graph", "a", a);
  std::vector<std::pair<Vertex, Vertex>> edges;
  std::vector<std::remove_const_t<T>> weights;
  edges.reserve(static_cast<std::size_t>(a.nnz()));
  weights.reserve(static_cast<std::size_t>(a.nnz()));
  for (index_t i = 0; i < a.rows(); ++i) {
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) {
      edges.emplace_back(static_cast<Vertex>(i), static_cast<Vertex>(a.indices()[p]));
      weights.push_back(a.values()[p]);
    }
  }
  return boost_csr_graph<std::remove_const_t<T>, Vertex>(boost::edges_are_sorted, edges.begin(), edges.end(),
                                                         weights.begin(), static_cast<Vertex>(a.rows()));
}

/// `to_boost_graph(g.view())`.
template <class Vertex = std::size_t, class T, class Index>
boost_csr_graph<T, Vertex> to_boost_graph(const csr_graph<T, Index>& g) {
  return to_boost_graph<Vertex>(g.view());
}

/// A `csr_graph` from any Boost graph with a weight map (see `cellkit::to_csr_matrix`).
template <class T = void, class Index = std::int32_t, class Graph, class WeightMap>
auto from_boost_graph(const Graph& g, WeightMap weight) {
  auto m = cellkit::to_csr_matrix<T, Index>(g, weight);
  using V = typename decltype(m)::value_type;
  return csr_graph<V, Index>(std::move(m));
}

/// A `csr_graph` from any Boost graph, every edge of weight 1 (parallel edges counted).
template <class T = double, class Index = std::int32_t, class Graph>
csr_graph<T, Index> from_boost_graph(const Graph& g) {
  return csr_graph<T, Index>(cellkit::to_csr_matrix<T, Index>(g));
}

namespace detail {
/// Renumbers labels 0, 1, ... in order of first appearance (= order of each component's lowest node).
template <class Label, class Out>
index_t relabel_by_first_node(const std::vector<Label>& raw, Out& labels) {
  std::vector<index_t> map(raw.size(), -1);
  index_t next = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    auto& slot = map[static_cast<std::size_t>(raw[i])];
    if (slot < 0) slot = next++;
    labels[static_cast<index_t>(i)] = static_cast<std::remove_reference_t<decltype(labels[0])>>(slot);
  }
  return next;
}
}  // namespace detail

/// Weakly connected components of A (see the file comment): labels[i] = component of node i.
/// Errors: `dimension_mismatch` when labels' length is not n or A is not square.
template <class T, class Index, class Label>
index_t connected_components(csr_view<T, Index> a, vector_view<Label> labels) {
  static_assert(std::is_integral_v<Label>, "connected_components: labels must be integers");
  constexpr const char* fn = "connected_components";
  detail::check_square(fn, "a", a);
  detail::check_csr(fn, "a", a);
  expect_shapes(labels.size() == a.rows(), fn, "labels", labels.shape(), "a", a.shape(), "one label per node");
  boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS> g(static_cast<std::size_t>(a.rows()));
  for (index_t i = 0; i < a.rows(); ++i) {
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) {
      const auto j = static_cast<index_t>(a.indices()[p]);
      if (j > i || (j < i && !std::binary_search(a.indices() + a.row_begin(j), a.indices() + a.row_end(j),
                                                 static_cast<Index>(i)))) {
        boost::add_edge(static_cast<std::size_t>(i), static_cast<std::size_t>(j), g);
      }
    }
  }
  std::vector<std::size_t> raw(static_cast<std::size_t>(a.rows()));
  if (a.rows() == 0) return 0;
  boost::connected_components(g, raw.data());
  return detail::relabel_by_first_node(raw, labels);
}

/// Strongly connected components of A (edge u -> v for entry (u, v)); labels as above.
template <class T, class Index, class Label>
index_t strong_components(csr_view<T, Index> a, vector_view<Label> labels) {
  static_assert(std::is_integral_v<Label>, "strong_components: labels must be integers");
  constexpr const char* fn = "strong_components";
  detail::check_square(fn, "a", a);
  expect_shapes(labels.size() == a.rows(), fn, "labels", labels.shape(), "a", a.shape(), "one label per node");
  if (a.rows() == 0) return 0;
  auto g = to_boost_graph(a);
  std::vector<std::size_t> raw(static_cast<std::size_t>(a.rows()));
  boost::strong_components(g, boost::make_iterator_property_map(raw.begin(), boost::get(boost::vertex_index, g)));
  return detail::relabel_by_first_node(raw, labels);
}

}  // namespace cellkit::graph
