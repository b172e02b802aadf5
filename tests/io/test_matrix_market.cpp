#include <cellkit/io/matrix_market.hpp>

#include "support/test_support.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

// Matrix Market reader against scipy.io.mmread (tests/reference/gen_io_fixtures.py): the fixtures'
// dense reference must equal the CSR result exactly; every malformed input is an io::file_error whose
// one-line message names the file, the line and the problem.

using namespace cellkit;
namespace io = cellkit::io;

namespace {

std::vector<std::vector<double>> read_dense(const std::string& name) {
  std::ifstream in(test::fixture_path(name));
  REQUIRE(in.good());
  std::vector<std::vector<double>> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::size_t pos = 0;
    while (pos < line.size()) {
      std::size_t used = 0;
      row.push_back(std::stod(line.substr(pos), &used));
      pos += used;
    }
    rows.push_back(row);
  }
  return rows;
}

template <class T, class Index>
std::vector<std::vector<double>> densify(const csr_matrix<T, Index>& m) {
  std::vector<std::vector<double>> dense(static_cast<std::size_t>(m.rows()),
                                         std::vector<double>(static_cast<std::size_t>(m.cols()), 0.0));
  const auto v = m.view();
  for (index_t i = 0; i < v.rows(); ++i)
    for (index_t p = v.row_begin(i); p < v.row_end(i); ++p)
      dense[static_cast<std::size_t>(i)][static_cast<std::size_t>(v.indices()[p])] = static_cast<double>(v.values()[p]);
  return dense;
}

