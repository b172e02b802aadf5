#pragma once
/// @file
/// The machine's limits on the benchmark thread count, measured once per process, and helpers that
/// express a benchmark's rate as a fraction of them.
///
/// - `triad_bytes_per_second()`: a STREAM-like triad `a[i] = b[i] + s * c[i]` over three double
///   arrays of 1 GiB each (together 6.4x the 480 MB L3), first-touched in parallel with the same
///   static schedule as the timed loop; best of 8 repetitions. Bytes are counted the STREAM way:
///   3 x 8 per element (two loads and one store; the write-allocate read of `a` is NOT counted, so
///   the DRAM traffic is really 4/3 of the reported figure).
/// - `gemm_flops_per_second<T>()`: a square `cellkit::gemm` with `openmp{threads}`, n = 2560
///   (2 n^3 flops), best of 3 after a warm-up call.
///
/// Threads: `bench_threads()` = env `CELLKIT_BENCH_THREADS`, default 2. Sizes can be overridden
/// with env `CELLKIT_BENCH_TRIAD_MIB` (per array) and `CELLKIT_BENCH_GEMM_N`; env
/// `CELLKIT_BENCH_QUICK=1` (set by `compare.py --quick`) shrinks both for smoke runs, where the
/// "limits" are then only indicative (the triad arrays fit in L3).
/// Each limit is measured on first use (a function-local static) and printed once to stderr.
///
/// Counters: `report_bandwidth(state, bytes_per_iteration)` adds "GB/s" and "frac_triad";
/// `report_flops(state, flops_per_iteration)` adds "GFLOP/s" and "frac_gemm" (against the GEMM rate
/// of the same element type). Both are Google Benchmark rate counters, so they are divided by the
/// benchmark's own time (real time for benchmarks registered with `UseRealTime()`).

// A known GCC 12 false positive: with -O3 -march=native (AVX-512), the `_mm256_undefined_pd()`
// inside <immintrin.h>, inlined through Eigen's GEMM kernels, trips -Wmaybe-uninitialized, which
// -Werror turns into a build failure. The top-level CMakeLists.txt now passes
// -Wno-maybe-uninitialized to GCC for cellkit's own targets; this keeps the header self-sufficient
// elsewhere. GCC attributes the warning to the intrinsic header, so it is silenced for the headers
// included here only (valid as long as this header is included before anything that pulls in
// <immintrin.h>).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <cellkit/core/buffer.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace cellkit_bench {

