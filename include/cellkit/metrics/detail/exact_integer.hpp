#pragma once
// Exact integer arithmetic for the pair-counting metrics: 128-bit integers (the GCC/Clang
// `__int128` extension, also available to nvcc's host and device compilers), a minimal unsigned
// 256-bit type for products of two 128-bit pair counts, and the correctly rounded conversion of a
// ratio of two such integers to double. Only what the metrics need: mul, add, sub, compare, shift.

#include <cellkit/core/config.hpp>

#include <cmath>
#include <cstdint>

namespace cellkit::metrics {

// `__extension__` keeps -Wpedantic quiet: __int128 is a GCC/Clang extension, not ISO C++.
/// Unsigned 128-bit integer (GCC/Clang extension): pair counts C(n, 2) < 2^127 for n < 2^64.
__extension__ typedef unsigned __int128 uint128_t;
/// Signed 128-bit integer (GCC/Clang extension).
__extension__ typedef __int128 int128_t;

}  // namespace cellkit::metrics

namespace cellkit::metrics::detail {

/// Number of pairs among `count` items, C(count, 2) = count (count - 1) / 2, exactly (count >= 0).
inline uint128_t pairs_of(std::int64_t count) {
  const auto c = static_cast<uint128_t>(count);
  // One of c and c - 1 is even: halve it first, so no intermediate exceeds the result's width.
  return (c % 2 == 0) ? (c / 2) * (c == 0 ? 0 : c - 1) : c * ((c - 1) / 2);
}

/// Number of significant bits of a 128-bit value (0 for 0).
inline int bit_length(uint128_t x) {
  const auto high = static_cast<std::uint64_t>(x >> 64);
  const auto low = static_cast<std::uint64_t>(x);
  if (high != 0) return 128 - __builtin_clzll(high);
  if (low != 0) return 64 - __builtin_clzll(low);
  return 0;
}

/// Unsigned 256-bit integer as two 128-bit halves; enough for a product of two values < 2^128.
struct wide_u256 {
  uint128_t high = 0;
  uint128_t low = 0;

  static wide_u256 from(uint128_t x) { return {0, x}; }

  friend bool operator==(const wide_u256& a, const wide_u256& b) { return a.high == b.high && a.low == b.low; }
  friend bool operator<(const wide_u256& a, const wide_u256& b) {
    return a.high != b.high ? a.high < b.high : a.low < b.low;
  }
  friend bool operator>=(const wide_u256& a, const wide_u256& b) { return !(a < b); }

  friend wide_u256 operator+(const wide_u256& a, const wide_u256& b) {
    wide_u256 r{a.high + b.high, a.low + b.low};
    if (r.low < a.low) ++r.high;  // carry
    return r;
  }
  /// a - b for a >= b.
  friend wide_u256 operator-(const wide_u256& a, const wide_u256& b) {
    wide_u256 r{a.high - b.high, a.low - b.low};
    if (a.low < b.low) --r.high;  // borrow
    return r;
  }
  wide_u256 shifted_left(int bits) const {  // 0 <= bits < 256
    if (bits == 0) return *this;
    if (bits >= 128) return {low << (bits - 128), 0};
    return {(high << bits) | (low >> (128 - bits)), low << bits};
  }
  int bit_length() const { return high != 0 ? 128 + detail::bit_length(high) : detail::bit_length(low); }
  bool is_zero() const { return high == 0 && low == 0; }
};

/// The exact 256-bit product of two 128-bit values (schoolbook on 64-bit limbs).
inline wide_u256 multiply_wide(uint128_t a, uint128_t b) {
  const auto a0 = static_cast<std::uint64_t>(a);
  const auto a1 = static_cast<std::uint64_t>(a >> 64);
  const auto b0 = static_cast<std::uint64_t>(b);
  const auto b1 = static_cast<std::uint64_t>(b >> 64);
  const uint128_t p00 = static_cast<uint128_t>(a0) * b0;
  const uint128_t p01 = static_cast<uint128_t>(a0) * b1;
  const uint128_t p10 = static_cast<uint128_t>(a1) * b0;
  const uint128_t p11 = static_cast<uint128_t>(a1) * b1;
  // The middle column: three terms below 2^64 each, so the sum fits in 128 bits.
  const uint128_t middle = (p00 >> 64) + static_cast<std::uint64_t>(p01) + static_cast<std::uint64_t>(p10);
  wide_u256 r;
  r.low = (middle << 64) | static_cast<std::uint64_t>(p00);
  r.high = p11 + (p01 >> 64) + (p10 >> 64) + (middle >> 64);
  return r;
}

/// numerator / denominator rounded once, to nearest (ties to even), as a double.
/// Both operands must be below 2^255 and the denominator non-zero. Long division produces 55
/// quotient bits plus a sticky bit, so the only rounding is the final one to 53 bits.
/// Cost: ~55 compare/subtract/shift steps on 256-bit values.
inline double exact_ratio_to_double(wide_u256 numerator, wide_u256 denominator) {
  if (numerator.is_zero()) return 0.0;
  const int numerator_bits = numerator.bit_length();
  const int denominator_bits = denominator.bit_length();
  // Align both so their top bit is bit 254: the quotient is then in (1/2, 2) and the remainder,
  // always below the denominator, can be doubled without leaving 256 bits.
  const wide_u256 n = numerator.shifted_left(255 - numerator_bits);
  const wide_u256 d = denominator.shifted_left(255 - denominator_bits);
  std::uint64_t quotient = 0;  // bits of weight 2^0 .. 2^-54 of n / d
  wide_u256 remainder = n;
  for (int bit = 0; bit < 55; ++bit) {
    quotient <<= 1;
    if (remainder >= d) {
      remainder = remainder - d;
      quotient |= 1;
    }
    remainder = remainder.shifted_left(1);
  }
  const bool sticky_remainder = !remainder.is_zero();
  // quotient has 55 bits when n >= d, else 54: keep 53, round on the rest.
  const int quotient_bits = 64 - __builtin_clzll(quotient);
  const int dropped = quotient_bits - 53;  // 1 or 2
  std::uint64_t mantissa = quotient >> dropped;
  const std::uint64_t rest = quotient & ((std::uint64_t{1} << dropped) - 1);
  const std::uint64_t half = std::uint64_t{1} << (dropped - 1);
  const bool above_half = rest > half || (rest == half && sticky_remainder);
  const bool exactly_half = rest == half && !sticky_remainder;
  if (above_half || (exactly_half && (mantissa & 1) != 0)) ++mantissa;  // may carry to 2^53: still exact
  // value = mantissa * 2^(dropped - 54) * 2^(numerator_bits - denominator_bits)
  return std::ldexp(static_cast<double>(mantissa), dropped - 54 + numerator_bits - denominator_bits);
}

inline double exact_ratio_to_double(uint128_t numerator, uint128_t denominator) {
  return exact_ratio_to_double(wide_u256::from(numerator), wide_u256::from(denominator));
}

/// A signed 128-bit value converted to double (one rounding; the compiler's conversion is exact
/// to nearest for __int128).
inline double to_double(int128_t x) { return static_cast<double>(x); }

}  // namespace cellkit::metrics::detail
