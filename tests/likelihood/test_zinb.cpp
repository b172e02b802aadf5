// Tests of <cellkit/likelihood/zinb.hpp>: the ZINB functors (pi a probability and a logit) against
// mpmath (tests/reference/data/likelihood_zinb*.txt from tests/reference/gen_likelihood_fixtures.py)
// and PyTorch autograd, central differences, the edge-case table, and zinb_nll / zinb_log_prob over
// dense and CSR counts (ridge penalty, logits, size factors, mask) under every policy.
//
// Tolerances as in test_nb.cpp: value 1e-12 (double) / 1e-5 (float) relative, absolute below 1;
// d_mu, d_theta 1e-12 / 1e-4 relative to |ref| + cond (the NB sensitivity columns);
// d_pi, d_logit 1e-12 relative plus 100 eps (1 + |log NB(0)|) |ref| (d_pi = 1/NB(0) - 1 at pi = 0
// inherits the rounding of log NB(0)); float 1e-4 likewise.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/likelihood/zinb.hpp>

#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

namespace lk = cellkit::likelihood;
using cellkit::index_t;
using cellkit::test::fixture_table;
using cellkit::test::read_fixture_table;

constexpr double pinf = std::numeric_limits<double>::infinity();

double rel_err(double got, double ref) {
  if (std::isnan(ref) || std::isinf(ref)) return (got == ref || (std::isnan(got) && std::isnan(ref))) ? 0 : pinf;
  if (got == ref) return 0;
  if (std::isnan(got)) return pinf;
  return std::fabs(got - ref) / std::fabs(ref);
}
double value_err(double got, double ref) {
  if (std::isinf(ref) || std::isnan(ref) || std::fabs(ref) >= 1) return rel_err(got, ref);
  return std::isnan(got) ? pinf : std::fabs(got - ref);
}
double grad_err(double got, double ref, double cond, double unit_roundoff, double tol) {
  if (std::isnan(ref) || std::isinf(ref)) return rel_err(got, ref);
  if (got == ref) return 0;
  if (std::isnan(got) || std::isinf(got)) return pinf;
  return std::fabs(got - ref) / (std::fabs(ref) + cond * unit_roundoff / tol);
}
bool float_range(double v) {
  return std::isinf(v) || std::isnan(v) || (std::fabs(v) <= FLT_MAX && (v == 0 || std::fabs(v) >= FLT_MIN));
}

struct max_error {
  double value = 0;
  std::string at;
  void update(double err, const std::vector<double>& args) {
    if (err > value || std::isnan(err)) {
      value = std::isnan(err) ? pinf : err;
      at.clear();
      for (double a : args) at += std::to_string(a) + " ";
    }
  }
};

