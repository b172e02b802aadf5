// cellkit::cluster::kmeans, time PER LLOYD ITERATION, with openmp{N} (N = env
// CELLKIT_BENCH_THREADS, default 2): N cells x d features uniform in [-1, 1), the first k rows as
// initial centres, tol = 0.
//
//   BM_kmeans_lloyd<T>/n/d/k/threads
//
// Per-iteration time = (t(max_iter = i1) - t(max_iter = i0)) / (i1 - i0), each t the best of 3 fits:
// the centring copy, the
// initialisation, the final E-step and the inertia cancel. The peer script measures scikit-learn's
// KMeans(algorithm='lloyd', init=<centres>, n_init=1, tol=0).fit the same way.
// Counters: GFLOP/s and frac_gemm for the 2 N k d flops of the E-step GEMM (the M-step's adds and
// the argmin are not counted), against the large square GEMM of the same type. For double, cellkit
// computes these distances in float (exact double re-checks of near ties, docs/cluster.md), so
// its frac_gemm can exceed 1; divide by the float GEMM rate for the fraction of the machine.
// Timed iterations are steps 3 - 12, where 2 - 11% of the labels change per step (the M-step
// only moves changed rows between the cluster sums).

#include "support/machine_limits.hpp"

#include <cellkit/cluster/kmeans.hpp>
#include <cellkit/core/buffer.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>

namespace {

template <class T>
void BM_kmeans_lloyd(benchmark::State& state) {
  const std::int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  // Uniform noise in [-1, 1)^d: no cluster structure, so Lloyd keeps moving for hundreds of
  // iterations (scikit-learn: 300 with tol = 0) and every timed iteration is a full one.
  cellkit::host_buffer<T> x(n * d, cellkit::uninitialized);
  cellkit_bench::fill_pattern(x, 6);
  cellkit::host_buffer<T> init(k * d, cellkit::uninitialized);  // the first k rows
  for (std::int64_t e = 0; e < k * d; ++e) init.data()[e] = x.data()[e];
  const auto policy = cellkit::openmp{threads};
  const auto xv = std::as_const(x).as_matrix(n, d);
  const int extra = 10;
  auto fit = [&](int iterations) {
    cellkit::cluster::kmeans_params<T> params{
        .k = k, .max_iter = iterations, .tol = 0.0, .init = cellkit::cluster::kmeans_init::given};
    params.initial_centres = std::as_const(init).as_matrix(k, d);
    const auto start = std::chrono::steady_clock::now();
    const auto r = cellkit::cluster::kmeans(policy, xv, params);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    benchmark::DoNotOptimize(r.inertia);
    if (r.iterations != iterations) state.SkipWithError("k-means converged before the iteration budget");
    return seconds;
  };
  fit(2);  // warm-up
  for (auto _ : state) {
    // Each length's best of 3 (load from other processes only ever adds time), then the difference.
    double t0 = 1e300, t1 = 1e300;
    for (int r = 0; r < 3; ++r) {
      t0 = std::min(t0, fit(2));
      t1 = std::min(t1, fit(2 + extra));
    }
    state.SetIterationTime(std::max(1e-9, (t1 - t0) / extra));
  }
  cellkit_bench::report_flops<T>(state, 2.0 * double(n) * double(k) * double(d));
}

void grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d", "k", "threads"});
  b->Args({100'000, 50, 20, cellkit_bench::bench_threads()});
}

}  // namespace

BENCHMARK(BM_kmeans_lloyd<float>)->Apply(grid)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(2);
BENCHMARK(BM_kmeans_lloyd<double>)->Apply(grid)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(2);

BENCHMARK_MAIN();
