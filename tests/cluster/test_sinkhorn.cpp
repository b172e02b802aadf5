#include <cellkit/cluster/sinkhorn.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

// Sinkhorn runs on the host only; the tests are templated over the host policies even in the nvcc
// build. Plans are compared with POT 0.8.2 to 1e-10 (absolute, plans sum to 1) where POT converged
// to stopThr = 1e-13; both solve the same strictly convex problem, so the plans agree whatever the
// iteration order.

using namespace cellkit;
using cellkit::test::policy_of;
namespace ck = cellkit::cluster;

namespace {

template <class T>
matrix_view<const T> cview(const std::vector<T>& v, index_t rows, index_t cols) {
  return matrix_view<const T>(v.data(), rows, cols);
}
template <class T>
vector_view<const T> vview(const std::vector<T>& v) {
  return vector_view<const T>(v.data(), static_cast<index_t>(v.size()));
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

std::vector<double> row_sums(const std::vector<double>& p, index_t n, index_t m) {
  std::vector<double> s(static_cast<std::size_t>(n), 0.0);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < m; ++j) s[static_cast<std::size_t>(i)] += p[static_cast<std::size_t>(i * m + j)];
  return s;
}
std::vector<double> col_sums(const std::vector<double>& p, index_t n, index_t m) {
  std::vector<double> s(static_cast<std::size_t>(m), 0.0);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < m; ++j) s[static_cast<std::size_t>(j)] += p[static_cast<std::size_t>(i * m + j)];
  return s;
}

/// Costs uniform in [0, 1) from splitmix64 (the same numbers with every standard library).
std::vector<double> uniform_costs(index_t n, index_t m, std::uint64_t seed) {
  std::vector<double> c(static_cast<std::size_t>(n * m));
  std::uint64_t state = seed;
  for (auto& v : c) {
    state += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    v = static_cast<double>(z >> 11) * 0x1p-53;
  }
  return c;
}

}  // namespace

TEST_CASE_TEMPLATE("plans match POT: sinkhorn, sinkhorn_log, sinkhorn_unbalanced", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const auto cases = test::read_fixture_cases("cluster_sinkhorn_cases.txt");
  int compared = 0;
  for (const auto& c : cases) {
    const int kind = static_cast<int>(c.params[1]);
    if (kind > 2) continue;
    const auto n = static_cast<index_t>(c.params[2]);
    const auto m = static_cast<index_t>(c.params[3]);
    const double reg = c.params[4];
    const double reg_m = c.params[5];
    REQUIRE(c.params[6] == 1.0);  // POT converged on every case
    CAPTURE(c.params[0]);
    const auto cost = cview(c.matrix("M"), n, m);
    const auto a = vector_view<const double>(c.matrix("a").data(), n);
    const auto b = vector_view<const double>(c.matrix("b").data(), m);
    for (const auto method : {ck::sinkhorn_method::kernel, ck::sinkhorn_method::log}) {
      CAPTURE(static_cast<int>(method));
      std::vector<double> plan(static_cast<std::size_t>(n * m), std::nan(""));
      std::vector<index_t> assignment(static_cast<std::size_t>(n), -1);
      ck::sinkhorn_params<double> params{
          .epsilon = reg, .method = method, .max_iter = 100000, .tol = 1e-14, .check_every = 1};
      if (kind == 2) params.reg_m = reg_m;
      const auto r = ck::sinkhorn(
          policy, cost, a, b,
          {.plan = matrix_view<double>(plan.data(), n, m), .assignment = make_vector_view(assignment.data(), n)},
          params);
      CHECK(r.converged);
      CHECK(r.reason == ck::stop_reason::converged);
      CHECK(r.error < 1e-14);
      CHECK(max_abs_diff(plan, c.matrix("plan")) < 1e-10);
      CHECK(max_abs_diff(row_sums(plan, n, m), c.matrix("row_marginal")) < 1e-10);
      CHECK(max_abs_diff(col_sums(plan, n, m), c.matrix("col_marginal")) < 1e-10);
      for (index_t i = 0; i < n; ++i) {  // the assignment is the argmax of each plan row
        const auto row = plan.begin() + i * m;
        CHECK(assignment[static_cast<std::size_t>(i)] == std::max_element(row, row + m) - row);
      }
      // The potentials reproduce the plan: P_ij = exp((f_i + g_j - C_ij) / eps).
      CHECK(std::fabs(std::exp((r.f[0] + r.g[0] - c.matrix("M")[0]) / reg) - plan[0]) < 1e-12);
      ++compared;
    }
  }
  CHECK(compared == 20);
}

