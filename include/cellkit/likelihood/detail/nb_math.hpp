#pragma once
/// @file
/// Scalar building blocks of the count likelihoods (not a public interface; include
/// <cellkit/likelihood/nb.hpp>, zinb.hpp or poisson.hpp):
///
/// - `stirlerr(z)`    = lgamma(z + 1) - (z + 1/2) log z + z - log(2 pi)/2, the error of Stirling's formula
///   (the asymptotic series from 10, a recurrence of positive terms below);
/// - `log1pmx(t, 1+t)` = log(1 + t) - t, with full relative accuracy for small |t|;
/// - `log1p_minus_frac(s, 1/(1+s))` = log(1 + s) - s / (1 + s) (s >= 0), the same for small s;
/// - `phi_diff(a, x)` = [digamma(a + x) - log(a + x)] - [digamma(a) - log(a)] for a >= 10, x >= 0,
///   with full relative accuracy also when x << a.
///
/// They let the NB log-probability be written in Loader's saddle-point form (see nb_kernels.hpp),
/// where no two large terms cancel. Everything is `CELLKIT_HD`, branch-light, and computed in `T`.

#include <cellkit/core/config.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/likelihood/detail/fast_math.hpp>

#include <bit>
#include <cstdint>
#include <type_traits>

namespace cellkit::likelihood::detail {

template <class T>
inline constexpr bool is_real_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

template <class T>
CELLKIT_HD constexpr T inf_v() noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return __builtin_huge_valf();
  } else {
    return __builtin_huge_val();
  }
}

template <class T>
CELLKIT_HD constexpr T nan_v() noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return __builtin_nanf("");
  } else {
    return __builtin_nan("");
  }
}

template <class T>
CELLKIT_HD constexpr bool is_finite(T v) noexcept {
  return v - v == T(0);  // false for +-inf and NaN
}

/// 2 pi.
template <class T>
inline constexpr T two_pi_v = T(6.283185307179586476925286766559005768394);

/// Below this argument stirlerr/phi_diff switch from their asymptotic series to exact forms.
template <class T>
inline constexpr T asymptotic_min_v = T(10);

// ---------------------------------------------------------------------------------------------------
// stirlerr

/// Stirling series sum_k B_2k / (2k (2k - 1) z^(2k-1)) for z >= 10: 8 terms in double (truncation
/// below 2e-19 absolute at z = 10), 3 in float (below 7e-11).
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T stirlerr_series(T z) noexcept {
  const T u = T(1) / z;
  const T w = u * u;
  if constexpr (std::is_same_v<T, double>) {
    return u * horner(w, 1.0 / 12, -1.0 / 360, 1.0 / 1260, -1.0 / 1680, 1.0 / 1188, -691.0 / 360360, 1.0 / 156,
                      -3617.0 / 122400);
  } else {
    return u * horner(w, 1.0f / 12, -1.0f / 360, 1.0f / 1260);
  }
}

// ---------------------------------------------------------------------------------------------------
// log1pmx and log1p_minus_frac

/// Below this |t| the series is used (loss of the direct form at the switch: ~10 ulp).
template <class T>
inline constexpr T log1pmx_series_max_v = T(0.25);

/// 2 (z^3/3 + z^5/5 + ...) / z^3 = P(z^2) for |z| <= 1/7 (|t| <= 1/4): 9 terms in double (truncation
/// < 1e-17 relative), 4 in float.
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T atanh_tail(T w) noexcept {
  if constexpr (std::is_same_v<T, double>) {
    return horner(w, 1.0 / 3, 1.0 / 5, 1.0 / 7, 1.0 / 9, 1.0 / 11, 1.0 / 13, 1.0 / 15, 1.0 / 17, 1.0 / 19);
  } else {
    return horner(w, 1.0f / 3, 1.0f / 5, 1.0f / 7, 1.0f / 9);
  }
}

/// log(1 + t) - t for t >= -1, given also `one_plus_t` = 1 + t computed without cancellation by the
/// caller (it matters for t near -1, where 1 + t would lose all its digits).
/// |t| < 1/4: with z = t / (2 + t), log(1 + t) = 2 atanh z and t - 2z = z t, so
/// log(1 + t) - t = -z t + 2 z^3 P(z^2): no cancellation (relative error a few ulp).
/// Otherwise flog(one_plus_t) - t (one_plus_t > 0; t = -1 must be handled by the caller). Cost: one
/// division (series) or one flog.
template <class T>
CELLKIT_HD inline T log1pmx(T t, T one_plus_t) noexcept {
  if (t < log1pmx_series_max_v<T> && t > -log1pmx_series_max_v<T>) {
    const T z = t / (T(2) + t);
    const T z2 = z * z;
    return T(2) * (z2 * z) * atanh_tail(z2) - z * t;
  }
  return flog(one_plus_t) - t;
}

