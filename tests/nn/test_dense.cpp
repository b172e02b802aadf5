#include <cellkit/core/buffer.hpp>
#include <cellkit/nn/dense.hpp>
#include <cellkit/nn/init.hpp>

#include <doctest/doctest.h>

#include <vector>

#include "support/test_support.hpp"

using namespace cellkit;

namespace {
template <class T>
std::vector<T> to(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}
}  // namespace

TEST_CASE_TEMPLATE("dense_forward and dense_backward match PyTorch's Linear", P, CELLKIT_HOST_TEST_POLICIES) {
  auto policy = test::policy_of<P>();
  for (const auto& c : test::read_fixture_cases("nn_dense.txt")) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto fin = static_cast<index_t>(c.params[1]);
    const auto fout = static_cast<index_t>(c.params[2]);
    const bool bias = c.params[3] != 0.0;
    CAPTURE(n);
    auto x = c.matrix("x");
    auto w = c.matrix("w");
    auto b = c.matrix("b");
    auto dy = c.matrix("dy");
    std::vector<double> y(n * fout, 7.0), dx(n * fin), dw(fin * fout), db(fout);
    std::optional<vector_view<const double>> bv;
    if (bias) bv = vector_view<const double>(b.data(), fout);
    nn::dense_forward(policy, matrix_view<const double>(x.data(), n, fin),
                      matrix_view<const double>(w.data(), fin, fout), bv, matrix_view<double>(y.data(), n, fout));
    nn::dense_backward(policy, matrix_view<const double>(x.data(), n, fin),
                       matrix_view<const double>(w.data(), fin, fout), matrix_view<double>(dy.data(), n, fout),
                       matrix_view<double>(dx.data(), n, fin), matrix_view<double>(dw.data(), fin, fout),
                       vector_view<double>(db.data(), fout));
    auto check = [](const std::vector<double>& got, const std::vector<double>& want, const char* what) {
      REQUIRE(got.size() == want.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        INFO(what << "[" << i << "]");
        CHECK(test::close(got[i], want[i], 1e-12, 1e-12));
      }
    };
    check(y, c.matrix("y"), "y");
    check(dx, c.matrix("dx"), "dx");
    check(dw, c.matrix("dw"), "dw");
    if (bias) check(db, c.matrix("db"), "db");

    // accumulate adds dW and db onto what is there, accumulate_input dX; each flag only its outputs
    std::vector<double> dx2(dx.size(), 2.0), dw2(dw.size(), 1.0), db2(db.size(), 3.0);
    nn::dense_backward(policy, matrix_view<const double>(x.data(), n, fin),
                       matrix_view<const double>(w.data(), fin, fout), matrix_view<double>(dy.data(), n, fout),
                       matrix_view<double>(dx2.data(), n, fin), matrix_view<double>(dw2.data(), fin, fout),
                       vector_view<double>(db2.data(), fout), {.accumulate = true});
    for (std::size_t i = 0; i < dw.size(); ++i) CHECK(dw2[i] == doctest::Approx(dw[i] + 1.0).epsilon(1e-12));
    for (std::size_t i = 0; i < db.size(); ++i) CHECK(db2[i] == doctest::Approx(db[i] + 3.0).epsilon(1e-12));
    CHECK(dx2 == dx);
    nn::dense_backward(policy, matrix_view<const double>(x.data(), n, fin),
                       matrix_view<const double>(w.data(), fin, fout), matrix_view<double>(dy.data(), n, fout),
                       matrix_view<double>(dx2.data(), n, fin), std::nullopt, std::nullopt, {.accumulate_input = true});
    for (std::size_t i = 0; i < dx.size(); ++i) CHECK(dx2[i] == doctest::Approx(2.0 * dx[i]).epsilon(1e-12));
  }
}

