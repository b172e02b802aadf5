#pragma once
/// @file
/// Boost.Graph interoperability: graphs as sparse matrices (rows and columns = vertices, entry
/// (u, v) = weight of the edge u -> v).
///
/// - `as_csr_view(g)`: **zero-copy** `csr_view` over the storage of a
///   `boost::compressed_sparse_row_graph` whose edge bundle is the weight itself (an arithmetic type).
/// - `to_csr_matrix<T, Index>(g, weight_map)` / `to_csr_matrix<T, Index>(g)`: **copies** any graph
///   with vertex and out-edge traversal and a vertex index (adjacency_list, CSR graphs, ...) into a
///   `cellkit::csr_matrix`, sorting each row and summing parallel edges.
///
/// All functions live in namespace `cellkit`. This header is host-only and is never included by
/// cellkit's core headers.

#include <cellkit/core/config.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>

#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <boost/graph/graph_traits.hpp>
#include <boost/graph/properties.hpp>
#include <boost/property_map/property_map.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit {

namespace detail {

template <class Directed, class VertexProperty, class EdgeProperty, class GraphProperty, class Vertex, class EdgeIndex,
          class Element>
csr_view<Element, Vertex> boost_csr_graph_view(
    const boost::compressed_sparse_row_graph<Directed, VertexProperty, EdgeProperty, GraphProperty, Vertex, EdgeIndex>&
        g,
    Element* values) {
  static_assert(std::is_arithmetic_v<EdgeProperty>,
                "cellkit::as_csr_view(compressed_sparse_row_graph) is zero-copy only when the edge bundle is the "
                "weight itself (e.g. compressed_sparse_row_graph<directedS, no_property, float>); for struct "
                "bundles or property<> lists copy with cellkit::to_csr_matrix(g, get(&Edge::weight, g))");
  static_assert(std::is_same_v<Vertex, EdgeIndex>,
                "cellkit::as_csr_view(compressed_sparse_row_graph): a csr_view has one index type, but this graph's "
                "Vertex and EdgeIndex types differ; copy with cellkit::to_csr_matrix instead");
  const auto& forward = g.m_forward;
  const auto rows = forward.m_rowstart.empty() ? index_t{0} : static_cast<index_t>(forward.m_rowstart.size() - 1);
  const auto nnz = rows == 0 ? index_t{0} : static_cast<index_t>(forward.m_rowstart.back());
  csr_view<Element, Vertex> view(rows, rows, nnz, forward.m_rowstart.data(), forward.m_column.data(), values);
#if CELLKIT_DEBUG_CHECKS
  for (index_t i = 0; i < rows; ++i) {
    for (index_t p = view.row_begin(i) + 1; p < view.row_end(i); ++p) {
      if (view.indices()[p - 1] >= view.indices()[p]) {
        detail::throw_invalid_argument(
            "as_csr_view", "g",
            "the out-edges of vertex " + std::to_string(i) +
                " are not sorted by target or include parallel edges, so the graph's storage is not a "
                "valid CSR matrix; build the graph from edges sorted by (source, target) without "
                "duplicates, or copy it with cellkit::to_csr_matrix (which sorts and sums parallel edges)");
      }
    }
  }
#endif
  return view;
}

}  // namespace detail

