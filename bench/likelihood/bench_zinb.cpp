// cellkit::likelihood::zinb_nll: the fused value + d_mu + d_theta + d_pi pass of the ZINB negative
// log-likelihood (scDeepCluster's loss: mean over elements, mean = size factor * decoder output,
// theta per gene, pi a probability), on dense and CSR counts, float and double; and the throughput
// of math::lgamma for comparison.
//
// Data (fixed seed; the distribution of bench/peers/likelihood_torch.py, not the same bits):
// cells x genes = 10000 x 2000; decoder mean m_ij ~ LogNormal(0, 1); size factors s_i ~
// LogNormal(0, 0.3); theta_j ~ LogUniform(0.1, 100); pi_ij ~ U(0.05, 0.6); counts 0 with probability
// 0.9, otherwise 1 + Poisson(s_i m_ij) (90% zeros).
//
// Benchmarks:
// - BM_zinb_nll<T>/LAYOUT/cells:C/genes:G/threads:N: one zinb_nll call writing the loss, d_mu (C x G),
//   d_theta (G, summed over cells) and d_pi (C x G); N = 1 runs serial{}, else openmp{N}
//   (N = env CELLKIT_BENCH_THREADS, default 2). Counter "evals/s" (= items_per_second): elements per
//   second of real time (one element = value + 3 gradients). "CPU" is the process CPU time (all
//   threads), comparable with the peer's "cpu_seconds" on a loaded machine.
// - BM_zinb_nll_value<T>/...: the loss only.
// - BM_lgamma<T>: math::lgamma over 2^20 arguments in (0.1, 1000) (log-uniform), one thread;
//   "evals/s" = lgamma calls per second. One element of the ZINB pass at a zero count needs no lgamma.
// Peer: bench/peers/likelihood_torch.py (the same names; PyTorch forward + backward).

#include "support/machine_limits.hpp"

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/likelihood/zinb.hpp>

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

