#pragma once
// What the count-model example programs' main() share: the input (a dataset path, or simulated
// counts when none is given), the default number of clusters, and the TSV outputs (a matrix per
// cell, and the labels file), each written atomically through pending_file.

#include "cli.hpp"

#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/io/dataset.hpp>
#include <cellkit/likelihood/simulate.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace examples {

/// Raw counts (cells x genes), their labels (one per cell, or empty) and the dataset's name.
struct raw_counts {
  cellkit::csr_matrix<float> counts;
  std::vector<cellkit::index_t> labels;
  std::string name;
};

/// Reads `path` (a dataset folder, a 10x directory or .h5, an .h5ad or a .mtx[.gz]; raw counts
/// required) or, when it is empty, simulates `cells` cells x 2000 genes in 6 cell types from
/// `seed` + 1. Says which on stderr.
template <class Policy>
raw_counts read_or_simulate(const Policy& policy, const std::string& path, cellkit::index_t cells, std::uint64_t seed) {
  raw_counts out;
  if (path.empty()) {
    std::fprintf(stderr, "no DATA given: simulating %lld cells x 2000 genes in 6 cell types (seed %llu)\n",
                 static_cast<long long>(cells), static_cast<unsigned long long>(seed));
    auto sim = cellkit::likelihood::simulate_counts<float>(
        policy, {.cells = cells, .genes = 2000, .groups = 6, .de_prob = 0.1, .de_loc = 0.8, .seed = seed + 1});
    out.counts = std::move(sim.counts);
    out.labels.assign(sim.labels.begin(), sim.labels.end());
    out.name = "simulated";
  } else {
    std::fprintf(stderr, "reading %s\n", path.c_str());
    cellkit::io::dataset_params read;  // the other fields at their defaults
    read.require_counts = true;
    auto d = cellkit::io::load_dataset<float>(path, read);
    out.counts = std::move(d.counts);
    if (d.labels) out.labels = d.labels->codes;
    out.name = d.name;
  }
  return out;
}

/// `requested` when > 0, else the number of distinct labels, else 8 (unlabelled data).
inline cellkit::index_t choose_clusters(cellkit::index_t requested, const std::vector<cellkit::index_t>& labels) {
  if (requested > 0) return requested;
  if (labels.empty()) return 8;
  return static_cast<cellkit::index_t>(std::set<cellkit::index_t>(labels.begin(), labels.end()).size());
}

/// A header line "cell prefix0 prefix1 ..." and one row per cell: its index, then `cols` values.
inline void write_matrix(const std::filesystem::path& path, const std::vector<cellkit::index_t>& cells,
                         const float* values, cellkit::index_t cols, const char* prefix) {
  pending_file f(path);
  auto& s = f.stream();
  s << "cell";
  for (cellkit::index_t j = 0; j < cols; ++j) s << '\t' << prefix << j;
  s << '\n';
  for (std::size_t i = 0; i < cells.size(); ++i) {
    s << cells[i];
    for (cellkit::index_t j = 0; j < cols; ++j) s << '\t' << values[i * static_cast<std::size_t>(cols) + j];
    s << '\n';
  }
  f.commit();
}

/// "cell label kmeans_label [true_label]": per kept cell its predicted label, the k-means label the
/// clustering started from and, when known, the true label.
inline void write_labels(const std::filesystem::path& path, const std::vector<cellkit::index_t>& cells,
                         const std::vector<cellkit::index_t>& labels,
                         const std::vector<cellkit::index_t>& kmeans_labels,
                         const std::vector<cellkit::index_t>& true_labels) {
  pending_file f(path);
  auto& s = f.stream();
  s << "cell\tlabel\tkmeans_label" << (true_labels.empty() ? "" : "\ttrue_label") << '\n';
  for (std::size_t i = 0; i < cells.size(); ++i) {
    s << cells[i] << '\t' << labels[i] << '\t' << kmeans_labels[i];
    if (!true_labels.empty()) s << '\t' << true_labels[i];
    s << '\n';
  }
  f.commit();
}

}  // namespace examples
