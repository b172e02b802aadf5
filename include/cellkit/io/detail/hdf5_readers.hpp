#pragma once
/// @file
/// Internal: the pieces of cellkit/io/hdf5.hpp's readers. Compressed sparse matrices (CSR as is, CSC
/// transposed by a counting sort), dense 2-D datasets, string and categorical columns, dataframe
/// indexes. Each reads its datasets in hyperslabs of `chunk_entries` elements, checks every value
/// against the structure it belongs to and reports the first problem through `file::fail`.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/io/detail/hdf5_file.hpp>
#include <cellkit/io/labels.hpp>

#if defined(CELLKIT_HAVE_HDF5)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace cellkit::io::detail::h5 {

struct read_checks {
  bool require_counts = false;
  std::size_t chunk_entries = std::size_t(1) << 20;
};

inline void require_rank(const file& f, const std::string& object, const dataset_shape& shape, std::size_t rank) {
  if (shape.dims.size() != rank) {
    f.fail(object, "should have " + std::to_string(rank) + " dimension" + (rank == 1 ? "" : "s") + ", has " +
                       file::rank_text(shape));
  }
}

inline void require_integers(const file& f, const std::string& object, const dataset_shape& shape) {
  if (shape.type_class != H5T_INTEGER) {
    f.fail(object, std::string("unsupported dtype: should be integers, is ") + class_name(shape.type_class));
  }
}

inline void require_numbers(const file& f, const std::string& object, const dataset_shape& shape) {
  if (shape.type_class != H5T_INTEGER && shape.type_class != H5T_FLOAT) {
    f.fail(object, std::string("unsupported dtype: should be integers or floats, is ") + class_name(shape.type_class));
  }
}

/// A whole 1-D integer dataset (indptr, shape: O(rows) entries, never the nonzeros). Its length is
/// checked before anything is read: `length_problem(length)` returns the problem ("" when fine).
template <class LengthProblem>
std::vector<std::int64_t> read_integers(const file& f, const std::string& object, std::size_t chunk_entries,
                                        LengthProblem&& length_problem) {
  const handle dataset = f.open_dataset(object);
  const dataset_shape shape = f.shape_of(object, dataset.get());
  require_rank(f, object, shape, 1);
  require_integers(f, object, shape);
  const std::string problem = length_problem(shape.length());
  if (!problem.empty()) f.fail(object, problem);
  std::vector<std::int64_t> values;
  values.reserve(static_cast<std::size_t>(shape.length()));
  f.read_chunks<std::int64_t>(object, dataset.get(), H5T_NATIVE_INT64, shape.length(), chunk_entries,
                              [&](const std::int64_t* chunk, std::int64_t, std::int64_t count) {
                                values.insert(values.end(), chunk, chunk + count);
                              });
  return values;
}

/// The stored value `value` (entry `entry` of `object`) as a `T`, after the checks every reader makes.
template <class T>
T checked_value(const file& f, const std::string& object, std::int64_t entry, double value, bool require_counts) {
  if (!std::isfinite(value))
    f.fail(object, "entry " + std::to_string(entry) + " is " + number_text(value) + " (not finite)");
  if (require_counts && (value < 0.0 || value != std::floor(value))) {
    f.fail(object, "entry " + std::to_string(entry) + " is " + number_text(value) +
                       ", not a count (counts must be non-negative integers)");
  }
  if (std::fabs(value) > static_cast<double>(std::numeric_limits<T>::max())) {
    f.fail(object,
           "entry " + std::to_string(entry) + " is " + number_text(value) + ", which overflows the element type");
  }
  return static_cast<T>(value);
}

template <class Index>
void require_index_fits(const file& f, const std::string& object, std::int64_t rows, std::int64_t cols,
                        std::int64_t nnz) {
  constexpr auto index_max = static_cast<std::int64_t>(std::numeric_limits<Index>::max());
  if (rows > index_max || cols > index_max || nnz > index_max) {
    f.fail(object, "the matrix (" + std::to_string(rows) + " x " + std::to_string(cols) + ", " + std::to_string(nnz) +
                       " stored entries) does not fit the index type (max " + std::to_string(index_max) +
                       "); read it with a 64-bit Index");
  }
}

