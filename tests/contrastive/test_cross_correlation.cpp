// Tests of cellkit/contrastive/cross_correlation.hpp: Barlow Twins' loss and gradients against
// PyTorch autograd, central differences, thread-count independence and argument errors.
// Host-only: templated over CELLKIT_HOST_TEST_POLICIES (also in the nvcc build).

#include <cellkit/contrastive/cross_correlation.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <vector>

using namespace cellkit;
using cellkit::test::policy_of;
namespace ck = cellkit::contrastive;

namespace {

template <class T>
double scaled_error(const std::vector<T>& got, const std::vector<double>& expected, double floor = 1e-3) {
  REQUIRE(got.size() == expected.size());
  double scale = floor;
  double err = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    scale = std::max(scale, std::fabs(expected[i]));
    err = std::max(err, std::fabs(static_cast<double>(got[i]) - expected[i]));
  }
  return err / scale;
}

template <class T, class P>
void run_case(const cellkit::test::fixture_case& c, double value_tol, double grad_tol) {
  const auto n = static_cast<index_t>(c.params[0]);
  const auto d = static_cast<index_t>(c.params[1]);
  const ck::cross_correlation_params<T> params{static_cast<T>(c.params[2]), static_cast<T>(c.params[3]),
                                               c.params[4] != 0};
  CAPTURE(n);
  CAPTURE(d);
  const std::vector<T> a(c.matrix("A").begin(), c.matrix("A").end());
  const std::vector<T> b(c.matrix("B").begin(), c.matrix("B").end());
  std::vector<T> ga(a.size()), gb(b.size());
  const T loss = ck::cross_correlation_loss(policy_of<P>(), matrix_view<const T>(a.data(), n, d),
                                            matrix_view<const T>(b.data(), n, d), matrix_view<T>(ga.data(), n, d),
                                            matrix_view<T>(gb.data(), n, d), params);
  const double ref = c.matrix("loss64")[0];
  CHECK(std::fabs(static_cast<double>(loss) - ref) <= value_tol * std::max(1.0, std::fabs(ref)));
  CHECK(std::fabs(static_cast<double>(loss) - c.matrix("loss")[0]) <= value_tol * std::max(1.0, std::fabs(ref)));
  CHECK(scaled_error(ga, c.matrix("grad_A64")) <= grad_tol);
  CHECK(scaled_error(gb, c.matrix("grad_B64")) <= grad_tol);
  CHECK(scaled_error(ga, c.matrix("grad_A")) <= grad_tol);
  const T value = ck::cross_correlation_loss(policy_of<P>(), matrix_view<const T>(a.data(), n, d),
                                             matrix_view<const T>(b.data(), n, d), std::nullopt, std::nullopt, params);
  CHECK(value == loss);
}

}  // namespace

TEST_CASE_TEMPLATE("cross_correlation_loss matches PyTorch autograd (Barlow Twins)", P, CELLKIT_HOST_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto cases = cellkit::test::read_fixture_cases("contrastive_cross_correlation.txt");
  REQUIRE(cases.size() >= 6);
  for (const auto& c : cases) {
    if (c.params[5] == 0) {
      run_case<double, P>(c, 1e-12, 1e-11);
    } else {
      run_case<float, P>(c, 2e-5, 2e-4);
    }
  }
}

