// Tests of <cellkit/core/math.hpp> against mpmath reference tables (tests/reference/data/math_*.txt,
// written by tests/reference/gen_math_fixtures.py) plus limit values and the accumulator's merge.
//
// Tolerances (relative unless stated; measured maxima are in docs/math.md):
//   double: lgamma, digamma, log_poch (a >= 4) 1e-15 (~4.5 ulp); softplus, sigmoid,
//           log1mexp, log_sum_exp, xlogy 5e-16 (~2 ulp). Where a formula cancels by design
//           (negative arguments of lgamma/digamma, log_poch with a < 4, log_sum_exp near 0) the
//           bound is absolute: 1e-15 times the magnitude of the cancelling terms.
//   float:  5e-7 (~8 ulp) for lgamma, digamma, log_poch (a >= 4), the softplus / log-sum-exp
//           family; absolute 5e-7 times the cancelling terms as above.
// The float overloads are tested on the table rows whose arguments are exactly representable in
// float (most rows are generated that way) and whose reference value is a finite float.

#include <cellkit/core/math.hpp>

#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

namespace m = cellkit::math;
using cellkit::test::close;
using cellkit::test::fixture_table;
using cellkit::test::read_fixture_table;

constexpr double pinf = std::numeric_limits<double>::infinity();
constexpr double qnan = std::numeric_limits<double>::quiet_NaN();
constexpr float pinff = std::numeric_limits<float>::infinity();
constexpr float qnanf = std::numeric_limits<float>::quiet_NaN();

bool float_exact(double x) { return std::isnan(x) || static_cast<double>(static_cast<float>(x)) == x; }
bool float_finite_or_inf(double v) { return std::isnan(v) || std::isinf(v) || std::fabs(v) <= FLT_MAX; }

/// Tracks the largest relative (or scaled) error for a failure message.
struct max_error {
  double value = 0;
  double at = 0;
  void update(double err, double x) {
    if (err > value) {
      value = err;
      at = x;
    }
  }
};

double rel_err(double got, double ref) {
  if (std::isnan(ref) || std::isinf(ref)) return (got == ref || (std::isnan(got) && std::isnan(ref))) ? 0 : pinf;
  if (ref == 0) return got == 0 ? 0 : pinf;
  return std::fabs(got - ref) / std::fabs(ref);
}

