#pragma once
/// @file
/// Counter-based random numbers for host and device code: the Philox4x32-10 block function, a
/// per-element engine `philox_engine`, and distributions (uniform, normal, bernoulli, gamma,
/// poisson) as free `CELLKIT_HD` functions.
///
/// ## Stream mapping
///
/// A `philox_engine(seed, stream_id, element)` produces the 32-bit words of Philox4x32-10 blocks
///
///     key     = { seed & 0xffffffff, seed >> 32 }
///     counter = { j, element & 0xffffffff, element >> 32, stream_id }      for j = 0, 1, 2, ...
///
/// in the order block 0 word 0, 1, 2, 3, block 1 word 0, ... (`next_u32()` returns them one by
/// one). `j` is a 32-bit block counter, so one engine yields 2^32 blocks (2^34 words) before its
/// stream repeats.
///
/// ## Determinism guarantee
///
/// The words of the stream depend only on (seed, stream_id, element). A parallel algorithm that
/// gives element (cell, gene, row, ...) `i` its own `philox_engine(seed, stream, i)` and draws for
/// `i` only from it therefore produces the same draws under `serial`, `openmp{any threads}` and
/// `cuda`, whatever the scheduling. Precisely:
///
/// - `next_u32`, `uniform<T>(eng)` and `bernoulli` use integer arithmetic and exact scaling only:
///   they are bitwise identical on every backend, compiler and thread count.
/// - `normal`, `gamma`, `poisson` (log/exp/sqrt/sin/cos) and `uniform(eng, lo, hi)` (one rounded
///   multiply-add) are bitwise identical across all host policies and thread counts of one build.
///   Host and CUDA device results use different math libraries (and nvcc contracts a*b+c into FMA
///   by default), so they can differ in the last bits; a rejection sampler then very rarely
///   (probability of order one ulp per test) takes a different branch and that element's later
///   draws differ. `--use_fast_math` changes the device results further; on the host, -ffast-math
///   (or FMA contraction under -march=native) can likewise change results between builds.
///
/// ## Invalid parameters
///
/// Everything here is device-callable, so nothing throws or traps. An invalid parameter (NaN,
/// infinite, or outside the domain, as listed per function) makes the function return a documented
/// value at once — quiet NaN for real results, -1 for `poisson` — without consuming any draws.
/// Valid parameters never produce NaN.
///
/// ## Cost
///
/// Each function states the words it consumes. One Philox block (10 rounds, 20 32x32->64 bit
/// multiplies) is computed every 4 words.

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/random_impl.hpp>

#include <cstdint>
#include <type_traits>

namespace cellkit {

/// Four 32-bit words: a Philox4x32 counter or output block.
struct philox_block {
  std::uint32_t v[4];
};

/// Two 32-bit words: a Philox4x32 key.
struct philox_key {
  std::uint32_t v[2];
};

namespace detail {
inline constexpr std::uint32_t philox_m0 = 0xD2511F53u;  ///< multiplier of counter word 0
inline constexpr std::uint32_t philox_m1 = 0xCD9E8D57u;  ///< multiplier of counter word 2
inline constexpr std::uint32_t philox_w0 = 0x9E3779B9u;  ///< Weyl increment of key word 0 (golden ratio)
inline constexpr std::uint32_t philox_w1 = 0xBB67AE85u;  ///< Weyl increment of key word 1 (sqrt(3) - 1)

CELLKIT_HD constexpr philox_block philox_round(philox_block c, philox_key k) {
  const std::uint64_t p0 = static_cast<std::uint64_t>(philox_m0) * c.v[0];
  const std::uint64_t p1 = static_cast<std::uint64_t>(philox_m1) * c.v[2];
  const auto hi0 = static_cast<std::uint32_t>(p0 >> 32);
  const auto lo0 = static_cast<std::uint32_t>(p0);
  const auto hi1 = static_cast<std::uint32_t>(p1 >> 32);
  const auto lo1 = static_cast<std::uint32_t>(p1);
  return philox_block{{hi1 ^ c.v[1] ^ k.v[0], lo1, hi0 ^ c.v[3] ^ k.v[1], lo0}};
}
}  // namespace detail

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), bit-exact
/// with Random123's `philox4x32_R(10, counter, key)`.
///
/// Each of the 10 rounds computes the 64-bit products p0 = 0xD2511F53 * c0 and p1 = 0xCD9E8D57 * c2
/// and sets c = { hi(p1) ^ c1 ^ k0, lo(p1), hi(p0) ^ c3 ^ k1, lo(p0) }; between rounds the key is
/// bumped by the Weyl increments (k0 += 0x9E3779B9, k1 += 0xBB67AE85), i.e. round r (0-based) uses
/// key + r * increment. Cost: 20 32x32->64 bit multiplies. Pure function of its arguments.
CELLKIT_HD constexpr philox_block philox4x32_10(philox_block counter, philox_key key) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key.v[0] += detail::philox_w0;
      key.v[1] += detail::philox_w1;
    }
    counter = detail::philox_round(counter, key);
  }
  return counter;
}

