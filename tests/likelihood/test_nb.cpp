// Tests of <cellkit/likelihood/nb.hpp>: the NB functors against mpmath (tests/reference/data/
// likelihood_nb.txt, written by tests/reference/gen_likelihood_fixtures.py), SciPy and PyTorch
// autograd; gradients against central differences; edge cases; and the array functions (dense and
// CSR, per-gene and per-element theta, reductions, size factors, mask, errors, determinism across
// serial / openmp{1} / openmp{2}, and cuda when a GPU is present).
//
// Tolerances:
//   value: double 1e-12 relative (absolute 1e-12 where |value| < 1), float 1e-5 (absolute where < 1).
//   (float d/dtheta: 1e-4, see below.)
//   gradients: |got - ref| <= tol (|ref| + cond), tol = 1e-12 (double) / 1e-5 (float), where cond is the
//     fixture's cond_* column times the unit roundoff of the type: the error that inputs perturbed by one
//     rounding would cause. It matters only where the gradient itself is ill-conditioned (d/dtheta at
//     theta ~ 1e-8 has terms ~ 1/theta); elsewhere the bound is 1e-12 relative.
//   torch: 1e-8 relative on the rows where torch agrees with mpmath (flag columns).
// Measured maxima are reported with MESSAGE and recorded in docs/likelihood.md.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/likelihood/nb.hpp>

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

/// Value error: relative, absolute where |ref| < 1.
double value_err(double got, double ref) {
  if (std::isinf(ref) || std::isnan(ref) || std::fabs(ref) >= 1) return rel_err(got, ref);
  return std::isnan(got) ? pinf : std::fabs(got - ref);
}

/// Gradient error in units of the tolerance's scale: |got - ref| / (|ref| + cond * u / tol).
double grad_err(double got, double ref, double cond, double unit_roundoff, double tol) {
  if (std::isnan(ref) || std::isinf(ref)) return rel_err(got, ref);
  if (got == ref) return 0;
  if (std::isnan(got) || std::isinf(got)) return pinf;
  return std::fabs(got - ref) / (std::fabs(ref) + cond * unit_roundoff / tol);
}

struct max_error {
  double value = 0;
  std::string at;
  void update(double err, double x, double mu, double theta) {
    if (err > value || std::isnan(err)) {
      value = std::isnan(err) ? pinf : err;
      at = "x = " + std::to_string(x) + ", mu = " + std::to_string(mu) + ", theta = " + std::to_string(theta);
    }
  }
};

