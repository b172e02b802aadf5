// Tests of cellkit/interop/xtensor.hpp: zero-copy views of xtensor containers and xtensor adaptors
// of cellkit views (same pointers, writes visible both ways), strides, runtime checks, constness.

#include <cellkit/interop/xtensor.hpp>

#include "support/test_support.hpp"

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include <string>
#include <type_traits>
#include <vector>

using cellkit::index_t;

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

}  // namespace

TEST_CASE("as_matrix_view of an xt::xtensor<T, 2> is zero-copy") {
  xt::xtensor<double, 2> a = {{1, 2, 3}, {4, 5, 6}};
  auto view = cellkit::as_matrix_view(a);
  static_assert(std::is_same_v<decltype(view), cellkit::matrix_view<double>>);
  CHECK(view.data() == a.data());
  CHECK(view.rows() == 2);
  CHECK(view.cols() == 3);
  CHECK(view.stride() == 3);
  for (index_t i = 0; i < 2; ++i)
    for (index_t j = 0; j < 3; ++j) CHECK(view(i, j) == a(static_cast<std::size_t>(i), static_cast<std::size_t>(j)));
  view(1, 2) = -6;
  CHECK(a(1, 2) == -6);
  a(0, 0) = 10;
  CHECK(view(0, 0) == 10);

  const auto& const_a = a;
  auto const_view = cellkit::as_matrix_view(const_a);
  static_assert(std::is_same_v<decltype(const_view), cellkit::matrix_view<const double>>);
  CHECK(const_view.data() == a.data());

  xt::xtensor<float, 2> column(std::array<std::size_t, 2>{4, 1}, 2.0f);  // strides {1, 0} in xtensor
  auto column_view = cellkit::as_matrix_view(column);
  CHECK(column_view.rows() == 4);
  CHECK(column_view.cols() == 1);
  CHECK(column_view(3, 0) == 2.0f);
}

TEST_CASE("as_matrix_view of xt::xarray checks the dimension at run time") {
  xt::xarray<double> a = {{1, 2}, {3, 4}, {5, 6}};
  auto view = cellkit::as_matrix_view(a);
  CHECK(view.data() == a.data());
  CHECK(view.rows() == 3);
  CHECK(view.cols() == 2);
  CHECK(view(2, 1) == 6);

  xt::xarray<double> three_d = xt::zeros<double>({2, 2, 2});
  CHECK_THROWS_AS(cellkit::as_matrix_view(three_d), cellkit::invalid_argument);
  CHECK(message_of([&] { cellkit::as_matrix_view(three_d); }).find("dimension 3") != std::string::npos);

  xt::xarray<double> one_d = {1.0, 2.0, 3.0};
  auto v = cellkit::as_vector_view(one_d);
  CHECK(v.data() == one_d.data());
  CHECK(v.size() == 3);
  CHECK_THROWS_AS(cellkit::as_vector_view(a), cellkit::invalid_argument);
}

TEST_CASE("as_matrix_view of strided adaptors: row stride kept, column-major strides rejected") {
  std::vector<double> storage(3 * 5);
  for (std::size_t k = 0; k < storage.size(); ++k) storage[k] = static_cast<double>(k);
  // xtensor sizes a strided adaptor by its element count (3 x 4), not by the memory it spans.
  auto padded = xt::adapt(storage.data(), std::size_t{12}, xt::no_ownership(), std::array<std::size_t, 2>{3, 4},
                          std::array<std::ptrdiff_t, 2>{5, 1});
  auto view = cellkit::as_matrix_view(padded);
  CHECK(view.data() == storage.data());
  CHECK(view.rows() == 3);
  CHECK(view.cols() == 4);
  CHECK(view.stride() == 5);
  CHECK(view(2, 3) == 13);

  auto column_major = xt::adapt(storage.data(), std::size_t{12}, xt::no_ownership(), std::array<std::size_t, 2>{3, 4},
                                std::array<std::ptrdiff_t, 2>{1, 3});
  CHECK_THROWS_AS(cellkit::as_matrix_view(column_major), cellkit::invalid_argument);
  const auto message = message_of([&] { cellkit::as_matrix_view(column_major); });
  CHECK(message.find("row-major") != std::string::npos);
  CHECK(message.find("strides {1, 3}") != std::string::npos);
}

