#include <cellkit/core/buffer.hpp>
#include <cellkit/nn/noise.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "support/test_support.hpp"

using namespace cellkit;

TEST_CASE_TEMPLATE("dropout keeps 1 - rate of the units, scales them, and backward reuses the mask", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  auto policy = test::policy_of<P>();
  const index_t rows = 400, cols = 500;
  host_buffer<double> x(rows * cols, 2.0), y(rows * cols), dy(rows * cols, 1.0), dx(rows * cols);
  const nn::dropout_params params{.rate = 0.3, .key = {.seed = 9, .stream = 2, .step = 5}};
  nn::dropout_forward(policy, x.as_matrix(rows, cols), y.as_matrix(rows, cols), params);
  nn::dropout_backward(policy, dy.as_matrix(rows, cols), dx.as_matrix(rows, cols), params);
  index_t kept = 0;
  for (index_t i = 0; i < rows * cols; ++i) {
    const bool k = y[i] != 0.0;
    kept += k;
    if (k) CHECK(y[i] == doctest::Approx(2.0 / 0.7));
    CHECK((dx[i] != 0.0) == k);  // the same mask
  }
  const double n = static_cast<double>(rows * cols);
  const double se = std::sqrt(0.7 * 0.3 / n);
  CHECK(std::fabs(kept / n - 0.7) < 5 * se);

  // the next step draws a different mask; the same key the same one, on every policy
  host_buffer<double> y2(rows * cols), y3(rows * cols);
  nn::dropout_forward(policy, x.as_matrix(rows, cols), y2.as_matrix(rows, cols),
                      {.rate = 0.3, .key = {.seed = 9, .stream = 2, .step = 6}});
  nn::dropout_forward(serial{}, x.as_matrix(rows, cols), y3.as_matrix(rows, cols), params);
  index_t differ = 0;
  for (index_t i = 0; i < rows * cols; ++i) {
    differ += (y[i] != 0.0) != (y2[i] != 0.0);
    CHECK(y[i] == y3[i]);
  }
  CHECK(differ > rows * cols / 4);
}

TEST_CASE_TEMPLATE("gaussian_noise adds N(0, sigma^2), deterministic per key", P, CELLKIT_HOST_TEST_POLICIES) {
  auto policy = test::policy_of<P>();
  const index_t rows = 300, cols = 400;
  host_buffer<float> x(rows * cols, 1.0f), y(rows * cols), z(rows * cols);
  nn::gaussian_noise(policy, x.as_matrix(rows, cols), y.as_matrix(rows, cols), {.sigma = 2.5, .key = {.seed = 3}});
  nn::gaussian_noise(serial{}, x.as_matrix(rows, cols), z.as_matrix(rows, cols), {.sigma = 2.5, .key = {.seed = 3}});
  double sum = 0, sq = 0;
  for (index_t i = 0; i < rows * cols; ++i) {
    CHECK(y[i] == z[i]);
    const double e = y[i] - 1.0;
    sum += e;
    sq += e * e;
  }
  const double n = static_cast<double>(rows * cols);
  CHECK(std::fabs(sum / n) < 5 * 2.5 / std::sqrt(n));
  CHECK(std::fabs(sq / n - 6.25) < 5 * 6.25 * std::sqrt(2.0 / n));
  nn::gaussian_noise(policy, x.as_matrix(rows, cols), z.as_matrix(rows, cols), {.sigma = 0.0});
  CHECK(z[17] == 1.0f);
}

TEST_CASE("dropout and noise reject bad parameters") {
  host_buffer<float> a(6), b(4);
  CHECK_THROWS_WITH_AS(nn::dropout_forward(serial{}, a.as_matrix(2, 3), a.as_matrix(2, 3), {.rate = 1.0}),
                       doctest::Contains("'rate'"), invalid_argument);
  CHECK_THROWS_AS(nn::dropout_forward(serial{}, a.as_matrix(2, 3), a.as_matrix(2, 3), {.rate = -0.1}),
                  invalid_argument);
  CHECK_THROWS_AS(nn::dropout_forward(serial{}, a.as_matrix(2, 3), b.as_matrix(2, 2), {.rate = 0.1}),
                  dimension_mismatch);
  CHECK_THROWS_WITH_AS(nn::gaussian_noise(serial{}, a.as_matrix(2, 3), a.as_matrix(2, 3), {.sigma = std::nan("")}),
                       doctest::Contains("'sigma'"), invalid_argument);
  host_buffer<float> c(6, 4.0f);
  nn::dropout_forward(serial{}, c.as_matrix(2, 3), c.as_matrix(2, 3), {.rate = 0.0});
  CHECK(c[5] == 4.0f);
}
