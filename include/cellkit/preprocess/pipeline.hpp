#pragma once
/// @file
/// The standard scRNA-seq preprocessing chain in one call (namespace `cellkit::preprocess`):
///
///     counts (cells x genes, CSR) -> filter_cells -> filter_genes -> normalize_total -> log1p
///       -> highly_variable_genes (subset) -> scale (dense, clipped) -> pca
///
/// as scanpy's `filter_cells; filter_genes; normalize_total; log1p; highly_variable_genes(
/// n_top_genes=2000, flavor='seurat'); adata[:, hvg]; scale(max_value=10); pca(n_comps=50)`.
/// Every stage is the function of its own header with the parameters given here (defaults: drop
/// cells and genes without any count, 2000 Seurat HVGs, clip at 10, 50 components). Set
/// `normalize = false` for data that are already log-normalised (the shared datasets whose
/// manifest says raw_counts = false). `pca.n_components` is lowered to min(cells, genes) when the
/// data are smaller.
///
/// Returns the kept cells (indices into the input rows: subset labels with them), the selected
/// genes (indices into the input columns), the HVG statistics, the dense scaled matrix, the PCA
/// and the seconds each stage took. `progress` (optional) is called after each stage with its
/// name and seconds. Errors: those of the stages (`invalid_argument` "no cell passes the filter
/// ..." when the filters leave nothing). Host only, synchronous, identical results for every thread
/// count. Memory: the filtered CSR copy plus the dense n x n_top_genes scaled matrix.

#include <cellkit/core/config.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/preprocess/filter.hpp>
#include <cellkit/preprocess/highly_variable.hpp>
#include <cellkit/preprocess/normalize.hpp>
#include <cellkit/preprocess/pca.hpp>
#include <cellkit/preprocess/scale.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::preprocess {

struct pipeline_params {
  cell_filter_params cells{.min_counts = 1};
  gene_filter_params genes{.min_cells = 1};
  bool normalize = true;  ///< normalize_total + log1p; false for log-normalised input
  normalize_total_params normalize_total{};
  log1p_params log1p{};
  hvg_params hvg{.n_top_genes = 2000};
  scale_params scale{.max_value = 10.0};
  pca_params pca{.n_components = 50};
  std::function<void(const std::string& stage, double seconds)> progress = {};
};

template <class T>
struct pipeline_result {
  std::vector<index_t> cells;  ///< kept input rows, ascending (rows of `scaled` and `pca.scores`)
  std::vector<index_t> genes;  ///< selected input columns, ascending (columns of `scaled`)
  hvg_result hvg;              ///< statistics of the genes that passed filter_genes
  std::vector<T> scaled;       ///< cells.size() x genes.size(), row-major, z-scored and clipped
  pca_result<T> pca;
  std::vector<std::pair<std::string, double>> seconds;  ///< per stage

  matrix_view<const T> scaled_view() const {
    return matrix_view<const T>(scaled.data(), static_cast<index_t>(cells.size()), static_cast<index_t>(genes.size()));
  }
};

/// Runs the chain on `counts` (not modified). See the file comment.
template <class Policy, class T, class Index, class Space>
pipeline_result<std::remove_const_t<T>> run_pipeline(const Policy& policy, csr_view<T, Index, Space> counts,
                                                     const pipeline_params& params = {}) {
  detail::check_host_policy<Policy, Space>();
  using V = std::remove_const_t<T>;
  pipeline_result<V> r;
  auto clock = std::chrono::steady_clock::now();
  auto stage = [&](const char* name) {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - clock).count();
    clock = now;
    r.seconds.emplace_back(name, s);
    if (params.progress) params.progress(name, s);
  };
  r.cells = select_cells(policy, counts, params.cells);
  CELLKIT_EXPECTS(!r.cells.empty(), "run_pipeline", "params.cells",
                  "no cell passes the filter (min_counts = " + detail::value_text(params.cells.min_counts) +
                      ", min_genes = " + std::to_string(params.cells.min_genes) + ") out of " +
                      std::to_string(counts.rows()));
  auto x = take_rows(policy, counts, r.cells);
  const auto kept_genes = select_genes(policy, x.view(), params.genes);
  CELLKIT_EXPECTS(!kept_genes.empty(), "run_pipeline", "params.genes",
                  "no gene passes the filter (min_counts = " + detail::value_text(params.genes.min_counts) +
                      ", min_cells = " + std::to_string(params.genes.min_cells) + ") out of " +
                      std::to_string(counts.cols()));
  x = take_columns(policy, x.view(), kept_genes);
  stage("filter");
  if (params.normalize) {
    normalize_total(policy, x.view(), params.normalize_total);
    log1p(policy, x.view(), params.log1p);
    stage("normalize+log1p");
  }
  r.hvg = highly_variable_genes(policy, x.view(), params.hvg);
  for (const index_t j : r.hvg.genes) r.genes.push_back(kept_genes[static_cast<std::size_t>(j)]);
  const auto sub = take_columns(policy, x.view(), r.hvg.genes);
  stage("highly_variable_genes");
  const index_t n = sub.rows();
  const index_t h = sub.cols();
  r.scaled.resize(static_cast<std::size_t>(n * h));
  scale(policy, sub.view(), matrix_view<V>(r.scaled.data(), n, h), params.scale);
  stage("scale");
  pca_params pca_options = params.pca;
  pca_options.n_components = std::min(pca_options.n_components, std::min(n, h));
  r.pca = pca(policy, r.scaled_view(), pca_options);
  stage("pca");
  return r;
}

}  // namespace cellkit::preprocess
