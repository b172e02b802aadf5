#include <cellkit/cluster/gmm.hpp>
#include <cellkit/cluster/gmm_model.hpp>
#include <cellkit/cluster/gmm_select.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

// Gaussian mixtures run on the host only; the tests are templated over the host policies even in
// the nvcc build. Against scikit-learn 1.2.1 (tests/reference/gen_gmm_fixtures.py): fits from the
// same initial parameters and a fixed number of iterations agree to 1e-8 relative for every
// covariance type (weights, means, covariances, precision factors, lower bound, BIC, AIC), and a
// sweep's BIC curve agrees point by point.

using namespace cellkit;
using cellkit::test::policy_of;
namespace ck = cellkit::cluster;

namespace {

template <class T>
matrix_view<const T> cview(const std::vector<T>& v, index_t rows, index_t cols) {
  return matrix_view<const T>(v.data(), rows, cols);
}

/// max_e |a_e - b_e| <= rel * max(max_e |b_e|, tiny): arrays compared at their own scale.
bool close_array(const std::vector<double>& a, const std::vector<double>& b, double rel) {
  if (a.size() != b.size()) return false;
  double scale = 1e-300;
  for (double v : b) scale = std::max(scale, std::fabs(v));
  for (std::size_t e = 0; e < a.size(); ++e) {
    if (!std::isfinite(a[e])) return false;
    if (std::fabs(a[e] - b[e]) > rel * std::max(std::fabs(b[e]), 1e-3 * scale)) return false;
  }
  return true;
}

/// Blobs with per-component centres at `spread` and unit noise; labels in `truth`.
std::vector<double> blobs(index_t n, index_t d, index_t k, double spread, std::uint64_t seed,
                          std::vector<index_t>* truth = nullptr) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> centres(static_cast<std::size_t>(k * d));
  for (auto& c : centres) c = normal(rng) * spread;
  std::vector<double> x(static_cast<std::size_t>(n * d));
  if (truth) truth->resize(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    const index_t c = i % k;
    if (truth) (*truth)[static_cast<std::size_t>(i)] = c;
    for (index_t a = 0; a < d; ++a)
      x[static_cast<std::size_t>(i * d + a)] = centres[static_cast<std::size_t>(c * d + a)] + normal(rng);
  }
  return x;
}

bool all_finite(const ck::gmm_model& m) {
  for (const auto* v : {&m.weights, &m.means, &m.covariances, &m.precisions_cholesky})
    for (double e : *v)
      if (!std::isfinite(e)) return false;
  return std::isfinite(m.lower_bound);
}

bool has_issue(const ck::gmm_model& m, ck::gmm_issue issue) {
  return std::any_of(m.diagnostics.begin(), m.diagnostics.end(),
                     [&](const ck::gmm_diagnostic& g) { return g.issue == issue; });
}

template <class F>
std::string error_text(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no exception";
}

const ck::gmm_covariance all_types[] = {ck::gmm_covariance::full, ck::gmm_covariance::tied, ck::gmm_covariance::diag,
                                        ck::gmm_covariance::spherical};

}  // namespace

TEST_CASE_TEMPLATE("EM from given parameters matches scikit-learn 1.2 for every covariance type", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const auto cases = test::read_fixture_cases("gmm_fit_cases.txt");
  REQUIRE(cases.size() == 12);
  std::vector<double> x;
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[1]);
    const auto d = static_cast<index_t>(c.params[2]);
    const auto k = static_cast<index_t>(c.params[3]);
    const auto type = static_cast<ck::gmm_covariance>(static_cast<int>(c.params[4]));
    const int max_iter = static_cast<int>(c.params[5]);
    CAPTURE(c.params[0]);
    CAPTURE(std::string(ck::to_string(type)));
    if (c.matrices.count("X")) x = c.matrix("X");
    REQUIRE(x.size() == static_cast<std::size_t>(n * d));
    ck::gmm_params<double> params{
        .k = k, .covariance_type = type, .tol = c.params[7], .reg_covar = c.params[6], .max_iter = max_iter};
    params.weights_init = make_vector_view(c.matrix("weights_init").data(), k);
    params.means_init = cview(c.matrix("means_init"), k, d);
    params.precisions_init =
        make_vector_view(c.matrix("precisions_init").data(), static_cast<index_t>(c.matrix("precisions_init").size()));
    const auto model = ck::gmm_fit(policy, cview(x, n, d), params);
    const auto& fit = c.matrix("fit");
    CHECK(model.n_iter == static_cast<int>(fit[1]));
    CHECK(model.converged == (fit[2] != 0.0));
    CHECK(test::close(model.lower_bound, fit[0], 1e-8));
    CHECK(close_array(model.weights, c.matrix("weights"), 1e-8));
    CHECK(close_array(model.means, c.matrix("means"), 1e-8));
    CHECK(close_array(model.covariances, c.matrix("covariances"), 1e-8));
    CHECK(close_array(model.precisions_cholesky, c.matrix("precisions_cholesky"), 1e-8));
    CHECK(model.diagnostics.empty());
    const auto& criteria = c.matrix("criteria");
    CHECK(test::close(ck::gmm_bic(policy, cview(x, n, d), model), criteria[0], 1e-8));
    CHECK(test::close(ck::gmm_aic(policy, cview(x, n, d), model), criteria[1], 1e-8));
    if (c.matrices.count("score_samples")) {
      std::vector<double> score(static_cast<std::size_t>(n)), proba(static_cast<std::size_t>(n * k));
      std::vector<index_t> labels(static_cast<std::size_t>(n));
      ck::gmm_score_samples(policy, cview(x, n, d), model, make_vector_view(score.data(), n));
      ck::gmm_predict_proba(policy, cview(x, n, d), model, matrix_view<double>(proba.data(), n, k));
      ck::gmm_predict(policy, cview(x, n, d), model, make_vector_view(labels.data(), n));
      CHECK(close_array(score, c.matrix("score_samples"), 1e-8));
      double worst = 0;
      for (std::size_t e = 0; e < proba.size(); ++e)
        worst = std::max(worst, std::fabs(proba[e] - c.matrix("predict_proba")[e]));
      CHECK(worst <= 1e-8);
      for (index_t i = 0; i < n; ++i)
        CHECK(labels[static_cast<std::size_t>(i)] ==
              static_cast<index_t>(c.matrix("predict")[static_cast<std::size_t>(i)]));
    }
  }
}