/// h(s) = log(1 + s) - s / (1 + s) for s >= 0, given `log1p_s` = log(1 + s) and `inv_1ps` = 1 / (1 + s).
/// s < 1/4: with z = s / (2 + s), h = z s / (1 + s) + 2 z^3 P(z^2) (positive terms only);
/// otherwise log1p_s - s inv_1ps. h(s) ~ s^2/2 for small s, log(s) - 1 for large s.
template <class T>
CELLKIT_HD inline T log1p_minus_frac(T s, T log1p_s, T inv_1ps) noexcept {
  if (s < log1pmx_series_max_v<T>) {
    const T z = s / (T(2) + s);
    const T z2 = z * z;
    return z * s * inv_1ps + T(2) * (z2 * z) * atanh_tail(z2);
  }
  return log1p_s - s * inv_1ps;
}

// ---------------------------------------------------------------------------------------------------
// branch-free forms for the host's vectorised x > 0 pass

/// atanh(u)/u - 1 = u^2/3 + u^4/5 + ... = w Q(w), w = u^2 <= 1/9 (u <= 1/3): 17 terms in double
/// (truncation below 2e-17 relative), 8 in float (below 4e-8).
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T atanh_ratio_minus_one(T w) noexcept {
  if constexpr (std::is_same_v<T, double>) {
    return w * horner(w, 1.0 / 3, 1.0 / 5, 1.0 / 7, 1.0 / 9, 1.0 / 11, 1.0 / 13, 1.0 / 15, 1.0 / 17, 1.0 / 19, 1.0 / 21,
                      1.0 / 23, 1.0 / 25, 1.0 / 27, 1.0 / 29, 1.0 / 31, 1.0 / 33, 1.0 / 35);
  } else {
    return w * horner(w, 1.0f / 3, 1.0f / 5, 1.0f / 7, 1.0f / 9, 1.0f / 11, 1.0f / 13, 1.0f / 15, 1.0f / 17);
  }
}

/// stirlerr(z) = lgamma(z + 1) - (z + 1/2) log z + z - log(2 pi)/2 for z > 0 (+0 at z = +inf), with
/// selects only (no lgamma, no table), so that a loop over it vectorises; `stirlerr` is this
/// function, so the scalar and the vectorised kernels compute the same bits.
/// z >= 10: stirlerr_series(z). Below, the series at y = z + m >= 10 (m <= 10 steps) plus the
/// recurrence
///   stirlerr(y) - stirlerr(y + 1) = (y + 1/2) log1p(1/y) - 1 = atanh(u)/u - 1,  u = 1/(2y + 1),
/// summed over y = z, z + 1, ..., z + m - 1: positive terms, each with a small relative error
/// (atanh_ratio_minus_one for y >= 1; for y < 1, only the first step, (y + 1/2) flog((y + 1)/y) - 1,
/// which cancels by at most a factor 11). So the result has a small relative error for every z (an
/// lgamma-based form has an absolute one, ~ eps times z log z). stirlerr(z) ~ -log(z)/2 as z -> 0.
/// Cost below 10: 10 divisions, one flog, ~100 (float) to ~180 (double) multiply-adds.
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T stirlerr_select(T z) noexcept {
  const T ten = asymptotic_min_v<T>;
  // first step: y = z (direct form below 1)
  const bool first_active = z < ten;
  const T u0 = T(1) / (T(2) * z + T(1));
  const T by_series = atanh_ratio_minus_one(u0 * u0);
  const T by_log = (z + T(0.5)) * flog((z + T(1)) / z) - T(1);
  T acc = sel(first_active, sel(z < T(1), by_log, by_series), T(0));
  T y = sel(first_active, z + T(1), z);
  for (int k = 1; k < 10; ++k) {
    const bool active = y < ten;
    const T u = T(1) / (T(2) * y + T(1));
    acc += sel(active, atanh_ratio_minus_one(u * u), T(0));
    y = sel(active, y + T(1), y);
  }
  return stirlerr_series(y) + acc;
}

