// cellkit::graph::knn_graph: exact kNN graph by blocked brute force on the GEMM primitive.
//
// Data: n x d float, N(0, 1) entries (fixed seed). Timed: knn_graph(policy, X, {k, euclidean,
// binary weights, no symmetrisation}) = neighbour search + re-ranking + CSR assembly, the same
// output as scikit-learn's NearestNeighbors(algorithm="brute").fit(X).kneighbors_graph().
// Headline (issue 5): BM_knn_graph<float>/n:50000/d:50/k:15/threads:2 against
// bench/peers/graph_torch.py (sklearn brute).
//
// Counters: GFLOP/s counts the n^2 d multiply-adds of the symmetric product (n (n + 512) d flops:
// the tiles on and above the diagonal); frac_gemm relates it to the GEMM limit. max_rss_MiB is the
// process's peak resident memory after the run (data, graph and every scratch included), to show
// that memory stays O(n (d + k)) and not O(n^2) (an n x n float matrix would be 9.5 GiB here).

#include "support/machine_limits.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <cellkit/core/buffer.hpp>
#include <cellkit/graph/knn.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <random>

namespace {

void BM_knn_graph(benchmark::State& state) {
  const cellkit::index_t n = state.range(0);
  const cellkit::index_t d = state.range(1);
  const cellkit::index_t k = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  cellkit::host_buffer<float> x(n * d, cellkit::uninitialized);
  std::mt19937_64 engine(3);
  std::normal_distribution<float> normal;
  for (auto& v : x) v = normal(engine);
  cellkit::graph::knn_params<float> params;
  params.k = k;
  auto run = [&] {
    const auto xv = std::as_const(x).as_matrix(n, d);
    auto g = threads == 1 ? cellkit::graph::knn_graph(cellkit::serial{}, xv, params)
                          : cellkit::graph::knn_graph(cellkit::openmp{threads}, xv, params);
    benchmark::DoNotOptimize(g.view().values());
    benchmark::ClobberMemory();
  };
  cellkit_bench::report_flops<float>(state,
                                     static_cast<double>(n) * static_cast<double>(n + 512) * static_cast<double>(d));
  for (auto _ : state) run();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  state.counters["max_rss_MiB"] = static_cast<double>(usage.ru_maxrss) / 1024.0;
}

void knn_grid(benchmark::internal::Benchmark* b) {
  const int threads = cellkit_bench::bench_threads();
  b->ArgNames({"n", "d", "k", "threads"});
  b->Args({10'000, 50, 15, threads});
  b->Args({50'000, 50, 15, 1});
  if (threads != 1) b->Args({50'000, 50, 15, threads});
}

}  // namespace

BENCHMARK(BM_knn_graph)->Name("BM_knn_graph<float>")->Apply(knn_grid)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