bool float_range(double v) {
  return std::isinf(v) || std::isnan(v) || (std::fabs(v) <= FLT_MAX && (v == 0 || std::fabs(v) >= FLT_MIN));
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// functors against the references

TEST_CASE("nb: log-probability and gradients match mpmath (double and float)") {
  const fixture_table t = read_fixture_table("likelihood_nb.txt");
  const auto cx = t.column("x"), cmu = t.column("mu"), cth = t.column("theta"), cv = t.column("logp"),
             cdm = t.column("d_mu"), cdt = t.column("d_theta"), ccm = t.column("cond_mu"), cct = t.column("cond_theta");
  REQUIRE(t.rows.size() > 4000);
  max_error v_d, v_f, dm_d, dt_d, dm_f, dt_f;
  for (const auto& row : t.rows) {
    const double x = row[cx], mu = row[cmu], th = row[cth];
    const lk::nb_value_grad<double> g = lk::nb_log_prob_grad_fn<double>{}(x, mu, th);
    CHECK(cellkit::test::close(lk::nb_log_prob_fn<double>{}(x, mu, th), g.log_prob, 1e-15, 1e-300));  // value-only path
    v_d.update(value_err(g.log_prob, row[cv]), x, mu, th);
    dm_d.update(grad_err(g.d_mu, row[cdm], row[ccm], 0x1p-52, 1e-12), x, mu, th);
    dt_d.update(grad_err(g.d_theta, row[cdt], row[cct], 0x1p-52, 1e-12), x, mu, th);
    // every argument is a float32 value (the script rounds them)
    REQUIRE(static_cast<double>(static_cast<float>(mu)) == mu);
    REQUIRE(static_cast<double>(static_cast<float>(th)) == th);
    const lk::nb_value_grad<float> f =
        lk::nb_log_prob_grad_fn<float>{}(static_cast<float>(x), static_cast<float>(mu), static_cast<float>(th));
    if (float_range(row[cv])) v_f.update(value_err(f.log_prob, row[cv]), x, mu, th);
    if (float_range(row[cdm])) dm_f.update(grad_err(f.d_mu, row[cdm], row[ccm], 0x1p-23, 1e-5), x, mu, th);
    if (float_range(row[cdt])) dt_f.update(grad_err(f.d_theta, row[cdt], row[cct], 0x1p-23, 1e-5), x, mu, th);
  }
  MESSAGE("nb double: value " << v_d.value << " (" << v_d.at << "), d_mu " << dm_d.value << ", d_theta " << dt_d.value
                              << " (" << dt_d.at << ")");
  MESSAGE("nb float: value " << v_f.value << " (" << v_f.at << "), d_mu " << dm_f.value << ", d_theta " << dt_f.value
                             << " (" << dt_f.at << ")");
  CHECK(v_d.value <= 1e-12);
  CHECK(dm_d.value <= 1e-12);
  CHECK(dt_d.value <= 1e-12);
  CHECK(v_f.value <= 1e-5);
  CHECK(dm_f.value <= 1e-5);
  CHECK(dt_f.value <= 1e-4);  // float d/dtheta cancels near its roots (measured 3.1e-5)
}

TEST_CASE("nb: comparison with scipy.stats.nbinom and torch autograd") {
  const fixture_table t = read_fixture_table("likelihood_nb.txt");
  const auto cx = t.column("x"), cmu = t.column("mu"), cth = t.column("theta"), cv = t.column("logp"),
             cs = t.column("scipy"), ctm = t.column("torch_d_mu"), ctt = t.column("torch_d_theta"),
             com = t.column("torch_ok_mu"), cot = t.column("torch_ok_theta");
  max_error scipy_vs_mp, ours_vs_scipy, torch_mu, torch_theta;
  std::size_t scipy_bad = 0, scipy_good = 0, torch_mu_rows = 0, torch_theta_rows = 0;
  for (const auto& row : t.rows) {
    const double x = row[cx], mu = row[cmu], th = row[cth];
    const lk::nb_value_grad<double> g = lk::nb_log_prob_grad_fn<double>{}(x, mu, th);
    const double e = value_err(row[cs], row[cv]);
    scipy_vs_mp.update(e, x, mu, th);
    if (e <= 1e-12) {
      ++scipy_good;
      ours_vs_scipy.update(value_err(g.log_prob, row[cs]), x, mu, th);
    } else {
      ++scipy_bad;
    }
    if (row[com] != 0) {
      ++torch_mu_rows;
      torch_mu.update(rel_err(g.d_mu, row[ctm]), x, mu, th);
    }
    if (row[cot] != 0) {
      ++torch_theta_rows;
      torch_theta.update(rel_err(g.d_theta, row[ctt]), x, mu, th);
    }
  }
  MESSAGE("scipy.stats.nbinom vs mpmath: max error " << scipy_vs_mp.value << " (" << scipy_vs_mp.at << "); "
                                                     << scipy_bad << " of " << t.rows.size()
                                                     << " rows off by more than 1e-12");
  MESSAGE("ours vs scipy on its " << scipy_good << " accurate rows: " << ours_vs_scipy.value);
  MESSAGE("ours vs torch autograd: d_mu " << torch_mu.value << " on " << torch_mu_rows << " rows, d_theta "
                                          << torch_theta.value << " on " << torch_theta_rows << " rows");
  CHECK(ours_vs_scipy.value <= 2e-12);
  CHECK(torch_mu.value <= 2e-8);
  CHECK(torch_theta.value <= 2e-8);
  CHECK(torch_mu_rows > 3000);
  CHECK(torch_theta_rows > 3000);
}

namespace {
/// Richardson-extrapolated central difference of f at a with step h (error O(h^4)).
template <class F>
double central_difference(F f, double a, double h) {
  return (8 * (f(a + h) - f(a - h)) - (f(a + 2 * h) - f(a - 2 * h))) / (12 * h);
}
}  // namespace

TEST_CASE("nb: gradients agree with central differences at random points") {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0, 1);
  double worst_mu = 0, worst_theta = 0;
  for (int k = 0; k < 2000; ++k) {
    const double theta = std::pow(10.0, -2 + 8 * u(rng));
    const double mu = std::pow(10.0, -3 + 8 * u(rng));
    const double x = k % 4 == 0 ? 0.0 : std::floor(std::pow(10.0, 6 * u(rng)) * u(rng));
    const lk::nb_value_grad<double> g = lk::nb_log_prob_grad_fn<double>{}(x, mu, theta);
    const lk::nb_log_prob_fn<double> f{};
    const double hm = 1e-3 * mu, ht = 1e-3 * theta;
    const double dm = central_difference([&](double m) { return f(x, m, theta); }, mu, hm);
    const double dt = central_difference([&](double t) { return f(x, mu, t); }, theta, ht);
    // tolerance: 1e-7 relative, plus the rounding error of the differences, ~eps |f| / h (times 100)
    const double fx = std::fabs(g.log_prob) + 1;
    worst_mu = std::max(worst_mu, std::fabs(dm - g.d_mu) / (1e-7 * std::fabs(g.d_mu) + 100 * 0x1p-52 * fx / hm));
    worst_theta =
        std::max(worst_theta, std::fabs(dt - g.d_theta) / (1e-7 * std::fabs(g.d_theta) + 100 * 0x1p-52 * fx / ht));
  }
  MESSAGE("central differences vs analytic, in units of the tolerance: d_mu " << worst_mu << ", d_theta "
                                                                              << worst_theta);
  CHECK(worst_mu <= 1);
  CHECK(worst_theta <= 1);
}

