// The policy-generic evaluation of cross_correlation_loss and jensen_shannon
// (contrastive/detail/portable_cross_correlation.hpp, portable_jensen_shannon.hpp), which the cuda
// policy runs: on host policies it is called directly (so its arithmetic is checked without a GPU);
// under nvcc the cuda instantiation calls the public functions with device views (skipped without a
// GPU). Both are compared with the public host functions, which test_cross_correlation.cpp and
// test_jensen_shannon.cpp check against PyTorch autograd and central differences.

#include <cellkit/contrastive/cross_correlation.hpp>
#include <cellkit/contrastive/jensen_shannon.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace cellkit;
using cellkit::test::on_device;
using cellkit::test::policy_array;
using cellkit::test::policy_of;
namespace ck = cellkit::contrastive;

namespace {

/// Runs one loss under P: the public function for the device, the portable evaluation on the host.
template <class P>
struct runner {
  decltype(policy_of<P>()) policy = policy_of<P>();
  using space = typename policy_array<P, double>::space;
  template <class T>
  using cmat = matrix_view<const T, space>;
  template <class T>
  using grad = std::optional<matrix_view<T, space>>;

  template <class T>
  double cross_correlation(cmat<T> a, cmat<T> b, grad<T> ga, grad<T> gb, ck::cross_correlation_params<T> params) {
    double loss = 0;
    if constexpr (on_device<P>) {
      loss = ck::cross_correlation_loss(policy, a, b, ga, gb, params);
    } else {
      loss =
          ck::detail::portable_cross_correlation_loss(policy, a, b, ga, gb, params.lambda, params.eps, params.unbiased);
    }
    synchronize(policy);
    return loss;
  }
  template <class T>
  double jensen_shannon(cmat<T> x, cmat<T> y, grad<T> gx, grad<T> gy) {
    double loss = 0;
    if constexpr (on_device<P>) {
      loss = ck::jensen_shannon(policy, x, y, gx, gy);
    } else {
      loss = ck::detail::portable_jensen_shannon(policy, x, y, gx, gy);
    }
    synchronize(policy);
    return loss;
  }
  /// The finiteness checks the device path runs (through the public functions on the device).
  template <class T>
  void check_cross_correlation_input(cmat<T> a, cmat<T> b) {
    if constexpr (on_device<P>) {
      ck::cross_correlation_loss(policy, a, b, std::nullopt, std::nullopt);
    } else {
      ck::detail::check_finite_on(policy, "cross_correlation_loss", "z_a", a);
      ck::detail::check_finite_on(policy, "cross_correlation_loss", "z_b", b);
    }
  }
  template <class T>
  void check_jensen_shannon_input(cmat<T> x, cmat<T> y) {
    if constexpr (on_device<P>) {
      ck::jensen_shannon(policy, x, y, std::nullopt, std::nullopt);
    } else {
      ck::detail::check_finite_on(policy, "jensen_shannon", "logits_p", x, "logits");
      ck::detail::check_finite_on(policy, "jensen_shannon", "logits_q", y, "logits");
    }
  }
};

template <class T>
std::vector<T> random_values(std::size_t count, unsigned seed, double spread, double shift = 0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(shift, spread);
  std::vector<T> v(count);
  for (auto& x : v) x = static_cast<T>(normal(gen));
  return v;
}

/// An n x d matrix stored with row stride `stride` (the padding holds a sentinel).
template <class T>
std::vector<T> with_stride(const std::vector<T>& dense, index_t n, index_t d, index_t stride) {
  std::vector<T> out(static_cast<std::size_t>(n * stride), T(-777));
  for (index_t i = 0; i < n; ++i) std::copy_n(dense.begin() + i * d, d, out.begin() + i * stride);
  return out;
}

/// The n x d elements of a strided matrix, densely.
template <class T>
std::vector<T> dense_of(const std::vector<T>& strided, index_t n, index_t d, index_t stride) {
  std::vector<T> out(static_cast<std::size_t>(n * d));
  for (index_t i = 0; i < n; ++i) std::copy_n(strided.begin() + i * stride, d, out.begin() + i * d);
  return out;
}

/// max_i |got_i - expected_i| <= tol * max(max_i |expected_i|, floor), and the padding untouched.
template <class T>
void check_scaled(const std::vector<T>& got_strided, const std::vector<T>& expected, index_t n, index_t d,
                  index_t stride, double tol, const char* what, double floor = 1e-3) {
  const auto got = dense_of(got_strided, n, d, stride);
  REQUIRE(got.size() == expected.size());
  double scale = floor, err = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(expected[i])));
    err = std::max(err, std::fabs(static_cast<double>(got[i]) - static_cast<double>(expected[i])));
  }
  INFO(std::string(what) << ": max error " << err << " against scale " << scale);
  CHECK(err <= tol * scale);
  for (index_t i = 0; i < n; ++i)
    for (index_t k = d; k < stride; ++k) CHECK(got_strided[static_cast<std::size_t>(i * stride + k)] == T(-777));
}

