#pragma once
/// @file
/// Special functions for host and device code (namespace `cellkit::math`): lgamma, digamma,
/// log_poch (= lgamma(a + x) - lgamma(a) without cancellation), softplus / sigmoid / log_sigmoid,
/// log-sum-exp helpers and a mergeable streaming log-sum-exp accumulator, xlogy / xlog1py.
///
/// Every function is a `CELLKIT_HD` template over `T` = `float` or `double` (other types are a
/// compile error), `noexcept`, allocation-free, and callable from CUDA kernels. In the device pass
/// the elementary functions are CUDA's (`::log`, `::logf`, `::expm1`, `::sinpi`, ...), on the host
/// `<cmath>`'s. Nothing writes global state (unlike `std::lgamma`, which sets `signgam` and is
/// therefore a data race in parallel code), nothing throws; invalid arguments give NaN or the limit
/// value stated per function.
///
/// Call these qualified (`math::lgamma(x)`) — with `using namespace` the C library's `::lgamma`
/// (a better overload match for `double`) would win.
///
/// ## Precision and reproducibility
///
/// `float` arguments are computed in `float` throughout (polynomials fitted for float, `logf`), so
/// device code never touches double-precision units for float data. Host and device results agree
/// to a few ulps but are not bitwise identical (different `log`/`exp` implementations, FMA
/// contraction). Accuracies below are measured against mpmath (50 digits) on the tables in
/// tests/reference/data/math_*.txt (tests/core/test_math.cpp); see docs/math.md for the numbers.
/// "ulp" means units in the last place of the result type; "eps" is 2^-52 (double) or 2^-23 (float).
///
/// ## Cost (host x86-64, one call; see docs/math.md for measured throughput)
///
/// lgamma: x >= 4: one log, one division, 5-9 multiply-adds. 0 < x < 4: a polynomial of degree
/// 13-15 (double) / 6-7 (float) plus at most one log. x < 0: additionally one sin and one log.
/// digamma: x >= 3: one log, one or two divisions, ~12 multiply-adds; 0 < x < 3: one polynomial of
/// degree 22 (float: 10) and at most one division. log_poch: small integer x (<= 8): up to 7
/// multiplications and one log; otherwise two logs, two divisions and ~30 multiply-adds. The log/exp
/// helpers cost one or two elementary functions each.

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/math_impl.hpp>

namespace cellkit::math {

// ---------------------------------------------------------------------------------------------------
// thin wrappers

/// Natural logarithm (CUDA's `log`/`logf` on the device, `std::log` on the host).
template <class T>
CELLKIT_HD inline T log(T x) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  return detail::log_(x);
}

/// e^x (CUDA's `exp`/`expf` on the device, `std::exp` on the host).
template <class T>
CELLKIT_HD inline T exp(T x) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  return detail::exp_(x);
}

/// log(1 + x), accurate for small |x| (the platform's log1p: <= 1 ulp on glibc and CUDA).
/// log1p(-1) = -inf, log1p(x < -1) = NaN, log1p(+inf) = +inf.
template <class T>
CELLKIT_HD inline T log1p(T x) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  return detail::log1p_(x);
}

/// e^x - 1, accurate for small |x| (the platform's expm1: <= 1 ulp on glibc and CUDA).
/// expm1(-inf) = -1, expm1(+inf) = +inf.
template <class T>
CELLKIT_HD inline T expm1(T x) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  return detail::expm1_(x);
}

// ---------------------------------------------------------------------------------------------------
// gamma family

