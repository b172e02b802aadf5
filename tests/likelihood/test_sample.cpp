// Tests of <cellkit/likelihood/sample.hpp>: moments of 1e6 draws (mean, variance, fraction of zeros)
// within 5 standard errors of the model's values for Poisson, NB and ZINB (probabilities and logits),
// 2.5e5 draws for the secondary cases (a small Poisson mean, Gamma, near-Poisson NB, theta = +inf), so
// that the test stays at a few seconds under ASan; determinism (serial / openmp{1} / openmp{2} bit-identical, element
// (i, j) from philox_engine(seed, stream, i * cols + j), float and double parameters give the same counts); argument
// checks.

#include <cellkit/core/random.hpp>
#include <cellkit/likelihood/sample.hpp>

#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

namespace lk = cellkit::likelihood;
using cellkit::index_t;

struct moments {
  double mean = 0, var = 0, zero = 0, se_mean = 0, se_var = 0, se_zero = 0;
};

moments sample_moments(const std::vector<double>& v) {
  const auto n = static_cast<double>(v.size());
  moments m;
  double s = 0, z = 0;
  for (double x : v) {
    s += x;
    z += x == 0 ? 1 : 0;
  }
  m.mean = s / n;
  double m2 = 0, m4 = 0;
  for (double x : v) {
    const double d = x - m.mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m.var = m2 / (n - 1);
  m4 /= n;
  m.zero = z / n;
  m.se_mean = std::sqrt(m.var / n);
  m.se_var = std::sqrt(std::max(m4 - m.var * m.var, 0.0) / n);
  m.se_zero = std::sqrt(std::max(m.zero * (1 - m.zero), 1.0 / n) / n);
  return m;
}

void check_moments(const char* what, const std::vector<double>& draws, double mean, double var, double zero) {
  const moments m = sample_moments(draws);
  INFO(what << ": mean " << m.mean << " (expected " << mean << ", se " << m.se_mean << "), variance " << m.var
            << " (expected " << var << ", se " << m.se_var << "), zeros " << m.zero << " (expected " << zero << ", se "
            << m.se_zero << ")");
  CHECK(std::fabs(m.mean - mean) <= 5 * m.se_mean);
  CHECK(std::fabs(m.var - var) <= 5 * m.se_var);
  if (zero >= 0) CHECK(std::fabs(m.zero - zero) <= 5 * m.se_zero + 1e-12);
}

constexpr index_t rows = 1000, cols = 1000;  // 1e6 draws per main case
constexpr index_t small_rows = 250;          // 2.5e5 draws per secondary case

}  // namespace

