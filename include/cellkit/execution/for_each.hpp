#pragma once
/// @file
/// `for_each_index(policy, n, f)`: calls `f(i)` once for every `i` in [0, n).
///
/// - serial: in increasing order on the calling thread.
/// - openmp: a static schedule over the policy's threads; `f` must be safe to call concurrently for
///   different `i`. Returns when all calls have finished.
/// - cuda: a grid-stride kernel on the policy's stream; `f` must be a functor (or extended lambda)
///   whose call operator is `CELLKIT_HD` / `__device__`. Asynchronous: does not synchronise.
/// Cost: n calls of f. Throws `invalid_argument` if n < 0.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/execution/policy.hpp>

#include <string>

#if CELLKIT_CUDA_COMPILER
#include <cellkit/execution/detail/cuda_launch.cuh>
#endif

namespace cellkit {

template <class Policy, class F>
void for_each_index(const Policy& policy, index_t n, F f) {
  detail::check_policy_and_spaces<Policy>();
  CELLKIT_EXPECTS(n >= 0, "for_each_index", "n", "must be non-negative, got " + std::to_string(n));
  if (n == 0) return;
  if constexpr (std::is_same_v<Policy, serial>) {
    for (index_t i = 0; i < n; ++i) f(i);
  } else if constexpr (std::is_same_v<Policy, openmp>) {
#if CELLKIT_HAS_OPENMP
    const int threads = policy.resolved_threads();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (index_t i = 0; i < n; ++i) f(i);
#else
    (void)policy;
    for (index_t i = 0; i < n; ++i) f(i);
#endif
  } else {
#if CELLKIT_CUDA_COMPILER
    detail::cuda_for_each_index(policy.stream, n, f);
#endif
  }
}

/// `for_each_index` with the best host policy (`default_host_policy()`).
template <class F>
void for_each_index(index_t n, F f) {
  for_each_index(default_host_policy(), n, f);
}

}  // namespace cellkit
