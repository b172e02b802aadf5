// Tests of cellkit/core/csr_matrix.hpp: construction from CSR arrays (validated), from triplets
// (sorted, duplicates summed, out-of-range rejected), views and moves.

#include <cellkit/core/csr_matrix.hpp>

#include "support/test_support.hpp"

#include <cstdint>
#include <string>
#include <vector>

using cellkit::csr_matrix;
using cellkit::index_t;

namespace {

template <class View>
std::vector<double> to_dense(const View& a) {
  std::vector<double> dense(static_cast<std::size_t>(a.rows() * a.cols()), 0.0);
  for (index_t i = 0; i < a.rows(); ++i)
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p)
      dense[static_cast<std::size_t>(i * a.cols() + static_cast<index_t>(a.indices()[p]))] += a.values()[p];
  return dense;
}

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("csr_matrix: empty matrices") {
  const csr_matrix<double> a;
  CHECK(a.rows() == 0);
  CHECK(a.cols() == 0);
  CHECK(a.nnz() == 0);
  cellkit::validate(a.view());

  const csr_matrix<float, std::int64_t> b(3, 4);
  CHECK(b.rows() == 3);
  CHECK(b.cols() == 4);
  CHECK(b.nnz() == 0);
  CHECK(b.indptr().size() == 4);
  for (auto p : b.indptr()) CHECK(p == 0);
  cellkit::validate(b.view());

  CHECK_THROWS_AS(csr_matrix<double>(-1, 2), cellkit::invalid_argument);
}

TEST_CASE("csr_matrix: from CSR arrays, views share the storage") {
  // [[1 0 2]
  //  [0 0 0]
  //  [0 3 0]]
  csr_matrix<double> a(3, 3, std::vector<std::int32_t>{0, 2, 2, 3}, std::vector<std::int32_t>{0, 2, 1},
                       std::vector<double>{1, 2, 3});
  CHECK(a.nnz() == 3);
  CHECK(to_dense(a.view()) == std::vector<double>{1, 0, 2, 0, 0, 0, 0, 3, 0});

  auto mutable_view = a.view();
  static_assert(std::is_same_v<decltype(mutable_view), cellkit::csr_view<double, std::int32_t>>);
  const auto& const_a = a;
  auto const_view = const_a.view();
  static_assert(std::is_same_v<decltype(const_view), cellkit::csr_view<const double, std::int32_t>>);
  CHECK(mutable_view.values() == const_view.values());
  CHECK(mutable_view.indptr() == const_a.indptr().data());
  mutable_view.values()[1] = 5;
  CHECK(const_a.values()[1] == 5);
  a.values()[0] = -1;
  CHECK(const_view.values()[0] == -1);

  // host_buffers are taken without copying.
  cellkit::host_buffer<std::int64_t> indptr(3), indices(1, std::int64_t{1});
  cellkit::host_buffer<float> values(1, 2.5f);
  indptr[1] = 1;
  indptr[2] = 1;
  const float* values_data = values.data();
  csr_matrix<float, std::int64_t> b(2, 2, std::move(indptr), std::move(indices), std::move(values));
  CHECK(b.view().values() == values_data);
  CHECK(to_dense(b.view()) == std::vector<double>{0, 2.5, 0, 0});
}