TEST_CASE("a sweep reproduces scikit-learn's BIC curve point by point and picks the true K") {
  const auto cases = test::read_fixture_cases("gmm_sweep_cases.txt");
  REQUIRE(cases.size() == 12);
  const auto& x = cases[0].matrix("X");
  const auto n = static_cast<index_t>(cases[0].params[1]);
  const auto d = static_cast<index_t>(cases[0].params[2]);
  auto find = [&](index_t k, ck::gmm_covariance type) -> const test::fixture_case& {
    for (const auto& c : cases)
      if (static_cast<index_t>(c.params[3]) == k && static_cast<int>(c.params[4]) == static_cast<int>(type)) return c;
    throw std::runtime_error("no sweep case");
  };
  std::size_t progress_calls = 0;
  const auto sweep = ck::gmm_select(
      openmp{2}, cview(x, n, d),
      ck::gmm_select_params<double>{.k_min = 1,
                                    .k_max = 6,
                                    .covariance_types = {ck::gmm_covariance::full, ck::gmm_covariance::diag},
                                    .criterion = ck::gmm_criterion::bic,
                                    .fit = {.tol = 1e-3, .max_iter = 100},
                                    .configure =
                                        [&](index_t k, ck::gmm_covariance type, ck::gmm_params<double>& p) {
                                          const auto& c = find(k, type);
                                          p.weights_init = make_vector_view(c.matrix("weights_init").data(), k);
                                          p.means_init = cview(c.matrix("means_init"), k, d);
                                          p.precisions_init = make_vector_view(
                                              c.matrix("precisions_init").data(),
                                              static_cast<index_t>(c.matrix("precisions_init").size()));
                                        },
                                    .progress =
                                        [&](const ck::gmm_select_progress& p) {
                                          ++progress_calls;
                                          CHECK(p.done == progress_calls);
                                          CHECK(p.total == 12);
                                          return true;
                                        }});
  REQUIRE(sweep.table.size() == 12);
  CHECK(progress_calls == 12);
  for (const auto& row : sweep.table) {
    CAPTURE(row.k);
    CAPTURE(std::string(ck::to_string(row.covariance_type)));
    const auto& c = find(row.k, row.covariance_type);
    CHECK(test::close(row.bic, c.matrix("criteria")[0], 1e-8));
    CHECK(test::close(row.aic, c.matrix("criteria")[1], 1e-8));
    CHECK(test::close(row.lower_bound, c.matrix("criteria")[2], 1e-8));
    CHECK(row.n_iter == static_cast<int>(c.params[5]));
    CHECK(row.converged == (c.params[6] != 0.0));
    CHECK(row.icl >= row.bic);
  }
  CHECK(sweep.best.k == 3);
  CHECK(sweep.table[sweep.best_row].k == 3);
}

TEST_CASE("the sweep with its own k-means initialisation picks the true K on separated blobs") {
  const index_t n = 1200, d = 5, k = 4;
  const auto x = blobs(n, d, k, 8.0, 3);
  for (const auto criterion : {ck::gmm_criterion::bic, ck::gmm_criterion::icl}) {
    const auto sweep = ck::gmm_select(openmp{2}, cview(x, n, d),
                                      {.k_min = 2,
                                       .k_max = 7,
                                       .covariance_types = {ck::gmm_covariance::full, ck::gmm_covariance::diag},
                                       .criterion = criterion,
                                       .fit = {.seed = 11},
                                       .keep_models = true});
    CHECK(sweep.best.k == k);
    CHECK(sweep.models.size() == sweep.table.size());
    CHECK(sweep.best.covariance_type == ck::gmm_covariance::diag);  // the truth is diagonal: fewer parameters win
  }
  // Stopping from the progress callback keeps the fits so far.
  const auto stopped =
      ck::gmm_select(serial{}, cview(x, n, d),
                     {.k_min = 2, .k_max = 7, .progress = [](const ck::gmm_select_progress& p) { return p.done < 2; }});
  CHECK(stopped.table.size() == 2);
}