/// Sorts the columns of each row (stably) and sums duplicate columns, as SciPy's sum_duplicates
/// does; O(nnz) and no copy when every row is already strictly increasing (the usual case).
template <class T, class Index>
csr_matrix<T, Index> finish_rows(index_t rows, index_t cols, host_buffer<Index> indptr, host_buffer<Index> indices,
                                 host_buffer<T> values) {
  bool canonical = true;
  for (index_t i = 0; i < rows && canonical; ++i) {
    for (auto p = static_cast<index_t>(indptr[i]) + 1; p < static_cast<index_t>(indptr[i + 1]); ++p) {
      if (indices[p - 1] >= indices[p]) {
        canonical = false;
        break;
      }
    }
  }
  if (!canonical) {
    std::vector<std::pair<Index, T>> row;
    index_t write = 0;
    auto begin = static_cast<index_t>(indptr[0]);
    for (index_t i = 0; i < rows; ++i) {
      const auto end = static_cast<index_t>(indptr[i + 1]);
      if (!std::is_sorted(indices.begin() + begin, indices.begin() + end)) {
        row.clear();
        for (index_t p = begin; p < end; ++p) row.emplace_back(indices[p], values[p]);
        std::stable_sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        for (index_t p = begin; p < end; ++p) {
          indices[p] = row[static_cast<std::size_t>(p - begin)].first;
          values[p] = row[static_cast<std::size_t>(p - begin)].second;
        }
      }
      const index_t row_start = write;
      for (index_t p = begin; p < end; ++p) {
        if (write > row_start && indices[write - 1] == indices[p]) {
          values[write - 1] = static_cast<T>(values[write - 1] + values[p]);
        } else {
          indices[write] = indices[p];
          values[write] = values[p];
          ++write;
        }
      }
      indptr[i] = static_cast<Index>(row_start);
      begin = end;
    }
    indptr[rows] = static_cast<Index>(write);
    if (write < indices.size()) {
      host_buffer<Index> exact_indices(write, uninitialized);
      host_buffer<T> exact_values(write, uninitialized);
      std::copy(indices.begin(), indices.begin() + write, exact_indices.data());
      std::copy(values.begin(), values.begin() + write, exact_values.data());
      indices = std::move(exact_indices);
      values = std::move(exact_values);
    }
  }
  return csr_matrix<T, Index>(rows, cols, std::move(indptr), std::move(indices), std::move(values));
}

