#pragma once
/// @file
/// Implementation details of `cellkit/core/random.hpp`: the math wrappers that pick the CUDA device
/// functions in device code and `std::` functions on the host, a host/device log-gamma, and the
/// rejection samplers behind `gamma` and `poisson`. Nothing here is public API.

#include <cellkit/core/config.hpp>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace cellkit::detail {

template <class T>
inline constexpr bool is_rng_real_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

// ---------------------------------------------------------------------------------------------
// Math wrappers. Device code calls the CUDA math library (::logf, ::log, ...); host code calls
// <cmath>. Both are written once here so that the distributions below contain no #if.
// ---------------------------------------------------------------------------------------------

CELLKIT_HD inline float rng_log(float x) {
#if CELLKIT_DEVICE_CODE
  return ::logf(x);
#else
  return std::log(x);
#endif
}
CELLKIT_HD inline double rng_log(double x) {
#if CELLKIT_DEVICE_CODE
  return ::log(x);
#else
  return std::log(x);
#endif
}
CELLKIT_HD inline float rng_exp(float x) {
#if CELLKIT_DEVICE_CODE
  return ::expf(x);
#else
  return std::exp(x);
#endif
}
CELLKIT_HD inline double rng_exp(double x) {
#if CELLKIT_DEVICE_CODE
  return ::exp(x);
#else
  return std::exp(x);
#endif
}
CELLKIT_HD inline float rng_sqrt(float x) {
#if CELLKIT_DEVICE_CODE
  return ::sqrtf(x);
#else
  return std::sqrt(x);
#endif
}
CELLKIT_HD inline double rng_sqrt(double x) {
#if CELLKIT_DEVICE_CODE
  return ::sqrt(x);
#else
  return std::sqrt(x);
#endif
}
CELLKIT_HD inline float rng_sin(float x) {
#if CELLKIT_DEVICE_CODE
  return ::sinf(x);
#else
  return std::sin(x);
#endif
}
CELLKIT_HD inline double rng_sin(double x) {
#if CELLKIT_DEVICE_CODE
  return ::sin(x);
#else
  return std::sin(x);
#endif
}
CELLKIT_HD inline float rng_cos(float x) {
#if CELLKIT_DEVICE_CODE
  return ::cosf(x);
#else
  return std::cos(x);
#endif
}
CELLKIT_HD inline double rng_cos(double x) {
#if CELLKIT_DEVICE_CODE
  return ::cos(x);
#else
  return std::cos(x);
#endif
}
CELLKIT_HD inline double rng_floor(double x) {
#if CELLKIT_DEVICE_CODE
  return ::floor(x);
#else
  return std::floor(x);
#endif
}
CELLKIT_HD inline double rng_fabs(double x) { return x < 0.0 ? -x : x; }

/// A quiet NaN of type T, usable in device code (std::numeric_limits is a host constexpr API).
template <class T>
CELLKIT_HD inline T rng_nan() {
#if CELLKIT_DEVICE_CODE
  if constexpr (std::is_same_v<T, float>) {
    return __int_as_float(0x7fc00000);
  } else {
    return __longlong_as_double(0x7ff8000000000000LL);
  }
#else
  return std::numeric_limits<T>::quiet_NaN();
#endif
}

/// The largest finite T (FLT_MAX / DBL_MAX), as a plain constant usable in device code.
template <class T>
CELLKIT_HD constexpr T rng_max() {
  if constexpr (std::is_same_v<T, float>) {
    return FLT_MAX;
  } else {
    return DBL_MAX;
  }
}

// ---------------------------------------------------------------------------------------------
// log Gamma(x) for x >= 1 (used by PTRS at x = k + 1). Same series as NumPy's random_loggam:
// Stirling's series with 10 terms at x0 = max(x, 7), then the recurrence
// log Gamma(x) = log Gamma(x + n) - sum log(x + j). Exact 0 at x = 1 and x = 2.
// Written here rather than calling lgamma so that host and device run the same formula.
// ---------------------------------------------------------------------------------------------
CELLKIT_HD inline double rng_loggam(double x) {
  if (x == 1.0 || x == 2.0) return 0.0;
  const std::int64_t n = x < 7.0 ? static_cast<std::int64_t>(7.0 - x) : 0;
  double x0 = x + static_cast<double>(n);
  const double x2 = (1.0 / x0) * (1.0 / x0);
  constexpr double lg2pi = 1.8378770664093453e+00;  // log(2 pi)
  double gl0 = -1.39243221690590e+00;
  gl0 = gl0 * x2 + 1.796443723688307e-01;
  gl0 = gl0 * x2 - 2.955065359477124e-02;
  gl0 = gl0 * x2 + 6.410256410256410e-03;
  gl0 = gl0 * x2 - 1.917526917526918e-03;
  gl0 = gl0 * x2 + 8.417508417508418e-04;
  gl0 = gl0 * x2 - 5.952380952380952e-04;
  gl0 = gl0 * x2 + 7.936507936507937e-04;
  gl0 = gl0 * x2 - 2.777777777777778e-03;
  gl0 = gl0 * x2 + 8.333333333333333e-02;
  double gl = gl0 / x0 + 0.5 * lg2pi + (x0 - 0.5) * rng_log(x0) - x0;
  for (std::int64_t k = 1; k <= n; ++k) {
    gl -= rng_log(x0 - 1.0);
    x0 -= 1.0;
  }
  return gl;
}

/// Largest Poisson mean accepted: NumPy's bound INT64_MAX - 10 sqrt(INT64_MAX), so that the sample
/// (within ~10 standard deviations of the mean) fits in int64.
inline constexpr double poisson_mean_max = 9.2233720064847708e18;

/// Largest k PTRS may return (beyond it the sample is rejected; the probability is 0 in double).
inline constexpr double poisson_k_max = 0x1.fffffffffffffp62;  // the largest double below 2^63

}  // namespace cellkit::detail
