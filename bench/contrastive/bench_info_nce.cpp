// cellkit::contrastive::info_nce (two views, tiled) on openmp{N} (N = env CELLKIT_BENCH_THREADS, default 2).
//
//   BM_info_nce<T>/n:N/d:D/threads:t        value + both gradients, N rows per view (2N x 2N pairs)
//   BM_info_nce_value<T>/n:N/d:D/threads:t  value only (the forward pass)
// Embeddings: a deterministic pattern in [-1, 1); temperature 0.1; default tiles (256 x 512).
// Counters: GFLOP/s and frac_gemm (support/machine_limits.hpp) for the GEMM-shaped work the loss must
// do as a plain implementation does it: forward similarities 2 (2N)^2 d, and with gradients also the
// recomputed similarities and the product with the embeddings, 3 x 2 (2N)^2 d in all (the
// exponentials and the O(N d) work are not counted). cellkit uses the symmetry of the similarity
// matrix and performs fewer flops (about 2/3 of that with gradients, 1/2 for the value);
// "actual_GFLOP/s" and "actual_frac_gemm" count the flops it really performs (from its block
// structure), so the pair says both how fast the loss is and how efficiently the GEMMs run.
// Peer: bench/peers/contrastive_torch.py (same names).
//
// Peak memory: `bench_contrastive_info_nce --peak-memory N [d] [float|double]` runs value + gradients
// once in a fresh process and prints one JSON line with the peak resident set size (getrusage
// ru_maxrss) before and after the call; the peer script does the same for PyTorch.

#include "support/machine_limits.hpp"

#include <cellkit/contrastive/info_nce.hpp>
#include <cellkit/core/buffer.hpp>

#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

template <class T>
struct problem {
  cellkit::index_t n;
  cellkit::index_t d;
  cellkit::host_buffer<T> a, b, ga, gb;
  problem(cellkit::index_t n_, cellkit::index_t d_)
      : n(n_),
        d(d_),
        a(n * d, cellkit::uninitialized),
        b(n * d, cellkit::uninitialized),
        ga(n * d, cellkit::uninitialized),
        gb(n * d, cellkit::uninitialized) {
    cellkit_bench::fill_pattern(a, 1);
    cellkit_bench::fill_pattern(b, 2);
    // the second view is a perturbed copy of the first (positives more similar than negatives)
    for (cellkit::index_t i = 0; i < n * d; ++i) b[i] = a[i] + T(0.3) * b[i];
  }
  T run(const cellkit::openmp& policy, bool gradients) {
    const cellkit::contrastive::info_nce_params<T> params{.temperature = T(0.1)};
    if (!gradients) {
      return cellkit::contrastive::info_nce(policy, std::as_const(a).as_matrix(n, d), std::as_const(b).as_matrix(n, d),
                                            std::nullopt, std::nullopt, params);
    }
    return cellkit::contrastive::info_nce(policy, std::as_const(a).as_matrix(n, d), std::as_const(b).as_matrix(n, d),
                                          ga.as_matrix(n, d), gb.as_matrix(n, d), params);
  }
};

template <class T>
void run_benchmark(benchmark::State& state, bool gradients) {
  const cellkit::index_t n = state.range(0);
  const cellkit::index_t d = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  problem<T> p(n, d);
  const double pairs = 4.0 * static_cast<double>(n) * static_cast<double>(n);  // (2N)^2
  cellkit_bench::report_flops<T>(state, (gradients ? 3.0 : 1.0) * 2.0 * pairs * static_cast<double>(d));
  // Flops of cellkit's symmetric tiling (blocks of row_block rows within each view): forward tiles
  // A <= B, backward the same tiles recomputed plus M Z_B for every tile and M^T Z_A off the diagonal.
  const cellkit::index_t block = cellkit::contrastive::info_nce_params<T>{}.row_block;
  std::vector<double> sizes;
  for (int view = 0; view < 2; ++view)
    for (cellkit::index_t r = 0; r < n; r += block) sizes.push_back(static_cast<double>(std::min(block, n - r)));
  double upper = 0, off = 0;
  for (std::size_t a = 0; a < sizes.size(); ++a)
    for (std::size_t b = a; b < sizes.size(); ++b) {
      upper += sizes[a] * sizes[b];
      if (b != a) off += sizes[a] * sizes[b];
    }
  const double actual = 2.0 * static_cast<double>(d) * (gradients ? 2.0 * upper + upper + off : upper);
  const double limit = cellkit_bench::gemm_flops_per_second<T>();
  state.counters["actual_GFLOP/s"] = benchmark::Counter(actual * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["actual_frac_gemm"] =
      benchmark::Counter(actual / limit, benchmark::Counter::kIsIterationInvariantRate);
  const cellkit::openmp policy{threads};
  benchmark::DoNotOptimize(p.run(policy, gradients));  // warm-up
  for (auto _ : state) {
    benchmark::DoNotOptimize(p.run(policy, gradients));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(pairs));
}

template <class T>
void BM_info_nce(benchmark::State& state) {
  run_benchmark<T>(state, true);
}
template <class T>
void BM_info_nce_value(benchmark::State& state) {
  run_benchmark<T>(state, false);
}

void grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d", "threads"});
  const std::int64_t threads = cellkit_bench::bench_threads();
  for (std::int64_t n : {1024, 4096}) b->Args({n, 128, threads});
  b->Args({4096, 128, 1});
}

/// Peak RSS (bytes) of this process so far.
long peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss * 1024L;  // Linux: kilobytes
}

template <class T>
int peak_memory(cellkit::index_t n, cellkit::index_t d, const char* type) {
  const long before = peak_rss_bytes();
  problem<T> p(n, d);
  const long inputs = peak_rss_bytes();
  const auto start = std::chrono::steady_clock::now();
  const T loss = p.run(cellkit::openmp{cellkit_bench::bench_threads()}, true);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long after = peak_rss_bytes();
  std::printf(
      "{\"name\": \"peak_memory/info_nce<%s>/n:%lld/d:%lld\", \"peer\": \"cellkit\", \"peak_rss_bytes\": %ld, "
      "\"rss_before_bytes\": %ld, \"rss_with_inputs_bytes\": %ld, \"io_bytes\": %lld, \"seconds\": %.6g, \"loss\": "
      "%.9g}\n",
      type, static_cast<long long>(n), static_cast<long long>(d), after, before, inputs,
      static_cast<long long>(4 * n * d * static_cast<cellkit::index_t>(sizeof(T))), seconds, static_cast<double>(loss));
  return 0;
}

}  // namespace

BENCHMARK(BM_info_nce<float>)->Apply(grid)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_info_nce_value<float>)->Apply(grid)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_info_nce<double>)
    ->ArgNames({"n", "d", "threads"})
    ->Args({4096, 128, cellkit_bench::bench_threads()})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "--peak-memory") == 0) {
    const auto n = static_cast<cellkit::index_t>(std::atoll(argv[2]));
    const auto d = static_cast<cellkit::index_t>(argc >= 4 ? std::atoll(argv[3]) : 128);
    const bool use_double = argc >= 5 && std::strcmp(argv[4], "double") == 0;
    return use_double ? peak_memory<double>(n, d, "double") : peak_memory<float>(n, d, "float");
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