template <bool Logits>
void check_fixture(const char* file, const char* pcol, const char* dcol) {
  const fixture_table t = read_fixture_table(file);
  const auto cx = t.column("x"), cmu = t.column("mu"), cth = t.column("theta"), cp = t.column(pcol),
             cv = t.column("logp"), cdm = t.column("d_mu"), cdt = t.column("d_theta"), cdp = t.column(dcol),
             ccm = t.column("nb_cond_mu"), cct = t.column("nb_cond_theta"), ctm = t.column("torch_d_mu"),
             ctt = t.column("torch_d_theta"), ctp = t.column(Logits ? "torch_d_logit" : "torch_d_pi"),
             com = t.column("torch_ok_mu"), cot = t.column("torch_ok_theta"),
             cop = t.column(Logits ? "torch_ok_logit" : "torch_ok_pi");
  REQUIRE(t.rows.size() > 4000);
  max_error v_d, dm_d, dt_d, dp_d, v_f, dm_f, dt_f, dp_f, t_mu, t_th, t_p;
  std::size_t torch_rows = 0;
  for (const auto& row : t.rows) {
    const double x = row[cx], mu = row[cmu], th = row[cth], p = row[cp];
    const std::vector<double> args{x, mu, th, p};
    lk::zinb_value_grad<double> g;
    double v;
    if constexpr (Logits) {
      g = lk::zinb_logits_log_prob_grad_fn<double>{}(x, mu, th, p);
      v = lk::zinb_logits_log_prob_fn<double>{}(x, mu, th, p);
    } else {
      g = lk::zinb_log_prob_grad_fn<double>{}(x, mu, th, p);
      v = lk::zinb_log_prob_fn<double>{}(x, mu, th, p);
    }
    CHECK(
        cellkit::test::close(v, g.log_prob, 1e-15, 1e-300));  // value-only and grad paths (FMA contraction may differ)
    // log NB(0) enters d_pi exponentially: its rounding (eps |log NB(0)|) is the conditioning of d_pi
    const double l0 = std::fabs(th * std::log1p(mu / th));
    const double pi_cond = (1 + l0) * std::fabs(row[cdp]);
    v_d.update(value_err(g.log_prob, row[cv]), args);
    dm_d.update(grad_err(g.d_mu, row[cdm], row[ccm], 0x1p-52, 1e-12), args);
    dt_d.update(grad_err(g.d_theta, row[cdt], row[cct], 0x1p-52, 1e-12), args);
    dp_d.update(grad_err(g.d_pi, row[cdp], 100 * pi_cond, 0x1p-52, 1e-12), args);
    if (row[com] != 0 && row[cot] != 0 && row[cop] != 0) {
      ++torch_rows;
      t_mu.update(rel_err(g.d_mu, row[ctm]), args);
      t_th.update(rel_err(g.d_theta, row[ctt]), args);
      t_p.update(rel_err(g.d_pi, row[ctp]), args);
    }
    if (static_cast<double>(static_cast<float>(p)) != p) continue;  // float rows: exact arguments only
    lk::zinb_value_grad<float> f;
    const auto xf = static_cast<float>(x), muf = static_cast<float>(mu), thf = static_cast<float>(th),
               pf = static_cast<float>(p);
    if constexpr (Logits) {
      f = lk::zinb_logits_log_prob_grad_fn<float>{}(xf, muf, thf, pf);
    } else {
      f = lk::zinb_log_prob_grad_fn<float>{}(xf, muf, thf, pf);
    }
    if (float_range(row[cv])) v_f.update(value_err(f.log_prob, row[cv]), args);
    if (float_range(row[cdm])) dm_f.update(grad_err(f.d_mu, row[cdm], row[ccm], 0x1p-23, 1e-5), args);
    if (float_range(row[cdt])) dt_f.update(grad_err(f.d_theta, row[cdt], row[cct], 0x1p-23, 1e-5), args);
    if (float_range(row[cdp])) dp_f.update(grad_err(f.d_pi, row[cdp], 100 * pi_cond, 0x1p-23, 1e-5), args);
  }
  MESSAGE(std::string(file) << " double: value " << v_d.value << " (" << v_d.at << "), d_mu " << dm_d.value
                            << ", d_theta " << dt_d.value << ", d_pi " << dp_d.value << " (" << dp_d.at << ")");
  MESSAGE(std::string(file) << " float: value " << v_f.value << " (" << v_f.at << "), d_mu " << dm_f.value
                            << ", d_theta " << dt_f.value << ", d_pi " << dp_f.value << " (" << dp_f.at << ")");
  MESSAGE(std::string(file) << " vs torch autograd on " << torch_rows << " rows: d_mu " << t_mu.value << ", d_theta "
                            << t_th.value << ", d_pi " << t_p.value);
  CHECK(v_d.value <= 1e-12);
  CHECK(dm_d.value <= 1e-12);
  CHECK(dt_d.value <= 1e-12);
  CHECK(dp_d.value <= 1e-12);
  CHECK(v_f.value <= 1e-5);
  CHECK(dm_f.value <= 1e-4);
  CHECK(dt_f.value <= 1e-4);
  CHECK(dp_f.value <= 1e-4);
  CHECK(torch_rows > 2000);
  CHECK(t_mu.value <= 2e-8);
  CHECK(t_th.value <= 2e-8);
  CHECK(t_p.value <= 2e-8);
}

template <class F>
double central_difference(F f, double a, double h) {
  return (8 * (f(a + h) - f(a - h)) - (f(a + 2 * h) - f(a - 2 * h))) / (12 * h);
}

}  // namespace