/// A per-element stream of 32-bit words (see the file comment for the exact mapping).
///
/// Construct one engine per element inside the element's work item, e.g. in a `for_each_index`
/// functor: `philox_engine eng(seed, stream, i);`. Construction is free (no block is computed until
/// the first draw); the engine is a small trivially copyable value (44 bytes) meant to live in
/// registers. Copies continue independently from the same position, so a copy replays the draws.
class philox_engine {
 public:
  /// The stream of (seed, stream_id, element): key = (seed lo, seed hi), counter = (j, element lo,
  /// element hi, stream_id) for blocks j = 0, 1, ...
  CELLKIT_HD constexpr philox_engine(std::uint64_t seed, std::uint32_t stream_id, std::uint64_t element)
      : key_{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}},
        element_lo_(static_cast<std::uint32_t>(element)),
        element_hi_(static_cast<std::uint32_t>(element >> 32)),
        stream_(stream_id) {}

  /// The next word of the stream. Cost: one Philox4x32-10 block every 4 calls.
  CELLKIT_HD constexpr std::uint32_t next_u32() {
    if (position_ == 4) {
      block_ = philox4x32_10(philox_block{{block_index_, element_lo_, element_hi_, stream_}}, key_);
      ++block_index_;
      position_ = 0;
    }
    return block_.v[position_++];
  }

  /// The seed the engine was constructed with (its key). Cost O(1); no draw.
  CELLKIT_HD constexpr std::uint64_t seed() const {
    return static_cast<std::uint64_t>(key_.v[0]) | (static_cast<std::uint64_t>(key_.v[1]) << 32);
  }
  /// The stream id the engine was constructed with (counter word 3). Cost O(1); no draw.
  CELLKIT_HD constexpr std::uint32_t stream_id() const { return stream_; }
  /// The element the engine was constructed with (counter words 1 and 2). Cost O(1); no draw.
  CELLKIT_HD constexpr std::uint64_t element() const {
    return static_cast<std::uint64_t>(element_lo_) | (static_cast<std::uint64_t>(element_hi_) << 32);
  }
  /// Words consumed so far (wraps after 2^34; for diagnostics and tests). Cost O(1); no draw.
  CELLKIT_HD constexpr std::uint64_t words_consumed() const {
    return 4 * static_cast<std::uint64_t>(block_index_) - (4 - static_cast<std::uint64_t>(position_));
  }

 private:
  philox_key key_;
  std::uint32_t element_lo_;
  std::uint32_t element_hi_;
  std::uint32_t stream_;
  std::uint32_t block_index_ = 0;  ///< index j of the next block to compute
  std::uint32_t position_ = 4;     ///< next word of block_ to return; 4 = block exhausted
  philox_block block_{{0, 0, 0, 0}};
};

// ---------------------------------------------------------------------------------------------
// Uniform
// ---------------------------------------------------------------------------------------------

