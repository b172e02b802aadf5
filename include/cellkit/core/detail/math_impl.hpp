#pragma once
/// @file
/// Implementation of <cellkit/core/math.hpp>: elementary-function wrappers that pick CUDA's
/// device functions in the device pass, polynomial evaluation, and the float / double kernels of
/// lgamma, digamma and log_poch. Not a public interface: include <cellkit/core/math.hpp>.
///
/// The polynomial coefficients are near-minimax fits of relative error computed with mpmath
/// (`/usr/bin/python3 tests/reference/gen_math_fixtures.py --coefficients` prints them again);
/// each table states its interval, variable and fit error.

#include <cellkit/core/config.hpp>

#include <cmath>
#include <type_traits>

namespace cellkit::math::detail {

// ---------------------------------------------------------------------------------------------------
// constants usable in device code without --expt-relaxed-constexpr (numeric_limits is a constexpr
// __host__ function for nvcc)

template <class T>
CELLKIT_HD constexpr T inf() noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return __builtin_huge_valf();
  } else {
    return __builtin_huge_val();
  }
}

template <class T>
CELLKIT_HD constexpr T quiet_nan() noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return __builtin_nanf("");
  } else {
    return __builtin_nan("");
  }
}

template <class T>
inline constexpr bool is_supported_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

template <class T>
inline constexpr T pi_v = T(3.141592653589793238462643383279502884);
template <class T>
inline constexpr T euler_gamma_v = T(0.577215664901532860606512090082402431);
template <class T>
inline constexpr T zeta2_v = T(1.644934066848226436472415166646025189);  // pi^2 / 6
/// log(2 pi) / 2 - 1/2, the constant of Stirling's formula written as (x - 1/2)(log x - 1) + c.
template <class T>
inline constexpr T half_log_2pi_minus_half_v = T(0.418938533204672741780329736405617640);

// ---------------------------------------------------------------------------------------------------
// elementary functions: CUDA's in the device pass, <cmath> on the host

#if CELLKIT_DEVICE_CODE
#define CELLKIT_MATH_DETAIL_WRAP1(name, dev_double, dev_float)                 \
  CELLKIT_HD inline double name(double x) noexcept { return ::dev_double(x); } \
  CELLKIT_HD inline float name(float x) noexcept { return ::dev_float(x); }
#else
#define CELLKIT_MATH_DETAIL_WRAP1(name, dev_double, dev_float)                    \
  CELLKIT_HD inline double name(double x) noexcept { return std::dev_double(x); } \
  CELLKIT_HD inline float name(float x) noexcept { return std::dev_double(x); }
#endif

CELLKIT_MATH_DETAIL_WRAP1(log_, log, logf)
CELLKIT_MATH_DETAIL_WRAP1(log1p_, log1p, log1pf)
CELLKIT_MATH_DETAIL_WRAP1(exp_, exp, expf)
CELLKIT_MATH_DETAIL_WRAP1(expm1_, expm1, expm1f)
CELLKIT_MATH_DETAIL_WRAP1(fabs_, fabs, fabsf)
CELLKIT_MATH_DETAIL_WRAP1(rint_, rint, rintf)
CELLKIT_MATH_DETAIL_WRAP1(sqrt_, sqrt, sqrtf)

#undef CELLKIT_MATH_DETAIL_WRAP1

/// |sin(pi r)| for |r| <= 1/2, r != 0.
CELLKIT_HD inline double abs_sinpi(double r) noexcept {
#if CELLKIT_DEVICE_CODE
  return ::fabs(::sinpi(r));
#else
  return std::fabs(std::sin(pi_v<double> * r));
#endif
}
CELLKIT_HD inline float abs_sinpi(float r) noexcept {
#if CELLKIT_DEVICE_CODE
  return ::fabsf(::sinpif(r));
#else
  return std::fabs(std::sin(pi_v<float> * r));
#endif
}

/// cot(pi r) for |r| <= 1/2, r != 0. On the host, |r| > 1/4 uses cot(pi r) = tan(pi (1/2 - r)) with
/// 1/2 - |r| exact, so the result keeps its relative accuracy next to r = +-1/2 where cot vanishes.
CELLKIT_HD inline double cotpi(double r) noexcept {
#if CELLKIT_DEVICE_CODE
  return ::cospi(r) / ::sinpi(r);
#else
  const double a = std::fabs(r);
  const double c = a > 0.25 ? std::tan(pi_v<double> * (0.5 - a)) : 1.0 / std::tan(pi_v<double> * a);
  return r < 0 ? -c : c;
#endif
}
CELLKIT_HD inline float cotpi(float r) noexcept {
#if CELLKIT_DEVICE_CODE
  return ::cospif(r) / ::sinpif(r);
#else
  const float a = std::fabs(r);
  const float c = a > 0.25f ? std::tan(pi_v<float> * (0.5f - a)) : 1.0f / std::tan(pi_v<float> * a);
  return r < 0 ? -c : c;
#endif
}