TEST_CASE("zinb: pi as a probability matches mpmath and torch") {
  check_fixture<false>("likelihood_zinb.txt", "pi", "d_pi");
}

TEST_CASE("zinb: pi as a logit matches mpmath and torch (scvi-tools' formula)") {
  check_fixture<true>("likelihood_zinb_logits.txt", "logit", "d_logit");
}

TEST_CASE("zinb: gradients agree with central differences at random points") {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  double worst = 0;
  for (int k = 0; k < 2000; ++k) {
    const double theta = std::pow(10.0, -1 + 5 * u(rng));
    const double mu = std::pow(10.0, -2 + 4 * u(rng));
    const double pi = 0.01 + 0.98 * u(rng);
    const double logit = std::log(pi / (1 - pi));
    const double x = k % 2 == 0 ? 0.0 : std::floor(1 + 3 * mu * u(rng));
    const lk::zinb_log_prob_fn<double> f{};
    const lk::zinb_logits_log_prob_fn<double> fl{};
    const auto g = lk::zinb_log_prob_grad_fn<double>{}(x, mu, theta, pi);
    const auto gl = lk::zinb_logits_log_prob_grad_fn<double>{}(x, mu, theta, logit);
    const double fx = std::fabs(g.log_prob) + 1;
    auto score = [&](double fd, double an, double h) {
      return std::fabs(fd - an) / (1e-7 * std::fabs(an) + 100 * 0x1p-52 * fx / h);
    };
    const double hm = 1e-3 * mu, ht = 1e-3 * theta, hp = 1e-4 * std::min(pi, 1 - pi), hl = 1e-3;
    worst =
        std::max(worst, score(central_difference([&](double m) { return f(x, m, theta, pi); }, mu, hm), g.d_mu, hm));
    worst =
        std::max(worst, score(central_difference([&](double t) { return f(x, mu, t, pi); }, theta, ht), g.d_theta, ht));
    worst =
        std::max(worst, score(central_difference([&](double q) { return f(x, mu, theta, q); }, pi, hp), g.d_pi, hp));
    worst = std::max(worst,
                     score(central_difference([&](double l) { return fl(x, mu, theta, l); }, logit, hl), gl.d_pi, hl));
    worst = std::max(worst,
                     score(central_difference([&](double m) { return fl(x, mu, theta, m); }, logit, hl), gl.d_pi, hl));
    CHECK(cellkit::test::close(gl.log_prob, g.log_prob, 1e-13, 1e-13));
    CHECK(cellkit::test::close(gl.d_mu, g.d_mu, 1e-12, 1e-300));
  }
  MESSAGE("central differences vs analytic, in units of the tolerance: " << worst);
  CHECK(worst <= 1);
}

