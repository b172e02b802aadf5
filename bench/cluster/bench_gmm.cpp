// cellkit::cluster Gaussian mixtures with openmp{N} (N = env CELLKIT_BENCH_THREADS, default 2).
//
//   BM_gmm_em_iteration<T>/n/d/k/type/threads   time PER EM ITERATION of gmm_fit from given
//       parameters (the first k rows as means, equal weights, identity precisions), tol = 0, on
//       uniform data in [-1, 1): (t(max_iter = 2 + extra) - t(max_iter = 2)) / extra, each t the
//       best of 3 fits, so centring and initialisation cancel. type 0 full, 2 diag.
//       Counters: the GEMM flops of one iteration, 4 N K p (p = d(d+3)/2 full, 2d diag), against
//       the square GEMM rate.
//   BM_gmm_pass<T>/n/d/k/type/stats/threads     one pass over the data: stats:0 the E-step alone
//       (log-densities, log-sum-exp, responsibilities: 2 N K p GEMM flops), stats:1 E-step plus the
//       M-step's sufficient statistics (4 N K p). The M-step's own rate is 2 N K p / (t1 - t0).
//   BM_gmm_bic_sweep<T>/n/d/kmax/threads        gmm_select over K = 2..kmax, full covariances,
//       tol 1e-3, max_iter 100, k-means initialisation, on a 12-cluster mixture (the peer fits
//       scikit-learn's GaussianMixture for each K and calls bic()). One run.
//
// Peers: bench/peers/gmm_sklearn.py (scikit-learn 1.2 GaussianMixture, threadpoolctl limits).

#include "support/machine_limits.hpp"

#include <cellkit/cluster/detail/gmm_impl.hpp>
#include <cellkit/cluster/gmm.hpp>
#include <cellkit/cluster/gmm_select.hpp>
#include <cellkit/core/buffer.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace {

namespace ck = cellkit::cluster;

double feature_count(ck::gmm_covariance type, std::int64_t d) {
  return static_cast<double>(ck::detail::gmm_quadratic_features(type, d) + d);
}

template <class T>
void BM_gmm_em_iteration(benchmark::State& state) {
  const std::int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  const auto type = static_cast<ck::gmm_covariance>(state.range(3));
  const int threads = static_cast<int>(state.range(4));
  cellkit::host_buffer<T> x(n * d, cellkit::uninitialized);
  cellkit_bench::fill_pattern(x, 6);
  std::vector<double> means(static_cast<std::size_t>(k * d));
  for (std::int64_t e = 0; e < k * d; ++e) means[static_cast<std::size_t>(e)] = static_cast<double>(x.data()[e]);
  std::vector<double> weights(static_cast<std::size_t>(k), 1.0 / static_cast<double>(k));
  std::vector<double> precisions(static_cast<std::size_t>(ck::gmm_covariance_size(type, k, d)), 0.0);
  if (type == ck::gmm_covariance::full) {
    for (std::int64_t j = 0; j < k; ++j)
      for (std::int64_t a = 0; a < d; ++a) precisions[static_cast<std::size_t>(j * d * d + a * d + a)] = 1.0;
  } else {
    std::fill(precisions.begin(), precisions.end(), 1.0);
  }
  const auto policy = cellkit::openmp{threads};
  const auto xv = std::as_const(x).as_matrix(n, d);
  const int extra = 3;
  auto fit = [&](int iterations) {
    ck::gmm_params<T> params{.k = k, .covariance_type = type, .tol = 0.0, .max_iter = iterations};
    params.weights_init = cellkit::make_vector_view(static_cast<const double*>(weights.data()), k);
    params.means_init = cellkit::matrix_view<const double>(means.data(), k, d);
    params.precisions_init = cellkit::make_vector_view(static_cast<const double*>(precisions.data()),
                                                       static_cast<std::int64_t>(precisions.size()));
    const auto start = std::chrono::steady_clock::now();
    const auto model = ck::gmm_fit(policy, xv, params);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    benchmark::DoNotOptimize(model.lower_bound);
    if (model.n_iter != iterations) state.SkipWithError("EM stopped before the iteration budget");
    return seconds;
  };
  fit(1);  // warm-up
  for (auto _ : state) {
    double t0 = 1e300, t1 = 1e300;
    for (int r = 0; r < 3; ++r) {
      t0 = std::min(t0, fit(2));
      t1 = std::min(t1, fit(2 + extra));
    }
    state.SetIterationTime(std::max(1e-9, (t1 - t0) / extra));
  }
  cellkit_bench::report_flops<T>(state, 4.0 * double(n) * double(k) * feature_count(type, d));
}

