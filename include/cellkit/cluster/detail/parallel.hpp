#pragma once
/// @file
/// Internal helpers of the cluster heads: a parallel loop over fixed blocks (exceptions captured
/// and rethrown on the calling thread), finiteness checks that name the argument and element, and
/// the vectorisation pragma.
///
/// Determinism: every head cuts its rows into blocks whose size depends only on the problem shape,
/// computes each block on one thread (serial GEMM inside), keeps per-block partial sums and merges
/// them in block order. Which thread runs a block therefore never changes a bit of the result.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <sstream>
#include <string>
#include <type_traits>

#if CELLKIT_HAS_OPENMP
#include <omp.h>
#endif

/// `#pragma omp simd` where OpenMP is enabled and the compiler is GCC: it lets GCC vectorise
/// floating-point reductions without -ffast-math (the lane order is fixed by the binary, not by the
/// thread count). Not used with clang, which reports every loop it then fails to vectorise (e.g.
/// under sanitizers) as a -Wpass-failed warning, an error with -Werror.
#if CELLKIT_HAS_OPENMP && defined(__GNUC__) && !defined(__clang__)
#define CELLKIT_CLUSTER_STRINGIFY(x) #x
#define CELLKIT_CLUSTER_SIMD _Pragma("omp simd")
#define CELLKIT_CLUSTER_SIMD_SUM(var) _Pragma(CELLKIT_CLUSTER_STRINGIFY(omp simd reduction(+ : var)))
#define CELLKIT_CLUSTER_SIMD_MAX(var) _Pragma(CELLKIT_CLUSTER_STRINGIFY(omp simd reduction(max : var)))
#define CELLKIT_CLUSTER_SIMD_MIN(var) _Pragma(CELLKIT_CLUSTER_STRINGIFY(omp simd reduction(min : var)))
#else
#define CELLKIT_CLUSTER_SIMD
#define CELLKIT_CLUSTER_SIMD_SUM(var)
#define CELLKIT_CLUSTER_SIMD_MAX(var)
#define CELLKIT_CLUSTER_SIMD_MIN(var)
#endif

namespace cellkit::cluster::detail {

using cellkit::detail::host_threads;

/// Below this many element operations per pass, a parallel region costs more than it saves (and
/// on a loaded machine, waking threads every iteration can cost milliseconds): run on one thread.
/// Results do not change (blocks and merge order never depend on the thread count).
inline constexpr double parallel_work_threshold = 65536.0;

/// `threads`, or 1 when a pass of `work` element operations is too small to share.
inline int effective_threads(int threads, double work) { return work < parallel_work_threshold ? 1 : threads; }

/// The OpenMP thread number inside `parallel_blocks` (0 outside a parallel region or without OpenMP).
inline int thread_index() {
#if CELLKIT_HAS_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// Calls `body(thread, block)` for every block in [0, blocks) on `threads` threads (dynamic schedule,
/// one block at a time); `thread` in [0, threads) indexes per-thread scratch. The first exception
/// thrown by a body is rethrown after the loop; later blocks are skipped once one has failed.
template <class Body>
void parallel_blocks(int threads, index_t blocks, Body&& body) {
  if (blocks <= 0) return;
#if CELLKIT_HAS_OPENMP
  if (threads > 1 && blocks > 1) {
    std::exception_ptr failure;
    std::atomic<bool> failed{false};
    std::mutex failure_mutex;
#pragma omp parallel num_threads(threads)
    {
      const int thread = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
      for (index_t b = 0; b < blocks; ++b) {
        if (failed.load(std::memory_order_relaxed)) continue;
        try {
          body(thread, b);
        } catch (...) {
          std::lock_guard<std::mutex> lock(failure_mutex);
          if (!failure) failure = std::current_exception();
          failed.store(true, std::memory_order_relaxed);
        }
      }
    }
    if (failure) std::rethrow_exception(failure);
    return;
  }
#endif
  (void)threads;
  for (index_t b = 0; b < blocks; ++b) body(0, b);
}

/// "NaN", "inf", "-inf" or the shortest decimal of a value, for messages.
template <class T>
std::string value_text(T v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream out;
  out.precision(std::numeric_limits<T>::max_digits10);
  out << v;
  return out.str();
}

/// Throws `invalid_argument` naming `argument` and the first non-finite element of `m`:
/// "<function>: invalid argument '<argument>': <argument>(i, j) is NaN: every value must be finite".
template <class T>
void expect_all_finite(matrix_view<const T> m, const char* function, const char* argument) {
  for (index_t i = 0; i < m.rows(); ++i) {
    const T* row = m.row_data(i);
    bool ok = true;
    for (index_t j = 0; j < m.cols(); ++j) ok &= std::isfinite(row[j]);
    if (!ok) {
      for (index_t j = 0; j < m.cols(); ++j) {
        CELLKIT_EXPECTS(std::isfinite(row[j]), function, argument,
                        std::string(argument) + "(" + std::to_string(i) + ", " + std::to_string(j) + ") is " +
                            value_text(row[j]) + ": every value must be finite");
      }
    }
  }
}

/// Throws `invalid_argument` naming `argument` and the first element of `v` that is negative or not finite.
template <class T>
void expect_finite_non_negative(vector_view<const T> v, const char* function, const char* argument) {
  for (index_t i = 0; i < v.size(); ++i) {
    CELLKIT_EXPECTS(std::isfinite(v[i]) && v[i] >= T(0), function, argument,
                    std::string(argument) + "[" + std::to_string(i) + "] is " + value_text(v[i]) +
                        ": every value must be finite and >= 0");
  }
}

}  // namespace cellkit::cluster::detail