// ---------------------------------------------------------------------------------------------------
// polynomials

/// c0 + t (c1 + t (c2 + ...)) (Horner; the coefficients become immediates).
template <class T, class... Cs>
CELLKIT_HD constexpr T poly(T t, T c0, Cs... cs) noexcept {
  if constexpr (sizeof...(Cs) == 0) {
    (void)t;
    return c0;
  } else {
    return c0 + t * poly<T>(t, static_cast<T>(cs)...);
  }
}

/// p(s), p(t) and the divided difference (p(s) - p(t)) / (s - t), the last computed without
/// cancellation (valid for s == t too, where it is p'(s)).
template <class T>
struct poly_dd_result {
  T ps;
  T pt;
  T dd;
};

template <class T, class... Cs>
CELLKIT_HD constexpr poly_dd_result<T> poly_dd(T s, T t, T c0, Cs... cs) noexcept {
  if constexpr (sizeof...(Cs) == 0) {
    (void)s;
    (void)t;
    return {c0, c0, T(0)};
  } else {
    // p = c0 + z q(z):  (p(s) - p(t)) / (s - t) = q(t) + s (q(s) - q(t)) / (s - t)
    const poly_dd_result<T> q = poly_dd<T>(s, t, static_cast<T>(cs)...);
    return {c0 + s * q.ps, c0 + t * q.pt, q.pt + s * q.dd};
  }
}

// ---------------------------------------------------------------------------------------------------
// coefficient tables (macros so that lgamma and log_poch share them; #undef'd at the end)

// lgamma(x) = (x-1)(x-2) P(x - 1.25) on [1, 1.5). double: degree 15, fit error 1.3e-17.
#define CELLKIT_MATH_LG_A_F64                                                                                         \
  0.5241164609163369, -0.18455838443681608, 0.09456573803302426, -0.05627340727381966, 0.03615879797093454,           \
      -0.024308805034519414, 0.016827679651675278, -0.01188823884511572, 0.008525081772494262, -0.006183929469495668, \
      0.004528085934366857, -0.0033398440465271014, 0.002455312320092832, -0.0018289299855855068,                     \
      0.0016006243865675574, -0.0012172705018408225
// float: degree 7, fit error 2.1e-9.
#define CELLKIT_MATH_LG_A_F32                                                                                    \
  0.5241164565086365f, -0.18455837666988373f, 0.09456629306077957f, -0.0562741756439209f, 0.036114491522312164f, \
      -0.02426501363515854f, 0.017944810912013054f, -0.012805413454771042f

// lgamma(x) = (x-1)(x-2) P(x - 1.75) on [1.5, 2). double: degree 13, fit error 1.3e-17.
#define CELLKIT_MATH_LG_B_F64                                                                                 \
  0.4501393121092563, -0.11948158662524276, 0.044520447198500575, -0.019053957830233583, 0.00877637042757813, \
      -0.004226194128328983, 0.0020955336573467956, -0.0010605658916831857, 0.0005449071361248315,            \
      -0.00028319778849551016, 0.00014828009376112867, -7.83124770327774e-05, 4.442459246571942e-05,          \
      -2.3853546395401787e-05
// float: degree 6, fit error 2.3e-9.
#define CELLKIT_MATH_LG_B_F32                                                                                      \
  0.4501393139362335f, -0.11948161572217941f, 0.04452047869563103f, -0.019050229340791702f, 0.008773673325777054f, \
      -0.0043447064235806465f, 0.002164767123758793f

// lgamma(x) = (x-2) P(x - 2.5) on [2, 3). double: degree 15, fit error 1.3e-17.
#define CELLKIT_MATH_LG_C_F64                                                                                 \
  0.5693657409458384, 0.26758179939880966, -0.044805842697388014, 0.010877001514208296, -0.00309518229332942, \
      0.0009610979280900986, -0.0003150592596015315, 0.00010710021890032486, -3.735322363516462e-05,          \
      1.3275625106842914e-05, -4.787626829686574e-06, 1.7460917380547812e-06, -6.362356199005256e-07,         \
      2.341711040589388e-07, -1.022872181009345e-07, 4.0002222899773435e-08