/// A uniform real in (0, 1]: never 0, so `log(uniform(eng))` is always finite.
///
/// - float: one word w; returns ((w >> 8) + 1) * 2^-24, i.e. k * 2^-24 for k = 1 .. 2^24, each with
///   probability 2^-24. Cost: 1 word.
/// - double: two words a then b; returns ((a >> 5) * 2^26 + (b >> 6) + 1) * 2^-53, i.e. k * 2^-53
///   for k = 1 .. 2^53. Cost: 2 words.
///
/// Exact in both types (no rounding): bitwise identical on every backend.
template <class T = double>
CELLKIT_HD constexpr T uniform(philox_engine& eng) {
  static_assert(detail::is_rng_real_v<T>, "cellkit::uniform<T>: T must be float or double");
  if constexpr (std::is_same_v<T, float>) {
    const std::uint32_t w = eng.next_u32() >> 8;
    return static_cast<float>(w + 1u) * 5.9604644775390625e-08f;  // 2^-24
  } else {
    const std::uint64_t a = eng.next_u32() >> 5;
    const std::uint64_t b = eng.next_u32() >> 6;
    return static_cast<double>((a << 26) + b + 1u) * 1.1102230246251565404236316680908203125e-16;  // 2^-53
  }
}

/// A uniform real in [lo, hi]: lo + (hi - lo) * uniform<T>(eng), clamped to hi against rounding
/// (in exact arithmetic the result lies in (lo, hi]). lo == hi returns lo.
/// Invalid: !(lo <= hi) or a non-finite bound -> NaN (no draw). Cost: as `uniform<T>(eng)`.
template <class T>
CELLKIT_HD T uniform(philox_engine& eng, T lo, T hi) {
  static_assert(detail::is_rng_real_v<T>, "cellkit::uniform: lo and hi must both be float or both double");
  if (!(lo <= hi) || !(lo >= -detail::rng_max<T>()) || !(hi <= detail::rng_max<T>())) return detail::rng_nan<T>();
  const T r = lo + (hi - lo) * uniform<T>(eng);
  return r > hi ? hi : r;
}

// ---------------------------------------------------------------------------------------------
// Normal
// ---------------------------------------------------------------------------------------------

/// Two independent standard normals from one Box-Muller transform.
template <class T>
struct normal_pair_result {
  T first;   ///< r cos(2 pi u2)
  T second;  ///< r sin(2 pi u2)
};

/// Two independent N(0, 1) values by Box-Muller: u1 = uniform<T>, then u2 = uniform<T>,
/// r = sqrt(-2 log u1), returns { r cos(2 pi u2), r sin(2 pi u2) }, computed in T.
/// Because u1 >= 2^-24 (float) / 2^-53 (double), |z| <= 5.77 for float and <= 8.57 for double: the
/// float tails beyond 5.77 sd (probability 8e-9) are not produced. Cost: 2 uniform<T> (float: 2 words,
/// double: 4 words).
template <class T = double>
CELLKIT_HD normal_pair_result<T> normal_pair(philox_engine& eng) {
  static_assert(detail::is_rng_real_v<T>, "cellkit::normal_pair<T>: T must be float or double");
  const T u1 = uniform<T>(eng);
  const T u2 = uniform<T>(eng);
  const T r = detail::rng_sqrt(T(-2) * detail::rng_log(u1));
  const T theta = T(6.283185307179586476925286766559) * u2;
  return {r * detail::rng_cos(theta), r * detail::rng_sin(theta)};
}

/// One N(0, 1) value: `normal_pair<T>(eng).first`. The sine value is discarded, not cached, so every
/// call consumes the same number of words and the engine carries no distribution state.
/// Cost: 2 uniform<T> (float: 2 words, double: 4 words). Use `normal_pair` to get both values.
template <class T = double>
CELLKIT_HD T normal(philox_engine& eng) {
  static_assert(detail::is_rng_real_v<T>, "cellkit::normal<T>: T must be float or double");
  const T u1 = uniform<T>(eng);
  const T u2 = uniform<T>(eng);
  return detail::rng_sqrt(T(-2) * detail::rng_log(u1)) * detail::rng_cos(T(6.283185307179586476925286766559) * u2);
}