TEST_CASE("the sweep's concurrent fits give the sequential sweep's table to the bit; stop and errors") {
  const index_t n = 3000, d = 4, k = 3;
  const auto x = blobs(n, d, k, 4.0, 23);
  const ck::gmm_select_params<double> params{
      .k_min = 1,
      .k_max = 6,
      .covariance_types = {ck::gmm_covariance::full, ck::gmm_covariance::tied, ck::gmm_covariance::diag},
      .fit = {.seed = 9},
      .keep_models = true};
  const auto sequential = ck::gmm_select(serial{}, cview(x, n, d), params);
  REQUIRE(sequential.table.size() == 18);
  for (int threads : {2, 3}) {
    CAPTURE(threads);
    std::vector<index_t> seen;
    auto with_progress = params;
    with_progress.progress = [&](const ck::gmm_select_progress& p) {
      CHECK(p.done == seen.size() + 1);
      CHECK(p.total == 18);
      seen.push_back(p.row->k);
      return true;
    };
    const auto concurrent = ck::gmm_select(openmp{threads}, cview(x, n, d), with_progress);
    CHECK(seen.size() == 18);
    REQUIRE(concurrent.table.size() == 18);
    for (std::size_t i = 0; i < 18; ++i) {
      const auto &a = sequential.table[i], &b = concurrent.table[i];
      CAPTURE(a.k);
      CHECK(b.k == a.k);
      CHECK(b.covariance_type == a.covariance_type);
      CHECK(b.bic == a.bic);
      CHECK(b.aic == a.aic);
      CHECK(b.icl == a.icl);
      CHECK(b.lower_bound == a.lower_bound);
      CHECK(b.n_iter == a.n_iter);
      CHECK(concurrent.models[i].means == sequential.models[i].means);
      CHECK(concurrent.models[i].precisions_cholesky == sequential.models[i].precisions_cholesky);
    }
    CHECK(concurrent.best_row == sequential.best_row);
    CHECK(concurrent.best.means == sequential.best.means);

    // Stopping keeps exactly the fits reported so far, each equal to the sequential sweep's row.
    auto stopping = params;
    stopping.progress = [](const ck::gmm_select_progress& p) { return p.done < 2; };
    const auto stopped = ck::gmm_select(openmp{threads}, cview(x, n, d), stopping);
    REQUIRE(stopped.table.size() == 2);
    CHECK(stopped.models.size() == 2);
    for (const auto& row : stopped.table) {
      bool found = false;
      for (const auto& s : sequential.table)
        if (s.k == row.k && s.covariance_type == row.covariance_type) found = s.bic == row.bic;
      CHECK(found);
    }

    // A progress callback that throws stops the sweep with its exception (it never escapes a worker).
    auto throwing = params;
    throwing.progress = [](const ck::gmm_select_progress& p) -> bool {
      if (p.done == 3) throw std::runtime_error("stop from progress");
      return true;
    };
    CHECK_THROWS_WITH_AS(ck::gmm_select(openmp{threads}, cview(x, n, d), throwing), "stop from progress",
                         std::runtime_error);

    // A fit that fails (here: a bad parameter set by configure for K = 4) fails the sweep, naming it.
    auto failing = params;
    failing.configure = [](index_t kk, ck::gmm_covariance, ck::gmm_params<double>& p) {
      if (kk == 4) p.reg_covar = -1;
    };
    CHECK_THROWS_WITH_AS(ck::gmm_select(openmp{threads}, cview(x, n, d), failing),
                         doctest::Contains("params.reg_covar"), invalid_argument);
  }
}

TEST_CASE("results are bit-identical for serial, openmp{2} and openmp{3}; float agrees with double") {
  const index_t n = 5003, d = 6, k = 5;  // 3 chunks of 2048 rows
  const auto x = blobs(n, d, k, 3.0, 17);
  for (const auto type : all_types) {
    CAPTURE(std::string(ck::to_string(type)));
    const ck::gmm_params<double> params{.k = k, .covariance_type = type, .max_iter = 8, .n_init = 2, .seed = 5};
    const auto a = ck::gmm_fit(serial{}, cview(x, n, d), params);
    for (int threads : {2, 3}) {
      const auto b = ck::gmm_fit(openmp{threads}, cview(x, n, d), params);
      CHECK(a.means == b.means);
      CHECK(a.covariances == b.covariances);
      CHECK(a.weights == b.weights);
      CHECK(a.lower_bound == b.lower_bound);
      CHECK(a.n_iter == b.n_iter);
    }
    // float against double from the same initial parameters (k-means in float may pick other labels)
    const std::vector<float> xf(x.begin(), x.end());
    const std::vector<double> means(x.begin(), x.begin() + k * d), weights(static_cast<std::size_t>(k), 1.0 / k);
    std::vector<double> precisions(static_cast<std::size_t>(ck::gmm_covariance_size(type, k, d)), 1.0);
    if (type == ck::gmm_covariance::full || type == ck::gmm_covariance::tied)
      for (std::size_t e = 0; e < precisions.size(); ++e)
        precisions[e] = (e % static_cast<std::size_t>(d * d)) % static_cast<std::size_t>(d + 1) == 0 ? 1.0 : 0.0;
    auto given = [&](auto params) {
      params.weights_init = make_vector_view(weights.data(), k);
      params.means_init = cview(means, k, d);
      params.precisions_init = make_vector_view(precisions.data(), static_cast<index_t>(precisions.size()));
      return params;
    };
    const auto f = ck::gmm_fit(openmp{2}, cview(xf, n, d),
                               given(ck::gmm_params<float>{.k = k, .covariance_type = type, .max_iter = 8}));
    const auto g = ck::gmm_fit(openmp{2}, cview(x, n, d),
                               given(ck::gmm_params<double>{.k = k, .covariance_type = type, .max_iter = 8}));
    CHECK(f.n_iter == g.n_iter);
    CHECK(f.lower_bound == doctest::Approx(g.lower_bound).epsilon(1e-5));
    CHECK(close_array(f.means, g.means, 1e-3));
  }
}