// float: degree 7, fit error 2.3e-9.
#define CELLKIT_MATH_LG_C_F32                                                                                       \
  0.5693657398223877f, 0.2675817906856537f, -0.044805996119976044f, 0.010877295397222042f, -0.0030921015422791243f, \
      0.0009580873884260654f, -0.0003345552831888199f, 0.00011841574450954795f

// Stirling remainder: lgamma(x) = (x - 1/2)(log x - 1) + c + S(1/x^2) / x for x >= 4, S on
// [0, 1/16]. double: degree 8, relative fit error 2.4e-16 (of S, which is < 1.2% of lgamma at x = 4).
#define CELLKIT_MATH_LG_S_F64                                                                                        \
  0.08333333333333331, -0.0027777777777244364, 0.0007936507699187102, -0.0005952340008292514, 0.0008413924654464535, \
      -0.001899503024509467, 0.005854605120794083, -0.018645581444613632, 0.03732966165494866
// float: degree 2, fit error 4.6e-8.
#define CELLKIT_MATH_LG_S_F32 0.0833333283662796f, -0.0027766332495957613f, 0.0007430131081491709f

// The same S for x >= 10 (w <= 1/100), the common case, with fewer terms.
// double: degree 4, fit error 4.0e-15 (S is < 0.07% of lgamma for x >= 10).
#define CELLKIT_MATH_LG_S10_F64 \
  0.083333333333333, -0.0027777777760661193, 0.0007936494146955895, -0.000594848066986941, 0.0007963317894129305
// float: degree 1, fit error 1.2e-7.
#define CELLKIT_MATH_LG_S10_F32 0.083333320915699f, -0.0027698983903974295f

// digamma(x) = log x - 1/(2x) - T(1/x^2) / x^2 for x >= 4, T on [0, 1/16].
// double: degree 8, fit error 3.8e-15 (T is < 0.5% of digamma at x = 4).
#define CELLKIT_MATH_DG_T_F64                                                                                    \
  0.08333333333333302, -0.008333333332479499, 0.003968253586981002, -0.004166600599974236, 0.007569942098559695, \
      -0.02079796011930069, 0.07412922409495136, -0.25865944651815226, 0.5444138174146235
// float: degree 3, fit error 7.4e-9.
#define CELLKIT_MATH_DG_T_F32 \
  0.0833333358168602f, -0.008333002217113972f, 0.0039405906572937965f, -0.0034022610634565353f

// The same T for x >= 10 (w <= 1/100). double: degree 4, fit error 4.3e-14 (T is < 0.04% of
// digamma for x >= 10); float: degree 1, fit error 5.8e-7.
#define CELLKIT_MATH_DG_T10_F64 \
  0.08333333333332965, -0.00833333331479887, 0.003968239018977811, -0.004162430974220813, 0.007080872252125269
#define CELLKIT_MATH_DG_T10_F32 0.08333328366279602f, -0.008294046856462955f

// digamma(x) = (x - x0) P(x - 1.5) on [1, 2], x0 = 1.46163214496836234126... the positive root.
// double: degree 22, fit error 2.4e-18.
#define CELLKIT_MATH_DG_R_F64                                                                                        \
  0.9510558760318328, -0.4236274212814606, 0.24054248424078722, -0.1484049230538804, 0.09498872445285043,            \
      -0.06192213327553248, 0.040760833943346474, -0.02697579665803591, 0.017907248237095427, -0.011908220144117377, \
      0.007927023297578011, -0.005279936755786467, 0.0035180890674241776, -0.0023454988417429315,                    \
      0.0015635005941304148, -0.0010364372229358999, 0.0006902960166243641, -0.0004860179373430039,                  \
      0.00032583828284649954, -0.00014468632772087284, 9.336834822551586e-05, -0.00017831038078539553,               \
      0.00012111888746726222
// float: degree 10, fit error 3.7e-9.
#define CELLKIT_MATH_DG_R_F32                                                                                    \
  0.9510558843612671f, -0.42362749576568604f, 0.24054262042045593f, -0.14839880168437958f, 0.09498213231563568f, \
      -0.06205686181783676f, 0.040878746658563614f, -0.02578217163681984f, 0.016983289271593094f,                \
      -0.01638200134038925f, 0.011113806627690792f

