#pragma once
/// @file
/// Whole datasets from disk (namespace `cellkit::io`): the shared dataset folders
/// (`counts.mtx.gz`, `labels.tsv`, `genes.tsv`, `manifest.json`), 10x Genomics directories
/// (`matrix.mtx.gz`, `barcodes.tsv.gz`, `features.tsv.gz` or v2's `genes.tsv`), a bare `.mtx[.gz]`
/// file, HDF5 files (AnnData `.h5ad`, 10x `.h5`; need CELLKIT_HAVE_HDF5, see hdf5.hpp), and
/// `load_dataset(path)` that recognises which one it is given. Full description: docs/io.md.
///
///     auto data = cellkit::io::load_dataset<float>("../shared/data/10x_pbmc_top2000");
///     data.counts;        // csr_matrix<float>, cells x genes
///     data.labels;        // std::optional<label_table> (codes + category names)
///     data.raw_counts;    // std::optional<bool> from manifest.json ("raw_counts")
///
/// Every companion file is checked against the matrix (labels / barcodes per cell, genes /
/// features per gene) and, when present, the manifest's n_cells / n_genes; a mismatch is a
/// `file_error` naming the file: "labels.tsv: has 99 labels but the matrix has 100 cells".
/// With `require_counts` (default: the manifest's `raw_counts`, else false), negative or
/// non-integer values are errors.
/// Cost: that of the readers (streaming; memory O(nnz)). Synchronous, host only.

#include <cellkit/core/config.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/io/detail/line_reader.hpp>
#include <cellkit/io/file_error.hpp>
#include <cellkit/io/hdf5.hpp>
#include <cellkit/io/labels.hpp>
#include <cellkit/io/matrix_market.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace cellkit::io {

template <class T = float, class Index = std::int32_t>
struct dataset {
  csr_matrix<T, Index> counts;          ///< cells x genes
  std::optional<label_table> labels;    ///< when the source has labels
  std::vector<std::string> cell_names;  ///< barcodes (10x) or empty
  std::vector<std::string> gene_ids;    ///< gene / feature ids, or empty
  std::vector<std::string> gene_names;  ///< 10x feature names (symbols), or empty
  std::optional<bool> raw_counts;       ///< the manifest's "raw_counts" (true: integer UMI counts)
  std::string name;                     ///< the manifest's "name", else the folder or file name
  std::string source;                   ///< the path given
};

struct dataset_params {
  /// Require non-negative integer values; default: the manifest's raw_counts, else false.
  std::optional<bool> require_counts = std::nullopt;
  /// `.h5ad` (also a folder's counts.h5ad without labels.tsv): the obs column to take the labels
  /// from; empty: the first of cell_type, celltype, labels, label, cluster that exists, else none.
  std::string label_column = {};
};

namespace detail {

/// The first existing of `dir / candidates...`, or "" when none exists.
inline std::string first_existing(const std::filesystem::path& dir, std::initializer_list<const char*> candidates) {
  for (const char* c : candidates) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir / c, ec)) return (dir / c).string();
  }
  return {};
}

/// The few manifest.json fields a loader needs, found by pattern (the manifests are flat JSON
/// written by a script; a full JSON parser is not worth a dependency).
struct manifest_fields {
  std::optional<std::string> name;
  std::optional<bool> raw_counts;
  std::optional<std::int64_t> n_cells;
  std::optional<std::int64_t> n_genes;
};

