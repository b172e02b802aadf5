// Tests of cellkit/interop/eigen.hpp: zero-copy views of Eigen dense and sparse storage (same
// pointers, writes visible both ways, strides of blocks), const-correctness, rejected inputs, maps
// back to Eigen, and a cellkit::gemm on views of Eigen matrices against Eigen's own product.

#include <cellkit/interop/eigen.hpp>

#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/execution/gemm.hpp>

#include "support/test_support.hpp"

#include <Eigen/Dense>
#include <Eigen/SparseCore>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

using cellkit::index_t;
using row_major_d = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using row_major_f = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

row_major_d counting_matrix(index_t rows, index_t cols) {
  row_major_d m(rows, cols);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) m(i, j) = static_cast<double>(10 * i + j);
  return m;
}

}  // namespace

TEST_CASE("as_matrix_view of a row-major matrix is zero-copy and writes are shared") {
  row_major_d m = counting_matrix(4, 5);
  auto view = cellkit::as_matrix_view(m);
  static_assert(std::is_same_v<decltype(view), cellkit::matrix_view<double>>);
  CHECK(view.data() == m.data());
  CHECK(view.rows() == 4);
  CHECK(view.cols() == 5);
  CHECK(view.stride() == 5);
  for (index_t i = 0; i < 4; ++i)
    for (index_t j = 0; j < 5; ++j) CHECK(view(i, j) == m(i, j));
  view(2, 3) = -1;
  CHECK(m(2, 3) == -1);
  m(3, 4) = 99;
  CHECK(view(3, 4) == 99);
}

TEST_CASE("as_matrix_view of blocks carries the parent's row stride") {
  row_major_d m = counting_matrix(6, 8);
  auto block = cellkit::as_matrix_view(m.block(1, 2, 3, 4));  // a temporary Block is fine: it does not own
  CHECK(block.data() == &m(1, 2));
  CHECK(block.rows() == 3);
  CHECK(block.cols() == 4);
  CHECK(block.stride() == 8);
  CHECK_FALSE(block.is_contiguous());
  for (index_t i = 0; i < 3; ++i)
    for (index_t j = 0; j < 4; ++j) CHECK(block(i, j) == m(1 + i, 2 + j));
  block(0, 0) = 1000;
  CHECK(m(1, 2) == 1000);

  // middleRows of a row-major matrix, a Map with an outer stride, a Ref.
  auto rows = cellkit::as_matrix_view(m.middleRows(2, 3));
  CHECK(rows.data() == m.row(2).data());
  CHECK(rows.stride() == 8);
  CHECK(rows.is_contiguous());  // stride 8 == cols 8
  std::vector<double> storage(3 * 7, 0.0);
  Eigen::Map<row_major_d, Eigen::Unaligned, Eigen::OuterStride<>> map(storage.data(), 3, 5, Eigen::OuterStride<>(7));
  auto map_view = cellkit::as_matrix_view(map);
  CHECK(map_view.data() == storage.data());
  CHECK(map_view.stride() == 7);
  map_view(2, 4) = 5;
  CHECK(storage[2 * 7 + 4] == 5);
  Eigen::Ref<row_major_d, 0, Eigen::OuterStride<>> ref(m.block(0, 1, 2, 3));
  auto ref_view = cellkit::as_matrix_view(ref);
  CHECK(ref_view.data() == &m(0, 1));
  CHECK(ref_view.stride() == 8);
}