/// N(mean, sd^2): mean + sd * normal<T>(eng). sd == 0 returns mean (the draws are still consumed).
/// Invalid: !(sd >= 0), infinite sd, or non-finite mean -> NaN (no draw). Cost: as `normal<T>(eng)`.
template <class T>
CELLKIT_HD T normal(philox_engine& eng, T mean, T sd) {
  static_assert(detail::is_rng_real_v<T>, "cellkit::normal: mean and sd must both be float or both double");
  if (!(sd >= 0) || !(sd <= detail::rng_max<T>()) || !(mean >= -detail::rng_max<T>()) ||
      !(mean <= detail::rng_max<T>())) {
    return detail::rng_nan<T>();
  }
  return mean + sd * normal<T>(eng);
}

// ---------------------------------------------------------------------------------------------
// Bernoulli
// ---------------------------------------------------------------------------------------------

/// True with probability p: returns uniform<T>(eng) <= p. Exactly, P(true) = floor(p 2^24) / 2^24
/// (float) or floor(p 2^53) / 2^53 (double); p <= 0 is always false and p >= 1 always true, and a
/// NaN p gives false (the parameter is effectively clamped to [0, 1]; the word is consumed in every
/// case). Cost: 1 uniform<T> (float: 1 word, double: 2 words).
template <class T>
CELLKIT_HD constexpr bool bernoulli(philox_engine& eng, T p) {
  static_assert(detail::is_rng_real_v<T>, "cellkit::bernoulli: p must be float or double");
  return uniform<T>(eng) <= p;
}

// ---------------------------------------------------------------------------------------------
// Gamma
// ---------------------------------------------------------------------------------------------

namespace detail {
/// Marsaglia & Tsang (2000), "A simple method for generating gamma variables", for shape >= 1:
/// d = shape - 1/3, c = 1 / sqrt(9 d); repeat { repeat x = normal, v = 1 + c x until v > 0; v = v^3;
/// u = uniform; accept d v if u < 1 - 0.0331 x^4 or log u < x^2 / 2 + d (1 - v + log v) }.
template <class T>
CELLKIT_HD T gamma_marsaglia_tsang(philox_engine& eng, T shape) {
  const T d = shape - T(1) / T(3);
  const T c = T(1) / rng_sqrt(T(9) * d);
  for (;;) {
    T x;
    T v;
    do {
      x = normal<T>(eng);
      v = T(1) + c * x;
    } while (v <= T(0));
    v = v * v * v;
    const T u = uniform<T>(eng);
    const T x2 = x * x;
    if (u < T(1) - T(0.0331) * x2 * x2) return d * v;
    if (rng_log(u) < T(0.5) * x2 + d * (T(1) - v + rng_log(v))) return d * v;
  }
}
}  // namespace detail

/// Gamma(shape, scale): density x^(shape-1) e^(-x/scale) / (Gamma(shape) scale^shape), mean
/// shape * scale, variance shape * scale^2.
///
/// Algorithm (computed in T):
/// - shape >= 1: Marsaglia & Tsang's squeeze/rejection method on normal<T> and uniform<T> draws;
///   expected 1/0.95..1/0.99 iterations, each one normal<T> (plus one more per rare v <= 0) and one
///   uniform<T>, so about 3 uniform<T> per sample.
/// - 0 < shape < 1: the boost Gamma(shape) = Gamma(shape + 1) * U^(1/shape): first the sample g for
///   shape + 1 as above, then u = uniform<T>; returns exp(log g + log(u) / shape) (log form: no
///   intermediate underflow of U^(1/shape)). The result is 0 when the exact draw is below the smallest
///   positive T (common for small shapes in float: P(X < 1e-38) is about 1.7e-4 at shape 0.1).
/// - shape == 0: returns 0 without drawing (the degenerate distribution at 0).
/// Finally the standard sample is multiplied by scale (scale == 0 gives 0; the draws are consumed).
///
/// Invalid: !(shape >= 0), !(scale >= 0), or an infinite parameter -> NaN (no draw).
/// Cost: variable (rejection); about 3 uniform<T> per sample, 4 for shape < 1.
template <class T>
CELLKIT_HD T gamma(philox_engine& eng, T shape, T scale = T(1)) {
  static_assert(detail::is_rng_real_v<T>, "cellkit::gamma: shape and scale must both be float or both double");
  if (!(shape >= 0) || !(scale >= 0) || !(shape <= detail::rng_max<T>()) || !(scale <= detail::rng_max<T>())) {
    return detail::rng_nan<T>();
  }
  if (shape == T(0)) return T(0);
  if (shape >= T(1)) return detail::gamma_marsaglia_tsang<T>(eng, shape) * scale;
  const T g = detail::gamma_marsaglia_tsang<T>(eng, shape + T(1));
  const T u = uniform<T>(eng);
  return detail::rng_exp(detail::rng_log(g) + detail::rng_log(u) / shape) * scale;
}

