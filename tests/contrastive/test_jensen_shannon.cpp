// Tests of cellkit/contrastive/jensen_shannon.hpp: JS divergence of row softmaxes against PyTorch
// autograd, central differences, extreme logits, determinism and argument errors.
// Host-only: templated over CELLKIT_HOST_TEST_POLICIES (also in the nvcc build).

#include <cellkit/contrastive/jensen_shannon.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <vector>

using namespace cellkit;
using cellkit::test::policy_of;
namespace ck = cellkit::contrastive;

namespace {

template <class T>
double scaled_error(const std::vector<T>& got, const std::vector<double>& expected, double floor = 1e-3) {
  REQUIRE(got.size() == expected.size());
  double scale = floor;
  double err = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    scale = std::max(scale, std::fabs(expected[i]));
    err = std::max(err, std::fabs(static_cast<double>(got[i]) - expected[i]));
  }
  return err / scale;
}

template <class T, class P>
void run_case(const cellkit::test::fixture_case& c, double value_tol, double grad_tol) {
  const auto n = static_cast<index_t>(c.params[0]);
  const auto k = static_cast<index_t>(c.params[1]);
  CAPTURE(n);
  CAPTURE(k);
  const std::vector<T> x(c.matrix("X").begin(), c.matrix("X").end());
  const std::vector<T> y(c.matrix("Y").begin(), c.matrix("Y").end());
  std::vector<T> gx(x.size()), gy(y.size());
  const T loss =
      ck::jensen_shannon(policy_of<P>(), matrix_view<const T>(x.data(), n, k), matrix_view<const T>(y.data(), n, k),
                         matrix_view<T>(gx.data(), n, k), matrix_view<T>(gy.data(), n, k));
  const double ref = c.matrix("loss64")[0];
  CHECK(std::fabs(static_cast<double>(loss) - ref) <= value_tol);
  CHECK(std::fabs(static_cast<double>(loss) - c.matrix("loss")[0]) <= value_tol);
  CHECK(scaled_error(gx, c.matrix("grad_X64")) <= grad_tol);
  CHECK(scaled_error(gy, c.matrix("grad_Y64")) <= grad_tol);
  CHECK(scaled_error(gx, c.matrix("grad_X")) <= grad_tol);
}

}  // namespace

TEST_CASE_TEMPLATE("jensen_shannon matches PyTorch autograd (softmax of logits)", P, CELLKIT_HOST_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto cases = cellkit::test::read_fixture_cases("contrastive_jensen_shannon.txt");
  REQUIRE(cases.size() >= 6);
  for (const auto& c : cases) {
    if (c.params[3] == 0) {
      run_case<double, P>(c, 1e-14, 1e-12);
    } else {
      run_case<float, P>(c, 1e-6, 2e-5);
    }
  }
}

