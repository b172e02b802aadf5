#pragma once
/// @file
/// Branch-free `exp` and `log` that compilers vectorise (AVX2 / AVX-512 with -O2/-O3), for the hot loops of
/// the Sinkhorn sweeps and the soft assignment. `<cmath>`'s exp is a library call the compiler
/// cannot vectorise without -ffast-math; this one is plain arithmetic and bit manipulation.
///
/// `exp_flush(x)`:
/// - double: Cody-Waite reduction x = n ln2 + r (|r| <= ln2/2, ln2 split in two parts), Taylor
///   polynomial of degree 12 for e^r (truncation < 2e-17 relative), scaling by 2^n through the
///   exponent bits. Measured error <= 2 ulp against std::exp on [-708, 709].
/// - float: Cephes' expf: the same reduction in float, degree-7 minimax polynomial; <= 2 ulp.
/// - Results below the smallest normal number are flushed to +0 (x < -708 in double, x < -87.3 in
///   float): denormals would make every later multiply ~100 times slower, and the callers only add
///   such values to sums of order one. x above the overflow threshold gives +inf; NaN gives NaN.
///
/// `log_normal(x)` for positive normal finite x (and +inf -> +inf); other inputs give unspecified
/// finite values (callers select them away):
/// - double: x = 2^k m with m in [sqrt(1/2), sqrt(2)) from the exponent bits, f = m - 1,
///   s = f / (2 + f), log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)) with fdlibm's degree-14 R;
///   k ln 2 added in two parts. Measured error <= 1 ulp against std::log.
/// - float: the same reduction, Cephes' logf polynomial (degree 9); <= 1 ulp.
///
/// `exp_flush_in_place(vector&)`: the same function on one 64-byte SIMD vector
/// (`simd_vector<T>::type`, 16 floats / 8 doubles), for kernels written with vector types (the
/// tiled Sinkhorn sweeps): GCC auto-vectorises the scalar version only inside simple loops, and at
/// 256 bits (its preferred width even on AVX-512 machines). In place through a reference because a
/// 64-byte vector passed or returned by value has a different ABI with and without AVX-512, and
/// translation units built with different -march flags share the inline function's symbol.

#include <cellkit/cluster/detail/simd_kernels.hpp>

#include <bit>
#include <cstdint>
#include <limits>

