#pragma once
/// @file
/// `parallel_for(policy, n, f)` over the policy's host threads with a choice of schedule (internal).

#include <cellkit/core/config.hpp>
#include <cellkit/execution/policy.hpp>

#include <type_traits>

namespace cellkit::detail {

/// Calls f(i) for i in [0, n) on the policy's threads. `dynamic` selects schedule(dynamic, 1)
/// (uneven work items); otherwise static. f must not throw.
template <class Policy, class F>
void parallel_for(const Policy& policy, index_t n, F&& f, bool dynamic = false) {
  if (n <= 0) return;
#if CELLKIT_HAS_OPENMP
  if constexpr (std::is_same_v<Policy, openmp>) {
    const int threads = policy.resolved_threads();
    if (threads > 1 && n > 1) {
      if (dynamic) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
        for (index_t i = 0; i < n; ++i) f(i);
      } else {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (index_t i = 0; i < n; ++i) f(i);
      }
      return;
    }
  }
#endif
  (void)policy;
  (void)dynamic;
  for (index_t i = 0; i < n; ++i) f(i);
}

}  // namespace cellkit::detail