TEST_CASE("cross_correlation_loss: central differences, thread counts, strides and aliasing") {
  std::mt19937_64 rng(4);
  std::normal_distribution<double> normal;
  const index_t n = 9, d = 5;
  std::vector<double> a(static_cast<std::size_t>(n * d)), b(a.size());
  for (auto& v : a) v = normal(rng);
  for (auto& v : b) v = normal(rng);
  for (bool unbiased : {false, true}) {
    CAPTURE(unbiased);
    const ck::cross_correlation_params<double> params{.lambda = 0.3, .eps = 1e-4, .unbiased = unbiased};
    std::vector<double> ga(a.size()), gb(b.size());
    const double loss = ck::cross_correlation_loss(
        serial{}, matrix_view<const double>(a.data(), n, d), matrix_view<const double>(b.data(), n, d),
        matrix_view<double>(ga.data(), n, d), matrix_view<double>(gb.data(), n, d), params);
    auto value = [&](const std::vector<double>& x, const std::vector<double>& y) {
      return ck::cross_correlation_loss(serial{}, matrix_view<const double>(x.data(), n, d),
                                        matrix_view<const double>(y.data(), n, d), std::nullopt, std::nullopt, params);
    };
    CHECK(value(a, b) == loss);
    double scale = 0;
    for (double g : ga) scale = std::max(scale, std::fabs(g));
    for (double g : gb) scale = std::max(scale, std::fabs(g));
    const double h = 1e-6;
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto ap = a, am = a, bp = b, bm = b;
      ap[i] += h;
      am[i] -= h;
      bp[i] += h;
      bm[i] -= h;
      CHECK(std::fabs((value(ap, b) - value(am, b)) / (2 * h) - ga[i]) <= 1e-7 * scale);
      CHECK(std::fabs((value(a, bp) - value(a, bm)) / (2 * h) - gb[i]) <= 1e-7 * scale);
    }
  }
  // larger problem: serial, openmp{1}, openmp{2} bit-identical (N spans several row blocks)
  const index_t big_n = 700, big_d = 40;
  std::vector<float> x(static_cast<std::size_t>(big_n * big_d)), y(x.size());
  std::normal_distribution<float> nf;
  for (auto& v : x) v = nf(rng);
  for (auto& v : y) v = 0.5f * v + nf(rng);
  auto run = [&](auto policy) {
    std::vector<float> gx(x.size()), gy(y.size());
    const float loss = ck::cross_correlation_loss(
        policy, matrix_view<const float>(x.data(), big_n, big_d), matrix_view<const float>(y.data(), big_n, big_d),
        matrix_view<float>(gx.data(), big_n, big_d), matrix_view<float>(gy.data(), big_n, big_d));
    gx.push_back(loss);
    gx.insert(gx.end(), gy.begin(), gy.end());
    return gx;
  };
  const auto ref = run(serial{});
  CHECK(run(openmp{1}) == ref);
  CHECK(run(openmp{2}) == ref);
  // gradients written over the inputs (strided)
  const index_t stride = big_d + 3;
  std::vector<float> xs(static_cast<std::size_t>(big_n * stride)), ys(xs.size());
  for (index_t i = 0; i < big_n; ++i)
    for (index_t k = 0; k < big_d; ++k) {
      xs[static_cast<std::size_t>(i * stride + k)] = x[static_cast<std::size_t>(i * big_d + k)];
      ys[static_cast<std::size_t>(i * stride + k)] = y[static_cast<std::size_t>(i * big_d + k)];
    }
  matrix_view<float> xv(xs.data(), big_n, big_d, stride), yv(ys.data(), big_n, big_d, stride);
  const float loss = ck::cross_correlation_loss(openmp{2}, xv, yv, xv, yv);
  CHECK(loss == ref[static_cast<std::size_t>(big_n * big_d)]);
  CHECK(xs[static_cast<std::size_t>(stride + 1)] == ref[static_cast<std::size_t>(big_d + 1)]);
}

TEST_CASE("cross_correlation_loss rejects bad input with messages") {
  std::vector<double> a(6, 1.0), b(6, 2.0);
  a[1] = 3;
  const matrix_view<const double> av(a.data(), 3, 2), bv(b.data(), 3, 2);
  CHECK_THROWS_WITH_AS(
      ck::cross_correlation_loss(serial{}, av, matrix_view<const double>(b.data(), 2, 3), std::nullopt, std::nullopt),
      "cross_correlation_loss: dimension mismatch: z_b is 2 x 3 but z_a is 3 x 2 (the two views must "
      "have the same shape)",
      dimension_mismatch);
  CHECK_THROWS_WITH_AS(
      ck::cross_correlation_loss(serial{}, matrix_view<const double>(a.data(), 1, 2),
                                 matrix_view<const double>(b.data(), 1, 2), std::nullopt, std::nullopt),
      "cross_correlation_loss: invalid argument 'z_a': has 1 rows; the batch standardisation needs at "
      "least 2",
      invalid_argument);
  CHECK_THROWS_WITH_AS(ck::cross_correlation_loss(serial{}, av, bv, std::nullopt, std::nullopt, {.lambda = -1.0}),
                       "cross_correlation_loss: invalid argument 'lambda': must be non-negative and finite, got -1",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::cross_correlation_loss(serial{}, av, bv, std::nullopt, std::nullopt, {.eps = 0.0}),
                       "cross_correlation_loss: invalid argument 'eps': must be positive and finite, got 0",
                       invalid_argument);
  std::vector<double> g(6);
  CHECK_THROWS_WITH_AS(ck::cross_correlation_loss(serial{}, av, bv, matrix_view<double>(g.data(), 2, 3), std::nullopt),
                       "cross_correlation_loss: dimension mismatch: grad_a is 2 x 3 but z_a is 3 x 2 (a gradient has "
                       "the shape of its input)",
                       dimension_mismatch);
  b[5] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(ck::cross_correlation_loss(serial{}, av, bv, std::nullopt, std::nullopt),
                       "cross_correlation_loss: invalid argument 'z_b': z_b(2, 1) is NaN: embeddings must be finite",
                       invalid_argument);
}
