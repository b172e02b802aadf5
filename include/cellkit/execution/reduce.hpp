#pragma once
/// @file
/// `transform_reduce(policy, n, init, reduce, transform)`: returns
/// `init ⊕ transform(0) ⊕ transform(1) ⊕ ... ⊕ transform(n-1)` for an associative `reduce` (⊕).
///
/// Host policies compute the same blocked expression tree whatever the thread count: the index range
/// is cut into fixed chunks of `reduce_chunk` indices, each chunk folds 8 interleaved lanes that are
/// combined pairwise, and chunk results are folded in index order. So serial, openmp{1} and
/// openmp{2} return bit-identical floating-point results, and the error grows like
/// O(n / (8 * reduce_chunk) + reduce_chunk / 8) ulps rather than O(n).
/// With `cuda` the reduction runs through CUB's DeviceReduce (deterministic from run to run on the
/// same GPU, but its tree differs from the host's: floating-point results agree to rounding only).
/// The cuda path copies the result to the host and therefore synchronises the stream.
/// Cost: n calls of transform, n - 1 + 1 reduce calls; memory O(n / reduce_chunk) host scratch.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/execution/policy.hpp>

#include <string>
#include <type_traits>
#include <vector>

#if CELLKIT_CUDA_COMPILER
#include <cellkit/execution/detail/cuda_reduce.cuh>
#endif

namespace cellkit {

/// Indices per chunk of the host reduction tree (fixed, so results do not depend on threads).
inline constexpr index_t reduce_chunk = 4096;

/// Binary operations for `transform_reduce`.
struct plus_op {
  template <class T>
  CELLKIT_HD constexpr T operator()(const T& a, const T& b) const {
    return a + b;
  }
};
struct max_op {
  template <class T>
  CELLKIT_HD constexpr T operator()(const T& a, const T& b) const {
    return a < b ? b : a;
  }
};
struct min_op {
  template <class T>
  CELLKIT_HD constexpr T operator()(const T& a, const T& b) const {
    return b < a ? b : a;
  }
};

namespace detail {

/// Folds transform(first .. last) (last - first >= 1) with 8 interleaved lanes combined pairwise.
template <class T, class R, class F>
T reduce_chunk_lanes(index_t first, index_t last, R& reduce, F& transform) {
  constexpr int lanes = 8;
  const index_t length = last - first;
  if (length < 2 * lanes) {
    T acc = static_cast<T>(transform(first));
    for (index_t i = first + 1; i < last; ++i) acc = reduce(acc, static_cast<T>(transform(i)));
    return acc;
  }
  T lane[lanes] = {static_cast<T>(transform(first + 0)), static_cast<T>(transform(first + 1)),
                   static_cast<T>(transform(first + 2)), static_cast<T>(transform(first + 3)),
                   static_cast<T>(transform(first + 4)), static_cast<T>(transform(first + 5)),
                   static_cast<T>(transform(first + 6)), static_cast<T>(transform(first + 7))};
  const index_t full_end = first + (length / lanes) * lanes;
  for (index_t i = first + lanes; i < full_end; i += lanes) {
    for (int l = 0; l < lanes; ++l) lane[l] = reduce(lane[l], static_cast<T>(transform(i + l)));
  }
  for (index_t i = full_end; i < last; ++i)
    lane[i - full_end] = reduce(lane[i - full_end], static_cast<T>(transform(i)));
  return reduce(reduce(reduce(lane[0], lane[1]), reduce(lane[2], lane[3])),
                reduce(reduce(lane[4], lane[5]), reduce(lane[6], lane[7])));
}

}  // namespace detail

template <class Policy, class T, class R, class F>
T transform_reduce(const Policy& policy, index_t n, T init, R reduce, F transform) {
  detail::check_policy_and_spaces<Policy>();
  CELLKIT_EXPECTS(n >= 0, "transform_reduce", "n", "must be non-negative, got " + std::to_string(n));
  if (n == 0) return init;
  if constexpr (is_host_policy_v<Policy>) {
    const index_t chunks = (n + reduce_chunk - 1) / reduce_chunk;
    if (chunks == 1) return reduce(init, detail::reduce_chunk_lanes<T>(0, n, reduce, transform));
    std::vector<T> partial(static_cast<std::size_t>(chunks), init);
    auto fold_chunk = [&](index_t c) {
      const index_t first = c * reduce_chunk;
      const index_t last = first + reduce_chunk < n ? first + reduce_chunk : n;
      partial[static_cast<std::size_t>(c)] = detail::reduce_chunk_lanes<T>(first, last, reduce, transform);
    };
    if constexpr (std::is_same_v<Policy, openmp> && CELLKIT_HAS_OPENMP) {
      [[maybe_unused]] const int threads = policy.resolved_threads();  // unused when OpenMP is off
#pragma omp parallel for num_threads(threads) schedule(static)
      for (index_t c = 0; c < chunks; ++c) fold_chunk(c);
    } else {
      (void)policy;
      for (index_t c = 0; c < chunks; ++c) fold_chunk(c);
    }
    T acc = init;
    for (const T& p : partial) acc = reduce(acc, p);
    return acc;
  } else {
#if CELLKIT_CUDA_COMPILER
    return detail::cuda_transform_reduce(policy.stream, n, init, reduce, transform);
#else
    return init;
#endif
  }
}

/// `transform_reduce` with the best host policy.
template <class T, class R, class F>
T transform_reduce(index_t n, T init, R reduce, F transform) {
  return transform_reduce(default_host_policy(), n, init, reduce, transform);
}

}  // namespace cellkit
