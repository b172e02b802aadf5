#pragma once
/// @file
/// HDF5 count matrices (namespace `cellkit::io`): 10x Genomics `.h5` files and AnnData `.h5ad`
/// files, read into a cells x genes `csr_matrix` with cell and gene names and, for `.h5ad`, the obs
/// categorical columns as labels. Needs libhdf5 (CMake defines `CELLKIT_HAVE_HDF5` when it finds
/// it); without it the readers exist and throw a `file_error` saying so. Full description: docs/io.md.
///
///     auto tenx = cellkit::io::read_10x_h5<float>("filtered_feature_bc_matrix.h5");
///     auto adata = cellkit::io::read_h5ad<float>("pbmc.h5ad");
///     adata.counts;                        // csr_matrix<float>, cells x genes
///     adata.labels.at("cell_type").codes;  // every categorical obs column, by name
///
/// ## Formats
/// - **10x `.h5`**, Cell Ranger >= 3: `matrix/{data, indices, indptr, shape, barcodes}` and
///   `matrix/features/{id, name}`; Cell Ranger 2: `<genome>/{data, indices, indptr, shape, barcodes,
///   genes, gene_names}`. The matrix is genes x cells in CSC form on disk, which is the cells x genes
///   CSR matrix: no conversion. Counts are required by default (`tenx_h5_params::require_counts`).
/// - **AnnData `.h5ad`** (anndata >= 0.7): the matrix (`h5ad_params::matrix`, default `X`; also
///   `layers/<name>` or `raw/X`) is a group with `encoding-type` `csr_matrix` or `csc_matrix` (or the
///   older `h5sparse_format`) holding `data`, `indices`, `indptr` and a `shape` attribute, or a dense
///   2-D dataset. Cell names: obs's index (the dataset its `_index` attribute names); gene names:
///   var's index (raw/var's for `raw/X`); gene ids: var's `gene_ids` column when there is one.
///   Labels: obs columns in anndata >= 0.8's categorical layout (a group with `categories` and
///   `codes`) or 0.7's (`obs/__categories/<column>` + a codes dataset); a code of -1 (missing) maps
///   to the category `nan` (appended last unless one exists), so every code is valid.
/// - Element types: integer or float datasets of any width (converted to `T` through double);
///   indices and indptr of any integer width; strings fixed or variable length, ASCII or UTF-8.
///   Unsorted column indices within a row are sorted and duplicate entries summed (as SciPy does).
///
/// ## Errors
/// `file_error` with the message `<path>: <object>: <problem>`, e.g.
/// `x.h5ad: /X/indptr: decreases at entry 3 (4 then 2)`: a missing file, a file that is not HDF5
/// (or is truncated), missing groups or datasets, an indptr that does not have rows + 1 entries,
/// does not start at 0, decreases or does not end at the number of entries, indices outside the
/// shape, lengths that disagree (data vs indices, names or codes vs the matrix), an unsupported
/// dtype or encoding, non-finite values, non-counts with `require_counts`, codes outside
/// [-1, categories), sizes that do not fit `Index`. HDF5's own error printing is switched off while
/// a reader runs (and restored afterwards); its innermost message is added to the `file_error`.
///
/// ## Cost
/// Streaming in hyperslabs of `chunk_entries` elements (default 1 Mi): memory is the result plus the
/// indptr (O(rows)) plus one chunk per array, never the file. A CSC `.h5ad` matrix is transposed by
/// a counting sort while it is read (two passes over `indices`). Time O(nnz + rows + cols) (dense:
/// O(rows x cols)). Synchronous, host only, single-threaded. libhdf5 as Debian builds it is not
/// thread-safe: do not call these from several threads at once.

#include <cellkit/core/config.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/io/detail/hdf5_file.hpp>
#include <cellkit/io/detail/hdf5_readers.hpp>
#include <cellkit/io/file_error.hpp>
#include <cellkit/io/labels.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::io {

/// True when cellkit was built with libhdf5 (the readers below work); false: they throw.
#if defined(CELLKIT_HAVE_HDF5)
inline constexpr bool hdf5_available = true;
#else
inline constexpr bool hdf5_available = false;
#endif