/// log|Gamma(x)|.
///
/// - x >= 4: Stirling's series, (x - 1/2)(log x - 1) + log(2 pi)/2 - 1/2 + S(1/x^2)/x with S a
///   minimax polynomial of degree 4 (float: 1) for x >= 10 and 8 (float: 2) for 4 <= x < 10.
/// - 3 <= x < 4: log(x - 1) + lgamma(x - 1).
/// - 2 <= x < 3: (x - 2) P(x) ; 1 <= x < 2: (x - 1)(x - 2) P(x) (two pieces): the roots at 1 and 2
///   are factored out exactly, so the result has full *relative* accuracy right up to the roots
///   (lgamma(1) = lgamma(2) = +0 exactly, lgamma(1 + 1e-12) = -5.77e-13 to a few ulp).
/// - 0 < x < 1: lgamma(1 + x) - log x (with 1 + x never rounded).
/// - x < 0, non-integer: reflection log(pi / |sin(pi x)|) - lgamma(1 - x). Near the roots of
///   lgamma on the negative axis (x ~ -2.457, -2.747, ...) only the absolute error is small
///   (~ eps * lgamma(1 - x)); |x| < 2^-28 (float: 2^-14) uses -log|x| - gamma x.
/// - Limits: lgamma(0) = lgamma(-n) = +inf for integers n, lgamma(+-inf) = +inf, NaN -> NaN.
///   Overflows to +inf above ~2.5e305 (double) / ~4.1e36 (float), as the true value does.
///
/// Accuracy (measured, x > 0 including next to the roots): double <= 4.1e-16 relative (~4 ulp),
/// float <= 1.8e-7 (~3 ulp). No loops; see the file comment for the cost.
template <class T>
CELLKIT_HD inline T lgamma(T x) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  return detail::lgamma(x);
}

/// digamma(x) = psi(x) = d/dx log Gamma(x).
///
/// - x >= 4: log x - 1/(2x) - T(1/x^2)/x^2, T a minimax polynomial of degree 4 (float: 1) for
///   x >= 10 and 8 (float: 3) for 4 <= x < 10.
/// - 1 <= x <= 2: (x - x0) P(x) with the positive root x0 = 1.461632144968362... stored as a
///   double-double and P of degree 22 (double) / 10 (float), so digamma keeps full relative accuracy
///   at and around its root.
/// - 0 < x < 1: digamma(1 + x) - 1/x; 2 < x < 3: digamma(x - 1) + 1/(x - 1); 3 <= x < 4:
///   digamma(x + 1) - 1/x (the shifted arguments are formed exactly where it matters).
/// - x < 0, non-integer: reflection digamma(1 - x) - pi cot(pi x); near the negative roots of
///   digamma only the absolute error is small (~ eps * (|digamma(1 - x)| + pi / |sin(pi x)|)).
///   |x| < 2^-28 (float: 2^-14) uses -1/x - gamma + zeta(2) x.
/// - Poles: digamma(0), digamma(-0), digamma(-n) are NaN (the two one-sided limits differ in sign);
///   digamma(+inf) = +inf, digamma(-inf) = NaN, NaN -> NaN.
///
/// Accuracy (x > 0, measured): double <= 4.4e-16 relative (4 ulp), float <= 2.4e-7 (4 ulp).
/// Cost: x >= 3: one log, one or two divisions, ~12 multiply-adds; 0 < x < 3: a degree-22 (float:
/// 10) polynomial and at most one division; x < 0: additionally a tan (host) or sinpi/cospi (device).
template <class T>
CELLKIT_HD inline T digamma(T x) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  return detail::digamma(x);
}

/// log_poch(a, x) = log((a)_x) = log(Gamma(a + x) / Gamma(a)) = lgamma(a + x) - lgamma(a), the log
/// rising factorial (Pochhammer symbol). This is the count-dependent part of the negative binomial
/// log-likelihood, lgamma(x + theta) - lgamma(theta) = log_poch(theta, x).
///
/// - x a positive integer <= 8 (and 1e-280 <= a <= 1e35; float: 1e-30 <= a <= 1e4): log of the
///   product a (a + 1) ... (a + x - 1). One log, no branches on x.
/// - a >= 4, other x > 0: Stirling's series as one expression,
///   x (log(a + x) - 1) + (a - 1/2) log1p(x/a) + [difference of the series remainders, by divided
///   differences], never forming lgamma(a + x) and lgamma(a) separately: relative error <= ~4 ulp for
///   every x > 0, also for a = 1e10 and x = 1, where the plain difference of two ~2.2e11 values
///   loses ~6 digits (absolute error ~1e-5 on a result ~23), and for tiny non-integer x.
/// - 0 < a < 4: log_poch(a + n, x) - log prod_{k<n}(1 + x/(a + k)), a + n >= 4; this cancels like
///   digamma's recurrence: absolute error ~ eps * x * log(a + x + 5), which is a small relative error
///   except where Gamma(a + x) ~ Gamma(a) (e.g. a = 1.5, where digamma(a) = 0.036, and x = 1e-3:
///   7e-15 relative).
/// - x < 0 or a <= 0: lgamma(a + x) - lgamma(a).
///
/// Limits: log_poch(a, 0) = 0; +inf if a or x is +inf (a, x > 0); NaN -> NaN. Domain: a > 0,
/// a + x > 0 (elsewhere it is lgamma(a + x) - lgamma(a) with that function's limits). Cost: integer
/// path 7 multiplications + one log; otherwise two logs, two divisions and ~30 multiply-adds (about
/// 1.3x the plain difference of two lgamma calls on the host).
template <class T>
CELLKIT_HD inline T log_poch(T a, T x) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  return detail::log_poch(a, x);
}

