#include <cellkit/execution/spmm.hpp>

#include "support/test_support.hpp"

#include <random>

using namespace cellkit;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

namespace {
template <class To>
std::vector<To> cast_vector(const std::vector<double>& v) {
  std::vector<To> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<To>(v[i]);
  return out;
}
}  // namespace

TEST_CASE_TEMPLATE("spmm matches scipy.sparse on fixture cases", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto cases = cellkit::test::read_fixture_cases("spmm_cases.txt");
  REQUIRE(cases.size() >= 5);
  for (const auto& c : cases) {
    const auto rows = static_cast<index_t>(c.params[0]);
    const auto cols = static_cast<index_t>(c.params[1]);
    const auto nnz = static_cast<index_t>(c.params[2]);
    const auto n = static_cast<index_t>(c.params[3]);
    CAPTURE(rows);
    CAPTURE(n);
    policy_array<P, std::int32_t> indptr(cast_vector<std::int32_t>(c.matrix("indptr")));
    policy_array<P, std::int32_t> indices(cast_vector<std::int32_t>(c.matrix("indices")));
    policy_array<P, double> values(c.matrix("values"));
    policy_array<P, double> x(c.matrix("X"));
    policy_array<P, double> y(c.matrix("Y0"));
    using space = typename policy_array<P, double>::space;
    csr_view<const double, std::int32_t, space> a(rows, cols, nnz, indptr.data(), indices.data(), values.data());
    spmm(policy_of<P>(), a, x.matrix(cols, n), y.matrix(rows, n), spmm_params<double>{c.params[4], c.params[5]});
    const auto got = y.to_host();
    const auto& expected = c.matrix("Y");
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) REQUIRE(cellkit::test::close(got[i], expected[i], 1e-12, 1e-13));
  }
}

TEST_CASE("spmm host results are bit-identical across policies and threads, with int64 indices") {
  std::mt19937_64 rng(11);
  const index_t rows = 3001, cols = 2000, n = 200;  // n not a multiple of the tile
  std::vector<std::int64_t> indptr(1, 0), indices;
  std::vector<float> values;
  std::uniform_int_distribution<int> degree(0, 40);
  std::uniform_int_distribution<std::int64_t> column(0, cols - 1);
  std::normal_distribution<float> normal;
  for (index_t i = 0; i < rows; ++i) {
    std::vector<std::int64_t> row;
    for (int d = degree(rng); d > 0; --d) row.push_back(column(rng));
    std::sort(row.begin(), row.end());
    row.erase(std::unique(row.begin(), row.end()), row.end());
    for (auto j : row) {
      indices.push_back(j);
      values.push_back(normal(rng));
    }
    indptr.push_back(static_cast<std::int64_t>(indices.size()));
  }
  std::vector<float> x(static_cast<std::size_t>(cols * n));
  for (auto& v : x) v = normal(rng);
  csr_view<const float, std::int64_t> a(rows, cols, static_cast<index_t>(values.size()), indptr.data(), indices.data(),
                                        values.data());
  std::vector<float> y_serial(static_cast<std::size_t>(rows * n)), y1(y_serial.size()), y2(y_serial.size());
  matrix_view<const float> xv(x.data(), cols, n);
  spmm(serial{}, a, xv, matrix_view<float>(y_serial.data(), rows, n));
  spmm(openmp{1}, a, xv, matrix_view<float>(y1.data(), rows, n));
  spmm(openmp{2}, a, xv, matrix_view<float>(y2.data(), rows, n));
  CHECK(y_serial == y1);
  CHECK(y_serial == y2);
  // and against a plain double-precision loop
  for (index_t i = 0; i < rows; i += 97) {
    for (index_t j = 0; j < n; ++j) {
      double s = 0;
      for (auto p = indptr[static_cast<std::size_t>(i)]; p < indptr[static_cast<std::size_t>(i) + 1]; ++p)
        s += double(values[static_cast<std::size_t>(p)]) *
             x[static_cast<std::size_t>(indices[static_cast<std::size_t>(p)] * n + j)];
      REQUIRE(cellkit::test::close(y_serial[static_cast<std::size_t>(i * n + j)], s, 1e-5, 1e-5));
    }
  }
}

TEST_CASE("spmm rejects mismatched shapes and malformed CSR") {
  std::vector<int> indptr = {0, 1, 2};
  std::vector<int> indices = {0, 5};  // 5 is out of range for 3 columns
  std::vector<double> values = {1, 2};
  std::vector<double> x(3 * 2), y(2 * 2);
  csr_view<const double, int> bad(2, 3, 2, indptr.data(), indices.data(), values.data());
  CHECK_THROWS_WITH_AS(spmm(serial{}, bad, matrix_view<double>(x.data(), 3, 2), matrix_view<double>(y.data(), 2, 2)),
                       "validate(csr): invalid argument 'indices': column 5 in row 1 is outside [0, 3)",
                       invalid_argument);
  indices[1] = 1;
  csr_view<const double, int> good(2, 3, 2, indptr.data(), indices.data(), values.data());
  CHECK_THROWS_WITH_AS(spmm(serial{}, good, matrix_view<double>(x.data(), 2, 3), matrix_view<double>(y.data(), 2, 3)),
                       "spmm: dimension mismatch: A is 2 x 3 but X is 2 x 3 (A.cols must equal X.rows)",
                       dimension_mismatch);
  CHECK_THROWS_AS(spmm(serial{}, good, matrix_view<double>(x.data(), 3, 2), matrix_view<double>(y.data(), 1, 2)),
                  dimension_mismatch);
  CHECK_NOTHROW(spmm(serial{}, good, matrix_view<double>(x.data(), 3, 2), matrix_view<double>(y.data(), 2, 2)));
}

TEST_CASE("balanced row split covers all rows in order") {
  std::vector<int> indptr = {0, 0, 10, 10, 11, 30, 30};
  for (int parts = 1; parts <= 8; ++parts) {
    index_t previous = 0;
    for (int part = 0; part <= parts; ++part) {
      const index_t first = cellkit::detail::balanced_row_split(indptr.data(), 6, part, parts);
      CHECK(first >= previous);
      previous = first;
    }
    CHECK(cellkit::detail::balanced_row_split(indptr.data(), 6, parts, parts) == 6);
    CHECK(cellkit::detail::balanced_row_split(indptr.data(), 6, 0, parts) == 0);
  }
}