TEST_CASE("nb: edge cases and limits") {
  const lk::nb_log_prob_grad_fn<double> f{};
  // mu = 0
  auto g = f(0.0, 0.0, 2.5);
  CHECK(g.log_prob == 0.0);
  CHECK(g.d_mu == -1.0);
  CHECK(g.d_theta == 0.0);
  g = f(3.0, 0.0, 2.5);
  CHECK(g.log_prob == -pinf);
  CHECK(g.d_mu == pinf);
  CHECK(cellkit::test::close(g.d_theta, -(1 / (2.5 * 3.5) + 2 / (2.5 * 4.5)), 1e-14));  // -sum_k k/(theta(theta+k))
  // theta = +inf is Poisson
  g = f(4.0, 3.0, pinf);
  CHECK(cellkit::test::close(g.log_prob, 4 * std::log(3.0) - 3 - std::log(24.0), 1e-15));
  CHECK(cellkit::test::close(g.d_mu, 4.0 / 3 - 1, 1e-15));
  CHECK(g.d_theta == 0.0);
  g = f(0.0, 3.0, pinf);
  CHECK(g.log_prob == -3.0);
  CHECK(g.d_mu == -1.0);
  // huge theta tends to the Poisson value
  CHECK(cellkit::test::close(f(4.0, 3.0, 1e15).log_prob, f(4.0, 3.0, pinf).log_prob, 1e-13));
  CHECK(std::fabs(f(4.0, 3.0, 1e15).d_theta) < 1e-29);
  // invalid arguments give NaN
  for (const auto& args : std::vector<std::vector<double>>{{-1, 1, 1},
                                                           {1, -1, 1},
                                                           {1, 1, 0},
                                                           {1, 1, -2},
                                                           {NAN, 1, 1},
                                                           {1, NAN, 1},
                                                           {1, 1, NAN},
                                                           {pinf, 1, 1},
                                                           {1, pinf, 1}}) {
    const auto r = f(args[0], args[1], args[2]);
    CHECK(std::isnan(r.log_prob));
    CHECK(std::isnan(r.d_mu));
    CHECK(std::isnan(r.d_theta));
    CHECK(std::isnan(lk::nb_log_prob_fn<double>{}(args[0], args[1], args[2])));
  }
  // the prepared-theta overloads give the same bits
  const auto th = lk::nb_theta<double>::make(0.37);
  const auto a = f(5.0, 2.0, 0.37), b = f(5.0, 2.0, th);
  CHECK(a.log_prob == b.log_prob);
  CHECK(a.d_mu == b.d_mu);
  CHECK(a.d_theta == b.d_theta);
  // theta_gradient = false skips d_theta
  CHECK(lk::nb_log_prob_grad_fn<double>{.theta_gradient = false}(5.0, 2.0, 0.37).d_theta == 0.0);
  // non-integer counts: the continuous extension (mpmath value for x = 2.5, mu = 1.5, theta = 0.75)
  CHECK(cellkit::test::close(lk::nb_log_prob_fn<double>{}(2.5, 1.5, 0.75), -2.3060746094411375, 1e-13));
}