/// A compressed sparse matrix stored as `group`/{data, indices, indptr}: `major` compressed slices
/// (`major_name`: "rows", "cells", ...) over `minor` positions. `transpose` = false: the slices are
/// the result's rows (CSR, or a genes x cells CSC read as cells x genes); true: they are its columns
/// (CSC), and a counting sort over `indices` builds the rows. Memory: the result plus indptr plus
/// one chunk of each array (and O(minor) counts when transposing).
template <class T, class Index>
csr_matrix<T, Index> read_compressed(const file& f, const std::string& group, std::int64_t major, std::int64_t minor,
                                     const char* major_name, bool transpose, const read_checks& checks) {
  const std::string data_name = group + "/data";
  const std::string indices_name = group + "/indices";
  const std::string indptr_name = group + "/indptr";
  const handle data = f.open_dataset(data_name);
  const handle indices = f.open_dataset(indices_name);
  const dataset_shape data_shape = f.shape_of(data_name, data.get());
  const dataset_shape indices_shape = f.shape_of(indices_name, indices.get());
  require_rank(f, data_name, data_shape, 1);
  require_numbers(f, data_name, data_shape);
  require_rank(f, indices_name, indices_shape, 1);
  require_integers(f, indices_name, indices_shape);
  const std::int64_t nnz = data_shape.length();
  if (indices_shape.length() != nnz) {
    f.fail(indices_name, "has " + std::to_string(indices_shape.length()) + " entries but " + data_name + " has " +
                             std::to_string(nnz));
  }
  const std::int64_t rows = transpose ? minor : major;
  const std::int64_t cols = transpose ? major : minor;
  require_index_fits<Index>(f, group, rows, cols, nnz);

  // The length is checked before reading, so that a wrong shape cannot make us allocate.
  const std::vector<std::int64_t> pointers =
      read_integers(f, indptr_name, checks.chunk_entries, [&](std::int64_t length) -> std::string {
        if (length == major + 1) return {};
        return "has " + std::to_string(length) + " entries but the matrix has " + std::to_string(major) + " " +
               major_name + " (expected " + std::to_string(major + 1) + ")";
      });
  if (pointers[0] != 0) f.fail(indptr_name, "starts at " + std::to_string(pointers[0]) + ", not 0");
  for (std::size_t k = 1; k < pointers.size(); ++k) {
    if (pointers[k] < pointers[k - 1]) {
      f.fail(indptr_name, "decreases at entry " + std::to_string(k) + " (" + std::to_string(pointers[k - 1]) +
                              " then " + std::to_string(pointers[k]) + ")");
    }
  }
  if (pointers.back() != nnz) {
    f.fail(indptr_name, "ends at " + std::to_string(pointers.back()) + " but " + data_name + " has " +
                            std::to_string(nnz) + " entries");
  }
  const auto check_index = [&](std::int64_t entry, std::int64_t index) {
    if (index < 0 || index >= minor) {
      f.fail(indices_name, "entry " + std::to_string(entry) + " is " + std::to_string(index) + ", outside [0, " +
                               std::to_string(minor) + ")");
    }
  };

  host_buffer<Index> out_indices(nnz, uninitialized);
  host_buffer<T> out_values(nnz, uninitialized);
  if (!transpose) {
    host_buffer<Index> out_indptr(major + 1, uninitialized);
    for (std::int64_t k = 0; k <= major; ++k) out_indptr[k] = static_cast<Index>(pointers[static_cast<std::size_t>(k)]);
    f.read_chunks<std::int64_t>(indices_name, indices.get(), H5T_NATIVE_INT64, nnz, checks.chunk_entries,
                                [&](const std::int64_t* chunk, std::int64_t first, std::int64_t count) {
                                  for (std::int64_t k = 0; k < count; ++k) {
                                    check_index(first + k, chunk[k]);
                                    out_indices[first + k] = static_cast<Index>(chunk[k]);
                                  }
                                });
    f.read_chunks<double>(data_name, data.get(), H5T_NATIVE_DOUBLE, nnz, checks.chunk_entries,
                          [&](const double* chunk, std::int64_t first, std::int64_t count) {
                            for (std::int64_t k = 0; k < count; ++k) {
                              out_values[first + k] =
                                  checked_value<T>(f, data_name, first + k, chunk[k], checks.require_counts);
                            }
                          });
    return finish_rows<T, Index>(rows, cols, std::move(out_indptr), std::move(out_indices), std::move(out_values));
  }

  // CSC -> CSR: count the entries of each row, then place every entry at its row's next free slot.
  // Slices (columns) are visited in order, so each row receives its columns in increasing order.
  host_buffer<Index> out_indptr(rows + 1);
  f.read_chunks<std::int64_t>(indices_name, indices.get(), H5T_NATIVE_INT64, nnz, checks.chunk_entries,
                              [&](const std::int64_t* chunk, std::int64_t first, std::int64_t count) {
                                for (std::int64_t k = 0; k < count; ++k) {
                                  check_index(first + k, chunk[k]);
                                  ++out_indptr[chunk[k] + 1];
                                }
                              });
  for (std::int64_t i = 0; i < rows; ++i) out_indptr[i + 1] = static_cast<Index>(out_indptr[i + 1] + out_indptr[i]);
  std::vector<Index> next(out_indptr.begin(), out_indptr.end() - 1);
  std::vector<double> values_chunk;
  std::int64_t column = 0;
  f.read_chunks<std::int64_t>(
      indices_name, indices.get(), H5T_NATIVE_INT64, nnz, checks.chunk_entries,
      [&](const std::int64_t* chunk, std::int64_t first, std::int64_t count) {
        values_chunk.resize(static_cast<std::size_t>(count));
        f.read_range(data_name, data.get(), H5T_NATIVE_DOUBLE, first, count, values_chunk.data());
        for (std::int64_t k = 0; k < count; ++k) {
          const std::int64_t entry = first + k;
          while (pointers[static_cast<std::size_t>(column) + 1] <= entry) ++column;
          const Index slot = next[static_cast<std::size_t>(chunk[k])]++;
          out_indices[slot] = static_cast<Index>(column);
          out_values[slot] =
              checked_value<T>(f, data_name, entry, values_chunk[static_cast<std::size_t>(k)], checks.require_counts);
        }
      });
  return finish_rows<T, Index>(rows, cols, std::move(out_indptr), std::move(out_indices), std::move(out_values));
}