// ---------------------------------------------------------------------------------------------------
// softplus family

/// softplus(x) = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|): no overflow for large x, full
/// relative accuracy for very negative x (where it is ~e^x). softplus(-inf) = 0, softplus(+inf) =
/// +inf, NaN -> NaN. Accuracy: <= 2 ulp. Cost: one exp, one log1p.
template <class T>
CELLKIT_HD inline T softplus(T x) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  return (x > T(0) ? x : T(0)) + detail::log1p_(detail::exp_(-detail::fabs_(x)));
}

/// sigmoid(x) = 1 / (1 + e^-x) = softplus'(x), computed from e^-|x| so that neither sign
/// overflows: x >= 0 gives 1/(1 + e^-x), x < 0 gives e^x / (1 + e^x) (full relative accuracy down to
/// the underflow of e^x). sigmoid(-inf) = 0, sigmoid(+inf) = 1, NaN -> NaN. Accuracy: <= 2 ulp.
/// Cost: one exp, one division.
template <class T>
CELLKIT_HD inline T sigmoid(T x) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  const T e = detail::exp_(-detail::fabs_(x));
  const T s = T(1) / (T(1) + e);
  return x >= T(0) ? s : e * s;
}

/// log_sigmoid(x) = log(sigmoid(x)) = -softplus(-x) = min(x, 0) - log1p(e^-|x|). log_sigmoid(-inf) =
/// -inf, log_sigmoid(+inf) = 0 (as -0.0), NaN -> NaN. Accuracy: <= 2 ulp. Cost: one exp, one log1p.
template <class T>
CELLKIT_HD inline T log_sigmoid(T x) noexcept {
  return -softplus(-x);
}

// ---------------------------------------------------------------------------------------------------
// log-sum-exp helpers

/// log1mexp(x) = log(1 - e^x) for x <= 0, with Maechler's switch: log(-expm1(x)) for x > -log 2,
/// log1p(-e^x) otherwise (each branch is where its formula is accurate). log1mexp(0) = -inf,
/// log1mexp(-inf) = 0 (as -0.0), x > 0 -> NaN, NaN -> NaN. Accuracy: <= 2 ulp. Cost: one exp or
/// expm1 and one log or log1p. Useful for log(1 - p) from log p (zero-inflation).
template <class T>
CELLKIT_HD inline T log1mexp(T x) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  constexpr T minus_ln2 = T(-0.693147180559945309417232121458176568);
  return x > minus_ln2 ? detail::log_(-detail::expm1_(x)) : detail::log1p_(-detail::exp_(x));
}

/// log_sum_exp(a, b) = log(e^a + e^b) = max + log1p(e^-|a - b|). Infinite arguments are exact:
/// log_sum_exp(-inf, -inf) = -inf (never NaN), log_sum_exp(-inf, b) = b, log_sum_exp(+inf, b) =
/// +inf (also for b = +inf); NaN in either argument -> NaN. Accuracy: <= 2 ulp relative to the result,
/// plus ~eps * max(|a|, |b|) absolute from the final addition (visible only for results near 0).
/// Cost: one exp, one log1p.
template <class T>
CELLKIT_HD inline T log_sum_exp(T a, T b) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  if (a != a || b != b) return a + b;
  const T hi = a < b ? b : a;
  const T lo = a < b ? a : b;
  if (hi == detail::inf<T>() || hi == -detail::inf<T>()) return hi;
  return hi + detail::log1p_(detail::exp_(lo - hi));
}

