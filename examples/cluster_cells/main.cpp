// cluster_cells: the main demo. Clusters single cells end to end with cellkit's components:
//
//   counts -> filter -> normalize_total -> log1p -> highly variable genes -> scale (clip 10)
//          -> PCA (50) -> Gaussian mixtures for K = 2..20, K by minimum BIC
//          -> hard labels (highest membership) and per-cell membership entropy
//          -> k-means with the same K for comparison -> ARI / NMI / homogeneity / completeness
//
// Usage:
//   cluster_cells [DATA] [--k K | --k-min A --k-max B] [--n-init N] [--components N] [--hvg N]
//                 [--threads T] [--seed S] [--cells N] [--input counts|linear|log] [--out DIR]
// DATA: a dataset folder (counts.mtx.gz, labels.tsv, ...), a 10x Genomics directory, or a .mtx[.gz]
// file. Without DATA it simulates a labelled dataset (--cells cells, 5000 genes, 6 cell types) with
// cellkit's count simulator, so the demo runs anywhere.
// --n-init N: EM starts per K (default 1), each from its own k-means++ seeding; the start with the
// highest lower bound is kept. Applies to every K of the sweep and to a fixed --k.
// --input says what the values are (default: from the data): counts are normalised to the median
// total and log1p-transformed; linear expression (RPKM, TPM) only log1p-transformed; log-normalised
// data used as they are. Without --input: counts when the manifest says raw_counts (or integer
// values without a manifest), else log-normalised when every value is <= 50, else linear.
//
// Prints a progress display, a summary table and writes DIR (default cluster_cells_out/):
//   cells.tsv   per cell: index, true label, GMM label, k-means label, entropy, memberships
//   bic.tsv     per K: BIC, AIC, ICL, log-likelihood, iterations, converged, seconds
//   figure.svg  PC1/PC2 coloured by cluster and by entropy, and the BIC curve
// Files are written to temporaries and renamed at the end: an error leaves nothing half-written.
// Any error prints one line "cluster_cells: <file or step>: <problem>" and exits with status 1.

#include "../common/cli.hpp"
#include "figure.hpp"
#include "pipeline.hpp"

#include <cellkit/io/dataset.hpp>
#include <cellkit/likelihood/simulate.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

using examples::pending_file;

using cellkit::index_t;

struct options {
  std::string data;
  std::string input;  // counts | linear | log, or empty: decided from the data
  std::string out = "cluster_cells_out";
  index_t cells = 6000;
  cluster_cells::settings settings;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr,
               "cluster_cells: %s\nusage: cluster_cells [DATA] [--k K | --k-min A --k-max B] [--n-init N] "
               "[--components N] [--hvg N] [--threads T] [--seed S] [--cells N] [--input counts|linear|log] "
               "[--out DIR]\n",
               message.c_str());
  std::exit(2);
}