TEST_CASE("as_matrix_view: single columns, transposes of column-major matrices, fixed sizes") {
  Eigen::VectorXd v = Eigen::VectorXd::LinSpaced(4, 0, 3);
  auto column = cellkit::as_matrix_view(v);
  CHECK(column.rows() == 4);
  CHECK(column.cols() == 1);
  CHECK(column.data() == v.data());
  CHECK(column(3, 0) == 3);

  row_major_d m = counting_matrix(3, 4);
  auto col2 = cellkit::as_matrix_view(m.col(2));  // a column of a row-major matrix: stride 4
  CHECK(col2.rows() == 3);
  CHECK(col2.cols() == 1);
  CHECK(col2.stride() == 4);
  CHECK(col2(2, 0) == m(2, 2));

  Eigen::MatrixXd column_major(2, 3);
  column_major << 1, 2, 3, 4, 5, 6;
  auto transposed = cellkit::as_matrix_view(column_major.transpose());  // 3 x 2 view, same memory
  CHECK(transposed.data() == column_major.data());
  CHECK(transposed.rows() == 3);
  CHECK(transposed.cols() == 2);
  for (index_t i = 0; i < 3; ++i)
    for (index_t j = 0; j < 2; ++j) CHECK(transposed(i, j) == column_major(j, i));

  Eigen::Matrix<float, 2, 3, Eigen::RowMajor> fixed;
  fixed << 1, 2, 3, 4, 5, 6;
  auto fixed_view = cellkit::as_matrix_view(fixed);
  static_assert(std::is_same_v<decltype(fixed_view), cellkit::matrix_view<float>>);
  CHECK(fixed_view(1, 2) == 6);
  CHECK(fixed_view.stride() == 3);

  Eigen::Array<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> array(2, 2);
  array << 1, 2, 3, 4;
  CHECK(cellkit::as_matrix_view(array)(1, 0) == 3);

  row_major_d empty(0, 3);
  auto empty_view = cellkit::as_matrix_view(empty);
  CHECK(empty_view.rows() == 0);
  CHECK(empty_view.cols() == 3);
}

TEST_CASE("as_matrix_view is const-correct") {
  row_major_d m = counting_matrix(3, 3);
  const row_major_d& const_m = m;
  auto a = cellkit::as_matrix_view(const_m);
  static_assert(std::is_same_v<decltype(a), cellkit::matrix_view<const double>>);
  CHECK(a.data() == m.data());

  Eigen::Map<const row_major_d> const_map(m.data(), 3, 3);
  static_assert(std::is_same_v<decltype(cellkit::as_matrix_view(const_map)), cellkit::matrix_view<const double>>);
  static_assert(
      std::is_same_v<decltype(cellkit::as_matrix_view(const_m.block(0, 0, 2, 2))), cellkit::matrix_view<const double>>);
  Eigen::Ref<const row_major_d> const_ref(m);
  static_assert(std::is_same_v<decltype(cellkit::as_matrix_view(const_ref)), cellkit::matrix_view<const double>>);
  static_assert(std::is_same_v<decltype(cellkit::as_matrix_view(m.block(0, 0, 2, 2))), cellkit::matrix_view<double>>);

  Eigen::VectorXd v(3);
  const Eigen::VectorXd& const_v = v;
  static_assert(std::is_same_v<decltype(cellkit::as_vector_view(const_v)), cellkit::vector_view<const double>>);
  static_assert(std::is_same_v<decltype(cellkit::as_vector_view(v)), cellkit::vector_view<double>>);
}

TEST_CASE("as_matrix_view rejects a runtime inner stride != 1 with a message") {
  std::vector<double> storage(12, 0.0);
  using strided_map = Eigen::Map<row_major_d, Eigen::Unaligned, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;
  strided_map map(storage.data(), 2, 3, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(6, 2));
  CHECK_THROWS_AS(cellkit::as_matrix_view(map), cellkit::invalid_argument);
  const auto message = message_of([&] { cellkit::as_matrix_view(map); });
  CHECK(message.find("as_matrix_view") != std::string::npos);
  CHECK(message.find("inner stride 2") != std::string::npos);
}

TEST_CASE("as_vector_view of vectors, rows and segments is zero-copy") {
  Eigen::VectorXd v = Eigen::VectorXd::LinSpaced(6, 0, 5);
  auto view = cellkit::as_vector_view(v);
  CHECK(view.data() == v.data());
  CHECK(view.size() == 6);
  view[1] = 42;
  CHECK(v(1) == 42);
  v(5) = -5;
  CHECK(view[5] == -5);

  Eigen::RowVectorXf r = Eigen::RowVectorXf::Ones(4);
  auto row_view = cellkit::as_vector_view(r);
  static_assert(std::is_same_v<decltype(row_view), cellkit::vector_view<float>>);
  CHECK(row_view.data() == r.data());
  CHECK(row_view.size() == 4);

  auto segment = cellkit::as_vector_view(v.segment(2, 3));
  CHECK(segment.data() == v.data() + 2);
  CHECK(segment.size() == 3);

  row_major_d m = counting_matrix(3, 4);
  auto row1 = cellkit::as_vector_view(m.row(1));
  CHECK(row1.data() == &m(1, 0));
  CHECK(row1.size() == 4);
  CHECK(row1[3] == m(1, 3));

  Eigen::MatrixXd column_major = Eigen::MatrixXd::Zero(3, 2);
  auto col = cellkit::as_vector_view(column_major.col(1));
  CHECK(col.data() == &column_major(0, 1));

  // A column of a row-major matrix is not contiguous.
  CHECK_THROWS_AS(cellkit::as_vector_view(m.col(1)), cellkit::invalid_argument);
  CHECK(message_of([&] { cellkit::as_vector_view(m.col(1)); }).find("inner stride 4") != std::string::npos);
}

