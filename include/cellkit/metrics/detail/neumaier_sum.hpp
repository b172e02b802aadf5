#pragma once
// Neumaier's compensated summation, and a thread-count independent parallel version on top of
// cellkit::transform_reduce (fixed chunks, fixed combination tree). Used for entropies, mutual
// information and the expected mutual information, whose terms have mixed signs and magnitudes.

#include <cellkit/core/config.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>

#include <cmath>

namespace cellkit::metrics::detail {

/// Running sum with a compensation term: the error is ~eps |sum| + n eps^2 sum |x_i| instead of
/// ~n eps sum |x_i| (Neumaier 1974, the variant of Kahan's algorithm that also handles terms
/// larger than the running sum).
struct neumaier_sum {
  double sum = 0.0;
  double compensation = 0.0;

  void add(double x) {
    const double t = sum + x;
    // The branch picks the operand whose low-order bits were lost in t (exact: Fast2Sum).
    if (std::fabs(sum) >= std::fabs(x)) {
      compensation += (sum - t) + x;
    } else {
      compensation += (x - t) + sum;
    }
    sum = t;
  }
  void add(const neumaier_sum& other) {
    add(other.sum);
    compensation += other.compensation;
  }
  double value() const { return sum + compensation; }
};

struct neumaier_merge {
  neumaier_sum operator()(neumaier_sum a, const neumaier_sum& b) const {
    a.add(b);
    return a;
  }
};

/// The host policy that computes the scalar parts of a metric after the contingency table exists:
/// the policy itself for host policies; the default host policy for `cuda` (the table is on the host).
template <class Policy>
auto host_policy_for(const Policy& policy) {
  if constexpr (is_host_policy_v<Policy>) {
    return policy;
  } else {
    (void)policy;
    return default_host_policy();
  }
}

/// sum_{i < count} term(i), where term(i) returns a neumaier_sum (e.g. the compensated sum of one
/// table row). Chunks and combination order are fixed (transform_reduce's tree), so the result is
/// bit-identical for serial and any OpenMP thread count.
template <class HostPolicy, class Term>
double compensated_sum(const HostPolicy& policy, index_t count, Term term) {
  return transform_reduce(policy, count, neumaier_sum{}, neumaier_merge{}, term).value();
}

}  // namespace cellkit::metrics::detail
