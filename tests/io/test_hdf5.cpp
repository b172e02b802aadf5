#include <cellkit/io/dataset.hpp>
#include <cellkit/io/hdf5.hpp>

#include "support/test_support.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

// The HDF5 readers on the files of tests/reference/gen_hdf5_fixtures.py (anndata 0.8 wrote one of
// them; h5py the others, following anndata's and Cell Ranger's on-disk layouts): every value, name
// and label against <fixture>.expected.txt, and every malformed file's message. Without HDF5 only
// the "built without HDF5" error is checked.

using namespace cellkit;
namespace io = cellkit::io;

namespace {

std::string hdf5_fixture(const std::string& name) { return test::fixture_path("hdf5/" + name); }

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const io::file_error& e) {
    const std::string what = e.what();
    CHECK(what.find('\n') == std::string::npos);
    return what;
  }
  FAIL("no io::file_error thrown");
  return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

#if defined(CELLKIT_HAVE_HDF5)

namespace {

/// <fixture>.expected.txt: tab-separated lines (see gen_hdf5_fixtures.py).
struct expected_contents {
  index_t rows = 0;
  index_t cols = 0;
  std::vector<std::vector<double>> dense;
  std::map<std::string, std::vector<std::string>> names;  // cell_names, gene_names, gene_ids
  std::map<std::string, std::vector<index_t>> codes;
  std::map<std::string, std::vector<std::string>> categories;
};

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  for (std::string field; std::getline(in, field, '\t');) fields.push_back(field);
  return fields;
}

expected_contents read_expected(const std::string& name) {
  std::ifstream in(hdf5_fixture(name + ".expected.txt"));
  REQUIRE_MESSAGE(in.good(), "missing fixture (run tests/reference/gen_hdf5_fixtures.py): ", name);
  expected_contents e;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> f = split_tabs(line);
    if (f[0] == "shape") {
      e.rows = std::stoll(f[1]);
      e.cols = std::stoll(f[2]);
    } else if (f[0] == "row") {
      std::vector<double> row;
      for (std::size_t k = 1; k < f.size(); ++k) row.push_back(std::strtod(f[k].c_str(), nullptr));
      e.dense.push_back(row);
    } else if (f[0] == "labels") {
      for (std::size_t k = 2; k < f.size(); ++k) e.codes[f[1]].push_back(std::stoll(f[k]));
    } else if (f[0] == "categories") {
      e.categories[f[1]].assign(f.begin() + 2, f.end());
    } else {
      e.names[f[0]].assign(f.begin() + 1, f.end());
    }
  }
  return e;
}

/// Every entry of `matrix` equals the expected dense matrix (converted to T), zeros included.
template <class T, class Index>
void check_matrix(const csr_matrix<T, Index>& matrix, const expected_contents& e) {
  REQUIRE(matrix.rows() == e.rows);
  REQUIRE(matrix.cols() == e.cols);
  const auto view = matrix.view();
  for (index_t i = 0; i < e.rows; ++i) {
    std::vector<double> row(static_cast<std::size_t>(e.cols), 0.0);
    for (auto p = static_cast<index_t>(matrix.indptr()[i]); p < static_cast<index_t>(matrix.indptr()[i + 1]); ++p) {
      row[static_cast<std::size_t>(view.indices()[p])] = static_cast<double>(view.values()[p]);
    }
    for (index_t j = 0; j < e.cols; ++j) {
      CAPTURE(i);
      CAPTURE(j);
      CHECK(row[static_cast<std::size_t>(j)] ==
            static_cast<double>(static_cast<T>(e.dense[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)])));
    }
  }
}

template <class T, class Index>
void check_contents(const io::annotated_matrix<T, Index>& got, const expected_contents& e) {
  check_matrix(got.counts, e);
  CHECK(got.cell_names == e.names.at("cell_names"));
  CHECK(got.gene_names == e.names.at("gene_names"));
  if (e.names.count("gene_ids") != 0) {
    CHECK(got.gene_ids == e.names.at("gene_ids"));
  } else {
    CHECK(got.gene_ids.empty());
  }
  CHECK(got.labels.size() == e.codes.size());
  for (const auto& item : e.codes) {  // not a structured binding: clang 14 cannot capture one in CAPTURE
    const std::string& column = item.first;
    const std::vector<index_t>& codes = item.second;
    CAPTURE(column);
    REQUIRE(got.labels.count(column) == 1);
    CHECK(got.labels.at(column).codes == codes);
    CHECK(got.labels.at(column).categories == e.categories.at(column));
  }
}