TEST_CASE_TEMPLATE("full-covariance pass kernels equal the quadratic forms and moments they stand for", T, double,
                   float) {
  // Every tile shape and padding case: d around the vector width and its multiples, row counts
  // that leave partial vectors, odd and even K (the padded last E-step tile).
  namespace cd = ck::detail;
  std::mt19937_64 rng(41);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  const double tolerance = std::is_same_v<T, double> ? 1e-13 : 2e-5;
  for (index_t d : {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 50, 65}) {
    for (index_t count : {1, 7, 9, 33, 64}) {
      for (index_t k : {1, 2, 5}) {
        CAPTURE(d);
        CAPTURE(count);
        CAPTURE(k);
        const index_t q = d * (d + 1) / 2, p = q + d;
        std::vector<T> x(static_cast<std::size_t>(count * d)), coef(static_cast<std::size_t>(p * k));
        std::vector<T> resp(static_cast<std::size_t>(count * k));
        for (auto& v : x) v = static_cast<T>(uniform(rng));
        for (auto& v : coef) v = static_cast<T>(uniform(rng));
        for (auto& v : resp) v = static_cast<T>(0.5 + 0.5 * uniform(rng));
        const index_t ld = cd::gmm_block_rows, dp = cd::gmm_padded_row<T>(d), rows = cd::gmm_moment_rows(d);
        std::vector<T> xt(static_cast<std::size_t>(ld * d)), xr(static_cast<std::size_t>(ld * dp));
        std::vector<T> dot(static_cast<std::size_t>(ld * k)), pad(static_cast<std::size_t>(ld));
        std::vector<double> sums(static_cast<std::size_t>(k * rows * dp), 0.0);
        cd::gmm_kernel_layouts(x.data(), count, d, ld, xt.data(), xr.data());
        const auto stream = cd::gmm_quadratic_stream(coef.data(), k, d);
        cd::gmm_quadratic_block(stream.data(), k, d, xt.data(), ld, count, dot.data(), pad.data());
        cd::gmm_second_moment_block(xr.data(), d, resp.data(), k, count, sums.data());

        double worst_dot = 0.0, worst_moment = 0.0;
        for (index_t j = 0; j < k; ++j) {
          std::vector<double> moment(static_cast<std::size_t>(p), 0.0);
          for (index_t r = 0; r < count; ++r) {
            const T* xi = x.data() + r * d;
            const double w = static_cast<double>(resp[static_cast<std::size_t>(r * k + j)]);
            double value = 0.0, scale = 0.0;
            index_t f = 0;
            for (index_t a = 0; a < d; ++a) {
              for (index_t b = a; b < d; ++b, ++f) {
                const double term = static_cast<double>(coef[static_cast<std::size_t>(f * k + j)]) *
                                    static_cast<double>(xi[a]) * static_cast<double>(xi[b]);
                value += term;
                scale += std::fabs(term);
                moment[static_cast<std::size_t>(f)] += w * static_cast<double>(xi[a]) * static_cast<double>(xi[b]);
              }
            }
            for (index_t a = 0; a < d; ++a) {
              const double term =
                  static_cast<double>(coef[static_cast<std::size_t>((q + a) * k + j)]) * static_cast<double>(xi[a]);
              value += term;
              scale += std::fabs(term);
              moment[static_cast<std::size_t>(q + a)] += w * static_cast<double>(xi[a]);
            }
            const double got = static_cast<double>(dot[static_cast<std::size_t>(j * ld + r)]);
            worst_dot = std::max(worst_dot, std::fabs(got - value) / scale);
          }
          const double* sj = sums.data() + j * rows * dp;
          index_t f = 0;
          for (index_t a = 0; a < d; ++a) {
            for (index_t b = a; b < d; ++b, ++f)
              worst_moment = std::max(worst_moment, std::fabs(sj[a * dp + b] - moment[static_cast<std::size_t>(f)]) /
                                                        static_cast<double>(count));
            worst_moment = std::max(worst_moment, std::fabs(sj[a * dp + d] - moment[static_cast<std::size_t>(q + a)]) /
                                                      static_cast<double>(count));
          }
        }
        CHECK(worst_dot <= tolerance);
        CHECK(worst_moment <= tolerance);
      }
    }
  }
}

