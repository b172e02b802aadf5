// cellkit::nn::activation_forward + activation_backward: the ZINB heads' activations of the model
// examples (mean_activation = clamp(e^x, 1e-5, 1e6), dispersion_activation = clamp(softplus(x),
// 1e-4, 1e4), sigmoid for the dropout probability), plus exp_activation, softplus and elu.
//
// Data (fixed seed): x ~ N(0, 2) (pre-activations of a freshly initialised head, with tails into the
// clamps), dy ~ N(0, 1); rows x cols = 256 x 2000 (one mini-batch through a 2000-gene head).
//
// Benchmarks:
// - BM_activation<T, Act>/rows:R/cols:C/threads:N: activation_forward(x -> y) then
//   activation_backward(x, y, dy -> dx); N = 1 runs serial{}, else openmp{N} (N = env
//   CELLKIT_BENCH_THREADS, default 2). Counter "elems/s" (= items_per_second): elements per second of
//   real time (one element = value + derivative).

#include "support/machine_limits.hpp"

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/nn/activation.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>

namespace {

namespace nn = cellkit::nn;
using cellkit::index_t;

template <class T, class Act, class Policy>
void run(benchmark::State& state, const Policy& policy) {
  const auto rows = static_cast<index_t>(state.range(0));
  const auto cols = static_cast<index_t>(state.range(1));
  const auto n = static_cast<std::size_t>(rows * cols);
  cellkit::host_buffer<T> x(n), y(n), dy(n), dx(n);
  std::mt19937_64 rng(42);
  std::normal_distribution<double> g(0.0, 1.0);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = static_cast<T>(2.0 * g(rng));
    dy[i] = static_cast<T>(g(rng));
  }
  const Act act{};
  auto xm = x.as_matrix(rows, cols);
  auto ym = y.as_matrix(rows, cols);
  auto dym = dy.as_matrix(rows, cols);
  auto dxm = dx.as_matrix(rows, cols);
  for (auto _ : state) {
    nn::activation_forward(policy, act, cellkit::matrix_view<const T>(xm), ym);
    nn::activation_backward(policy, act, cellkit::matrix_view<const T>(xm), cellkit::matrix_view<const T>(ym),
                            cellkit::matrix_view<const T>(dym), dxm);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(n));
  state.counters["elems/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(n), benchmark::Counter::kIsRate);
}

template <class T, class Act>
void BM_activation(benchmark::State& state) {
  const auto threads = static_cast<int>(state.range(2));
  if (threads <= 1) {
    run<T, Act>(state, cellkit::serial{});
  } else {
    run<T, Act>(state, cellkit::openmp{threads});
  }
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "threads"});
  b->Args({256, 2000, 1});
  b->Args({256, 2000, cellkit_bench::bench_threads()});
  b->UseRealTime();
  b->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_activation, float, nn::mean_activation)->Apply(args);
BENCHMARK_TEMPLATE(BM_activation, float, nn::dispersion_activation)->Apply(args);
BENCHMARK_TEMPLATE(BM_activation, float, nn::sigmoid)->Apply(args);
BENCHMARK_TEMPLATE(BM_activation, float, nn::softplus)->Apply(args);
BENCHMARK_TEMPLATE(BM_activation, float, nn::exp_activation)->Apply(args);
BENCHMARK_TEMPLATE(BM_activation, float, nn::elu)->Apply(args);
BENCHMARK_TEMPLATE(BM_activation, double, nn::mean_activation)->Apply(args);
BENCHMARK_TEMPLATE(BM_activation, double, nn::dispersion_activation)->Apply(args);

BENCHMARK_MAIN();