TEST_CASE("sample: moments of 1e6 draws match the models") {
  const cellkit::openmp policy{2};
  std::vector<double> out(rows * cols);
  const cellkit::matrix_view<double> o(out.data(), rows, cols);
  auto constant = [](double v) { return std::vector<double>(rows * cols, v); };

  SUBCASE("Poisson, small and large means") {
    for (const double mu : {3.5, 40.0}) {
      const index_t r = mu < 10 ? small_rows : rows;
      const auto m = constant(mu);
      std::vector<double> draws(static_cast<std::size_t>(r * cols));
      lk::sample_poisson(policy, cellkit::matrix_view<const double>(m.data(), r, cols),
                         cellkit::matrix_view<double>(draws.data(), r, cols), {.seed = 1});
      check_moments("poisson", draws, mu, mu, std::exp(-mu));
    }
  }
  SUBCASE("Gamma") {
    const std::vector<double> shape(cols, 0.5);
    const auto scale = constant(2.0);
    std::vector<double> draws(static_cast<std::size_t>(small_rows * cols));
    lk::sample_gamma(policy, cellkit::vector_view<const double>(shape.data(), cols),
                     cellkit::matrix_view<const double>(scale.data(), small_rows, cols),
                     cellkit::matrix_view<double>(draws.data(), small_rows, cols), {.seed = 2});
    check_moments("gamma", draws, 1.0, 2.0, -1);
  }
  SUBCASE("NB: overdispersed, near-Poisson, and theta = +inf") {
    for (const auto& [mu, theta] :
         std::vector<std::pair<double, double>>{{3.0, 0.5}, {50.0, 20.0}, {2.0, 1e7}, {2.0, INFINITY}}) {
      const index_t r = theta > 1e6 ? small_rows : rows;
      const auto m = constant(mu);
      const std::vector<double> th(cols, theta);
      std::vector<double> draws(static_cast<std::size_t>(r * cols));
      lk::sample_nb(policy, cellkit::matrix_view<const double>(m.data(), r, cols),
                    cellkit::vector_view<const double>(th.data(), cols),
                    cellkit::matrix_view<double>(draws.data(), r, cols), {.seed = 3, .stream = 7});
      const double p0 = std::isinf(theta) ? std::exp(-mu) : std::pow(theta / (theta + mu), theta);
      check_moments("nb", draws, mu, mu + (std::isinf(theta) ? 0.0 : mu * mu / theta), p0);
    }
  }
  SUBCASE("ZINB with pi a probability and a logit") {
    const double mu = 5, theta = 2, pi = 0.3;
    const auto m = constant(mu);
    const std::vector<double> th(cols, theta);
    const double nb_var = mu + mu * mu / theta;
    const double mean = (1 - pi) * mu;
    const double var = (1 - pi) * (nb_var + mu * mu) - mean * mean;
    const double p0 = pi + (1 - pi) * std::pow(theta / (theta + mu), theta);
    const auto p = constant(pi);
    lk::sample_zinb(policy, cellkit::matrix_view<const double>(m.data(), rows, cols),
                    cellkit::vector_view<const double>(th.data(), cols),
                    cellkit::matrix_view<const double>(p.data(), rows, cols), o, {.seed = 4});
    check_moments("zinb", out, mean, var, p0);
    const auto l = constant(std::log(pi / (1 - pi)));
    lk::sample_zinb(policy, cellkit::matrix_view<const double>(m.data(), rows, cols),
                    cellkit::vector_view<const double>(th.data(), cols),
                    cellkit::matrix_view<const double>(l.data(), rows, cols), o,
                    {.seed = 5, .pi = lk::pi_parameter::logits});
    check_moments("zinb logits", out, mean, var, p0);
  }
}

TEST_CASE("sample: deterministic per (seed, element) under every host policy") {
  const index_t r = 37, c = 29;
  std::vector<double> mu(r * c), pi(r * c), theta(c);
  for (index_t k = 0; k < r * c; ++k) {
    mu[static_cast<std::size_t>(k)] = 0.1 + static_cast<double>(k % 17);
    pi[static_cast<std::size_t>(k)] = 0.05 * static_cast<double>(k % 11);
  }
  for (index_t j = 0; j < c; ++j) theta[static_cast<std::size_t>(j)] = 0.2 + 0.7 * static_cast<double>(j);
  const cellkit::matrix_view<const double> m(mu.data(), r, c), p(pi.data(), r, c);
  const cellkit::vector_view<const double> th(theta.data(), c);
  auto draw = [&](auto policy) {
    std::vector<std::int64_t> out(r * c);
    lk::sample_zinb(policy, m, th, p, cellkit::matrix_view<std::int64_t>(out.data(), r, c), {.seed = 99, .stream = 3});
    return out;
  };
  const auto s = draw(cellkit::serial{});
  CHECK(s == draw(cellkit::openmp{1}));
  CHECK(s == draw(cellkit::openmp{2}));
  // element (i, j) comes from philox_engine(seed, stream, i * cols + j)
  for (index_t k = 0; k < r * c; ++k) {
    cellkit::philox_engine eng(99, 3, static_cast<std::uint64_t>(k));
    const double expected = lk::draw_zinb(eng, mu[static_cast<std::size_t>(k)], theta[static_cast<std::size_t>(k % c)],
                                          pi[static_cast<std::size_t>(k)]);
    CHECK(static_cast<double>(s[static_cast<std::size_t>(k)]) == expected);
  }
  // float parameters holding the same values, float output: the same counts
  std::vector<float> muf(mu.begin(), mu.end()), pif(pi.begin(), pi.end()), thf(theta.begin(), theta.end()), outf(r * c);
  bool exact = true;
  for (std::size_t k = 0; k < mu.size(); ++k)
    exact = exact && static_cast<double>(muf[k]) == mu[k] && static_cast<double>(pif[k]) == pi[k];
  for (std::size_t k = 0; k < theta.size(); ++k) exact = exact && static_cast<double>(thf[k]) == theta[k];
  if (exact) {
    lk::sample_zinb(cellkit::openmp{2}, cellkit::matrix_view<const float>(muf.data(), r, c),
                    cellkit::vector_view<const float>(thf.data(), c),
                    cellkit::matrix_view<const float>(pif.data(), r, c), cellkit::matrix_view<float>(outf.data(), r, c),
                    {.seed = 99, .stream = 3});
    for (std::size_t k = 0; k < s.size(); ++k) CHECK(static_cast<double>(outf[k]) == static_cast<double>(s[k]));
  }
  // another seed or stream changes the draws
  std::vector<std::int64_t> other(r * c);
  lk::sample_zinb(m, th, p, cellkit::matrix_view<std::int64_t>(other.data(), r, c), {.seed = 99, .stream = 4});
  CHECK(other != s);
}

