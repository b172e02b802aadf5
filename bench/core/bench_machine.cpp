// The machine's limits as benchmarks, so that the results table carries them next to the kernels
// that are judged against them (see support/machine_limits.hpp for how they are measured).
//
// BM_triad/threads:N         the STREAM triad a = b + s c over 3 x 1 GiB of doubles (GB/s counted
//                            as 3 x 8 bytes per element, write-allocate not counted).
// BM_gemm_large<T>/n:N/threads:N  a square cellkit::gemm with openmp{threads} (GFLOP/s, 2 n^3 flops).

#include "support/machine_limits.hpp"

#include <cellkit/core/buffer.hpp>
#include <cellkit/execution/gemm.hpp>

#include <benchmark/benchmark.h>

#include <utility>

namespace {

void BM_triad(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const std::int64_t n = cellkit_bench::triad_elements();
  cellkit_bench::report_bandwidth(state, cellkit_bench::triad_bytes(n));  // measures the limit first (own arrays)
  cellkit::host_buffer<double> a(n, cellkit::uninitialized), b(n, cellkit::uninitialized), c(n, cellkit::uninitialized);
  cellkit_bench::first_touch(a.data(), b.data(), c.data(), n, threads);
  cellkit_bench::triad(a.data(), b.data(), c.data(), 3.0, n, threads);
  for (auto _ : state) {
    cellkit_bench::triad(a.data(), b.data(), c.data(), 3.0, n, threads);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(a.data()[n / 2]);
  state.SetItemsProcessed(state.iterations() * n);
}

template <class T>
void BM_gemm_large(benchmark::State& state) {
  const cellkit::index_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  cellkit_bench::report_flops<T>(state, flops);
  cellkit::host_buffer<T> a(n * n, cellkit::uninitialized), b(n * n, cellkit::uninitialized), c(n * n);
  cellkit_bench::fill_pattern(a, 1);
  cellkit_bench::fill_pattern(b, 2);
  const auto policy = cellkit::openmp{threads};
  for (auto _ : state) {
    cellkit::gemm(policy, std::as_const(a).as_matrix(n, n), std::as_const(b).as_matrix(n, n), c.as_matrix(n, n),
                  cellkit::gemm_params<T>{});
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
}

void triad_args(benchmark::internal::Benchmark* b) { b->ArgNames({"threads"})->Arg(cellkit_bench::bench_threads()); }

void gemm_large_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "threads"})->Args({cellkit_bench::gemm_limit_size(), cellkit_bench::bench_threads()});
}

}  // namespace

BENCHMARK(BM_triad)->Apply(triad_args)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gemm_large<float>)->Apply(gemm_large_args)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gemm_large<double>)->Apply(gemm_large_args)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