/// A zero-copy `csr_view` of a `boost::compressed_sparse_row_graph<directedS or bidirectionalS,
/// VertexProperty, T, GraphProperty, Vertex, Vertex>` whose edge bundle `T` is arithmetic (the
/// weight): rows = cols = num_vertices(g), indptr = `g.m_forward.m_rowstart`, indices =
/// `g.m_forward.m_column` (targets), values = `g.m_forward.m_edge_properties` (weights). Only the
/// out-edges are viewed (for bidirectionalS, the in-edge arrays are ignored).
///
/// Boost keeps each vertex's targets in the order the edges were given, and allows parallel edges,
/// so the storage is a valid cellkit CSR matrix only if the graph was built from edges sorted by
/// (source, target) without duplicates. When `CELLKIT_DEBUG_CHECKS` is on (the default without
/// NDEBUG) this is checked, O(num_edges), and `invalid_argument` is thrown otherwise; with the check
/// off the call is O(1) and an unsorted graph gives a view that cellkit algorithms may mis-handle
/// (call `validate(view)` when unsure). `to_csr_matrix` accepts any such graph (it sorts and sums).
///
/// Compile errors with a message: a non-arithmetic edge bundle (a struct, `property<...>`,
/// `no_property`: use `to_csr_matrix(g, weight_map)`), Vertex != EdgeIndex types, a temporary graph.
/// Result: `csr_view<const T, Vertex>` for a const graph; for a non-const graph `csr_view<T, Vertex>`
/// (weights writable through the view; the structure stays read-only). Valid while `g` is alive and
/// unmodified (adding edges reallocates the arrays).
template <class Directed, class VertexProperty, class T, class GraphProperty, class Vertex, class EdgeIndex>
csr_view<const T, Vertex> as_csr_view(
    const boost::compressed_sparse_row_graph<Directed, VertexProperty, T, GraphProperty, Vertex, EdgeIndex>& g) {
  return detail::boost_csr_graph_view(g, static_cast<const T*>(g.m_forward.m_edge_properties.data()));
}
/// Writable-weights overload for a non-const graph: `csr_view<T, Vertex>`.
template <class Directed, class VertexProperty, class T, class GraphProperty, class Vertex, class EdgeIndex>
csr_view<T, Vertex> as_csr_view(
    boost::compressed_sparse_row_graph<Directed, VertexProperty, T, GraphProperty, Vertex, EdgeIndex>& g) {
  return detail::boost_csr_graph_view(
      static_cast<
          const boost::compressed_sparse_row_graph<Directed, VertexProperty, T, GraphProperty, Vertex, EdgeIndex>&>(g),
      static_cast<T*>(g.m_forward.m_edge_properties.data()));
}
/// A temporary graph would leave the view dangling: rejected at compile time.
template <class Directed, class VertexProperty, class T, class GraphProperty, class Vertex, class EdgeIndex>
csr_view<const T, Vertex> as_csr_view(
    boost::compressed_sparse_row_graph<Directed, VertexProperty, T, GraphProperty, Vertex, EdgeIndex>&& g) {
  static_assert(sizeof(T) == 0,
                "cellkit::as_csr_view: the graph is a temporary, so the view would dangle; store it in a variable "
                "first");
  return as_csr_view(std::as_const(g));
}

namespace detail {

/// A graph with vertex and out-edge traversal and a vertex index map (Boost's VertexListGraph +
/// IncidenceGraph + vertex_index).
template <class G>
concept boost_incidence_vertex_list_graph = requires(const G& g, typename boost::graph_traits<G>::vertex_descriptor v) {
  vertices(g);
  num_vertices(g);
  out_edges(v, g);
  get(boost::vertex_index, g);
};

template <class WeightMap, class G>
concept boost_edge_weight_map = requires(const WeightMap& w, typename boost::graph_traits<G>::edge_descriptor e) {
  get(w, e);
};

template <class T, class WeightMap, class G>
using graph_weight_t = std::conditional_t<
    std::is_void_v<T>,
    std::remove_cvref_t<decltype(get(std::declval<const WeightMap&>(),
                                     std::declval<typename boost::graph_traits<G>::edge_descriptor>()))>,
    T>;

template <class T, class Index, class Graph, class WeightOf>
csr_matrix<T, Index> graph_to_csr_matrix(const Graph& g, WeightOf weight_of) {
  static_assert(std::is_arithmetic_v<T>,
                "cellkit::to_csr_matrix: the matrix element type must be arithmetic; pass it explicitly "
                "(to_csr_matrix<float>(g, w)) or pass a weight map whose values are numbers");
  using traits = boost::graph_traits<Graph>;
  constexpr const char* fn = "to_csr_matrix";
  const auto n = static_cast<index_t>(num_vertices(g));
  if (static_cast<std::make_unsigned_t<index_t>>(n) >
      static_cast<std::make_unsigned_t<Index>>(std::numeric_limits<Index>::max())) {
    detail::throw_invalid_argument(fn, "g",
                                   std::to_string(n) + " vertices do not fit the index type (max " +
                                       std::to_string(std::numeric_limits<Index>::max()) + "); use a wider Index");
  }
  const auto index_map = get(boost::vertex_index, g);
  const auto index_of = [&](typename traits::vertex_descriptor v) {
    const auto i = static_cast<index_t>(get(index_map, v));
    if (i < 0 || i >= n) {
      detail::throw_invalid_argument(fn, "g",
                                     "a vertex has index " + std::to_string(i) + ", outside [0, num_vertices = " +
                                         std::to_string(n) + "); the vertex_index map must number vertices 0 .. n-1");
    }
    return static_cast<Index>(i);
  };
  std::vector<Index> rows;
  std::vector<Index> cols;
  std::vector<T> values;
  const auto push = [&](Index r, Index c, T w) {
    rows.push_back(r);
    cols.push_back(c);
    values.push_back(w);
  };
  if constexpr (std::is_convertible_v<typename traits::directed_category, boost::undirected_tag>) {
    // Each undirected edge once (out_edges would list a self-loop twice): (s, t) and (t, s).
    static_assert(std::is_convertible_v<typename traits::traversal_category, boost::edge_list_graph_tag>,
                  "cellkit::to_csr_matrix: an undirected graph must also model EdgeListGraph (edges(g))");
    const auto m = static_cast<std::size_t>(num_edges(g));
    rows.reserve(2 * m);
    cols.reserve(2 * m);
    values.reserve(2 * m);
    for (auto [it, end] = edges(g); it != end; ++it) {
      const auto e = *it;
      const Index s = index_of(source(e, g));
      const Index t = index_of(target(e, g));
      const auto w = static_cast<T>(weight_of(e));
      push(s, t, w);
      if (s != t) push(t, s, w);
    }
  } else {
    if constexpr (std::is_convertible_v<typename traits::traversal_category, boost::edge_list_graph_tag>) {
      const auto m = static_cast<std::size_t>(num_edges(g));
      rows.reserve(m);
      cols.reserve(m);
      values.reserve(m);
    }
    for (auto [vit, vend] = vertices(g); vit != vend; ++vit) {
      const Index s = index_of(*vit);
      for (auto [eit, eend] = out_edges(*vit, g); eit != eend; ++eit) {
        push(s, index_of(target(*eit, g)), static_cast<T>(weight_of(*eit)));
      }
    }
  }
  return csr_matrix<T, Index>::from_triplets(n, n, rows, cols, values);
}

}  // namespace detail