/// The digamma root x0 as hi + lo.
inline constexpr double digamma_root_hi_f64 = 1.4616321449683622;
inline constexpr double digamma_root_lo_f64 = 9.549995429965697e-17;
inline constexpr float digamma_root_hi_f32 = 1.4616321325302124f;
inline constexpr float digamma_root_lo_f32 = 1.243815006546356e-08f;

// ---------------------------------------------------------------------------------------------------
// lgamma

/// lgamma(1 + t) for t in [0, 1); t is exact, so both roots (t = 0, t = 1) keep full relative accuracy.
CELLKIT_HD inline double lgamma_1p_unit(double t) noexcept {
  if (t < 0.5) return (t * (t - 1.0)) * poly(t - 0.25, CELLKIT_MATH_LG_A_F64);
  return (t * (t - 1.0)) * poly(t - 0.75, CELLKIT_MATH_LG_B_F64);
}
CELLKIT_HD inline float lgamma_1p_unit(float t) noexcept {
  if (t < 0.5f) return (t * (t - 1.0f)) * poly(t - 0.25f, CELLKIT_MATH_LG_A_F32);
  return (t * (t - 1.0f)) * poly(t - 0.75f, CELLKIT_MATH_LG_B_F32);
}

/// lgamma(y) for y in [2, 3).
CELLKIT_HD inline double lgamma_2_3(double y) noexcept { return (y - 2.0) * poly(y - 2.5, CELLKIT_MATH_LG_C_F64); }
CELLKIT_HD inline float lgamma_2_3(float y) noexcept { return (y - 2.0f) * poly(y - 2.5f, CELLKIT_MATH_LG_C_F32); }

/// Stirling remainder S(w), w = 1/x^2, x >= 4.
CELLKIT_HD inline double stirling_s(double w) noexcept { return poly(w, CELLKIT_MATH_LG_S_F64); }
CELLKIT_HD inline float stirling_s(float w) noexcept { return poly(w, CELLKIT_MATH_LG_S_F32); }
/// S(w) for x >= 10.
CELLKIT_HD inline double stirling_s10(double w) noexcept { return poly(w, CELLKIT_MATH_LG_S10_F64); }
CELLKIT_HD inline float stirling_s10(float w) noexcept { return poly(w, CELLKIT_MATH_LG_S10_F32); }

/// S(sv) and the divided difference (S(sv) - S(su)) / (sv - su).
CELLKIT_HD inline poly_dd_result<double> stirling_s_dd(double sv, double su) noexcept {
  return poly_dd(sv, su, CELLKIT_MATH_LG_S_F64);
}
CELLKIT_HD inline poly_dd_result<float> stirling_s_dd(float sv, float su) noexcept {
  return poly_dd(sv, su, CELLKIT_MATH_LG_S_F32);
}

/// lgamma(x) for x >= 4 (x = +inf gives +inf).
template <class T>
CELLKIT_HD inline T lgamma_stirling(T x) noexcept {
  const T u = T(1) / x;
  return (x - T(0.5)) * (log_(x) - T(1)) + (half_log_2pi_minus_half_v<T> + u * stirling_s(u * u));
}
/// lgamma(x) for x >= 10 (x = +inf gives +inf).
template <class T>
CELLKIT_HD inline T lgamma_stirling10(T x) noexcept {
  const T u = T(1) / x;
  return (x - T(0.5)) * (log_(x) - T(1)) + (half_log_2pi_minus_half_v<T> + u * stirling_s10(u * u));
}

/// lgamma(x) for x > 0 (including +inf).
template <class T>
CELLKIT_HD inline T lgamma_positive(T x) noexcept {
  if (x >= T(10)) return lgamma_stirling10(x);
  if (x >= T(4)) return lgamma_stirling(x);
  if (x >= T(3)) return log_(x - T(1)) + lgamma_2_3(x - T(1));  // x - 1 exact
  if (x >= T(2)) return lgamma_2_3(x);
  if (x >= T(1)) return lgamma_1p_unit(x - T(1)) + T(0);  // + 0 turns lgamma(1) = -0 into +0
  return lgamma_1p_unit(x) - log_(x);                     // lgamma(x) = lgamma(1 + x) - log x
}

/// |x| below which lgamma(x) = -log|x| - gamma x and digamma(x) = -1/x - gamma + zeta(2) x are exact
/// to rounding (the next terms are below 2^-50 relative).
template <class T>
inline constexpr T tiny_arg_v = std::is_same_v<T, float> ? T(1.0 / 16384) : T(1.0 / 268435456);

