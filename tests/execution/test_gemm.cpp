#include <cellkit/execution/gemm.hpp>

#include "support/test_support.hpp"

#include <random>

using namespace cellkit;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

namespace {
template <class T>
std::vector<T> cast_vector(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}
}  // namespace

TEST_CASE_TEMPLATE("gemm matches NumPy on fixture cases (all transpositions, alpha, beta)", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto cases = cellkit::test::read_fixture_cases("gemm_cases.txt");
  REQUIRE(cases.size() >= 6);
  for (const auto& c : cases) {
    const auto m = static_cast<index_t>(c.params[0]);
    const auto n = static_cast<index_t>(c.params[1]);
    const auto k = static_cast<index_t>(c.params[2]);
    const bool ta = c.params[3] != 0;
    const bool tb = c.params[4] != 0;
    const double alpha = c.params[5];
    const double beta = c.params[6];
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    CAPTURE(ta);
    CAPTURE(tb);
    policy_array<P, double> a(c.matrix("A"));
    policy_array<P, double> b(c.matrix("B"));
    policy_array<P, double> out(c.matrix("C0"));
    gemm(policy_of<P>(), a.matrix(ta ? k : m, ta ? m : k), b.matrix(tb ? n : k, tb ? k : n), out.matrix(m, n),
         gemm_params<double>{alpha, beta, ta, tb});
    const auto got = out.to_host();
    const auto& expected = c.matrix("C");
    for (std::size_t i = 0; i < got.size(); ++i) REQUIRE(cellkit::test::close(got[i], expected[i], 1e-12, 1e-12));

    // float: same products to float rounding
    policy_array<P, float> af(cast_vector<float>(c.matrix("A")));
    policy_array<P, float> bf(cast_vector<float>(c.matrix("B")));
    policy_array<P, float> outf(cast_vector<float>(c.matrix("C0")));
    gemm(policy_of<P>(), af.matrix(ta ? k : m, ta ? m : k), bf.matrix(tb ? n : k, tb ? k : n), outf.matrix(m, n),
         gemm_params<float>{static_cast<float>(alpha), static_cast<float>(beta), ta, tb});
    const auto gotf = outf.to_host();
    for (std::size_t i = 0; i < gotf.size(); ++i) REQUIRE(cellkit::test::close(gotf[i], expected[i], 1e-4, 1e-4));
  }
}

TEST_CASE_TEMPLATE("gemm with beta = 0 ignores NaN in C, and k = 0 scales C", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  policy_array<P, double> a(std::vector<double>{1, 2, 3, 4});
  policy_array<P, double> b(std::vector<double>{1, 0, 0, 1});
  policy_array<P, double> c(std::vector<double>(4, std::numeric_limits<double>::quiet_NaN()));
  gemm(policy_of<P>(), a.matrix(2, 2), b.matrix(2, 2), c.matrix(2, 2));
  CHECK(c.to_host() == std::vector<double>{1, 2, 3, 4});

  policy_array<P, double> empty_a(0);
  policy_array<P, double> c2(std::vector<double>{1, 2, 3, 4});
  gemm(policy_of<P>(), empty_a.matrix(2, 0), empty_a.matrix(0, 2), c2.matrix(2, 2), gemm_params<double>{1.0, 0.5});
  CHECK(c2.to_host() == std::vector<double>{0.5, 1, 1.5, 2});
}

TEST_CASE("gemm on strided views (a block of a larger matrix)") {
  // 3 x 2 block starting at (1, 1) of a 4 x 5 matrix, times 2 x 2 identity*2, into a strided C.
  std::vector<double> big(20);
  for (int i = 0; i < 20; ++i) big[static_cast<std::size_t>(i)] = i;
  std::vector<double> two = {2, 0, 0, 2};
  std::vector<double> c(3 * 4, -1.0);
  matrix_view<const double> block(big.data() + 6, 3, 2, 5);
  matrix_view<double> c_view(c.data(), 3, 2, 4);
  gemm(serial{}, block, matrix_view<const double>(two.data(), 2, 2), c_view);
  CHECK(c_view(0, 0) == 12);
  CHECK(c_view(2, 1) == 2 * 17);
  CHECK(c[2] == -1.0);  // padding untouched
}

TEST_CASE("gemm shape errors name both operands and shapes") {
  std::vector<double> a(6), b(6), c(4);
  matrix_view<double> a_view(a.data(), 2, 3);
  matrix_view<double> b_view(b.data(), 2, 3);
  matrix_view<double> c_view(c.data(), 2, 2);
  CHECK_THROWS_WITH_AS(gemm(serial{}, a_view, b_view, c_view),
                       "gemm: dimension mismatch: A is 2 x 3 but B is 2 x 3 (the inner dimensions must agree)",
                       dimension_mismatch);
  CHECK_THROWS_AS(gemm(serial{}, a_view, b_view, matrix_view<double>(c.data(), 1, 2), {.transpose_b = true}),
                  dimension_mismatch);
  CHECK_NOTHROW(gemm(serial{}, a_view, b_view, c_view, {.transpose_b = true}));
}