TEST_CASE("zinb: edge-case table") {
  const lk::zinb_log_prob_grad_fn<double> f{};
  const lk::zinb_logits_log_prob_grad_fn<double> fl{};
  const auto nb = [](double x, double mu, double th) { return lk::nb_log_prob_grad_fn<double>{}(x, mu, th); };
  // pi = 0 is NB
  auto g = f(0.0, 2.0, 1.5, 0.0);
  auto n = nb(0.0, 2.0, 1.5);
  CHECK(cellkit::test::close(g.log_prob, n.log_prob, 1e-15));
  CHECK(cellkit::test::close(g.d_mu, n.d_mu, 1e-15));
  CHECK(cellkit::test::close(g.d_pi, std::expm1(-n.log_prob), 1e-14));
  g = f(4.0, 2.0, 1.5, 0.0);
  CHECK(g.log_prob == nb(4.0, 2.0, 1.5).log_prob);
  CHECK(g.d_pi == -1.0);
  // pi = 0 with NB(0) = e^-1000: finite value, no log(0)
  g = f(0.0, 1e8, 1e3, 0.0);
  CHECK(cellkit::test::close(g.log_prob, nb(0.0, 1e8, 1e3).log_prob, 1e-14));
  CHECK(g.d_pi == pinf);  // 1/NB(0) - 1 overflows
  CHECK(cellkit::test::close(g.d_mu, nb(0.0, 1e8, 1e3).d_mu, 1e-14));
  // pi = 1
  g = f(0.0, 2.0, 1.5, 1.0);
  CHECK(g.log_prob == 0.0);
  CHECK(g.d_mu == 0.0);
  CHECK(g.d_theta == 0.0);
  CHECK(cellkit::test::close(g.d_pi, -std::expm1(nb(0.0, 2.0, 1.5).log_prob), 1e-15));
  g = f(3.0, 2.0, 1.5, 1.0);
  CHECK(g.log_prob == -pinf);
  CHECK(g.d_pi == -pinf);
  // mu = 0
  g = f(0.0, 0.0, 1.5, 0.3);
  CHECK(g.log_prob == 0.0);
  CHECK(cellkit::test::close(g.d_mu, -0.7, 1e-15));
  CHECK(g.d_theta == 0.0);
  CHECK(g.d_pi == 0.0);
  g = f(2.0, 0.0, 1.5, 0.3);
  CHECK(g.log_prob == -pinf);
  CHECK(g.d_mu == pinf);
  // logits at +-inf
  g = fl(0.0, 2.0, 1.5, -pinf);
  CHECK(cellkit::test::close(g.log_prob, nb(0.0, 2.0, 1.5).log_prob, 1e-15));
  CHECK(g.d_pi == 0.0);
  g = fl(0.0, 2.0, 1.5, pinf);
  CHECK(g.log_prob == 0.0);
  CHECK(g.d_pi == 0.0);
  g = fl(3.0, 2.0, 1.5, pinf);
  CHECK(g.log_prob == -pinf);
  CHECK(g.d_pi == -1.0);
  // both pi and NB(0) underflow: log-sum-exp, not log(0)
  g = fl(0.0, 1e8, 1e3, -2000.0);  // pi = e^-2000 dominates NB(0) = e^-11513
  CHECK(cellkit::test::close(g.log_prob, -2000.0, 1e-15));
  CHECK(cellkit::test::close(g.d_pi, 1.0, 1e-15));  // (1 - N) pi (1 - pi) / Z -> 1
  CHECK(g.d_mu == 0.0);                             // the NB weight w = e^-9513 underflows
  g = fl(0.0, 1e8, 1e3, -20000.0);                  // now NB(0) dominates
  CHECK(cellkit::test::close(g.log_prob, nb(0.0, 1e8, 1e3).log_prob, 1e-14));
  CHECK(cellkit::test::close(g.d_mu, nb(0.0, 1e8, 1e3).d_mu, 1e-12));
  // invalid
  for (double bad : {-0.1, 1.1, std::nan("")}) CHECK(std::isnan(f(0.0, 1.0, 1.0, bad).log_prob));
  CHECK(std::isnan(fl(0.0, 1.0, 1.0, std::nan("")).d_pi));
  CHECK(std::isnan(f(0.0, -1.0, 1.0, 0.5).d_mu));
  // value near 0 keeps its relative accuracy: mu = 1e-12, pi = 0.25: log(0.25 + 0.75 (1 - 1e-12 + ...))
  CHECK(cellkit::test::close(lk::zinb_log_prob_fn<double>{}(0.0, 1e-12, 2.0, 0.25), -0.75e-12, 1e-11));
}

// ---------------------------------------------------------------------------------------------------
// array functions