namespace detail {
inline long env_long(const char* name, long fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  return (end != text && value > 0) ? value : fallback;
}
inline bool quick_mode() { return env_long("CELLKIT_BENCH_QUICK", 0) != 0; }

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace detail

/// Threads used by the "threads:N" benchmarks and by the limits: env CELLKIT_BENCH_THREADS, default 2.
inline int bench_threads() {
  static const int threads = static_cast<int>(detail::env_long("CELLKIT_BENCH_THREADS", 2));
  return threads;
}

/// `a[i] = b[i] + s * c[i]` with a static schedule on `threads` threads (the STREAM triad).
inline void triad(double* __restrict__ a, const double* __restrict__ b, const double* __restrict__ c, double s,
                  std::int64_t n, int threads) {
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
  for (std::int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
  (void)threads;
}

/// Fills the arrays with the triad's static schedule, so each thread's pages are first touched
/// by the thread that streams them (matters on NUMA machines; harmless elsewhere).
inline void first_touch(double* a, double* b, double* c, std::int64_t n, int threads) {
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
  for (std::int64_t i = 0; i < n; ++i) {
    a[i] = 0.0;
    b[i] = 1.0;
    c[i] = 2.0;
  }
  (void)threads;
}

/// Elements per triad array: 1 GiB of doubles by default (128 MiB in quick mode).
inline std::int64_t triad_elements() {
  const long mib = detail::env_long("CELLKIT_BENCH_TRIAD_MIB", detail::quick_mode() ? 128 : 1024);
  return static_cast<std::int64_t>(mib) * 1024 * 1024 / static_cast<std::int64_t>(sizeof(double));
}

/// Bytes one triad pass is credited with: 3 x 8 per element (STREAM convention, no write-allocate).
inline double triad_bytes(std::int64_t n) { return 3.0 * sizeof(double) * static_cast<double>(n); }

/// Best triad bandwidth on bench_threads() threads, in bytes per second (measured once).
inline double triad_bytes_per_second() {
  static const double rate = [] {
    const int threads = bench_threads();
    const std::int64_t n = triad_elements();
    cellkit::host_buffer<double> a(n, cellkit::uninitialized), b(n, cellkit::uninitialized),
        c(n, cellkit::uninitialized);
    first_touch(a.data(), b.data(), c.data(), n, threads);
    triad(a.data(), b.data(), c.data(), 3.0, n, threads);  // warm-up (TLB, frequency)
    const int repetitions = detail::quick_mode() ? 3 : 8;
    double best = 1e300;
    for (int r = 0; r < repetitions; ++r) {
      const auto start = std::chrono::steady_clock::now();
      triad(a.data(), b.data(), c.data(), 3.0, n, threads);
      benchmark::ClobberMemory();
      best = std::min(best, detail::seconds_since(start));
    }
    benchmark::DoNotOptimize(a.data()[n / 2]);
    const double bytes_per_second = triad_bytes(n) / best;
    std::fprintf(stderr,
                 "[machine_limits] triad: %.2f GB/s on %d threads (3 x %.0f MiB double arrays, best of %d, "
                 "3 x 8 bytes per element, write-allocate not counted)\n",
                 bytes_per_second * 1e-9, threads, static_cast<double>(n) * sizeof(double) / (1024.0 * 1024.0),
                 repetitions);
    return bytes_per_second;
  }();
  return rate;
}

/// Edge of the square GEMM that defines the GEMM limit: 2560 (512 in quick mode).
inline cellkit::index_t gemm_limit_size() {
  return static_cast<cellkit::index_t>(detail::env_long("CELLKIT_BENCH_GEMM_N", detail::quick_mode() ? 512 : 2560));
}

/// Fills a buffer with a deterministic pattern in [-1, 1) (a tiny LCG; the values do not matter
/// to the timing, only that they are finite and not denormal).
template <class T>
void fill_pattern(cellkit::host_buffer<T>& buffer, std::uint64_t seed) {
  std::uint64_t state = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (auto& value : buffer) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    value = static_cast<T>(static_cast<double>(state >> 11) * (2.0 / 9007199254740992.0) - 1.0);
  }
}

/// Best rate of an n x n x n `cellkit::gemm` on openmp{bench_threads()}, in flop/s (measured once per T).
template <class T>
double gemm_flops_per_second() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  static const double rate = [] {
    const int threads = bench_threads();
    const cellkit::index_t n = gemm_limit_size();
    cellkit::host_buffer<T> a(n * n, cellkit::uninitialized), b(n * n, cellkit::uninitialized), c(n * n);
    fill_pattern(a, 1);
    fill_pattern(b, 2);
    const auto policy = cellkit::openmp{threads};
    auto run = [&] {
      cellkit::gemm(policy, std::as_const(a).as_matrix(n, n), std::as_const(b).as_matrix(n, n), c.as_matrix(n, n),
                    cellkit::gemm_params<T>{});
      benchmark::DoNotOptimize(c.data());
      benchmark::ClobberMemory();
    };
    run();  // warm-up: thread pool, packing buffers, page faults of C
    const int repetitions = 3;
    double best = 1e300;
    for (int r = 0; r < repetitions; ++r) {
      const auto start = std::chrono::steady_clock::now();
      run();
      best = std::min(best, detail::seconds_since(start));
    }
    const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
    const double flops_per_second = flops / best;
    std::fprintf(stderr, "[machine_limits] gemm<%s>: %.1f GFLOP/s on %d threads (n = %lld, %s backend, best of %d)\n",
                 std::is_same_v<T, float> ? "float" : "double", flops_per_second * 1e-9, threads,
                 static_cast<long long>(n),
#if defined(CELLKIT_GEMM_BLAS)
                 "openblas",
#else
                 "eigen",
#endif
                 repetitions);
    return flops_per_second;
  }();
  return rate;
}

/// Adds "GB/s" and "frac_triad" (of triad_bytes_per_second()) for `bytes_per_iteration` bytes.
inline void report_bandwidth(benchmark::State& state, double bytes_per_iteration) {
  const double limit = triad_bytes_per_second();
  state.counters["GB/s"] =
      benchmark::Counter(bytes_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["frac_triad"] =
      benchmark::Counter(bytes_per_iteration / limit, benchmark::Counter::kIsIterationInvariantRate);
}

/// Adds "GFLOP/s" and "frac_gemm" (of gemm_flops_per_second<T>()) for `flops_per_iteration` flops.
template <class T>
void report_flops(benchmark::State& state, double flops_per_iteration) {
  const double limit = gemm_flops_per_second<T>();
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["frac_gemm"] =
      benchmark::Counter(flops_per_iteration / limit, benchmark::Counter::kIsIterationInvariantRate);
}

/// "GFLOP/s" alone (no GEMM reference; for benchmarks whose flops are not GEMM-like).
inline void report_gflops_only(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace cellkit_bench
