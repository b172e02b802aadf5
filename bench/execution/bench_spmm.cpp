// cellkit::spmm (CSR times dense) on the shared size grid.
//
// A: rows x rows CSR (a kNN-graph-like matrix), exactly 15 nonzeros per row at uniformly random,
// sorted, unique columns; int32 indices; values uniform in [-1, 1). X: rows x cols dense, Y the same.
// Grid: rows in {10k, 100k} x cols in {16, 64, 128} x {float, double} x threads in {1 = serial{},
// N = openmp{N}} (N = env CELLKIT_BENCH_THREADS, default 2).
// Headline: BM_spmm<float>/rows:100000/cols:128/threads:2.
//
// BM_spmm_experiment<T>/rows/cols/distance/threads: NOT the library's kernel but a private
// rewrite of detail::spmm_rows (namespace experiment below: same row split, same summation order,
// bit-identical output, checked) with vector-extension accumulators, compile-time tiles for every
// column count, and, for distance > 0, software prefetch of the X row of nonzero p + distance.
// It measures the changes suggested for include/cellkit/execution/spmm.hpp (see RESULTS.md);
// compare.py matches it to the torch timings of the corresponding BM_spmm case.

#include "support/machine_limits.hpp"

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/spmm.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <utility>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using cellkit::index_t;
constexpr int nnz_per_row = 15;

template <class T>
struct csr_fixture {
  cellkit::index_t rows = 0;
  cellkit::host_buffer<std::int32_t> indptr;
  cellkit::host_buffer<std::int32_t> indices;
  cellkit::host_buffer<T> values;

  cellkit::index_t nnz() const { return indices.size(); }
  cellkit::csr_view<const T, std::int32_t> view() const {
    return {rows, rows, nnz(), indptr.data(), indices.data(), values.data()};
  }
};

/// The rows x rows matrix with 15 sorted unique uniform columns per row (fixed seed; built once per T and rows).
template <class T>
const csr_fixture<T>& csr_matrix(cellkit::index_t rows) {
  static std::map<cellkit::index_t, std::unique_ptr<csr_fixture<T>>> cache;
  auto& slot = cache[rows];
  if (!slot) {
    auto fixture = std::make_unique<csr_fixture<T>>();
    fixture->rows = rows;
    const cellkit::index_t nnz = rows * nnz_per_row;
    fixture->indptr = cellkit::host_buffer<std::int32_t>(rows + 1);
    fixture->indices = cellkit::host_buffer<std::int32_t>(nnz);
    fixture->values = cellkit::host_buffer<T>(nnz);
    std::mt19937_64 engine(20240601 + static_cast<std::uint64_t>(rows));
    std::uniform_int_distribution<std::int32_t> column(0, static_cast<std::int32_t>(rows - 1));
    std::uniform_real_distribution<double> value(-1.0, 1.0);
    std::int32_t row_columns[nnz_per_row];
    for (cellkit::index_t i = 0; i < rows; ++i) {
      int count = 0;
      while (count < nnz_per_row) {
        const std::int32_t c = column(engine);
        if (std::find(row_columns, row_columns + count, c) == row_columns + count) row_columns[count++] = c;
      }
      std::sort(row_columns, row_columns + nnz_per_row);
      for (int p = 0; p < nnz_per_row; ++p) {
        fixture->indices[i * nnz_per_row + p] = row_columns[p];
        fixture->values[i * nnz_per_row + p] = static_cast<T>(value(engine));
      }
      fixture->indptr[i + 1] = static_cast<std::int32_t>((i + 1) * nnz_per_row);
    }
    cellkit::validate(fixture->view());
    slot = std::move(fixture);
  }
  return *slot;
}

/// Bytes a CSR SpMM must touch: A once, one row of X per nonzero, Y once (beta = 0: Y written only).
template <class T>
double spmm_bytes(cellkit::index_t rows, cellkit::index_t nnz, cellkit::index_t cols) {
  const double a_bytes = static_cast<double>(rows + 1) * sizeof(std::int32_t) +
                         static_cast<double>(nnz) * (sizeof(std::int32_t) + sizeof(T));
  const double x_bytes = static_cast<double>(nnz) * static_cast<double>(cols) * sizeof(T);
  const double y_bytes = static_cast<double>(rows) * static_cast<double>(cols) * sizeof(T);
  return a_bytes + x_bytes + y_bytes;
}