namespace {

struct problem {
  index_t rows = 0, cols = 0;
  std::vector<double> x, mu, theta, pi, logit, sf;
  std::vector<std::uint8_t> mask;
  std::vector<std::int32_t> indptr, indices;
  std::vector<double> values;
};

problem make_problem(index_t rows, index_t cols, unsigned seed) {
  problem p;
  p.rows = rows;
  p.cols = cols;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (index_t j = 0; j < cols; ++j) p.theta.push_back(std::pow(10.0, -1 + 3 * u(rng)));
  for (index_t i = 0; i < rows; ++i) p.sf.push_back(std::exp(0.5 * (u(rng) - 0.5)));
  p.indptr.push_back(0);
  for (index_t i = 0; i < rows; ++i) {
    for (index_t j = 0; j < cols; ++j) {
      const double m = std::exp(3 * (u(rng) - 0.5));
      p.mu.push_back(m);
      const double q = 0.02 + 0.9 * u(rng);
      p.pi.push_back(q);
      p.logit.push_back(std::log(q / (1 - q)));
      p.mask.push_back(u(rng) < 0.9 ? 1 : 0);
      const double c = u(rng) < 0.8 ? 0.0 : std::floor(1 + 5 * m * u(rng));
      p.x.push_back(c);
      if (c != 0) {
        p.indices.push_back(static_cast<std::int32_t>(j));
        p.values.push_back(c);
      }
    }
    p.indptr.push_back(static_cast<std::int32_t>(p.indices.size()));
  }
  return p;
}

struct result {
  double loss = 0;
  std::vector<double> d_mu, d_theta, d_pi, per_cell, log_prob;
};

result reference(const problem& p, bool logits, double ridge, bool mean) {
  result r;
  const auto n = static_cast<std::size_t>(p.rows * p.cols);
  r.d_mu.assign(n, 0);
  r.d_pi.assign(n, 0);
  r.log_prob.assign(n, 0);
  r.d_theta.assign(static_cast<std::size_t>(p.cols), 0);
  r.per_cell.assign(static_cast<std::size_t>(p.rows), 0);
  double count = 0;
  for (auto m : p.mask) count += m;
  const double scale = mean ? 1 / count : 1;
  for (index_t i = 0; i < p.rows; ++i) {
    for (index_t j = 0; j < p.cols; ++j) {
      const auto k = static_cast<std::size_t>(i * p.cols + j);
      const double s = p.sf[static_cast<std::size_t>(i)];
      const double th = p.theta[static_cast<std::size_t>(j)];
      const auto g = logits ? lk::zinb_logits_log_prob_grad_fn<double>{}(p.x[k], s * p.mu[k], th, p.logit[k])
                            : lk::zinb_log_prob_grad_fn<double>{}(p.x[k], s * p.mu[k], th, p.pi[k]);
      r.log_prob[k] = g.log_prob;
      if (p.mask[k] == 0) continue;
      const double q = p.pi[k];
      const double loss = -g.log_prob + ridge * q * q;
      r.loss += loss;
      r.per_cell[static_cast<std::size_t>(i)] += loss;
      r.d_mu[k] = -g.d_mu * s * scale;
      r.d_theta[static_cast<std::size_t>(j)] -= g.d_theta * scale;
      r.d_pi[k] = (-g.d_pi + (logits ? 2 * ridge * q * q * (1 - q) : 2 * ridge * q)) * scale;
    }
  }
  r.loss *= scale;
  return r;
}

template <class P>
result run(const problem& p, bool csr, bool logits, double ridge, bool mean) {
  using cellkit::test::policy_array;
  const auto policy = cellkit::test::policy_of<P>();
  using space = typename policy_array<P, double>::space;
  policy_array<P, double> x(p.x), mu(p.mu), theta(p.theta), pi(logits ? p.logit : p.pi), sf(p.sf), values(p.values);
  policy_array<P, std::uint8_t> mask(p.mask);
  policy_array<P, std::int32_t> indptr(p.indptr), indices(p.indices);
  policy_array<P, double> d_mu(p.rows * p.cols), d_theta(p.cols), d_pi(p.rows * p.cols), per_cell(p.rows),
      log_prob(p.rows * p.cols);
  const lk::nll_outputs<double, space> out{.d_mu = d_mu.matrix(p.rows, p.cols),
                                           .d_theta = d_theta.view(),
                                           .d_pi = d_pi.matrix(p.rows, p.cols),
                                           .per_cell = per_cell.view(),
                                           .log_prob = log_prob.matrix(p.rows, p.cols)};
  const lk::nll_options<double, space> opt{
      .reduce = mean ? lk::reduction::mean : lk::reduction::sum,
      .size_factors = cellkit::vector_view<const double, space>(sf.data(), p.rows),
      .mask = cellkit::matrix_view<const std::uint8_t, space>(mask.data(), p.rows, p.cols),
      .pi = logits ? lk::pi_parameter::logits : lk::pi_parameter::probability,
      .ridge_lambda = ridge};
  const cellkit::matrix_view<const double, space> mu_v(mu.data(), p.rows, p.cols), pi_v(pi.data(), p.rows, p.cols);
  const cellkit::vector_view<const double, space> th_v(theta.data(), p.cols);
  result r;
  if (csr) {
    const cellkit::csr_view<const double, std::int32_t, space> counts(
        p.rows, p.cols, static_cast<index_t>(p.values.size()), indptr.data(), indices.data(), values.data());
    r.loss = lk::zinb_nll(policy, counts, mu_v, th_v, pi_v, out, opt);
  } else {
    r.loss = lk::zinb_nll(policy, cellkit::matrix_view<const double, space>(x.data(), p.rows, p.cols), mu_v, th_v, pi_v,
                          out, opt);
  }
  r.d_mu = d_mu.to_host();
  r.d_theta = d_theta.to_host();
  r.d_pi = d_pi.to_host();
  r.per_cell = per_cell.to_host();
  r.log_prob = log_prob.to_host();
  return r;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (std::size_t k = 0; k < a.size(); ++k)
    worst = std::max(worst, std::fabs(a[k] - b[k]) / std::max(1.0, std::fabs(b[k])));
  return worst;
}

bool same_bits(const result& a, const result& b) {
  return a.loss == b.loss && a.d_mu == b.d_mu && a.d_theta == b.d_theta && a.d_pi == b.d_pi &&
         a.per_cell == b.per_cell && a.log_prob == b.log_prob;
}

}  // namespace

