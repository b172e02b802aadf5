// cellkit::graph TAGCN layer (tagcn_forward + tagcn_backward) and GCN layer on a kNN-like graph.
//
// Graph: n x n, exactly 15 neighbours per row at uniformly random, sorted, unique columns (a kNN
// graph's shape), weights 1, normalised D^-1/2 A D^-1/2 without self-loops (PyG TAGConv's
// normalisation); the graph is not symmetric, so the propagator builds and caches A^T once, outside
// the timed loop (as a training loop would). X: n x f_in, W: (K+1) f_in x f_out, b: f_out, dY:
// n x f_out, all float with fixed-seed values.
// Timed: one forward (hop basis + Y) and one backward (dX, every dW_k, db) per iteration.
// Headline (issue 5): BM_tagcn_forward_backward<float>/n:100000/k:15/f_in:128/f_out:64/hops:3/threads:2,
// against bench/peers/graph_torch.py (the same layer with torch.sparse.mm and autograd).
//
// Counters: GFLOP/s counts the layer's flops: forward 2 K nnz f_in + 2 n (K+1) f_in f_out; backward
// 2 K nnz min(f_in, f_out) + 4 n (K+1) f_in f_out; frac_gemm relates them to the GEMM limit.

#include "support/machine_limits.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <cellkit/core/buffer.hpp>
#include <cellkit/graph/gcn.hpp>
#include <cellkit/graph/normalize.hpp>
#include <cellkit/graph/propagate.hpp>
#include <cellkit/graph/tagcn.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <utility>