// ---------------------------------------------------------------------------------------------------
// array functions

namespace {

/// A random NB problem: cells x genes counts with ~75% zeros, per-gene theta, size factors, a mask.
struct problem {
  index_t rows = 0, cols = 0;
  std::vector<double> x, mu, theta_gene, theta_elem, sf, mask;
  std::vector<std::int32_t> indptr, indices;
  std::vector<double> values;
};

problem make_problem(index_t rows, index_t cols, unsigned seed) {
  problem p;
  p.rows = rows;
  p.cols = cols;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  p.theta_gene.resize(static_cast<std::size_t>(cols));
  for (auto& t : p.theta_gene) t = std::pow(10.0, -1 + 3 * u(rng));
  p.theta_gene[0] = 1e7;  // a large theta (series path) and a small one
  if (cols > 1) p.theta_gene[1] = 1e-3;
  p.sf.resize(static_cast<std::size_t>(rows));
  for (auto& s : p.sf) s = std::exp(0.5 * (u(rng) - 0.5));
  p.indptr.push_back(0);
  for (index_t i = 0; i < rows; ++i) {
    for (index_t j = 0; j < cols; ++j) {
      const double m = std::exp(3 * (u(rng) - 0.5));
      p.mu.push_back(m);
      p.theta_elem.push_back(std::pow(10.0, -1 + 3 * u(rng)));
      p.mask.push_back(u(rng) < 0.9 ? 1.0 : 0.0);
      const double c = u(rng) < 0.75 ? 0.0 : std::floor(1 + 5 * m * u(rng));
      p.x.push_back(c);
      if (c != 0 || u(rng) < 0.02) {  // a few explicit zeros in the CSR
        p.indices.push_back(static_cast<std::int32_t>(j));
        p.values.push_back(c);
      }
    }
    p.indptr.push_back(static_cast<std::int32_t>(p.indices.size()));
  }
  return p;
}

struct reference_result {
  double loss = 0;
  std::vector<double> d_mu, d_theta_elem, d_theta_gene, per_cell, per_gene, log_prob;
};

/// Plain loops over the functor: the reference the array functions must reproduce.
reference_result reference(const problem& p, bool per_gene_theta, bool use_sf, bool use_mask, bool mean) {
  reference_result r;
  const auto n = static_cast<std::size_t>(p.rows * p.cols);
  r.d_mu.assign(n, 0);
  r.d_theta_elem.assign(n, 0);
  r.log_prob.assign(n, 0);
  r.d_theta_gene.assign(static_cast<std::size_t>(p.cols), 0);
  r.per_gene.assign(static_cast<std::size_t>(p.cols), 0);
  r.per_cell.assign(static_cast<std::size_t>(p.rows), 0);
  double count = 0;
  for (std::size_t k = 0; k < n; ++k) count += use_mask ? p.mask[k] : 1.0;
  const double scale = mean ? 1.0 / count : 1.0;
  for (index_t i = 0; i < p.rows; ++i) {
    for (index_t j = 0; j < p.cols; ++j) {
      const auto k = static_cast<std::size_t>(i * p.cols + j);
      const double s = use_sf ? p.sf[static_cast<std::size_t>(i)] : 1.0;
      const double th = per_gene_theta ? p.theta_gene[static_cast<std::size_t>(j)] : p.theta_elem[k];
      const auto g = lk::nb_log_prob_grad_fn<double>{}(p.x[k], s * p.mu[k], th);
      r.log_prob[k] = g.log_prob;
      const bool in = !use_mask || p.mask[k] != 0;
      if (!in) continue;
      r.loss -= g.log_prob;
      r.per_cell[static_cast<std::size_t>(i)] -= g.log_prob;
      r.per_gene[static_cast<std::size_t>(j)] -= g.log_prob;
      r.d_mu[k] = -g.d_mu * s * scale;
      r.d_theta_elem[k] = -g.d_theta * scale;
      r.d_theta_gene[static_cast<std::size_t>(j)] -= g.d_theta * scale;
    }
  }
  r.loss *= scale;
  return r;
}

void check_close_vectors(const std::vector<double>& got, const std::vector<double>& ref, double tol, const char* what) {
  REQUIRE(got.size() == ref.size());
  double worst = 0;
  for (std::size_t k = 0; k < got.size(); ++k) {
    const double scale = std::max(1.0, std::fabs(ref[k]));
    worst = std::max(worst, std::fabs(got[k] - ref[k]) / scale);
  }
  INFO(what << ": max error " << worst);
  CHECK(worst <= tol);
}

/// All outputs of one nb_nll call, read back to the host.
struct run_result {
  double loss = 0;
  std::vector<double> d_mu, d_theta, per_cell, per_gene, log_prob;
};

template <class P>
run_result run_nb(const problem& p, bool csr, bool per_gene_theta, bool use_sf, bool use_mask, bool mean) {
  using cellkit::test::policy_array;
  const auto policy = cellkit::test::policy_of<P>();
  policy_array<P, double> x(p.x), mu(p.mu), theta(per_gene_theta ? p.theta_gene : p.theta_elem), sf(p.sf), mask(p.mask),
      values(p.values);
  policy_array<P, std::int32_t> indptr(p.indptr), indices(p.indices);
  policy_array<P, double> d_mu(p.rows * p.cols), d_theta(per_gene_theta ? p.cols : p.rows * p.cols), per_cell(p.rows),
      per_gene(p.cols), log_prob(p.rows * p.cols);
  using space = typename policy_array<P, double>::space;
  lk::nll_outputs<double, space> out{
      .d_mu = d_mu.matrix(p.rows, p.cols),
      .d_theta = per_gene_theta ? lk::gene_param_view<double, space>(d_theta.view())
                                : lk::gene_param_view<double, space>(d_theta.matrix(p.rows, p.cols)),
      .per_cell = per_cell.view(),
      .per_gene = per_gene.view(),
      .log_prob = log_prob.matrix(p.rows, p.cols)};
  lk::nll_options<double, space, double> opt;
  opt.reduce = mean ? lk::reduction::mean : lk::reduction::sum;
  if (use_sf) opt.size_factors = cellkit::vector_view<const double, space>(sf.data(), p.rows);
  if (use_mask) opt.mask = cellkit::matrix_view<const double, space>(mask.data(), p.rows, p.cols);
  const lk::gene_param_view<const double, space> th =
      per_gene_theta
          ? lk::gene_param_view<const double, space>(cellkit::vector_view<const double, space>(theta.data(), p.cols))
          : lk::gene_param_view<const double, space>(
                cellkit::matrix_view<const double, space>(theta.data(), p.rows, p.cols));
  cellkit::matrix_view<const double, space> mu_view(mu.data(), p.rows, p.cols);
  run_result r;
  if (csr) {
    cellkit::csr_view<const double, std::int32_t, space> counts(p.rows, p.cols, static_cast<index_t>(p.values.size()),
                                                                indptr.data(), indices.data(), values.data());
    r.loss = lk::nb_nll(policy, counts, mu_view, th, out, opt);
  } else {
    cellkit::matrix_view<const double, space> counts(x.data(), p.rows, p.cols);
    r.loss = lk::nb_nll(policy, counts, mu_view, th, out, opt);
  }
  r.d_mu = d_mu.to_host();
  r.d_theta = d_theta.to_host();
  r.per_cell = per_cell.to_host();
  r.per_gene = per_gene.to_host();
  r.log_prob = log_prob.to_host();
  return r;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (!(a[k] == b[k] || (std::isnan(a[k]) && std::isnan(b[k])))) return false;
  }
  return true;
}

