#include <cellkit/cluster/kmeans.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

// k-means runs on the host only; the tests are templated over the host policies even in the nvcc
// build. Against scikit-learn 1.2.1 (given init, n_init = 1): labels and iteration counts equal,
// centres and inertia to 1e-10 relative in double (1e-5 in float32, where both sides round
// differently: scikit-learn sums in float32, cellkit in double).

using namespace cellkit;
using cellkit::test::policy_of;
namespace ck = cellkit::cluster;

namespace {

std::vector<double> blobs(index_t n, index_t d, index_t k, double spread, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> centres(static_cast<std::size_t>(k * d));
  for (auto& c : centres) c = normal(rng) * spread;
  std::vector<double> x(static_cast<std::size_t>(n * d));
  for (index_t i = 0; i < n; ++i) {
    const auto c = static_cast<index_t>(rng() % static_cast<std::uint64_t>(k));
    for (index_t a = 0; a < d; ++a)
      x[static_cast<std::size_t>(i * d + a)] = centres[static_cast<std::size_t>(c * d + a)] + normal(rng);
  }
  return x;
}

template <class T>
matrix_view<const T> cview(const std::vector<T>& v, index_t rows, index_t cols) {
  return matrix_view<const T>(v.data(), rows, cols);
}

}  // namespace

TEST_CASE_TEMPLATE("Lloyd from given centres matches scikit-learn 1.2", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const auto cases = test::read_fixture_cases("cluster_kmeans_cases.txt");
  REQUIRE(cases.size() >= 10);
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[1]);
    const auto d = static_cast<index_t>(c.params[2]);
    const auto k = static_cast<index_t>(c.params[3]);
    const int max_iter = static_cast<int>(c.params[4]);
    const double tol = c.params[5];
    const bool has_weight = c.params[6] != 0.0;
    const bool is_float = c.params[7] != 0.0;
    const int n_iter = static_cast<int>(c.params[8]);
    CAPTURE(c.params[0]);
    const auto& want_labels = c.matrix("labels");
    const auto& want_centres = c.matrix("centres");
    const double want_inertia = c.matrix("inertia")[0];
    auto check = [&](const auto& r, double rel) {
      CHECK(r.iterations == n_iter);
      CHECK(r.converged == (n_iter < max_iter || r.reason == ck::stop_reason::converged));
      std::size_t label_diffs = 0;
      for (index_t i = 0; i < n; ++i)
        label_diffs +=
            r.labels[static_cast<std::size_t>(i)] != static_cast<index_t>(want_labels[static_cast<std::size_t>(i)]);
      CHECK(label_diffs == 0);
      double scale = 0.0, worst = 0.0;
      for (double v : want_centres) scale = std::max(scale, std::fabs(v));
      for (std::size_t e = 0; e < want_centres.size(); ++e)
        worst = std::max(worst, std::fabs(static_cast<double>(r.centres[e]) - want_centres[e]));
      CHECK(worst <= rel * scale);
      CHECK(test::close(r.inertia, want_inertia, rel, 1e-300));
    };
    if (is_float) {
      const std::vector<float> x(c.matrix("X").begin(), c.matrix("X").end());
      const std::vector<float> init(c.matrix("init").begin(), c.matrix("init").end());
      const auto r = ck::kmeans(policy, cview(x, n, d),
                                {.k = k,
                                 .max_iter = max_iter,
                                 .tol = tol,
                                 .init = ck::kmeans_init::given,
                                 .initial_centres = cview(init, k, d)});
      check(r, 1e-5);
    } else {
      ck::kmeans_params<double> params{
          .k = k, .n_init = 5, .max_iter = max_iter, .tol = tol, .init = ck::kmeans_init::given};
      params.initial_centres = cview(c.matrix("init"), k, d);
      if (has_weight) params.sample_weight = make_vector_view(c.matrix("weight").data(), n);
      const auto r = ck::kmeans(policy, cview(c.matrix("X"), n, d), params);
      check(r, 1e-10);
      CHECK(r.best_restart == 0);  // given centres: one run whatever n_init says
    }
  }
}

