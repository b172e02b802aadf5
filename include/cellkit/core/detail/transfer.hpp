#pragma once
/// @file
/// Moving small arrays between the host and a policy's memory space, and a sum in double, for the
/// portable (every-policy) evaluations (internal).

#include <cellkit/core/config.hpp>
#include <cellkit/core/copy.hpp>
#include <cellkit/core/detail/scratch.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>

#include <type_traits>
#include <vector>

namespace cellkit::detail {

/// Sum of v[0 .. n) in double, through the policy's reduction (device: CUB; synchronises).
template <class T>
struct widen_fn {
  const T* v;
  CELLKIT_HD double operator()(index_t i) const { return static_cast<double>(v[i]); }
};

template <class Policy, class T>
double portable_sum(const Policy& policy, const T* v, index_t n) {
  return transform_reduce(policy, n, 0.0, plus_op{}, widen_fn<T>{v});
}

/// A copy of the host vector `values` in Space (scratch of the policy's memory). Device: a copy
/// from pageable memory, which returns once `values` has been read (it may then be freed).
template <class Space, class Policy, class U>
auto upload(const Policy& policy, const std::vector<U>& values) {
  const auto n = static_cast<index_t>(values.size());
  auto out = make_scratch<U, Space>(n);
  copy(policy, vector_view<const U>(values.data(), n), vector_view<U, Space>(out.data(), n));
  return out;
}

/// The elements of a view in any space, on the host (device: copied back; synchronises).
template <class Policy, class U, class Space>
std::vector<std::remove_const_t<U>> download(const Policy& policy, vector_view<U, Space> values) {
  std::vector<std::remove_const_t<U>> out(static_cast<std::size_t>(values.size()));
  copy(policy, values, vector_view<std::remove_const_t<U>>(out.data(), values.size()));
  synchronize(policy);
  return out;
}

}  // namespace cellkit::detail