/// A matrix read from an HDF5 file, with its names and annotations.
template <class T = float, class Index = std::int32_t>
struct annotated_matrix {
  csr_matrix<T, Index> counts;                ///< cells x genes
  std::vector<std::string> cell_names;        ///< barcodes / obs index (empty when the file has none)
  std::vector<std::string> gene_ids;          ///< 10x feature ids / var's gene_ids column, or empty
  std::vector<std::string> gene_names;        ///< 10x feature names / var index, or empty
  std::map<std::string, label_table> labels;  ///< .h5ad obs columns by name (10x: none)
};

struct tenx_h5_params {
  bool require_counts = true;                        ///< every value must be a non-negative integer
  std::size_t chunk_entries = std::size_t(1) << 20;  ///< elements per HDF5 read (the memory bound)
};

struct h5ad_params {
  std::string matrix = "X";  ///< the matrix to read: "X", "layers/<name>" or "raw/X"
  /// obs columns to return as labels; nullopt: every categorical column. A listed column must exist
  /// (strings or numbers that are not categorical get codes from their sorted distinct values).
  std::optional<std::vector<std::string>> label_columns = std::nullopt;
  bool require_counts = false;                       ///< every value must be a non-negative integer
  std::size_t chunk_entries = std::size_t(1) << 20;  ///< elements per HDF5 read (the memory bound)
};

namespace detail {

[[noreturn]] inline void throw_without_hdf5(const std::string& path, const char* format) {
  throw file_error(path, 0,
                   std::string("is ") + format +
                       " file, but cellkit was built without HDF5 (CELLKIT_HAVE_HDF5 is not defined: install "
                       "libhdf5-dev and re-run CMake)");
}

}  // namespace detail

/// Reads a 10x Genomics `.h5` file (Cell Ranger 2 or >= 3) as cells x genes, with the barcodes as
/// cell names and the feature ids and names. Throws `file_error` (see the file comment).
template <class T = float, class Index = std::int32_t>
annotated_matrix<T, Index> read_10x_h5(const std::string& path, const tenx_h5_params& params = {}) {
  static_assert(std::is_floating_point_v<T>, "read_10x_h5: T must be float or double");
#if defined(CELLKIT_HAVE_HDF5)
  namespace h5 = detail::h5;
  const h5::quiet_errors quiet;
  const h5::file f(path);
  std::string group;
  std::string ids = "/matrix/features/id";
  std::string names = "/matrix/features/name";
  if (f.kind("/matrix") == h5::object_kind::group) {
    group = "/matrix";
  } else {
    for (const std::string& member : f.members("/")) {  // Cell Ranger 2: one group per genome
      if (f.kind("/" + member + "/indptr") == h5::object_kind::dataset &&
          f.kind("/" + member + "/barcodes") == h5::object_kind::dataset) {
        group = "/" + member;
        ids = group + "/genes";
        names = group + "/gene_names";
        break;
      }
    }
  }
  if (group.empty()) {
    f.fail(
        "/",
        "has no 'matrix' group (Cell Ranger >= 3) and no genome group holding 'indptr' and 'barcodes' (Cell Ranger 2): "
        "not a 10x Genomics .h5 file");
  }
  const std::vector<std::int64_t> shape =
      h5::read_integers(f, group + "/shape", params.chunk_entries, [](std::int64_t length) -> std::string {
        if (length == 2) return {};
        return "should hold 2 extents (genes, cells), has " + std::to_string(length) + " entries";
      });
  if (shape[0] < 0 || shape[1] < 0) f.fail(group + "/shape", "has a negative extent");
  annotated_matrix<T, Index> result;
  result.counts =
      h5::read_compressed<T, Index>(f, group, shape[1], shape[0], "cells (columns of genes x cells)", false,
                                    {.require_counts = params.require_counts, .chunk_entries = params.chunk_entries});
  result.cell_names = h5::read_names_column(f, group + "/barcodes", shape[1], "cells", params.chunk_entries);
  result.gene_ids = h5::read_names_column(f, ids, shape[0], "genes", params.chunk_entries);
  if (f.kind(names) != h5::object_kind::missing) {
    result.gene_names = h5::read_names_column(f, names, shape[0], "genes", params.chunk_entries);
  }
  return result;
#else
  (void)params;
  detail::throw_without_hdf5(path, "a 10x Genomics HDF5 (.h5)");
#endif
}