TEST_CASE("dense_backward agrees with central differences of L = sum(Y * G)") {
  const index_t n = 7, fin = 5, fout = 4;
  host_buffer<double> x(n * fin), w(fin * fout), b(fout), g(n * fout), y(n * fout);
  nn::init_weights(serial{}, x.as_matrix(n, fin), {.scheme = nn::weight_init::he_normal, .key = {1, 0}});
  nn::init_weights(serial{}, w.as_matrix(fin, fout), {.scheme = nn::weight_init::glorot_normal, .key = {1, 1}});
  nn::init_weights(serial{}, g.as_matrix(n, fout), {.scheme = nn::weight_init::glorot_normal, .key = {1, 2}});
  nn::init_bias(serial{}, b.view(), fin, nn::bias_init::fan_in_uniform, {1, 3});
  auto loss = [&] {
    nn::dense_forward(serial{}, x.as_matrix(n, fin), w.as_matrix(fin, fout), b.view(), y.as_matrix(n, fout));
    double s = 0;
    for (index_t i = 0; i < n * fout; ++i) s += y[i] * g[i];
    return s;
  };
  host_buffer<double> dx(n * fin), dw(fin * fout), db(fout);
  nn::dense_backward(serial{}, x.as_matrix(n, fin), w.as_matrix(fin, fout), g.as_matrix(n, fout), dx.as_matrix(n, fin),
                     dw.as_matrix(fin, fout), db.view());
  auto probe = [&](host_buffer<double>& p, const host_buffer<double>& grad) {
    for (index_t i = 0; i < p.size(); ++i) {
      const double h = 1e-6, keep = p[i];
      p[i] = keep + h;
      const double up = loss();
      p[i] = keep - h;
      const double down = loss();
      p[i] = keep;
      CHECK(grad[i] == doctest::Approx((up - down) / (2 * h)).epsilon(1e-7));
    }
  };
  probe(x, dx);
  probe(w, dw);
  probe(b, db);
}

TEST_CASE("dense layer: identical bits for every host policy, float") {
  const index_t n = 5000, fin = 33, fout = 17;
  host_buffer<float> x(n * fin), w(fin * fout), dy(n * fout);
  nn::init_weights(serial{}, x.as_matrix(n, fin), {.scheme = nn::weight_init::he_normal, .key = {4, 0}});
  nn::init_weights(serial{}, w.as_matrix(fin, fout), {.key = {4, 1}});
  nn::init_weights(serial{}, dy.as_matrix(n, fout), {.scheme = nn::weight_init::he_normal, .key = {4, 2}});
  auto run = [&](auto policy) {
    std::vector<float> out(n * fout + fin * fout + fout);
    nn::dense_forward(policy, x.as_matrix(n, fin), w.as_matrix(fin, fout), std::nullopt,
                      matrix_view<float>(out.data(), n, fout));
    nn::dense_backward(policy, x.as_matrix(n, fin), w.as_matrix(fin, fout), dy.as_matrix(n, fout), std::nullopt,
                       matrix_view<float>(out.data() + n * fout, fin, fout),
                       vector_view<float>(out.data() + n * fout + fin * fout, fout));
    return out;
  };
  const auto a = run(serial{});
  CHECK(a == run(openmp{1}));
  CHECK(a == run(openmp{2}));
}

TEST_CASE("dense layer: shape errors name the operands") {
  host_buffer<double> x(6), w(6), y(6), b(3);
  CHECK_THROWS_WITH_AS(
      nn::dense_forward(serial{}, x.as_matrix(2, 3), w.as_matrix(2, 3), std::nullopt, y.as_matrix(2, 3)),
      doctest::Contains("X is 2 x 3 but W is 2 x 3"), dimension_mismatch);
  CHECK_THROWS_AS(nn::dense_forward(serial{}, x.as_matrix(2, 3), w.as_matrix(3, 2), std::nullopt, y.as_matrix(3, 2)),
                  dimension_mismatch);
  CHECK_THROWS_WITH_AS(nn::dense_forward(serial{}, x.as_matrix(2, 3), w.as_matrix(3, 2), b.view(), y.as_matrix(2, 3)),
                       doctest::Contains("Y is 2 x 3"), dimension_mismatch);
  host_buffer<double> y2(4);
  CHECK_THROWS_WITH_AS(nn::dense_forward(serial{}, x.as_matrix(2, 3), w.as_matrix(3, 2), b.view(), y2.as_matrix(2, 2)),
                       doctest::Contains("b is 3"), dimension_mismatch);
  host_buffer<double> dy(4), dx(4);
  CHECK_THROWS_WITH_AS(nn::dense_backward(serial{}, x.as_matrix(2, 3), w.as_matrix(3, 2), dy.as_matrix(2, 2),
                                          dx.as_matrix(2, 2), std::nullopt, std::nullopt),
                       doctest::Contains("dX is 2 x 2"), dimension_mismatch);
}