TEST_CASE("csr_matrix: malformed CSR arrays are rejected") {
  using v32 = std::vector<std::int32_t>;
  using vd = std::vector<double>;
  // indptr of the wrong length
  CHECK_THROWS_AS(csr_matrix<double>(2, 2, v32{0, 1}, v32{0}, vd{1}), cellkit::dimension_mismatch);
  // indices and values differ in length
  CHECK_THROWS_AS(csr_matrix<double>(1, 2, v32{0, 1}, v32{0}, vd{1, 2}), cellkit::dimension_mismatch);
  // indptr does not end at nnz
  CHECK_THROWS_AS(csr_matrix<double>(1, 2, v32{0, 1}, v32{0, 1}, vd{1, 2}), cellkit::dimension_mismatch);
  // unsorted row
  const auto unsorted = message_of([] { csr_matrix<double>(1, 3, v32{0, 2}, v32{2, 0}, vd{1, 2}); });
  CHECK(unsorted.find("not sorted") != std::string::npos);
  CHECK_THROWS_AS(csr_matrix<double>(1, 3, v32{0, 2}, v32{2, 0}, vd{1, 2}), cellkit::invalid_argument);
  // duplicate column
  CHECK_THROWS_AS(csr_matrix<double>(1, 3, v32{0, 2}, v32{1, 1}, vd{1, 2}), cellkit::invalid_argument);
  // column out of range
  CHECK_THROWS_AS(csr_matrix<double>(1, 3, v32{0, 1}, v32{3}, vd{1}), cellkit::invalid_argument);
  // decreasing indptr
  CHECK_THROWS_AS(csr_matrix<double>(2, 3, v32{0, 1, 0}, v32{}, vd{}), cellkit::invalid_argument);
  CHECK_THROWS_AS(csr_matrix<double>(1, 3, v32{1, 1}, v32{0}, vd{1}), cellkit::invalid_argument);
  CHECK_THROWS_AS(csr_matrix<double>(2, 3, v32{0, 2, 1}, v32{0}, vd{1}), cellkit::invalid_argument);
}

TEST_CASE("csr_matrix::from_triplets sorts by (row, column) and sums duplicates") {
  // Unordered input, a duplicate (1, 2) given three times, and an empty row 2.
  const std::vector<std::int32_t> rows{3, 1, 0, 1, 1, 0, 1};
  const std::vector<std::int32_t> cols{0, 2, 3, 0, 2, 1, 2};
  const std::vector<double> values{7, 1, 2, 4, 10, 3, 100};
  const auto a = csr_matrix<double>::from_triplets(4, 4, rows, cols, values);
  CHECK(a.rows() == 4);
  CHECK(a.cols() == 4);
  CHECK(a.nnz() == 5);
  cellkit::validate(a.view());
  const std::vector<std::int32_t> expected_indptr{0, 2, 4, 4, 5};
  const std::vector<std::int32_t> expected_indices{1, 3, 0, 2, 0};
  const std::vector<double> expected_values{3, 2, 4, 111, 7};
  CHECK(std::vector<std::int32_t>(a.indptr().begin(), a.indptr().end()) == expected_indptr);
  CHECK(std::vector<std::int32_t>(a.indices().begin(), a.indices().end()) == expected_indices);
  CHECK(std::vector<double>(a.values().begin(), a.values().end()) == expected_values);
}

TEST_CASE("csr_matrix::from_triplets keeps explicit zeros, handles empty input and int64 / float") {
  const std::vector<std::int64_t> rows{0, 0};
  const std::vector<std::int64_t> cols{1, 1};
  const std::vector<float> values{1.5f, -1.5f};
  const auto a = csr_matrix<float, std::int64_t>::from_triplets(2, 3, rows, cols, values);
  CHECK(a.nnz() == 1);
  CHECK(a.values()[0] == 0.0f);

  const auto empty = csr_matrix<float, std::int64_t>::from_triplets(2, 3, {}, {}, {});
  CHECK(empty.nnz() == 0);
  CHECK(empty.rows() == 2);
  cellkit::validate(empty.view());
}

TEST_CASE("csr_matrix::from_triplets agrees with a dense accumulation on random input") {
  std::uint64_t state = 12345;
  auto next = [&state](std::uint64_t bound) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % bound;
  };
  const index_t m = 37, n = 23;
  std::vector<std::int32_t> rows, cols;
  std::vector<double> values;
  std::vector<double> dense(static_cast<std::size_t>(m * n), 0.0);
  for (int k = 0; k < 500; ++k) {
    rows.push_back(static_cast<std::int32_t>(next(m)));
    cols.push_back(static_cast<std::int32_t>(next(n)));
    values.push_back(static_cast<double>(next(9)) - 4.0);  // small integers: sums are exact
    dense[static_cast<std::size_t>(rows.back() * n + cols.back())] += values.back();
  }
  const auto a = csr_matrix<double>::from_triplets(m, n, rows, cols, values);
  cellkit::validate(a.view());
  CHECK(to_dense(a.view()) == dense);
}