inline manifest_fields read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw file_error(path, 0, "cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  manifest_fields fields;
  std::smatch m;
  if (std::regex_search(text, m, std::regex(R"re("name"\s*:\s*"([^"]*)")re"))) fields.name = m[1].str();
  if (std::regex_search(text, m, std::regex(R"re("raw_counts"\s*:\s*(true|false))re")))
    fields.raw_counts = m[1].str() == "true";
  if (std::regex_search(text, m, std::regex(R"re("n_cells"\s*:\s*([0-9]+))re")))
    fields.n_cells = std::stoll(m[1].str());
  if (std::regex_search(text, m, std::regex(R"re("n_genes"\s*:\s*([0-9]+))re")))
    fields.n_genes = std::stoll(m[1].str());
  return fields;
}

/// Reads an AnnData file into `data` (counts, names and, when `with_labels`, the labels of
/// `params.label_column` or of the first default label column present).
template <class T, class Index>
void read_h5ad_into(const std::string& path, const dataset_params& params, bool require_counts, bool with_labels,
                    dataset<T, Index>& data) {
  std::string column = params.label_column;
  if (with_labels && column.empty()) {
    const std::vector<std::string> present = h5ad_obs_columns(path);
    for (const char* candidate : {"cell_type", "celltype", "labels", "label", "cluster"}) {
      if (std::find(present.begin(), present.end(), candidate) != present.end()) {
        column = candidate;
        break;
      }
    }
  }
  std::vector<std::string> columns;
  if (with_labels && !column.empty()) columns.push_back(column);
  auto contents = read_h5ad<T, Index>(path, {.label_columns = columns, .require_counts = require_counts});
  data.counts = std::move(contents.counts);
  data.cell_names = std::move(contents.cell_names);
  data.gene_ids = std::move(contents.gene_ids);
  data.gene_names = std::move(contents.gene_names);
  if (!columns.empty()) data.labels = std::move(contents.labels.at(column));
}

}  // namespace detail

/// A shared-data folder: `counts.mtx[.gz]` or `counts.h5ad` (cells x genes) and, when present,
/// `labels.tsv`, `genes.tsv`, `manifest.json`. With counts.h5ad, labels.tsv (when present) wins
/// over the obs label column. Throws `file_error`.
template <class T = float, class Index = std::int32_t>
dataset<T, Index> load_dataset_folder(const std::string& folder, const dataset_params& params = {}) {
  const std::filesystem::path dir(folder);
  dataset<T, Index> data;
  data.source = folder;
  data.name = dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
  detail::manifest_fields manifest;
  const std::string manifest_path = detail::first_existing(dir, {"manifest.json"});
  if (!manifest_path.empty()) {
    manifest = detail::read_manifest(manifest_path);
    if (manifest.name) data.name = *manifest.name;
    data.raw_counts = manifest.raw_counts;
  }
  const std::string counts_path = detail::first_existing(dir, {"counts.mtx.gz", "counts.mtx", "counts.h5ad"});
  if (counts_path.empty()) throw file_error(folder, 0, "has no counts.mtx.gz, counts.mtx or counts.h5ad");
  const bool counts_required = params.require_counts.value_or(data.raw_counts.value_or(false));
  const std::string labels_path = detail::first_existing(dir, {"labels.tsv", "labels.tsv.gz"});
  if (counts_path.ends_with(".h5ad")) {
    detail::read_h5ad_into(counts_path, params, counts_required, labels_path.empty(), data);
  } else {
    data.counts = read_matrix_market<T, Index>(counts_path, {.require_counts = counts_required});
  }
  if (manifest.n_cells && *manifest.n_cells != data.counts.rows()) {
    throw file_error(manifest_path, 0,
                     "n_cells = " + std::to_string(*manifest.n_cells) + " but " + counts_path + " has " +
                         std::to_string(data.counts.rows()) + " rows");
  }
  if (manifest.n_genes && *manifest.n_genes != data.counts.cols()) {
    throw file_error(manifest_path, 0,
                     "n_genes = " + std::to_string(*manifest.n_genes) + " but " + counts_path + " has " +
                         std::to_string(data.counts.cols()) + " columns");
  }
  if (!labels_path.empty()) data.labels = read_labels(labels_path, {.expected_count = data.counts.rows()});
  const std::string genes_path = detail::first_existing(dir, {"genes.tsv", "genes.tsv.gz"});
  if (!genes_path.empty()) data.gene_ids = read_names(genes_path, {.expected_count = data.counts.cols()});
  return data;
}

/// A 10x Genomics matrix directory (Cell Ranger >= 3: matrix.mtx.gz, barcodes.tsv.gz,
/// features.tsv.gz; Cell Ranger 2: matrix.mtx, barcodes.tsv, genes.tsv). The matrix is genes x
/// cells on disk and cells x genes in the result. Throws `file_error`.
template <class T = float, class Index = std::int32_t>
dataset<T, Index> load_10x_directory(const std::string& folder, const dataset_params& params = {}) {
  const std::filesystem::path dir(folder);
  dataset<T, Index> data;
  data.source = folder;
  data.name = dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
  const std::string matrix_path = detail::first_existing(dir, {"matrix.mtx.gz", "matrix.mtx"});
  if (matrix_path.empty()) throw file_error(folder, 0, "has no matrix.mtx.gz or matrix.mtx (not a 10x directory)");
  const std::string barcodes_path = detail::first_existing(dir, {"barcodes.tsv.gz", "barcodes.tsv"});
  if (barcodes_path.empty()) throw file_error(folder, 0, "has no barcodes.tsv.gz or barcodes.tsv");
  const std::string features_path =
      detail::first_existing(dir, {"features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv"});
  if (features_path.empty()) throw file_error(folder, 0, "has no features.tsv.gz or genes.tsv");
  // 10x matrices are UMI counts: integers unless the caller says otherwise.
  data.raw_counts = params.require_counts.value_or(true);
  data.counts = read_matrix_market<T, Index>(matrix_path, {.genes_by_cells = true, .require_counts = *data.raw_counts});
  data.cell_names = read_names(barcodes_path, {.expected_count = data.counts.rows(), .counted = "cells"});
  data.gene_ids = read_names(features_path, {.expected_count = data.counts.cols()});
  // The symbol is the second field when there is one (both features.tsv and v2 genes.tsv).
  detail::line_reader probe(features_path);
  std::string_view first;
  std::vector<std::string_view> fields;
  if (probe.next(first)) detail::split_tabs(first, fields);
  if (fields.size() >= 2) data.gene_names = read_names(features_path, {.column = 1});
  return data;
}

/// Loads whatever `path` is: a shared-data folder (has counts.mtx[.gz] or counts.h5ad), a 10x
/// directory (has matrix.mtx[.gz]), an HDF5 file (recognised by its signature: `.h5ad` by name is
/// AnnData, anything else a 10x `.h5`), or a single .mtx[.gz] file (cells x genes). Throws
/// `file_error`, also for a path that does not exist or an HDF5 file when cellkit was built
/// without HDF5.
template <class T = float, class Index = std::int32_t>
dataset<T, Index> load_dataset(const std::string& path, const dataset_params& params = {}) {
  std::error_code ec;
  const std::filesystem::path p(path);
  if (std::filesystem::is_directory(p, ec)) {
    if (!detail::first_existing(p, {"counts.mtx.gz", "counts.mtx", "counts.h5ad"}).empty()) {
      return load_dataset_folder<T, Index>(path, params);
    }
    if (!detail::first_existing(p, {"matrix.mtx.gz", "matrix.mtx"}).empty()) {
      return load_10x_directory<T, Index>(path, params);
    }
    throw file_error(path, 0,
                     "is a directory without counts.mtx[.gz] or counts.h5ad (dataset folder) or matrix.mtx[.gz] (10x)");
  }
  if (!std::filesystem::exists(p, ec)) throw file_error(path, 0, "does not exist");
  dataset<T, Index> data;
  data.source = path;
  data.name = p.filename().string();
  const std::string extension = p.extension().string();
  if (extension == ".h5ad" || extension == ".h5" || detail::has_hdf5_signature(path)) {
    if (extension == ".h5ad") {
      detail::read_h5ad_into(path, params, params.require_counts.value_or(false), true, data);
      data.raw_counts = params.require_counts;
    } else {
      // 10x matrices are UMI counts: integers unless the caller says otherwise (as load_10x_directory).
      data.raw_counts = params.require_counts.value_or(true);
      auto contents = read_10x_h5<T, Index>(path, {.require_counts = *data.raw_counts});
      data.counts = std::move(contents.counts);
      data.cell_names = std::move(contents.cell_names);
      data.gene_ids = std::move(contents.gene_ids);
      data.gene_names = std::move(contents.gene_names);
    }
    return data;
  }
  data.counts = read_matrix_market<T, Index>(path, {.require_counts = params.require_counts.value_or(false)});
  data.raw_counts = params.require_counts;
  return data;
}

}  // namespace cellkit::io