TEST_CASE("jensen_shannon: central differences, bounds, extreme logits, determinism") {
  std::mt19937_64 rng(8);
  std::normal_distribution<double> normal;
  const index_t n = 6, k = 5;
  std::vector<double> x(static_cast<std::size_t>(n * k)), y(x.size());
  for (auto& v : x) v = 3 * normal(rng);
  for (auto& v : y) v = 3 * normal(rng);
  std::vector<double> gx(x.size()), gy(y.size());
  const double loss =
      ck::jensen_shannon(serial{}, matrix_view<const double>(x.data(), n, k), matrix_view<const double>(y.data(), n, k),
                         matrix_view<double>(gx.data(), n, k), matrix_view<double>(gy.data(), n, k));
  auto value = [&](const std::vector<double>& a, const std::vector<double>& b) {
    return ck::jensen_shannon(serial{}, matrix_view<const double>(a.data(), n, k),
                              matrix_view<const double>(b.data(), n, k), std::nullopt, std::nullopt);
  };
  CHECK(value(x, y) == loss);
  CHECK(loss > 0);
  CHECK(loss <= std::log(2.0));
  const double h = 1e-6;
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto xp = x, xm = x, yp = y, ym = y;
    xp[i] += h;
    xm[i] -= h;
    yp[i] += h;
    ym[i] -= h;
    CHECK(std::fabs((value(xp, y) - value(xm, y)) / (2 * h) - gx[i]) <= 1e-8);
    CHECK(std::fabs((value(x, yp) - value(x, ym)) / (2 * h) - gy[i]) <= 1e-8);
  }
  // disjoint one-hot distributions (logits +-1000): JS = log 2, finite gradients
  std::vector<double> a = {1000, -1000, -1000}, b = {-1000, -1000, 1000}, ga(3), gb(3);
  const double far =
      ck::jensen_shannon(serial{}, matrix_view<const double>(a.data(), 1, 3), matrix_view<const double>(b.data(), 1, 3),
                         matrix_view<double>(ga.data(), 1, 3), matrix_view<double>(gb.data(), 1, 3));
  CHECK(cellkit::test::close(far, std::log(2.0), 1e-15));
  for (double g : ga) CHECK(std::isfinite(g));
  // identical rows: 0 and zero gradients
  const double same =
      ck::jensen_shannon(serial{}, matrix_view<const double>(a.data(), 1, 3), matrix_view<const double>(a.data(), 1, 3),
                         matrix_view<double>(ga.data(), 1, 3), matrix_view<double>(gb.data(), 1, 3));
  CHECK(same == 0.0);
  for (double g : ga) CHECK(g == 0.0);
  // bit-identical across thread counts (many rows), and gradients over the inputs
  const index_t big = 1000, cats = 37;
  std::vector<float> p(static_cast<std::size_t>(big * cats)), q(p.size());
  std::normal_distribution<float> nf;
  for (auto& v : p) v = 2 * nf(rng);
  for (auto& v : q) v = 2 * nf(rng);
  auto run = [&](auto policy) {
    std::vector<float> gp(p.size()), gq(q.size());
    const float l = ck::jensen_shannon(
        policy, matrix_view<const float>(p.data(), big, cats), matrix_view<const float>(q.data(), big, cats),
        matrix_view<float>(gp.data(), big, cats), matrix_view<float>(gq.data(), big, cats));
    gp.push_back(l);
    gp.insert(gp.end(), gq.begin(), gq.end());
    return gp;
  };
  const auto ref = run(serial{});
  CHECK(run(openmp{2}) == ref);
  CHECK(run(openmp{1}) == ref);
  auto p2 = p, q2 = q;
  const float l2 =
      ck::jensen_shannon(openmp{2}, matrix_view<float>(p2.data(), big, cats), matrix_view<float>(q2.data(), big, cats),
                         matrix_view<float>(p2.data(), big, cats), matrix_view<float>(q2.data(), big, cats));
  CHECK(l2 == ref[static_cast<std::size_t>(big * cats)]);
  CHECK(p2[5] == ref[5]);
  CHECK(q2[5] == ref[static_cast<std::size_t>(big * cats + 1 + 5)]);
}

TEST_CASE("jensen_shannon rejects bad input with messages") {
  std::vector<double> x(6, 0.5), y(6, 0.25);
  const matrix_view<const double> xv(x.data(), 2, 3), yv(y.data(), 2, 3);
  CHECK_THROWS_WITH_AS(
      ck::jensen_shannon(serial{}, xv, matrix_view<const double>(y.data(), 3, 2), std::nullopt, std::nullopt),
      "jensen_shannon: dimension mismatch: logits_q is 3 x 2 but logits_p is 2 x 3 (both inputs hold "
      "one distribution per row over the same categories)",
      dimension_mismatch);
  CHECK_THROWS_WITH_AS(ck::jensen_shannon(serial{}, matrix_view<const double>(x.data(), 0, 3),
                                          matrix_view<const double>(y.data(), 0, 3), std::nullopt, std::nullopt),
                       "jensen_shannon: invalid argument 'logits_p': has no rows (distributions)", invalid_argument);
  y[4] = -std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(ck::jensen_shannon(serial{}, xv, yv, std::nullopt, std::nullopt),
                       "jensen_shannon: invalid argument 'logits_q': logits_q(1, 1) is infinite: logits must be finite",
                       invalid_argument);
  std::vector<double> g(6);
  CHECK_THROWS_WITH_AS(ck::jensen_shannon(serial{}, xv, xv, matrix_view<double>(g.data(), 3, 2), std::nullopt),
                       "jensen_shannon: dimension mismatch: grad_p is 3 x 2 but logits_p is 2 x 3 (a gradient has the "
                       "shape of its input)",
                       dimension_mismatch);
}
