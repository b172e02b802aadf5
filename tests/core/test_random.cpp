// Tests of cellkit/core/random.hpp: Philox4x32-10 known answers, the per-element stream mapping,
// determinism across execution policies, exact draw formats and costs, invalid parameters, and
// statistical checks of every distribution (fixed seeds; tolerances of 5 standard errors).

#include <cellkit/core/copy.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>

#include "support/test_support.hpp"

#if CELLKIT_CUDA_COMPILER
#include <cellkit/core/device_buffer.cuh>
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace cellkit_random_test {

using cellkit::index_t;
using cellkit::philox_block;
using cellkit::philox_engine;
using cellkit::philox_key;

// ---------------------------------------------------------------------------------------------
// Philox4x32-10 known-answer vectors.
// Source: Random123 (D. E. Shaw Research), file tests/kat_vectors, the three rows beginning
// "philox4x32 10" (format: counter[4] key[2] -> output[4], hexadecimal 32-bit words):
//   philox4x32 10 00000000 00000000 00000000 00000000 00000000 00000000   6627e8d5 e169c58d bc57ac4c 9b00dbd8
//   philox4x32 10 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff   408f276d 41c83b0e a20bc7c6 6d5451fd
//   philox4x32 10 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0   d16cfe09 94fdcceb 5001e420 24126ea1
// (rows checked against a verbatim copy of kat_vectors and against Random123's own
// counter_based_engine test, which asserts the same three rows.)
// ---------------------------------------------------------------------------------------------
struct kat_row {
  philox_block counter;
  philox_key key;
  philox_block expected;
};

constexpr kat_row kat_rows[3] = {
    {{{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u}},
     {{0x00000000u, 0x00000000u}},
     {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
    {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
     {{0xffffffffu, 0xffffffffu}},
     {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
    {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
     {{0xa4093822u, 0x299f31d0u}},
     {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
};

constexpr bool kat_holds(const kat_row& row) {
  const philox_block out = cellkit::philox4x32_10(row.counter, row.key);
  for (int w = 0; w < 4; ++w)
    if (out.v[w] != row.expected.v[w]) return false;
  return true;
}

static_assert(std::is_trivially_copyable_v<philox_engine>, "engines are plain values (kernel arguments)");

// The block function is constexpr: the vectors hold at compile time as well.
static_assert(kat_holds(kat_rows[0]) && kat_holds(kat_rows[1]) && kat_holds(kat_rows[2]),
              "Philox4x32-10 known-answer vectors");

// ---------------------------------------------------------------------------------------------
// The per-element fill used by the determinism tests: several draws of every distribution from
// philox_engine(seed, stream, i), in a fixed order, so that any divergence propagates.
// ---------------------------------------------------------------------------------------------
constexpr int reals_per_element = 8;
constexpr int counts_per_element = 3;

struct fill_draws {
  std::uint64_t seed;
  std::uint32_t stream;
  std::uint32_t* words;  // 1 per element
  double* reals;         // reals_per_element per element
  std::int64_t* counts;  // counts_per_element per element

  CELLKIT_HD void operator()(index_t i) const {
    philox_engine eng(seed, stream, static_cast<std::uint64_t>(i));
    double* r = reals + i * reals_per_element;
    std::int64_t* c = counts + i * counts_per_element;
    words[i] = eng.next_u32();
    r[0] = cellkit::uniform<double>(eng);
    r[1] = static_cast<double>(cellkit::uniform<float>(eng));
    r[2] = cellkit::normal<double>(eng);
    r[3] = static_cast<double>(cellkit::normal<float>(eng, 1.0f, 2.0f));
    const double shape = 0.15 + 0.55 * static_cast<double>(i % 13);  // below and above 1
    r[4] = cellkit::gamma<double>(eng, shape, 2.0);
    r[5] = static_cast<double>(cellkit::gamma<float>(eng, static_cast<float>(shape)));
    c[0] = cellkit::poisson(eng, 0.75 * static_cast<double>(i % 19));  // 0 .. 13.5: both algorithms
    c[1] = cellkit::poisson(eng, 50.0 + static_cast<double>(i % 1000));
    c[2] = cellkit::poisson(eng, 1.0e7f);
    r[6] = cellkit::bernoulli(eng, 0.25) ? 1.0 : 0.0;
    r[7] = cellkit::normal_pair<double>(eng).second;
  }
};

struct draw_results {
  std::vector<std::uint32_t> words;
  std::vector<double> reals;
  std::vector<std::int64_t> counts;

  explicit draw_results(index_t n)
      : words(static_cast<std::size_t>(n)),
        reals(static_cast<std::size_t>(n * reals_per_element)),
        counts(static_cast<std::size_t>(n * counts_per_element)) {}

  fill_draws fill(std::uint64_t seed, std::uint32_t stream) {
    return fill_draws{seed, stream, words.data(), reals.data(), counts.data()};
  }
};

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(T) * a.size()) == 0;
}

// Running moments about a fixed shift (the expected mean), for numerically stable sums.
struct moments {
  double shift = 0;
  double n = 0, s1 = 0, s2 = 0, s3 = 0;

  void add(double x) {
    const double d = x - shift;
    n += 1;
    s1 += d;
    s2 += d * d;
    s3 += d * d * d;
  }
  double mean() const { return shift + s1 / n; }
  double variance() const {
    const double m = s1 / n;
    return (s2 / n - m * m) * n / (n - 1);
  }
  double skewness() const {
    const double m = s1 / n;
    const double m2 = s2 / n - m * m;
    const double m3 = s3 / n - 3 * m * s2 / n + 2 * m * m * m;
    return m3 / std::pow(m2, 1.5);
  }
};

constexpr index_t stat_draws = 1000000;
constexpr double z = 5.0;  // tolerance in standard errors

}  // namespace cellkit_random_test

using namespace cellkit_random_test;

TEST_SUITE("random") {
  TEST_CASE("philox4x32_10 reproduces the Random123 known-answer vectors") {
    for (const kat_row& row : kat_rows) {
      const philox_block out = cellkit::philox4x32_10(row.counter, row.key);
      for (int w = 0; w < 4; ++w) CHECK(out.v[w] == row.expected.v[w]);
    }
  }

  TEST_CASE("philox_engine stream mapping: key = seed, counter = (block, element lo, element hi, stream)") {
    // engine(0, 0, 0) starts with the all-zero known-answer block.
    philox_engine zero(0, 0, 0);
    for (int w = 0; w < 4; ++w) CHECK(zero.next_u32() == kat_rows[0].expected.v[w]);

    const std::uint64_t seed = 0x0123456789abcdefull;
    const std::uint64_t element = 0xfedcba9876543210ull;
    const std::uint32_t stream = 7;
    philox_engine eng(seed, stream, element);
    CHECK(eng.seed() == seed);
    CHECK(eng.stream_id() == stream);
    CHECK(eng.element() == element);
    CHECK(eng.words_consumed() == 0);
    const philox_key key{{0x89abcdefu, 0x01234567u}};
    for (std::uint32_t block = 0; block < 3; ++block) {
      const philox_block expected =
          cellkit::philox4x32_10(philox_block{{block, 0x76543210u, 0xfedcba98u, stream}}, key);
      for (int w = 0; w < 4; ++w) CHECK(eng.next_u32() == expected.v[w]);
      CHECK(eng.words_consumed() == 4 * (block + 1));
    }
    // A copy continues from the same position.
    philox_engine copy = eng;
    CHECK(copy.next_u32() == eng.next_u32());
  }

  TEST_CASE("different (seed, stream, element) give different streams; equal ones give identical streams") {
    auto first_words = [](std::uint64_t seed, std::uint32_t stream, std::uint64_t element) {
      philox_engine eng(seed, stream, element);
      std::vector<std::uint32_t> w(16);
      for (auto& x : w) x = eng.next_u32();
      return w;
    };
    const auto base = first_words(42, 3, 1000);
    CHECK(first_words(42, 3, 1000) == base);
    CHECK(first_words(43, 3, 1000) != base);
    CHECK(first_words(42 + (1ull << 32), 3, 1000) != base);  // seed high word
    CHECK(first_words(42, 4, 1000) != base);
    CHECK(first_words(42, 3, 1001) != base);
    CHECK(first_words(42, 3, 1000 + (1ull << 32)) != base);  // element high word
    // No word of one stream's first 16 shows up in a neighbour's at the same position.
    const auto other = first_words(42, 3, 1001);
    int same = 0;
    for (std::size_t k = 0; k < base.size(); ++k) same += base[k] == other[k];
    CHECK(same == 0);
  }

  TEST_CASE("uniform: exact formats and word costs") {
    philox_engine eng(2024, 1, 5);
    for (int k = 0; k < 1000; ++k) {
      philox_engine copy = eng;
      const std::uint32_t w = copy.next_u32();
      const float f = cellkit::uniform<float>(eng);
      CHECK(f == static_cast<float>((w >> 8) + 1u) * 0x1p-24f);
      const std::uint64_t a = copy.next_u32() >> 5;
      const std::uint64_t b = copy.next_u32() >> 6;
      const double d = cellkit::uniform<double>(eng);
      CHECK(d == static_cast<double>((a << 26) + b + 1u) * 0x1p-53);
      CHECK(copy.words_consumed() == eng.words_consumed());
    }
    CHECK(eng.words_consumed() == 3000);

    philox_engine n(7, 0, 0);
    (void)cellkit::normal<float>(n);
    CHECK(n.words_consumed() == 2);
    (void)cellkit::normal<double>(n);
    CHECK(n.words_consumed() == 6);
    (void)cellkit::bernoulli(n, 0.5f);
    CHECK(n.words_consumed() == 7);
    (void)cellkit::bernoulli(n, 0.5);
    CHECK(n.words_consumed() == 9);
    (void)cellkit::uniform(n, -1.0f, 1.0f);
    CHECK(n.words_consumed() == 10);
  }

  TEST_CASE("normal equals the first value of normal_pair and consumes the same words") {
    philox_engine a(99, 2, 3);
    philox_engine b(99, 2, 3);
    for (int k = 0; k < 1000; ++k) {
      CHECK(cellkit::normal<double>(a) == cellkit::normal_pair<double>(b).first);
      CHECK(cellkit::normal<float>(a) == cellkit::normal_pair<float>(b).first);
    }
    CHECK(a.words_consumed() == b.words_consumed());
  }

  TEST_CASE("poisson below 10 consumes X + 1 double uniforms") {
    philox_engine eng(5, 5, 5);
    for (int k = 0; k < 200; ++k) {
      const std::uint64_t before = eng.words_consumed();
      const std::int64_t x = cellkit::poisson(eng, 2.5);
      CHECK(eng.words_consumed() - before == 2 * static_cast<std::uint64_t>(x + 1));
    }
  }

  TEST_CASE("invalid parameters: documented results and no draws") {
    const double nan = std::nan("");
    const double inf = HUGE_VAL;
    philox_engine eng(1, 2, 3);
    CHECK(std::isnan(cellkit::uniform(eng, 1.0, 0.0)));
    CHECK(std::isnan(cellkit::uniform(eng, nan, 1.0)));
    CHECK(std::isnan(cellkit::uniform(eng, 0.0, inf)));
    CHECK(std::isnan(cellkit::uniform(eng, -HUGE_VALF, 0.0f)));
    CHECK(std::isnan(cellkit::normal(eng, 0.0, -1.0)));
    CHECK(std::isnan(cellkit::normal(eng, 0.0, nan)));
    CHECK(std::isnan(cellkit::normal(eng, 0.0, inf)));
    CHECK(std::isnan(cellkit::normal(eng, nan, 1.0)));
    CHECK(std::isnan(cellkit::normal(eng, 0.0f, -1.0f)));
    CHECK(std::isnan(cellkit::gamma(eng, -1.0)));
    CHECK(std::isnan(cellkit::gamma(eng, nan)));
    CHECK(std::isnan(cellkit::gamma(eng, inf)));
    CHECK(std::isnan(cellkit::gamma(eng, 2.0, -1.0)));
    CHECK(std::isnan(cellkit::gamma(eng, 2.0, inf)));
    CHECK(std::isnan(cellkit::gamma(eng, -0.5f)));
    CHECK(cellkit::gamma(eng, 0.0) == 0.0);
    CHECK(cellkit::gamma(eng, 0.0f, 3.0f) == 0.0f);
    CHECK(cellkit::poisson(eng, -1.0) == -1);
    CHECK(cellkit::poisson(eng, nan) == -1);
    CHECK(cellkit::poisson(eng, inf) == -1);
    CHECK(cellkit::poisson(eng, 1.0e19) == -1);
    CHECK(cellkit::poisson(eng, -3) == -1);
    CHECK(cellkit::poisson(eng, 0.0) == 0);
    CHECK(cellkit::poisson(eng, 0) == 0);
    CHECK(eng.words_consumed() == 0);

    // Edge values that are valid: they draw as usual.
    CHECK(cellkit::uniform(eng, 2.0, 2.0) == 2.0);
    CHECK(cellkit::normal(eng, 3.0, 0.0) == 3.0);
    CHECK(cellkit::gamma(eng, 2.0, 0.0) == 0.0);
    CHECK_FALSE(cellkit::bernoulli(eng, 0.0));
    CHECK_FALSE(cellkit::bernoulli(eng, -0.5));
    CHECK_FALSE(cellkit::bernoulli(eng, nan));
    CHECK(cellkit::bernoulli(eng, 1.0));
    CHECK(cellkit::bernoulli(eng, 1.5f));
    CHECK(cellkit::poisson(eng, 3) >= 0);  // an integer mean
    const std::int64_t huge = cellkit::poisson(eng, 1.0e18);
    CHECK(std::fabs(static_cast<double>(huge) - 1.0e18) < 1.0e10);  // within 10 sd
    CHECK(eng.words_consumed() > 0);
  }

  TEST_CASE("uniform over 1e6 draws: in (0, 1], mean 1/2, variance 1/12") {
    philox_engine eng(12345, 0, 0);
    moments md{0.5};
    moments mf{0.5};
    double dmin = 2, dmax = -1, fmin = 2, fmax = -1;
    for (index_t k = 0; k < stat_draws; ++k) {
      const double d = cellkit::uniform<double>(eng);
      const double f = cellkit::uniform<float>(eng);
      md.add(d);
      mf.add(f);
      dmin = std::fmin(dmin, d);
      dmax = std::fmax(dmax, d);
      fmin = std::fmin(fmin, f);
      fmax = std::fmax(fmax, f);
    }
    CHECK(dmin > 0.0);
    CHECK(dmax <= 1.0);
    CHECK(fmin > 0.0);
    CHECK(fmax <= 1.0);
    const double se_mean = std::sqrt(1.0 / 12.0 / stat_draws);
    const double se_var = std::sqrt(1.0 / 180.0 / stat_draws);  // (mu4 - sigma^4) = 1/80 - 1/144
    for (const moments* m : {&md, &mf}) {
      CHECK(std::fabs(m->mean() - 0.5) < z * se_mean);
      CHECK(std::fabs(m->variance() - 1.0 / 12.0) < z * se_var);
    }

    // uniform(lo, hi) stays in [lo, hi] and has mean (lo + hi) / 2.
    moments mr{1.0};
    double rmin = HUGE_VAL, rmax = -HUGE_VAL;
    for (index_t k = 0; k < 200000; ++k) {
      const double x = cellkit::uniform(eng, -3.0, 5.0);
      rmin = std::fmin(rmin, x);
      rmax = std::fmax(rmax, x);
      mr.add(x);
    }
    CHECK(rmin >= -3.0);
    CHECK(rmax <= 5.0);
    CHECK(std::fabs(mr.mean() - 1.0) < z * std::sqrt(64.0 / 12.0 / 200000));
  }

  TEST_CASE("normal over 1e6 draws: mean, variance, skewness") {
    philox_engine eng(777, 1, 0);
    moments md{0.0};
    moments mf{0.0};
    moments ms{0.0};  // the sine values of normal_pair
    for (index_t k = 0; k < stat_draws; ++k) {
      md.add(cellkit::normal<double>(eng));
      mf.add(cellkit::normal<float>(eng));
      if (k % 4 == 0) ms.add(cellkit::normal_pair<double>(eng).second);
    }
    for (const moments* m : {&md, &mf, &ms}) {
      const double n = m->n;
      CHECK(std::fabs(m->mean()) < z * std::sqrt(1.0 / n));
      CHECK(std::fabs(m->variance() - 1.0) < z * std::sqrt(2.0 / n));
      CHECK(std::fabs(m->skewness()) < z * std::sqrt(6.0 / n));
    }
    // normal(mean, sd)
    moments mg{10.0};
    for (index_t k = 0; k < 200000; ++k) mg.add(cellkit::normal(eng, 10.0, 3.0));
    CHECK(std::fabs(mg.mean() - 10.0) < z * std::sqrt(9.0 / 200000));
    CHECK(std::fabs(mg.variance() - 9.0) < z * std::sqrt(2.0 * 81.0 / 200000));
  }

  TEST_CASE("bernoulli frequency over 1e6 draws") {
    for (const double p : {0.3, 0.001}) {
      philox_engine eng(31337, 2, 0);
      double hits = 0, hits_f = 0;
      for (index_t k = 0; k < stat_draws; ++k) {
        hits += cellkit::bernoulli(eng, p);
        hits_f += cellkit::bernoulli(eng, static_cast<float>(p));
      }
      const double se = std::sqrt(p * (1 - p) / stat_draws);
      CHECK(std::fabs(hits / stat_draws - p) < z * se);
      CHECK(std::fabs(hits_f / stat_draws - p) < z * se);
    }
  }

  TEST_CASE("gamma over 1e6 draws: mean shape * scale, variance shape * scale^2") {
    for (const double shape : {0.1, 0.5, 1.0, 3.7, 100.0}) {
      CAPTURE(shape);
      philox_engine eng(4242, 3, static_cast<std::uint64_t>(shape * 1000));
      const double scale = 2.0;
      moments m{shape * scale};
      double xmin = HUGE_VAL;
      for (index_t k = 0; k < stat_draws; ++k) {
        const double x = cellkit::gamma(eng, shape, scale);
        m.add(x);
        xmin = std::fmin(xmin, x);
      }
      CHECK(xmin >= 0.0);
      const double n = stat_draws;
      // For Gamma(k, s): var = k s^2, mu4 - var^2 = (2 k^2 + 6 k) s^4.
      CHECK(std::fabs(m.mean() - shape * scale) < z * std::sqrt(shape * scale * scale / n));
      CHECK(std::fabs(m.variance() - shape * scale * scale) <
            z * std::sqrt((2 * shape * shape + 6 * shape) * std::pow(scale, 4) / n));
    }
    // float arithmetic, fewer draws.
    for (const float shape : {0.5f, 3.7f}) {
      CAPTURE(shape);
      philox_engine eng(4243, 3, 0);
      moments m{shape};
      const index_t n = 200000;
      for (index_t k = 0; k < n; ++k) m.add(cellkit::gamma(eng, shape));
      CHECK(std::fabs(m.mean() - shape) < z * std::sqrt(shape / static_cast<double>(n)));
      CHECK(std::fabs(m.variance() - shape) <
            z * std::sqrt((2.0 * shape * shape + 6.0 * shape) / static_cast<double>(n)));
    }
  }

  TEST_CASE("poisson over 1e6 draws: mean, variance, P(0) and P(mode)") {
    for (const double mean : {0.0, 1e-3, 0.5, 3.0, 9.99, 10.0, 47.5, 1e4, 1e7}) {
      CAPTURE(mean);
      philox_engine eng(2718, 4, static_cast<std::uint64_t>(mean * 100));
      const auto mode = static_cast<std::int64_t>(std::floor(mean));
      moments m{mean};
      double zeros = 0, at_mode = 0, negatives = 0;
      for (index_t k = 0; k < stat_draws; ++k) {
        const std::int64_t x = cellkit::poisson(eng, mean);
        m.add(static_cast<double>(x));
        zeros += x == 0;
        at_mode += x == mode;
        negatives += x < 0;
      }
      const double n = stat_draws;
      CHECK(negatives == 0);
      if (mean == 0.0) {
        CHECK(zeros == n);
        continue;
      }
      CHECK(std::fabs(m.mean() - mean) < z * std::sqrt(mean / n));
      // mu4 - var^2 = mean + 2 mean^2.
      CHECK(std::fabs(m.variance() - mean) < z * std::sqrt((mean + 2 * mean * mean) / n));
      const double p0 = std::exp(-mean);
      CHECK(std::fabs(zeros / n - p0) <= z * std::sqrt(p0 * (1 - p0) / n));
      const double pm =
          std::exp(-mean + static_cast<double>(mode) * std::log(mean) - std::lgamma(static_cast<double>(mode) + 1.0));
      CHECK(std::fabs(at_mode / n - pm) <= z * std::sqrt(pm * (1 - pm) / n));
    }
  }

  TEST_CASE_TEMPLATE("draws are identical under every policy and thread count", P, CELLKIT_TEST_POLICIES) {
    CELLKIT_SKIP_UNLESS_RUNNABLE(P);
    const auto policy = cellkit::test::policy_of<P>();
    constexpr index_t n = 100003;
    constexpr std::uint64_t seed = 0x5eed5eed12345678ull;
    constexpr std::uint32_t stream = 11;

    // Reference: a plain loop on the calling thread.
    draw_results expected(n);
    const fill_draws reference = expected.fill(seed, stream);
    for (index_t i = 0; i < n; ++i) reference(i);

    draw_results got(n);
    if constexpr (cellkit::is_device_policy_v<decltype(policy)>) {
#if CELLKIT_CUDA_COMPILER
      cellkit::device_buffer<std::uint32_t> words(n);
      cellkit::device_buffer<double> reals(n * reals_per_element);
      cellkit::device_buffer<std::int64_t> counts(n * counts_per_element);
      cellkit::for_each_index(policy, n, fill_draws{seed, stream, words.data(), reals.data(), counts.data()});
      cellkit::copy(policy, words.view(), cellkit::vector_view<std::uint32_t>(got.words.data(), n));
      cellkit::copy(policy, reals.view(), cellkit::vector_view<double>(got.reals.data(), n * reals_per_element));
      cellkit::copy(policy, counts.view(),
                    cellkit::vector_view<std::int64_t>(got.counts.data(), n * counts_per_element));
      cellkit::synchronize(policy);

      // Words and plain uniforms involve no rounding: bitwise equal. Results through log/exp/sin/cos
      // (CUDA's math library, FMA contraction) agree to rounding; a rejection sampler may rarely take
      // another branch for an element, so a few elements may differ.
      CHECK(bitwise_equal(got.words, expected.words));
      index_t uniform_mismatches = 0;
      index_t mismatched_elements = 0;
      for (index_t i = 0; i < n; ++i) {
        const double* g = got.reals.data() + i * reals_per_element;
        const double* e = expected.reals.data() + i * reals_per_element;
        uniform_mismatches += (g[0] == e[0] && g[1] == e[1]) ? 0 : 1;
        bool same = cellkit::test::close(g[2], e[2], 1e-12, 1e-12) && cellkit::test::close(g[3], e[3], 1e-4, 1e-4) &&
                    cellkit::test::close(g[4], e[4], 1e-9, 1e-300) && cellkit::test::close(g[5], e[5], 1e-3, 1e-30) &&
                    g[6] == e[6] && cellkit::test::close(g[7], e[7], 1e-12, 1e-12);
        for (int k = 0; k < counts_per_element; ++k)
          same = same && got.counts[i * counts_per_element + k] == expected.counts[i * counts_per_element + k];
        mismatched_elements += same ? 0 : 1;
      }
      CHECK(uniform_mismatches == 0);
      CHECK(mismatched_elements <= n / 1000);
#endif
    } else {
      cellkit::for_each_index(policy, n, got.fill(seed, stream));
      CHECK(bitwise_equal(got.words, expected.words));
      CHECK(bitwise_equal(got.reals, expected.reals));
      CHECK(bitwise_equal(got.counts, expected.counts));
    }
    // Sanity: the fill produced varied values (not all equal).
    CHECK(expected.words[0] != expected.words[1]);
    CHECK(expected.reals[2] != expected.reals[2 + reals_per_element]);
  }
}