/// lgamma for x <= 0 or NaN.
template <class T>
CELLKIT_HD inline T lgamma_nonpositive(T x) noexcept {
  if (x != x) return x;
  if (x > -tiny_arg_v<T>) return x == T(0) ? inf<T>() : -log_(-x) - euler_gamma_v<T> * x;
  if (x == -inf<T>()) return inf<T>();
  const T r = x - rint_(x);  // exact, |r| <= 1/2
  if (r == T(0)) return inf<T>();
  // reflection: |Gamma(x)| = pi / (|sin(pi x)| Gamma(1 - x))
  return log_(pi_v<T> / abs_sinpi(r)) - lgamma_positive(T(1) - x);
}

template <class T>
CELLKIT_HD inline T lgamma(T x) noexcept {
  if (x > T(0)) return lgamma_positive(x);
  return lgamma_nonpositive(x);
}

// ---------------------------------------------------------------------------------------------------
// digamma

/// digamma(x) for x >= 4 (x = +inf gives +inf).
CELLKIT_HD inline double digamma_asymptotic(double x) noexcept {
  const double u = 1.0 / x;
  const double w = u * u;
  if (x >= 10.0) return log_(x) - 0.5 * u - w * poly(w, CELLKIT_MATH_DG_T10_F64);
  return log_(x) - 0.5 * u - w * poly(w, CELLKIT_MATH_DG_T_F64);
}
CELLKIT_HD inline float digamma_asymptotic(float x) noexcept {
  const float u = 1.0f / x;
  const float w = u * u;
  if (x >= 10.0f) return log_(x) - 0.5f * u - w * poly(w, CELLKIT_MATH_DG_T10_F32);
  return log_(x) - 0.5f * u - w * poly(w, CELLKIT_MATH_DG_T_F32);
}

/// digamma(1 + t) for t in [0, 1], from the exact t (1 + t is never formed): (x - x0) = (t - (x0 - 1)),
/// with x0_hi - 1 exact.
CELLKIT_HD inline double digamma_1p_unit(double t) noexcept {
  return ((t - (digamma_root_hi_f64 - 1.0)) - digamma_root_lo_f64) * poly(t - 0.5, CELLKIT_MATH_DG_R_F64);
}
CELLKIT_HD inline float digamma_1p_unit(float t) noexcept {
  return ((t - (digamma_root_hi_f32 - 1.0f)) - digamma_root_lo_f32) * poly(t - 0.5f, CELLKIT_MATH_DG_R_F32);
}

/// digamma(x) for x > 0 (including +inf).
template <class T>
CELLKIT_HD inline T digamma_positive(T x) noexcept {
  if (x >= T(4)) return digamma_asymptotic(x);
  if (x >= T(3)) return digamma_asymptotic(x + T(1)) - T(1) / x;       // digamma(x + 1) - 1/x
  if (x > T(2)) return digamma_1p_unit(x - T(2)) + T(1) / (x - T(1));  // digamma(x - 1) + 1/(x - 1)
  if (x >= T(1)) return digamma_1p_unit(x - T(1));                     // x - 1, x - 2 exact
  return digamma_1p_unit(x) - T(1) / x;                                // digamma(1 + x) - 1/x
}

template <class T>
CELLKIT_HD inline T digamma(T x) noexcept {
  if (x > T(0)) return digamma_positive(x);
  if (x != x || x == T(0) || x == -inf<T>()) return quiet_nan<T>();
  if (x > -tiny_arg_v<T>) return -T(1) / x - euler_gamma_v<T> + zeta2_v<T> * x;
  const T r = x - rint_(x);
  if (r == T(0)) return quiet_nan<T>();
  // reflection: digamma(x) = digamma(1 - x) - pi cot(pi x)
  return digamma_positive(T(1) - x) - pi_v<T> * cotpi(r);
}

// ---------------------------------------------------------------------------------------------------
// log_poch