TEST_CASE("pruned full-covariance EM equals the dense pass to rounding") {
  const index_t n = 5003, d = 6, k = 6;  // 3 chunks of 2048 rows
  const auto x = blobs(n, d, k, 8.0, 23);
  const ck::gmm_params<double> pruned_params{.k = k, .tol = 0, .max_iter = 12, .n_init = 2, .seed = 9};
  auto dense_params = pruned_params;
  dense_params.prune = false;
  const auto pruned = ck::gmm_fit(openmp{2}, cview(x, n, d), pruned_params);
  const auto dense = ck::gmm_fit(openmp{2}, cview(x, n, d), dense_params);
  CHECK(pruned.n_iter == dense.n_iter);
  CHECK(test::close(pruned.lower_bound, dense.lower_bound, 1e-12));
  CHECK(close_array(pruned.weights, dense.weights, 1e-10));
  CHECK(close_array(pruned.means, dense.means, 1e-10));
  CHECK(close_array(pruned.covariances, dense.covariances, 1e-10));
  for (int threads : {1, 3}) {  // still bit-identical across thread counts
    const auto other = ck::gmm_fit(openmp{threads}, cview(x, n, d), pruned_params);
    CHECK(other.means == pruned.means);
    CHECK(other.covariances == pruned.covariances);
    CHECK(other.lower_bound == pruned.lower_bound);
  }

  // The pass itself: on separated blobs it prunes (returns a result under the default fraction),
  // every statistic equals the dense pass's, and every skipped pair is more than 50 nats down.
  auto data = ck::detail::gmm_prepare<double>(2, cview(x, n, d), "test");
  const auto fitted = ck::detail::gmm_fit_prepared(data, pruned_params, "test");
  CHECK(fitted.last_pass_pruned);
  const auto coef = ck::detail::make_coefficients<double>(fitted.state);
  std::vector<double> dense_wlp(static_cast<std::size_t>(n * k)), pruned_wlp(dense_wlp.size());
  std::vector<double> dense_norm(static_cast<std::size_t>(n));
  const auto reference =
      ck::detail::gmm_pass(data, ck::gmm_covariance::full, k, &coef, true, nullptr,
                           [&](index_t first, index_t count, const double* wlp, const double* log_norm, const double*) {
                             std::copy(wlp, wlp + count * k, dense_wlp.begin() + first * k);
                             std::copy(log_norm, log_norm + count, dense_norm.begin() + first);
                           });
  const auto pass = ck::detail::gmm_pruned_pass(
      data, fitted.state, true, [&](index_t first, index_t count, const double* wlp, const double*, const double*) {
        std::copy(wlp, wlp + count * k, pruned_wlp.begin() + first * k);
      });
  REQUIRE(pass.has_value());
  CHECK(test::close(pass->log_likelihood, reference.log_likelihood, 1e-13));
  CHECK(close_array(pass->stats, reference.stats, 1e-11));
  CHECK(close_array(pass->nk, reference.nk, 1e-11));
  index_t skipped = 0;
  double worst_kept = 0;
  bool skipped_far = true;
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < k; ++j) {
      const auto e = static_cast<std::size_t>(i * k + j);
      if (pruned_wlp[e] == -std::numeric_limits<double>::infinity()) {
        ++skipped;
        skipped_far = skipped_far && dense_wlp[e] < dense_norm[static_cast<std::size_t>(i)] - 50.0;
      } else {
        worst_kept =
            std::max(worst_kept, std::fabs(pruned_wlp[e] - dense_wlp[e]) / std::max(1.0, std::fabs(dense_wlp[e])));
      }
    }
  CHECK(skipped > n * k / 2);  // most pairs are skipped on these blobs
  CHECK(skipped_far);
  CHECK(worst_kept < 1e-11);
  // Asked to evaluate no more than 1 / (2 k) of the pairs (less than one per cell), it declines.
  CHECK_FALSE(ck::detail::gmm_pruned_pass(
                  data, fitted.state, false, [](auto...) {}, 0.5 / k)
                  .has_value());

  // Overlapping components: the bound rules little out, the fit falls back to the dense pass and
  // still agrees; the sweep's table does not depend on the setting either.
  const auto overlapping = blobs(n, d, k, 0.3, 29);
  const auto a = ck::gmm_fit(openmp{2}, cview(overlapping, n, d), pruned_params);
  const auto b = ck::gmm_fit(openmp{2}, cview(overlapping, n, d), dense_params);
  CHECK(test::close(a.lower_bound, b.lower_bound, 1e-12));
  CHECK(close_array(a.means, b.means, 1e-9));
  ck::gmm_select_params<double> sweep_params{.k_min = 2, .k_max = 8, .fit = {.seed = 4}};
  const auto sweep_pruned = ck::gmm_select(openmp{2}, cview(x, n, d), sweep_params);
  sweep_params.fit.prune = false;
  const auto sweep_dense = ck::gmm_select(openmp{2}, cview(x, n, d), sweep_params);
  REQUIRE(sweep_pruned.table.size() == sweep_dense.table.size());
  for (std::size_t r = 0; r < sweep_pruned.table.size(); ++r) {
    CHECK(sweep_pruned.table[r].n_iter == sweep_dense.table[r].n_iter);
    CHECK(test::close(sweep_pruned.table[r].bic, sweep_dense.table[r].bic, 1e-12));
  }
  CHECK(sweep_pruned.best.k == k);

  // float data: the pruned pass in float agrees with the dense float pass.
  const std::vector<float> xf(x.begin(), x.end());
  const ck::gmm_params<float> float_params{.k = k, .tol = 0, .max_iter = 12, .seed = 9};
  auto float_dense = float_params;
  float_dense.prune = false;
  const auto pf = ck::gmm_fit(openmp{2}, cview(xf, n, d), float_params);
  const auto df = ck::gmm_fit(openmp{2}, cview(xf, n, d), float_dense);
  CHECK(pf.lower_bound == doctest::Approx(df.lower_bound).epsilon(1e-6));
  CHECK(close_array(pf.means, df.means, 1e-4));
}