void check_value(double got, double expected, double tol, const char* what) {
  INFO(std::string(what) << ": got " << got << ", expected " << expected);
  CHECK(std::fabs(got - expected) <= tol * std::max(std::fabs(expected), 1e-3));
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const invalid_argument& e) {
    return e.what();
  }
  return "(no exception)";
}

/// One cross-correlation case under P: portable (or device) against the host function with serial.
template <class T, class P>
void cross_correlation_case(index_t n, index_t d, ck::cross_correlation_params<T> params, bool strided, unsigned seed,
                            double tol, double grad_tol) {
  CAPTURE(n);
  CAPTURE(d);
  CAPTURE(params.lambda);
  CAPTURE(params.unbiased);
  CAPTURE(strided);
  // Columns with different means and scales, so the standardisation matters.
  auto a = random_values<T>(static_cast<std::size_t>(n * d), seed, 1.5, 0.7);
  auto b = random_values<T>(static_cast<std::size_t>(n * d), seed + 100, 0.4, -2.0);
  for (index_t i = 0; i < n; ++i)
    for (index_t k = 0; k < d; ++k) a[static_cast<std::size_t>(i * d + k)] *= static_cast<T>(1 + k % 4);
  std::vector<T> ga(a.size()), gb(b.size()), gb_only(b.size());
  const matrix_view<const T> ah(a.data(), n, d), bh(b.data(), n, d);
  const double ref = ck::cross_correlation_loss(serial{}, ah, bh, matrix_view<T>(ga.data(), n, d),
                                                matrix_view<T>(gb.data(), n, d), params);
  const double ref_value =
      ck::cross_correlation_loss(serial{}, ah, bh, std::nullopt, matrix_view<T>(gb_only.data(), n, d), params);

  const index_t stride = strided ? d + 3 : d;
  runner<P> run;
  using space = typename runner<P>::space;
  policy_array<P, T> ad(with_stride(a, n, d, stride)), bd(with_stride(b, n, d, stride));
  policy_array<P, T> gad(with_stride(std::vector<T>(a.size()), n, d, stride)),
      gbd(with_stride(std::vector<T>(b.size()), n, d, stride));
  const matrix_view<const T, space> av(ad.data(), n, d, stride), bv(bd.data(), n, d, stride);
  const matrix_view<T, space> gav(gad.data(), n, d, stride), gbv(gbd.data(), n, d, stride);

  check_value(run.template cross_correlation<T>(av, bv, gav, gbv, params), ref, tol, "loss");
  check_scaled(gad.to_host(), ga, n, d, stride, grad_tol, "grad_a");
  check_scaled(gbd.to_host(), gb, n, d, stride, grad_tol, "grad_b");
  // value only, and one gradient
  check_value(run.template cross_correlation<T>(av, bv, std::nullopt, std::nullopt, params), ref, tol, "value only");
  policy_array<P, T> gbd2(with_stride(std::vector<T>(b.size()), n, d, stride));
  check_value(
      run.template cross_correlation<T>(av, bv, std::nullopt, matrix_view<T, space>(gbd2.data(), n, d, stride), params),
      ref_value, tol, "loss with grad_b only");
  check_scaled(gbd2.to_host(), gb_only, n, d, stride, grad_tol, "grad_b only");
  // gradients overwriting their inputs
  policy_array<P, T> ad2(with_stride(a, n, d, stride)), bd2(with_stride(b, n, d, stride));
  const matrix_view<T, space> av2(ad2.data(), n, d, stride), bv2(bd2.data(), n, d, stride);
  check_value(run.template cross_correlation<T>(av2, bv2, av2, bv2, params), ref, tol, "aliased loss");
  check_scaled(ad2.to_host(), ga, n, d, stride, grad_tol, "aliased grad_a");
  check_scaled(bd2.to_host(), gb, n, d, stride, grad_tol, "aliased grad_b");
}

