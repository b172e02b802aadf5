#pragma once
/// @file
/// Branch-free exp, expm1, log and log1p that GCC/Clang auto-vectorise (not a public interface).
///
/// glibc's exp/log1p/expm1 are library calls no compiler vectorises without -ffast-math; these are
/// plain arithmetic, integer bit manipulation and bitwise selects, so a loop calling them vectorises
/// (AVX2 / AVX-512 with -O2/-O3 and -march=native). Float and double; every function handles its
/// whole domain (no caller-side special cases needed):
///
/// - `vexp(x)`: Cody-Waite reduction x = k log 2 + r (|r| <= log(2)/2, log 2 in two parts), e^r - 1
///   by Taylor (degree 13 double / 7 float: truncation below 2^-57 / 2^-27 relative), e^x =
///   2^k (1 + p) with 2^k applied as two normal factors, so subnormal results are rounded once and
///   need no branch. Overflow -> +inf, underflow -> 0 (through the subnormals), exp(+inf) = +inf,
///   exp(-inf) = 0, NaN -> NaN. Measured (tests/nn/test_activation.cpp, float and double): <= 1 ulp
///   from std::exp, subnormal results included.
/// - `vexpm1(x)` = 2^k p + (2^k - 1) from the same reduction: full relative accuracy for
///   x >= -log 2 (k in {-1, 0}: no cancellation), |result| >= 1/2 below, where the absolute error
///   eps is again ~1 ulp; for k beyond the mantissa width it is e^x itself (the -1 is below half an
///   ulp). Overflow -> +inf, -inf -> -1, NaN -> NaN. Measured <= 2 ulp from std::expm1.
/// - `vlog(x)`: x = 2^e m with m in [sqrt(1/2), sqrt(2)) (subnormals rescaled), log m = 2 atanh(f),
///   f = (m - 1)/(m + 1), |f| <= 0.1716, as f (2 + f^2 P(f^2)) (Taylor: 10 terms double, 5 float),
///   plus e log 2 in two parts. log(0) = -inf, log(x < 0) = NaN, log(+inf) = +inf, NaN -> NaN.
/// - `vlog1p(x)` = log(u) + (x - (u - 1)) / u with u = fl(1 + x) (the second term restores what
///   rounding 1 + x lost). log1p(-1) = -inf, x < -1 -> NaN, +inf -> +inf, NaN -> NaN.
///   Measured <= 2 ulp from std::log1p (also on [0, 1], the range softplus uses).
/// - `vlog1p_unit(x)`: the same without the special-case selects, for x in [0, 1] or NaN (NaN ->
///   NaN): softplus's log1p(e^-|x|).
///
/// Device code (nvcc's device pass) forwards to math::exp/expm1/log/log1p (CUDA's own; selects are
/// native there), so host and device agree to rounding only, as everywhere in cellkit.
///
/// The same algorithms exist, specialised to their callers, in likelihood/detail/fast_math.hpp
/// (fexp_pair, flog), cluster/detail/vector_math.hpp (exp_flush, log_normal) and
/// contrastive/detail/common.hpp (vexp); those users are not switched to this header yet.

#include <cellkit/core/config.hpp>
#include <cellkit/core/math.hpp>

#include <bit>
#include <cstdint>
#include <limits>
#include <type_traits>

/// Forces inlining: a call inside the caller's loop would stop its vectorisation.
#if defined(__CUDACC__)
#define CELLKIT_VX_INLINE __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define CELLKIT_VX_INLINE inline __attribute__((always_inline))
#else
#define CELLKIT_VX_INLINE inline
#endif