TEST_CASE("csr_matrix::from_triplets sums duplicates in input order, in short and long rows") {
  // In float, (1e8 + 1) - 1e8 == 0 but (1e8 - 1e8) + 1 == 1: the result shows the summation order.
  for (const int row_length : {3, 100}) {
    CAPTURE(row_length);
    std::vector<std::int32_t> rows, cols;
    std::vector<float> values;
    // Filler entries in decreasing column order (so the row needs sorting), then the duplicates.
    for (int j = row_length - 3; j > 0; --j) {
      rows.push_back(0);
      cols.push_back(j + 1);
      values.push_back(static_cast<float>(j));
    }
    for (const float v : {1e8f, 1.0f, -1e8f}) {
      rows.push_back(0);
      cols.push_back(0);
      values.push_back(v);
    }
    const auto a = csr_matrix<float>::from_triplets(1, row_length + 1, rows, cols, values);
    cellkit::validate(a.view());
    CHECK(a.nnz() == row_length - 2);
    CHECK(a.indices()[0] == 0);
    CHECK(a.values()[0] == 0.0f);
    for (index_t p = 1; p < a.nnz(); ++p) CHECK(a.values()[p] == static_cast<float>(a.indices()[p] - 1));
  }
}

TEST_CASE("csr_matrix::from_triplets rejects bad input with messages naming the argument") {
  const std::vector<std::int32_t> ok{0, 1};
  const std::vector<double> two{1, 2};
  const auto bad_row = message_of([&] {
    csr_matrix<double>::from_triplets(2, 2, std::vector<std::int32_t>{0, 2}, ok, two);
  });
  CHECK(bad_row.find("row_indices") != std::string::npos);
  CHECK(bad_row.find("entry 1 is row 2") != std::string::npos);
  CHECK(bad_row.find("outside [0, 2)") != std::string::npos);

  const auto bad_col = message_of([&] {
    csr_matrix<double>::from_triplets(2, 2, ok, std::vector<std::int32_t>{-1, 0}, two);
  });
  CHECK(bad_col.find("col_indices") != std::string::npos);
  CHECK(bad_col.find("entry 0 is column -1") != std::string::npos);

  CHECK_THROWS_AS(csr_matrix<double>::from_triplets(2, 2, ok, ok, std::vector<double>{1}), cellkit::dimension_mismatch);
  CHECK_THROWS_AS(csr_matrix<double>::from_triplets(2, 2, ok, std::vector<std::int32_t>{0}, two),
                  cellkit::dimension_mismatch);
  CHECK_THROWS_AS(csr_matrix<double>::from_triplets(-1, 2, {}, {}, {}), cellkit::invalid_argument);
}

TEST_CASE("csr_matrix: moving transfers the arrays and leaves an empty matrix") {
  auto a = csr_matrix<double>::from_triplets(2, 2, std::vector<std::int32_t>{0, 1}, std::vector<std::int32_t>{1, 0},
                                             std::vector<double>{1, 2});
  const double* values = a.view().values();
  csr_matrix<double> b(std::move(a));
  CHECK(b.view().values() == values);
  CHECK(b.nnz() == 2);
  CHECK(a.rows() == 0);  // NOLINT(bugprone-use-after-move): documented moved-from state
  CHECK(a.nnz() == 0);
  cellkit::validate(a.view());
  csr_matrix<double> c;
  c = std::move(b);
  CHECK(c.view().values() == values);
  CHECK(to_dense(c.view()) == std::vector<double>{0, 1, 2, 0});
}