TEST_CASE("to_row_major copies a column-major matrix into a viewable one") {
  Eigen::MatrixXd column_major(2, 3);
  column_major << 1, 2, 3, 4, 5, 6;
  auto row_major = cellkit::to_row_major(column_major);
  static_assert(std::is_same_v<decltype(row_major), row_major_d>);
  CHECK(row_major.data() != column_major.data());
  CHECK(row_major == column_major);
  auto view = cellkit::as_matrix_view(row_major);
  CHECK(view(1, 0) == 4);
  CHECK(view(0, 2) == 3);
  auto from_expression = cellkit::to_row_major(column_major * 2.0);
  CHECK(from_expression(1, 2) == 12);
}

TEST_CASE("as_eigen maps matrix and vector views without copying") {
  std::vector<double> storage(3 * 5);
  for (std::size_t k = 0; k < storage.size(); ++k) storage[k] = static_cast<double>(k);
  cellkit::matrix_view<double> view(storage.data(), 3, 4, 5);
  auto map = cellkit::as_eigen(view);
  static_assert(std::is_same_v<decltype(map), Eigen::Map<row_major_d, Eigen::Unaligned, Eigen::OuterStride<>>>);
  CHECK(map.data() == storage.data());
  CHECK(map.rows() == 3);
  CHECK(map.cols() == 4);
  CHECK(map.outerStride() == 5);
  CHECK(map(2, 3) == 13);
  map(1, 1) = -7;
  CHECK(view(1, 1) == -7);

  cellkit::matrix_view<const double> const_view = view;
  auto const_map = cellkit::as_eigen(const_view);
  static_assert(
      std::is_same_v<decltype(const_map), Eigen::Map<const row_major_d, Eigen::Unaligned, Eigen::OuterStride<>>>);
  CHECK(const_map(1, 1) == -7);

  // Round trip: Eigen -> view -> Eigen keeps pointer and strides.
  row_major_d m = counting_matrix(5, 6);
  auto back = cellkit::as_eigen(cellkit::as_matrix_view(m.block(1, 1, 3, 2)));
  CHECK(back.data() == &m(1, 1));
  CHECK(back == m.block(1, 1, 3, 2));

  std::vector<float> values{1, 2, 3};
  auto vector_map = cellkit::as_eigen(cellkit::vector_view<float>(values.data(), 3));
  static_assert(std::is_same_v<decltype(vector_map), Eigen::Map<Eigen::VectorXf>>);
  CHECK(vector_map.data() == values.data());
  vector_map(2) = 30;
  CHECK(values[2] == 30);
  auto const_vector_map = cellkit::as_eigen(cellkit::vector_view<const float>(values.data(), 3));
  static_assert(std::is_same_v<decltype(const_vector_map), Eigen::Map<const Eigen::VectorXf>>);
  CHECK(const_vector_map.sum() == 33);
}

