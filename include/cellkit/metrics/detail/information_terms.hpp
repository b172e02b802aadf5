#pragma once
// Term-level kernels of the information-theoretic metrics: entropies of class sizes, mutual
// information of a table, and the expected mutual information under the permutation model
// (hypergeometric cells), each evaluated so that every term keeps full relative precision.

#include <cellkit/core/config.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/metrics/contingency.hpp>
#include <cellkit/metrics/detail/contingency_count.hpp>
#include <cellkit/metrics/detail/exact_integer.hpp>
#include <cellkit/metrics/detail/neumaier_sum.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

namespace cellkit::metrics::detail {

/// log1p(x) for x > -1, through the cheaper log(1 + x) where 1 + x >= 2 (rounding 1 + x then costs
/// at most eps / log 2 relative: ~1.5 ulp, as log1p's own error).
inline double log_one_plus(double x) { return x >= 1.0 ? std::log(1.0 + x) : std::log1p(x); }

/// log((x1 x2) / (y1 y2)) for positive integers, as log1p((x1 x2 - y1 y2) / (y1 y2)) with the
/// difference formed exactly (int64 when the products fit, else int128). Relative error a few ulp
/// also when the ratio is close to 1, where log(x1 x2) - log(y1 y2) would cancel.
inline double log_ratio_of_products(std::int64_t x1, std::int64_t x2, std::int64_t y1, std::int64_t y2) {
  std::int64_t numerator = 0;
  std::int64_t denominator = 0;
  if (!__builtin_mul_overflow(x1, x2, &numerator) && !__builtin_mul_overflow(y1, y2, &denominator)) {
    return log_one_plus(static_cast<double>(numerator - denominator) / static_cast<double>(denominator));
  }
  const int128_t wide_numerator = static_cast<int128_t>(x1) * x2;
  const int128_t wide_denominator = static_cast<int128_t>(y1) * y2;
  return log_one_plus(static_cast<double>(wide_numerator - wide_denominator) / static_cast<double>(wide_denominator));
}

/// H = sum_i (s_i / n) log(n / s_i) over positive class sizes s_i with total n, each term as
/// (s_i / n) log1p((n - s_i) / s_i): all terms are non-negative and exact to a few ulp, so H has a
/// small relative error even when one class holds nearly everything (where log n - sum s log s / n
/// cancels). 0 for a single class. Compensated, fixed-order, thread-count independent.
template <class HostPolicy>
double entropy_of_sizes(const HostPolicy& policy, std::span<const std::int64_t> sizes, std::int64_t n) {
  if (sizes.size() <= 1) return 0.0;
  const double total = static_cast<double>(n);
  return compensated_sum(policy, static_cast<index_t>(sizes.size()), [&](index_t i) {
    const std::int64_t s = sizes[static_cast<std::size_t>(i)];
    neumaier_sum term;
    term.add(static_cast<double>(s) / total * log_one_plus(static_cast<double>(n - s) / static_cast<double>(s)));
    return term;
  });
}

/// MI = sum_ij (n_ij / n) log(n n_ij / (a_i b_j)) over the nonzero cells, row by row, each row
/// compensated, rows combined in a fixed tree. Clipped at 0 (as scikit-learn); 0 when the table has
/// one row or one column (scikit-learn's rule; the sum is 0 there anyway).
template <class HostPolicy, class R, class C>
double mutual_info_of_table(const HostPolicy& policy, const contingency<R, C>& table) {
  if (table.rows() <= 1 || table.cols() <= 1) return 0.0;
  const std::int64_t n = table.total();
  const double total = static_cast<double>(n);
  const auto row_sums = table.row_sums();
  const auto col_sums = table.col_sums();
  const double mi = compensated_sum(policy, table.rows(), [&](index_t i) {
    neumaier_sum row;
    const std::int64_t a = row_sums[static_cast<std::size_t>(i)];
    table.for_each_nonzero_in_row(i, [&](index_t j, std::int64_t c) {
      row.add(static_cast<double>(c) / total * log_ratio_of_products(n, c, a, col_sums[static_cast<std::size_t>(j)]));
    });
    return row;
  });
  return mi > 0.0 ? mi : 0.0;
}

/// Distinct values of positive sizes with their multiplicities, ascending.
struct size_group {
  std::int64_t size;
  std::int64_t multiplicity;
};

inline std::vector<size_group> group_sizes(std::span<const std::int64_t> sizes) {
  std::vector<std::int64_t> sorted(sizes.begin(), sizes.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<size_group> groups;
  for (std::int64_t s : sorted) {
    if (!groups.empty() && groups.back().size == s) {
      ++groups.back().multiplicity;
    } else {
      groups.push_back({s, 1});
    }
  }
  return groups;
}

/// phi(x) = (1 + x) log1p(x) - x >= 0 for x >= -1, to a few ulp relative, also for small |x| where
/// phi ~ x^2 / 2 and the formula cancels: for |x| < 1/2, with u = x / (2 + x) (so log1p(x) =
/// 2 atanh(u)), phi = x^2 / (2 + x) + 2 (1 + x) u^3 sum_j u^(2j) / (2j + 3), |u| <= 1/3, 18 terms.
inline double one_plus_x_log1p_minus_x(double x) {
  if (x == -1.0) return 1.0;
  if (std::fabs(x) < 0.5) {
    static constexpr double inverse_odd[18] = {1.0 / 3,  1.0 / 5,  1.0 / 7,  1.0 / 9,  1.0 / 11, 1.0 / 13,
                                               1.0 / 15, 1.0 / 17, 1.0 / 19, 1.0 / 21, 1.0 / 23, 1.0 / 25,
                                               1.0 / 27, 1.0 / 29, 1.0 / 31, 1.0 / 33, 1.0 / 35, 1.0 / 37};
    const double u = x / (2.0 + x);
    const double u2 = u * u;
    double series = 0.0;
    for (int j = 17; j >= 0; --j) series = series * u2 + inverse_odd[j];
    return x * x / (2.0 + x) + 2.0 * (1.0 + x) * u * u2 * series;
  }
  return (1.0 + x) * log_one_plus(x) - x;
}

/// (n k - a b) / (a b) with the numerator formed exactly (int64 when it fits, else int128).
inline double relative_excess(std::int64_t n, std::int64_t k, std::int64_t a, std::int64_t b) {
  std::int64_t nk = 0;
  std::int64_t ab = 0;
  if (!__builtin_mul_overflow(n, k, &nk) && !__builtin_mul_overflow(a, b, &ab)) {
    return static_cast<double>(nk - ab) / static_cast<double>(ab);
  }
  const int128_t wide_ab = static_cast<int128_t>(a) * b;
  return static_cast<double>(static_cast<int128_t>(n) * k - wide_ab) / static_cast<double>(wide_ab);
}

/// Truncation of the pmf sums. Walking outward from the mode, a direction stops once
/// - the weight is below 2^-64 of the mode's (the mass, >= 1, then misses < 2^-63 of itself),
/// - the step ratio w_{k+1} / w_k (or w_{k-1} / w_k) is below 1/8: the pmf is log-concave, so all
///   further ratios are smaller, while phi grows by less than a factor 4 per step there; the
///   remaining terms then sum to less than twice the current one,
/// - and the current term w phi is below 2^-64 of the weighted sum so far.
/// A hard floor of 2^-110 also stops the walk (every further term is then negligible whatever
/// phi does).
inline constexpr double emi_tail_weight = 0x1p-64;
inline constexpr double emi_tail_ratio = 0.125;
inline constexpr double emi_tail_floor = 0x1p-110;

/// E[(k / n) log(n k / (a b))] for k ~ Hypergeometric(n, a, b) (population n, a successes, b draws):
/// the expected contribution of one (row of size a, column of size b) cell to the MI under random
/// relabelling, by direct summation.
/// - Terms without cancellation: with mu = E k = a b / n exactly, E[k log(k / mu)] =
///   E[k log(k / mu) - (k - mu)] = mu E[phi(k / mu - 1)] with phi(x) = (1 + x) log1p(x) - x >= 0, so
///   every term is non-negative (the plain terms k log(k / mu) cancel to ~sigma / mu of their size:
///   a 1e-11 relative error at sigma = 7000 becomes ~1e-15).
/// - The pmf is evaluated as weights relative to the mode, w_m = 1, by the ratio recurrence
///   w_{k+1} / w_k = (a - k)(b - k) / ((k + 1)(n - a - b + k + 1)) in both directions, and
///   normalised by their own sum: no lgamma(n), whose absolute error (~eps n log n: ~1e-9 for
///   n = 1e6) would become the relative error of every term (as in scikit-learn).
/// Cost: ~12 sigma + 3 terms (sigma^2 = Var k <= mu).
inline double expected_cell_information_by_sum(std::int64_t a, std::int64_t b, std::int64_t n) {
  const std::int64_t lo = std::max<std::int64_t>(0, a + b - n);
  const std::int64_t hi = std::min(a, b);
  // n k and a b fit in int64 for every k of the support (checked once): exact int64 differences.
  std::int64_t n_hi = 0;
  std::int64_t ab = 0;
  const bool fits = !__builtin_mul_overflow(n, hi, &n_hi) && !__builtin_mul_overflow(a, b, &ab);
  const double inverse_ab = fits ? 1.0 / static_cast<double>(ab) : 0.0;
  auto term = [&](std::int64_t k) {
    const double x =
        fits ? static_cast<double>(n * k - ab) * inverse_ab : relative_excess(n, k, a, b);  // (n k - a b) / (a b)
    return one_plus_x_log1p_minus_x(x);
  };
  // The mode of the hypergeometric distribution, floor((a + 1)(b + 1) / (n + 2)), exact in 128 bits.
  const auto mode_wide =
      (static_cast<int128_t>(a) + 1) * (static_cast<int128_t>(b) + 1) / (static_cast<int128_t>(n) + 2);
  const std::int64_t mode = std::clamp(static_cast<std::int64_t>(mode_wide), lo, hi);
  const double da = static_cast<double>(a);
  const double db = static_cast<double>(b);
  const double rest = static_cast<double>(n - a - b);  // may be negative; n - a - b + k >= 0 on the support
  neumaier_sum mass;
  neumaier_sum weighted;
  mass.add(1.0);
  weighted.add(term(mode));
  // Adds the term of k with weight w unless the walk should stop there (see emi_tail_weight).
  auto add_or_stop = [&](std::int64_t k, double w, double ratio) {
    if (w < emi_tail_floor) return false;
    const double contribution = w * term(k);
    if (w < emi_tail_weight && ratio < emi_tail_ratio && contribution < emi_tail_weight * weighted.value()) {
      return false;
    }
    mass.add(w);
    weighted.add(contribution);
    return true;
  };
  double w = 1.0;
  for (std::int64_t k = mode; k < hi;) {
    const double kd = static_cast<double>(k);
    const double ratio = ((da - kd) * (db - kd)) / ((kd + 1.0) * (rest + kd + 1.0));
    w *= ratio;
    if (!add_or_stop(++k, w, ratio)) break;
  }
  w = 1.0;
  for (std::int64_t k = mode; k > lo;) {
    const double kd = static_cast<double>(k);
    const double ratio = (kd * (rest + kd)) / ((da - kd + 1.0) * (db - kd + 1.0));
    w *= ratio;
    if (!add_or_stop(--k, w, ratio)) break;
  }
  // (1 / n) mu E[phi] with mu / n = (a / n)(b / n)
  const double total = static_cast<double>(n);
  return (da / total) * (db / total) * (weighted.value() / mass.value());
}

/// Var k = a b (n - a)(n - b) / (n^2 (n - 1)) for k ~ Hypergeometric(n, a, b) (n >= 2).
inline double hypergeometric_variance(std::int64_t a, std::int64_t b, std::int64_t n) {
  const long double nn = static_cast<long double>(n);
  return static_cast<double>(static_cast<long double>(a) * static_cast<long double>(b) / nn *
                             (static_cast<long double>(n - a) * static_cast<long double>(n - b)) / (nn * (nn - 1)));
}

/// The same expectation from the moments of k, for large variances. With mu = E k = a b / n and
/// g(k) = k log k, E[(k / n) log(k / mu)] = (E g(k) - g(mu)) / n, and Taylor's expansion of g at mu
/// gives E g(k) - g(mu) = m2 / (2 mu) - m3 / (6 mu^2) + m4 / (12 mu^3) - ..., m_j the central
/// moments. For the hypergeometric m2 = sigma^2 <= mu, m3 = sigma^2 (n - 2a)(n - 2b) / (n (n - 2))
/// and m4 = 3 sigma^4 (1 + O(1 / sigma^2)), so the omitted terms are O(1 / mu^2) relative to the
/// first: below 1e-18 when sigma^2 > 2^32 (then mu > 4e9), where summation would need > 8e5 terms.
inline double expected_cell_information_by_moments(std::int64_t a, std::int64_t b, std::int64_t n) {
  const long double nn = static_cast<long double>(n);
  const long double mu = static_cast<long double>(a) * static_cast<long double>(b) / nn;
  const long double m2 = static_cast<long double>(hypergeometric_variance(a, b, n));
  const long double m3 = m2 * (static_cast<long double>(n - a) - static_cast<long double>(a)) *
                         (static_cast<long double>(n - b) - static_cast<long double>(b)) / (nn * (nn - 2));
  const long double m4 = 3 * m2 * m2;
  const long double gap = m2 / (2 * mu) - m3 / (6 * mu * mu) + m4 / (12 * mu * mu * mu);
  return static_cast<double>(gap / nn);
}

/// Variances above this use the moment expansion (see expected_cell_information_by_moments).
inline constexpr double emi_moment_variance = 0x1p32;

/// E[(k / n) log(n k / (a b))] for k ~ Hypergeometric(n, a, b): by summation, or by moments when
/// the variance exceeds 2^32 (huge tables only: n > 1.7e10).
inline double expected_cell_information(std::int64_t a, std::int64_t b, std::int64_t n) {
  if (n > 2 && hypergeometric_variance(a, b, n) > emi_moment_variance)
    return expected_cell_information_by_moments(a, b, n);
  return expected_cell_information_by_sum(a, b, n);
}

template <class Policy, class F>
void for_each_dynamic(const Policy& policy, index_t count, F f) {
  if constexpr (std::is_same_v<Policy, openmp>) {
#if CELLKIT_HAS_OPENMP
    const int threads = policy.resolved_threads();
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (index_t i = 0; i < count; ++i) f(i);
#else
    (void)policy;
    for (index_t i = 0; i < count; ++i) f(i);
#endif
  } else {
    (void)policy;
    for (index_t i = 0; i < count; ++i) f(i);
  }
}

/// EMI = sum_ij E[(n_ij / n) log(n n_ij / (a_i b_j))] (Vinh, Epps and Bailey 2010), the quantity
/// scikit-learn's expected_mutual_information computes. The term depends on (a_i, b_j) only, so it
/// is evaluated once per distinct pair (a, b) and weighted by the multiplicities of a among the row
/// sums and of b among the column sums. Parallel over the distinct a (dynamic schedule); each a's
/// partial sum is compensated over b in ascending order, and partials are combined in ascending a:
/// identical for every thread count. 0 when a side has a single class (as scikit-learn).
template <class HostPolicy>
double expected_mutual_info_of_sizes(const HostPolicy& policy, std::span<const std::int64_t> row_sums,
                                     std::span<const std::int64_t> col_sums, std::int64_t n) {
  if (row_sums.size() <= 1 || col_sums.size() <= 1) return 0.0;
  const std::vector<size_group> rows = group_sizes(row_sums);
  const std::vector<size_group> cols = group_sizes(col_sums);
  std::vector<neumaier_sum> per_row(rows.size());
  auto row_term = [&](index_t r) {
    const size_group& a = rows[static_cast<std::size_t>(r)];
    neumaier_sum sum;
    for (const size_group& b : cols) {
      sum.add(static_cast<double>(b.multiplicity) * expected_cell_information(a.size, b.size, n));
    }
    sum.sum *= static_cast<double>(a.multiplicity);
    sum.compensation *= static_cast<double>(a.multiplicity);
    per_row[static_cast<std::size_t>(r)] = sum;
  };
  // Fewer distinct pairs than this take less time (~1 us each) than opening a parallel region on a
  // busy machine.
  if (rows.size() * cols.size() >= 4096) {
    for_each_dynamic(policy, static_cast<index_t>(rows.size()), row_term);
  } else {
    for (index_t r = 0; r < static_cast<index_t>(rows.size()); ++r) row_term(r);
  }
  neumaier_sum total;
  for (const neumaier_sum& s : per_row) total.add(s);
  return total.value();
}

}  // namespace cellkit::metrics::detail