/// |got - ref| / scale, 0 when both are the same non-finite value.
double scaled_err(double got, double ref, double scale) {
  if (std::isnan(ref) || std::isinf(ref)) return (got == ref || (std::isnan(got) && std::isnan(ref))) ? 0 : pinf;
  return std::fabs(got - ref) / scale;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// lgamma

TEST_CASE("math: lgamma matches mpmath (double and float)") {
  const fixture_table t = read_fixture_table("math_lgamma.txt");
  const std::size_t cx = t.column("x"), cy = t.column("lgamma");
  REQUIRE(t.rows.size() > 500);
  max_error pos_d, neg_d, pos_f, neg_f;
  std::size_t float_rows = 0;
  for (const auto& row : t.rows) {
    const double x = row[cx], ref = row[cy];
    const double got = m::lgamma(x);
    if (x > 0) {
      // full relative accuracy everywhere, including x = 1 +- 1e-15 and 2 +- 1e-15
      pos_d.update(rel_err(got, ref), x);
    } else {
      // reflection: absolute error relative to the cancelling terms
      const double scale = 1 + std::fabs(m::lgamma(1 - x)) + std::fabs(ref);
      neg_d.update(scaled_err(got, ref, scale), x);
    }
    if (float_exact(x) && float_finite_or_inf(ref)) {
      ++float_rows;
      const float xf = static_cast<float>(x);
      const double gotf = m::lgamma(xf);
      if (x > 0) {
        pos_f.update(rel_err(gotf, ref), x);
      } else {
        const double scale = 1 + std::fabs(m::lgamma(1 - x)) + std::fabs(ref);
        neg_f.update(scaled_err(gotf, ref, scale), x);
      }
    }
  }
  CHECK(float_rows > 400);
  INFO("double x > 0: max rel " << pos_d.value << " at x = " << pos_d.at);
  CHECK(pos_d.value <= 1e-15);
  INFO("double x < 0: max scaled " << neg_d.value << " at x = " << neg_d.at);
  CHECK(neg_d.value <= 1e-15);
  INFO("float x > 0: max rel " << pos_f.value << " at x = " << pos_f.at);
  CHECK(pos_f.value <= 5e-7);
  INFO("float x < 0: max scaled " << neg_f.value << " at x = " << neg_f.at);
  CHECK(neg_f.value <= 5e-7);
}

TEST_CASE("math: lgamma limit values") {
  CHECK(m::lgamma(0.0) == pinf);
  CHECK(m::lgamma(-0.0) == pinf);
  CHECK(m::lgamma(-1.0) == pinf);
  CHECK(m::lgamma(-2.0) == pinf);
  CHECK(m::lgamma(-1e20) == pinf);
  CHECK(m::lgamma(pinf) == pinf);
  CHECK(m::lgamma(-pinf) == pinf);
  CHECK(std::isnan(m::lgamma(qnan)));
  CHECK(m::lgamma(1.0) == 0.0);
  CHECK_FALSE(std::signbit(m::lgamma(1.0)));
  CHECK(m::lgamma(2.0) == 0.0);
  CHECK_FALSE(std::signbit(m::lgamma(2.0)));
  CHECK(close(m::lgamma(3.0), std::log(2.0), 4e-16));
  CHECK(close(m::lgamma(4.0), std::log(6.0), 4e-16));
  CHECK(close(m::lgamma(0.5), 0.5 * std::log(M_PI), 4e-16));
  CHECK(close(m::lgamma(5e-324), 744.44007192138126, 4e-16));  // -log(denorm_min)
  CHECK(close(m::lgamma(-5e-324), 744.44007192138126, 4e-16));
  CHECK(m::lgamma(1e306) == pinf);  // the true value (7e308) overflows
  CHECK(std::isfinite(m::lgamma(2e305)));
  // integers: log((n-1)!) exactly representable recurrence
  double log_fact = 0;
  for (int n = 2; n < 60; ++n) {
    log_fact += std::log(static_cast<double>(n - 1));
    CHECK(close(m::lgamma(static_cast<double>(n)), log_fact, 2e-15));
  }

  CHECK(m::lgamma(0.0f) == pinff);
  CHECK(m::lgamma(-3.0f) == pinff);
  CHECK(m::lgamma(pinff) == pinff);
  CHECK(m::lgamma(-pinff) == pinff);
  CHECK(std::isnan(m::lgamma(qnanf)));
  CHECK(m::lgamma(1.0f) == 0.0f);
  CHECK_FALSE(std::signbit(m::lgamma(1.0f)));
  CHECK(m::lgamma(2.0f) == 0.0f);
  CHECK(m::lgamma(1e37f) == pinff);
  CHECK(std::isfinite(m::lgamma(3e36f)));
  CHECK(close(m::lgamma(FLT_TRUE_MIN), 103.27892990343184, 2e-7));
}

TEST_CASE("math: lgamma recurrence and reflection identities") {
  // lgamma(x + 1) - lgamma(x) = log x across every piece boundary (x a multiple of 2^-40, so that
  // x + 1 is exact)
  for (double x = 0.03125; x < 40; x = std::ldexp(std::round(std::ldexp(x * 1.0905077326652577, 40)), -40)) {
    const double lhs = m::lgamma(x + 1) - m::lgamma(x);
    const double scale = std::fabs(m::lgamma(x + 1)) + std::fabs(m::lgamma(x)) + std::fabs(std::log(x));
    CHECK(std::fabs(lhs - std::log(x)) <= 8e-16 * scale);
  }
  // |Gamma(x) Gamma(-x)| = pi / (x |sin(pi x)|), x = n + f
  for (int n = 0; n < 30; ++n) {
    for (double f : {0.1, 0.25, 0.5, 0.77, 0.93}) {
      const double x = n + f;
      const double lhs = m::lgamma(x) + m::lgamma(-x);
      const double rhs = std::log(M_PI / (x * std::sin(M_PI * f)));
      CHECK(std::fabs(lhs - rhs) <= 2e-15 * (1 + 2 * std::fabs(m::lgamma(x))));
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// log_poch: what the negative binomial likelihood needs

TEST_CASE("math: lgamma(x + theta) - lgamma(theta) against mpmath, log_poch and the plain difference") {
  const fixture_table t = read_fixture_table("math_lgamma_diff.txt");
  const std::size_t cx = t.column("x"), ct = t.column("theta"), cd = t.column("lgamma_diff");
  REQUIRE(t.rows.size() > 300);
  constexpr double eps = 2.220446049250313e-16;
  max_error poch_d, poch_small_d, naive_d, poch_f, poch_small_f;
  for (const auto& row : t.rows) {
    const double x = row[cx], theta = row[ct], ref = row[cd];

    // log_poch: relative accuracy for theta >= 4; for theta < 4 it cancels like digamma's
    // recurrence, so the bound is relative to the size of the terms, ~x log(theta + x + 5).
    const double got = m::log_poch(theta, x);
    const double terms = std::fabs(ref) + x * std::log(theta + x + 5);
    if (theta >= 4) {
      poch_d.update(rel_err(got, ref), theta);
    } else {
      poch_small_d.update(scaled_err(got, ref, terms), theta);
    }

    // The plain difference of two lgamma values is only accurate to a few ulps of the larger of
    // them, plus the rounding of x + theta (times digamma(x + theta)). For theta = 1e10, x = 1 that
    // is ~1e-5 absolute on a result of ~23: this is why NB code should call log_poch.
    const double b = x + theta;
    const double naive = m::lgamma(b) - m::lgamma(theta);
    const double bound =
        4 * eps * (std::fabs(m::lgamma(b)) + std::fabs(m::lgamma(theta))) + std::fabs(m::digamma(b)) * eps * b;
    naive_d.update(scaled_err(naive, ref, bound), theta);

    if (float_exact(x) && float_exact(theta) && float_finite_or_inf(ref)) {
      const double gotf = m::log_poch(static_cast<float>(theta), static_cast<float>(x));
      if (theta >= 4) {
        poch_f.update(rel_err(gotf, ref), theta);
      } else {
        poch_small_f.update(scaled_err(gotf, ref, terms), theta);
      }
    }
  }
  INFO("log_poch double theta >= 4: max rel " << poch_d.value << " at theta = " << poch_d.at);
  CHECK(poch_d.value <= 1e-15);
  INFO("log_poch double theta < 4: max scaled " << poch_small_d.value << " at theta = " << poch_small_d.at);
  CHECK(poch_small_d.value <= 1e-15);
  INFO("plain difference: max error / bound " << naive_d.value << " at theta = " << naive_d.at);
  CHECK(naive_d.value <= 1.0);
  INFO("log_poch float theta >= 4: max rel " << poch_f.value << " at theta = " << poch_f.at);
  CHECK(poch_f.value <= 5e-7);
  INFO("log_poch float theta < 4: max scaled " << poch_small_f.value << " at theta = " << poch_small_f.at);
  CHECK(poch_small_f.value <= 5e-7);
}

TEST_CASE("math: log_poch exact cases and limits") {
  // Gamma(a + 1) / Gamma(a) = a and Gamma(a + n) / Gamma(a) = a (a + 1) ... (a + n - 1)
  for (double a : {1e-8, 0.3, 1.0, 1.4616321449683622, 2.0, 3.9, 4.0, 17.25, 1e3, 1e6, 1e10, 1e15}) {
    CHECK(close(m::log_poch(a, 1.0), std::log(a), 1e-15));
    double s = 0, terms = 0;
    for (int n = 1; n <= 12; ++n) {  // n <= 8 takes the product path, n > 8 the general one
      s += std::log(a + (n - 1));
      terms += std::fabs(std::log(a + (n - 1)));
      CHECK(std::fabs(m::log_poch(a, static_cast<double>(n)) - s) <= 2e-15 * terms);
    }
    CHECK(close(static_cast<double>(m::log_poch(static_cast<float>(a), 1.0f)),
                std::log(static_cast<double>(static_cast<float>(a))), 3e-7));
  }
  CHECK(m::log_poch(5.0, 0.0) == 0.0);
  CHECK(m::log_poch(0.5, 0.0) == 0.0);
  CHECK(m::log_poch(pinf, 1.0) == pinf);
  CHECK(m::log_poch(3.0, pinf) == pinf);
  CHECK(m::log_poch(30.0, pinf) == pinf);
  CHECK(std::isnan(m::log_poch(qnan, 1.0)));
  CHECK(std::isnan(m::log_poch(2.0, qnan)));
  // x < 0 falls back to the plain difference
  CHECK(close(m::log_poch(5.5, -2.0), m::lgamma(3.5) - m::lgamma(5.5), 1e-15));
  CHECK(m::log_poch(1e30f, 1.0f) == doctest::Approx(std::log(1e30)).epsilon(3e-7));
}

// ---------------------------------------------------------------------------------------------------
// digamma

TEST_CASE("math: digamma matches mpmath (double and float)") {
  const fixture_table t = read_fixture_table("math_digamma.txt");
  const std::size_t cx = t.column("x"), cy = t.column("digamma");
  REQUIRE(t.rows.size() > 500);
  max_error pos_d, neg_d, pos_f, neg_f;
  for (const auto& row : t.rows) {
    const double x = row[cx], ref = row[cy];
    const double got = m::digamma(x);
    // reflection cancels between digamma(1 - x) and pi cot(pi x)
    const double scale = x > 0 ? 0
                               : 1 + std::fabs(m::digamma(1 - x)) + std::fabs(ref) +
                                     M_PI / std::fabs(std::sin(M_PI * (x - std::rint(x))));
    if (x > 0) {
      pos_d.update(rel_err(got, ref), x);  // includes the points around the root 1.4616...
    } else {
      neg_d.update(scaled_err(got, ref, scale), x);
    }
    if (float_exact(x) && float_finite_or_inf(ref)) {
      const double gotf = m::digamma(static_cast<float>(x));
      if (x > 0) {
        pos_f.update(rel_err(gotf, ref), x);
      } else {
        neg_f.update(scaled_err(gotf, ref, scale), x);
      }
    }
  }
  INFO("double x > 0: max rel " << pos_d.value << " at x = " << pos_d.at);
  CHECK(pos_d.value <= 1e-15);
  INFO("double x < 0: max scaled " << neg_d.value << " at x = " << neg_d.at);
  CHECK(neg_d.value <= 1e-15);
  INFO("float x > 0: max rel " << pos_f.value << " at x = " << pos_f.at);
  CHECK(pos_f.value <= 5e-7);
  INFO("float x < 0: max scaled " << neg_f.value << " at x = " << neg_f.at);
  CHECK(neg_f.value <= 5e-7);
}

TEST_CASE("math: digamma limit values") {
  CHECK(std::isnan(m::digamma(0.0)));
  CHECK(std::isnan(m::digamma(-0.0)));
  CHECK(std::isnan(m::digamma(-1.0)));
  CHECK(std::isnan(m::digamma(-7.0)));
  CHECK(std::isnan(m::digamma(-1e20)));
  CHECK(std::isnan(m::digamma(-pinf)));
  CHECK(std::isnan(m::digamma(qnan)));
  CHECK(m::digamma(pinf) == pinf);
  CHECK(close(m::digamma(1.0), -0.57721566490153286, 4e-16));
  CHECK(close(m::digamma(0.5), -1.9635100260214235, 4e-16));
  CHECK(close(m::digamma(1e-300), -1e300, 4e-16));
  CHECK(close(m::digamma(-1e-300), 1e300, 4e-16));
  CHECK(close(m::digamma(1e300), std::log(1e300), 4e-16));
  // the positive root: digamma(nearest double) = (x0_double - x0) digamma'(x0)
  CHECK(std::fabs(m::digamma(1.4616321449683622)) < 1e-16);
  CHECK(std::isnan(m::digamma(0.0f)));
  CHECK(std::isnan(m::digamma(-2.0f)));
  CHECK(m::digamma(pinff) == pinff);
  CHECK(close(m::digamma(1.0f), -0.57721566490153286, 2e-7));
  // digamma is the derivative of lgamma (central difference, loose)
  for (double x : {0.3, 1.7, 3.2, 9.5, 120.0}) {
    const double h = 1e-5 * x;
    CHECK(close((m::lgamma(x + h) - m::lgamma(x - h)) / (2 * h), m::digamma(x), 1e-8, 1e-9));
  }
}

// ---------------------------------------------------------------------------------------------------
// softplus family

TEST_CASE("math: softplus, sigmoid, log_sigmoid match mpmath") {
  const fixture_table t = read_fixture_table("math_softplus.txt");
  const std::size_t cx = t.column("x"), cs = t.column("softplus"), cg = t.column("sigmoid");
  REQUIRE(t.rows.size() > 100);
  for (const auto& row : t.rows) {
    const double x = row[cx], sp = row[cs], sg = row[cg];
    INFO("x = " << x);
    CHECK(close(m::softplus(x), sp, 5e-16, 1e-300));
    CHECK(close(m::sigmoid(x), sg, 5e-16, 1e-300));
    CHECK(close(m::log_sigmoid(-x), -sp, 5e-16, 1e-300));
    if (float_exact(x)) {
      const float xf = static_cast<float>(x);
      CHECK(close(m::softplus(xf), sp, 5e-7, 1e-44));
      CHECK(close(m::sigmoid(xf), sg, 5e-7, 1e-44));
      CHECK(close(m::log_sigmoid(-xf), -sp, 5e-7, 1e-44));
    }
  }
}

TEST_CASE("math: softplus family limit values") {
  CHECK(m::softplus(-pinf) == 0.0);
  CHECK(m::softplus(pinf) == pinf);
  CHECK(std::isnan(m::softplus(qnan)));
  CHECK(m::softplus(1e308) == 1e308);
  CHECK(m::softplus(-1000.0) == 0.0);
  CHECK(m::sigmoid(-pinf) == 0.0);
  CHECK(m::sigmoid(pinf) == 1.0);
  CHECK(m::sigmoid(0.0) == 0.5);
  CHECK(std::isnan(m::sigmoid(qnan)));
  CHECK(close(m::sigmoid(-700.0), std::exp(-700.0), 5e-16));  // relative accuracy in the far tail
  CHECK(m::log_sigmoid(-pinf) == -pinf);
  CHECK(m::log_sigmoid(pinf) == 0.0);
  CHECK(m::log_sigmoid(-1e4) == -1e4);
  CHECK(std::isnan(m::log_sigmoid(qnan)));
  CHECK(m::softplus(-pinff) == 0.0f);
  CHECK(m::softplus(pinff) == pinff);
  CHECK(m::softplus(200.0f) == 200.0f);
  CHECK(m::sigmoid(-pinff) == 0.0f);
  CHECK(m::sigmoid(pinff) == 1.0f);
  CHECK(m::log_sigmoid(-pinff) == -pinff);
  CHECK(std::isnan(m::sigmoid(qnanf)));
  // sigmoid is the derivative of softplus; sigmoid(x) + sigmoid(-x) = 1
  for (double x = -30; x <= 30; x += 0.7) {
    CHECK(close(m::sigmoid(x) + m::sigmoid(-x), 1.0, 4e-16));
    const double h = 1e-6;
    CHECK(close((m::softplus(x + h) - m::softplus(x - h)) / (2 * h), m::sigmoid(x), 1e-7, 1e-12));
  }
}

// ---------------------------------------------------------------------------------------------------
// log-sum-exp helpers

TEST_CASE("math: log1mexp matches mpmath") {
  const fixture_table t = read_fixture_table("math_log1mexp.txt");
  const std::size_t cx = t.column("x"), cy = t.column("log1mexp");
  REQUIRE(t.rows.size() > 100);
  for (const auto& row : t.rows) {
    const double x = row[cx], ref = row[cy];
    INFO("x = " << x);
    CHECK(close(m::log1mexp(x), ref, 5e-16, 1e-300));
    if (float_exact(x) && x != 0) CHECK(close(m::log1mexp(static_cast<float>(x)), ref, 5e-7, 1e-44));
  }
  CHECK(m::log1mexp(0.0) == -pinf);
  CHECK(m::log1mexp(-pinf) == 0.0);
  CHECK(std::isnan(m::log1mexp(1.0)));
  CHECK(std::isnan(m::log1mexp(qnan)));
  CHECK(m::log1mexp(0.0f) == -pinff);
  CHECK(m::log1mexp(-pinff) == 0.0f);
}

TEST_CASE("math: log_sum_exp and log_diff_exp match mpmath") {
  const fixture_table t = read_fixture_table("math_log_sum_exp.txt");
  const std::size_t ca = t.column("a"), cb = t.column("b"), cs = t.column("log_sum_exp"), cd = t.column("log_diff_exp");
  REQUIRE(t.rows.size() > 400);
  constexpr double eps = 2.220446049250313e-16;
  for (const auto& row : t.rows) {
    const double a = row[ca], b = row[cb], lse = row[cs], lde = row[cd];
    const double hi = std::max(a, b), lo = std::min(a, b);
    // the final addition max + log1p(...) carries ~eps * |max| absolute
    const double abs_d = (std::isfinite(hi) ? 2 * eps * std::fabs(hi) : 0) + 1e-300;  // + subnormal results
    INFO("a = " << a << ", b = " << b);
    CHECK(close(m::log_sum_exp(a, b), lse, 5e-16, abs_d));
    CHECK(close(m::log_diff_exp(hi, lo), lde, 5e-16, abs_d));
    if (float_exact(a) && float_exact(b) && float_finite_or_inf(lse)) {
      const float af = static_cast<float>(a), bf = static_cast<float>(b);
      const double abs_f = (std::isfinite(hi) ? 2 * 1.2e-7 * std::fabs(hi) : 0) + 1e-44;
      CHECK(close(m::log_sum_exp(af, bf), lse, 5e-7, abs_f));
      CHECK(close(m::log_diff_exp(std::max(af, bf), std::min(af, bf)), lde, 5e-7, abs_f));
    }
  }
}

TEST_CASE("math: log_sum_exp and log_diff_exp limit values") {
  CHECK(m::log_sum_exp(-pinf, -pinf) == -pinf);
  CHECK(m::log_sum_exp(-pinf, 3.0) == 3.0);
  CHECK(m::log_sum_exp(3.0, -pinf) == 3.0);
  CHECK(m::log_sum_exp(pinf, 3.0) == pinf);
  CHECK(m::log_sum_exp(pinf, pinf) == pinf);
  CHECK(m::log_sum_exp(pinf, -pinf) == pinf);
  CHECK(std::isnan(m::log_sum_exp(qnan, 1.0)));
  CHECK(std::isnan(m::log_sum_exp(1.0, qnan)));
  CHECK(std::isnan(m::log_sum_exp(qnan, -pinf)));
  CHECK(close(m::log_sum_exp(1000.0, 1000.0), 1000.0 + std::log(2.0), 5e-16));
  CHECK(close(m::log_sum_exp(-1000.0, -1000.0), -1000.0 + std::log(2.0), 5e-16));
  CHECK(m::log_sum_exp(-pinff, -pinff) == -pinff);
  CHECK(m::log_sum_exp(pinff, 1.0f) == pinff);
  CHECK(close(m::log_sum_exp(100.0f, 100.0f), 100.0 + std::log(2.0), 2e-7));

  CHECK(m::log_diff_exp(2.0, 2.0) == -pinf);
  CHECK(m::log_diff_exp(2.0, -pinf) == 2.0);
  CHECK(m::log_diff_exp(-pinf, -pinf) == -pinf);
  CHECK(m::log_diff_exp(pinf, 1.0) == pinf);
  CHECK(std::isnan(m::log_diff_exp(pinf, pinf)));
  CHECK(std::isnan(m::log_diff_exp(1.0, 2.0)));
  CHECK(std::isnan(m::log_diff_exp(qnan, 1.0)));
  CHECK(m::log_diff_exp(2.0f, 2.0f) == -pinff);
  CHECK(m::log_diff_exp(2.0f, -pinff) == 2.0f);
}

namespace {

/// log(sum exp(x)) by the two-pass formula in long double.
double direct_log_sum_exp(const std::vector<double>& xs) {
  long double mx = -INFINITY;
  for (double x : xs) mx = std::max<long double>(mx, x);
  if (std::isinf(mx)) return static_cast<double>(mx);
  long double s = 0;
  for (double x : xs) s += std::exp(static_cast<long double>(x) - mx);
  return static_cast<double>(mx + std::log(s));
}

template <class T>
m::log_sum_exp_accumulator<T> accumulate(const std::vector<double>& xs, std::size_t begin, std::size_t end) {
  m::log_sum_exp_accumulator<T> acc;
  for (std::size_t i = begin; i < end; ++i) acc.add(static_cast<T>(xs[i]));
  return acc;
}

}  // namespace

TEST_CASE_TEMPLATE("math: log_sum_exp_accumulator add and merge", T, double, float) {
  const double tol = std::is_same_v<T, float> ? 2e-6 : 2e-14;  // relative to 1 + |value|
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (double spread : {1.0, 30.0, 300.0}) {
    for (std::size_t n : {std::size_t(1), std::size_t(2), std::size_t(17), std::size_t(1000)}) {
      std::vector<double> xs(n);
      for (auto& x : xs) x = static_cast<double>(static_cast<T>(spread * normal(rng) - 5.0));
      if (n > 10) xs[3] = -INFINITY;  // -pinf terms contribute nothing
      const double ref = direct_log_sum_exp(xs);
      INFO("spread " << spread << ", n " << n);

      const auto one_pass = accumulate<T>(xs, 0, n);
      CHECK(close(one_pass.value(), ref, tol, tol));

      // split at random cut points, merge the blocks in a random order and as a tree
      for (int trial = 0; trial < 5; ++trial) {
        std::vector<std::size_t> cuts{0, n};
        for (int c = 0; c < 6; ++c) cuts.push_back(std::uniform_int_distribution<std::size_t>(0, n)(rng));
        std::sort(cuts.begin(), cuts.end());
        std::vector<m::log_sum_exp_accumulator<T>> parts;
        for (std::size_t i = 0; i + 1 < cuts.size(); ++i) parts.push_back(accumulate<T>(xs, cuts[i], cuts[i + 1]));
        std::shuffle(parts.begin(), parts.end(), rng);

        m::log_sum_exp_accumulator<T> sequential;  // starts empty: merging into empty is the identity
        for (const auto& p : parts) sequential.merge(p);
        CHECK(close(sequential.value(), ref, tol, tol));

        auto tree = parts;
        while (tree.size() > 1) {
          std::vector<m::log_sum_exp_accumulator<T>> next;
          for (std::size_t i = 0; i + 1 < tree.size(); i += 2) {
            auto a = tree[i];
            a.merge(tree[i + 1]);
            next.push_back(a);
          }
          if (tree.size() % 2) next.push_back(tree.back());
          tree = next;
        }
        CHECK(close(tree[0].value(), ref, tol, tol));
      }
    }
  }
}

TEST_CASE_TEMPLATE("math: log_sum_exp_accumulator special values", T, double, float) {
  const T tinf = std::numeric_limits<T>::infinity();
  m::log_sum_exp_accumulator<T> empty;
  CHECK(empty.value() == -tinf);
  CHECK(empty.max == -tinf);
  CHECK(empty.sum == T(0));

  m::log_sum_exp_accumulator<T> neg_infs;
  neg_infs.add(-tinf);
  neg_infs.add(-tinf);
  CHECK(neg_infs.value() == -tinf);
  neg_infs.merge(empty);
  CHECK(neg_infs.value() == -tinf);

  m::log_sum_exp_accumulator<T> single;
  single.add(T(3.25));
  CHECK(single.value() == T(3.25));
  single.merge(empty);
  CHECK(single.value() == T(3.25));
  auto e2 = empty;
  e2.merge(single);
  CHECK(e2.value() == T(3.25));
  single.add(T(3.25));
  CHECK(close(single.value(), 3.25 + std::log(2.0), std::is_same_v<T, float> ? 2e-7 : 4e-16));

  m::log_sum_exp_accumulator<T> with_inf;
  with_inf.add(T(1));
  with_inf.add(tinf);
  with_inf.add(T(2));
  with_inf.add(tinf);
  CHECK(with_inf.value() == tinf);
  m::log_sum_exp_accumulator<T> big;
  big.add(T(50));
  big.merge(with_inf);
  CHECK(big.value() == tinf);

  m::log_sum_exp_accumulator<T> with_nan;
  with_nan.add(T(1));
  with_nan.add(std::numeric_limits<T>::quiet_NaN());
  with_nan.add(T(5));
  CHECK(std::isnan(with_nan.value()));
  m::log_sum_exp_accumulator<T> merged;
  merged.add(T(100));
  merged.merge(with_nan);
  CHECK(std::isnan(merged.value()));

  // large arguments do not overflow
  m::log_sum_exp_accumulator<T> large;
  for (int i = 0; i < 10; ++i) large.add(T(80 + i));  // e^89 overflows float
  double ref = 0;
  for (int i = 0; i < 10; ++i) ref += std::exp(static_cast<double>(i - 9));
  CHECK(close(large.value(), 89 + std::log(ref), std::is_same_v<T, float> ? 2e-7 : 4e-16));
}

// ---------------------------------------------------------------------------------------------------
// xlogy

TEST_CASE("math: xlogy and xlog1py match mpmath") {
  const fixture_table t = read_fixture_table("math_xlogy.txt");
  const std::size_t cx = t.column("x"), cy = t.column("y"), c1 = t.column("xlogy"), c2 = t.column("xlog1py");
  REQUIRE(t.rows.size() > 80);
  for (const auto& row : t.rows) {
    const double x = row[cx], y = row[cy];
    INFO("x = " << x << ", y = " << y);
    CHECK(close(m::xlogy(x, y), row[c1], 5e-16, 1e-300));
    CHECK(close(m::xlog1py(x, y), row[c2], 5e-16, 1e-300));
    if (float_exact(x) && float_exact(y) && float_finite_or_inf(row[c1]) && float_finite_or_inf(row[c2]) &&
        std::fabs(x) <= FLT_MAX && std::fabs(y) <= FLT_MAX) {
      const float xf = static_cast<float>(x), yf = static_cast<float>(y);
      CHECK(close(m::xlogy(xf, yf), row[c1], 5e-7, 1e-44));
      CHECK(close(m::xlog1py(xf, yf), row[c2], 5e-7, 1e-44));
    }
  }
}

TEST_CASE("math: xlogy and xlog1py limit values (scipy.special semantics)") {
  CHECK(m::xlogy(0.0, 0.0) == 0.0);
  CHECK(m::xlogy(0.0, -1.0) == 0.0);
  CHECK(m::xlogy(0.0, pinf) == 0.0);
  CHECK(std::isnan(m::xlogy(0.0, qnan)));
  CHECK(m::xlogy(1.0, 0.0) == -pinf);
  CHECK(m::xlogy(-1.0, 0.0) == pinf);
  CHECK(std::isnan(m::xlogy(1.0, -1.0)));
  CHECK(std::isnan(m::xlogy(qnan, 2.0)));
  CHECK(m::xlog1py(0.0, -1.0) == 0.0);
  CHECK(m::xlog1py(0.0, -5.0) == 0.0);
  CHECK(std::isnan(m::xlog1py(0.0, qnan)));
  CHECK(m::xlog1py(1.0, -1.0) == -pinf);
  CHECK(std::isnan(m::xlog1py(2.0, -2.0)));
  CHECK(m::xlogy(0.0f, 0.0f) == 0.0f);
  CHECK(m::xlog1py(0.0f, -1.0f) == 0.0f);
  CHECK(m::xlogy(2.0f, 0.0f) == -pinff);
}

TEST_CASE("math: thin wrappers") {
  for (double x : {-0.75, -1e-10, 0.0, 1e-300, 1e-10, 0.5, 3.0, 700.0}) {
    CHECK(m::log1p(x) == std::log1p(x));
    CHECK(m::expm1(x) == std::expm1(x));
    CHECK(m::exp(x) == std::exp(x));
    if (x > 0) CHECK(m::log(x) == std::log(x));
    const float xf = static_cast<float>(x);
    CHECK(m::log1p(xf) == std::log1p(xf));
    CHECK(m::expm1(xf) == std::expm1(xf));
  }
  CHECK(m::log1p(-1.0) == -pinf);
  CHECK(m::expm1(-pinf) == -1.0);
}

// ---------------------------------------------------------------------------------------------------
// device: the same functions in a kernel (compiled whenever nvcc builds this file; runs with a GPU)

#if CELLKIT_CUDA_COMPILER

namespace {

constexpr int device_functions = 11;

template <class T>
CELLKIT_HD void evaluate_all(T x, T y, int i, T* o) {
  o[0] = m::lgamma(x);
  o[1] = m::digamma(x);
  o[2] = m::log_poch(y, T(3) * y);
  o[3] = m::softplus(x);
  o[4] = m::sigmoid(x);
  o[5] = m::log_sigmoid(x);
  o[6] = m::log1mexp(-m::softplus(x));
  o[7] = m::log_sum_exp(x, y);
  o[8] = m::xlogy(x, y);
  o[9] = m::xlog1py(x, y);
  m::log_sum_exp_accumulator<T> acc;
  for (int k = 0; k <= i % 7; ++k) acc.add(x + T(k));
  m::log_sum_exp_accumulator<T> other;
  other.add(y);
  acc.merge(other);
  o[10] = acc.value();
}

template <class T>
__global__ void math_kernel(const T* x, const T* y, T* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) evaluate_all(x[i], y[i], i, out + static_cast<std::size_t>(i) * device_functions);
}

}  // namespace

TEST_CASE_TEMPLATE("math: device results agree with the host", T, double, float) {
  if (!cellkit::detail::cuda_device_available()) {
    MESSAGE("skipped: no CUDA device");
    return;
  }
  constexpr int n = 4096;
  std::vector<T> x(n), y(n);
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> ux(-5.0, 50.0), uy(0.1, 100.0);
  for (int i = 0; i < n; ++i) {
    double v = ux(rng);
    if (v == std::rint(v)) v += 0.5;
    x[i] = static_cast<T>(v);
    y[i] = static_cast<T>(uy(rng));
  }
  T *dx = nullptr, *dy = nullptr, *dout = nullptr;
  CELLKIT_CUDA_CHECK(cudaMalloc(&dx, n * sizeof(T)));
  CELLKIT_CUDA_CHECK(cudaMalloc(&dy, n * sizeof(T)));
  CELLKIT_CUDA_CHECK(cudaMalloc(&dout, n * device_functions * sizeof(T)));
  CELLKIT_CUDA_CHECK(cudaMemcpy(dx, x.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  CELLKIT_CUDA_CHECK(cudaMemcpy(dy, y.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  math_kernel<T><<<(n + 255) / 256, 256>>>(dx, dy, dout, n);
  CELLKIT_CUDA_CHECK(cudaGetLastError());
  std::vector<T> dev(static_cast<std::size_t>(n) * device_functions);
  CELLKIT_CUDA_CHECK(cudaMemcpy(dev.data(), dout, dev.size() * sizeof(T), cudaMemcpyDeviceToHost));
  CELLKIT_CUDA_CHECK(cudaFree(dx));
  CELLKIT_CUDA_CHECK(cudaFree(dy));
  CELLKIT_CUDA_CHECK(cudaFree(dout));

  // Host and device use different log/exp/sin implementations (and FMA contraction): compare to a
  // few ulps, absolute where the formulas cancel (reflection for x < 0).
  const double tol = std::is_same_v<T, float> ? 2e-6 : 5e-15;
  T host[device_functions];
  for (int i = 0; i < n; ++i) {
    evaluate_all(x[i], y[i], i, host);
    for (int f = 0; f < device_functions; ++f) {
      const double d = dev[static_cast<std::size_t>(i) * device_functions + f];
      INFO("function " << f << ", x = " << x[i] << ", y = " << y[i] << ": device " << d << ", host " << host[f]);
      CHECK(close(d, host[f], tol, tol * (1 + std::fabs(static_cast<double>(m::lgamma(T(1) - x[i]))))));
    }
  }
}

#endif
