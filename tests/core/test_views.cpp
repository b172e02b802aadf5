#include <cellkit/core/views.hpp>

#include "support/test_support.hpp"

#include <numeric>

using namespace cellkit;

TEST_CASE("matrix_view indexes row-major with a row stride") {
  std::vector<int> data(12);
  std::iota(data.begin(), data.end(), 0);
  matrix_view<int> full(data.data(), 3, 4);
  CHECK(full(2, 3) == 11);
  CHECK(full.is_contiguous());
  matrix_view<int> left(data.data(), 3, 2, 4);  // first two columns
  CHECK(left(1, 1) == 5);
  CHECK(!left.is_contiguous());
  CHECK(left.row(2)[1] == 9);
  CHECK(left.row_block(1, 2)(0, 0) == 4);
  CHECK_THROWS_AS(left.row_block(2, 2), invalid_argument);
  matrix_view<const int> read_only = full;  // mutable -> const converts implicitly
  CHECK(read_only(0, 1) == 1);
  static_assert(!std::is_convertible_v<matrix_view<const int>, matrix_view<int>>);
  static_assert(std::is_trivially_copyable_v<matrix_view<float>>);
}

TEST_CASE("matrix_view rejects inconsistent extents with the argument named") {
  std::vector<float> data(10);
  CHECK_THROWS_WITH_AS(matrix_view<float>(data.data(), 2, 5, 4),
                       "matrix_view: invalid argument 'stride': row stride 4 is smaller than cols 5", invalid_argument);
  CHECK_THROWS_AS(matrix_view<float>(data.data(), -1, 5), invalid_argument);
  CHECK_THROWS_AS(matrix_view<float>(nullptr, 2, 2), invalid_argument);
  CHECK_NOTHROW(matrix_view<float>(nullptr, 0, 7));
}

TEST_CASE("vector_view and make_vector_view") {
  std::vector<double> data = {1, 2, 3};
  auto v = make_vector_view(data.data(), 3);
  CHECK(v.size() == 3);
  CHECK(v[2] == 3);
  double sum = 0;
  for (double x : v) sum += x;
  CHECK(sum == 6);
  vector_view<const double> c = v;
  CHECK(c.data() == data.data());
  CHECK_THROWS_AS(make_vector_view<double>(nullptr, 3), invalid_argument);
}

TEST_CASE("csr_view accessors and validate") {
  // [[1 0 2] [0 0 0] [0 3 0]]
  std::vector<int> indptr = {0, 2, 2, 3};
  std::vector<int> indices = {0, 2, 1};
  std::vector<float> values = {1, 2, 3};
  csr_view<float, int> a(3, 3, 3, indptr.data(), indices.data(), values.data());
  CHECK(a.row_end(0) - a.row_begin(0) == 2);
  CHECK(a.row_end(1) == a.row_begin(1));
  CHECK_NOTHROW(validate(a));
  csr_view<const float, int> c = a;
  CHECK(c.values()[2] == 3);

  indices = {2, 0, 1};  // unsorted row 0
  CHECK_THROWS_WITH_AS(validate(a),
                       "validate(csr): invalid argument 'indices': row 0 is not sorted or has a duplicate column",
                       invalid_argument);
  indices = {0, 2, 1};
  indptr = {0, 2, 1, 3};  // decreasing
  CHECK_THROWS_WITH_AS(validate(a), "validate(csr): invalid argument 'indptr': decreases at row 1", invalid_argument);
  indptr = {0, 2, 2, 2};  // ends before nnz
  CHECK_THROWS_AS(validate(a), invalid_argument);
  // an interior row that points past nnz must be caught before any index is read
  std::vector<int> short_indptr = {0, 1, 0};
  csr_view<float, int> past_end(2, 3, 0, short_indptr.data(), nullptr, nullptr);
  CHECK_THROWS_WITH_AS(validate(past_end), "validate(csr): invalid argument 'indptr': row 0 ends at 1, past nnz = 0",
                       invalid_argument);
  using csr = csr_view<float, int>;
  CHECK_THROWS_AS(csr(3, 3, -1, indptr.data(), indices.data(), values.data()), invalid_argument);
  CHECK_THROWS_AS(csr(3, 3, 3, nullptr, indices.data(), values.data()), invalid_argument);
}

TEST_CASE("csr_view accepts unsigned and 64-bit index types") {
  std::vector<std::size_t> indptr = {0, 1};
  std::vector<std::size_t> indices = {4};
  std::vector<double> values = {1.5};
  csr_view<double, std::size_t> a(1, 5, 1, indptr.data(), indices.data(), values.data());
  CHECK_NOTHROW(validate(a));
  indices[0] = 5;
  CHECK_THROWS_AS(validate(a), invalid_argument);
}
