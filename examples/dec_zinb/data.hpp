#pragma once
// Count matrix -> the model's inputs, as scDeepCluster prepares them: drop empty genes and cells,
// keep the top highly variable genes (Seurat dispersion on log1p of median-normalised counts) when
// there are more, size factors s_i = total_i / median total, features = scale(log1p(x_i / s_i)).

#include "model.hpp"

#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/preprocess/filter.hpp>
#include <cellkit/preprocess/highly_variable.hpp>
#include <cellkit/preprocess/normalize.hpp>
#include <cellkit/preprocess/scale.hpp>

#include <numeric>
#include <vector>

namespace dec_zinb {

struct prepared {
  training_data<float> data;
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

}  // namespace dec_zinb