/// A dense 2-D dataset (rows x columns, row-major as HDF5 stores it) read in blocks of whole rows of
/// about `chunk_entries` values; zeros are dropped. Memory: the result (grown as rows arrive, then
/// copied once into its buffers) plus one block.
template <class T, class Index>
csr_matrix<T, Index> read_dense(const file& f, const std::string& object, const read_checks& checks) {
  const handle dataset = f.open_dataset(object);
  const dataset_shape shape = f.shape_of(object, dataset.get());
  if (shape.dims.size() != 2) f.fail(object, "a dense matrix must have 2 dimensions, has " + file::rank_text(shape));
  require_numbers(f, object, shape);
  const auto rows = static_cast<std::int64_t>(shape.dims[0]);
  const auto cols = static_cast<std::int64_t>(shape.dims[1]);
  require_index_fits<Index>(f, object, rows, cols, 0);
  std::vector<Index> indptr(static_cast<std::size_t>(rows) + 1, Index(0));
  std::vector<Index> indices;
  std::vector<T> values;
  if (cols > 0 && rows > 0) {
    const std::int64_t block_rows =
        std::max<std::int64_t>(1, static_cast<std::int64_t>(checks.chunk_entries) / std::max<std::int64_t>(cols, 1));
    std::vector<double> block(static_cast<std::size_t>(std::min(block_rows, rows) * cols));
    const handle file_space(H5Dget_space(dataset.get()), H5Sclose);
    constexpr auto index_max = static_cast<std::int64_t>(std::numeric_limits<Index>::max());
    for (std::int64_t first = 0; first < rows; first += block_rows) {
      const std::int64_t count = std::min(block_rows, rows - first);
      const hsize_t start[2] = {static_cast<hsize_t>(first), 0};
      const hsize_t extent[2] = {static_cast<hsize_t>(count), static_cast<hsize_t>(cols)};
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, extent, nullptr);
      const handle memory_space(H5Screate_simple(2, extent, nullptr), H5Sclose);
      if (H5Dread(dataset.get(), H5T_NATIVE_DOUBLE, memory_space.get(), file_space.get(), H5P_DEFAULT, block.data()) <
          0) {
        f.fail_hdf5(object, "cannot read rows " + std::to_string(first) + ".." + std::to_string(first + count));
      }
      for (std::int64_t r = 0; r < count; ++r) {
        for (std::int64_t c = 0; c < cols; ++c) {
          const double value = block[static_cast<std::size_t>(r * cols + c)];
          const std::int64_t entry = (first + r) * cols + c;
          const T stored = checked_value<T>(f, object, entry, value, checks.require_counts);
          if (value != 0.0) {
            indices.push_back(static_cast<Index>(c));
            values.push_back(stored);
          }
        }
        if (static_cast<std::int64_t>(values.size()) > index_max) {
          f.fail(object, "more than " + std::to_string(index_max) +
                             " nonzero entries do not fit the index type; read it with a 64-bit Index");
        }
        indptr[static_cast<std::size_t>(first + r) + 1] = static_cast<Index>(values.size());
      }
    }
  }
  return csr_matrix<T, Index>(rows, cols, indptr, indices, values);
}

