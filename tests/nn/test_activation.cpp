#include <cellkit/core/buffer.hpp>
#include <cellkit/nn/activation.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "support/test_support.hpp"

using namespace cellkit;

namespace {
template <class F>
void for_activation(int kind, double param, F&& f) {
  switch (kind) {
    case 0:
      f(nn::relu{});
      break;
    case 1:
      f(nn::elu{param});
      break;
    case 2:
      f(nn::sigmoid{});
      break;
    case 3:
      f(nn::softplus{});
      break;
    case 4:
      f(nn::exp_activation{});
      break;
    case 5:
      f(nn::mean_activation{});
      break;
    case 6:
      f(nn::dispersion_activation{});
      break;
    default:
      FAIL("unknown activation");
  }
}
}  // namespace

TEST_CASE_TEMPLATE("activations match PyTorch (values and autograd gradients)", P, CELLKIT_HOST_TEST_POLICIES) {
  auto policy = test::policy_of<P>();
  for (const auto& c : test::read_fixture_cases("nn_activation.txt")) {
    const int kind = static_cast<int>(c.params[0]);
    CAPTURE(kind);
    auto x = c.matrix("x");
    auto dy = c.matrix("dy");
    const index_t rows = c.shape("x").first;  // not a structured binding: clang 14 cannot capture those
    const index_t cols = c.shape("x").second;
    std::vector<double> y(x.size()), dx(x.size());
    for_activation(kind, c.params[1], [&](auto act) {
      nn::activation_forward(policy, act, matrix_view<const double>(x.data(), rows, cols),
                             matrix_view<double>(y.data(), rows, cols));
      nn::activation_backward(
          policy, act, matrix_view<const double>(x.data(), rows, cols), matrix_view<const double>(y.data(), rows, cols),
          matrix_view<const double>(dy.data(), rows, cols), matrix_view<double>(dx.data(), rows, cols));
    });
    const auto& want_y = c.matrix("y");
    const auto& want_dx = c.matrix("dx");
    for (std::size_t i = 0; i < x.size(); ++i) {
      CAPTURE(x[i]);
      CHECK(test::close(y[i], want_y[i], 1e-15, 1e-15));  // abs: PyTorch's ELU uses exp(x) - 1, not expm1
      CHECK(test::close(dx[i], want_dx[i], 1e-15, 1e-15));
    }
  }
}

TEST_CASE("activation derivatives agree with central differences away from kinks") {
  std::vector<double> xs;
  for (double v = -6.05; v < 6.0; v += 0.37) xs.push_back(v);
  for (int kind = 0; kind <= 6; ++kind) {
    CAPTURE(kind);
    for_activation(kind, 0.7, [&](auto act) {
      for (double x : xs) {
        const double h = 1e-6;
        const double fd = (act.value(x + h) - act.value(x - h)) / (2 * h);
        CHECK(act.derivative(x, act.value(x)) == doctest::Approx(fd).epsilon(1e-7));
      }
    });
  }
}

TEST_CASE("bounded heads: overflow and underflow give the bounds and zero gradient, never NaN") {
  const float inf = std::numeric_limits<float>::infinity();
  nn::mean_activation mean{};
  CHECK(mean.value(200.0f) == 1e6f);
  CHECK(mean.derivative(200.0f, mean.value(200.0f)) == 0.0f);
  CHECK(mean.value(-200.0f) == 1e-5f);
  CHECK(mean.value(inf) == 1e6f);
  nn::dispersion_activation disp{.lower = 0.5, .upper = 2.0};
  CHECK(disp.value(-50.0) == 0.5);
  CHECK(disp.value(1e308) == 2.0);
  CHECK(disp.derivative(1e308, 2.0) == 0.0);
  nn::softplus sp;
  CHECK(sp.value(1000.0) == 1000.0);
  CHECK(sp.value(-1000.0) == 0.0);
  nn::sigmoid sg;
  CHECK(sg.value(-1000.0f) == 0.0f);
  CHECK(sg.value(1000.0f) == 1.0f);
}

TEST_CASE("activations: shapes and parameters are checked") {
  host_buffer<float> a(6), b(4);
  CHECK_THROWS_WITH_AS(nn::activation_forward(serial{}, nn::relu{}, a.as_matrix(2, 3), b.as_matrix(2, 2)),
                       doctest::Contains("x is 2 x 3 but y is 2 x 2"), dimension_mismatch);
  CHECK_THROWS_AS(nn::activation_forward(serial{}, nn::mean_activation{.lower = 2, .upper = 1}, a.as_matrix(2, 3),
                                         a.as_matrix(2, 3)),
                  invalid_argument);
  CHECK_THROWS_AS(nn::activation_forward(serial{}, nn::dispersion_activation{.lower = 0, .upper = 1}, a.as_matrix(2, 3),
                                         a.as_matrix(2, 3)),
                  invalid_argument);
  CHECK_THROWS_AS(nn::activation_backward(serial{}, nn::relu{}, a.as_matrix(2, 3), a.as_matrix(2, 3), a.as_matrix(2, 3),
                                          b.as_matrix(2, 2)),
                  dimension_mismatch);
}