const std::vector<std::string> h5ad_fixtures = {"anndata_csr", "h5py_csc", "h5py_dense", "h5py_unsorted"};

}  // namespace

TEST_CASE_TEMPLATE("read_h5ad: CSR, CSC, dense and unsorted matrices with names and labels", T, float, double) {
  for (const std::string& name : h5ad_fixtures) {
    CAPTURE(name);
    const expected_contents e = read_expected(name);
    check_contents(io::read_h5ad<T>(hdf5_fixture(name + ".h5ad")), e);
    // Chunks of 1 and 3 entries cross every row, column and string boundary.
    for (const std::size_t chunk : {std::size_t(1), std::size_t(3)}) {
      CAPTURE(chunk);
      check_contents(io::read_h5ad<T, std::int64_t>(hdf5_fixture(name + ".h5ad"), {.chunk_entries = chunk}), e);
    }
  }
}

TEST_CASE("read_h5ad: layers, chosen label columns, counts") {
  const expected_contents e = read_expected("anndata_csr");
  // layers/counts holds the same counts as int64.
  const auto layer = io::read_h5ad<double>(hdf5_fixture("anndata_csr.h5ad"), {.matrix = "layers/counts"});
  check_matrix(layer.counts, e);
  const auto chosen = io::read_h5ad<double>(
      hdf5_fixture("anndata_csr.h5ad"), {.label_columns = std::vector<std::string>{"batch"}, .require_counts = true});
  REQUIRE(chosen.labels.size() == 1);
  CHECK(chosen.labels.at("batch").codes == e.codes.at("batch"));
  // A numeric, non-categorical column gets codes from its sorted distinct values.
  const auto numeric =
      io::read_h5ad<double>(hdf5_fixture("anndata_csr.h5ad"), {.label_columns = std::vector<std::string>{"n_counts"}});
  const io::label_table& n_counts = numeric.labels.at("n_counts");
  REQUIRE(n_counts.size() == e.rows);
  for (index_t i = 0; i < e.rows; ++i) {
    double total = 0.0;
    for (const double v : e.dense[static_cast<std::size_t>(i)]) total += v;
    CHECK(std::stod(n_counts.categories[static_cast<std::size_t>(n_counts.codes[static_cast<std::size_t>(i)])]) ==
          total);
  }
  // No columns at all.
  CHECK(io::read_h5ad<float>(hdf5_fixture("anndata_csr.h5ad"), {.label_columns = std::vector<std::string>{}})
            .labels.empty());
  const auto what = error_of([] {
    io::read_h5ad<float>(hdf5_fixture("anndata_csr.h5ad"), {.label_columns = std::vector<std::string>{"nope"}});
  });
  CHECK(contains(what, "/obs/nope: missing"));
  CHECK(contains(error_of([] { io::read_h5ad<float>(hdf5_fixture("h5py_csc.h5ad"), {.require_counts = true}); }),
                 "/X/data: entry 0 is "));
  CHECK(contains(error_of([] { io::read_h5ad<float>(hdf5_fixture("anndata_csr.h5ad"), {.matrix = "layers/none"}); }),
                 "/layers/none: missing"));
}

TEST_CASE_TEMPLATE("read_10x_h5: Cell Ranger 3 and 2", T, float, double) {
  for (const std::string name : {"tenx_v3", "tenx_v2"}) {
    CAPTURE(name);
    const expected_contents e = read_expected(name);
    check_contents(io::read_10x_h5<T>(hdf5_fixture(name + ".h5")), e);
    check_contents(io::read_10x_h5<T, std::int64_t>(hdf5_fixture(name + ".h5"), {.chunk_entries = 2}), e);
  }
}