namespace cellkit::cluster::detail {

inline double exp_flush(double x) {
  constexpr double log2e = 1.4426950408889634074;
  constexpr double ln2_hi = 6.93147180369123816490e-01;  // fdlibm's split of ln 2
  constexpr double ln2_lo = 1.90821492927058770002e-10;
  constexpr double shifter = 0x1.8p52;  // adding it rounds to an integer kept in the low mantissa bits
  constexpr double lowest = -708.0;
  constexpr double highest = 709.782712893384;
  // No clamping: outside [lowest, highest] the value below is garbage and replaced at the end.
  const double t = x * log2e + shifter;
  const double n = t - shifter;
  double r = x - n * ln2_hi;
  r = r - n * ln2_lo;
  // e^r = 1 + (r + r^2 Q(r)), Q(r) = sum_{k=2..12} r^(k-2) / k! by Estrin's scheme (dependency
  // depth 4 instead of Horner's 11: the loop is throughput-bound, not latency-bound); the 1 is
  // added last so that only one rounding touches the leading bits.
  const double r2 = r * r;
  const double r4 = r2 * r2;
  const double q01 = 0.5 + r * 1.66666666666666666667e-01;
  const double q23 = 4.16666666666666666667e-02 + r * 8.33333333333333333333e-03;
  const double q45 = 1.38888888888888888889e-03 + r * 1.98412698412698412698e-04;
  const double q67 = 2.48015873015873015873e-05 + r * 2.75573192239858906526e-06;
  const double q89 = 2.75573192239858906526e-07 + r * 2.50521083854417187751e-08;
  const double q03 = q01 + r2 * q23;
  const double q47 = q45 + r2 * q67;
  const double q810 = q89 + r2 * 2.08767569878680989792e-09;
  const double q = q03 + r4 * (q47 + r4 * q810);
  const double p = 1.0 + (r + r2 * q);
  // Unsigned: out of range (the result is replaced below) the difference wraps instead of overflowing.
  const auto ni = static_cast<std::int64_t>(std::bit_cast<std::uint64_t>(t) - std::bit_cast<std::uint64_t>(shifter));
  // 2^n as 2^(n/2) 2^(n - n/2): n reaches 1024 just below the overflow threshold, where 2^n alone
  // has no exponent field.
  const std::int64_t n1 = ni >> 1;
  const double s1 = std::bit_cast<double>(static_cast<std::uint64_t>(n1 + 1023) << 52);
  const double s2 = std::bit_cast<double>(static_cast<std::uint64_t>(ni - n1 + 1023) << 52);
  const double result = (p * s1) * s2;
  const double big = x > highest ? std::numeric_limits<double>::infinity() : result;
  return x < lowest ? 0.0 : big;
}

inline float exp_flush(float x) {
  constexpr float log2e = 1.44269504088896341f;
  constexpr float c1 = 0.693359375f;  // Cephes' split of ln 2
  constexpr float c2 = -2.12194440e-4f;
  constexpr float shifter = 0x1.8p23f;
  constexpr float lowest = -87.3f;
  constexpr float highest = 88.7228391f;
  const float t = x * log2e + shifter;
  const float n = t - shifter;
  float r = x - n * c1;
  r = r - n * c2;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  // Unsigned: out of range (the result is replaced below) the difference wraps instead of overflowing.
  const auto ni = static_cast<std::int32_t>(std::bit_cast<std::uint32_t>(t) - std::bit_cast<std::uint32_t>(shifter));
  const std::int32_t n1 = ni >> 1;
  const float s1 = std::bit_cast<float>(static_cast<std::uint32_t>(n1 + 127) << 23);
  const float s2 = std::bit_cast<float>(static_cast<std::uint32_t>(ni - n1 + 127) << 23);
  const float result = (p * s1) * s2;
  const float big = x > highest ? std::numeric_limits<float>::infinity() : result;
  return x < lowest ? 0.0f : big;
}

#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
/// Integer vectors with the lane layout of simd_vector<T> (exponent-bit manipulation).
template <class T>
struct simd_int_vector;
template <>
struct simd_int_vector<float> {
  typedef std::int32_t type __attribute__((vector_size(64)));
  typedef std::uint32_t unsigned_type __attribute__((vector_size(64)));
};
template <>
struct simd_int_vector<double> {
  typedef std::int64_t type __attribute__((vector_size(64)));
  typedef std::uint64_t unsigned_type __attribute__((vector_size(64)));
};

/// exp_flush(double) on 8 lanes: the same operations, lane by lane.
inline void exp_flush_in_place(simd_vector<double>::type& value) {
  using vec = simd_vector<double>::type;
  using ivec = simd_int_vector<double>::type;
  using uvec = simd_int_vector<double>::unsigned_type;
  constexpr double log2e = 1.4426950408889634074;
  constexpr double ln2_hi = 6.93147180369123816490e-01;
  constexpr double ln2_lo = 1.90821492927058770002e-10;
  constexpr double shifter = 0x1.8p52;
  const vec x = value;
  const vec zero = {};
  const vec t = x * log2e + shifter;
  const vec n = t - shifter;
  vec r = x - n * ln2_hi;
  r = r - n * ln2_lo;
  const vec r2 = r * r;
  const vec r4 = r2 * r2;
  const vec q01 = 0.5 + r * 1.66666666666666666667e-01;
  const vec q23 = 4.16666666666666666667e-02 + r * 8.33333333333333333333e-03;
  const vec q45 = 1.38888888888888888889e-03 + r * 1.98412698412698412698e-04;
  const vec q67 = 2.48015873015873015873e-05 + r * 2.75573192239858906526e-06;
  const vec q89 = 2.75573192239858906526e-07 + r * 2.50521083854417187751e-08;
  const vec q03 = q01 + r2 * q23;
  const vec q47 = q45 + r2 * q67;
  const vec q810 = q89 + r2 * 2.08767569878680989792e-09;
  const vec q = q03 + r4 * (q47 + r4 * q810);
  const vec p = 1.0 + (r + r2 * q);
  // (A cast between vector types of one size reinterprets the bits, like std::bit_cast, which
  // would itself return a vector by value.)
  const ivec ni = (ivec)((uvec)t - std::bit_cast<std::uint64_t>(shifter));
  const ivec n1 = ni >> 1;
  const vec s1 = (vec)((n1 + 1023) << 52);
  const vec s2 = (vec)((ni - n1 + 1023) << 52);
  const vec result = (p * s1) * s2;
  const vec big = x > 709.782712893384 ? zero + std::numeric_limits<double>::infinity() : result;
  value = x < -708.0 ? zero : big;
}

/// exp_flush(float) on 16 lanes: the same operations, lane by lane.
inline void exp_flush_in_place(simd_vector<float>::type& value) {
  using vec = simd_vector<float>::type;
  using ivec = simd_int_vector<float>::type;
  using uvec = simd_int_vector<float>::unsigned_type;
  constexpr float shifter = 0x1.8p23f;
  const vec x = value;
  const vec zero = {};
  const vec t = x * 1.44269504088896341f + shifter;
  const vec n = t - shifter;
  vec r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const vec z = r * r;
  vec p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  const ivec ni = (ivec)((uvec)t - std::bit_cast<std::uint32_t>(shifter));
  const ivec n1 = ni >> 1;
  const vec s1 = (vec)((n1 + 127) << 23);
  const vec s2 = (vec)((ni - n1 + 127) << 23);
  const vec result = (p * s1) * s2;
  const vec big = x > 88.7228391f ? zero + std::numeric_limits<float>::infinity() : result;
  value = x < -87.3f ? zero : big;
}
#endif

inline double log_normal(double x) {
  constexpr double ln2_hi = 6.93147180369123816490e-01;
  constexpr double ln2_lo = 1.90821492927058770002e-10;
  constexpr std::int64_t sqrt_half_bits = 0x3fe6a09e667f3bcdLL;  // bits of sqrt(1/2)
  const std::int64_t bits = std::bit_cast<std::int64_t>(x);
  const std::int64_t k = (bits - sqrt_half_bits) >> 52;  // x = 2^k m, m in [sqrt(1/2), sqrt(2))
  const double m = std::bit_cast<double>(static_cast<std::int64_t>(bits - (k << 52)));
  const double f = m - 1.0;
  const double s = f / (2.0 + f);
  const double z = s * s;
  const double w = z * z;
  const double t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
  const double t2 =
      z * (6.666666666666735130e-01 +
           w * (2.857142874366239149e-01 + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
  const double r = t2 + t1;
  const double hfsq = 0.5 * f * f;
  const double dk = static_cast<double>(k);
  const double result = dk * ln2_hi - ((hfsq - (s * (hfsq + r) + dk * ln2_lo)) - f);
  return x == std::numeric_limits<double>::infinity() ? x : result;
}

inline float log_normal(float x) {
  constexpr std::int32_t sqrt_half_bits = 0x3f3504f3;  // bits of sqrt(1/2)
  const std::int32_t bits = std::bit_cast<std::int32_t>(x);
  const std::int32_t k = (bits - sqrt_half_bits) >> 23;
  const float m = std::bit_cast<float>(static_cast<std::int32_t>(bits - (k << 23)));
  const float f = m - 1.0f;
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  const float fk = static_cast<float>(k);
  y += -2.12194440e-4f * fk;
  y += -0.5f * z;
  const float result = (f + y) + 0.693359375f * fk;
  return x == std::numeric_limits<float>::infinity() ? x : result;
}

}  // namespace cellkit::cluster::detail