/// One Jensen-Shannon case under P.
template <class T, class P>
void jensen_shannon_case(index_t n, index_t k, double spread, bool strided, unsigned seed, double tol,
                         double grad_tol) {
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(spread);
  CAPTURE(strided);
  const auto x = random_values<T>(static_cast<std::size_t>(n * k), seed, spread);
  const auto y = random_values<T>(static_cast<std::size_t>(n * k), seed + 50, spread, 0.3);
  std::vector<T> gx(x.size()), gy(y.size()), gy_only(y.size());
  const matrix_view<const T> xh(x.data(), n, k), yh(y.data(), n, k);
  const double ref =
      ck::jensen_shannon(serial{}, xh, yh, matrix_view<T>(gx.data(), n, k), matrix_view<T>(gy.data(), n, k));
  ck::jensen_shannon(serial{}, xh, yh, std::nullopt, matrix_view<T>(gy_only.data(), n, k));

  const index_t stride = strided ? k + 2 : k;
  runner<P> run;
  using space = typename runner<P>::space;
  policy_array<P, T> xd(with_stride(x, n, k, stride)), yd(with_stride(y, n, k, stride));
  policy_array<P, T> gxd(with_stride(std::vector<T>(x.size()), n, k, stride)),
      gyd(with_stride(std::vector<T>(y.size()), n, k, stride));
  const matrix_view<const T, space> xv(xd.data(), n, k, stride), yv(yd.data(), n, k, stride);
  const matrix_view<T, space> gxv(gxd.data(), n, k, stride), gyv(gyd.data(), n, k, stride);

  check_value(run.template jensen_shannon<T>(xv, yv, gxv, gyv), ref, tol, "loss");
  check_scaled(gxd.to_host(), gx, n, k, stride, grad_tol, "grad_p");
  check_scaled(gyd.to_host(), gy, n, k, stride, grad_tol, "grad_q");
  check_value(run.template jensen_shannon<T>(xv, yv, std::nullopt, std::nullopt), ref, tol, "value only");
  policy_array<P, T> gyd2(with_stride(std::vector<T>(y.size()), n, k, stride));
  check_value(run.template jensen_shannon<T>(xv, yv, std::nullopt, matrix_view<T, space>(gyd2.data(), n, k, stride)),
              ref, tol, "loss with grad_q only");
  check_scaled(gyd2.to_host(), gy_only, n, k, stride, grad_tol, "grad_q only");
  // gradients overwriting their inputs, crosswise (grad_p over logits_q, grad_q over logits_p)
  policy_array<P, T> xd2(with_stride(x, n, k, stride)), yd2(with_stride(y, n, k, stride));
  const matrix_view<T, space> xv2(xd2.data(), n, k, stride), yv2(yd2.data(), n, k, stride);
  check_value(run.template jensen_shannon<T>(xv2, yv2, yv2, xv2), ref, tol, "aliased loss");
  check_scaled(yd2.to_host(), gx, n, k, stride, grad_tol, "aliased grad_p");
  check_scaled(xd2.to_host(), gy, n, k, stride, grad_tol, "aliased grad_q");
}

}  // namespace