long long parse_integer(const std::string& flag, const std::string& text) {
  const auto v = examples::parse_non_negative_integer(text);
  if (!v) usage_error(flag + " expects a non-negative integer, got '" + text + "'");
  return *v;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--k") {
      o.settings.k_min = o.settings.k_max = static_cast<index_t>(parse_integer(a, value()));
    } else if (a == "--k-min") {
      o.settings.k_min = static_cast<index_t>(parse_integer(a, value()));
    } else if (a == "--k-max") {
      o.settings.k_max = static_cast<index_t>(parse_integer(a, value()));
    } else if (a == "--n-init") {
      const long long n = parse_integer(a, value());
      if (n < 1 || n > 1000000) usage_error("--n-init must be between 1 and 1000000");
      o.settings.gmm_restarts = static_cast<int>(n);
    } else if (a == "--components") {
      o.settings.components = static_cast<index_t>(parse_integer(a, value()));
    } else if (a == "--hvg") {
      o.settings.hvg = static_cast<index_t>(parse_integer(a, value()));
    } else if (a == "--threads") {
      o.settings.threads = static_cast<int>(parse_integer(a, value()));
    } else if (a == "--seed") {
      o.settings.seed = static_cast<std::uint64_t>(parse_integer(a, value()));
    } else if (a == "--cells") {
      o.cells = static_cast<index_t>(parse_integer(a, value()));
    } else if (a == "--input") {
      o.input = value();
      if (o.input != "counts" && o.input != "linear" && o.input != "log")
        usage_error("--input expects counts, linear or log, got '" + o.input + "'");
    } else if (a == "--out") {
      o.out = value();
    } else if (a == "-h" || a == "--help") {
      usage_error("clusters single cells (see the comment at the top of examples/cluster_cells/main.cpp)");
    } else if (!a.empty() && a[0] == '-') {
      usage_error("unknown option " + a);
    } else if (o.data.empty()) {
      o.data = a;
    } else {
      usage_error("more than one DATA argument");
    }
  }
  if (o.settings.k_min < 1 || o.settings.k_max < o.settings.k_min) usage_error("need 1 <= k-min <= k-max");
  if (o.settings.components < 1) usage_error("--components must be >= 1");
  if (o.settings.threads < 1) usage_error("--threads must be >= 1");
  return o;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (const double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse(argc, argv);
  const bool tty = isatty(fileno(stderr)) != 0;
  try {
    // ---- input ----------------------------------------------------------------------------------
    cellkit::csr_matrix<double> counts;
    std::vector<index_t> labels;
    std::string name;
    std::vector<std::string> categories;
    std::optional<bool> raw_counts;
    if (opt.data.empty()) {
      std::fprintf(stderr, "no DATA given: simulating %lld cells x 5000 genes in 6 cell types (seed %llu)\n",
                   static_cast<long long>(opt.cells), static_cast<unsigned long long>(opt.settings.seed));
      auto sim = cellkit::likelihood::simulate_counts<double>(
          cellkit::openmp{opt.settings.threads},
          // Stronger differential expression than the simulator's (Splatter's) defaults, in 10% of
          // 5000 genes: cell types a person would call distinct, found among the highly variable genes.
          {.cells = opt.cells,
           .genes = 5000,
           .groups = 6,
           .de_prob = 0.1,
           .de_loc = 1.5,
           .seed = opt.settings.seed + 1});
      counts = std::move(sim.counts);
      labels.assign(sim.labels.begin(), sim.labels.end());
      name = "simulated (cellkit::likelihood::simulate_counts)";
    } else {
      std::fprintf(stderr, "reading %s\n", opt.data.c_str());
      auto data = cellkit::io::load_dataset<double>(opt.data);
      counts = std::move(data.counts);
      raw_counts = data.raw_counts;
      if (data.labels) {
        labels = data.labels->codes;
        categories = data.labels->categories;
      }
      name = data.name;
    }
    cluster_cells::settings settings = opt.settings;
    if (!opt.input.empty()) {
      settings.input = opt.input == "counts"   ? cluster_cells::input_kind::counts
                       : opt.input == "linear" ? cluster_cells::input_kind::linear
                                               : cluster_cells::input_kind::log_normalised;
    } else {
      bool integers = true;
      double largest = 0;
      for (const double v : counts.values()) {
        integers = integers && v == std::floor(v);
        largest = std::max(largest, v);
      }
      const bool counts_like = raw_counts.value_or(integers);
      settings.input = counts_like       ? cluster_cells::input_kind::counts
                       : largest <= 50.0 ? cluster_cells::input_kind::log_normalised
                                         : cluster_cells::input_kind::linear;
    }
    std::fprintf(stderr, "%s: %lld cells x %lld genes, %lld nonzeros%s; values taken as %s\n", name.c_str(),
                 static_cast<long long>(counts.rows()), static_cast<long long>(counts.cols()),
                 static_cast<long long>(counts.nnz()), labels.empty() ? ", no labels" : ", labelled",
                 cluster_cells::to_string(settings.input));

    // ---- analysis -------------------------------------------------------------------------------
    auto progress = [&](const std::string& step, bool done, double seconds) {
      if (!done)
        std::fprintf(stderr, "  %-26s ...%s", step.c_str(), tty ? "" : "\n");
      else
        std::fprintf(stderr, "%s  %-26s %8.1f ms\n", tty ? "\r" : "", step.c_str(), seconds * 1e3);
    };
    auto on_fit = [&](const cellkit::cluster::gmm_select_progress& p) {
      const auto& row = *p.row;
      std::fprintf(stderr, "%s    GMM K = %2lld  BIC %12.1f  %3d iterations%s  (%zu/%zu)%s", tty ? "\r" : "",
                   static_cast<long long>(row.k), row.bic, row.n_iter, row.converged ? "" : " (not converged)", p.done,
                   p.total, tty ? "" : "\n");
    };
    const auto r = cluster_cells::run(counts, labels, settings, progress, on_fit);

    // ---- summary --------------------------------------------------------------------------------
    const auto& best = r.sweep.best;
    std::printf("\ncellkit cluster_cells: %s\n", name.c_str());
    std::printf("  cells %lld -> %lld after filtering; genes %lld -> %lld expressed -> %lld highly variable\n",
                static_cast<long long>(r.cells_in), static_cast<long long>(r.kept_cells.size()),
                static_cast<long long>(r.genes_in), static_cast<long long>(r.genes_kept),
                static_cast<long long>(r.hvg_used));
    double explained = 0;
    for (const double v : r.pca.explained_variance_ratio) explained += v;
    std::printf("  PCA: %lld components (%s solver), %.1f%% of the variance\n", static_cast<long long>(r.pca.k),
                r.pca.solver == cellkit::preprocess::pca_solver::exact ? "exact" : "randomised", 100 * explained);
    std::printf("\n  %4s  %14s  %14s  %10s  %5s\n", "K", "BIC", "AIC", "iterations", "");
    for (const auto& row : r.sweep.table)
      std::printf("  %4lld  %14.1f  %14.1f  %10d  %5s\n", static_cast<long long>(row.k), row.bic, row.aic, row.n_iter,
                  row.k == best.k ? "<- min BIC" : "");
    std::printf("\n  chosen K = %lld (minimum BIC)%s\n", static_cast<long long>(best.k),
                r.true_classes > 0 ? (", true number of cell types: " + std::to_string(r.true_classes)).c_str() : "");
    std::printf(
        "  mean membership entropy %.3f nats (0 = certain, log K = %.3f = uniform); %.1f%% of cells above 0.5\n",
        mean_of(r.gmm.entropy), std::log(static_cast<double>(best.k)),
        100.0 *
            static_cast<double>(
                std::count_if(r.gmm.entropy.begin(), r.gmm.entropy.end(), [](double e) { return e > 0.5; })) /
            static_cast<double>(r.gmm.entropy.size()));
    if (r.gmm_scores) {
      std::printf("\n  %-8s  %6s  %6s  %11s  %12s\n", "method", "ARI", "NMI", "homogeneity", "completeness");
      for (const auto& [label, s] : {std::pair{"GMM", *r.gmm_scores}, std::pair{"k-means", *r.kmeans_scores}})
        std::printf("  %-8s  %6.3f  %6.3f  %11.3f  %12.3f\n", label, s.ari, s.nmi, s.homogeneity, s.completeness);
    }
    double total = 0;
    std::printf("\n  timings (openmp, %d threads)\n", opt.settings.threads);
    for (const auto& t : r.times) {
      std::printf("    %-26s %9.1f ms\n", t.name.c_str(), t.seconds * 1e3);
      total += t.seconds;
    }
    std::printf("    %-26s %9.1f ms\n", "total", total * 1e3);

    // ---- files ----------------------------------------------------------------------------------
    const std::filesystem::path dir(opt.out);
    std::filesystem::create_directories(dir);
    {
      pending_file cells(dir / "cells.tsv"), bic(dir / "bic.tsv"), figure(dir / "figure.svg");
      auto& c = cells.stream();
      c << "cell\ttrue_label\tgmm_label\tkmeans_label\tentropy";
      for (index_t k = 0; k < best.k; ++k) c << "\tp" << k;
      c << '\n';
      c.precision(6);
      for (std::size_t i = 0; i < r.kept_cells.size(); ++i) {
        c << r.kept_cells[i] << '\t';
        if (r.true_labels.empty())
          c << "NA";
        else if (!categories.empty())
          c << categories[static_cast<std::size_t>(r.true_labels[i])];
        else
          c << r.true_labels[i];
        c << '\t' << r.gmm.labels[i] << '\t' << r.kmeans_labels[i] << '\t' << r.gmm.entropy[i];
        for (index_t k = 0; k < best.k; ++k) c << '\t' << r.gmm.memberships[i * static_cast<std::size_t>(best.k) + k];
        c << '\n';
      }
      auto& b = bic.stream();
      b.precision(12);
      b << "k\tbic\taic\ticl\tlog_likelihood\tn_iter\tconverged\tseconds\n";
      for (const auto& row : r.sweep.table)
        b << row.k << '\t' << row.bic << '\t' << row.aic << '\t' << row.icl << '\t' << row.log_likelihood << '\t'
          << row.n_iter << '\t' << (row.converged ? 1 : 0) << '\t' << row.seconds << '\n';
      cluster_cells::scatter_data d;
      const index_t pcs = r.pca.k;
      for (std::size_t i = 0; i < r.kept_cells.size(); ++i) {
        d.x.push_back(r.pca.scores[i * static_cast<std::size_t>(pcs)]);
        d.y.push_back(pcs > 1 ? r.pca.scores[i * static_cast<std::size_t>(pcs) + 1] : 0.0);
        d.cluster.push_back(static_cast<long>(r.gmm.labels[i]));
      }
      d.entropy = r.gmm.entropy;
      d.max_entropy = std::log(static_cast<double>(std::max<index_t>(2, best.k)));
      for (const auto& row : r.sweep.table) {
        d.curve_k.push_back(static_cast<long>(row.k));
        d.curve_bic.push_back(row.bic);
      }
      d.chosen_k = static_cast<long>(best.k);
      d.title = name + ": " + std::to_string(r.kept_cells.size()) + " cells, K = " + std::to_string(best.k);
      figure.stream() << cluster_cells::render_figure(d);
      cells.commit();
      bic.commit();
      figure.commit();
    }
    std::printf("\n  wrote %s/{cells.tsv, bic.tsv, figure.svg}\n", opt.out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%scluster_cells: %s\n", tty ? "\n" : "", e.what());
    return 1;
  }
}