TEST_CASE("results are identical for serial, openmp{2} and openmp{3} (openmp{1} runs the serial path)") {
  const index_t n = 5003, d = 7, k = 9;  // 3 chunks of 2048 rows, blocks of 256
  const auto x = blobs(n, d, k, 2.0, 17);
  std::vector<double> w(static_cast<std::size_t>(n));
  std::mt19937_64 rng(3);
  for (auto& v : w) v = std::uniform_real_distribution<double>(0.0, 2.0)(rng);
  // Two configurations (few parallel regions: on a loaded machine each one can wait for threads).
  for (const auto& config :
       {std::pair{ck::kmeans_init::k_means_plus_plus, false}, std::pair{ck::kmeans_init::random, true}}) {
    {
      const auto init = config.first;  // (no structured bindings: clang 14 cannot capture them in CAPTURE)
      const bool weighted = config.second;
      CAPTURE(static_cast<int>(init));
      CAPTURE(weighted);
      ck::kmeans_params<double> params{.k = k, .n_init = 2, .max_iter = 10, .tol = 1e-6, .init = init, .seed = 1234};
      if (weighted) params.sample_weight = make_vector_view(static_cast<const double*>(w.data()), n);
      const auto a = ck::kmeans(serial{}, cview(x, n, d), params);
      for (int threads : {2, 3}) {
        const auto b = ck::kmeans(openmp{threads}, cview(x, n, d), params);
        CHECK(a.labels == b.labels);
        CHECK(a.centres == b.centres);
        CHECK(a.inertia == b.inertia);
        CHECK(a.iterations == b.iterations);
        CHECK(a.best_restart == b.best_restart);
      }
      // Another seed gives another initialisation (almost surely another run).
      auto other = params;
      other.seed = 99;
      const auto c = ck::kmeans(serial{}, cview(x, n, d), other);
      CHECK((c.centres != a.centres || c.iterations != a.iterations));
    }
  }
}

TEST_CASE("k-means++ and random init find well separated clusters; restarts keep the best run") {
  const index_t n = 2000, d = 4, k = 6;
  const auto x = blobs(n, d, k, 25.0, 5);
  // The optimum is (close to) the generating partition: inertia ~ N d (unit noise).
  for (const auto init : {ck::kmeans_init::k_means_plus_plus, ck::kmeans_init::random}) {
    const auto r = ck::kmeans(openmp{2}, cview(x, n, d), {.k = k, .n_init = 8, .init = init, .seed = 7});
    CHECK(r.converged);
    CHECK(r.reason == ck::stop_reason::converged);
    CHECK(r.inertia < 1.2 * double(n * d));
    CHECK(r.inertia == doctest::Approx([&] {
                         double s = 0;
                         for (index_t i = 0; i < n; ++i)
                           for (index_t a = 0; a < d; ++a) {
                             const double diff =
                                 x[static_cast<std::size_t>(i * d + a)] -
                                 r.centres[static_cast<std::size_t>(r.labels[static_cast<std::size_t>(i)] * d + a)];
                             s += diff * diff;
                           }
                         return s;
                       }())
                           .epsilon(1e-12));
    // A single restart can only be as good as the best of 8.
    for (int restart = 0; restart < 8; ++restart) {
      const auto single = ck::kmeans(serial{}, cview(x, n, d), {.k = k, .n_init = 1, .init = init, .seed = 7});
      CHECK(single.inertia >= r.inertia * (1 - 1e-12));
    }
  }
  // kmeans_predict reproduces the labels of the fitted centres.
  const auto r = ck::kmeans(cview(x, n, d), {.k = k, .seed = 1});
  std::vector<index_t> labels(static_cast<std::size_t>(n));
  ck::kmeans_predict(openmp{2}, cview(x, n, d), r.centres_view(), make_vector_view(labels.data(), n));
  CHECK(labels == r.labels);
}

