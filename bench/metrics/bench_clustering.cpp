// cellkit::metrics clustering scores: contingency pass, ARI, NMI, homogeneity/completeness/V, AMI,
// and the assignment solver behind clustering accuracy.
//
// Labels (int32): labels_true uniform over C classes; labels_pred = a fixed permutation of the true
// class with probability 0.7, else uniform over C clusters (a realistic, partly correct clustering).
//   BM_contingency_table/labels:N/classes:C/threads:P
//   BM_adjusted_rand_index/labels:N/classes:C/threads:P
//   BM_normalized_mutual_info/labels:N/classes:C/threads:P
//   BM_homogeneity_completeness_v/labels:N/classes:C/threads:P
//     N = 1e7, C = 50 (the headline shapes; the table is 50 x 50);
//   BM_adjusted_mutual_info/labels:N/classes:C/threads:P
//     N = 1e6, C = 2000 (a 2000 x 2000 table); also .../sizes:zipf: class and cluster sizes
//     proportional to 1/rank^1.1, so the row and column sums take ~1000 distinct values;
//   BM_linear_sum_assignment/n:K/threads:1: K x K costs uniform in [0, 1), K = 1000.
// Threads: 1 = serial{}, P = openmp{P} with P = env CELLKIT_BENCH_THREADS (default 2).
// Peers: bench/peers/metrics_sklearn.py (scikit-learn 1.2 / SciPy 1.10 on the same shapes and
// distributions, not the same bits).
//
// Counters: items = labels (cost-matrix entries for the assignment); bytes = the label bytes read
// once (2 x 4 x N), so "GB/s" and "frac_triad" (support/machine_limits.hpp) say how close the
// contingency pass is to streaming the labels at the machine's triad bandwidth.

#include "support/machine_limits.hpp"

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/metrics/accuracy.hpp>
#include <cellkit/metrics/contingency.hpp>
#include <cellkit/metrics/information.hpp>
#include <cellkit/metrics/pair_counting.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using cellkit::index_t;

struct labelings {
  std::vector<std::int32_t> truth;
  std::vector<std::int32_t> predicted;
};

inline std::uint64_t split_mix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// Draws a class from cumulative weights (zipf) or uniformly.
struct class_sampler {
  std::vector<double> cumulative;  // empty: uniform
  std::int32_t classes;
  std::int32_t operator()(std::uint64_t& state) const {
    const double u = static_cast<double>(split_mix(state) >> 11) * 0x1p-53;
    if (cumulative.empty()) return static_cast<std::int32_t>(u * classes);
    return static_cast<std::int32_t>(std::upper_bound(cumulative.begin(), cumulative.end(), u * cumulative.back()) -
                                     cumulative.begin());
  }
};

class_sampler make_sampler(std::int32_t classes, bool zipf) {
  class_sampler s{{}, classes};
  if (zipf) {
    double sum = 0;
    for (std::int32_t k = 1; k <= classes; ++k) s.cumulative.push_back(sum += std::pow(k, -1.1));
  }
  return s;
}

const labelings& labels_of(index_t n, std::int32_t classes, bool zipf) {
  static std::map<std::tuple<index_t, std::int32_t, bool>, std::unique_ptr<labelings>> cache;
  auto& slot = cache[{n, classes, zipf}];
  if (!slot) {
    slot = std::make_unique<labelings>();
    std::uint64_t state = 20240601 + static_cast<std::uint64_t>(n) + static_cast<std::uint64_t>(classes);
    std::vector<std::int32_t> permutation(static_cast<std::size_t>(classes));
    std::iota(permutation.begin(), permutation.end(), 0);
    for (std::size_t i = permutation.size(); i > 1; --i)
      std::swap(permutation[i - 1], permutation[split_mix(state) % i]);
    const class_sampler sampler = make_sampler(classes, zipf);
    slot->truth.resize(static_cast<std::size_t>(n));
    slot->predicted.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      const std::int32_t t = sampler(state);
      slot->truth[static_cast<std::size_t>(i)] = t;
      slot->predicted[static_cast<std::size_t>(i)] =
          (split_mix(state) % 10 < 7) ? permutation[static_cast<std::size_t>(t)] : sampler(state);
    }
  }
  return *slot;
}

cellkit::openmp policy_for(int threads) { return cellkit::openmp{threads}; }

