#pragma once
// Count matrix -> the model's inputs: the examples' shared count preparation
// (examples/common/counts.hpp) and the kNN cell graph the graph encoder runs on.

#include "../common/counts.hpp"
#include "model.hpp"

#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/knn.hpp>
#include <cellkit/preprocess/pca.hpp>

#include <algorithm>
#include <cstdint>

namespace scsiameseclu {

using examples::prepare_counts;
using examples::prepared;

struct graph_config {
  index_t neighbours = 10;  // K of the kNN graph
  index_t components = 50;  // principal components the neighbours are searched in
  std::uint64_t seed = 0;   // randomised PCA probes
};

/// The symmetric binary kNN graph (union of the neighbour lists) of the cells' principal
/// components of the scaled features, without self-loops (the model adds them when normalising).
template <class T, class Policy>
graph::csr_graph<T> cell_graph(const Policy& policy, const training_data<T>& data, const graph_config& cfg) {
  constexpr const char* fn = "scsiameseclu::cell_graph";
  CELLKIT_EXPECTS(data.cells >= 2, fn, "data", "needs at least 2 cells to have neighbours");
  CELLKIT_EXPECTS(cfg.neighbours >= 1, fn, "neighbours", "must be >= 1");
  const index_t components = std::min({cfg.components, data.cells - 1, data.genes});
  auto pcs = cellkit::preprocess::pca(policy, matrix_view<const T>(data.features.data(), data.cells, data.genes),
                                      {.n_components = components, .seed = cfg.seed});
  return graph::knn_graph(policy, pcs.scores_view(),
                          graph::knn_params<T>{.k = std::min(cfg.neighbours, data.cells - 1),
                                               .weights = graph::knn_weights::binary,
                                               .symmetrize = graph::knn_symmetrize::union_edges});
}

}  // namespace scsiameseclu