TEST_CASE_TEMPLATE("costs computed on the fly match the stored-cost solution and POT", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const auto cases = test::read_fixture_cases("cluster_sinkhorn_cases.txt");
  int compared = 0;
  for (const auto& c : cases) {
    if (static_cast<int>(c.params[1]) != 4) continue;
    const auto n = static_cast<index_t>(c.params[2]);
    const auto m = static_cast<index_t>(c.params[3]);
    const double reg = c.params[4];
    const int cost_kind = static_cast<int>(c.params[5]);
    CAPTURE(c.params[0]);
    const auto d = c.shape("x").second;
    const ck::pairwise_cost<double> cost{cview(c.matrix("x"), n, d), cview(c.matrix("centres"), m, d),
                                         cost_kind == 0   ? ck::pairwise_cost_kind::squared_euclidean
                                         : cost_kind == 1 ? ck::pairwise_cost_kind::cosine
                                                          : ck::pairwise_cost_kind::student_t,
                                         1.0};
    for (const auto method : {ck::sinkhorn_method::log, ck::sinkhorn_method::kernel}) {
      std::vector<double> plan(static_cast<std::size_t>(n * m));
      const auto r = ck::sinkhorn(
          policy, cost, vview(c.matrix("a")), vview(c.matrix("b")), {.plan = matrix_view<double>(plan.data(), n, m)},
          {.epsilon = reg, .method = method, .max_iter = 100000, .tol = 1e-14, .check_every = 1});
      CHECK(r.converged);
      CHECK(max_abs_diff(plan, c.matrix("plan")) < 1e-10);
      ++compared;
    }
  }
  CHECK(compared == 6);
}

TEST_CASE_TEMPLATE("balanced pseudo-labels match SwAV's distributed_sinkhorn", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const auto cases = test::read_fixture_cases("cluster_sinkhorn_cases.txt");
  int compared = 0;
  for (const auto& c : cases) {
    if (static_cast<int>(c.params[1]) != 3) continue;
    const auto n = static_cast<index_t>(c.params[2]);
    const auto k = static_cast<index_t>(c.params[3]);
    CAPTURE(c.params[0]);
    std::vector<double> q(static_cast<std::size_t>(n * k));
    ck::balanced_pseudo_labels(policy, cview(c.matrix("M"), n, k), matrix_view<double>(q.data(), n, k),
                               {.epsilon = c.params[4], .iterations = static_cast<int>(c.params[5])});
    CHECK(max_abs_diff(q, c.matrix("plan")) < 1e-12);
    for (double s : row_sums(q, n, k)) CHECK(std::fabs(s - 1.0) < 1e-14);
    ++compared;
  }
  CHECK(compared == 4);
  // Large scores / small epsilon: exp(scores / eps) would overflow; the log domain does not.
  const std::vector<double> scores = {1000, -1000, 0, 500, 400, -300};
  std::vector<double> q(6);
  ck::balanced_pseudo_labels(policy, cview(scores, 3, 2), matrix_view<double>(q.data(), 3, 2), {.epsilon = 0.01});
  for (double v : q) CHECK(std::isfinite(v));
}