namespace cellkit::detail {

/// c ? a : b without a branch on the host: a plain `?:` between two computed values lets GCC sink
/// each operand's computation into its own conditional block, which re-creates control flow and
/// stops vectorisation; the bitwise blend uses both operands unconditionally.
template <class T>
CELLKIT_HD CELLKIT_VX_INLINE T vsel(bool c, T a, T b) noexcept {
#if CELLKIT_DEVICE_CODE
  return c ? a : b;
#else
  using B = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
  const B m = B(0) - static_cast<B>(c);
  return std::bit_cast<T>(static_cast<B>((std::bit_cast<B>(a) & m) | (std::bit_cast<B>(b) & ~m)));
#endif
}

template <class T>
struct vx_traits;

template <>
struct vx_traits<double> {
  using bits = std::uint64_t;
  using sbits = std::int64_t;
  static constexpr int mantissa = 52;
  static constexpr sbits bias = 1023;
  static constexpr bits mantissa_mask = 0x000fffffffffffffull;
  static constexpr bits one_bits = 0x3ff0000000000000ull;
  static constexpr double min_normal = 2.2250738585072014e-308;
  static constexpr double subnormal_scale = 0x1p54;
  static constexpr sbits subnormal_shift = 54;
  static constexpr double ln2_hi = 6.93147180369123816490e-01;  // fdlibm: 32 significant bits
  static constexpr double ln2_lo = 1.90821492927058770002e-10;
  static constexpr double log2e = 1.44269504088896338700e+00;
  static constexpr double shifter = 0x1.8p52;  // adding and subtracting it rounds to an integer
  static constexpr double exp_lo = -1100.0;    // clamps far beyond under/overflow: k stays small
  static constexpr double exp_hi = 1100.0;
  static constexpr sbits expm1_big_k = 56;  // beyond: e^x - 1 rounds to e^x (within 1/16 ulp)
};

template <>
struct vx_traits<float> {
  using bits = std::uint32_t;
  using sbits = std::int32_t;
  static constexpr int mantissa = 23;
  static constexpr sbits bias = 127;
  static constexpr bits mantissa_mask = 0x007fffffu;
  static constexpr bits one_bits = 0x3f800000u;
  static constexpr float min_normal = 1.17549435e-38f;
  static constexpr float subnormal_scale = 0x1p25f;
  static constexpr sbits subnormal_shift = 25;
  static constexpr float ln2_hi = 0.693145751953125f;  // 0x3f317200: 16 significant bits
  static constexpr float ln2_lo = 1.428606765330187045e-06f;
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float shifter = 0x1.8p23f;
  static constexpr float exp_lo = -160.0f;
  static constexpr float exp_hi = 160.0f;
  static constexpr sbits expm1_big_k = 27;
};

/// Cody-Waite reduction: x = k log 2 + r, p = e^r - 1, s1 s2 = 2^k (two normal factors).
template <class T>
struct vx_reduced {
  T p, s1, s2;
  typename vx_traits<T>::sbits k;
};

template <class T>
CELLKIT_VX_INLINE vx_reduced<T> vx_reduce(T x) noexcept {
  using tr = vx_traits<T>;
  using bits = typename tr::bits;
  using sbits = typename tr::sbits;
  T xc = vsel(x != x, T(0), x);
  xc = vsel(xc < tr::exp_lo, tr::exp_lo, xc);
  xc = vsel(xc > tr::exp_hi, tr::exp_hi, xc);
  const T kf = (xc * tr::log2e + tr::shifter) - tr::shifter;
  const T r = (xc - kf * tr::ln2_hi) - kf * tr::ln2_lo;
  T p;
  if constexpr (std::is_same_v<T, double>) {
    // Horner, highest degree first: r (1 + r/2 + r^2/6 + ... + r^12/13!).
    T q = 1.0 / 6227020800.0;
    q = q * r + 1.0 / 479001600.0;
    q = q * r + 1.0 / 39916800.0;
    q = q * r + 1.0 / 3628800.0;
    q = q * r + 1.0 / 362880.0;
    q = q * r + 1.0 / 40320.0;
    q = q * r + 1.0 / 5040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    p = r + (r * r) * q;
  } else {
    T q = 1.0f / 5040;
    q = q * r + 1.0f / 720;
    q = q * r + 1.0f / 120;
    q = q * r + 1.0f / 24;
    q = q * r + 1.0f / 6;
    q = q * r + 0.5f;
    p = r + (r * r) * q;
  }
  const auto k = static_cast<sbits>(kf);
  const sbits k1 = k >> 1;  // floor(k / 2)
  const sbits k2 = k - k1;
  const T s1 = std::bit_cast<T>(static_cast<bits>(static_cast<bits>(k1 + tr::bias) << tr::mantissa));
  const T s2 = std::bit_cast<T>(static_cast<bits>(static_cast<bits>(k2 + tr::bias) << tr::mantissa));
  return {p, s1, s2, k};
}

/// e^x, branch-free (see the file comment).
template <class T>
CELLKIT_HD CELLKIT_VX_INLINE T vexp(T x) noexcept {
#if CELLKIT_DEVICE_CODE
  return math::exp(x);
#else
  const vx_reduced<T> q = vx_reduce(x);
  const T ex = ((q.p + T(1)) * q.s1) * q.s2;
  return vsel(x != x, x, ex);
#endif
}

/// e^x - 1, branch-free (see the file comment).
template <class T>
CELLKIT_HD CELLKIT_VX_INLINE T vexpm1(T x) noexcept {
#if CELLKIT_DEVICE_CODE
  return math::expm1(x);
#else
  const vx_reduced<T> q = vx_reduce(x);
  const T ex = ((q.p + T(1)) * q.s1) * q.s2;
  const T s = q.s1 * q.s2;  // 2^k: overflows to inf only where the k > big_k branch is taken
  const T em = s * q.p + (s - T(1));
  const T r = vsel(q.k > vx_traits<T>::expm1_big_k, ex, em);
  return vsel(x != x, x, r);
#endif
}

/// log(x) for finite x > 0 (subnormals included); other arguments give unspecified values.
template <class T>
CELLKIT_VX_INLINE T vlog_positive(T x) noexcept {
  using tr = vx_traits<T>;
  using bits = typename tr::bits;
  using sbits = typename tr::sbits;
  const bool sub = x < tr::min_normal;
  const T xs = vsel(sub, x * tr::subnormal_scale, x);
  const bits b = std::bit_cast<bits>(xs);
  sbits e = static_cast<sbits>((b >> tr::mantissa) & static_cast<bits>(2 * tr::bias + 1)) - tr::bias -
            (sub ? tr::subnormal_shift : sbits(0));
  T m = std::bit_cast<T>(static_cast<bits>((b & tr::mantissa_mask) | tr::one_bits));  // [1, 2)
  const bool big = m > T(1.41421356237309504880);
  m = vsel(big, T(0.5) * m, m);
  e += big ? sbits(1) : sbits(0);
  const T f = (m - T(1)) / (m + T(1));
  const T w = f * f;
  T p;
  if constexpr (std::is_same_v<T, double>) {
    p = 2.0 / 21;
    p = p * w + 2.0 / 19;
    p = p * w + 2.0 / 17;
    p = p * w + 2.0 / 15;
    p = p * w + 2.0 / 13;
    p = p * w + 2.0 / 11;
    p = p * w + 2.0 / 9;
    p = p * w + 2.0 / 7;
    p = p * w + 2.0 / 5;
    p = p * w + 2.0 / 3;
  } else {
    p = 2.0f / 11;
    p = p * w + 2.0f / 9;
    p = p * w + 2.0f / 7;
    p = p * w + 2.0f / 5;
    p = p * w + 2.0f / 3;
  }
  const T ek = static_cast<T>(e);
  return ek * tr::ln2_hi + (ek * tr::ln2_lo + (T(2) * f + f * (w * p)));
}

/// log(x), branch-free (see the file comment).
template <class T>
CELLKIT_HD CELLKIT_VX_INLINE T vlog(T x) noexcept {
#if CELLKIT_DEVICE_CODE
  return math::log(x);
#else
  constexpr T inf = std::numeric_limits<T>::infinity();
  T r = vlog_positive(x);
  r = vsel(x == inf, inf, r);
  r = vsel(x == T(0), -inf, r);
  r = vsel(x < T(0), std::numeric_limits<T>::quiet_NaN(), r);
  return vsel(x != x, x, r);
#endif
}

/// log(1 + x) for x in [0, 1] (or NaN -> NaN), without special-case selects.
template <class T>
CELLKIT_HD CELLKIT_VX_INLINE T vlog1p_unit(T x) noexcept {
#if CELLKIT_DEVICE_CODE
  return math::log1p(x);
#else
  const T u = T(1) + x;
  return vlog_positive(u) + (x - (u - T(1))) / u;  // NaN x: the correction is NaN
#endif
}

/// log(1 + x), branch-free (see the file comment).
template <class T>
CELLKIT_HD CELLKIT_VX_INLINE T vlog1p(T x) noexcept {
#if CELLKIT_DEVICE_CODE
  return math::log1p(x);
#else
  constexpr T inf = std::numeric_limits<T>::infinity();
  const T u = T(1) + x;
  T r = vlog_positive(u) + (x - (u - T(1))) / u;
  r = vsel(x == inf, inf, r);
  r = vsel(x == T(-1), -inf, r);
  r = vsel(x < T(-1), std::numeric_limits<T>::quiet_NaN(), r);
  return vsel(x != x, x, r);
#endif
}

}  // namespace cellkit::detail