TEST_CASE_TEMPLATE("sample: NB under every policy equals the serial host result", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const index_t r = 64, c = 48;
  std::vector<double> mu(r * c), theta(c);
  for (index_t k = 0; k < r * c; ++k) mu[static_cast<std::size_t>(k)] = 0.05 * static_cast<double>(k % 200);
  for (index_t j = 0; j < c; ++j) theta[static_cast<std::size_t>(j)] = 0.1 * static_cast<double>(j + 1);
  std::vector<double> host(r * c);
  lk::sample_nb(cellkit::serial{}, cellkit::matrix_view<const double>(mu.data(), r, c),
                cellkit::vector_view<const double>(theta.data(), c), cellkit::matrix_view<double>(host.data(), r, c),
                {.seed = 7});
  cellkit::test::policy_array<P, double> mu_d(mu), th_d(theta), out_d(r * c);
  using space = typename cellkit::test::policy_array<P, double>::space;
  lk::sample_nb(cellkit::test::policy_of<P>(), cellkit::matrix_view<const double, space>(mu_d.data(), r, c),
                cellkit::vector_view<const double, space>(th_d.data(), c), out_d.matrix(r, c), {.seed = 7});
  const auto got = out_d.to_host();
  index_t differ = 0;
  for (std::size_t k = 0; k < got.size(); ++k) differ += got[k] != host[k] ? 1 : 0;
  // host policies: identical; CUDA: rejection samplers may rarely take another branch (docs/random.md)
  CHECK(differ <= (cellkit::is_device_policy_v<decltype(cellkit::test::policy_of<P>())> ? r * c / 1000 : 0));
}

TEST_CASE("sample: argument checks") {
  std::vector<double> mu(6, 1.0), theta(3, 1.0), out(6), pi(6, 0.5);
  const cellkit::matrix_view<const double> m(mu.data(), 2, 3);
  CHECK_THROWS_AS(lk::sample_nb(m, cellkit::vector_view<const double>(theta.data(), 2),
                                cellkit::matrix_view<double>(out.data(), 2, 3), {}),
                  cellkit::dimension_mismatch);
  mu[4] = -1;
  try {
    lk::sample_poisson(m, cellkit::matrix_view<double>(out.data(), 2, 3), {});
    CHECK(false);
  } catch (const cellkit::invalid_argument& e) {
    CHECK(std::string(e.what()).find("'mu': element (1, 1) = -1") != std::string::npos);
  }
  mu[4] = 1;
  pi[2] = 2;
  CHECK_THROWS_AS(lk::sample_zinb(m, cellkit::vector_view<const double>(theta.data(), 3),
                                  cellkit::matrix_view<const double>(pi.data(), 2, 3),
                                  cellkit::matrix_view<double>(out.data(), 2, 3), {}),
                  cellkit::invalid_argument);
  // edge values: mu = 0 gives 0, theta = +inf is Poisson
  std::vector<double> zeros(6, 0.0);
  lk::sample_nb(cellkit::matrix_view<const double>(zeros.data(), 2, 3),
                cellkit::vector_view<const double>(theta.data(), 3), cellkit::matrix_view<double>(out.data(), 2, 3),
                {.seed = 1});
  CHECK(out == std::vector<double>(6, 0.0));
}