TEST_CASE_TEMPLATE("epsilon = 1e-4 in the log domain: no NaN; converges with epsilon scaling", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  // At eps = 1e-4 (costs in [0, 1)) plain Sinkhorn needs ~1e5+ iterations (POT's sinkhorn_log is
  // still at error ~1e-5 after 3e4); epsilon scaling from 1 converges in a few hundred.
  for (const auto& shape : {std::pair<index_t, index_t>{20, 20}, std::pair<index_t, index_t>{24, 16}}) {
    const index_t n = shape.first;  // (no structured bindings: clang 14 cannot capture them in CAPTURE)
    const index_t m = shape.second;
    CAPTURE(n);
    const auto cost = uniform_costs(n, m, 1);
    std::vector<double> a(static_cast<std::size_t>(n), 1.0 / double(n)),
        b(static_cast<std::size_t>(m), 1.0 / double(m));
    std::vector<double> plan(static_cast<std::size_t>(n * m));
    const auto r =
        ck::sinkhorn(policy, cview(cost, n, m), vview(a), vview(b), {.plan = matrix_view<double>(plan.data(), n, m)},
                     {.epsilon = 1e-4, .max_iter = 5000, .tol = 1e-9, .epsilon_start = 1.0, .stage_iterations = 20});
    CHECK(r.converged);
    CHECK(r.epsilon == 1e-4);
    CHECK(r.error < 1e-9);
    CHECK(r.iterations < 1000);
    for (double v : plan) REQUIRE(std::isfinite(v));
    const auto rs = row_sums(plan, n, m);
    const auto cs = col_sums(plan, n, m);
    for (index_t i = 0; i < n; ++i) CHECK(std::fabs(rs[static_cast<std::size_t>(i)] - a[0]) < 1e-12 * a[0]);
    double err = 0.0;
    for (index_t j = 0; j < m; ++j)
      err += (cs[static_cast<std::size_t>(j)] - b[0]) * (cs[static_cast<std::size_t>(j)] - b[0]);
    CHECK(std::sqrt(err) < 1e-9);
    double transport = 0.0;  // close to the unregularised optimum (random costs: ~ small)
    for (std::size_t e = 0; e < plan.size(); ++e) transport += plan[e] * cost[e];
    CHECK(transport < 0.2);

    // Without scaling: slower, but every iterate stays finite and the error decreases.
    std::vector<double> errors;
    ck::sinkhorn_params<double> plain{.epsilon = 1e-4, .max_iter = 2000, .tol = 0.0, .check_every = 100};
    plain.progress = [&](const ck::sinkhorn_progress& info) {
      errors.push_back(info.error);
      return true;
    };
    const auto rp = ck::sinkhorn(policy, cview(cost, n, m), vview(a), vview(b),
                                 {.plan = matrix_view<double>(plan.data(), n, m)}, plain);
    CHECK(rp.reason == ck::stop_reason::max_iterations);
    for (double v : plan) REQUIRE(std::isfinite(v));
    for (double v : rp.f) REQUIRE(std::isfinite(v));
    for (double v : rp.g) REQUIRE(std::isfinite(v));
    REQUIRE(errors.size() >= 10);
    CHECK(errors.back() < 0.1 * errors.front());
    CHECK(rp.error < errors.front());
  }
  // float: no NaN either.
  const auto cost = uniform_costs(20, 20, 1);
  const std::vector<float> costf(cost.begin(), cost.end()), af(20, 0.05f), bf(20, 0.05f);
  const auto rf =
      ck::sinkhorn(policy, cview(costf, 20, 20), vview(af), vview(bf), {},
                   {.epsilon = 1e-4f, .max_iter = 3000, .tol = 1e-6f, .epsilon_start = 1.0f, .stage_iterations = 20});
  CHECK(rf.converged);
  for (float v : rf.f) CHECK(std::isfinite(v));
  for (float v : rf.g) CHECK(std::isfinite(v));
}

TEST_CASE("the kernel method reports a numerical error instead of NaN when K underflows") {
  // Row 3's costs are all >= 800: exp(-800) = 0 in double, so K's row 3 is zero. Shifting a row's
  // costs by a constant does not change the plan, and the log method solves it.
  const index_t n = 10, m = 10;
  auto cost = uniform_costs(n, m, 4);
  for (index_t j = 0; j < m; ++j) cost[static_cast<std::size_t>(3 * m + j)] += 800.0;
  std::vector<double> a(static_cast<std::size_t>(n), 0.1), b(static_cast<std::size_t>(m), 0.1);
  const auto r = ck::sinkhorn(serial{}, cview(cost, n, m), vview(a), vview(b), {},
                              {.epsilon = 1.0, .method = ck::sinkhorn_method::kernel});
  CHECK(r.reason == ck::stop_reason::numerical_error);
  CHECK(r.iterations == 1);
  CHECK_FALSE(r.converged);
  for (double v : r.f) CHECK(!std::isnan(v));
  for (double v : r.g) CHECK(!std::isnan(v));
  std::vector<double> plan(static_cast<std::size_t>(n * m)), shifted_plan(static_cast<std::size_t>(n * m));
  const auto l = ck::sinkhorn(serial{}, cview(cost, n, m), vview(a), vview(b),
                              {.plan = matrix_view<double>(plan.data(), n, m)}, {.epsilon = 1.0, .tol = 1e-13});
  CHECK(l.converged);
  for (index_t j = 0; j < m; ++j) cost[static_cast<std::size_t>(3 * m + j)] -= 800.0;
  ck::sinkhorn(serial{}, cview(cost, n, m), vview(a), vview(b),
               {.plan = matrix_view<double>(shifted_plan.data(), n, m)},
               {.epsilon = 1.0, .method = ck::sinkhorn_method::kernel, .tol = 1e-13});
  CHECK(max_abs_diff(plan, shifted_plan) < 1e-12);
}