TEST_CASE("integer sample weights equal repeated rows") {
  const index_t n = 300, d = 3, k = 4;
  const auto x = blobs(n, d, k, 3.0, 8);
  std::vector<double> w(static_cast<std::size_t>(n));
  std::vector<double> repeated;
  for (index_t i = 0; i < n; ++i) {
    w[static_cast<std::size_t>(i)] = static_cast<double>(i % 3);
    for (int r = 0; r < i % 3; ++r) repeated.insert(repeated.end(), x.begin() + i * d, x.begin() + (i + 1) * d);
  }
  const index_t m = static_cast<index_t>(repeated.size()) / d;
  const std::vector<double> init(x.begin() + d, x.begin() + d + k * d);  // rows 1..4 (weights 1, 2, 0, 1)
  ck::kmeans_params<double> pw{.k = k, .tol = 0.0, .init = ck::kmeans_init::given};
  pw.initial_centres = cview(init, k, d);
  pw.sample_weight = make_vector_view(static_cast<const double*>(w.data()), n);
  ck::kmeans_params<double> pr{.k = k, .tol = 0.0, .init = ck::kmeans_init::given};
  pr.initial_centres = cview(init, k, d);
  const auto a = ck::kmeans(serial{}, cview(x, n, d), pw);
  const auto b = ck::kmeans(serial{}, cview(repeated, m, d), pr);
  CHECK(a.inertia == doctest::Approx(b.inertia).epsilon(1e-12));
  for (std::size_t e = 0; e < a.centres.size(); ++e)
    CHECK(a.centres[e] == doctest::Approx(b.centres[e]).epsilon(1e-10));
  CHECK(a.iterations == b.iterations);
}

namespace {

// The E-step as kmeans() prepares it (centred data with row norms; `screen`: double rows get the
// float screening copy, else they are tiled in double block by block), for the detail-level tests.
struct estep_fixture {
  std::vector<double> x;
  index_t n, d;
  ck::detail::kmeans_data<double> data;
  ck::detail::lloyd_partials partials;
  std::vector<host_buffer<double>> scratch;

  estep_fixture(std::vector<double> values, index_t rows, index_t cols, bool screen, int threads)
      : x(std::move(values)), n(rows), d(cols) {
    data.x = cview(x, n, d);
    data.n = n;
    data.d = d;
    data.threads = threads;
    data.row_norms.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i)
      for (index_t a = 0; a < d; ++a)
        data.row_norms[static_cast<std::size_t>(i)] +=
            x[static_cast<std::size_t>(i * d + a)] * x[static_cast<std::size_t>(i * d + a)];
    if (screen) ck::detail::prepare_e_step(data);
    for (int t = 0; t < threads; ++t) scratch.emplace_back(ck::detail::lloyd_scratch_size<double>(d), uninitialized);
  }
  std::vector<index_t> labels(const std::vector<double>& centres, index_t k) {
    std::vector<index_t> out(static_cast<std::size_t>(n), -1);
    ck::detail::lloyd_assign(data, cview(centres, k, d), out.data(), false, partials, scratch);
    return out;
  }
};

}  // namespace