/// log_diff_exp(a, b) = log(e^a - e^b) for a >= b, = a + log1mexp(b - a). log_diff_exp(a, a) =
/// -inf, log_diff_exp(a, -inf) = a (also for a = -inf), log_diff_exp(+inf, b < +inf) = +inf,
/// log_diff_exp(+inf, +inf) = NaN, a < b -> NaN, NaN -> NaN. Accuracy: like log1mexp relative to
/// the result, plus ~eps * |a| absolute from the final addition. Cost: as log1mexp.
template <class T>
CELLKIT_HD inline T log_diff_exp(T a, T b) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  if (b == -detail::inf<T>()) return a;
  return a + log1mexp(b - a);
}

/// Streaming log-sum-exp: after add(x_1), ..., add(x_n), value() = log(sum_i e^{x_i}).
///
/// State: `max` = the largest argument so far (-inf while empty) and `sum` = sum_i e^{x_i - max}
/// (>= 1 once a finite or +inf argument was added). add() rescales the sum when the maximum grows, so
/// nothing overflows or underflows prematurely; merge() combines two partial accumulators the same
/// way, so blocked, OpenMP and CUDA (warp/block) reductions can sum partials in any grouping and
/// order: the result equals the one-pass value up to rounding (a few ulps of the sum, plus eps * |max|
/// absolute from value()).
///
/// Special values: empty (or only -inf added) -> value() = -inf; any +inf -> +inf; any NaN -> NaN.
/// It is an aggregate with default member initializers, trivially copyable, usable in device code and
/// shared memory. Cost: add is one exp (+ one multiply when the max moves), merge one exp, value one log.
template <class T>
struct log_sum_exp_accumulator {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");

  T max = -detail::inf<T>();  ///< largest argument seen (-inf when empty)
  T sum = T(0);               ///< sum of e^{x - max} over the arguments seen

  /// Adds e^x to the sum.
  CELLKIT_HD void add(T x) noexcept {
    if (x > max) {
      sum = sum * detail::exp_(max - x) + T(1);  // exp(-inf) = 0 handles the empty and +inf cases
      max = x;
    } else if (x == max) {
      if (x != -detail::inf<T>()) sum += T(1);
    } else {
      sum += detail::exp_(x - max);  // x < max, or x is NaN (makes sum NaN)
    }
  }

  /// Adds the terms summarised by `other` (as if all of its arguments had been added here).
  CELLKIT_HD void merge(const log_sum_exp_accumulator& other) noexcept {
    if (other.max > max) {
      sum = sum * detail::exp_(max - other.max) + other.sum;
      max = other.max;
    } else if (other.max == max) {
      sum += other.sum;
    } else {
      sum += other.sum * detail::exp_(other.max - max);
    }
  }

  /// log(sum_i e^{x_i}) of everything added or merged so far.
  CELLKIT_HD T value() const noexcept { return max + detail::log_(sum); }
};

// ---------------------------------------------------------------------------------------------------
// xlogy

/// xlogy(x, y) = x log(y), defined as 0 when x == 0 and y is not NaN (so 0 * log 0 = 0, the
/// convention of entropies and likelihoods), as scipy.special.xlogy. Otherwise x * log(y): y = 0 ->
/// -inf * sign(x), y < 0 -> NaN. Accuracy: <= 2 ulp. Cost: one log.
template <class T>
CELLKIT_HD inline T xlogy(T x, T y) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  if (x == T(0) && y == y) return T(0);
  return x * detail::log_(y);
}

/// xlog1py(x, y) = x log1p(y) = x log(1 + y), 0 when x == 0 and y is not NaN (scipy.special.xlog1py).
/// y = -1 -> -inf * sign(x), y < -1 -> NaN. Accuracy: <= 2 ulp. Cost: one log1p.
template <class T>
CELLKIT_HD inline T xlog1py(T x, T y) noexcept {
  static_assert(detail::is_supported_v<T>, "cellkit::math: T must be float or double");
  if (x == T(0) && y == y) return T(0);
  return x * detail::log1p_(y);
}

}  // namespace cellkit::math