TEST_CASE_TEMPLATE("zinb_nll: dense and CSR, probabilities and logits, ridge, match the functor reference", P,
                   CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const problem p = make_problem(130, 31, 9);
  for (const bool logits : {false, true}) {
    for (const double ridge : {0.0, 0.25}) {
      for (const bool mean : {false, true}) {
        CAPTURE(logits);
        CAPTURE(ridge);
        CAPTURE(mean);
        const result ref = reference(p, logits, ridge, mean);
        const result dense = run<P>(p, false, logits, ridge, mean);
        const result csr = run<P>(p, true, logits, ridge, mean);
        CHECK(cellkit::test::close(dense.loss, ref.loss, 1e-13));
        CHECK(max_diff(dense.d_mu, ref.d_mu) <= 1e-13);
        CHECK(max_diff(dense.d_theta, ref.d_theta) <= 1e-12);
        CHECK(max_diff(dense.d_pi, ref.d_pi) <= 1e-13);
        CHECK(max_diff(dense.per_cell, ref.per_cell) <= 1e-13);
        CHECK(max_diff(dense.log_prob, ref.log_prob) <= 1e-14);
        if constexpr (cellkit::is_host_policy_v<decltype(cellkit::test::policy_of<P>())>) {
          CHECK(same_bits(dense, csr));
          CHECK(same_bits(dense, run<cellkit::serial>(p, true, logits, ridge, mean)));
        } else {
          CHECK(cellkit::test::close(csr.loss, dense.loss, 1e-13));
        }
      }
    }
  }
}