/// The message of the file_error `f` throws (fails the test when it throws nothing or something else).
template <class F>
std::string error_of(F&& f, std::int64_t expected_line = -1) {
  try {
    f();
  } catch (const io::file_error& e) {
    if (expected_line >= 0) CHECK(e.line() == expected_line);
    const std::string what = e.what();
    CHECK(what.find('\n') == std::string::npos);  // one line
    return what;
  }
  FAIL("no io::file_error thrown");
  return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string temp_file(const std::string& name, const std::string& bytes) {
  const auto path = std::filesystem::temp_directory_path() / ("cellkit_test_mtx_" + name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path.string();
}

}  // namespace

TEST_CASE("plain and gzip Matrix Market files equal scipy.io.mmread") {
  const auto want = read_dense("io_small_dense.txt");
  const auto plain = io::read_matrix_market<double>(test::fixture_path("io_small.mtx"));
  CHECK(plain.rows() == 7);
  CHECK(plain.cols() == 5);
  CHECK(densify(plain) == want);  // includes the duplicate entry, summed
  CHECK(plain.nnz() == 12);       // 13 lines, one duplicate
  validate(plain.view());
#if defined(CELLKIT_HAVE_ZLIB)
  const auto gz = io::read_matrix_market<float>(test::fixture_path("io_small.mtx.gz"), {.require_counts = true});
  CHECK(densify(gz) == want);
  const auto wide = io::read_matrix_market<double, std::int64_t>(test::fixture_path("io_small.mtx.gz"));
  CHECK(densify(wide) == want);
#endif
}

TEST_CASE("genes_by_cells transposes") {
  const auto want = read_dense("io_small_dense.txt");
  const auto t = io::read_matrix_market<double>(test::fixture_path("io_small.mtx"), {.genes_by_cells = true});
  REQUIRE(t.rows() == 5);
  REQUIRE(t.cols() == 7);
  const auto d = densify(t);
  for (std::size_t i = 0; i < 7; ++i)
    for (std::size_t j = 0; j < 5; ++j) CHECK(d[j][i] == want[i][j]);
}

TEST_CASE("symmetric and pattern matrices equal scipy.io.mmread") {
  CHECK(densify(io::read_matrix_market<double>(test::fixture_path("io_real_symmetric.mtx"))) ==
        read_dense("io_real_symmetric_dense.txt"));
  CHECK(densify(io::read_matrix_market<double>(test::fixture_path("io_pattern.mtx"))) ==
        read_dense("io_pattern_dense.txt"));
}

TEST_CASE("a long file in memory: lines across block boundaries, CRLF, empty matrix") {
  std::string text = "%%MatrixMarket matrix coordinate real general\r\n3000 2 3000\r\n";
  for (int i = 1; i <= 3000; ++i)
    text += std::to_string(i) + " " + std::to_string(1 + i % 2) + " " + std::to_string(i) + ".5\r\n";
  const auto path = temp_file("long.mtx", text);
  const auto m = io::read_matrix_market<double>(path);
  std::filesystem::remove(path);
  REQUIRE(m.nnz() == 3000);
  CHECK(m.view().values()[2999] == 3000.5);
  CHECK(m.view().indices()[2999] == 0);
  const auto empty = io::parse_matrix_market<float>("%%MatrixMarket matrix coordinate integer general\n4 3 0\n");
  CHECK(empty.rows() == 4);
  CHECK(empty.cols() == 3);
  CHECK(empty.nnz() == 0);
}

TEST_CASE("missing, truncated and corrupt files") {
  const std::string missing = "/nonexistent/cellkit/counts.mtx.gz";
  const auto what = error_of([&] { io::read_matrix_market<float>(missing); }, 0);
  CHECK(contains(what, missing));
  CHECK(contains(what, "cannot open"));
#if defined(CELLKIT_HAVE_ZLIB)
  const auto truncated = test::fixture_path("io_small_truncated.mtx.gz");
  const auto t = error_of([&] { io::read_matrix_market<float>(truncated); });
  CHECK(contains(t, truncated));
  CHECK(contains(t, "truncated gzip"));
  // A gzip file whose deflate data is garbage.
  const auto corrupt =
      temp_file("corrupt.mtx.gz", std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage-garbage", 25));
  const auto c = error_of([&] { io::read_matrix_market<float>(corrupt); });
  std::filesystem::remove(corrupt);
  CHECK((contains(c, "corrupt gzip") || contains(c, "truncated gzip")));
#endif
  const auto cut = temp_file("cut.mtx", "%%MatrixMarket matrix coordinate integer general\n3 3 4\n1 1 1\n2 2 2\n");
  const auto f = error_of([&] { io::read_matrix_market<float>(cut); }, 0);
  std::filesystem::remove(cut);
  CHECK(contains(f, "has 2 entries but the size line announces 4"));
}

TEST_CASE("malformed contents name the line and the problem") {
  const std::string banner = "%%MatrixMarket matrix coordinate integer general\n";
  struct bad_case {
    std::string text;
    std::int64_t line;
    std::string problem;
  };
  const std::vector<bad_case> cases = {
      {"", 0, "is empty"},
      {"hello\n", 1, "not a Matrix Market file"},
      {"%%MatrixMarket matrix coordinate integer\n1 1 0\n", 1, "bad banner"},
      {"%%MatrixMarket matrix array real general\n2 2\n", 1, "'array' format is not supported"},
      {"%%MatrixMarket matrix coordinate complex general\n1 1 0\n", 1, "unsupported field"},
      {"%%MatrixMarket matrix coordinate real hermitian\n1 1 0\n", 1, "unsupported symmetry"},
      {"%%MatrixMarket vector coordinate real general\n1 1 0\n", 1, "is not 'matrix'"},
      {banner, 0, "ends before the size line"},
      {banner + "3 3\n", 2, "bad size line"},
      {banner + "3 -3 1\n", 2, "is not a non-negative integer"},
      {banner + "2 2 5\n", 2, "5 entries do not fit a 2 x 2 matrix"},
      {"%%MatrixMarket matrix coordinate real symmetric\n2 3 1\n", 2, "must be square"},
      {banner + "3 3 2\n1 1 1\n4 1 1\n", 4, "row index 4 is outside [1, 3]"},
      {banner + "3 3 2\n1 1 1\n1 0 1\n", 4, "column index 0 is outside [1, 3]"},
      {banner + "3 3 1\nx 1 1\n", 3, "row index 'x' is not an integer"},
      {banner + "3 3 1\n1 1 1.5\n", 3, "is not an integer (the banner says 'integer')"},
      {banner + "3 3 1\n1 1\n", 3, "expected 3 fields"},
      {banner + "3 3 1\n1 1 1 1\n", 3, "expected 3 fields"},
      {banner + "3 3 1\n1 1 1\n2 2 2\n", 4, "more entries than the 1 announced"},
      {"%%MatrixMarket matrix coordinate real general\n3 3 1\n1 1 abc\n", 3, "is not a number"},
      {"%%MatrixMarket matrix coordinate real general\n3 3 1\n1 1 nan\n", 3, "is not finite"},
      {"%%MatrixMarket matrix coordinate real general\n3 3 1\n1 1 1e300\n", 3, "overflows the element type"},
      {"%%MatrixMarket matrix coordinate real general\n99999999999 3 1\n", 2, "does not fit the index type"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    const auto what = error_of([&] { io::parse_matrix_market<float>(c.text, "bad.mtx"); }, c.line);
    CHECK(contains(what, c.problem));
    CHECK(what.rfind("bad.mtx", 0) == 0);
  }
}

TEST_CASE("require_counts rejects negative and fractional values") {
  const std::string real = "%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 3\n";
  const auto negative =
      error_of([&] { io::parse_matrix_market<float>(real + "2 2 -1\n", "counts.mtx", {.require_counts = true}); }, 4);
  CHECK(contains(negative, "counts.mtx:4: negative count '-1'"));
  const auto fractional =
      error_of([&] { io::parse_matrix_market<float>(real + "2 2 0.5\n", "counts.mtx", {.require_counts = true}); }, 4);
  CHECK(contains(fractional, "non-integer count '0.5'"));
  // Without the flag both are ordinary values.
  CHECK(io::parse_matrix_market<double>(real + "2 2 -0.5\n").view().values()[1] == -0.5);
  // Integer field with a negative value and require_counts.
  const auto int_negative = error_of([&] {
    io::parse_matrix_market<double>("%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 -2\n", "c.mtx",
                                    {.require_counts = true});
  });
  CHECK(contains(int_negative, "negative count"));
}

TEST_CASE("an index type too narrow for the file is an error, not an overflow") {
  const auto what = error_of(
      [] {
        io::parse_matrix_market<float, std::int8_t>("%%MatrixMarket matrix coordinate real general\n200 3 0\n",
                                                    "n.mtx");
      },
      2);
  CHECK(contains(what, "does not fit the index type"));
}

TEST_CASE("the shared datasets read with the manifests' shapes (skipped when absent)") {
  const std::string dir = test::shared_data_dir();
  if (dir.empty()) {
    MESSAGE("skipped: ../shared/data is absent");
    return;
  }
  const auto m = io::read_matrix_market<float>(dir + "/10x_pbmc_top2000/counts.mtx.gz", {.require_counts = true});
  CHECK(m.rows() == 4271);
  CHECK(m.cols() == 2000);
  CHECK(m.nnz() == 870065);
  validate(m.view());
  // biase holds log-normalised reals: reading it as counts fails at the first fractional value.
  const auto what =
      error_of([&] { io::read_matrix_market<float>(dir + "/biase/counts.mtx.gz", {.require_counts = true}); });
  CHECK(contains(what, "non-integer count"));
}