/// Reads an AnnData `.h5ad` file's matrix (cells x genes) with obs / var names and the obs label
/// columns `params.label_columns` (default: every categorical one). Throws `file_error` (see the
/// file comment).
template <class T = float, class Index = std::int32_t>
annotated_matrix<T, Index> read_h5ad(const std::string& path, const h5ad_params& params = {}) {
  static_assert(std::is_floating_point_v<T>, "read_h5ad: T must be float or double");
#if defined(CELLKIT_HAVE_HDF5)
  namespace h5 = detail::h5;
  const h5::quiet_errors quiet;
  const h5::file f(path);
  const h5::read_checks checks{.require_counts = params.require_counts, .chunk_entries = params.chunk_entries};
  const std::string matrix = "/" + params.matrix;
  annotated_matrix<T, Index> result;
  switch (f.kind(matrix)) {
    case h5::object_kind::dataset:
      result.counts = h5::read_dense<T, Index>(f, matrix, checks);
      break;
    case h5::object_kind::group: {
      std::string encoding;
      if (f.has_attribute(matrix, "encoding-type")) {
        encoding = f.string_attribute(matrix, "encoding-type");
      } else if (f.has_attribute(matrix, "h5sparse_format")) {  // anndata < 0.7
        encoding = f.string_attribute(matrix, "h5sparse_format") + "_matrix";
      } else {
        f.fail(matrix, "has no 'encoding-type' attribute (expected csr_matrix or csc_matrix)");
      }
      if (encoding != "csr_matrix" && encoding != "csc_matrix") {
        f.fail(matrix,
               "unsupported encoding-type '" + encoding + "' (expected csr_matrix, csc_matrix or a dense 2-D dataset)");
      }
      const char* shape_name = f.has_attribute(matrix, "shape") ? "shape" : "h5sparse_shape";
      if (!f.has_attribute(matrix, shape_name)) f.fail(matrix, "has no 'shape' attribute");
      const std::vector<std::int64_t> shape = f.integer_array_attribute(matrix, shape_name);
      if (shape.size() != 2 || shape[0] < 0 || shape[1] < 0) {
        f.fail(matrix, std::string("attribute '") + shape_name +
                           "' should hold 2 non-negative extents (rows, columns), has " + std::to_string(shape.size()));
      }
      result.counts = encoding == "csr_matrix"
                          ? h5::read_compressed<T, Index>(f, matrix, shape[0], shape[1], "rows", false, checks)
                          : h5::read_compressed<T, Index>(f, matrix, shape[1], shape[0], "columns", true, checks);
      break;
    }
    default:
      f.fail(matrix, "missing (no matrix here: is this an AnnData .h5ad file?)");
  }
  const std::int64_t cells = result.counts.rows();
  const std::int64_t genes = result.counts.cols();
  const std::string var = params.matrix.rfind("raw/", 0) == 0 ? "/raw/var" : "/var";
  result.cell_names = h5::read_dataframe_index(f, "/obs", cells, "cells", params.chunk_entries);
  result.gene_names = h5::read_dataframe_index(f, var, genes, "genes", params.chunk_entries);
  if (f.kind(var + "/gene_ids") != h5::object_kind::missing) {
    result.gene_ids = h5::read_names_column(f, var + "/gene_ids", genes, "genes", params.chunk_entries);
  }
  const std::vector<std::string> columns =
      params.label_columns ? *params.label_columns : h5::categorical_columns(f, "/obs");
  for (const std::string& column : columns) {
    result.labels[column] = h5::read_label_column(f, "/obs", column, cells, params.chunk_entries);
  }
  return result;
#else
  (void)params;
  detail::throw_without_hdf5(path, "an AnnData (.h5ad)");
#endif
}

/// The names of the columns of an AnnData file's obs dataframe (every member but the index and
/// anndata 0.7's `__categories`), sorted; to choose a label column without reading them all.
/// Throws `file_error`.
inline std::vector<std::string> h5ad_obs_columns(const std::string& path) {
#if defined(CELLKIT_HAVE_HDF5)
  namespace h5 = detail::h5;
  const h5::quiet_errors quiet;
  const h5::file f(path);
  if (f.kind("/obs") != h5::object_kind::group) return {};
  const std::string index = f.has_attribute("/obs", "_index") ? f.string_attribute("/obs", "_index") : "_index";
  std::vector<std::string> columns;
  for (std::string& name : f.members("/obs")) {
    if (name != index && name != "__categories") columns.push_back(std::move(name));
  }
  return columns;
#else
  detail::throw_without_hdf5(path, "an AnnData (.h5ad)");
#endif
}

}  // namespace cellkit::io