TEST_CASE("as_vector_view of xt::xtensor<T, 1>") {
  xt::xtensor<float, 1> v = {1.0f, 2.0f, 3.0f, 4.0f};
  auto view = cellkit::as_vector_view(v);
  static_assert(std::is_same_v<decltype(view), cellkit::vector_view<float>>);
  CHECK(view.data() == v.data());
  CHECK(view.size() == 4);
  view[2] = 30.0f;
  CHECK(v(2) == 30.0f);
  const auto& const_v = v;
  static_assert(std::is_same_v<decltype(cellkit::as_vector_view(const_v)), cellkit::vector_view<const float>>);

  std::vector<float> storage(8, 1.0f);
  auto strided = xt::adapt(storage.data(), std::size_t{4}, xt::no_ownership(), std::array<std::size_t, 1>{4},
                           std::array<std::ptrdiff_t, 1>{2});
  CHECK_THROWS_AS(cellkit::as_vector_view(strided), cellkit::invalid_argument);
}

TEST_CASE("as_xtensor adapts a matrix_view without copying, with its strides") {
  std::vector<double> storage(3 * 5);
  for (std::size_t k = 0; k < storage.size(); ++k) storage[k] = static_cast<double>(k);
  cellkit::matrix_view<double> view(storage.data(), 3, 4, 5);
  auto x = cellkit::as_xtensor(view);
  CHECK(x.data() == storage.data());
  CHECK(x.shape()[0] == 3);
  CHECK(x.shape()[1] == 4);
  CHECK(x.strides()[0] == 5);
  CHECK(x.strides()[1] == 1);
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 4; ++j) CHECK(x(i, j) == storage[i * 5 + j]);
  x(2, 1) = -1;
  CHECK(view(2, 1) == -1);
  view(0, 3) = 42;
  CHECK(x(0, 3) == 42);

  // xtensor expressions work on the adaptor, and an owned copy is contiguous.
  xt::xtensor<double, 2> doubled = 2.0 * x;
  CHECK(doubled(1, 2) == 2 * storage[1 * 5 + 2]);
  CHECK(doubled.strides()[0] == 4);

  // Round trip back to a cellkit view keeps pointer and stride.
  auto back = cellkit::as_matrix_view(x);
  CHECK(back.data() == storage.data());
  CHECK(back.stride() == 5);
  CHECK(back.rows() == 3);

  // Read-only view -> read-only adaptor.
  cellkit::matrix_view<const double> const_view = view;
  auto cx = cellkit::as_xtensor(const_view);
  static_assert(std::is_same_v<std::remove_pointer_t<decltype(cx.data())>, const double>);
  CHECK(cx(2, 1) == -1);
  auto const_back = cellkit::as_matrix_view(cx);
  static_assert(std::is_same_v<decltype(const_back), cellkit::matrix_view<const double>>);

  // Single rows and columns use xtensor's stride-0 convention and broadcast correctly.
  auto row = cellkit::as_xtensor(view.row_block(1, 1));
  CHECK(row.strides()[0] == 0);
  xt::xtensor<double, 2> broadcast = x + row;
  CHECK(broadcast(2, 3) == x(2, 3) + x(1, 3));

  cellkit::matrix_view<double> empty(nullptr, 0, 3);
  auto empty_x = cellkit::as_xtensor(empty);
  CHECK(empty_x.size() == 0);
}

TEST_CASE("as_xtensor adapts a vector_view without copying") {
  std::vector<float> values{1, 2, 3};
  auto x = cellkit::as_xtensor(cellkit::vector_view<float>(values.data(), 3));
  CHECK(x.data() == values.data());
  CHECK(x.shape()[0] == 3);
  x(1) = 20;
  CHECK(values[1] == 20);
  CHECK(xt::sum(x)() == 24.0f);
  auto cx = cellkit::as_xtensor(cellkit::vector_view<const float>(values.data(), 3));
  static_assert(std::is_same_v<std::remove_pointer_t<decltype(cx.data())>, const float>);
  auto back = cellkit::as_vector_view(cx);
  static_assert(std::is_same_v<decltype(back), cellkit::vector_view<const float>>);
  CHECK(back.data() == values.data());
}