TEST_CASE("gemm: serial and openmp{1} give the same bits; openmp{2} agrees to rounding") {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  const index_t m = 97, n = 65, k = 300;
  std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n));
  for (auto& v : a) v = normal(rng);
  for (auto& v : b) v = normal(rng);
  std::vector<float> c1(static_cast<std::size_t>(m * n)), c2(c1.size()), c3(c1.size());
  gemm(serial{}, matrix_view<const float>(a.data(), m, k), matrix_view<const float>(b.data(), k, n),
       matrix_view<float>(c1.data(), m, n));
  gemm(openmp{1}, matrix_view<const float>(a.data(), m, k), matrix_view<const float>(b.data(), k, n),
       matrix_view<float>(c2.data(), m, n));
  gemm(openmp{2}, matrix_view<const float>(a.data(), m, k), matrix_view<const float>(b.data(), k, n),
       matrix_view<float>(c3.data(), m, n));
  CHECK(c1 == c2);
  // Eigen derives its blocking from the thread count, so two threads may sum in another order.
  for (std::size_t i = 0; i < c1.size(); ++i) REQUIRE(cellkit::test::close(c3[i], c1[i], 1e-4, 1e-4));
}

TEST_CASE("gemm: float on one thread (cellkit's blocking) matches a double reference, every transposition and shape") {
  // Products of at least 32 in every dimension go through detail::serial_float_gemm; these shapes
  // sit around its block sizes (kc = 256, mc = 256, nc = 64) and Eigen's micro-kernel (48 x 4), on
  // strided views, with alpha and beta.
  struct shape {
    index_t m, n, k;
  };
  const shape shapes[] = {{32, 32, 32}, {33, 65, 255}, {64, 63, 256}, {65, 257, 257}, {300, 64, 600}, {257, 33, 40}};
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  for (const shape s : shapes) {
    for (const bool ta : {false, true}) {
      for (const bool tb : {false, true}) {
        CAPTURE(s.m);
        CAPTURE(s.n);
        CAPTURE(s.k);
        CAPTURE(ta);
        CAPTURE(tb);
        // stored shapes (ta ? k x m : m x k), (tb ? n x k : k x n), each row padded by 3
        const index_t a_rows = ta ? s.k : s.m, a_cols = ta ? s.m : s.k;
        const index_t b_rows = tb ? s.n : s.k, b_cols = tb ? s.k : s.n;
        const index_t lda = a_cols + 3, ldb = b_cols + 3, ldc = s.n + 3;
        std::vector<float> a(static_cast<std::size_t>(a_rows * lda)), b(static_cast<std::size_t>(b_rows * ldb)),
            c(static_cast<std::size_t>(s.m * ldc));
        for (auto& v : a) v = static_cast<float>(normal(rng));
        for (auto& v : b) v = static_cast<float>(normal(rng));
        for (auto& v : c) v = static_cast<float>(normal(rng));
        const std::vector<float> c0 = c;
        const float alpha = 0.5f, beta = 2.0f;
        gemm(serial{}, matrix_view<const float>(a.data(), a_rows, a_cols, lda),
             matrix_view<const float>(b.data(), b_rows, b_cols, ldb), matrix_view<float>(c.data(), s.m, s.n, ldc),
             {.alpha = alpha, .beta = beta, .transpose_a = ta, .transpose_b = tb});
        double worst = 0;
        for (index_t i = 0; i < s.m; ++i) {
          for (index_t j = 0; j < s.n; ++j) {
            double sum = 0, magnitude = 0;
            for (index_t q = 0; q < s.k; ++q) {
              const double x = ta ? a[static_cast<std::size_t>(q * lda + i)] : a[static_cast<std::size_t>(i * lda + q)];
              const double y = tb ? b[static_cast<std::size_t>(j * ldb + q)] : b[static_cast<std::size_t>(q * ldb + j)];
              sum += x * y;
              magnitude += std::fabs(x * y);
            }
            const auto at = static_cast<std::size_t>(i * ldc + j);
            const double ref = alpha * sum + beta * static_cast<double>(c0[at]);
            const double scale = alpha * magnitude + beta * std::fabs(static_cast<double>(c0[at]));
            worst = std::max(worst, std::fabs(static_cast<double>(c[at]) - ref) / scale);
          }
          for (index_t j = s.n; j < ldc; ++j) {
            const auto at = static_cast<std::size_t>(i * ldc + j);
            REQUIRE(c[at] == c0[at]);  // padding untouched
          }
        }
        // float accumulation: error below ~k eps of the sum of magnitudes
        CHECK(worst <= 4e-7 * static_cast<double>(s.k));
      }
    }
  }
}