TEST_CASE("initialisations, restarts and warm start") {
  const index_t n = 900, d = 3, k = 3;
  std::vector<index_t> truth;
  const auto x = blobs(n, d, k, 10.0, 8, &truth);
  for (const auto init : {ck::gmm_init::kmeans, ck::gmm_init::k_means_plus_plus, ck::gmm_init::random_responsibilities,
                          ck::gmm_init::random_points}) {
    CAPTURE(static_cast<int>(init));
    const auto m = ck::gmm_fit(openmp{2}, cview(x, n, d), {.k = k, .n_init = 4, .init = init, .seed = 3});
    CHECK(m.converged);
    CHECK(all_finite(m));
    // Random responsibilities start every component at the data mean (as scikit-learn's 'random'):
    // they may end in a local optimum, so only the other three must find the truth.
    if (init == ck::gmm_init::random_responsibilities) continue;
    std::vector<index_t> labels(static_cast<std::size_t>(n));
    ck::gmm_predict(serial{}, cview(x, n, d), m, make_vector_view(labels.data(), n));
    // the partition equals the truth up to a relabelling
    std::vector<index_t> map(static_cast<std::size_t>(k), -1);
    std::size_t mismatches = 0;
    for (index_t i = 0; i < n; ++i) {
      auto& target = map[static_cast<std::size_t>(truth[static_cast<std::size_t>(i)])];
      if (target < 0) target = labels[static_cast<std::size_t>(i)];
      mismatches += target != labels[static_cast<std::size_t>(i)];
    }
    CHECK(mismatches == 0);
    // n_init keeps the best lower bound: no single restart beats it
    const auto single = ck::gmm_fit(serial{}, cview(x, n, d), {.k = k, .n_init = 1, .init = init, .seed = 3});
    CHECK(single.lower_bound <= m.lower_bound + 1e-12);
  }
  // Warm start: 3 + 2 iterations equal 5 iterations (tol = 0: no early stop).
  const ck::gmm_params<double> five{.k = k, .tol = 0.0, .max_iter = 5, .seed = 9};
  auto three = five;
  three.max_iter = 3;
  const auto m5 = ck::gmm_fit(serial{}, cview(x, n, d), five);
  const auto m3 = ck::gmm_fit(serial{}, cview(x, n, d), three);
  auto more = five;
  more.max_iter = 2;
  more.warm_start = &m3;
  const auto m32 = ck::gmm_fit(serial{}, cview(x, n, d), more);
  CHECK(close_array(m32.means, m5.means, 1e-10));
  CHECK(close_array(m32.covariances, m5.covariances, 1e-10));
  CHECK(m32.lower_bound == doctest::Approx(m5.lower_bound).epsilon(1e-12));
  // The progress callback sees every iteration and can stop the fit.
  int calls = 0;
  auto watched = five;
  watched.progress = [&](const ck::gmm_progress& p) {
    ++calls;
    CHECK(p.iteration == calls);
    return p.iteration < 2;
  };
  const auto stopped = ck::gmm_fit(serial{}, cview(x, n, d), watched);
  CHECK(calls == 2);
  CHECK(stopped.reason == ck::stop_reason::stopped_by_callback);
  CHECK(stopped.n_iter == 2);
}

TEST_CASE("queries: memberships, entropy, assignment, criteria, sampling, parameter file") {
  const index_t n = 600, d = 2, k = 3;
  const auto x = blobs(n, d, k, 2.5, 4);
  for (const auto type : all_types) {
    CAPTURE(std::string(ck::to_string(type)));
    const auto m = ck::gmm_fit(openmp{2}, cview(x, n, d), {.k = k, .covariance_type = type, .seed = 1});
    const auto a = ck::gmm_assign(openmp{2}, cview(x, n, d), m, true);
    double entropy_sum = 0, ll_sum = 0;
    for (index_t i = 0; i < n; ++i) {
      double row = 0, h = 0;
      index_t arg = 0;
      for (index_t j = 0; j < k; ++j) {
        const double r = a.memberships[static_cast<std::size_t>(i * k + j)];
        row += r;
        if (r > 0) h -= r * std::log(r);
        if (r > a.memberships[static_cast<std::size_t>(i * k + arg)]) arg = j;
      }
      CHECK(row == doctest::Approx(1.0).epsilon(1e-12));
      CHECK(a.entropy[static_cast<std::size_t>(i)] == doctest::Approx(h).epsilon(1e-9));
      CHECK(a.entropy[static_cast<std::size_t>(i)] >= 0.0);
      CHECK(a.entropy[static_cast<std::size_t>(i)] <= std::log(double(k)) + 1e-12);
      CHECK(a.labels[static_cast<std::size_t>(i)] == arg);
      entropy_sum += a.entropy[static_cast<std::size_t>(i)];
      ll_sum += a.log_likelihood[static_cast<std::size_t>(i)];
    }
    const double bic = ck::gmm_bic(serial{}, cview(x, n, d), m);
    CHECK(bic == doctest::Approx(-2 * ll_sum + m.n_parameters() * std::log(double(n))).epsilon(1e-12));
    CHECK(ck::gmm_aic(serial{}, cview(x, n, d), m) ==
          doctest::Approx(-2 * ll_sum + 2 * m.n_parameters()).epsilon(1e-12));
    CHECK(ck::gmm_icl(serial{}, cview(x, n, d), m) == doctest::Approx(bic + 2 * entropy_sum).epsilon(1e-12));

    // Samples follow the model: component frequencies and means (loose, 20000 draws).
    const index_t ns = 20000;
    const auto s = ck::gmm_sample(m, ns, 77);
    CHECK(s.x == ck::gmm_sample(m, ns, 77).x);  // counter-based: reproducible
    CHECK(s.x != ck::gmm_sample(m, ns, 78).x);
    for (index_t j = 0; j < k; ++j) {
      double count = 0, mean0 = 0;
      for (index_t i = 0; i < ns; ++i)
        if (s.labels[static_cast<std::size_t>(i)] == j) {
          ++count;
          mean0 += s.x[static_cast<std::size_t>(i * d)];
        }
      CHECK(count / ns == doctest::Approx(m.weights[static_cast<std::size_t>(j)]).epsilon(0.05));
      const double sd = std::sqrt(type == ck::gmm_covariance::full ? m.covariances[static_cast<std::size_t>(j * d * d)]
                                  : type == ck::gmm_covariance::tied ? m.covariances[0]
                                  : type == ck::gmm_covariance::diag ? m.covariances[static_cast<std::size_t>(j * d)]
                                                                     : m.covariances[static_cast<std::size_t>(j)]);
      CHECK(std::fabs(mean0 / count - m.means[static_cast<std::size_t>(j * d)]) < 5 * sd / std::sqrt(count));
    }

    std::stringstream file;
    ck::gmm_save(m, file);
    const auto back = ck::gmm_load(file);
    CHECK(back.covariance_type == m.covariance_type);
    CHECK(back.means == m.means);
    CHECK(back.precisions_cholesky == m.precisions_cholesky);
    CHECK(ck::gmm_bic(serial{}, cview(x, n, d), back) == bic);
  }
}

