#pragma once
// Count data for the example models, prepared as scDeepCluster prepares it: drop empty genes and
// cells, keep the top highly variable genes (Seurat dispersion on log1p of median-normalised
// counts) when there are more, size factors s_i = total_i / median total,
// features = scale(log1p(x_i / s_i)); and the checks every model runs before training.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/preprocess/filter.hpp>
#include <cellkit/preprocess/highly_variable.hpp>
#include <cellkit/preprocess/normalize.hpp>
#include <cellkit/preprocess/scale.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

namespace examples {

using cellkit::host_buffer;
using cellkit::index_t;

/// What the model trains on: features (log-normalised, scaled highly variable genes), the raw
/// counts of the same genes and the cells' size factors.
template <class T>
struct count_data {
  index_t cells = 0;
  index_t genes = 0;
  host_buffer<T> features;      // cells x genes
  host_buffer<T> counts;        // cells x genes, raw counts
  std::vector<T> size_factors;  // cells
  std::vector<index_t> labels;  // cells, or empty when unknown
};

/// Checks the data before any training: shapes agree, counts are non-negative and finite, every
/// cell has a positive size factor, there are at least as many cells as clusters.
template <class T>
void check_count_data(const count_data<T>& d, index_t clusters, const char* fn) {
  CELLKIT_EXPECTS(d.cells > 0 && d.genes > 0, fn, "data", "needs at least one cell and one gene");
  cellkit::expect_shapes(d.features.size() == d.cells * d.genes, fn, "features",
                         {d.features.size() / std::max<index_t>(d.genes, 1), d.genes}, "counts", {d.cells, d.genes},
                         "features and counts must cover the same cells and genes");
  cellkit::expect_shapes(d.counts.size() == d.cells * d.genes, fn, "counts",
                         {d.counts.size() / std::max<index_t>(d.genes, 1), d.genes}, "features", {d.cells, d.genes},
                         "features and counts must cover the same cells and genes");
  cellkit::expect_shapes(static_cast<index_t>(d.size_factors.size()) == d.cells, fn, "size_factors",
                         {static_cast<index_t>(d.size_factors.size()), 1}, "counts", {d.cells, d.genes},
                         "one size factor per cell");
  if (!d.labels.empty()) {
    cellkit::expect_shapes(static_cast<index_t>(d.labels.size()) == d.cells, fn, "labels",
                           {static_cast<index_t>(d.labels.size()), 1}, "counts", {d.cells, d.genes},
                           "one label per cell");
  }
  for (index_t i = 0; i < d.cells; ++i) {
    CELLKIT_EXPECTS(std::isfinite(d.size_factors[i]) && d.size_factors[i] > T(0), fn, "size_factors",
                    "cell " + std::to_string(i) + " has size factor " + std::to_string(d.size_factors[i]) +
                        " (a cell without counts: filter zero-count cells first)");
  }
  for (index_t k = 0; k < d.cells * d.genes; ++k) {
    if (!(d.counts[k] >= T(0)) || !std::isfinite(d.counts[k])) {
      cellkit::detail::throw_invalid_argument(fn, "counts",
                                              "cell " + std::to_string(k / d.genes) + ", gene " +
                                                  std::to_string(k % d.genes) + " is " + std::to_string(d.counts[k]) +
                                                  "; counts must be finite and >= 0");
    }
    if (!std::isfinite(d.features[k])) {
      cellkit::detail::throw_invalid_argument(
          fn, "features",
          "cell " + std::to_string(k / d.genes) + ", gene " + std::to_string(k % d.genes) + " is not finite");
    }
  }
  CELLKIT_EXPECTS(
      clusters >= 1 && clusters <= d.cells, fn, "clusters",
      std::to_string(clusters) + " clusters for " + std::to_string(d.cells) + " cells: need 1 <= clusters <= cells");
}

struct prepared {
  count_data<float> data;
  std::vector<index_t> kept_cells;  // indices into the input's cells
  std::vector<index_t> kept_genes;  // indices into the input's genes
  bool hvg_applied = false;
};

/// Prepares raw counts (cells x genes). `labels` (one per input cell, or empty) follow the kept cells.
template <class Policy>
prepared prepare_counts(const Policy& policy, const cellkit::csr_matrix<float>& counts,
                        const std::vector<index_t>& labels, index_t top_genes) {
  namespace pp = cellkit::preprocess;
  prepared out;
  auto clone = [&](const cellkit::csr_matrix<float>& m) {
    std::vector<index_t> all(static_cast<std::size_t>(m.rows()));
    std::iota(all.begin(), all.end(), index_t(0));
    return pp::take_rows(policy, m.view(), all);
  };
  cellkit::expect_shapes(labels.empty() || static_cast<index_t>(labels.size()) == counts.rows(), "prepare_counts",
                         "labels", {static_cast<index_t>(labels.size()), 1}, "counts", counts.shape(),
                         "one label per cell");
  auto genes = pp::select_genes(policy, counts.view(), {.min_counts = 1e-12});
  auto by_gene = pp::take_columns(policy, counts.view(), genes);
  auto cells = pp::select_cells(policy, by_gene.view(), {.min_counts = 1e-12});
  auto x = pp::take_rows(policy, by_gene.view(), cells);
  if (x.cols() > top_genes) {
    auto lognorm = clone(x);
    pp::normalize_total(policy, lognorm.view());
    pp::log1p(policy, lognorm.view());
    auto hvg = pp::highly_variable_genes(policy, lognorm.view(), {.n_top_genes = top_genes});
    x = pp::take_columns(policy, x.view(), hvg.genes);
    std::vector<index_t> mapped;
    for (index_t g : hvg.genes) mapped.push_back(genes[g]);
    genes = std::move(mapped);
    out.hvg_applied = true;
    // cells whose counts all lay in dropped genes have no size factor
    auto nonempty = pp::select_cells(policy, x.view(), {.min_counts = 1e-12});
    if (static_cast<index_t>(nonempty.size()) < x.rows()) {
      x = pp::take_rows(policy, x.view(), nonempty);
      std::vector<index_t> mapped_cells;
      for (index_t c : nonempty) mapped_cells.push_back(cells[c]);
      cells = std::move(mapped_cells);
    }
  }
  auto& d = out.data;
  d.cells = x.rows();
  d.genes = x.cols();
  d.counts = host_buffer<float>(d.cells * d.genes);
  for (index_t i = 0; i < d.cells; ++i) {
    for (index_t p = x.view().row_begin(i); p < x.view().row_end(i); ++p) {
      d.counts[i * d.genes + x.view().indices()[p]] = x.view().values()[p];
    }
  }
  auto normalised = clone(x);
  auto norm = pp::normalize_total(policy, normalised.view());
  pp::log1p(policy, normalised.view());
  d.size_factors.assign(norm.size_factors.begin(), norm.size_factors.end());
  d.features = host_buffer<float>(d.cells * d.genes);
  pp::scale(policy, normalised.view(), d.features.as_matrix(d.cells, d.genes));
  if (!labels.empty()) {
    for (index_t c : cells) d.labels.push_back(labels[c]);
  }
  out.kept_cells = std::move(cells);
  out.kept_genes = std::move(genes);
  return out;
}

}  // namespace examples