void check_same(const run_result& a, const run_result& b) {
  CHECK(a.loss == b.loss);
  CHECK(same_bits(a.d_mu, b.d_mu));
  CHECK(same_bits(a.d_theta, b.d_theta));
  CHECK(same_bits(a.per_cell, b.per_cell));
  CHECK(same_bits(a.per_gene, b.per_gene));
  CHECK(same_bits(a.log_prob, b.log_prob));
}

}  // namespace

TEST_CASE_TEMPLATE("nb_nll: dense and CSR match the functor reference, with every option", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const problem p = make_problem(150, 29, 7);
  for (int variant = 0; variant < 8; ++variant) {
    const bool per_gene_theta = variant & 1, use_sf = variant & 2, use_mask = variant & 4;
    for (const bool mean : {false, true}) {
      CAPTURE(variant);
      CAPTURE(mean);
      const reference_result ref = reference(p, per_gene_theta, use_sf, use_mask, mean);
      const run_result dense = run_nb<P>(p, false, per_gene_theta, use_sf, use_mask, mean);
      const run_result csr = run_nb<P>(p, true, per_gene_theta, use_sf, use_mask, mean);
      CHECK(cellkit::test::close(dense.loss, ref.loss, 1e-13));
      check_close_vectors(dense.d_mu, ref.d_mu, 1e-13, "d_mu");
      check_close_vectors(dense.d_theta, per_gene_theta ? ref.d_theta_gene : ref.d_theta_elem, 1e-12, "d_theta");
      check_close_vectors(dense.per_cell, ref.per_cell, 1e-13, "per_cell");
      check_close_vectors(dense.per_gene, ref.per_gene, 1e-13, "per_gene");
      check_close_vectors(dense.log_prob, ref.log_prob, 1e-14, "log_prob");
      if constexpr (cellkit::is_host_policy_v<decltype(cellkit::test::policy_of<P>())>) {
        check_same(dense, csr);  // the two paths sum in the same order: identical bits
        check_same(dense, run_nb<cellkit::serial>(p, false, per_gene_theta, use_sf, use_mask, mean));
      } else {
        CHECK(cellkit::test::close(csr.loss, dense.loss, 1e-13));
      }
    }
  }
}