TEST_CASE("zinb_nll: scDeepCluster's loss (mean, size factors) and zinb_log_prob") {
  const problem p = make_problem(20, 7, 4);
  cellkit::matrix_view<const double> x(p.x.data(), p.rows, p.cols), mu(p.mu.data(), p.rows, p.cols),
      pi(p.pi.data(), p.rows, p.cols);
  cellkit::vector_view<const double> theta(p.theta.data(), p.cols), sf(p.sf.data(), p.rows);
  // scDeepCluster: mean over all elements of -log ZINB(x | s_i m_ij, theta_j, pi_ij)
  double expected = 0;
  std::vector<double> scaled(p.mu.size());
  for (index_t i = 0; i < p.rows; ++i) {
    for (index_t j = 0; j < p.cols; ++j) {
      const auto k = static_cast<std::size_t>(i * p.cols + j);
      scaled[k] = p.sf[static_cast<std::size_t>(i)] * p.mu[k];
      expected -= lk::zinb_log_prob_fn<double>{}(p.x[k], scaled[k], p.theta[static_cast<std::size_t>(j)], p.pi[k]);
    }
  }
  expected /= static_cast<double>(p.mu.size());
  const double a = lk::zinb_nll(x, mu, theta, pi, {}, {.reduce = lk::reduction::mean, .size_factors = sf});
  const double b = lk::zinb_nll(x, cellkit::matrix_view<const double>(scaled.data(), p.rows, p.cols), theta, pi, {},
                                {.reduce = lk::reduction::mean});
  CHECK(cellkit::test::close(a, expected, 1e-14));
  CHECK(cellkit::test::close(b, expected, 1e-14));
  std::vector<double> lp(p.x.size());
  lk::zinb_log_prob(cellkit::serial{}, x, mu, theta, pi, cellkit::matrix_view<double>(lp.data(), p.rows, p.cols),
                    {.size_factors = sf});
  for (std::size_t k = 0; k < lp.size(); ++k) {
    CHECK(cellkit::test::close(
        lp[k],
        lk::zinb_log_prob_fn<double>{}(p.x[k], scaled[k], p.theta[k % static_cast<std::size_t>(p.cols)], p.pi[k]),
        1e-15));
  }
  // pi outside [0, 1] is reported with its position
  std::vector<double> bad = p.pi;
  bad[9] = 1.5;
  try {
    lk::zinb_nll(x, mu, theta, cellkit::matrix_view<const double>(bad.data(), p.rows, p.cols));
    CHECK(false);
  } catch (const cellkit::invalid_argument& e) {
    CHECK(std::string(e.what()).find("'pi': element (1, 2) = 1.5") != std::string::npos);
  }
  CHECK_THROWS_AS(lk::zinb_nll(x, mu, theta, pi, {}, {.ridge_lambda = -1.0}), cellkit::invalid_argument);
}

namespace {

/// Elements for the host's gathered x > 0 pass: every regime of positive_kernel and each of the
/// cases it leaves to the scalar form (mu = 0, theta = +inf, pi = 1, non-integer counts with
/// theta < 10, counts beyond the exact sum), in rows longer than one gathered chunk (256).
template <class T>
struct positive_problem {
  index_t rows = 0, cols = 0;
  std::vector<T> x, mu, theta, pi, logit;
};

template <class T>
positive_problem<T> make_positive_problem() {
  positive_problem<T> p;
  p.rows = 7;
  p.cols = 700;
  std::mt19937_64 rng(20261121);
  std::uniform_real_distribution<double> u(0, 1);
  const double counts[] = {1, 2, 3, 7, 16, 17, 40, 1000, 1e5, 0.3, 2.5, 17.5};
  const double thetas[] = {1e-4, 0.01, 0.37, 1, 2, 9.99, 10, 10.01, 55, 1e4, pinf};
  const double means[] = {0, 1e-5, 0.01, 1, 3, 100, 1e5};
  for (index_t k = 0; k < p.rows * p.cols; ++k) {
    double x = u(rng) < 0.15 ? 0.0 : counts[static_cast<std::size_t>(u(rng) * 12)];
    if (u(rng) < 0.3) x = std::floor(1 + 20 * u(rng));
    const double theta = u(rng) < 0.3 ? thetas[static_cast<std::size_t>(u(rng) * 11)]
                                      : std::exp(std::log(1e-3) + u(rng) * std::log(1e7));
    const double mu =
        u(rng) < 0.2 ? means[static_cast<std::size_t>(u(rng) * 7)] : std::exp(std::log(1e-4) + u(rng) * std::log(1e8));
    double q = u(rng);
    if (u(rng) < 0.05) q = u(rng) < 0.5 ? 0.0 : 1.0;
    p.x.push_back(static_cast<T>(x));
    p.theta.push_back(static_cast<T>(theta));
    p.mu.push_back(static_cast<T>(mu));
    p.pi.push_back(static_cast<T>(q));
    p.logit.push_back(static_cast<T>(q == 0 ? -pinf : q == 1 ? pinf : std::log(q / (1 - q))));
  }
  return p;
}

template <class T>
bool same_value(T got, T ref) {
  if (std::isnan(ref)) return std::isnan(got);
  if (std::isinf(ref)) return got == ref;
  return std::fabs(got - ref) <= T(4) * std::numeric_limits<T>::epsilon() * std::max(T(1), std::fabs(ref));
}

}  // namespace