template <class T>
void BM_gmm_pass(benchmark::State& state) {
  const std::int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  const auto type = static_cast<ck::gmm_covariance>(state.range(3));
  const bool stats = state.range(4) != 0;
  const int threads = static_cast<int>(state.range(5));
  cellkit::host_buffer<T> x(n * d, cellkit::uninitialized);
  cellkit_bench::fill_pattern(x, 6);
  auto data = ck::detail::gmm_prepare<T>(threads, std::as_const(x).as_matrix(n, d), "bench");
  // Parameters of one M-step from k-means-like hard labels (i mod k).
  ck::detail::gmm_state s;
  s.type = type;
  s.k = k;
  s.d = d;
  std::vector<char> reported(static_cast<std::size_t>(k), 0);
  std::vector<ck::gmm_diagnostic> diagnostics;
  ck::detail::gmm_mstep_settings settings;
  settings.reg.assign(static_cast<std::size_t>(d), 1e-6);
  settings.floor = 1e-6;
  const auto init = ck::detail::gmm_pass(
      data, type, k, static_cast<const ck::detail::gmm_coefficients<T>*>(nullptr), true,
      [&](cellkit::index_t first, cellkit::index_t count, cellkit::matrix_view<T> resp) {
        for (cellkit::index_t r = 0; r < count; ++r)
          for (cellkit::index_t j = 0; j < k; ++j) resp(r, j) = (first + r) % k == j ? T(1) : T(0);
      },
      [](cellkit::index_t, cellkit::index_t, const double*, const double*, const T*) {});
  ck::detail::gmm_mstep(data, init, settings, 0, reported, s, diagnostics);
  const auto coef = ck::detail::make_coefficients<T>(s);
  for (auto _ : state) {
    const auto pass =
        ck::detail::gmm_pass(data, type, k, &coef, stats, nullptr,
                             [](cellkit::index_t, cellkit::index_t, const double*, const double*, const T*) {});
    benchmark::DoNotOptimize(pass.log_likelihood);
  }
  cellkit_bench::report_flops<T>(state, (stats ? 4.0 : 2.0) * double(n) * double(k) * feature_count(type, d));
}

/// A 12-cluster mixture both sides can compute: centre c_ja = 4 sin(1.3 (c + 1)(a + 1)), c = i mod 12,
/// plus noise frac(43758.5453 sin(12.9898 i + 78.233 a)) - 0.5 (uniform, variance 1/12).
template <class T>
std::vector<T> sweep_data(std::int64_t n, std::int64_t d) {
  std::vector<T> x(static_cast<std::size_t>(n * d));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t a = 0; a < d; ++a) {
      const double c = static_cast<double>(i % 12);
      const double centre = 4.0 * std::sin(1.3 * (c + 1.0) * static_cast<double>(a + 1));
      const double s = std::sin(12.9898 * static_cast<double>(i) + 78.233 * static_cast<double>(a)) * 43758.5453;
      x[static_cast<std::size_t>(i * d + a)] = static_cast<T>(centre + (s - std::floor(s)) - 0.5);
    }
  return x;
}

template <class T>
void BM_gmm_bic_sweep(benchmark::State& state) {
  const std::int64_t n = state.range(0), d = state.range(1), k_max = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const auto x = sweep_data<T>(n, d);
  const auto xv = cellkit::matrix_view<const T>(x.data(), n, d);
  for (auto _ : state) {
    const auto sweep = ck::gmm_select(cellkit::openmp{threads}, xv,
                                      {.k_min = 2, .k_max = k_max, .fit = {.tol = 1e-3, .max_iter = 100, .seed = 1}});
    benchmark::DoNotOptimize(sweep.best.lower_bound);
    int iterations = 0;
    for (const auto& row : sweep.table) iterations += row.n_iter;
    state.counters["best_k"] = static_cast<double>(sweep.best.k);
    state.counters["em_iterations"] = iterations;
  }
}

void em_grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d", "k", "type", "threads"});
  b->Args({100'000, 50, 20, 0, cellkit_bench::bench_threads()});
  b->Args({100'000, 50, 20, 2, cellkit_bench::bench_threads()});
}

void pass_grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d", "k", "type", "stats", "threads"});
  for (int stats : {0, 1}) {
    b->Args({100'000, 50, 20, 0, stats, cellkit_bench::bench_threads()});
    b->Args({100'000, 50, 20, 2, stats, cellkit_bench::bench_threads()});
  }
}

}  // namespace

BENCHMARK(BM_gmm_em_iteration<double>)->Apply(em_grid)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_gmm_pass<double>)->Apply(pass_grid)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(BM_gmm_bic_sweep<double>)
    ->ArgNames({"n", "d", "kmax", "threads"})
    ->Args({20'000, 50, 20, cellkit_bench::bench_threads()})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

BENCHMARK_MAIN();