TEST_CASE("double E-step: the float screen with exact re-checks gives the pure double labels") {
  // Labels from the float screen (+ double re-checks) must equal those of the pure double kernel
  // row for row, on rows built to defeat float: (1) centres on the unit axes and rows (t, t, ...)
  // at exactly the same double distance from c_0 and c_1 (the lowest index must win); (2) random
  // centres and rows within 2^-52 .. 2^-12 (relative) of the bisector of c_0 and c_1, where float
  // rounding often orders the two centres wrongly; plus unremarkable rows. At scales 1e-25, 1 and
  // 1e25 (the float copy is scaled by a power of two).
  const index_t d = 6, k = 5;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::normal_distribution<double> normal;
  for (const bool axes : {true, false}) {
    for (const double scale : {1e-25, 1.0, 1e25}) {
      CAPTURE(axes);
      CAPTURE(scale);
      std::vector<double> centres(static_cast<std::size_t>(k * d), 0.0);
      if (axes) {
        for (index_t j = 0; j < k - 1; ++j) centres[static_cast<std::size_t>(j * d + j)] = 1.0;
      } else {  // c_0 and c_1 near the origin, the others farther out
        for (index_t e = 0; e < k * d; ++e)
          centres[static_cast<std::size_t>(e)] = normal(rng) + (e >= 2 * d ? 4.0 : 0.0);
      }
      std::vector<double> x;
      index_t hard = 0;
      for (int i = 0; i < 3000; ++i) {
        std::vector<double> row(static_cast<std::size_t>(d));
        for (auto& v : row) v = uniform(rng);
        if (i % 3 != 2 && axes) {  // exact tie between c_0 and c_1, both nearer than the others
          for (auto& v : row) v *= 0.1;
          row[0] = row[1] = 0.75 + 0.25 * uniform(rng);
          ++hard;
        } else if (i % 3 != 2) {  // near the bisector: x = p - ((p - m).u) u + eps u, p near m
          for (index_t a = 0; a < d; ++a)
            row[static_cast<std::size_t>(a)] =
                0.5 * (centres[static_cast<std::size_t>(a)] + centres[static_cast<std::size_t>(d + a)]) +
                0.3 * uniform(rng);
          double norm = 0.0, along = 0.0;
          for (index_t a = 0; a < d; ++a)
            norm += std::pow(centres[static_cast<std::size_t>(d + a)] - centres[static_cast<std::size_t>(a)], 2);
          for (index_t a = 0; a < d; ++a) {
            const double u =
                (centres[static_cast<std::size_t>(d + a)] - centres[static_cast<std::size_t>(a)]) / std::sqrt(norm);
            along += (row[static_cast<std::size_t>(a)] -
                      0.5 * (centres[static_cast<std::size_t>(a)] + centres[static_cast<std::size_t>(d + a)])) *
                     u;
          }
          const double eps = std::ldexp(uniform(rng), -12 - (i % 41));
          for (index_t a = 0; a < d; ++a) {
            const double u =
                (centres[static_cast<std::size_t>(d + a)] - centres[static_cast<std::size_t>(a)]) / std::sqrt(norm);
            row[static_cast<std::size_t>(a)] += (eps - along) * u;
          }
          ++hard;
        }
        for (auto& v : row) x.push_back(v * scale);
      }
      for (auto& c : centres) c *= scale;
      const auto n = static_cast<index_t>(x.size()) / d;
      estep_fixture screened(x, n, d, true, 2), plain(x, n, d, false, 1);
      CHECK(plain.data.tiled.empty());
      const auto a = screened.labels(centres, k);
      const auto b = plain.labels(centres, k);
      CHECK(a == b);
      if (axes)
        for (index_t i = 0; i < n; i += 3) CHECK(a[static_cast<std::size_t>(i)] == 0);  // exact ties: lowest j
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
      REQUIRE(screened.data.screen);
      CHECK(screened.partials.rechecked >= hard / 2);
      CHECK(screened.partials.rechecked < n);
#endif
    }
  }
}