/// Category names: strings as stored, numbers as their shortest text (integers exactly).
inline std::vector<std::string> read_category_names(const file& f, const std::string& object,
                                                    std::size_t chunk_entries) {
  const handle dataset = f.open_dataset(object);
  const dataset_shape shape = f.shape_of(object, dataset.get());
  require_rank(f, object, shape, 1);
  if (shape.type_class == H5T_STRING) return f.read_strings(object, chunk_entries);
  std::vector<std::string> names;
  if (shape.type_class == H5T_INTEGER) {
    f.read_chunks<std::int64_t>(object, dataset.get(), H5T_NATIVE_INT64, shape.length(), chunk_entries,
                                [&](const std::int64_t* chunk, std::int64_t, std::int64_t count) {
                                  for (std::int64_t k = 0; k < count; ++k) names.push_back(std::to_string(chunk[k]));
                                });
  } else if (shape.type_class == H5T_FLOAT) {
    f.read_chunks<double>(object, dataset.get(), H5T_NATIVE_DOUBLE, shape.length(), chunk_entries,
                          [&](const double* chunk, std::int64_t, std::int64_t count) {
                            for (std::int64_t k = 0; k < count; ++k) names.push_back(number_text(chunk[k]));
                          });
  } else {
    f.fail(object, std::string("unsupported dtype: should be strings or numbers, is ") + class_name(shape.type_class));
  }
  return names;
}

/// A categorical column: `codes_object` (integers, one per cell, -1 = missing) indexing
/// `categories_object`. Missing values get the category "nan" (an existing one, else appended
/// last), so that every code is a valid category, as pandas' astype(str) would name them.
inline label_table read_categorical(const file& f, const std::string& codes_object,
                                    const std::string& categories_object, std::int64_t cells,
                                    std::size_t chunk_entries) {
  label_table table;
  table.categories = read_category_names(f, categories_object, chunk_entries);
  const auto category_count = static_cast<std::int64_t>(table.categories.size());
  const handle codes = f.open_dataset(codes_object);
  const dataset_shape shape = f.shape_of(codes_object, codes.get());
  require_rank(f, codes_object, shape, 1);
  require_integers(f, codes_object, shape);
  if (shape.length() != cells) {
    f.fail(codes_object,
           "has " + std::to_string(shape.length()) + " codes but the matrix has " + std::to_string(cells) + " cells");
  }
  const auto existing_nan = std::find(table.categories.begin(), table.categories.end(), "nan");
  const auto missing_code = static_cast<index_t>(existing_nan - table.categories.begin());
  bool any_missing = false;
  table.codes.reserve(static_cast<std::size_t>(cells));
  f.read_chunks<std::int64_t>(
      codes_object, codes.get(), H5T_NATIVE_INT64, cells, chunk_entries,
      [&](const std::int64_t* chunk, std::int64_t first, std::int64_t count) {
        for (std::int64_t k = 0; k < count; ++k) {
          if (chunk[k] < -1 || chunk[k] >= category_count) {
            f.fail(codes_object, "entry " + std::to_string(first + k) + " is " + std::to_string(chunk[k]) +
                                     ", outside [-1, " + std::to_string(category_count) + ") (" + categories_object +
                                     " has " + std::to_string(category_count) + " categories)");
          }
          any_missing = any_missing || chunk[k] == -1;
          table.codes.push_back(chunk[k] == -1 ? missing_code : static_cast<index_t>(chunk[k]));
        }
      });
  if (any_missing && existing_nan == table.categories.end()) table.categories.emplace_back("nan");
  return table;
}

