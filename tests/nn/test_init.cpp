#include <cellkit/core/buffer.hpp>
#include <cellkit/nn/init.hpp>

#include <doctest/doctest.h>

#include <cmath>

#include "support/test_support.hpp"

using namespace cellkit;

namespace {
struct moments {
  double mean = 0, var = 0, max_abs = 0;
};
moments measure(const host_buffer<double>& w) {
  moments m;
  for (index_t i = 0; i < w.size(); ++i) m.mean += w[i];
  m.mean /= static_cast<double>(w.size());
  for (index_t i = 0; i < w.size(); ++i) {
    m.var += (w[i] - m.mean) * (w[i] - m.mean);
    m.max_abs = std::max(m.max_abs, std::fabs(w[i]));
  }
  m.var /= static_cast<double>(w.size());
  return m;
}
}  // namespace

TEST_CASE("weight initialisation: bounds and variances of each scheme") {
  const index_t fin = 300, fout = 200;
  const double n = fin * fout;
  struct expected {
    nn::weight_init scheme;
    double var;
    double bound;  // 0 for normal schemes
  } cases[] = {
      {nn::weight_init::glorot_uniform, 2.0 / (fin + fout), std::sqrt(6.0 / (fin + fout))},
      {nn::weight_init::glorot_normal, 2.0 / (fin + fout), 0.0},
      {nn::weight_init::he_uniform, 2.0 / fin, std::sqrt(6.0 / fin)},
      {nn::weight_init::he_normal, 2.0 / fin, 0.0},
      {nn::weight_init::fan_in_uniform, 1.0 / (3.0 * fin), 1.0 / std::sqrt(double(fin))},
  };
  for (const auto& c : cases) {
    CAPTURE(static_cast<int>(c.scheme));
    host_buffer<double> w(fin * fout);
    nn::init_weights(openmp{2}, w.as_matrix(fin, fout), {.scheme = c.scheme, .key = {5, 1}});
    const auto m = measure(w);
    CHECK(std::fabs(m.mean) < 5 * std::sqrt(c.var / n));
    CHECK(std::fabs(m.var - c.var) < 5 * c.var * std::sqrt((c.bound > 0 ? 0.8 : 2.0) / n));
    if (c.bound > 0) {
      CHECK(m.max_abs <= c.bound);
      CHECK(m.max_abs > 0.99 * c.bound);
    }
    host_buffer<double> again(fin * fout);
    nn::init_weights(serial{}, again.as_matrix(fin, fout), {.scheme = c.scheme, .key = {5, 1}});
    for (index_t i = 0; i < w.size(); ++i) REQUIRE(w[i] == again[i]);
  }
  host_buffer<double> w(10), b(4, 1.0);
  CHECK_THROWS_AS(nn::init_weights(serial{}, w.as_matrix(0, 10)), invalid_argument);
  CHECK_THROWS_AS(nn::init_weights(serial{}, w.as_matrix(2, 5), {.gain = -1.0}), invalid_argument);
  nn::init_bias(serial{}, b.view(), 9);
  CHECK(b[3] == 0.0);
  nn::init_bias(serial{}, b.view(), 9, nn::bias_init::fan_in_uniform, {1, 1});
  for (index_t i = 0; i < 4; ++i) CHECK(std::fabs(b[i]) <= 1.0 / 3.0);
  CHECK_THROWS_AS(nn::init_bias(serial{}, b.view(), 0, nn::bias_init::fan_in_uniform), invalid_argument);
}
