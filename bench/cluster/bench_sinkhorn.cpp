// cellkit::cluster::sinkhorn, time PER ITERATION, with openmp{N} (N = env CELLKIT_BENCH_THREADS,
// default 2), on a stored cost matrix uniform in [0, 1), uniform marginals, epsilon = 0.1, tol = 0
// (so every solve runs its full budget).
//
//   BM_sinkhorn_kernel<T>/n/m/threads   kernel-domain iterations (one fused pass over K)
//   BM_sinkhorn_log<T>/n/m/threads      log-domain iterations (one fused pass over C, one exp per entry)
//
// Per-iteration time = (t(solve with i1 iterations) - t(solve with i0 iterations)) / (i1 - i0), each t
// the best of 3 solves, so
// the one-off work (K = exp(-C/eps), potentials, workspace) cancels; the peer script measures POT's
// ot.sinkhorn(method='sinkhorn' / 'sinkhorn_log', stopThr=0) the same way. Reported through
// UseManualTime (the "real time" column is the per-iteration time).
// Counters: GB/s and frac_triad for one read of the N x M matrix per iteration.

#include "support/machine_limits.hpp"

#include <cellkit/cluster/sinkhorn.hpp>
#include <cellkit/core/buffer.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

namespace {

template <class T>
void run_sinkhorn(benchmark::State& state, cellkit::cluster::sinkhorn_method method) {
  const std::int64_t n = state.range(0), m = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  cellkit::host_buffer<T> cost(n * m, cellkit::uninitialized);
  cellkit_bench::fill_pattern(cost, 3);
  for (auto& v : cost) v = T(0.5) * (v + T(1));
  std::vector<T> a(static_cast<std::size_t>(n), T(1) / T(n)), b(static_cast<std::size_t>(m), T(1) / T(m));
  const auto policy = cellkit::openmp{threads};
  const auto cv = std::as_const(cost).as_matrix(n, m);
  // Enough iterations that the difference dominates the noise: ~20 ms of iterations.
  const int extra = n * m >= 10'000'000 ? 10 : 200;
  auto solve = [&](int iterations) {
    const auto start = std::chrono::steady_clock::now();
    const auto r = cellkit::cluster::sinkhorn(
        policy, cv, cellkit::vector_view<const T>(a.data(), n), cellkit::vector_view<const T>(b.data(), m), {},
        {.epsilon = T(0.1), .method = method, .max_iter = iterations, .tol = T(0), .check_every = 1000000});
    benchmark::DoNotOptimize(r.f.data());
    if (r.iterations != iterations) state.SkipWithError("the solver stopped early");
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  solve(2);  // warm-up
  for (auto _ : state) {
    // Each length's best of 3 (load from other processes only ever adds time), then the difference.
    double t0 = 1e300, t1 = 1e300;
    for (int r = 0; r < 3; ++r) {
      t0 = std::min(t0, solve(2));
      t1 = std::min(t1, solve(2 + extra));
    }
    state.SetIterationTime(std::max(1e-9, (t1 - t0) / extra));
  }
  cellkit_bench::report_bandwidth(state, double(n) * double(m) * sizeof(T));
}

template <class T>
void BM_sinkhorn_kernel(benchmark::State& state) {
  run_sinkhorn<T>(state, cellkit::cluster::sinkhorn_method::kernel);
}
template <class T>
void BM_sinkhorn_log(benchmark::State& state) {
  run_sinkhorn<T>(state, cellkit::cluster::sinkhorn_method::log);
}

void grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "m", "threads"});
  b->Args({20'000, 20, cellkit_bench::bench_threads()});
  b->Args({5'000, 5'000, cellkit_bench::bench_threads()});
}

}  // namespace

BENCHMARK(BM_sinkhorn_kernel<float>)->Apply(grid)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(2);
BENCHMARK(BM_sinkhorn_kernel<double>)->Apply(grid)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(2);
BENCHMARK(BM_sinkhorn_log<float>)->Apply(grid)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(2);
BENCHMARK(BM_sinkhorn_log<double>)->Apply(grid)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(2);

BENCHMARK_MAIN();