TEST_CASE("nb_nll: serial, openmp{1} and openmp{2} give identical bits on a larger problem") {
  const problem p = make_problem(700, 53, 11);
  const run_result s = run_nb<cellkit::serial>(p, true, true, true, false, true);
  check_same(s, run_nb<cellkit::test::openmp1>(p, true, true, true, false, true));
  check_same(s, run_nb<cellkit::test::openmp2>(p, true, true, true, false, true));
  check_same(s, run_nb<cellkit::test::openmp2>(p, false, true, true, false, true));
}

TEST_CASE("nb_nll: value-only calls, nb_log_prob, float, and the overloads without a policy") {
  const problem p = make_problem(40, 17, 3);
  cellkit::matrix_view<const double> x(p.x.data(), p.rows, p.cols), mu(p.mu.data(), p.rows, p.cols);
  cellkit::vector_view<const double> theta(p.theta_gene.data(), p.cols);
  const reference_result ref = reference(p, true, false, false, false);
  CHECK(cellkit::test::close(lk::nb_nll(x, mu, theta), ref.loss, 1e-13));
  CHECK(lk::nb_nll(cellkit::serial{}, x, mu, theta) == lk::nb_nll(cellkit::openmp{2}, x, mu, theta));
  std::vector<double> lp(p.x.size());
  lk::nb_log_prob(x, mu, theta, cellkit::matrix_view<double>(lp.data(), p.rows, p.cols));
  check_close_vectors(lp, ref.log_prob, 0, "nb_log_prob");
  // float: same code in float arithmetic
  std::vector<float> xf(p.x.begin(), p.x.end()), muf(p.mu.begin(), p.mu.end()),
      thf(p.theta_gene.begin(), p.theta_gene.end());
  std::vector<float> dmu(p.x.size());
  const float lossf = lk::nb_nll(cellkit::serial{}, cellkit::matrix_view<const float>(xf.data(), p.rows, p.cols),
                                 cellkit::matrix_view<const float>(muf.data(), p.rows, p.cols),
                                 cellkit::vector_view<const float>(thf.data(), p.cols),
                                 {.d_mu = cellkit::matrix_view<float>(dmu.data(), p.rows, p.cols)});
  CHECK(cellkit::test::close(lossf, ref.loss, 1e-5));
  double worst = 0;
  for (std::size_t k = 0; k < dmu.size(); ++k)
    worst = std::max(worst, std::fabs(dmu[k] - ref.d_mu[k]) / (1 + std::fabs(ref.d_mu[k])));
  CHECK(worst <= 1e-5);
}