/// stirlerr(z) for scalar code: the same bits as stirlerr_select (which at z >= 10 adds only zeros to
/// the series), without its ten no-op steps there.
template <class T>
CELLKIT_HD inline T stirlerr(T z) noexcept {
  if (z >= asymptotic_min_v<T>) return stirlerr_series(z);
  return stirlerr_select(z);
}

/// log1pmx(t, one_plus_t) with selects only (both forms computed, one kept).
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T log1pmx_select(T t, T one_plus_t) noexcept {
  const T z = t / (T(2) + t);
  const T z2 = z * z;
  const T series = T(2) * (z2 * z) * atanh_tail(z2) - z * t;
  const T direct = flog(one_plus_t) - t;
  return sel((t < log1pmx_series_max_v<T>)&(t > -log1pmx_series_max_v<T>), series, direct);
}

// ---------------------------------------------------------------------------------------------------
// phi_diff

/// phi(z) = digamma(z) - log z = -1/(2z) - P(1/z^2), P(w) = sum_k B_2k / (2k) w^k (asymptotic).
/// Divided difference of P between s and t by Horner: dd <- p_s + t dd, p_s <- p_s s + c.
template <class T, class... Cs>
CELLKIT_HD constexpr T poly_divided_difference(T s, T t, T c_top, Cs... lower) noexcept {
  T ps = c_top;
  T dd = T(0);
  const T coefficients[] = {static_cast<T>(lower)...};
  for (const T c : coefficients) {
    dd = ps + t * dd;
    ps = ps * s + c;
  }
  return dd;
}

/// phi(z) = digamma(z) - log z = -1/(2z) - P(1/z^2) for z >= 10 (the asymptotic series, same terms as
/// phi_diff), without the cancellation of digamma(z) - log(z).
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T phi_series(T z) noexcept {
  const T u = T(1) / z;
  const T w = u * u;
  T p;
  if constexpr (std::is_same_v<T, double>) {
    p = w * horner(w, 1.0 / 12, -1.0 / 120, 1.0 / 252, -1.0 / 240, 1.0 / 132, -691.0 / 32760, 1.0 / 12, -3617.0 / 8160,
                   43867.0 / 14364);
  } else {
    p = w * horner(w, 1.0f / 12, -1.0f / 120, 1.0f / 252);
  }
  return -T(0.5) * u - p;
}

/// phi(z) = digamma(z) - log z for finite z > 0, with selects only (no digamma), so that a loop over
/// it vectorises: z >= 10 phi_series(z) (exactly: the other terms are then 0); below, digamma's
/// recurrence to y = z + m >= 10 (m <= 10 steps),
///   phi(z) = phi_series(y) + (log(y / z) - sum_{k<m} 1/(z + k)).
/// The log and the sum cancel at most ~20-fold against the result (z just below 10; ~7-fold for
/// z in [1, 5]), so the relative error stays within a few tens of ulp. Cost below 10: 11 divisions,
/// one flog, the series.
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T phi_select(T z) noexcept {
  T sum = T(0);
  T y = z;
  for (int k = 0; k < 10; ++k) {
    const bool active = y < asymptotic_min_v<T>;
    sum += sel(active, T(1) / y, T(0));
    y = sel(active, y + T(1), y);
  }
  return phi_series(y) + (flog(y / z) - sum);
}

/// phi(a + x) - phi(a) for a >= 10, x >= 0, phi(z) = digamma(z) - log z:
/// = x u v [1/2 + (u + v) P[v^2, u^2]] with u = 1/a, v = 1/(a + x) and P[., .] the divided
/// difference of P: every term positive or small, so relative accuracy ~ a few ulp for all x.
/// Terms to B_18 (double; truncation ~1e-16 relative at a = 10) or B_6 (float).
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T phi_diff(T a, T x) noexcept {
  const T u = T(1) / a;
  const T v = T(1) / (a + x);
  T dd;
  if constexpr (std::is_same_v<T, double>) {
    // coefficients of P from w^9 down to w^0
    dd = poly_divided_difference(v * v, u * u, 43867.0 / 14364, -3617.0 / 8160, 1.0 / 12, -691.0 / 32760, 1.0 / 132,
                                 -1.0 / 240, 1.0 / 252, -1.0 / 120, 1.0 / 12, 0.0);
  } else {
    dd = poly_divided_difference(v * v, u * u, 1.0f / 252, -1.0f / 120, 1.0f / 12, 0.0f);
  }
  return x * u * v * (T(0.5) + (u + v) * dd);
}

}  // namespace cellkit::likelihood::detail