/// Copies a graph into a `csr_matrix<T, Index>`: rows and columns are vertices (numbered by the
/// graph's `vertex_index` map), entry (u, v) is the weight `get(weight, e)` of the edge e = u -> v.
///
/// - Directed and bidirectional graphs: one entry per out-edge.
/// - Undirected graphs: each edge {u, v} gives (u, v) and (v, u), so the matrix is symmetric; a
///   self-loop gives one diagonal entry of its weight (not two, although Boost lists it twice among
///   the out-edges of its vertex). Undirected graphs must also model EdgeListGraph.
/// - **Parallel edges are summed** into one entry (as `csr_matrix::from_triplets` does); each row is
///   sorted by column.
/// Graph requirements: VertexListGraph + IncidenceGraph with `get(vertex_index, g)` numbering the
/// vertices 0 .. n-1 (adjacency_list with vecS vertices, compressed_sparse_row_graph, ...).
/// `weight` is a readable property map keyed by edge descriptors (`get(boost::edge_weight, g)`,
/// `get(&Edge::weight, g)`, ...). `T` defaults to the map's value type; `Index` to int32.
/// Complexity: O(V + E log(max degree)) time, O(V + E) extra memory. Copies.
/// Errors: `invalid_argument` when num_vertices (or the number of entries before summing) does not
/// fit `Index`, or when a vertex index is outside [0, num_vertices).
template <class T = void, class Index = std::int32_t, class Graph, class WeightMap>
requires detail::boost_incidence_vertex_list_graph<Graph> && detail::boost_edge_weight_map<WeightMap, Graph>
    csr_matrix<detail::graph_weight_t<T, WeightMap, Graph>, Index> to_csr_matrix(const Graph& g, WeightMap weight) {
  using value_type = detail::graph_weight_t<T, WeightMap, Graph>;
  return detail::graph_to_csr_matrix<value_type, Index>(
      g, [&weight](const typename boost::graph_traits<Graph>::edge_descriptor& e) { return get(weight, e); });
}

/// `to_csr_matrix` without weights: every edge has weight 1 (so an entry counts the parallel edges
/// between its two vertices). `T` defaults to double. Same rules and costs as the weighted overload.
template <class T = double, class Index = std::int32_t, class Graph>
requires detail::boost_incidence_vertex_list_graph<Graph> csr_matrix<T, Index> to_csr_matrix(const Graph& g) {
  return detail::graph_to_csr_matrix<T, Index>(g, [](const auto&) { return T(1); });
}

}  // namespace cellkit
