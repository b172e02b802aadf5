#pragma once
// The analysis of cluster_cells, as a function of its inputs so that main.cpp only deals with the
// command line and the files: seed 000's soft-clustering pipeline (normalise, log1p, highly variable
// genes, scale, PCA, a Gaussian-mixture sweep chosen by BIC, memberships and their entropy)
// compared with k-means and scored against known labels.

#include <cellkit/cluster/gmm.hpp>
#include <cellkit/cluster/gmm_select.hpp>
#include <cellkit/cluster/kmeans.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/metrics/information.hpp>
#include <cellkit/metrics/pair_counting.hpp>
#include <cellkit/preprocess/filter.hpp>
#include <cellkit/preprocess/highly_variable.hpp>
#include <cellkit/preprocess/normalize.hpp>
#include <cellkit/preprocess/pca.hpp>
#include <cellkit/preprocess/scale.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cluster_cells {

using cellkit::index_t;

/// What the input values are, which decides the normalisation: raw counts get normalize_total +
/// log1p, linear-scale expression (RPKM, TPM) only log1p, log-normalised data neither.
enum class input_kind { counts, linear, log_normalised };

inline const char* to_string(input_kind k) {
  return k == input_kind::counts ? "counts" : k == input_kind::linear ? "linear expression" : "log-normalised";
}

struct settings {
  input_kind input = input_kind::counts;
  index_t min_genes_per_cell = 1;  // drop empty cells
  index_t min_cells_per_gene = 3;  // drop genes seen in fewer cells
  index_t hvg = 2000;              // highly variable genes kept (all when fewer genes pass)
  double clip = 10;                // scale: clip z-scores at +-clip
  index_t components = 50;         // principal components
  index_t k_min = 2, k_max = 20;   // GMM sweep (k_min == k_max: K fixed)
  int gmm_restarts = 1;            // EM starts per K (gmm_params::n_init); the highest lower bound is kept
  int kmeans_restarts = 10;
  std::uint64_t seed = 0;
  int threads = 2;
};

struct step_time {
  std::string name;
  double seconds = 0;
};

struct scores {
  double ari = 0, nmi = 0, homogeneity = 0, completeness = 0;
};

struct result {
  index_t cells_in = 0, genes_in = 0;
  std::vector<index_t> kept_cells;  // indices into the input cells
  index_t genes_kept = 0, hvg_used = 0;
  cellkit::preprocess::pca_result<double> pca;
  cellkit::cluster::gmm_selection<double> sweep;
  cellkit::cluster::gmm_assignment gmm;  // labels, entropy, memberships of the chosen model
  std::vector<index_t> kmeans_labels;
  double kmeans_inertia = 0;
  std::optional<scores> gmm_scores, kmeans_scores;
  std::vector<index_t> true_labels;  // of the kept cells, when known
  index_t true_classes = 0;
  std::vector<step_time> times;
};

/// Reports progress: a step name when it starts (done = false) and its time when it ends.
using progress_fn = std::function<void(const std::string& step, bool done, double seconds)>;
/// Reports each fit of the GMM sweep.
using sweep_fn = std::function<void(const cellkit::cluster::gmm_select_progress&)>;

inline scores score_against(const std::vector<index_t>& truth, const std::vector<index_t>& predicted) {
  scores s;
  s.ari = cellkit::metrics::adjusted_rand_index(truth, predicted);
  s.nmi = cellkit::metrics::normalized_mutual_info(truth, predicted);
  const auto hcv = cellkit::metrics::homogeneity_completeness_v_measure(truth, predicted);
  s.homogeneity = hcv.homogeneity;
  s.completeness = hcv.completeness;
  return s;
}