// ---------------------------------------------------------------------------------------------
// Poisson
// ---------------------------------------------------------------------------------------------

namespace detail {
/// Multiplication (inversion) method for mean < 10, as NumPy's random_poisson_mult: multiply
/// uniforms until the product drops to exp(-mean) or below; the count of factors before that is
/// the sample. Cost: X + 1 uniform<double> for a sample X (mean + 1 on average).
CELLKIT_HD inline std::int64_t poisson_multiplication(philox_engine& eng, double mean) {
  const double limit = rng_exp(-mean);
  std::int64_t x = 0;
  double product = 1.0;
  for (;;) {
    product *= uniform<double>(eng);
    if (product > limit) {
      ++x;
    } else {
      return x;
    }
  }
}

/// Hörmann (1993), "The transformed rejection method for generating Poisson random variables"
/// (PTRS), for mean >= 10, with NumPy's constants (random_poisson_ptrs). Each iteration draws
/// U = uniform<double> - 1/2 then V = uniform<double>; expected iterations about 1.15 or fewer.
/// Differences from NumPy, needed because our uniforms lie in (0, 1]: k is kept in double until it is
/// accepted (at U = 1/2, us = 0 the candidate is infinite and is rejected before any conversion), and
/// candidates beyond int64 are rejected.
CELLKIT_HD inline std::int64_t poisson_ptrs(philox_engine& eng, double mean) {
  const double slam = rng_sqrt(mean);
  const double loglam = rng_log(mean);
  const double b = 0.931 + 2.53 * slam;
  const double a = -0.059 + 0.02483 * b;
  const double invalpha = 1.1239 + 1.1328 / (b - 3.4);
  const double vr = 0.9277 - 3.6224 / (b - 2.0);
  for (;;) {
    const double u = uniform<double>(eng) - 0.5;
    const double v = uniform<double>(eng);
    const double us = 0.5 - rng_fabs(u);
    const double k = rng_floor((2.0 * a / us + b) * u + mean + 0.43);
    if (us >= 0.07 && v <= vr) return static_cast<std::int64_t>(k);
    if (!(k >= 0.0) || !(k <= poisson_k_max) || (us < 0.013 && v > us)) continue;
    if (rng_log(v) + rng_log(invalpha) - rng_log(a / (us * us) + b) <= -mean + k * loglam - rng_loggam(k + 1.0)) {
      return static_cast<std::int64_t>(k);
    }
  }
}
}  // namespace detail

/// A Poisson(mean) count, as NumPy's `Generator.poisson` algorithmically (not stream-compatible):
/// - mean == 0: returns 0 without drawing;
/// - 0 < mean < 10: multiplication method; cost X + 1 uniform<double> (2 words each) for result X;
/// - mean >= 10: Hörmann's PTRS transformed rejection; cost 2 uniform<double> (4 words) per
///   iteration, about 1.1-1.2 iterations on average (O(1) in the mean).
/// `mean` may be float, double or an integer type; the computation is always done in double (float
/// arithmetic cannot resolve the PTRS acceptance test for large means), with double uniforms.
///
/// Invalid: !(mean >= 0) (negative or NaN) or mean > 9.2233720064847708e18 (NumPy's bound
/// INT64_MAX - 10 sqrt(INT64_MAX), including +inf) -> returns -1 (no draw).
template <class T>
CELLKIT_HD std::int64_t poisson(philox_engine& eng, T mean) {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "cellkit::poisson: mean must be a number");
  const auto m = static_cast<double>(mean);
  if (!(m >= 0.0) || !(m <= detail::poisson_mean_max)) return -1;
  if (m == 0.0) return 0;
  if (m < 10.0) return detail::poisson_multiplication(eng, m);
  return detail::poisson_ptrs(eng, m);
}

}  // namespace cellkit