TEST_CASE("nb_nll: errors name the argument and the shapes") {
  const problem p = make_problem(6, 5, 1);
  cellkit::matrix_view<const double> x(p.x.data(), 6, 5), mu(p.mu.data(), 6, 5), mu_bad(p.mu.data(), 5, 6);
  cellkit::vector_view<const double> theta(p.theta_gene.data(), 5), theta_bad(p.theta_gene.data(), 4);
  auto message = [](auto&& call) -> std::string {
    try {
      call();
    } catch (const cellkit::error& e) {
      return e.what();
    }
    return "no exception";
  };
  CHECK_THROWS_AS(lk::nb_nll(cellkit::serial{}, x, mu_bad, theta), cellkit::dimension_mismatch);
  CHECK(message([&] { lk::nb_nll(cellkit::serial{}, x, mu_bad, theta); }).find("mu is 5 x 6 but counts is 6 x 5") !=
        std::string::npos);
  CHECK(message([&] { lk::nb_nll(cellkit::serial{}, x, mu, theta_bad); }).find("theta is 1 x 4 but counts is 6 x 5") !=
        std::string::npos);
  std::vector<double> wrong(7);
  CHECK_THROWS_AS(lk::nb_nll(cellkit::serial{}, x, mu, theta, {},
                             {.size_factors = cellkit::vector_view<const double>(wrong.data(), 7)}),
                  cellkit::dimension_mismatch);
  std::vector<double> dpi(30);
  CHECK(message([&] {
          lk::nb_nll(cellkit::serial{}, x, mu, theta, {.d_pi = cellkit::matrix_view<double>(dpi.data(), 6, 5)});
        }).find("'d_pi'") != std::string::npos);
  CHECK_THROWS_AS(lk::nb_nll(cellkit::serial{}, x, mu, theta, {}, {.ridge_lambda = 1.0}), cellkit::invalid_argument);
  // per-element checks (CELLKIT_DEBUG_CHECKS is 1 in the test suite)
  std::vector<double> mu2 = p.mu;
  mu2[2 * 5 + 3] = -0.5;
  const std::string m =
      message([&] { lk::nb_nll(cellkit::openmp{2}, x, cellkit::matrix_view<const double>(mu2.data(), 6, 5), theta); });
  CHECK(m.find("'mu'") != std::string::npos);
  CHECK(m.find("element (2, 3) = -0.5") != std::string::npos);
  std::vector<double> th2 = p.theta_gene;
  th2[4] = 0;
  CHECK(message([&] {
          lk::nb_nll(cellkit::serial{}, x, mu, cellkit::vector_view<const double>(th2.data(), 5));
        }).find("'theta': element 4 = 0") != std::string::npos);
  std::vector<double> x2 = p.x;
  x2[7] = std::numeric_limits<double>::quiet_NaN();
  CHECK(message([&] {
          lk::nb_nll(cellkit::serial{}, cellkit::matrix_view<const double>(x2.data(), 6, 5), mu, theta);
        }).find("'counts': element (1, 2)") != std::string::npos);
  std::vector<double> mask(30, 1.0);
  mask[3] = 0.5;
  CHECK(message([&] {
          // a mask of another type than std::uint8_t: name the options type (Mask is not deduced from braces)
          lk::nb_nll(cellkit::serial{}, x, mu, theta, {},
                     lk::nll_options<double, cellkit::host_space, double>{
                         .mask = cellkit::matrix_view<const double>(mask.data(), 6, 5)});
        }).find("'mask'") != std::string::npos);
  // unsorted CSR columns are caught by validate()
  std::vector<std::int32_t> indptr = {0, 2, 2, 2, 2, 2, 2}, indices = {3, 1};
  std::vector<double> values = {1, 2};
  CHECK_THROWS_AS(
      lk::nb_nll(cellkit::serial{},
                 cellkit::csr_view<const double, std::int32_t>(6, 5, 2, indptr.data(), indices.data(), values.data()),
                 mu, theta),
      cellkit::invalid_argument);
}