/// A column as one name per cell: strings, numbers (as text) or a categorical group (its categories
/// looked up, missing = "nan").
inline std::vector<std::string> read_names_column(const file& f, const std::string& object, std::int64_t length,
                                                  const char* counted, std::size_t chunk_entries) {
  std::vector<std::string> names;
  if (f.kind(object) == object_kind::group) {
    const label_table table = read_categorical(f, object + "/codes", object + "/categories", length, chunk_entries);
    names.reserve(table.codes.size());
    for (const index_t code : table.codes) names.push_back(table.categories[static_cast<std::size_t>(code)]);
    return names;
  }
  {  // the length is checked before reading, so that a wrong file cannot make us allocate
    const handle dataset = f.open_dataset(object);
    const dataset_shape shape = f.shape_of(object, dataset.get());
    require_rank(f, object, shape, 1);
    if (shape.length() != length) {
      f.fail(object, "has " + std::to_string(shape.length()) + " names but the matrix has " + std::to_string(length) +
                         " " + counted);
    }
  }
  return read_category_names(f, object, chunk_entries);
}

/// The index of an anndata dataframe group (obs or var): the dataset its `_index` attribute names
/// (anndata >= 0.7), else a member `_index` or `index`; empty when it has none.
inline std::vector<std::string> read_dataframe_index(const file& f, const std::string& group, std::int64_t length,
                                                     const char* counted, std::size_t chunk_entries) {
  const object_kind kind = f.kind(group);
  if (kind == object_kind::missing) return {};
  if (kind != object_kind::group) {
    f.fail(group,
           "is not a group: a dataframe stored as one compound dataset (anndata < 0.7) is not supported; "
           "re-write the file with anndata >= 0.7");
  }
  std::string name;
  if (f.has_attribute(group, "_index")) {
    name = f.string_attribute(group, "_index");
  } else if (f.kind(group + "/_index") != object_kind::missing) {
    name = "_index";
  } else if (f.kind(group + "/index") != object_kind::missing) {
    name = "index";
  } else {
    return {};
  }
  return read_names_column(f, group + "/" + name, length, counted, chunk_entries);
}

/// True when `group` holds a categorical column in anndata >= 0.8's layout (a group with an
/// encoding-type "categorical", or at least `categories` and `codes`).
inline bool is_categorical_group(const file& f, const std::string& object) {
  if (f.kind(object) != object_kind::group) return false;
  if (f.has_attribute(object, "encoding-type") && f.string_attribute(object, "encoding-type") == "categorical") {
    return true;
  }
  return f.kind(object + "/categories") == object_kind::dataset && f.kind(object + "/codes") == object_kind::dataset;
}

/// The obs column `column` as labels: categorical (either layout) or, for strings and numbers,
/// codes from the sorted distinct names (as read_labels does for a plain label file).
inline label_table read_label_column(const file& f, const std::string& obs, const std::string& column,
                                     std::int64_t cells, std::size_t chunk_entries) {
  const std::string object = obs + "/" + column;
  if (is_categorical_group(f, object)) {
    return read_categorical(f, object + "/codes", object + "/categories", cells, chunk_entries);
  }
  const std::string old_categories = obs + "/__categories/" + column;
  if (f.kind(object) == object_kind::dataset && f.kind(old_categories) == object_kind::dataset) {
    return read_categorical(f, object, old_categories, cells, chunk_entries);
  }
  if (f.kind(object) != object_kind::dataset) f.fail(object, "missing (no such obs column)");
  return codes_from_names(read_names_column(f, object, cells, "cells", chunk_entries));
}

/// Names of obs's categorical columns, in either layout, sorted.
inline std::vector<std::string> categorical_columns(const file& f, const std::string& obs) {
  std::vector<std::string> columns;
  if (f.kind(obs) != object_kind::group) return columns;
  for (const std::string& name : f.members(obs)) {
    if (name == "__categories") continue;
    const std::string object = obs + "/" + name;
    if (is_categorical_group(f, object) ||
        (f.kind(object) == object_kind::dataset && f.kind(obs + "/__categories/" + name) == object_kind::dataset)) {
      columns.push_back(name);
    }
  }
  return columns;
}

}  // namespace cellkit::io::detail::h5

#endif  // CELLKIT_HAVE_HDF5