TEST_CASE("malformed HDF5 files: the file, the object and the problem") {
  const std::vector<std::pair<std::string, std::string>> h5ad_cases = {
      {"bad_no_x.h5ad", "/X: missing"},
      {"bad_indptr_length.h5ad", "/X/indptr: has 6 entries but the matrix has 6 rows (expected 7)"},
      {"bad_indptr_decreasing.h5ad", "/X/indptr: decreases at entry 3"},
      {"bad_indptr_end.h5ad", "/X/indptr: ends at 12 but /X/data has 11 entries"},
      {"bad_indices_range.h5ad", "/X/indices: entry 1 is 5, outside [0, 5)"},
      {"bad_indices_float.h5ad", "/X/indices: unsupported dtype: should be integers, is float"},
      {"bad_data_length.h5ad", "/X/indices: has 11 entries but /X/data has 10"},
      {"bad_data_string.h5ad", "/X/data: unsupported dtype: should be integers or floats, is string"},
      {"bad_data_nan.h5ad", "/X/data: entry 0 is nan (not finite)"},
      {"bad_no_indices.h5ad", "/X/indices: missing"},
      {"bad_shape_attr.h5ad", "/X: attribute 'shape' should hold 2 non-negative extents (rows, columns), has 1"},
      {"bad_encoding.h5ad", "/X: unsupported encoding-type 'coo_matrix'"},
      {"bad_dense_3d.h5ad", "/X: a dense matrix must have 2 dimensions, has 3 dimensions (2 x 2 x 2)"},
      {"bad_obs_rows.h5ad", "/obs/_index: has 6 names but the matrix has 5 cells"},
      {"bad_codes_range.h5ad", "/obs/cell_type/codes: entry 0 is 3, outside [-1, 3)"},
      {"bad_codes_length.h5ad", "/obs/cell_type/codes: has 5 codes but the matrix has 6 cells"},
      {"not_hdf5.h5ad", "is not an HDF5 file"},
      {"bad_truncated.h5ad", "cannot open as HDF5"},
      {"missing.h5ad", "cannot open: No such file or directory"},
  };
  for (const auto& item : h5ad_cases) {  // not a structured binding: clang 14 cannot capture one in CAPTURE
    const std::string path = hdf5_fixture(item.first);
    const std::string& problem = item.second;
    CAPTURE(path);
    const std::string what = error_of([&] { io::read_h5ad<float>(path); });
    CHECK(contains(what, path + ": "));
    CHECK(contains(what, problem));
  }
  // Counts required: fractional and negative values.
  CHECK(contains(
      error_of([] { io::read_h5ad<float>(hdf5_fixture("bad_data_fractional.h5ad"), {.require_counts = true}); }),
      "/X/data: entry 0 is 0.5, not a count"));
  CHECK(
      contains(error_of([] { io::read_h5ad<float>(hdf5_fixture("bad_data_negative.h5ad"), {.require_counts = true}); }),
               "/X/data: entry 0 is -1, not a count"));
  // ... and accepted without.
  CHECK(io::read_h5ad<float>(hdf5_fixture("bad_data_negative.h5ad")).counts.view().values()[0] == -1.0f);

  const std::vector<std::pair<std::string, std::string>> tenx_cases = {
      {"bad_tenx_barcodes.h5", "/matrix/barcodes: has 5 names but the matrix has 6 cells"},
      {"bad_tenx_no_indptr.h5", "/matrix/indptr: missing"},
      {"bad_tenx_empty.h5", "/: has no 'matrix' group"},
      {"anndata_csr.h5ad", "not a 10x Genomics .h5 file"},
  };
  for (const auto& item : tenx_cases) {
    const std::string path = hdf5_fixture(item.first);
    const std::string& problem = item.second;
    CAPTURE(path);
    const std::string what = error_of([&] { io::read_10x_h5<float>(path); });
    CHECK(contains(what, path + ": "));
    CHECK(contains(what, problem));
  }
  // A 10x file given to the AnnData reader.
  CHECK(contains(error_of([] { io::read_h5ad<float>(hdf5_fixture("tenx_v3.h5")); }), "/X: missing"));
}