/// lgamma(a + x) - lgamma(a) for a >= 4, 0 < x < inf, a < inf, without forming the difference of
/// the two large lgamma values:
///   (a + x - 1/2) log(a + x) - (a - 1/2) log a - x = x (log b - 1) + (a - 1/2) log1p(x / a),  b = a + x,
/// plus the difference of the Stirling remainders u S(u^2) with u = 1/a, v = 1/b:
///   v S(v^2) - u S(u^2) = (v - u) [S(v^2) + u (v + u) S[v^2, u^2]],  v - u = -x / (a b),
/// with S[., .] the divided difference, so every term keeps its relative accuracy.
template <class T>
CELLKIT_HD inline T log_poch_stirling(T a, T x) noexcept {
  const T b = a + x;
  const T u = T(1) / a;
  const T v = T(1) / b;
  const T dvu = -(x * u) * v;  // v - u
  const poly_dd_result<T> s = stirling_s_dd(v * v, u * u);
  const T remainder = dvu * (s.ps + u * (v + u) * s.dd);
  // log1p(y), y = x / a, as log(z) + (1 + y - z) / z with z = fl(1 + y) and 1/z ~ a v: one log
  // instead of the ~3x dearer log1p, error below an ulp of log1p(y) plus an ulp of y.
  const T y = x * u;
  const T z = T(1) + y;
  const T log1p_y = log_(z) + (y - (z - T(1))) * (a * v);
  return x * (log_(b) - T(1)) + ((a - T(0.5)) * log1p_y + remainder);
}

/// log_poch for the cases outside the two fast paths: NaN, x <= 0, a <= 0, infinities, a < 4.
template <class T>
CELLKIT_HD inline T log_poch_general(T a, T x) noexcept {
  if (a != a || x != x) return a + x;
  if (x == T(0)) return T(0);
  if (!(x > T(0) && a > T(0))) return lgamma(a + x) - lgamma(a);  // outside the main domain
  if (a == inf<T>() || x == inf<T>()) return inf<T>();
  if (a >= T(4)) return log_poch_stirling(a, x);
  // a < 4: log_poch(a, x) = log_poch(a + n, x) - log prod_{k<n} (1 + x / (a + k)) with a + n >= 4
  // (the recurrence of Gamma applied to both a and a + x). The product minus one is accumulated as
  // q <- q + y (1 + q), positive terms only; the final subtraction cancels like digamma's recurrence
  // (relative error ~ the ratio of the terms to the result, ~10 at worst away from the point
  // where log_poch(a, x) = 0).
  T q = T(0);
  T y = a;
  do {
    q += (x / y) * (T(1) + q);
    y += T(1);
  } while (y < T(4));
  if (q == inf<T>()) return lgamma(a + x) - lgamma(a);  // x / a beyond the range: no cancellation there
  return log_poch_stirling(y, x) - log1p_(q);
}

template <class T>
CELLKIT_HD inline T log_poch(T a, T x) noexcept {
  // Small integer x (the usual NB count): log(a (a + 1) ... (a + x - 1)), one log. The bounds on a
  // keep the product of at most 8 factors away from overflow and subnormals.
  constexpr T product_a_min = std::is_same_v<T, float> ? T(1e-30) : T(1e-280);
  constexpr T product_a_max = std::is_same_v<T, float> ? T(1e4) : T(1e35);
  if (x > T(0) && x <= T(8) && a >= product_a_min && a <= product_a_max) {
    const int n = static_cast<int>(x);
    if (x == T(n)) {
      // Fixed trip counts and no data-dependent branches (x is random in NB data): on the device
      // selects (no divergence); on the host the prefix products and an indexed load (gcc turns the
      // selects into mispredicted branches).
#if CELLKIT_DEVICE_CODE
      T p = a;
      for (int k = 1; k < 8; ++k) p *= k < n ? a + T(k) : T(1);
#else
      T prefix[8];
      prefix[0] = a;
      for (int k = 1; k < 8; ++k) prefix[k] = prefix[k - 1] * (a + T(k));
      const T p = prefix[n - 1];
#endif
      return log_(p);
    }
  }
  if (a >= T(4) && x > T(0) && a < inf<T>() && x < inf<T>()) return log_poch_stirling(a, x);
  return log_poch_general(a, x);
}

#undef CELLKIT_MATH_LG_A_F64
#undef CELLKIT_MATH_LG_A_F32
#undef CELLKIT_MATH_LG_B_F64
#undef CELLKIT_MATH_LG_B_F32
#undef CELLKIT_MATH_LG_C_F64
#undef CELLKIT_MATH_LG_C_F32
#undef CELLKIT_MATH_LG_S_F64
#undef CELLKIT_MATH_LG_S_F32
#undef CELLKIT_MATH_LG_S10_F64
#undef CELLKIT_MATH_LG_S10_F32
#undef CELLKIT_MATH_DG_T_F64
#undef CELLKIT_MATH_DG_T_F32
#undef CELLKIT_MATH_DG_T10_F64
#undef CELLKIT_MATH_DG_T10_F32
#undef CELLKIT_MATH_DG_R_F64
#undef CELLKIT_MATH_DG_R_F32

}  // namespace cellkit::math::detail