TEST_CASE("thread-count independence, float vs double, scores, warm start, callback") {
  const index_t n = 3001, m = 37;  // 63 chunks of 48 rows
  const auto cost = uniform_costs(n, m, 11);
  std::vector<double> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(m));
  std::mt19937_64 rng(2);
  double sa = 0, sb = 0;
  for (auto& v : a) sa += (v = std::uniform_real_distribution<double>(0.5, 1.0)(rng));
  for (auto& v : b) sb += (v = std::uniform_real_distribution<double>(0.5, 1.0)(rng));
  for (auto& v : a) v /= sa;
  for (auto& v : b) v /= sb;
  for (const auto method : {ck::sinkhorn_method::log, ck::sinkhorn_method::kernel}) {
    for (const bool unbalanced : {false, true}) {
      CAPTURE(static_cast<int>(method));
      CAPTURE(unbalanced);
      ck::sinkhorn_params<double> params{.epsilon = 0.05, .method = method, .max_iter = 15};
      if (unbalanced) params.reg_m = 0.5;
      const auto r0 = ck::sinkhorn(serial{}, cview(cost, n, m), vview(a), vview(b), {}, params);
      for (int threads : {2, 3}) {
        const auto r = ck::sinkhorn(openmp{threads}, cview(cost, n, m), vview(a), vview(b), {}, params);
        CHECK(r.f == r0.f);
        CHECK(r.g == r0.g);
        CHECK(r.error == r0.error);
      }
    }
  }
  // float vs double (log method, moderate epsilon).
  std::vector<double> pd(static_cast<std::size_t>(n * m));
  std::vector<float> pf(static_cast<std::size_t>(n * m));
  const std::vector<float> costf(cost.begin(), cost.end()), af(a.begin(), a.end()), bf(b.begin(), b.end());
  const auto rd = ck::sinkhorn(serial{}, cview(cost, n, m), vview(a), vview(b),
                               {.plan = matrix_view<double>(pd.data(), n, m)}, {.epsilon = 0.05, .tol = 1e-10});
  const auto rf = ck::sinkhorn(serial{}, cview(costf, n, m), vview(af), vview(bf),
                               {.plan = matrix_view<float>(pf.data(), n, m)}, {.epsilon = 0.05f, .tol = 1e-7f});
  CHECK(rd.converged);
  CHECK(rf.converged);
  double worst = 0.0, scale = 0.0;
  for (std::size_t e = 0; e < pd.size(); ++e) {
    worst = std::max(worst, std::fabs(double(pf[e]) - pd[e]));
    scale = std::max(scale, pd[e]);
  }
  CHECK(worst < 1e-4 * scale);

  // Scores: S = -C gives the same plan.
  std::vector<double> scores(cost.size()), ps(cost.size());
  for (std::size_t e = 0; e < cost.size(); ++e) scores[e] = -cost[e];
  ck::sinkhorn(serial{}, cview(scores, n, m), vview(a), vview(b), {.plan = matrix_view<double>(ps.data(), n, m)},
               {.epsilon = 0.05, .kind = ck::matrix_kind::score, .tol = 1e-10});
  CHECK(max_abs_diff(ps, pd) < 1e-14);

  // Warm start from converged potentials: converged at the first check.
  ck::sinkhorn_params<double> warm{.epsilon = 0.05, .tol = 1e-9};
  warm.f_init = vview(rd.f);
  warm.g_init = vview(rd.g);
  const auto rw = ck::sinkhorn(serial{}, cview(cost, n, m), vview(a), vview(b), {}, warm);
  CHECK(rw.converged);
  CHECK(rw.iterations == 1);

  // Callback: called at iterations 1, 11, 21 (check_every = 10); false stops.
  std::vector<int> seen;
  ck::sinkhorn_params<double> cb{.epsilon = 0.01, .tol = 0.0};
  cb.progress = [&](const ck::sinkhorn_progress& info) {
    seen.push_back(info.iteration);
    CHECK(info.epsilon == 0.01);
    return seen.size() < 3;
  };
  const auto rc = ck::sinkhorn(serial{}, cview(cost, n, m), vview(a), vview(b), {}, cb);
  CHECK(seen == std::vector<int>{1, 11, 21});
  CHECK(rc.reason == ck::stop_reason::stopped_by_callback);
  CHECK(rc.iterations == 21);
  // max_iter: the returned error describes the returned iterate.
  std::vector<double> plan(static_cast<std::size_t>(n * m));
  const auto rm =
      ck::sinkhorn(serial{}, cview(cost, n, m), vview(a), vview(b), {.plan = matrix_view<double>(plan.data(), n, m)},
                   {.epsilon = 0.001, .max_iter = 7, .tol = 0.0});
  CHECK(rm.reason == ck::stop_reason::max_iterations);
  CHECK(rm.iterations == 7);
  const auto cs = col_sums(plan, n, m);
  double err = 0.0;
  for (index_t j = 0; j < m; ++j)
    err += (cs[static_cast<std::size_t>(j)] - b[static_cast<std::size_t>(j)]) *
           (cs[static_cast<std::size_t>(j)] - b[static_cast<std::size_t>(j)]);
  CHECK(std::sqrt(err) == doctest::Approx(rm.error).epsilon(1e-6));
}