TEST_CASE("cluster sums kept across Lloyd steps equal the sums of the final labels") {
  // Many steps against unrelated centre sets move most rows many times; the compensated sums must
  // still equal sums computed from scratch from the final labels (to a few ulps).
  const index_t n = 4500, d = 9, k = 7;  // 3 chunks
  const auto x = blobs(n, d, k, 1.0, 31);
  std::vector<double> w(static_cast<std::size_t>(n));
  std::mt19937_64 rng(5);
  for (auto& v : w) v = std::uniform_real_distribution<double>(0.0, 3.0)(rng);
  w[7] = 0.0;
  for (const bool weighted : {false, true}) {
    CAPTURE(weighted);
    estep_fixture f(x, n, d, true, 2);
    if (weighted) f.data.weight = w.data();
    f.data.weighted_norms = 0.0;
    f.partials.reset(f.data.chunks(), k, d);
    std::vector<index_t> labels(static_cast<std::size_t>(n), -1);
    std::vector<double> centres(static_cast<std::size_t>(k * d)), next(centres.size());
    for (int step = 0; step < 25; ++step) {
      for (auto& c : centres) c = std::normal_distribution<double>(0.0, 2.0)(rng);
      ck::detail::lloyd_assign(f.data, cview(centres, k, d), labels.data(), true, f.partials, f.scratch);
    }
    ck::detail::lloyd_update(f.data, cview(centres, k, d), labels.data(), f.partials,
                             matrix_view<double>(next.data(), k, d));
    for (index_t j = 0; j < k; ++j) {
      long double weight = 0.0L;
      std::vector<long double> sum(static_cast<std::size_t>(d), 0.0L);
      for (index_t i = 0; i < n; ++i) {
        if (labels[static_cast<std::size_t>(i)] != j) continue;
        const long double wi = weighted ? w[static_cast<std::size_t>(i)] : 1.0;
        weight += wi;
        for (index_t a = 0; a < d; ++a) sum[static_cast<std::size_t>(a)] += wi * x[static_cast<std::size_t>(i * d + a)];
      }
      REQUIRE(weight > 0.0L);
      for (index_t a = 0; a < d; ++a) {
        const double want = static_cast<double>(sum[static_cast<std::size_t>(a)] / weight);
        CHECK(next[static_cast<std::size_t>(j * d + a)] == doctest::Approx(want).epsilon(1e-14).scale(1.0));
      }
    }
  }
}

TEST_CASE("float k-means, progress callback and stop reasons") {
  const index_t n = 1500, d = 5, k = 5;
  const auto xd = blobs(n, d, k, 4.0, 21);
  const std::vector<float> xf(xd.begin(), xd.end());
  const auto rf = ck::kmeans(openmp{2}, cview(xf, n, d), {.k = k, .n_init = 2, .seed = 3});
  const auto rd =
      ck::kmeans(openmp{2}, cview(std::vector<double>(xf.begin(), xf.end()), n, d), {.k = k, .n_init = 2, .seed = 3});
  CHECK(rf.labels == rd.labels);
  CHECK(rf.inertia == doctest::Approx(rd.inertia).epsilon(1e-5));

  int calls = 0;
  ck::kmeans_params<double> params{.k = k, .n_init = 3, .max_iter = 100, .tol = 0.0, .seed = 3};
  params.progress = [&](const ck::kmeans_progress& info) {
    ++calls;
    CHECK(info.iteration == calls);
    CHECK(info.restart == 0);
    CHECK(info.labels_changed > 0);
    CHECK(std::isfinite(info.inertia));
    return calls < 2;
  };
  const auto stopped = ck::kmeans(serial{}, cview(xd, n, d), params);
  CHECK(calls == 2);
  CHECK(stopped.reason == ck::stop_reason::stopped_by_callback);
  CHECK_FALSE(stopped.converged);
  CHECK(stopped.iterations == 2);

  const auto capped = ck::kmeans(serial{}, cview(xd, n, d), {.k = k, .max_iter = 1, .tol = 0.0, .seed = 3});
  CHECK(capped.reason == ck::stop_reason::max_iterations);
  CHECK(capped.iterations == 1);
  CHECK(std::string(ck::to_string(capped.reason)) == "max_iterations");
}