TEST_CASE("load_dataset recognises .h5ad and .h5 files") {
  const expected_contents e = read_expected("anndata_csr");
  const auto data = io::load_dataset<double>(hdf5_fixture("anndata_csr.h5ad"));
  check_matrix(data.counts, e);
  CHECK(data.name == "anndata_csr.h5ad");
  CHECK(data.cell_names == e.names.at("cell_names"));
  CHECK(data.gene_names == e.names.at("gene_names"));
  CHECK(data.gene_ids == e.names.at("gene_ids"));
  REQUIRE(data.labels.has_value());  // the default label column: cell_type comes first
  CHECK(data.labels->codes == e.codes.at("cell_type"));
  CHECK(data.labels->categories == e.categories.at("cell_type"));

  const auto batch = io::load_dataset<double>(hdf5_fixture("anndata_csr.h5ad"), {.label_column = "batch"});
  REQUIRE(batch.labels.has_value());
  CHECK(batch.labels->codes == e.codes.at("batch"));
  CHECK(contains(error_of([] { io::load_dataset<float>(hdf5_fixture("anndata_csr.h5ad"), {.label_column = "nope"}); }),
                 "/obs/nope: missing"));
  // The dense fixture has only 'cluster', the last default name.
  const auto dense = io::load_dataset<float>(hdf5_fixture("h5py_dense.h5ad"));
  REQUIRE(dense.labels.has_value());
  CHECK(dense.labels->codes == read_expected("h5py_dense").codes.at("cluster"));
  // No label column: no labels.
  CHECK(!io::load_dataset<float>(hdf5_fixture("h5py_unsorted.h5ad")).labels.has_value());
  // Counts required by the caller.
  CHECK(contains(error_of([] { io::load_dataset<float>(hdf5_fixture("h5py_csc.h5ad"), {.require_counts = true}); }),
                 "not a count"));

  const auto tenx = io::load_dataset<float>(hdf5_fixture("tenx_v3.h5"));
  check_matrix(tenx.counts, read_expected("tenx_v3"));
  CHECK(tenx.raw_counts == std::optional<bool>(true));
  CHECK(tenx.cell_names == e.names.at("cell_names"));
  CHECK(tenx.gene_ids == e.names.at("gene_ids"));
  CHECK(tenx.gene_names == e.names.at("gene_names"));

  // A dataset folder holding counts.h5ad (plus labels.tsv, which wins over obs).
  const auto dir = std::filesystem::temp_directory_path() / "cellkit_test_hdf5_folder";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(hdf5_fixture("anndata_csr.h5ad"), dir / "counts.h5ad");
  const auto folder = io::load_dataset<double>(dir.string());
  check_matrix(folder.counts, e);
  REQUIRE(folder.labels.has_value());
  CHECK(folder.labels->codes == e.codes.at("cell_type"));
  std::ofstream(dir / "labels.tsv") << "x\ny\nx\nx\nx\ny\n";
  const auto relabelled = io::load_dataset<double>(dir.string());
  REQUIRE(relabelled.labels.has_value());
  CHECK(relabelled.labels->codes == std::vector<index_t>{0, 1, 0, 0, 0, 1});
  std::filesystem::remove_all(dir);

  CHECK(contains(error_of([] { io::load_dataset<float>(hdf5_fixture("not_hdf5.h5ad")); }), "is not an HDF5 file"));
}

#else

TEST_CASE("without HDF5 the readers say so") {
  MESSAGE("cellkit was built without HDF5 (CELLKIT_HAVE_HDF5): only the absence is tested");
  CHECK(!io::hdf5_available);
  const std::string path = hdf5_fixture("anndata_csr.h5ad");
  CHECK(contains(error_of([&] { io::read_h5ad<float>(path); }), "cellkit was built without HDF5"));
  CHECK(contains(error_of([&] { io::read_10x_h5<float>(hdf5_fixture("tenx_v3.h5")); }), "built without HDF5"));
  CHECK(contains(error_of([&] { io::load_dataset<float>(path); }), path + ": is an AnnData (.h5ad) file"));
}

#endif