TEST_CASE("degenerate inputs finish with diagnostics and finite parameters") {
  SUBCASE("duplicate rows") {
    // 60 rows that are 4 distinct points; 6 components: some hold one point only
    std::vector<double> x;
    for (int i = 0; i < 60; ++i) x.insert(x.end(), {double(i % 4), double((i % 4) * (i % 4)), 1.0 - double(i % 4)});
    for (const auto type : all_types) {
      CAPTURE(std::string(ck::to_string(type)));
      const auto m =
          ck::gmm_fit(serial{}, cview(x, 60, 3), {.k = 6, .covariance_type = type, .reg_covar = 0.0, .seed = 2});
      CHECK(all_finite(m));
      CHECK(has_issue(m, ck::gmm_issue::covariance_repaired));
      const auto r = ck::gmm_fit(serial{}, cview(x, 60, 3), {.k = 6, .covariance_type = type, .seed = 2});
      CHECK(all_finite(r));
      if (type != ck::gmm_covariance::tied) CHECK(has_issue(r, ck::gmm_issue::rank_deficient));
    }
  }
  SUBCASE("a constant feature") {
    auto x = blobs(300, 3, 2, 5.0, 6);
    for (index_t i = 0; i < 300; ++i) x[static_cast<std::size_t>(i * 3 + 1)] = 4.25;
    for (const auto type : all_types) {
      CAPTURE(std::string(ck::to_string(type)));
      const auto m = ck::gmm_fit(openmp{2}, cview(x, 300, 3), {.k = 2, .covariance_type = type, .reg_covar = 0.0});
      CHECK(all_finite(m));
      // (a spherical variance averages over the features: the constant one does not make it singular)
      if (type != ck::gmm_covariance::spherical) CHECK(has_issue(m, ck::gmm_issue::covariance_repaired));
      // relative regularisation: the constant feature gets reg * mean variance, nothing to repair
      const auto r = ck::gmm_fit(openmp{2}, cview(x, 300, 3),
                                 {.k = 2, .covariance_type = type, .regularization = ck::gmm_regularization::relative});
      CHECK(all_finite(r));
      CHECK_FALSE(has_issue(r, ck::gmm_issue::covariance_repaired));
    }
  }
  SUBCASE("d > N") {
    const auto x = blobs(12, 30, 2, 4.0, 7);
    for (const auto type : all_types) {
      CAPTURE(std::string(ck::to_string(type)));
      const auto m = ck::gmm_fit(serial{}, cview(x, 12, 30), {.k = 2, .covariance_type = type});
      CHECK(all_finite(m));
      if (type == ck::gmm_covariance::full) CHECK(has_issue(m, ck::gmm_issue::rank_deficient));
    }
  }
  SUBCASE("a component with one point") {
    auto x = blobs(80, 2, 1, 0.0, 9);
    x.insert(x.end(), {60.0, -45.0});  // an outlier gets its own component
    const auto m = ck::gmm_fit(serial{}, cview(x, 81, 2), {.k = 2, .covariance_type = ck::gmm_covariance::full});
    CHECK(all_finite(m));
    CHECK(has_issue(m, ck::gmm_issue::rank_deficient));
    const double smallest_weight = std::min(m.weights[0], m.weights[1]);
    CHECK(smallest_weight == doctest::Approx(1.0 / 81).epsilon(1e-6));
  }
  SUBCASE("a collapsed (empty) component is re-seeded") {
    const auto x = blobs(200, 2, 2, 20.0, 10);
    const std::vector<double> means{0.0, 0.0, 1e4, 1e4};  // the second component explains no point
    const std::vector<double> weights{0.5, 0.5};
    ck::gmm_params<double> p{.k = 2, .covariance_type = ck::gmm_covariance::diag, .max_iter = 50};
    p.means_init = cview(means, 2, 2);
    p.weights_init = make_vector_view(weights.data(), 2);
    const auto m = ck::gmm_fit(serial{}, cview(x, 200, 2), p);
    CHECK(all_finite(m));
    CHECK(has_issue(m, ck::gmm_issue::component_reseeded));
    CHECK(std::min(m.weights[0], m.weights[1]) > 0.45);  // after re-seeding, both blobs are found
  }
}

