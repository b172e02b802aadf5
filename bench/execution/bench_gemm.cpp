// cellkit::gemm on the shapes the library uses, with openmp{N} (N = env CELLKIT_BENCH_THREADS, default 2).
//
// C (m x n) = op(A) op(B), op(A) m x k, row-major, alpha = 1, beta = 0; "tb:1" means B is stored
// n x k and transposed (X C^T, Z Z^T):
//   m:100000/n:20/k:50/tb:1     k-means distances: 100k cells x 50 PCs against 20 centroids
//   m:4096/n:4096/k:128/tb:1    contrastive similarities: Z Z^T for a 4096 x 128 embedding batch
//   m:1024/n:1024/k:1024/tb:0   a plain cube
//   m:100000/n:64/k:128/tb:0    a dense layer: 100k cells x 128 features times a 128 x 64 weight
// Counters: GFLOP/s (2 m n k per call) and frac_gemm (of the large square GEMM of the same type,
// see support/machine_limits.hpp).

#include "support/machine_limits.hpp"

#include <cellkit/core/buffer.hpp>
#include <cellkit/execution/gemm.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <utility>

namespace {

template <class T>
void BM_gemm(benchmark::State& state) {
  const cellkit::index_t m = state.range(0);
  const cellkit::index_t n = state.range(1);
  const cellkit::index_t k = state.range(2);
  const bool transpose_b = state.range(3) != 0;
  const int threads = static_cast<int>(state.range(4));
  cellkit::host_buffer<T> a(m * k, cellkit::uninitialized), b(k * n, cellkit::uninitialized), c(m * n);
  cellkit_bench::fill_pattern(a, 1);
  cellkit_bench::fill_pattern(b, 2);
  const auto a_view = std::as_const(a).as_matrix(m, k);
  const auto b_view = transpose_b ? std::as_const(b).as_matrix(n, k) : std::as_const(b).as_matrix(k, n);
  const auto c_view = c.as_matrix(m, n);
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  cellkit_bench::report_flops<T>(state, flops);
  const auto policy = cellkit::openmp{threads};
  const cellkit::gemm_params<T> params{.alpha = T(1), .beta = T(0), .transpose_a = false, .transpose_b = transpose_b};
  auto run = [&] {
    cellkit::gemm(policy, a_view, b_view, c_view, params);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  };
  run();  // warm-up
  for (auto _ : state) run();
  state.SetItemsProcessed(state.iterations() * m * n * k);
}

void gemm_grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k", "tb", "threads"});
  const std::int64_t threads = cellkit_bench::bench_threads();
  b->Args({100'000, 20, 50, 1, threads});
  b->Args({4096, 4096, 128, 1, threads});
  b->Args({1024, 1024, 1024, 0, threads});
  b->Args({100'000, 64, 128, 0, threads});
}

}  // namespace

BENCHMARK(BM_gemm<float>)->Apply(gemm_grid)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_gemm<double>)->Apply(gemm_grid)->UseRealTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
