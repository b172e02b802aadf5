// Tests of <cellkit/likelihood/poisson.hpp>: the functors against mpmath and scipy.stats.poisson
// (tests/reference/data/likelihood_poisson.txt), edge cases, and poisson_nll / poisson_log_prob over
// dense and CSR counts under every policy. Tolerances: value 1e-12 relative (absolute below 1) in
// double, 1e-5 in float; d/dmu 1e-12 relative (double), 1e-5 (float).

#include <cellkit/likelihood/poisson.hpp>

#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {
namespace lk = cellkit::likelihood;
using cellkit::index_t;
constexpr double pinf = std::numeric_limits<double>::infinity();

double err(double got, double ref) {
  if (std::isnan(ref) || std::isinf(ref)) return (got == ref) ? 0 : pinf;
  if (got == ref) return 0;
  return std::fabs(got - ref) / std::max(1.0, std::fabs(ref));
}
}  // namespace

TEST_CASE("poisson: log-probability and gradient match mpmath") {
  const auto t = cellkit::test::read_fixture_table("likelihood_poisson.txt");
  const auto cx = t.column("x"), cmu = t.column("mu"), cv = t.column("logp"), cs = t.column("scipy"),
             cd = t.column("d_mu");
  REQUIRE(t.rows.size() > 200);
  double v_d = 0, d_d = 0, v_f = 0, d_f = 0, scipy = 0;
  for (const auto& row : t.rows) {
    const double x = row[cx], mu = row[cmu];
    const auto g = lk::poisson_log_prob_grad_fn<double>{}(x, mu);
    CHECK(lk::poisson_log_prob_fn<double>{}(x, mu) == g.log_prob);
    v_d = std::max(v_d, err(g.log_prob, row[cv]));
    d_d = std::max(
        d_d, std::isinf(row[cd]) ? err(g.d_mu, row[cd]) : std::fabs(g.d_mu - row[cd]) / (std::fabs(row[cd]) + 1e-300));
    const auto f = lk::poisson_log_prob_grad_fn<float>{}(static_cast<float>(x), static_cast<float>(mu));
    if (std::fabs(row[cv]) < 1e38) v_f = std::max(v_f, err(f.log_prob, row[cv]));
    if (std::fabs(row[cd]) < 1e38 && std::fabs(row[cd]) > 1e-30)
      d_f = std::max(d_f, std::fabs(f.d_mu - row[cd]) / std::fabs(row[cd]));
    scipy = std::max(scipy, err(row[cs], row[cv]));
  }
  MESSAGE("poisson double: value " << v_d << ", d_mu " << d_d << "; float: value " << v_f << ", d_mu " << d_f
                                   << "; scipy.stats.poisson vs mpmath " << scipy);
  CHECK(v_d <= 1e-12);
  CHECK(d_d <= 1e-12);
  CHECK(v_f <= 1e-5);
  CHECK(d_f <= 1e-5);
  // edge cases
  CHECK(lk::poisson_log_prob_fn<double>{}(0.0, 0.0) == 0.0);
  CHECK(lk::poisson_log_prob_grad_fn<double>{}(0.0, 0.0).d_mu == -1.0);
  CHECK(lk::poisson_log_prob_fn<double>{}(2.0, 0.0) == -pinf);
  CHECK(lk::poisson_log_prob_grad_fn<double>{}(2.0, 0.0).d_mu == pinf);
  CHECK(std::isnan(lk::poisson_log_prob_fn<double>{}(-1.0, 1.0)));
  CHECK(std::isnan(lk::poisson_log_prob_grad_fn<double>{}(1.0, -1.0).d_mu));
}

TEST_CASE_TEMPLATE("poisson_nll: dense and CSR agree with the functor under every policy", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  using cellkit::test::policy_array;
  using space = typename policy_array<P, double>::space;
  const index_t rows = 90, cols = 13;
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> x, mu, values;
  std::vector<std::int32_t> indptr{0}, indices;
  for (index_t i = 0; i < rows; ++i) {
    for (index_t j = 0; j < cols; ++j) {
      const double m = std::exp(4 * (u(rng) - 0.5));
      mu.push_back(m);
      const double c = u(rng) < 0.7 ? 0.0 : std::floor(1 + 3 * m * u(rng));
      x.push_back(c);
      if (c != 0) {
        indices.push_back(static_cast<std::int32_t>(j));
        values.push_back(c);
      }
    }
    indptr.push_back(static_cast<std::int32_t>(indices.size()));
  }
  double expected = 0;
  std::vector<double> expected_dmu(x.size());
  for (std::size_t k = 0; k < x.size(); ++k) {
    const auto g = lk::poisson_log_prob_grad_fn<double>{}(x[k], mu[k]);
    expected -= g.log_prob;
    expected_dmu[k] = -g.d_mu;
  }
  const auto policy = cellkit::test::policy_of<P>();
  policy_array<P, double> xd(x), mud(mu), vd(values), dmu(rows * cols), dmu2(rows * cols);
  policy_array<P, std::int32_t> ip(indptr), ix(indices);
  const cellkit::matrix_view<const double, space> mu_v(mud.data(), rows, cols);
  const double a = lk::poisson_nll(policy, cellkit::matrix_view<const double, space>(xd.data(), rows, cols), mu_v,
                                   {.d_mu = dmu.matrix(rows, cols)});
  const double b =
      lk::poisson_nll(policy,
                      cellkit::csr_view<const double, std::int32_t, space>(
                          rows, cols, static_cast<index_t>(values.size()), ip.data(), ix.data(), vd.data()),
                      mu_v, {.d_mu = dmu2.matrix(rows, cols)});
  CHECK(cellkit::test::close(a, expected, 1e-13));
  CHECK(cellkit::test::close(b, a, 1e-15));
  const auto g1 = dmu.to_host(), g2 = dmu2.to_host();
  for (std::size_t k = 0; k < x.size(); ++k) {
    CHECK(cellkit::test::close(g1[k], expected_dmu[k], 1e-15, 1e-300));
    CHECK(g1[k] == g2[k]);
  }
  policy_array<P, double> lp(rows * cols);
  lk::poisson_log_prob(policy, cellkit::matrix_view<const double, space>(xd.data(), rows, cols), mu_v,
                       lp.matrix(rows, cols));
  const auto lph = lp.to_host();
  for (std::size_t k = 0; k < x.size(); ++k)
    CHECK(cellkit::test::close(lph[k], lk::poisson_log_prob_fn<double>{}(x[k], mu[k]), 1e-15));
}
