#pragma once
/// @file
/// Branch-free log and exp/expm1 for the likelihood kernels (not a public interface).
///
/// The x = 0 kernels of NB/ZINB run over ~90% of a count matrix; with glibc's log1p/expm1 (~11-17 ns
/// each, never vectorised without -ffast-math) they dominate the sweep. These versions are plain
/// arithmetic and selects, so GCC/Clang vectorise a loop that calls them (the sweep's x = 0 pass is
/// such a loop), and they are accurate to ~2 ulp:
///
/// - `flog(x)` for finite x > 0 (subnormals included): x = 2^e m, m in [sqrt(1/2), sqrt(2)),
///   log m = 2 atanh(f), f = (m - 1)/(m + 1), |f| <= 0.1716, as f (2 + f^2 P(f^2)) (Taylor, 10 terms
///   double / 5 float: truncation below 2^-55 / 2^-25 relative), plus e log 2 in two parts. Other
///   arguments (0, inf, negative, NaN) give unspecified finite values or NaN: the callers select their
///   own result for those (handling them here would add selects correlated with the subnormal test,
///   which GCC turns back into branches, and the loop would no longer vectorise).
/// - `fexp_pair(x)` -> {exp(x), expm1(x)}: x = k log 2 + r (Cody-Waite, |r| <= log(2)/2),
///   p = expm1(r) by Taylor (degree 13 double / 7 float), exp(x) = 2^k (1 + p) with 2^k applied as two
///   normal factors (so subnormal results and k beyond the exponent range need no branch), and
///   expm1(x) = 2^k p + (2^k - 1), which has full relative accuracy for x >= -log 2 (k in {-1, 0}) and
///   absolute accuracy eps below. exp(-inf) = 0, exp(+inf) = +inf, NaN -> NaN.
/// - `flog1p_hint(s, u)`: log(1 + s) from u = fl(1 + s) as flog(u) + (s - (u - 1)) / u.
///
/// In device code they forward to CUDA's log/exp/expm1 (fast and vectorisation is moot there).
/// Host and device results therefore agree to rounding only, as everywhere in cellkit.

#include <cellkit/core/config.hpp>
#include <cellkit/core/math.hpp>

#include <bit>
#include <cstdint>
#include <type_traits>

/// Forces inlining of the small kernels the host sweep vectorises (a call inside the loop would
/// prevent it).
#if defined(__CUDACC__)
#define CELLKIT_LK_INLINE __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define CELLKIT_LK_INLINE inline __attribute__((always_inline))
#else
#define CELLKIT_LK_INLINE inline
#endif