TEST_CASE("bad input throws an exception naming the argument") {
  const auto x = blobs(20, 2, 2, 3.0, 1);
  const auto xv = cview(x, 20, 2);
  auto fit = [&](const ck::gmm_params<double>& p) { return ck::gmm_fit(serial{}, xv, p); };
  CHECK(error_text([&] { fit({.k = 0}); }).find("params.k") != std::string::npos);
  CHECK(error_text([&] { fit({.k = 21}); }).find("exceeds the number of samples") != std::string::npos);
  CHECK(error_text([&] { fit({.k = 2, .reg_covar = -1.0}); }).find("params.reg_covar") != std::string::npos);
  CHECK(error_text([&] { fit({.k = 2, .tol = -1.0}); }).find("params.tol") != std::string::npos);
  CHECK(error_text([&] { fit({.k = 2, .max_iter = -1}); }).find("params.max_iter") != std::string::npos);
  CHECK(error_text([&] { fit({.k = 2, .n_init = 0}); }).find("params.n_init") != std::string::npos);
  auto bad = x;
  bad[7] = std::numeric_limits<double>::quiet_NaN();
  CHECK(error_text([&] { ck::gmm_fit(serial{}, cview(bad, 20, 2), {.k = 2}); }).find("'x'") != std::string::npos);
  bad[7] = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(ck::gmm_fit(serial{}, cview(bad, 20, 2), {.k = 2}), invalid_argument);
  CHECK_THROWS_AS(ck::gmm_fit(serial{}, cview(x, 0, 2), {.k = 1}), invalid_argument);
  // shapes of the initial parameters
  const std::vector<double> means(6, 0.0), weights{0.3, 0.3}, prec(3, 1.0);
  ck::gmm_params<double> p{.k = 2};
  p.means_init = cview(means, 3, 2);
  CHECK_THROWS_AS(fit(p), dimension_mismatch);
  p.means_init = cview(means, 2, 2);
  p.weights_init = make_vector_view(weights.data(), 2);
  CHECK(error_text([&] { fit(p); }).find("params.weights_init") != std::string::npos);  // sums to 0.6
  p.weights_init.reset();
  p.covariance_type = ck::gmm_covariance::diag;
  p.precisions_init = make_vector_view(prec.data(), 3);
  CHECK_THROWS_AS(fit(p), dimension_mismatch);
  const std::vector<double> not_pd{1.0, 2.0, 2.0, 1.0, 1.0, 0.0, 0.0, 1.0};
  p.covariance_type = ck::gmm_covariance::full;
  p.precisions_init = make_vector_view(not_pd.data(), 8);
  CHECK(error_text([&] { fit(p); }).find("not positive definite") != std::string::npos);
  // warm start of another shape
  const auto m2 = fit({.k = 2});
  ck::gmm_params<double> w{.k = 3};
  w.warm_start = &m2;
  CHECK(error_text([&] { fit(w); }).find("params.warm_start") != std::string::npos);
  // outputs and models of the wrong shape
  std::vector<double> out(19);
  CHECK_THROWS_AS(ck::gmm_score_samples(serial{}, xv, m2, make_vector_view(out.data(), 19)), dimension_mismatch);
  const auto x3 = blobs(20, 3, 2, 3.0, 1);
  CHECK(error_text([&] { ck::gmm_bic(serial{}, cview(x3, 20, 3), m2); }).find("'model'") != std::string::npos);
  // sweep ranges
  CHECK(error_text([&] { ck::gmm_select(serial{}, xv, {.k_min = 0, .k_max = 3}); }).find("params.k_min") !=
        std::string::npos);
  CHECK(error_text([&] { ck::gmm_select(serial{}, xv, {.k_min = 3, .k_max = 2}); }).find("params.k_max") !=
        std::string::npos);
  CHECK(error_text([&] { ck::gmm_select(serial{}, xv, {.k_min = 2, .k_max = 21}); }).find("params.k_max") !=
        std::string::npos);
  CHECK(error_text([&] { ck::gmm_select(serial{}, xv, {.covariance_types = {}}); }).find("covariance_types") !=
        std::string::npos);
  // an unknown covariance type in a parameter file, and other malformed files
  std::stringstream file;
  ck::gmm_save(m2, file);
  std::string text = file.str();
  const auto at = text.find("full");
  REQUIRE(at != std::string::npos);
  std::stringstream wrong(text.substr(0, at) + "banana" + text.substr(at + 4));
  CHECK(error_text([&] { ck::gmm_load(wrong); }).find("covariance_type") != std::string::npos);
  CHECK(error_text([&] { ck::parse_gmm_covariance("Full"); }).find("unknown covariance type") != std::string::npos);
  std::stringstream truncated(text.substr(0, text.find("means")));
  CHECK_THROWS_AS(ck::gmm_load(truncated), invalid_argument);
  std::stringstream not_gmm("hello");
  CHECK(error_text([&] { ck::gmm_load(not_gmm); }).find("cellkit_gmm") != std::string::npos);
  CHECK_THROWS_AS(ck::gmm_sample(m2, -1, 0), invalid_argument);
}