namespace {

namespace lk = cellkit::likelihood;
using cellkit::index_t;

template <class T>
struct zinb_data {
  index_t cells = 0, genes = 0;
  cellkit::host_buffer<T> x, m, s, theta, pi;
  cellkit::host_buffer<std::int32_t> indptr, indices;
  cellkit::host_buffer<T> values;
  index_t nnz = 0;
};

template <class T>
const zinb_data<T>& data(index_t cells, index_t genes) {
  static std::map<std::pair<index_t, index_t>, std::unique_ptr<zinb_data<T>>> cache;
  auto& slot = cache[{cells, genes}];
  if (!slot) {
    auto d = std::make_unique<zinb_data<T>>();
    d->cells = cells;
    d->genes = genes;
    const index_t n = cells * genes;
    d->x = cellkit::host_buffer<T>(n, cellkit::uninitialized);
    d->m = cellkit::host_buffer<T>(n, cellkit::uninitialized);
    d->pi = cellkit::host_buffer<T>(n, cellkit::uninitialized);
    d->s = cellkit::host_buffer<T>(cells, cellkit::uninitialized);
    d->theta = cellkit::host_buffer<T>(genes, cellkit::uninitialized);
    std::mt19937_64 rng(20240607);
    std::lognormal_distribution<double> mean_dist(0.0, 1.0), sf_dist(0.0, 0.3);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (index_t j = 0; j < genes; ++j)
      d->theta[j] = static_cast<T>(std::exp(std::log(0.1) + u(rng) * std::log(1000.0)));
    for (index_t i = 0; i < cells; ++i) d->s[i] = static_cast<T>(sf_dist(rng));
    std::vector<std::int32_t> indptr{0}, indices;
    std::vector<T> values;
    for (index_t i = 0; i < cells; ++i) {
      for (index_t j = 0; j < genes; ++j) {
        const index_t k = i * genes + j;
        d->m[k] = static_cast<T>(mean_dist(rng));
        d->pi[k] = static_cast<T>(0.05 + 0.55 * u(rng));
        T c = 0;
        if (u(rng) < 0.1) {
          std::poisson_distribution<long> pois(static_cast<double>(d->s[i]) * static_cast<double>(d->m[k]));
          c = static_cast<T>(1 + pois(rng));
          indices.push_back(static_cast<std::int32_t>(j));
          values.push_back(c);
        }
        d->x[k] = c;
      }
      indptr.push_back(static_cast<std::int32_t>(indices.size()));
    }
    d->nnz = static_cast<index_t>(values.size());
    d->indptr = cellkit::host_buffer<std::int32_t>(cells + 1, cellkit::uninitialized);
    d->indices = cellkit::host_buffer<std::int32_t>(d->nnz, cellkit::uninitialized);
    d->values = cellkit::host_buffer<T>(d->nnz, cellkit::uninitialized);
    std::copy(indptr.begin(), indptr.end(), d->indptr.begin());
    std::copy(indices.begin(), indices.end(), d->indices.begin());
    std::copy(values.begin(), values.end(), d->values.begin());
    slot = std::move(d);
  }
  return *slot;
}

template <class T, bool Grad>
void run_zinb(benchmark::State& state) {
  const bool csr = state.range(0) != 0;
  const index_t cells = state.range(1), genes = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const zinb_data<T>& d = data<T>(cells, genes);
  const index_t n = cells * genes;
  cellkit::host_buffer<T> d_mu(Grad ? n : 0, cellkit::uninitialized), d_pi(Grad ? n : 0, cellkit::uninitialized),
      d_theta(genes, cellkit::uninitialized);
  const cellkit::matrix_view<const T> x(d.x.data(), cells, genes), m(d.m.data(), cells, genes),
      pi(d.pi.data(), cells, genes);
  const cellkit::csr_view<const T, std::int32_t> counts_csr(cells, genes, d.nnz, d.indptr.data(), d.indices.data(),
                                                            d.values.data());
  const cellkit::vector_view<const T> theta(d.theta.data(), genes), s(d.s.data(), cells);
  lk::nll_outputs<T> out{};
  if constexpr (Grad) {
    out.d_mu = d_mu.as_matrix(cells, genes);
    out.d_theta = d_theta.view();
    out.d_pi = d_pi.as_matrix(cells, genes);
  }
  const lk::nll_options<T> opt{.reduce = lk::reduction::mean, .size_factors = s};
  T loss = 0;
  auto run = [&] {
    if (threads == 1) {
      loss = csr ? lk::zinb_nll(cellkit::serial{}, counts_csr, m, theta, pi, out, opt)
                 : lk::zinb_nll(cellkit::serial{}, x, m, theta, pi, out, opt);
    } else {
      loss = csr ? lk::zinb_nll(cellkit::openmp{threads}, counts_csr, m, theta, pi, out, opt)
                 : lk::zinb_nll(cellkit::openmp{threads}, x, m, theta, pi, out, opt);
    }
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  };
  run();  // warm-up: page faults of the outputs
  for (auto _ : state) run();
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["evals/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * n), benchmark::Counter::kIsRate);
  state.counters["loss"] = static_cast<double>(loss);
  state.counters["nnz_frac"] = static_cast<double>(d.nnz) / static_cast<double>(n);
}

template <class T>
void BM_zinb_nll(benchmark::State& state) {
  run_zinb<T, true>(state);
}
template <class T>
void BM_zinb_nll_value(benchmark::State& state) {
  run_zinb<T, false>(state);
}

template <class T>
void BM_lgamma(benchmark::State& state) {
  const index_t n = index_t{1} << 20;
  std::vector<T> a(static_cast<std::size_t>(n));
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(std::log(0.1), std::log(1000.0));
  for (auto& v : a) v = static_cast<T>(std::exp(u(rng)));
  for (auto _ : state) {
    T acc = 0;
    for (const T v : a) acc += cellkit::math::lgamma(v);
    benchmark::DoNotOptimize(acc);
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["evals/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * n), benchmark::Counter::kIsRate);
}

void zinb_args(benchmark::internal::Benchmark* b) {
  const int threads = cellkit_bench::bench_threads();
  b->ArgNames({"csr", "cells", "genes", "threads"});
  for (const int layout : {0, 1}) {
    for (const int t : {1, threads}) {
      b->Args({layout, 10000, 2000, t});
      if (t == threads && threads == 1) break;
    }
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
}

}  // namespace

BENCHMARK_TEMPLATE(BM_zinb_nll, float)->Apply(zinb_args);
BENCHMARK_TEMPLATE(BM_zinb_nll, double)->Apply(zinb_args);
BENCHMARK_TEMPLATE(BM_zinb_nll_value, float)->Apply(zinb_args);
BENCHMARK_TEMPLATE(BM_zinb_nll_value, double)->Apply(zinb_args);
BENCHMARK_TEMPLATE(BM_lgamma, float)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_lgamma, double)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
