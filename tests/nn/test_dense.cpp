#include <cellkit/core/buffer.hpp>
#include <cellkit/nn/activation.hpp>
#include <cellkit/nn/dense.hpp>
#include <cellkit/nn/init.hpp>
#include <cellkit/nn/noise.hpp>

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

TEST_CASE_TEMPLATE("dense, activations, dropout and init on every policy (cuda when a GPU is present)", P,
                   CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  auto policy = test::policy_of<P>();
  using space = typename test::policy_array<P, float>::space;
  const index_t n = 300, fin = 20, fout = 7;
  // reference on the host
  host_buffer<float> hx(n * fin), hw(fin * fout), hb(fout), hy(n * fout), hdy(n * fout), hdx(n * fin), hdw(fin * fout),
      hdb(fout), hdrop(n * fout);
  nn::init_weights(serial{}, hx.as_matrix(n, fin), {.scheme = nn::weight_init::he_normal, .key = {8, 0}});
  nn::init_weights(serial{}, hw.as_matrix(fin, fout), {.key = {8, 1}});
  nn::init_bias(serial{}, hb.view(), fin, nn::bias_init::fan_in_uniform, {8, 2});
  nn::init_weights(serial{}, hdy.as_matrix(n, fout), {.scheme = nn::weight_init::he_normal, .key = {8, 3}});
  nn::dense_forward(serial{}, hx.as_matrix(n, fin), hw.as_matrix(fin, fout), hb.view(), hy.as_matrix(n, fout));
  nn::activation_forward(serial{}, nn::elu{}, hy.as_matrix(n, fout), hy.as_matrix(n, fout));
  nn::dense_backward(serial{}, hx.as_matrix(n, fin), hw.as_matrix(fin, fout), hdy.as_matrix(n, fout),
                     hdx.as_matrix(n, fin), hdw.as_matrix(fin, fout), hdb.view());
  const nn::dropout_params drop{.rate = 0.25, .key = {.seed = 5, .stream = 1, .step = 2}};
  nn::dropout_forward(serial{}, hy.as_matrix(n, fout), hdrop.as_matrix(n, fout), drop);

  auto to_vector = [](const host_buffer<float>& b) { return std::vector<float>(b.data(), b.data() + b.size()); };
  test::policy_array<P, float> x(to_vector(hx)), w(fin * fout), b(fout), y(n * fout), dy(to_vector(hdy)), dx(n * fin),
      dw(fin * fout), db(fout), dropped(n * fout);
  nn::init_weights(policy, w.matrix(fin, fout), {.key = {8, 1}});  // uniform draws: the same bits everywhere
  nn::init_bias(policy, vector_view<float, space>(b.data(), fout), fin, nn::bias_init::fan_in_uniform, {8, 2});
  CHECK(w.to_host() == to_vector(hw));
  CHECK(b.to_host() == to_vector(hb));
  nn::dense_forward(policy, x.matrix(n, fin), w.matrix(fin, fout), vector_view<const float, space>(b.data(), fout),
                    y.matrix(n, fout));
  nn::activation_forward(policy, nn::elu{}, y.matrix(n, fout), y.matrix(n, fout));
  nn::dense_backward(policy, x.matrix(n, fin), w.matrix(fin, fout), dy.matrix(n, fout), dx.matrix(n, fin),
                     dw.matrix(fin, fout), vector_view<float, space>(db.data(), fout));
  nn::dropout_forward(policy, y.matrix(n, fout), dropped.matrix(n, fout), drop);
  auto near = [](const std::vector<float>& got, const host_buffer<float>& want) {
    REQUIRE(static_cast<index_t>(got.size()) == want.size());
    for (index_t i = 0; i < want.size(); ++i) CHECK(test::close(got[i], want[i], 2e-5, 2e-5));
  };
  near(y.to_host(), hy);
  near(dx.to_host(), hdx);
  near(dw.to_host(), hdw);
  near(db.to_host(), hdb);
  const auto d = dropped.to_host();
  for (index_t i = 0; i < n * fout; ++i) CHECK((d[i] == 0.0f) == (hdrop[i] == 0.0f));  // the same mask
}