TEST_CASE_TEMPLATE("zinb_nll and nb_nll: the host's vectorised x > 0 pass equals the element functors", T, float,
                   double) {
  const positive_problem<T> p = make_positive_problem<T>();
  const index_t n = p.rows * p.cols;
  const cellkit::matrix_view<const T> x(p.x.data(), p.rows, p.cols), mu(p.mu.data(), p.rows, p.cols),
      theta(p.theta.data(), p.rows, p.cols);
  std::size_t mismatches = 0, compared = 0;
  auto compare = [&](T got, T ref, const char* what, index_t k) {
    ++compared;
    if (same_value(got, ref)) return;
    if (++mismatches <= 5)
      MESSAGE(what << " at x = " << p.x[k] << ", mu = " << p.mu[k] << ", theta = " << p.theta[k] << ", pi = " << p.pi[k]
                   << ": " << got << " vs " << ref);
  };
  for (const bool logits : {false, true}) {
    for (const bool want_theta : {false, true}) {
      const cellkit::matrix_view<const T> pi(logits ? p.logit.data() : p.pi.data(), p.rows, p.cols);
      std::vector<T> d_mu(n), d_theta(n), d_pi(n), log_prob(n);
      lk::nll_outputs<T> out{.d_mu = cellkit::matrix_view<T>(d_mu.data(), p.rows, p.cols),
                             .d_pi = cellkit::matrix_view<T>(d_pi.data(), p.rows, p.cols),
                             .log_prob = cellkit::matrix_view<T>(log_prob.data(), p.rows, p.cols)};
      if (want_theta) out.d_theta = cellkit::matrix_view<T>(d_theta.data(), p.rows, p.cols);
      lk::zinb_nll(
          cellkit::openmp{2}, x, mu, theta, pi, out,
          {.reduce = lk::reduction::sum, .pi = logits ? lk::pi_parameter::logits : lk::pi_parameter::probability});
      for (index_t k = 0; k < n; ++k) {
        const auto g = logits ? lk::zinb_logits_log_prob_grad_fn<T>{want_theta}(p.x[k], p.mu[k], p.theta[k], p.logit[k])
                              : lk::zinb_log_prob_grad_fn<T>{want_theta}(p.x[k], p.mu[k], p.theta[k], p.pi[k]);
        compare(log_prob[k], g.log_prob, "log_prob", k);
        compare(d_mu[k], -g.d_mu, "d_mu", k);
        compare(d_pi[k], -g.d_pi, "d_pi", k);
        if (want_theta) compare(d_theta[k], -g.d_theta, "d_theta", k);
      }
    }
  }
  // NB, value and gradients
  std::vector<T> d_mu(n), d_theta(n), log_prob(n);
  lk::nb_nll(cellkit::serial{}, x, mu, theta,
             {.d_mu = cellkit::matrix_view<T>(d_mu.data(), p.rows, p.cols),
              .d_theta = cellkit::matrix_view<T>(d_theta.data(), p.rows, p.cols),
              .log_prob = cellkit::matrix_view<T>(log_prob.data(), p.rows, p.cols)},
             {.reduce = lk::reduction::sum});
  for (index_t k = 0; k < n; ++k) {
    const auto g = lk::nb_log_prob_grad_fn<T>{}(p.x[k], p.mu[k], p.theta[k]);
    compare(log_prob[k], g.log_prob, "nb log_prob", k);
    compare(d_mu[k], -g.d_mu, "nb d_mu", k);
    compare(d_theta[k], -g.d_theta, "nb d_theta", k);
  }
  MESSAGE(compared << " values compared, " << mismatches << " beyond 4 eps");
  CHECK(mismatches == 0);
}