namespace cellkit::likelihood::detail {

/// c0 + t (c1 + t (...)) (Horner).
template <class T, class... Cs>
CELLKIT_HD constexpr T horner(T t, T c0, Cs... cs) noexcept {
  if constexpr (sizeof...(Cs) == 0) {
    (void)t;
    return c0;
  } else {
    return c0 + t * horner<T>(t, static_cast<T>(cs)...);
  }
}

/// c ? a : b without a branch for vectorised host loops. A plain `?:` between two computed values lets
/// GCC sink each operand's computation into its own conditional block (both computations are only
/// "used" on one side), which re-creates control flow and stops vectorisation; the bitwise blend uses
/// both operands unconditionally. Device code uses the plain conditional (selects are native there).
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T sel(bool c, T a, T b) noexcept {
#if CELLKIT_DEVICE_CODE
  return c ? a : b;
#else
  using B = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
  const B m = B(0) - static_cast<B>(c);
  return std::bit_cast<T>(static_cast<B>((std::bit_cast<B>(a) & m) | (std::bit_cast<B>(b) & ~m)));
#endif
}

template <class T>
struct exp_pair {
  T exp;    ///< e^x
  T expm1;  ///< e^x - 1
};

template <class T>
struct fm_traits;

template <>
struct fm_traits<double> {
  using bits = std::uint64_t;
  using sbits = std::int64_t;
  static constexpr int mantissa = 52;
  static constexpr sbits bias = 1023;
  static constexpr bits mantissa_mask = 0x000fffffffffffffull;
  static constexpr bits one_bits = 0x3ff0000000000000ull;
  static constexpr double min_normal = 2.2250738585072014e-308;
  static constexpr double subnormal_scale = 0x1p54;
  static constexpr int subnormal_shift = 54;
  static constexpr double ln2_hi = 6.93147180369123816490e-01;  // fdlibm: 32 significant bits
  static constexpr double ln2_lo = 1.90821492927058770002e-10;
  static constexpr double log2e = 1.44269504088896338700e+00;
  static constexpr double shifter = 0x1.8p52;  // adding and subtracting it rounds to an integer
  static constexpr double exp_lo = -1100.0;    // clamps: far beyond under/overflow, k stays small
  static constexpr double exp_hi = 1100.0;
};

template <>
struct fm_traits<float> {
  using bits = std::uint32_t;
  using sbits = std::int32_t;
  static constexpr int mantissa = 23;
  static constexpr sbits bias = 127;
  static constexpr bits mantissa_mask = 0x007fffffu;
  static constexpr bits one_bits = 0x3f800000u;
  static constexpr float min_normal = 1.17549435e-38f;
  static constexpr float subnormal_scale = 0x1p25f;
  static constexpr int subnormal_shift = 25;
  static constexpr float ln2_hi = 0.693145751953125f;  // 0x3f317200: 16 significant bits
  static constexpr float ln2_lo = 1.428606765330187045e-06f;
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float shifter = 0x1.8p23f;
  static constexpr float exp_lo = -160.0f;
  static constexpr float exp_hi = 160.0f;
};

/// 2 (f + f^3/3 + f^5/5 + ...) = f (2 + w P(w)), w = f^2.
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T log_atanh_poly(T f) noexcept {
  const T w = f * f;
  T p;
  if constexpr (std::is_same_v<T, double>) {
    p = horner(w, 2.0 / 3, 2.0 / 5, 2.0 / 7, 2.0 / 9, 2.0 / 11, 2.0 / 13, 2.0 / 15, 2.0 / 17, 2.0 / 19, 2.0 / 21);
  } else {
    p = horner(w, 2.0f / 3, 2.0f / 5, 2.0f / 7, 2.0f / 9, 2.0f / 11);
  }
  return f * (T(2) + w * p);
}

/// Natural logarithm, branch-free (see the file comment).
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T flog(T x) noexcept {
#if CELLKIT_DEVICE_CODE
  return math::log(x);
#else
  using tr = fm_traits<T>;
  using bits = typename tr::bits;
  using sbits = typename tr::sbits;
  // Every floating-point operation is computed unconditionally and only results are selected: with
  // the default -ftrapping-math the compiler may not speculate a conditional operation, and a branch
  // would stop the vectorisation of the caller's loop.
  const bool sub = x < tr::min_normal;
  const T x_scaled = x * tr::subnormal_scale;
  const T xs = sel(sub, x_scaled, x);
  const bits b = std::bit_cast<bits>(xs);
  sbits e = static_cast<sbits>((b >> tr::mantissa) & static_cast<bits>(2 * tr::bias + 1)) - tr::bias -
            (sub ? tr::subnormal_shift : 0);
  T m = std::bit_cast<T>(static_cast<bits>((b & tr::mantissa_mask) | tr::one_bits));  // [1, 2)
  const bool big = m > T(1.41421356237309504880);
  const T m_half = T(0.5) * m;
  m = sel(big, m_half, m);
  e += big ? 1 : 0;
  const T f = (m - T(1)) / (m + T(1));
  const T ek = static_cast<T>(e);
  return ek * tr::ln2_hi + (ek * tr::ln2_lo + log_atanh_poly(f));
#endif
}

/// expm1(r) for |r| <= log(2)/2 (Taylor: degree 13 double, 7 float).
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T expm1_reduced(T r) noexcept {
  if constexpr (std::is_same_v<T, double>) {
    return r * horner(r, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320, 1.0 / 362880,
                      1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800);
  } else {
    return r * horner(r, 1.0f, 1.0f / 2, 1.0f / 6, 1.0f / 24, 1.0f / 120, 1.0f / 720, 1.0f / 5040);
  }
}

/// {exp(x), expm1(x)}, branch-free (see the file comment).
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE exp_pair<T> fexp_pair(T x) noexcept {
#if CELLKIT_DEVICE_CODE
  return {math::exp(x), math::expm1(x)};
#else
  using tr = fm_traits<T>;
  using bits = typename tr::bits;
  using sbits = typename tr::sbits;
  const bool nan = x != x;
  T xc = sel(nan, T(0), x);
  xc = sel(xc < tr::exp_lo, tr::exp_lo, xc);
  xc = sel(xc > tr::exp_hi, tr::exp_hi, xc);
  const T kf = (xc * tr::log2e + tr::shifter) - tr::shifter;
  const T r = (xc - kf * tr::ln2_hi) - kf * tr::ln2_lo;
  const T p = expm1_reduced(r);
  const auto k = static_cast<sbits>(kf);
  const sbits k1 = k >> 1;  // floor(k / 2)
  const sbits k2 = k - k1;
  const T s1 = std::bit_cast<T>(static_cast<bits>(static_cast<bits>(k1 + tr::bias) << tr::mantissa));
  const T s2 = std::bit_cast<T>(static_cast<bits>(static_cast<bits>(k2 + tr::bias) << tr::mantissa));
  const T s = s1 * s2;  // 2^k (0 or subnormal far below; never needed exactly there)
  T ex = (p + T(1)) * s1 * s2;
  T em = s * p + (s - T(1));
  const T qnan = T(__builtin_nan(""));
  ex = sel(nan, qnan, ex);
  em = sel(nan, qnan, em);
  return {ex, em};
#endif
}

/// log(1 + s) for s > -1 given u = fl(1 + s) (and 1/u, which callers reuse): log(u) + (s - (u - 1)) / u.
template <class T>
CELLKIT_HD CELLKIT_LK_INLINE T flog1p_hint(T s, T u, T inv_u) noexcept {
#if CELLKIT_DEVICE_CODE
  (void)u;
  (void)inv_u;
  return math::log1p(s);
#else
  return flog(u) + (s - (u - T(1))) * inv_u;
#endif
}

}  // namespace cellkit::likelihood::detail