TEST_CASE("zero marginal entries: empty rows and columns get no mass") {
  const index_t n = 6, m = 4;
  const auto cost = uniform_costs(n, m, 9);
  std::vector<double> a = {0.2, 0.0, 0.3, 0.1, 0.4, 0.0}, b = {0.5, 0.0, 0.25, 0.25};
  for (const auto method : {ck::sinkhorn_method::log, ck::sinkhorn_method::kernel}) {
    std::vector<double> plan(static_cast<std::size_t>(n * m));
    const auto r =
        ck::sinkhorn(serial{}, cview(cost, n, m), vview(a), vview(b), {.plan = matrix_view<double>(plan.data(), n, m)},
                     {.epsilon = 0.1, .method = method, .tol = 1e-12});
    CHECK(r.converged);
    const auto rs = row_sums(plan, n, m);
    const auto cs = col_sums(plan, n, m);
    for (index_t i = 0; i < n; ++i)
      CHECK(std::fabs(rs[static_cast<std::size_t>(i)] - a[static_cast<std::size_t>(i)]) < 1e-12);
    for (index_t j = 0; j < m; ++j)
      CHECK(std::fabs(cs[static_cast<std::size_t>(j)] - b[static_cast<std::size_t>(j)]) < 1e-11);
    CHECK(cs[1] == 0.0);
  }
}

TEST_CASE("the vectorisable exp is accurate to 2 ulp and flushes below the normal range") {
  std::mt19937_64 rng(5);
  double worst = 0.0;
  for (int t = 0; t < 200000; ++t) {
    const double x = std::uniform_real_distribution<double>(-708.0, 709.7)(rng) * (t % 2 ? 1.0 : 1e-3);
    const double want = std::exp(x);
    const double ulp = std::nextafter(want, INFINITY) - want;
    worst = std::max(worst, std::fabs(ck::detail::exp_flush(x) - want) / ulp);
  }
  CHECK(worst <= 2.0);
  float worst_f = 0.0f;
  for (int t = 0; t < 200000; ++t) {
    const float x = std::uniform_real_distribution<float>(-87.3f, 88.7f)(rng) * (t % 2 ? 1.0f : 1e-3f);
    const float want = static_cast<float>(std::exp(static_cast<double>(x)));
    const float ulp = std::nextafter(want, INFINITY) - want;
    worst_f = std::max(worst_f, std::fabs(ck::detail::exp_flush(x) - want) / ulp);
  }
  CHECK(worst_f <= 2.0f);
  CHECK(ck::detail::exp_flush(-709.0) == 0.0);
  CHECK(ck::detail::exp_flush(-90.0f) == 0.0f);
  CHECK(ck::detail::exp_flush(710.0) == std::numeric_limits<double>::infinity());
  CHECK(ck::detail::exp_flush(89.0f) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(ck::detail::exp_flush(std::nan(""))));
  CHECK(ck::detail::exp_flush(0.0) == 1.0);
}