TEST_CASE("as_csr_view of a compressed row-major SparseMatrix is zero-copy; as_eigen maps it back") {
  Eigen::SparseMatrix<double, Eigen::RowMajor> s(3, 4);
  std::vector<Eigen::Triplet<double>> triplets{{0, 1, 1.5}, {0, 3, 2.0}, {2, 0, -1.0}, {2, 2, 4.0}};
  s.setFromTriplets(triplets.begin(), triplets.end());
  REQUIRE(s.isCompressed());

  auto view = cellkit::as_csr_view(s);
  static_assert(std::is_same_v<decltype(view), cellkit::csr_view<double, int>>);
  CHECK(view.rows() == 3);
  CHECK(view.cols() == 4);
  CHECK(view.nnz() == 4);
  CHECK(view.indptr() == s.outerIndexPtr());
  CHECK(view.indices() == s.innerIndexPtr());
  CHECK(view.values() == s.valuePtr());
  CHECK(view.row_begin(1) == view.row_end(1));
  CHECK(view.indices()[view.row_begin(2) + 1] == 2);
  view.values()[0] = 10;
  CHECK(s.coeff(0, 1) == 10);

  const auto& const_s = s;
  auto const_view = cellkit::as_csr_view(const_s);
  static_assert(std::is_same_v<decltype(const_view), cellkit::csr_view<const double, int>>);

  auto map = cellkit::as_eigen(const_view);
  static_assert(std::is_same_v<decltype(map), Eigen::Map<const Eigen::SparseMatrix<double, Eigen::RowMajor, int>>>);
  CHECK(map.valuePtr() == s.valuePtr());
  CHECK(map.outerIndexPtr() == s.outerIndexPtr());
  CHECK(map.innerIndexPtr() == s.innerIndexPtr());
  CHECK(Eigen::MatrixXd(map) == Eigen::MatrixXd(s));

  auto mutable_map = cellkit::as_eigen(view);
  static_assert(std::is_same_v<decltype(mutable_map), Eigen::Map<Eigen::SparseMatrix<double, Eigen::RowMajor, int>>>);
  mutable_map.coeffRef(2, 2) = 8;
  CHECK(s.coeff(2, 2) == 8);

  // A cellkit csr_matrix with int64 indices, mapped into Eigen and multiplied.
  auto a = cellkit::csr_matrix<float, std::int64_t>::from_triplets(
      2, 3, std::vector<std::int64_t>{0, 1, 1}, std::vector<std::int64_t>{2, 0, 1}, std::vector<float>{1, 2, 3});
  auto a_map = cellkit::as_eigen(std::as_const(a).view());
  CHECK(a_map.valuePtr() == a.values().data());
  Eigen::VectorXf x(3);
  x << 1, 10, 100;
  Eigen::VectorXf y = a_map * x;
  CHECK(y(0) == 100);
  CHECK(y(1) == 32);

  // Empty matrices.
  Eigen::SparseMatrix<float, Eigen::RowMajor> empty(0, 0);
  CHECK(cellkit::as_csr_view(empty).nnz() == 0);
  auto empty_map = cellkit::as_eigen(cellkit::csr_view<const float>{});
  CHECK(empty_map.rows() == 0);
  CHECK(empty_map.nonZeros() == 0);
}

TEST_CASE("as_csr_view rejects an uncompressed SparseMatrix and says to call makeCompressed()") {
  Eigen::SparseMatrix<double, Eigen::RowMajor> s(3, 3);
  s.reserve(Eigen::VectorXi::Constant(3, 2));
  s.insert(0, 0) = 1;
  s.insert(2, 1) = 2;
  REQUIRE_FALSE(s.isCompressed());
  CHECK_THROWS_AS(cellkit::as_csr_view(s), cellkit::invalid_argument);
  const auto message = message_of([&] { cellkit::as_csr_view(s); });
  CHECK(message.find("makeCompressed()") != std::string::npos);
  s.makeCompressed();
  auto view = cellkit::as_csr_view(s);
  CHECK(view.nnz() == 2);
  cellkit::validate(view);
}

TEST_CASE_TEMPLATE("cellkit::gemm on views of Eigen matrices equals Eigen's product", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = cellkit::test::policy_of<P>();
  row_major_d a = row_major_d::Random(7, 5);
  row_major_d b_storage = row_major_d::Random(9, 8);
  auto b = b_storage.block(2, 1, 5, 6);  // strided operand
  row_major_d c(7, 6);
  cellkit::gemm(policy, cellkit::as_matrix_view(std::as_const(a)), cellkit::as_matrix_view(b),
                cellkit::as_matrix_view(c));
  const Eigen::MatrixXd expected = a * b;
  CHECK((c - expected).cwiseAbs().maxCoeff() <= 1e-12);

  // Transposed operand from a column-major Eigen matrix (its transpose is a row-major view).
  Eigen::MatrixXf at = Eigen::MatrixXf::Random(4, 3);  // column-major 4 x 3: at.transpose() is 3 x 4 row-major
  row_major_f bf = row_major_f::Random(4, 2);
  row_major_f cf(3, 2);
  cellkit::gemm(policy, cellkit::as_matrix_view(at.transpose()), cellkit::as_matrix_view(bf),
                cellkit::as_matrix_view(cf));
  const Eigen::MatrixXf expected_f = at.transpose() * bf;
  CHECK((cf - expected_f).cwiseAbs().maxCoeff() <= 1e-5f);
}