template <class T>
void BM_spmm(benchmark::State& state) {
  const cellkit::index_t rows = state.range(0);
  const cellkit::index_t cols = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const auto& a = csr_matrix<T>(rows);
  cellkit::host_buffer<T> x(rows * cols, cellkit::uninitialized);
  cellkit_bench::fill_pattern(x, 7);
  cellkit::host_buffer<T> y(rows * cols);
  const auto a_view = a.view();
  const auto x_view = std::as_const(x).as_matrix(rows, cols);
  const auto y_view = y.as_matrix(rows, cols);

  const double nnz = static_cast<double>(a.nnz());
  cellkit_bench::report_bandwidth(state, spmm_bytes<T>(rows, a.nnz(), cols));
  cellkit_bench::report_gflops_only(state, 2.0 * nnz * static_cast<double>(cols));
  state.counters["nnz"] = nnz;

  auto run = [&] {
    if (threads == 1) {
      cellkit::spmm(cellkit::serial{}, a_view, x_view, y_view, cellkit::spmm_params<T>{});
    } else {
      cellkit::spmm(cellkit::openmp{threads}, a_view, x_view, y_view, cellkit::spmm_params<T>{});
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  };
  run();  // warm-up: page faults of Y, thread pool
  for (auto _ : state) run();
  state.SetItemsProcessed(state.iterations() * a.nnz() * cols);
}

namespace experiment {

// A private rewrite of cellkit::detail::spmm_rows (beta = 0 only), to measure the changes suggested
// in RESULTS.md without touching the library. Same row split, same summation order per column
// (nonzeros in index order), so the output is bit-identical to cellkit::spmm (checked below).
// Differences:
//  1. accumulators are GCC vector-extension values (`vec<W>`), loaded with memcpy: GCC 12 at -O3
//     compiles the library's `T acc[W]` + `#pragma omp simd` loop with the nonzero loop unrolled
//     by two, the second nonzero's X row fetched with vgatherqps and acc kept on the stack;
//  2. the columns are covered by compile-time tiles of 128/64/32/16/8 (float) or 64/32/16/8/4
//     (double) columns and a scalar remainder, so cols = 16 or 64 no longer run the runtime-width
//     tail loop;
//  3. optionally (Distance > 0) the X lines of nonzero p + Distance are prefetched while nonzero p
//     is accumulated (asm prefetcht0 on x86-64: GCC 12 drops or reorders __builtin_prefetch here).

inline void prefetch_line(const char* address) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  asm volatile("prefetcht0 %0" : : "m"(*address));
#else
  __builtin_prefetch(address, 0, 3);
#endif
}

template <class T, int Lanes>
struct vec_of {
  typedef T type __attribute__((vector_size(Lanes * sizeof(T))));
};

template <int Distance, int W, class T, class Index>
inline void row_tile(const Index* __restrict__ indices, const T* __restrict__ values, index_t begin, index_t end,
                     index_t pf_end, const T* __restrict__ x, index_t ldx, index_t col0, T* __restrict__ y_row) {
  constexpr int lanes = std::min(W, 64 / static_cast<int>(sizeof(T)));  // one 64-byte vector at most
  constexpr int vectors = W / lanes;
  using vec = typename vec_of<T, lanes>::type;
  vec acc[vectors];
  for (int j = 0; j < vectors; ++j) acc[j] = vec{};
  for (index_t p = begin; p < end; ++p) {
    if constexpr (Distance > 0) {
      if (p + Distance < pf_end) {
        const char* line = reinterpret_cast<const char*>(x + static_cast<index_t>(indices[p + Distance]) * ldx + col0);
        for (int l = 0; l < (W * static_cast<int>(sizeof(T)) + 63) / 64; ++l) prefetch_line(line + l * 64);
      }
    }
    const T v = values[p];
    const T* x_row = x + static_cast<index_t>(indices[p]) * ldx + col0;
    for (int j = 0; j < vectors; ++j) {
      vec xv;
      std::memcpy(&xv, x_row + j * lanes, sizeof(vec));
      acc[j] += v * xv;
    }
  }
  for (int j = 0; j < vectors; ++j) std::memcpy(y_row + col0 + j * lanes, &acc[j], sizeof(vec));
}

template <class T, class Index>
inline void row_scalar(const Index* indices, const T* values, index_t begin, index_t end, const T* x, index_t ldx,
                       index_t col, T* y_row) {
  T acc = T(0);
  for (index_t p = begin; p < end; ++p) acc += values[p] * x[static_cast<index_t>(indices[p]) * ldx + col];
  y_row[col] = acc;
}

template <int Distance, class T, class Index>
void rows(index_t row_first, index_t row_last, const Index* indptr, const Index* indices, const T* values, const T* x,
          index_t ldx, index_t n, T* y, index_t ldy) {
  constexpr int W = 512 / static_cast<int>(sizeof(T));            // the library's widest tile: 8 x 64 bytes
  const index_t pf_end = static_cast<index_t>(indptr[row_last]);  // stay inside this thread's nonzeros
  for (index_t i = row_first; i < row_last; ++i) {
    const index_t begin = static_cast<index_t>(indptr[i]);
    const index_t end = static_cast<index_t>(indptr[i + 1]);
    T* y_row = y + i * ldy;
    index_t col = 0;
    for (; col + W <= n; col += W) row_tile<Distance, W>(indices, values, begin, end, pf_end, x, ldx, col, y_row);
    if (col + W / 2 <= n) {
      row_tile<Distance, W / 2>(indices, values, begin, end, pf_end, x, ldx, col, y_row);
      col += W / 2;
    }
    if (col + W / 4 <= n) {
      row_tile<Distance, W / 4>(indices, values, begin, end, pf_end, x, ldx, col, y_row);
      col += W / 4;
    }
    if (col + W / 8 <= n) {
      row_tile<Distance, W / 8>(indices, values, begin, end, pf_end, x, ldx, col, y_row);
      col += W / 8;
    }
    if (col + W / 16 <= n) {
      row_tile<Distance, W / 16>(indices, values, begin, end, pf_end, x, ldx, col, y_row);
      col += W / 16;
    }
    for (; col < n; ++col) row_scalar(indices, values, begin, end, x, ldx, col, y_row);
  }
}

template <int Distance, class T>
void spmm(int threads, cellkit::csr_view<const T, std::int32_t> a, cellkit::matrix_view<const T> x,
          cellkit::matrix_view<T> y) {
  auto run_part = [&](int part, int parts) {
    const index_t first = cellkit::detail::balanced_row_split(a.indptr(), a.rows(), part, parts);
    const index_t last = cellkit::detail::balanced_row_split(a.indptr(), a.rows(), part + 1, parts);
    rows<Distance>(first, last, a.indptr(), a.indices(), a.values(), x.data(), x.stride(), x.cols(), y.data(),
                   y.stride());
  };
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  run_part(omp_get_thread_num(), omp_get_num_threads());
#else
  (void)threads;
  run_part(0, 1);
#endif
}

}  // namespace experiment

