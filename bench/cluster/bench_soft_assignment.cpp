// cellkit::cluster soft assignment with openmp{N} (N = env CELLKIT_BENCH_THREADS, default 2).
//
//   BM_student_t_loss<T>/n/d/k/threads   one DEC training step's clustering head: q (Student-t,
//                                        alpha = 1), p = target(q) (detached), KL(P || Q) batchmean,
//                                        dL/dz and dL/dmu (student_t_loss with q, grad_z, grad_mu)
//   BM_student_t_assign<T>/n/d/k/threads q alone
// Peer: bench/peers/cluster_peers.py times PyTorch forward + backward of the same computation
// (the usual DEC code: broadcast distances, pow, normalise, target, F.kl_div, .backward()).
// Counters: GFLOP/s of the GEMM part (6 N K d for the loss: z mu^T, W mu, W^T z; 2 N K d for
// assign) and frac_gemm against the large square GEMM (support/machine_limits.hpp); the rest of
// the time is the element-wise work (one log1p and one exp per entry).

#include "support/machine_limits.hpp"

#include <cellkit/cluster/soft_assignment.hpp>
#include <cellkit/core/buffer.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <utility>

namespace {

template <class T>
void make_problem(cellkit::host_buffer<T>& z, cellkit::host_buffer<T>& mu, std::int64_t n, std::int64_t d,
                  std::int64_t k) {
  cellkit_bench::fill_pattern(mu, 7);
  for (auto& v : mu) v *= T(3);
  cellkit_bench::fill_pattern(z, 8);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t a = 0; a < d; ++a) z.data()[i * d + a] += mu.data()[(i % k) * d + a];
}

template <class T>
void BM_student_t_loss(benchmark::State& state) {
  const std::int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  cellkit::host_buffer<T> z(n * d, cellkit::uninitialized), mu(k * d, cellkit::uninitialized), q(n * k), gz(n * d),
      gmu(k * d);
  make_problem(z, mu, n, d, k);
  const auto policy = cellkit::openmp{threads};
  const auto zv = std::as_const(z).as_matrix(n, d);
  const auto muv = std::as_const(mu).as_matrix(k, d);
  const cellkit::cluster::student_t_loss_outputs<T> outputs{
      .q = q.as_matrix(n, k), .grad_z = gz.as_matrix(n, d), .grad_mu = gmu.as_matrix(k, d)};
  auto run = [&] {
    const auto r = cellkit::cluster::student_t_loss(policy, zv, muv, outputs, {.alpha = T(1)});
    benchmark::DoNotOptimize(r.loss);
    benchmark::ClobberMemory();
  };
  run();  // warm-up
  for (auto _ : state) run();
  cellkit_bench::report_flops<T>(state, 6.0 * double(n) * double(k) * double(d));
}

template <class T>
void BM_student_t_assign(benchmark::State& state) {
  const std::int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  cellkit::host_buffer<T> z(n * d, cellkit::uninitialized), mu(k * d, cellkit::uninitialized), q(n * k);
  make_problem(z, mu, n, d, k);
  const auto policy = cellkit::openmp{threads};
  auto run = [&] {
    cellkit::cluster::student_t_assign(policy, std::as_const(z).as_matrix(n, d), std::as_const(mu).as_matrix(k, d),
                                       q.as_matrix(n, k), T(1));
    benchmark::DoNotOptimize(q.data());
    benchmark::ClobberMemory();
  };
  run();
  for (auto _ : state) run();
  cellkit_bench::report_flops<T>(state, 2.0 * double(n) * double(k) * double(d));
}

void grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d", "k", "threads"});
  b->Args({100'000, 32, 20, cellkit_bench::bench_threads()});
  b->Args({10'000, 32, 20, cellkit_bench::bench_threads()});
}

}  // namespace

BENCHMARK(BM_student_t_loss<float>)->Apply(grid)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_student_t_loss<double>)->Apply(grid)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_student_t_assign<float>)->Apply(grid)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_student_t_assign<double>)->Apply(grid)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