template <class Metric>
void run_label_metric(benchmark::State& state, Metric metric, bool zipf = false) {
  const index_t n = state.range(0);
  const auto classes = static_cast<std::int32_t>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  const labelings& data = labels_of(n, classes, zipf);
  const double label_bytes = 2.0 * sizeof(std::int32_t) * static_cast<double>(n);
  cellkit_bench::report_bandwidth(state, label_bytes);
  for (auto _ : state) {
    if (threads == 1) {
      benchmark::DoNotOptimize(metric(cellkit::serial{}, data.truth, data.predicted));
    } else {
      benchmark::DoNotOptimize(metric(policy_for(threads), data.truth, data.predicted));
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(label_bytes));
}

void BM_contingency_table(benchmark::State& state) {
  run_label_metric(state, [](const auto& policy, const auto& t, const auto& p) {
    return cellkit::metrics::contingency_table(policy, t, p).nonzeros();
  });
}
void BM_adjusted_rand_index(benchmark::State& state) {
  run_label_metric(state, [](const auto& policy, const auto& t, const auto& p) {
    return cellkit::metrics::adjusted_rand_index(policy, t, p);
  });
}
void BM_normalized_mutual_info(benchmark::State& state) {
  run_label_metric(state, [](const auto& policy, const auto& t, const auto& p) {
    return cellkit::metrics::normalized_mutual_info(policy, t, p);
  });
}
void BM_homogeneity_completeness_v(benchmark::State& state) {
  run_label_metric(state, [](const auto& policy, const auto& t, const auto& p) {
    return cellkit::metrics::homogeneity_completeness_v_measure(policy, t, p).v_measure;
  });
}
void BM_adjusted_mutual_info(benchmark::State& state) {
  run_label_metric(state, [](const auto& policy, const auto& t, const auto& p) {
    return cellkit::metrics::adjusted_mutual_info(policy, t, p);
  });
}
void BM_adjusted_mutual_info_zipf(benchmark::State& state) {
  run_label_metric(
      state,
      [](const auto& policy, const auto& t, const auto& p) {
        return cellkit::metrics::adjusted_mutual_info(policy, t, p);
      },
      true);
}

void BM_linear_sum_assignment(benchmark::State& state) {
  const index_t k = state.range(0);
  cellkit::host_buffer<double> cost(k * k, cellkit::uninitialized);
  std::uint64_t s = 77;
  for (auto& x : cost) x = static_cast<double>(split_mix(s) >> 11) * 0x1p-53;
  const auto view = std::as_const(cost).as_matrix(k, k);
  for (auto _ : state)
    benchmark::DoNotOptimize(cellkit::metrics::linear_sum_assignment(cellkit::serial{}, view).total_cost);
  state.SetItemsProcessed(state.iterations() * k * k);
}

void label_grid(benchmark::internal::Benchmark* b, index_t n, std::int64_t classes) {
  const int threads = cellkit_bench::bench_threads();
  b->ArgNames({"labels", "classes", "threads"});
  b->Args({n, classes, 1});
  if (threads != 1) b->Args({n, classes, threads});
}

}  // namespace

BENCHMARK(BM_contingency_table)
    ->Apply([](auto* b) { label_grid(b, 10'000'000, 50); }) -> UseRealTime() -> Unit(benchmark::kMillisecond);
BENCHMARK(BM_adjusted_rand_index)
    ->Apply([](auto* b) { label_grid(b, 10'000'000, 50); }) -> UseRealTime() -> Unit(benchmark::kMillisecond);
BENCHMARK(BM_normalized_mutual_info)
    ->Apply([](auto* b) { label_grid(b, 10'000'000, 50); }) -> UseRealTime() -> Unit(benchmark::kMillisecond);
BENCHMARK(BM_homogeneity_completeness_v)
    ->Apply([](auto* b) { label_grid(b, 10'000'000, 50); }) -> UseRealTime() -> Unit(benchmark::kMillisecond);
BENCHMARK(BM_adjusted_mutual_info)
    ->Apply([](auto* b) { label_grid(b, 1'000'000, 2000); }) -> UseRealTime() -> Unit(benchmark::kMillisecond);
BENCHMARK(BM_adjusted_mutual_info_zipf)
    ->Name("BM_adjusted_mutual_info/sizes:zipf")
    ->Apply([](auto* b) { label_grid(b, 1'000'000, 2000); }) -> UseRealTime() -> Unit(benchmark::kMillisecond);
BENCHMARK(BM_linear_sum_assignment)->ArgNames({"n"})->Arg(1000)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