namespace {

constexpr int neighbours = 15;

/// The normalised graph's propagator for n nodes (built once per n).
const cellkit::graph::propagator<float>& knn_like_graph(cellkit::index_t n) {
  static std::map<cellkit::index_t, std::unique_ptr<cellkit::graph::propagator<float>>> cache;
  auto& slot = cache[n];
  if (!slot) {
    std::mt19937_64 engine(20240601 + static_cast<std::uint64_t>(n));
    std::uniform_int_distribution<std::int32_t> column(0, static_cast<std::int32_t>(n - 1));
    cellkit::host_buffer<std::int32_t> indptr(n + 1), indices(n * neighbours);
    cellkit::host_buffer<float> values(n * neighbours, 1.0f);
    std::int32_t row[neighbours];
    for (cellkit::index_t i = 0; i < n; ++i) {
      int count = 0;
      while (count < neighbours) {
        const std::int32_t c = column(engine);
        if (c != i && std::find(row, row + count, c) == row + count) row[count++] = c;
      }
      std::sort(row, row + neighbours);
      std::copy(row, row + neighbours, indices.data() + i * neighbours);
      indptr[i + 1] = static_cast<std::int32_t>((i + 1) * neighbours);
    }
    cellkit::graph::csr_graph<float> g(n, std::move(indptr), std::move(indices), std::move(values));
    auto a_hat =
        cellkit::graph::normalize(cellkit::openmp{}, g.view(), {cellkit::graph::normalization::symmetric, 0.0f});
    slot = std::make_unique<cellkit::graph::propagator<float>>(std::move(a_hat));
  }
  return *slot;
}

template <class Policy>
void tagcn_step(const Policy& policy, const cellkit::graph::propagator<float>& op, cellkit::matrix_view<const float> x,
                cellkit::matrix_view<const float> w, cellkit::vector_view<const float> b, cellkit::matrix_view<float> y,
                cellkit::matrix_view<float> hops, cellkit::matrix_view<const float> dy, cellkit::matrix_view<float> dx,
                cellkit::matrix_view<float> dw, cellkit::vector_view<float> db, cellkit::index_t k, bool backward) {
  cellkit::graph::tagcn_forward(policy, op, x, w, b, y, hops, {k});
  if (backward) cellkit::graph::tagcn_backward(policy, op, hops, w, dy, dx, dw, db, {k});
}

void BM_tagcn(benchmark::State& state, bool backward) {
  const cellkit::index_t n = state.range(0);
  const cellkit::index_t f_in = state.range(2);
  const cellkit::index_t f_out = state.range(3);
  const cellkit::index_t k = state.range(4);
  const int threads = static_cast<int>(state.range(5));
  const auto& op = knn_like_graph(n);
  cellkit::host_buffer<float> x(n * f_in, cellkit::uninitialized), w((k + 1) * f_in * f_out, cellkit::uninitialized),
      b(f_out, cellkit::uninitialized), dy(n * f_out, cellkit::uninitialized);
  cellkit_bench::fill_pattern(x, 1);
  cellkit_bench::fill_pattern(w, 2);
  cellkit_bench::fill_pattern(b, 3);
  cellkit_bench::fill_pattern(dy, 4);
  cellkit::host_buffer<float> y(n * f_out), hops(n * (k + 1) * f_in), dx(n * f_in), dw(w.size()), db(f_out);
  auto run = [&] {
    auto args = std::make_tuple(std::as_const(x).as_matrix(n, f_in), std::as_const(w).as_matrix((k + 1) * f_in, f_out),
                                std::as_const(b).view(), y.as_matrix(n, f_out), hops.as_matrix((k + 1) * n, f_in),
                                std::as_const(dy).as_matrix(n, f_out), dx.as_matrix(n, f_in),
                                dw.as_matrix((k + 1) * f_in, f_out), db.view());
    auto call = [&](const auto& policy) {
      std::apply([&](auto... a) { tagcn_step(policy, op, a..., k, backward); }, args);
    };
    if (threads == 1) {
      call(cellkit::serial{});
    } else {
      call(cellkit::openmp{threads});
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  };
  const double nnz = static_cast<double>(op.matrix().nnz());
  const double dense = 2.0 * static_cast<double>(n) * static_cast<double>((k + 1) * f_in * f_out);
  double flops = 2.0 * static_cast<double>(k) * nnz * static_cast<double>(f_in) + dense;
  if (backward) flops += 2.0 * static_cast<double>(k) * nnz * static_cast<double>(std::min(f_in, f_out)) + 2 * dense;
  cellkit_bench::report_flops<float>(state, flops);
  state.counters["nnz"] = nnz;
  run();  // warm-up
  for (auto _ : state) run();
}

void BM_tagcn_forward_backward(benchmark::State& state) { BM_tagcn(state, true); }
void BM_tagcn_forward(benchmark::State& state) { BM_tagcn(state, false); }

void BM_gcn_forward_backward(benchmark::State& state) {
  const cellkit::index_t n = state.range(0);
  const cellkit::index_t f_in = state.range(2);
  const cellkit::index_t f_out = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  const auto& op = knn_like_graph(n);
  cellkit::host_buffer<float> x(n * f_in, cellkit::uninitialized), w(f_in * f_out, cellkit::uninitialized),
      b(f_out, cellkit::uninitialized), dy(n * f_out, cellkit::uninitialized);
  cellkit_bench::fill_pattern(x, 1);
  cellkit_bench::fill_pattern(w, 2);
  cellkit_bench::fill_pattern(b, 3);
  cellkit_bench::fill_pattern(dy, 4);
  cellkit::host_buffer<float> y(n * f_out), dx(n * f_in), dw(w.size()), db(f_out);
  auto call = [&](const auto& policy) {
    cellkit::graph::gcn_forward(policy, op, std::as_const(x).as_matrix(n, f_in),
                                std::as_const(w).as_matrix(f_in, f_out), std::as_const(b).view(),
                                y.as_matrix(n, f_out));
    cellkit::graph::gcn_backward(policy, op, std::as_const(x).as_matrix(n, f_in),
                                 std::as_const(w).as_matrix(f_in, f_out), std::as_const(dy).as_matrix(n, f_out),
                                 dx.as_matrix(n, f_in), dw.as_matrix(f_in, f_out), db.view());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  };
  auto run = [&] {
    if (threads == 1) {
      call(cellkit::serial{});
    } else {
      call(cellkit::openmp{threads});
    }
  };
  run();
  for (auto _ : state) run();
}

void tagcn_grid(benchmark::internal::Benchmark* b) {
  const int threads = cellkit_bench::bench_threads();
  b->ArgNames({"n", "k", "f_in", "f_out", "hops", "threads"});
  for (cellkit::index_t n : {10'000, 100'000}) {
    b->Args({n, neighbours, 128, 64, 3, 1});
    if (threads != 1) b->Args({n, neighbours, 128, 64, 3, threads});
  }
}

void gcn_grid(benchmark::internal::Benchmark* b) {
  const int threads = cellkit_bench::bench_threads();
  b->ArgNames({"n", "k", "f_in", "f_out", "threads"});
  b->Args({100'000, neighbours, 128, 64, threads});
}

}  // namespace

BENCHMARK(BM_tagcn_forward_backward)
    ->Name("BM_tagcn_forward_backward<float>")
    ->Apply(tagcn_grid)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_tagcn_forward)
    ->Name("BM_tagcn_forward<float>")
    ->Apply(tagcn_grid)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gcn_forward_backward)
    ->Name("BM_gcn_forward_backward<float>")
    ->Apply(gcn_grid)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
