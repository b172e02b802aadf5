#include <cellkit/io/dataset.hpp>
#include <cellkit/io/labels.hpp>

#include "support/test_support.hpp"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

// Label / name files and the dataset loaders on the fixtures of tests/reference/gen_io_fixtures.py
// (a shared-data folder and a Cell Ranger 3 directory holding the same 7 x 5 counts) and, when
// present, on ../shared/data (shapes and label counts from the manifests).

using namespace cellkit;
namespace io = cellkit::io;

namespace {

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

std::filesystem::path temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("cellkit_test_dataset_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

const std::vector<index_t> fixture_codes = {3, 0, 2, 0, 3, 1, 2};  // sorted names: B cell, Mono, NK, T cell

}  // namespace

TEST_CASE("labels in the shared-data layout and as plain names") {
  const auto table = io::read_labels(test::fixture_path("io_labels.tsv"), {.expected_count = 7});
  CHECK(table.codes == fixture_codes);
  CHECK(table.categories == std::vector<std::string>{"B cell", "Mono", "NK", "T cell"});
  CHECK(table.distinct() == 4);
  const auto plain = io::read_labels(test::fixture_path("io_labels_plain.tsv"));
  CHECK(plain.codes == fixture_codes);
  CHECK(plain.categories == table.categories);
  // Numeric names sort numerically (10 after 9), as the datasets' label_int_order says.
  const auto dir = temp_dir("numeric");
  write(dir / "l.tsv", "10\n9\n1\n9\n");
  const auto numeric = io::read_labels((dir / "l.tsv").string());
  CHECK(numeric.codes == std::vector<index_t>{2, 1, 0, 1});
  CHECK(numeric.categories == std::vector<std::string>{"1", "9", "10"});
  std::filesystem::remove_all(dir);
}

TEST_CASE("labels of the wrong length and malformed label files") {
  const auto fixture = test::fixture_path("io_labels.tsv");
  const auto what = error_of([&] { io::read_labels(fixture, {.expected_count = 8}); });
  CHECK(contains(what, fixture));
  CHECK(contains(what, "has 7 labels but the matrix has 8 cells"));
  const auto dir = temp_dir("labels");
  const std::string header = "cell_index\tlabel_int\tlabel_name\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {header + "0\t0\ta\n2\t0\ta\n", ":3: cell_index '2' should be 1"},
      {header + "0\t-1\ta\n", ":2: label_int '-1' is not a non-negative integer"},
      {header + "0\tx\ta\n", ":2: label_int 'x'"},
      {header + "0\t0\ta\n1\t0\tb\n", ":3: label_int 0 is 'b' here but 'a' before"},
      {header + "0\t0\ta\n1\t1\ta\n", ":3: label_name 'a' has code 1 here but 0 before"},
      {header + "0\t0\n", ":2: expected 3 tab-separated fields"},
      {header + "0\t0\ta\n\n", ":3: blank line"},
      {"", "is empty"},
  };
  for (const auto& item : cases) {  // not a structured binding: clang 14 cannot capture one in CAPTURE's lambda
    const std::string& text = item.first;
    const std::string& problem = item.second;
    CAPTURE(text);
    write(dir / "labels.tsv", text);
    CHECK(contains(error_of([&] { io::read_labels((dir / "labels.tsv").string()); }), problem));
  }
  CHECK(contains(error_of([&] { io::read_labels((dir / "missing.tsv").string()); }), "cannot open"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a shared-data folder: counts, labels, genes, manifest") {
  const auto data = io::load_dataset<double>(test::fixture_path("io_dataset"));
  CHECK(data.name == "io_fixture");
  CHECK(data.counts.rows() == 7);
  CHECK(data.counts.cols() == 5);
  CHECK(data.raw_counts == std::optional<bool>(true));
  REQUIRE(data.labels.has_value());
  CHECK(data.labels->codes == fixture_codes);
  CHECK(data.gene_ids == std::vector<std::string>{"GENE0", "GENE1", "GENE2", "GENE3", "GENE4"});
}

TEST_CASE("a 10x directory gives the same cells x genes matrix") {
#if defined(CELLKIT_HAVE_ZLIB)
  const auto folder = io::load_dataset<double>(test::fixture_path("io_dataset"));
  const auto tenx = io::load_dataset<double>(test::fixture_path("io_10x"));
  REQUIRE(tenx.counts.rows() == 7);
  REQUIRE(tenx.counts.cols() == 5);
  CHECK(tenx.counts.nnz() == folder.counts.nnz());
  for (index_t p = 0; p < tenx.counts.nnz(); ++p) {
    CHECK(tenx.counts.view().indices()[p] == folder.counts.view().indices()[p]);
    CHECK(tenx.counts.view().values()[p] == folder.counts.view().values()[p]);
  }
  for (index_t i = 0; i <= 7; ++i) CHECK(tenx.counts.indptr()[i] == folder.counts.indptr()[i]);
  CHECK(tenx.cell_names.size() == 7);
  CHECK(tenx.cell_names[6] == "AAAC0006-1");
  CHECK(tenx.gene_ids[4] == "ENSG00004");
  CHECK(tenx.gene_names[4] == "GENE4");
  CHECK(!tenx.labels.has_value());
#else
  MESSAGE("skipped: built without zlib");
#endif
}

TEST_CASE("dataset folders with inconsistent or missing parts") {
  const auto dir = temp_dir("folder");
  CHECK(contains(error_of([&] { io::load_dataset<float>((dir / "nothing").string()); }), "does not exist"));
  CHECK(contains(error_of([&] { io::load_dataset<float>(dir.string()); }), "is a directory without counts.mtx"));
  CHECK(contains(error_of([&] { io::load_dataset_folder<float>(dir.string()); }), "has no counts.mtx.gz"));
  const std::string counts = "%%MatrixMarket matrix coordinate integer general\n3 2 2\n1 1 4\n3 2 1\n";
  write(dir / "counts.mtx", counts);
  write(dir / "labels.tsv", "a\nb\n");
  const auto labels = error_of([&] { io::load_dataset<float>(dir.string()); });
  CHECK(contains(labels, (dir / "labels.tsv").string()));
  CHECK(contains(labels, "has 2 labels but the matrix has 3 cells"));
  write(dir / "labels.tsv", "a\nb\na\n");
  write(dir / "genes.tsv", "g1\n");
  CHECK(contains(error_of([&] { io::load_dataset<float>(dir.string()); }), "has 1 names but the matrix has 2 genes"));
  write(dir / "genes.tsv", "g1\ng2\n");
  write(dir / "manifest.json", "{\"n_cells\": 4, \"raw_counts\": true}");
  CHECK(contains(error_of([&] { io::load_dataset<float>(dir.string()); }), "n_cells = 4 but"));
  write(dir / "manifest.json", "{\"n_cells\": 3, \"raw_counts\": true}");
  write(dir / "counts.mtx", "%%MatrixMarket matrix coordinate real general\n3 2 2\n1 1 4\n3 2 -1\n");
  CHECK(contains(error_of([&] { io::load_dataset<float>(dir.string()); }), "counts.mtx:4: negative count"));
  // The same file loads when counts are not required.
  const auto relaxed = io::load_dataset<float>(dir.string(), {.require_counts = false});
  CHECK(relaxed.counts.nnz() == 2);
  std::filesystem::remove_all(dir);
}

TEST_CASE("every shared dataset loads with its manifest's shape and label count (skipped when absent)") {
  const std::string root = test::shared_data_dir();
  if (root.empty()) {
    MESSAGE("skipped: ../shared/data is absent");
    return;
  }
  struct expected {
    const char* name;
    index_t cells, genes, labels;
    bool raw;
  };
  const expected all[] = {{"10x_pbmc_top2000", 4271, 2000, 8, true},
                          {"baron_mouse1", 822, 14878, 13, true},
                          {"biase", 56, 1000, 4, false},
                          {"goolam", 124, 1000, 5, false},
                          {"mouse_bladder_cell_select_2100", 2100, 20670, 16, true},
                          {"pollen", 301, 1000, 11, false},
                          {"treutlein", 80, 1000, 5, false},
                          {"worm_neuron_cell", 4186, 13488, 10, true},
                          {"yan", 90, 20214, 6, false}};
  for (const auto& e : all) {
    CAPTURE(e.name);
    const std::string dir = root + "/" + e.name;
    if (!std::filesystem::exists(dir)) continue;
    const auto data = io::load_dataset<float>(dir);
    CHECK(data.name == e.name);
    CHECK(data.counts.rows() == e.cells);
    CHECK(data.counts.cols() == e.genes);
    REQUIRE(data.labels.has_value());
    CHECK(data.labels->distinct() == e.labels);
    CHECK(data.raw_counts == std::optional<bool>(e.raw));
    if (!data.gene_ids.empty()) CHECK(static_cast<index_t>(data.gene_ids.size()) == e.genes);
  }
}