#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
// The vector exp of the tiled sweeps: lane for lane within 2 ulp of std::exp (as the scalar one),
// and the same flushing, overflow and NaN behaviour.
template <class T>
void check_vector_exp(std::mt19937_64& rng, T lo, T hi) {
  using vec = typename ck::detail::simd_vector<T>::type;
  constexpr int lanes = static_cast<int>(sizeof(vec) / sizeof(T));
  double worst = 0.0;
  T in[lanes], out[lanes];
  for (int t = 0; t < 20000; ++t) {
    for (int l = 0; l < lanes; ++l)
      in[l] = std::uniform_real_distribution<T>(lo, hi)(rng) * ((t + l) % 2 ? T(1) : T(1e-3));
    vec v;
    std::memcpy(&v, in, sizeof(vec));
    ck::detail::exp_flush_in_place(v);
    std::memcpy(out, &v, sizeof(vec));
    for (int l = 0; l < lanes; ++l) {
      const T want = static_cast<T>(std::exp(static_cast<double>(in[l])));
      const T ulp = std::nextafter(want, std::numeric_limits<T>::infinity()) - want;
      worst = std::max(worst, static_cast<double>(std::fabs(out[l] - want) / ulp));
    }
  }
  CHECK(worst <= 2.0);
  for (int l = 0; l < lanes; ++l) in[l] = T(0);
  in[1] = lo - T(2);  // below the normal range: 0
  in[2] = hi + T(1);  // overflow: +inf
  in[3] = std::numeric_limits<T>::quiet_NaN();
  in[4] = -std::numeric_limits<T>::infinity();
  vec v;
  std::memcpy(&v, in, sizeof(vec));
  ck::detail::exp_flush_in_place(v);
  std::memcpy(out, &v, sizeof(vec));
  CHECK(out[0] == T(1));
  CHECK(out[1] == T(0));
  CHECK(out[2] == std::numeric_limits<T>::infinity());
  CHECK(std::isnan(out[3]));
  CHECK(out[4] == T(0));
}

TEST_CASE("the vector exp of the tiled sweeps is accurate to 2 ulp and flushes like the scalar one") {
  std::mt19937_64 rng(6);
  check_vector_exp<double>(rng, -708.0, 709.7);
  check_vector_exp<float>(rng, -87.3f, 88.7f);
}
#endif

TEST_CASE("log domain with more than 64 columns (row-by-row sweep): thread-count independent") {
  // M <= 64 takes the row-tiled sweep (covered above); wider costs keep the row-by-row sweep.
  const index_t n = 1203, m = 70;
  const auto cost = uniform_costs(n, m, 12);
  std::vector<double> a(static_cast<std::size_t>(n), 1.0 / double(n)), b(static_cast<std::size_t>(m), 1.0 / double(m));
  for (const bool unbalanced : {false, true}) {
    CAPTURE(unbalanced);
    ck::sinkhorn_params<double> params{.epsilon = 0.05, .max_iter = 15};
    if (unbalanced) params.reg_m = 0.5;
    const auto r0 = ck::sinkhorn(serial{}, cview(cost, n, m), vview(a), vview(b), {}, params);
    for (int threads : {1, 2, 3}) {
      const auto r = ck::sinkhorn(openmp{threads}, cview(cost, n, m), vview(a), vview(b), {}, params);
      CHECK(r.f == r0.f);
      CHECK(r.g == r0.g);
      CHECK(r.error == r0.error);
    }
  }
}