template <class T>
void BM_spmm_experiment(benchmark::State& state) {
  const cellkit::index_t rows = state.range(0);
  const cellkit::index_t cols = state.range(1);
  const int distance = static_cast<int>(state.range(2));
  const int threads = static_cast<int>(state.range(3));
  const auto& a = csr_matrix<T>(rows);
  cellkit::host_buffer<T> x(rows * cols, cellkit::uninitialized);
  cellkit_bench::fill_pattern(x, 7);
  cellkit::host_buffer<T> y(rows * cols), y_library(rows * cols);
  const auto x_view = std::as_const(x).as_matrix(rows, cols);
  auto run = [&] {
    switch (distance) {
      case 0:
        experiment::spmm<0>(threads, a.view(), x_view, y.as_matrix(rows, cols));
        break;
      case 16:
        experiment::spmm<16>(threads, a.view(), x_view, y.as_matrix(rows, cols));
        break;
      default:
        experiment::spmm<8>(threads, a.view(), x_view, y.as_matrix(rows, cols));
        break;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  };
  run();
  cellkit::spmm(cellkit::serial{}, a.view(), x_view, y_library.as_matrix(rows, cols), cellkit::spmm_params<T>{});
  if (!std::equal(y.begin(), y.end(), y_library.begin())) {
    state.SkipWithError("experiment::spmm differs from cellkit::spmm");
    return;
  }
  cellkit_bench::report_bandwidth(state, spmm_bytes<T>(rows, a.nnz(), cols));
  cellkit_bench::report_gflops_only(state, 2.0 * static_cast<double>(a.nnz()) * static_cast<double>(cols));
  for (auto _ : state) run();
  state.SetItemsProcessed(state.iterations() * a.nnz() * cols);
}

void spmm_grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "threads"});
  const int threads = cellkit_bench::bench_threads();
  for (const std::int64_t rows : {10'000, 100'000}) {
    for (const std::int64_t cols : {16, 64, 128}) {
      b->Args({rows, cols, 1});
      if (threads != 1) b->Args({rows, cols, threads});
    }
  }
}

void experiment_grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "distance", "threads"});
  const int threads = cellkit_bench::bench_threads();
  for (const std::int64_t cols : {16, 64, 128}) {
    for (const std::int64_t distance : {0, 8}) {
      b->Args({100'000, cols, distance, 1});
      if (threads != 1) b->Args({100'000, cols, distance, threads});
    }
  }
}

}  // namespace

BENCHMARK(BM_spmm<float>)->Apply(spmm_grid)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_spmm<double>)->Apply(spmm_grid)->UseRealTime()->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_spmm_experiment<float>)->Apply(experiment_grid)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_spmm_experiment<double>)->Apply(experiment_grid)->UseRealTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
