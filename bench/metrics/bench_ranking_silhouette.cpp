// cellkit::metrics ranking (roc_auc, average_precision) and silhouette_score.
//
// Ranking: n binary labels (int32, P(1) = 0.3) and scores uniform in [0, 1) plus 0.5 for positives
// (distinct continuous values: the sort does all the work), float or double.
//   BM_roc_auc<T>/n:N/threads:P, BM_average_precision<T>/n:N/threads:P, n in {1e5, 1e7}.
// Silhouette: N points in d = 50 dimensions from 10 Gaussian blobs (centres N(0, 2^2), unit
// spread), labels 0..9, float or double; Euclidean, every pair.
//   BM_silhouette_score<T>/n:N/d:50/k:10/threads:P, n in {5000, 50000} (50000 only on P threads).
// Threads: 1 = serial{}, P = openmp{P} with P = env CELLKIT_BENCH_THREADS (default 2).
// Peers: bench/peers/ranking_silhouette_sklearn.py (scikit-learn 1.2 on the same shapes and
// distributions, not the same bits).
//
// Counters: items = samples (ranking) or pairs N^2 (silhouette); GFLOP/s (silhouette) counts the
// GEMM part, 2 N^2 d; peak_rss_MiB is the process's high-water mark after the benchmark
// (getrusage: it includes earlier benchmarks of the same run, so filter one benchmark to read it).

#include "support/machine_limits.hpp"

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/metrics/ranking.hpp>
#include <cellkit/metrics/silhouette.hpp>

#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

namespace {

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

template <class T>
struct ranking_data {
  std::vector<std::int32_t> labels;
  std::vector<T> scores;
};

template <class T>
const ranking_data<T>& ranking_inputs(std::int64_t n) {
  static std::map<std::int64_t, std::unique_ptr<ranking_data<T>>> cache;
  auto& slot = cache[n];
  if (!slot) {
    slot = std::make_unique<ranking_data<T>>();
    std::mt19937_64 engine(20261121 + static_cast<std::uint64_t>(n));
    std::bernoulli_distribution positive(0.3);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    slot->labels.resize(static_cast<std::size_t>(n));
    slot->scores.resize(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < slot->labels.size(); ++i) {
      slot->labels[i] = positive(engine) ? 1 : 0;
      slot->scores[i] = static_cast<T>(uniform(engine) + 0.5 * slot->labels[i]);
    }
  }
  return *slot;
}

template <class T>
struct blob_data {
  std::vector<T> points;
  std::vector<std::int32_t> labels;
};

template <class T>
const blob_data<T>& blob_inputs(std::int64_t n, std::int64_t d, int clusters) {
  static std::map<std::int64_t, std::unique_ptr<blob_data<T>>> cache;
  auto& slot = cache[n * 1000 + d];
  if (!slot) {
    slot = std::make_unique<blob_data<T>>();
    std::mt19937_64 engine(7 + static_cast<std::uint64_t>(n));
    std::normal_distribution<double> normal;
    std::uniform_int_distribution<int> cluster(0, clusters - 1);
    std::vector<double> centres(static_cast<std::size_t>(clusters * d));
    for (auto& c : centres) c = 2.0 * normal(engine);
    slot->points.resize(static_cast<std::size_t>(n * d));
    slot->labels.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const int c = cluster(engine);
      slot->labels[static_cast<std::size_t>(i)] = c;
      for (std::int64_t k = 0; k < d; ++k) {
        slot->points[static_cast<std::size_t>(i * d + k)] =
            static_cast<T>(centres[static_cast<std::size_t>(c * d + k)] + normal(engine));
      }
    }
  }
  return *slot;
}

template <class F>
auto with_policy(int threads, F&& f) {
  if (threads == 1) return f(cellkit::serial{});
  return f(cellkit::openmp{threads});
}

template <class T>
void BM_roc_auc(benchmark::State& state) {
  const auto& data = ranking_inputs<T>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  for (auto _ : state) {
    const double auc =
        with_policy(threads, [&](auto policy) { return cellkit::metrics::roc_auc(policy, data.labels, data.scores); });
    benchmark::DoNotOptimize(auc);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

template <class T>
void BM_average_precision(benchmark::State& state) {
  const auto& data = ranking_inputs<T>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  for (auto _ : state) {
    const double ap = with_policy(
        threads, [&](auto policy) { return cellkit::metrics::average_precision(policy, data.labels, data.scores); });
    benchmark::DoNotOptimize(ap);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

template <class T>
void BM_silhouette_score(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const std::int64_t d = state.range(1);
  const int clusters = static_cast<int>(state.range(2));
  const int threads = static_cast<int>(state.range(3));
  const auto& data = blob_inputs<T>(n, d, clusters);
  const cellkit::matrix_view<const T> x(data.points.data(), n, d);
  for (auto _ : state) {
    const double score =
        with_policy(threads, [&](auto policy) { return cellkit::metrics::silhouette_score(policy, x, data.labels); });
    benchmark::DoNotOptimize(score);
  }
  const double pairs = static_cast<double>(n) * static_cast<double>(n);
  state.SetItemsProcessed(state.iterations() * n * n);
  cellkit_bench::report_gflops_only(state, 2.0 * pairs * static_cast<double>(d));
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

void ranking_grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "threads"});
  const int threads = cellkit_bench::bench_threads();
  for (const std::int64_t n : {100'000, 10'000'000}) {
    b->Args({n, 1});
    if (threads != 1) b->Args({n, threads});
  }
}

void silhouette_grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d", "k", "threads"});
  const int threads = cellkit_bench::bench_threads();
  b->Args({5000, 50, 10, 1});
  if (threads != 1) b->Args({5000, 50, 10, threads});
  b->Args({50'000, 50, 10, threads});
}

}  // namespace

BENCHMARK(BM_roc_auc<float>)->Apply(ranking_grid)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_roc_auc<double>)->Apply(ranking_grid)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_average_precision<float>)->Apply(ranking_grid)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_average_precision<double>)->Apply(ranking_grid)->UseRealTime()->Unit(benchmark::kMillisecond);
// One iteration of the 50k case takes seconds: Google Benchmark runs it once or twice.
BENCHMARK(BM_silhouette_score<float>)->Apply(silhouette_grid)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_silhouette_score<double>)->Apply(silhouette_grid)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