TEST_CASE_TEMPLATE("bad inputs are refused with a message naming the argument", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const auto cost = uniform_costs(3, 2, 1);
  const auto c = cview(cost, 3, 2);
  const std::vector<double> a = {0.2, 0.3, 0.5}, b = {0.5, 0.5}, b_short = {0.5, 0.4};
  CHECK_THROWS_WITH_AS(ck::sinkhorn(policy, c, vview(a), vview(b_short)),
                       "sinkhorn: invalid argument 'a/b': the marginals must have the same total mass in balanced mode "
                       "(sum a = 1, sum b = 0.90000000000000002); normalise them or set params.reg_m for unbalanced "
                       "transport",
                       invalid_argument);
  // Unbalanced mode accepts unequal masses.
  CHECK_NOTHROW(ck::sinkhorn(policy, c, vview(a), vview(b_short), {}, {.reg_m = 1.0}));
  CHECK_THROWS_WITH_AS(ck::sinkhorn(policy, c, vview(a), vview(b), {}, {.epsilon = 0.0}),
                       "sinkhorn: invalid argument 'params.epsilon': must be finite and > 0, got 0", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::sinkhorn(policy, c, vview(a), vview(b), {}, {.epsilon = -0.5}),
                       "sinkhorn: invalid argument 'params.epsilon': must be finite and > 0, got -0.5",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::sinkhorn(policy, c, vview(b), vview(b)),
                       "sinkhorn: dimension mismatch: a is 2 x 1 but cost is 3 x 2 (a needs one entry per row of the "
                       "cost matrix)",
                       dimension_mismatch);
  const std::vector<double> negative = {0.7, -0.2, 0.5};
  CHECK_THROWS_WITH_AS(
      ck::sinkhorn(policy, c, vview(negative), vview(b)),
      "sinkhorn: invalid argument 'a': a[1] is -0.20000000000000001: every value must be finite and >= 0",
      invalid_argument);
  const std::vector<double> zero = {0.0, 0.0};
  CHECK_THROWS_WITH_AS(ck::sinkhorn(policy, c, vview(a), vview(zero), {}, {.reg_m = 1.0}),
                       "sinkhorn: invalid argument 'b': has total mass 0", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::sinkhorn(policy, c, vview(a), vview(b), {}, {.reg_m = 0.0}),
                       "sinkhorn: invalid argument 'params.reg_m': tau must be finite and > 0, got 0",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(
      ck::sinkhorn(policy, c, vview(a), vview(b), {}, {.method = ck::sinkhorn_method::kernel, .epsilon_start = 1.0}),
      "sinkhorn: invalid argument 'params.epsilon_start': epsilon scaling needs the log method (the "
      "kernel would underflow)",
      invalid_argument);
  CHECK_THROWS_WITH_AS(ck::sinkhorn(policy, c, vview(a), vview(b), {}, {.epsilon_start = 1.0, .epsilon_decay = 1.0}),
                       "sinkhorn: invalid argument 'params.epsilon_decay': must be in (0, 1), got 1", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::sinkhorn(policy, c, vview(a), vview(b), {}, {.max_iter = 0}),
                       "sinkhorn: invalid argument 'params.max_iter': must be >= 1, got 0", invalid_argument);
  std::vector<double> plan(4);
  CHECK_THROWS_WITH_AS(
      ck::sinkhorn(policy, c, vview(a), vview(b), {.plan = matrix_view<double>(plan.data(), 2, 2)}),
      "sinkhorn: dimension mismatch: outputs.plan is 2 x 2 but cost is 3 x 2 (the plan has the shape of "
      "the cost matrix)",
      dimension_mismatch);
  std::vector<double> cost_nan = cost;
  cost_nan[3] = std::nan("");
  CHECK_THROWS_WITH_AS(ck::sinkhorn(policy, cview(cost_nan, 3, 2), vview(a), vview(b)),
                       "sinkhorn: invalid argument 'cost': cost(1, 1) is NaN: every value must be finite",
                       invalid_argument);
  const std::vector<double> x = {0, 1, 2, 3, 4, 5}, centres = {1, 1, 1};
  CHECK_THROWS_WITH_AS(
      ck::sinkhorn(policy, ck::pairwise_cost<double>{cview(x, 3, 2), cview(centres, 1, 3)}, vview(a),
                   vview(std::vector<double>{1.0})),
      "sinkhorn: dimension mismatch: cost.x is 3 x 2 but cost.centres is 1 x 3 (embeddings and centres "
      "must have the same number of columns)",
      dimension_mismatch);
  CHECK_THROWS_WITH_AS(ck::sinkhorn(policy,
                                    ck::pairwise_cost<double>{cview(x, 3, 2), cview(centres, 1, 2),
                                                              ck::pairwise_cost_kind::student_t, -1.0},
                                    vview(a), vview(std::vector<double>{1.0})),
                       "sinkhorn: invalid argument 'cost.alpha': must be finite and > 0, got -1", invalid_argument);
  std::vector<double> q(6);
  CHECK_THROWS_WITH_AS(ck::balanced_pseudo_labels(policy, c, matrix_view<double>(q.data(), 3, 2), {.epsilon = 0.0}),
                       "balanced_pseudo_labels: invalid argument 'params.epsilon': must be finite and > 0, got 0",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::balanced_pseudo_labels(policy, c, matrix_view<double>(q.data(), 3, 2), {.iterations = 0}),
                       "balanced_pseudo_labels: invalid argument 'params.iterations': must be >= 1, got 0",
                       invalid_argument);
}