/// Runs the pipeline on cells x genes counts (labels: one per input cell, or empty).
inline result run(const cellkit::csr_matrix<double>& counts, const std::vector<index_t>& labels, const settings& s,
                  const progress_fn& progress, const sweep_fn& on_fit) {
  namespace pp = cellkit::preprocess;
  namespace ck = cellkit::cluster;
  const cellkit::openmp policy{s.threads};
  result r;
  r.cells_in = counts.rows();
  r.genes_in = counts.cols();
  auto timed = [&](const std::string& name, auto&& body) {
    progress(name, false, 0);
    const auto start = std::chrono::steady_clock::now();
    body();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.times.push_back({name, seconds});
    progress(name, true, seconds);
  };

  cellkit::csr_matrix<double> x;
  timed("filter cells and genes", [&] {
    r.kept_cells = pp::select_cells(policy, counts.view(), {.min_genes = s.min_genes_per_cell});
    if (r.kept_cells.empty())
      throw cellkit::invalid_argument("no cell has " + std::to_string(s.min_genes_per_cell) +
                                      " or more expressed genes: nothing to cluster");
    auto cells = pp::take_rows(policy, counts.view(), r.kept_cells);
    x = pp::filter_genes(policy, std::as_const(cells).view(), {.min_cells = s.min_cells_per_gene});
    r.genes_kept = x.cols();
  });
  if (!labels.empty()) {
    for (const index_t i : r.kept_cells) r.true_labels.push_back(labels[static_cast<std::size_t>(i)]);
    std::vector<char> seen;
    for (const index_t c : r.true_labels) {
      if (static_cast<std::size_t>(c) >= seen.size()) seen.resize(static_cast<std::size_t>(c) + 1, 0);
      r.true_classes += seen[static_cast<std::size_t>(c)] ? 0 : 1;
      seen[static_cast<std::size_t>(c)] = 1;
    }
  }
  if (s.input != input_kind::log_normalised) {
    timed(s.input == input_kind::counts ? "normalize_total + log1p" : "log1p", [&] {
      if (s.input == input_kind::counts) pp::normalize_total(policy, x.view());
      pp::log1p(policy, x.view());
    });
  }
  timed("highly variable genes", [&] {
    if (x.cols() > s.hvg) {
      const auto hvg = pp::highly_variable_genes(policy, std::as_const(x).view(),
                                                 {.flavor = pp::hvg_flavor::seurat, .n_top_genes = s.hvg});
      x = pp::take_columns(policy, std::as_const(x).view(), hvg.genes);
    }
    r.hvg_used = x.cols();
  });
  const index_t n = x.rows();
  const index_t d = x.cols();
  std::vector<double> dense(static_cast<std::size_t>(n * d));
  timed("scale (z-score, clip)", [&] {
    pp::scale(policy, std::as_const(x).view(), cellkit::matrix_view<double>(dense.data(), n, d), {.max_value = s.clip});
  });
  timed("PCA", [&] {
    const index_t k = std::min<index_t>(s.components, std::min(n, d) - 1);
    r.pca =
        pp::pca(policy, cellkit::matrix_view<const double>(dense.data(), n, d), {.n_components = k, .seed = s.seed});
  });
  const cellkit::matrix_view<const double> embedding(r.pca.scores.data(), n, r.pca.k);
  timed("GMM sweep (BIC)", [&] {
    ck::gmm_select_params<double> p;
    p.k_min = s.k_min;
    p.k_max = std::min(s.k_max, n);
    p.covariance_types = {ck::gmm_covariance::full};
    p.criterion = ck::gmm_criterion::bic;
    p.fit.seed = s.seed;
    p.fit.n_init = s.gmm_restarts;
    p.progress = [&](const ck::gmm_select_progress& fit) {
      on_fit(fit);
      return true;
    };
    r.sweep = ck::gmm_select(policy, embedding, p);
    r.gmm = ck::gmm_assign(policy, embedding, r.sweep.best, true);
  });
  timed("k-means", [&] {
    ck::kmeans_params<double> p{.k = r.sweep.best.k, .n_init = s.kmeans_restarts, .seed = s.seed};
    const auto km = ck::kmeans(policy, embedding, p);
    r.kmeans_labels = km.labels;
    r.kmeans_inertia = km.inertia;
  });
  if (!r.true_labels.empty()) {
    timed("scores", [&] {
      r.gmm_scores = score_against(r.true_labels, r.gmm.labels);
      r.kmeans_scores = score_against(r.true_labels, r.kmeans_labels);
    });
  }
  return r;
}

}  // namespace cluster_cells