TEST_CASE_TEMPLATE("portable cross_correlation_loss (the cuda evaluation) equals the host function", P,
                   CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  // Tolerances: a device run and the host differ by the rounding of each (GEMM order, CUB's
  // reduction tree, FMA contraction, the device's libm). With N = 2 a standardised column is
  // +-sqrt(v / (v + eps)) and the backward pass cancels its input down to O(eps / v), so the
  // gradients carry only ~11 correct digits in double (host against a quad-precision evaluation:
  // up to 6.8e-12 of the largest component; N >= 3 stays below 1e-13).
  unsigned seed = 1;
  for (const index_t n : {2, 3, 37}) {
    for (const index_t d : {1, 5, 17}) {
      for (const double lambda : {0.0051, 0.8}) {
        for (const bool unbiased : {false, true}) {
          const bool strided = (seed % 2) == 0;
          cross_correlation_case<double, P>(n, d, {.lambda = lambda, .eps = 1e-5, .unbiased = unbiased}, strided,
                                            seed++, 1e-12, n == 2 ? 1e-10 : 1e-12);
        }
      }
    }
  }
  // float: the GEMMs accumulate in float, in an order that differs from the host's row blocks (the
  // host's float results are within 1.3e-7 of its double ones here)
  cross_correlation_case<float, P>(37, 17, {}, false, 7, 2e-6, 2e-6);
  cross_correlation_case<float, P>(64, 9, {.lambda = 0.05f, .eps = 1e-3f, .unbiased = true}, true, 8, 2e-6, 2e-6);
}

TEST_CASE_TEMPLATE("portable jensen_shannon (the cuda evaluation) equals the host function", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  // Logits spread over +-90 (spread 30): log p = x - logsumexp(x) carries an absolute error of
  // ulp(90) ~ 1.4e-14 and the gradient's log(p/m) - KL cancels, so the host is within 7e-13 of a
  // quad-precision evaluation there (1e-14 for spread 1): the device may differ by twice that.
  unsigned seed = 1;
  for (const index_t n : {2, 3, 37}) {
    for (const index_t k : {1, 5, 17}) {
      for (const double spread : {1.0, 30.0}) {
        jensen_shannon_case<double, P>(n, k, spread, (seed % 2) == 0, seed, 1e-12, spread > 10 ? 1e-11 : 1e-12);
        ++seed;
      }
    }
  }
  jensen_shannon_case<double, P>(300, 40, 4.0, true, 99, 1e-12, 1e-12);  // several chunks of the reduction
  // float: every row is evaluated in double; only the final roundings to float may differ
  jensen_shannon_case<float, P>(37, 17, 3.0, false, 7, 1e-6, 1e-6);
  jensen_shannon_case<float, P>(128, 10, 60.0, true, 8, 1e-6, 1e-6);
}

TEST_CASE_TEMPLATE("the portable finiteness checks give the host functions' messages", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  runner<P> run;
  using space = typename runner<P>::space;
  const index_t n = 4, d = 3;
  for (const double bad : {std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::infinity()}) {
    for (const index_t where : {index_t{0}, index_t{7}, n * d - 1}) {
      for (const bool in_second : {false, true}) {
        CAPTURE(bad);
        CAPTURE(where);
        CAPTURE(in_second);
        auto a = random_values<double>(static_cast<std::size_t>(n * d), 3, 1.0);
        auto b = random_values<double>(static_cast<std::size_t>(n * d), 4, 1.0);
        (in_second ? b : a)[static_cast<std::size_t>(where)] = bad;
        if (where == 7) (in_second ? b : a)[10] = -bad;  // a later bad element: the first one is named
        const matrix_view<const double> ah(a.data(), n, d), bh(b.data(), n, d);
        policy_array<P, double> ad(a), bd(b);
        const matrix_view<const double, space> av(ad.data(), n, d), bv(bd.data(), n, d);

        const auto cc_host =
            message_of([&] { ck::cross_correlation_loss(serial{}, ah, bh, std::nullopt, std::nullopt); });
        CHECK(cc_host.find(in_second ? "z_b(" : "z_a(") != std::string::npos);
        CHECK(message_of([&] { run.check_cross_correlation_input(av, bv); }) == cc_host);

        const auto js_host = message_of([&] { ck::jensen_shannon(serial{}, ah, bh, std::nullopt, std::nullopt); });
        CHECK(js_host.find(in_second ? "logits_q(" : "logits_p(") != std::string::npos);
        CHECK(message_of([&] { run.check_jensen_shannon_input(av, bv); }) == js_host);
      }
    }
  }
}