TEST_CASE("nb_nll: empty problems and an all-excluded mask") {
  std::vector<double> none;
  cellkit::matrix_view<const double> x(none.data(), 0, 4), mu(none.data(), 0, 4);
  std::vector<double> theta = {1, 2, 3, 4}, dth(4, 7.0);
  CHECK(lk::nb_nll(cellkit::serial{}, x, mu, cellkit::vector_view<const double>(theta.data(), 4),
                   {.d_theta = cellkit::vector_view<double>(dth.data(), 4)}) == 0.0);
  CHECK(dth == std::vector<double>(4, 0.0));
  const problem p = make_problem(5, 4, 2);
  std::vector<std::uint8_t> mask(20, 0);
  std::vector<double> dmu(20, 1.0);
  const double loss = lk::nb_nll(
      cellkit::serial{}, cellkit::matrix_view<const double>(p.x.data(), 5, 4),
      cellkit::matrix_view<const double>(p.mu.data(), 5, 4), cellkit::vector_view<const double>(p.theta_gene.data(), 4),
      {.d_mu = cellkit::matrix_view<double>(dmu.data(), 5, 4)},
      {.reduce = lk::reduction::mean, .mask = cellkit::matrix_view<const std::uint8_t>(mask.data(), 5, 4)});
  CHECK(loss == 0.0);
  CHECK(dmu == std::vector<double>(20, 0.0));
}

// ---------------------------------------------------------------------------------------------------
// the branch-free helpers behind the x = 0 pass (detail/fast_math.hpp)

TEST_CASE("nb: the branch-free log, exp and expm1 of the x = 0 kernels are accurate to a few ulp") {
  namespace d = cellkit::likelihood::detail;
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<double> u(-1, 1);
  double log_d = 0, exp_d = 0, expm1_d = 0, log_f = 0, exp_f = 0, expm1_f = 0;
  for (int k = 0; k < 200000; ++k) {
    const double x = std::exp(700 * u(rng));
    const long double lx = std::log(static_cast<long double>(x));
    if (lx != 0) log_d = std::max(log_d, static_cast<double>(std::fabs((d::flog(x) - lx) / lx)));
    const double y = 745 * u(rng);
    const auto e = d::fexp_pair(y);
    const long double ey = std::exp(static_cast<long double>(y));
    if (ey > DBL_MIN && ey < DBL_MAX) exp_d = std::max(exp_d, static_cast<double>(std::fabs((e.exp - ey) / ey)));
    const double z = -0.6931 * (u(rng) + 1) / 2;  // expm1 is used with full relative accuracy on [-log 2, 0]
    if (z != 0) {
      const long double em = std::expm1(static_cast<long double>(z));
      expm1_d = std::max(expm1_d, static_cast<double>(std::fabs((d::fexp_pair(z).expm1 - em) / em)));
    }
    const auto xf = static_cast<float>(std::exp(85 * u(rng)));
    const double lxf = std::log(static_cast<double>(xf));
    if (lxf != 0) log_f = std::max(log_f, std::fabs((d::flog(xf) - lxf) / lxf));
    const auto yf = static_cast<float>(87 * u(rng));
    const double eyf = std::exp(static_cast<double>(yf));
    if (eyf > FLT_MIN) exp_f = std::max(exp_f, std::fabs((d::fexp_pair(yf).exp - eyf) / eyf));
    const auto zf = static_cast<float>(z);
    if (zf != 0)
      expm1_f = std::max(expm1_f, std::fabs((d::fexp_pair(zf).expm1 - std::expm1(static_cast<double>(zf))) /
                                            std::expm1(static_cast<double>(zf))));
  }
  MESSAGE("ulps: double log " << log_d / 0x1p-52 << ", exp " << exp_d / 0x1p-52 << ", expm1 " << expm1_d / 0x1p-52
                              << "; float log " << log_f / 0x1p-23 << ", exp " << exp_f / 0x1p-23 << ", expm1 "
                              << expm1_f / 0x1p-23);
  CHECK(log_d <= 4 * 0x1p-52);
  CHECK(exp_d <= 4 * 0x1p-52);
  CHECK(expm1_d <= 4 * 0x1p-52);
  CHECK(log_f <= 4 * 0x1p-23);
  CHECK(exp_f <= 4 * 0x1p-23);
  CHECK(expm1_f <= 4 * 0x1p-23);
  // subnormal arguments, exp's limits
  CHECK(cellkit::test::close(d::flog(1e-310), std::log(1e-310), 4e-16));
  CHECK(d::fexp_pair(-pinf).exp == 0.0);
  CHECK(d::fexp_pair(pinf).exp == pinf);
  CHECK(std::isnan(d::fexp_pair(std::nan("")).exp));
  CHECK(d::fexp_pair(-745.0).exp == std::exp(-745.0));
  CHECK(d::fexp_pair(0.0).expm1 == 0.0);
}