TEST_CASE_TEMPLATE("bad inputs are refused with a message naming the argument", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  std::vector<double> x = {0, 0, 1, 0, 0, 1, 5, 5};
  const auto xv = cview(x, 4, 2);
  CHECK_THROWS_WITH_AS(ck::kmeans(policy, xv, {.k = 5}),
                       "kmeans: invalid argument 'params.k': k = 5 exceeds the number of samples N = 4",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::kmeans(policy, xv, {.k = 0}), "kmeans: invalid argument 'params.k': must be >= 1, got 0",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::kmeans(policy, cview(x, 0, 2), {.k = 1}),
                       "kmeans: invalid argument 'x': has no rows (k-means needs at least one sample)",
                       invalid_argument);
  std::vector<double> x_nan = x;
  x_nan[5] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(ck::kmeans(policy, cview(x_nan, 4, 2), {.k = 2}),
                       "kmeans: invalid argument 'x': x(2, 1) is NaN: every value must be finite", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::kmeans(policy, xv, {.k = 2, .n_init = 0}),
                       "kmeans: invalid argument 'params.n_init': must be >= 1, got 0", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::kmeans(policy, xv, {.k = 2, .max_iter = 0}),
                       "kmeans: invalid argument 'params.max_iter': must be >= 1, got 0", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::kmeans(policy, xv, {.k = 2, .tol = -1.0}),
                       "kmeans: invalid argument 'params.tol': must be finite and >= 0, got -1", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::kmeans(policy, xv, {.k = 2, .init = ck::kmeans_init::given}),
                       "kmeans: invalid argument 'params.initial_centres': is required when params.init is "
                       "kmeans_init::given",
                       invalid_argument);
  std::vector<double> init = {0, 0, 1, 1, 2, 2};
  ck::kmeans_params<double> given{.k = 2, .init = ck::kmeans_init::given};
  given.initial_centres = cview(init, 3, 2);
  CHECK_THROWS_WITH_AS(
      ck::kmeans(policy, xv, given),
      "kmeans: dimension mismatch: params.initial_centres is 3 x 2 but k x d is 2 x 2 (one centre of x's "
      "dimension per cluster)",
      dimension_mismatch);
  init[1] = std::numeric_limits<double>::infinity();
  given.initial_centres = cview(init, 2, 2);
  CHECK_THROWS_WITH_AS(ck::kmeans(policy, xv, given),
                       "kmeans: invalid argument 'params.initial_centres': params.initial_centres(0, 1) is inf: every "
                       "value must be finite",
                       invalid_argument);
  std::vector<double> w = {1, -1, 1, 1};
  ck::kmeans_params<double> weighted{.k = 2};
  weighted.sample_weight = make_vector_view(static_cast<const double*>(w.data()), 4);
  CHECK_THROWS_WITH_AS(
      ck::kmeans(policy, xv, weighted),
      "kmeans: invalid argument 'params.sample_weight': params.sample_weight[1] is -1: every value must "
      "be finite and >= 0",
      invalid_argument);
  weighted.sample_weight = make_vector_view(static_cast<const double*>(w.data()), 3);
  CHECK_THROWS_WITH_AS(
      ck::kmeans(policy, xv, weighted),
      "kmeans: dimension mismatch: params.sample_weight is 3 x 1 but x is 4 x 2 (one weight per row of x)",
      dimension_mismatch);
  w = {0, 0, 0, 0};
  weighted.sample_weight = make_vector_view(static_cast<const double*>(w.data()), 4);
  CHECK_THROWS_WITH_AS(
      ck::kmeans(policy, xv, weighted),
      "kmeans: invalid argument 'params.sample_weight': sums to 0; at least one weight must be positive",
      invalid_argument);
  w = {0, 0, 0, 1};
  weighted.init = ck::kmeans_init::random;
  CHECK_THROWS_WITH_AS(ck::kmeans(policy, xv, weighted),
                       "kmeans: invalid argument 'params.sample_weight': random initialisation needs k = 2 rows with "
                       "positive weight, found 1",
                       invalid_argument);
  // Fewer distinct points than k is not an error: duplicate centres, empty clusters relocated.
  std::vector<double> same(20, 1.0);
  const auto r = ck::kmeans(policy, cview(same, 10, 2), {.k = 3});
  CHECK(r.inertia == 0.0);
  for (double c : r.centres) CHECK(c == 1.0);
}
