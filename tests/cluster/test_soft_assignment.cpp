#include <cellkit/cluster/soft_assignment.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

// The soft-assignment heads run on the host only (blocked serial GEMMs inside an OpenMP loop), so
// the tests are templated over the host policies even in the nvcc build.
//
// Tolerances (double): values and gradients vs PyTorch autograd 1e-11 relative + 1e-13 absolute
// (both compute the same formulas; PyTorch's distances are differences, ours GEMM norms, which
// costs ~1e-15 relative for these magnitudes); gradients vs central differences (h = 1e-6)
// 1e-7 relative to the gradient's scale; float vs double 2e-5.

using namespace cellkit;
using cellkit::test::policy_of;
namespace ck = cellkit::cluster;

namespace {

matrix_view<const double> cview(const std::vector<double>& v, index_t rows, index_t cols) {
  return matrix_view<const double>(v.data(), rows, cols);
}
matrix_view<double> mview(std::vector<double>& v, index_t rows, index_t cols) {
  return matrix_view<double>(v.data(), rows, cols);
}

double max_rel_error(const std::vector<double>& got, const std::vector<double>& want, double abs_floor) {
  double scale = abs_floor;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  double worst = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]) / scale);
  return worst;
}

struct problem {
  index_t n, d, k;
  std::vector<double> z, mu;
};

problem random_problem(index_t n, index_t d, index_t k, std::uint64_t seed, double spread = 2.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  problem p{n, d, k, std::vector<double>(static_cast<std::size_t>(n * d)),
            std::vector<double>(static_cast<std::size_t>(k * d))};
  for (auto& v : p.mu) v = normal(rng) * spread;
  for (index_t i = 0; i < n; ++i) {
    const auto c = static_cast<index_t>(rng() % static_cast<std::uint64_t>(k));
    for (index_t a = 0; a < d; ++a)
      p.z[static_cast<std::size_t>(i * d + a)] = p.mu[static_cast<std::size_t>(c * d + a)] + normal(rng);
  }
  return p;
}

}  // namespace

TEST_CASE_TEMPLATE("Student-t assignment, target and divergences match PyTorch", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const auto cases = test::read_fixture_cases("cluster_soft_assignment_cases.txt");
  REQUIRE(cases.size() >= 6);
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[1]);
    const auto d = static_cast<index_t>(c.params[2]);
    const auto k = static_cast<index_t>(c.params[3]);
    const double alpha = c.params[4];
    CAPTURE(c.params[0]);
    const auto z = cview(c.matrix("z"), n, d);
    const auto mu = cview(c.matrix("mu"), k, d);
    std::vector<double> q(static_cast<std::size_t>(n * k)), p(static_cast<std::size_t>(n * k));
    ck::student_t_assign(policy, z, mu, mview(q, n, k), alpha);
    CHECK(max_rel_error(q, c.matrix("q"), 0.0) < 1e-12);
    ck::target_distribution(policy, cview(q, n, k), mview(p, n, k));
    CHECK(max_rel_error(p, c.matrix("p"), 0.0) < 1e-12);

    const auto& values = c.matrix("values");
    const auto pv = cview(c.matrix("p"), n, k);
    const auto qv = cview(c.matrix("q"), n, k);
    const auto pg = cview(c.matrix("p_given"), n, k);
    CHECK(test::close(ck::kl_divergence_p_q(policy, pv, qv), values[0], 1e-11, 1e-15));
    CHECK(test::close(ck::kl_divergence_p_q(policy, pv, qv, ck::loss_reduction::sum), values[1], 1e-11, 1e-15));
    CHECK(test::close(ck::kl_divergence_q_p(policy, pv, qv), values[2], 1e-11, 1e-15));
    CHECK(test::close(ck::binary_cross_entropy(policy, pv, qv), values[3], 1e-12));
    CHECK(test::close(ck::kl_divergence_p_q(policy, pg, qv), values[4], 1e-11, 1e-15));
    CHECK(test::close(ck::binary_cross_entropy(policy, pg, qv), values[5], 1e-12));
    // Mean reduction divides by N K.
    CHECK(test::close(ck::kl_divergence_p_q(policy, pv, qv, ck::loss_reduction::mean), values[1] / double(n * k), 1e-11,
                      1e-16));
  }
}

TEST_CASE_TEMPLATE("the fused loss pass gives PyTorch's values and gradients (z, mu, alpha)", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const auto cases = test::read_fixture_cases("cluster_soft_assignment_cases.txt");
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[1]);
    const auto d = static_cast<index_t>(c.params[2]);
    const auto k = static_cast<index_t>(c.params[3]);
    const double alpha = c.params[4];
    CAPTURE(c.params[0]);
    const auto z = cview(c.matrix("z"), n, d);
    const auto mu = cview(c.matrix("mu"), k, d);
    const auto& values = c.matrix("values");
    std::vector<double> gz(static_cast<std::size_t>(n * d)), gmu(static_cast<std::size_t>(k * d));
    std::vector<double> q(static_cast<std::size_t>(n * k)), p(static_cast<std::size_t>(n * k));

    struct variant {
      const char* name;
      ck::assignment_loss loss;
      bool given;
      double value;
    };
    for (const variant& v : {variant{"kl", ck::assignment_loss::kl_p_q, false, values[0]},
                             variant{"bce", ck::assignment_loss::binary_cross_entropy, false, values[3]},
                             variant{"given", ck::assignment_loss::kl_p_q, true, values[4]}}) {
      CAPTURE(std::string(v.name));
      std::fill(gz.begin(), gz.end(), std::nan(""));  // gradients overwrite
      std::fill(gmu.begin(), gmu.end(), std::nan(""));
      const ck::student_t_loss_params<double> params{
          .alpha = alpha,
          .loss = v.loss,
          .reduction = v.loss == ck::assignment_loss::kl_p_q ? ck::loss_reduction::batchmean : ck::loss_reduction::mean,
          .power = 2.0,
          .alpha_gradient = true};
      const ck::student_t_loss_outputs<double> outputs{
          .q = mview(q, n, k), .p = mview(p, n, k), .grad_z = mview(gz, n, d), .grad_mu = mview(gmu, k, d)};
      const auto r = v.given ? ck::student_t_loss(policy, z, mu, cview(c.matrix("p_given"), n, k), outputs, params)
                             : ck::student_t_loss(policy, z, mu, outputs, params);
      CHECK(test::close(r.loss, v.value, 1e-11, 1e-15));
      CHECK(max_rel_error(gz, c.matrix(std::string(v.name) + "_grad_z"), 1e-12) < 1e-11);
      CHECK(max_rel_error(gmu, c.matrix(std::string(v.name) + "_grad_mu"), 1e-12) < 1e-11);
      REQUIRE(r.grad_alpha.has_value());
      CHECK(test::close(*r.grad_alpha, c.matrix(std::string(v.name) + "_grad_alpha")[0], 1e-10, 1e-14));
      CHECK(max_rel_error(q, c.matrix("q"), 0.0) < 1e-12);
      CHECK(max_rel_error(p, v.given ? c.matrix("p_given") : c.matrix("p"), 0.0) < 1e-12);
    }
  }
}

TEST_CASE_TEMPLATE("gradients agree with central differences for every loss and reduction", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const auto pr = random_problem(23, 3, 4, 5);
  const index_t n = pr.n, d = pr.d, k = pr.k;
  std::vector<double> target(static_cast<std::size_t>(n * k));
  std::mt19937_64 rng(9);
  for (auto& v : target) v = std::uniform_real_distribution<double>(0.01, 1.0)(rng);
  for (index_t i = 0; i < n; ++i) {  // rows of the given target sum to 0.7 (not 1): the general gradient
    double s = 0.0;
    for (index_t j = 0; j < k; ++j) s += target[static_cast<std::size_t>(i * k + j)];
    for (index_t j = 0; j < k; ++j) target[static_cast<std::size_t>(i * k + j)] *= 0.7 / s;
  }
  for (const auto loss : {ck::assignment_loss::kl_p_q, ck::assignment_loss::binary_cross_entropy}) {
    for (const auto reduction : {ck::loss_reduction::sum, ck::loss_reduction::batchmean, ck::loss_reduction::mean}) {
      for (const double alpha : {0.7, 1.0, 3.0}) {
        CAPTURE(alpha);
        CAPTURE(static_cast<int>(loss));
        CAPTURE(static_cast<int>(reduction));
        const ck::student_t_loss_params<double> params{
            .alpha = alpha, .loss = loss, .reduction = reduction, .power = 2.0, .alpha_gradient = true};
        auto value = [&](const std::vector<double>& z, const std::vector<double>& mu, double a) {
          auto pp = params;
          pp.alpha = a;
          return ck::student_t_loss(policy, cview(z, n, d), cview(mu, k, d), cview(target, n, k), {}, pp).loss;
        };
        std::vector<double> gz(static_cast<std::size_t>(n * d)), gmu(static_cast<std::size_t>(k * d));
        const auto r = ck::student_t_loss(policy, cview(pr.z, n, d), cview(pr.mu, k, d), cview(target, n, k),
                                          {.grad_z = mview(gz, n, d), .grad_mu = mview(gmu, k, d)}, params);
        const double h = 1e-6;
        double scale = 1e-3, worst = 0.0;
        for (double g : gz) scale = std::max(scale, std::fabs(g));
        for (double g : gmu) scale = std::max(scale, std::fabs(g));
        for (std::size_t e = 0; e < pr.z.size(); ++e) {
          auto zp = pr.z, zm = pr.z;
          zp[e] += h;
          zm[e] -= h;
          worst = std::max(worst, std::fabs((value(zp, pr.mu, alpha) - value(zm, pr.mu, alpha)) / (2 * h) - gz[e]));
        }
        for (std::size_t e = 0; e < pr.mu.size(); ++e) {
          auto mp = pr.mu, mm = pr.mu;
          mp[e] += h;
          mm[e] -= h;
          worst = std::max(worst, std::fabs((value(pr.z, mp, alpha) - value(pr.z, mm, alpha)) / (2 * h) - gmu[e]));
        }
        CHECK(worst / scale < 1e-7);
        const double fd_alpha = (value(pr.z, pr.mu, alpha + h) - value(pr.z, pr.mu, alpha - h)) / (2 * h);
        CHECK(std::fabs(fd_alpha - *r.grad_alpha) < 1e-7 * std::max(1e-3, std::fabs(fd_alpha)));
      }
    }
  }
  // With the target computed from q (detached), only q's dependence counts: check dL/dz against
  // differences of KL(P_fixed || Q(z)) with P frozen at the unperturbed value.
  std::vector<double> p_frozen(static_cast<std::size_t>(n * k)), gz(static_cast<std::size_t>(n * d));
  ck::student_t_loss(policy, cview(pr.z, n, d), cview(pr.mu, k, d),
                     {.p = mview(p_frozen, n, k), .grad_z = mview(gz, n, d)}, {.alpha = 1.0});
  for (std::size_t e = 0; e < pr.z.size(); e += 5) {
    auto zp = pr.z, zm = pr.z;
    zp[e] += 1e-6;
    zm[e] -= 1e-6;
    const double fp =
        ck::student_t_loss(policy, cview(zp, n, d), cview(pr.mu, k, d), cview(p_frozen, n, k), {}, {}).loss;
    const double fm =
        ck::student_t_loss(policy, cview(zm, n, d), cview(pr.mu, k, d), cview(p_frozen, n, k), {}, {}).loss;
    CHECK(std::fabs((fp - fm) / 2e-6 - gz[e]) < 1e-8);
  }
}

TEST_CASE("results are bit-identical for serial, openmp{1} and openmp{2}") {
  const auto pr = random_problem(1111, 7, 9, 11);  // 5 blocks of 256 rows
  const index_t n = pr.n, d = pr.d, k = pr.k;
  auto run = [&](auto policy) {
    std::vector<double> q(static_cast<std::size_t>(n * k)), gz(static_cast<std::size_t>(n * d)),
        gmu(static_cast<std::size_t>(k * d));
    const auto r = ck::student_t_loss(policy, cview(pr.z, n, d), cview(pr.mu, k, d),
                                      {.q = mview(q, n, k), .grad_z = mview(gz, n, d), .grad_mu = mview(gmu, k, d)},
                                      {.alpha = 1.3, .alpha_gradient = true});
    std::vector<double> all = q;
    all.insert(all.end(), gz.begin(), gz.end());
    all.insert(all.end(), gmu.begin(), gmu.end());
    all.push_back(r.loss);
    all.push_back(*r.grad_alpha);
    all.push_back(ck::cluster_mass_entropy(policy, cview(q, n, k)));
    return all;
  };
  const auto a = run(serial{});
  CHECK(a == run(openmp{1}));
  CHECK(a == run(openmp{2}));
  CHECK(a == run(openmp{3}));
}

TEST_CASE("float agrees with double; defaults and optional outputs") {
  const auto pr = random_problem(300, 5, 6, 3);
  const index_t n = pr.n, d = pr.d, k = pr.k;
  std::vector<float> zf(pr.z.begin(), pr.z.end()), muf(pr.mu.begin(), pr.mu.end());
  std::vector<double> zd(zf.begin(), zf.end()), mud(muf.begin(), muf.end());
  std::vector<float> qf(static_cast<std::size_t>(n * k)), gzf(static_cast<std::size_t>(n * d));
  std::vector<double> qd(static_cast<std::size_t>(n * k)), gzd(static_cast<std::size_t>(n * d));
  const auto rf =
      ck::student_t_loss(matrix_view<const float>(zf.data(), n, d), matrix_view<const float>(muf.data(), k, d),
                         {.q = matrix_view<float>(qf.data(), n, k), .grad_z = matrix_view<float>(gzf.data(), n, d)});
  const auto rd =
      ck::student_t_loss(cview(zd, n, d), cview(mud, k, d), {.q = mview(qd, n, k), .grad_z = mview(gzd, n, d)});
  CHECK_FALSE(rd.grad_alpha.has_value());
  CHECK(std::fabs(rf.loss - rd.loss) < 2e-5 * std::max(1.0, std::fabs(rd.loss)));
  double worst_q = 0.0, worst_g = 0.0, gscale = 0.0;
  for (std::size_t e = 0; e < qd.size(); ++e) worst_q = std::max(worst_q, std::fabs(double(qf[e]) - qd[e]));
  for (std::size_t e = 0; e < gzd.size(); ++e) {
    worst_g = std::max(worst_g, std::fabs(double(gzf[e]) - gzd[e]));
    gscale = std::max(gscale, std::fabs(gzd[e]));
  }
  CHECK(worst_q < 2e-5);
  CHECK(worst_g < 2e-4 * gscale);
  // The value alone, without any output, equals the value with all outputs.
  CHECK(ck::student_t_loss(cview(zd, n, d), cview(mud, k, d), {}).loss == rd.loss);
}

TEST_CASE("far clusters underflow to q = 0 without NaN; extreme alpha") {
  // One centre 1e3 away from every point: its kernel is ~1e-9 relative for alpha = 1 but
  // exp-underflows for large alpha; q must stay finite, rows sum to 1.
  std::vector<double> z = {0, 0, 1, 0, 0, 1, 1, 1};
  for (const double alpha : {1e-3, 1.0, 1e3, 1e6}) {
    CAPTURE(alpha);
    std::vector<double> mu = {0.5, 0.5, 1e3, -1e3, 0.4, 0.6};
    std::vector<double> q(12), p(12), gz(8), gmu(6);
    const auto r = ck::student_t_loss(
        serial{}, cview(z, 4, 2), cview(mu, 3, 2),
        {.q = mview(q, 4, 3), .p = mview(p, 4, 3), .grad_z = mview(gz, 4, 2), .grad_mu = mview(gmu, 3, 2)},
        {.alpha = alpha, .alpha_gradient = true});
    CHECK(std::isfinite(r.loss));
    CHECK(std::isfinite(*r.grad_alpha));
    for (double v : q) CHECK(std::isfinite(v));
    for (double v : p) CHECK(std::isfinite(v));
    for (double v : gz) CHECK(std::isfinite(v));
    for (double v : gmu) CHECK(std::isfinite(v));
    for (int i = 0; i < 4; ++i) CHECK(std::fabs(q[i * 3] + q[i * 3 + 1] + q[i * 3 + 2] - 1.0) < 1e-14);
    if (alpha >= 1e3) CHECK(q[1] < 1e-300);  // heavy tails for small alpha; light (underflow) for large
  }
  // A cluster whose q underflows to exactly 0 everywhere gets p = 0 (no 0/0).
  std::vector<double> mu = {0.5, 0.5, 1e200, 0.0};
  std::vector<double> q(8), p(8);
  ck::student_t_assign(serial{}, cview(z, 4, 2), cview(mu, 2, 2), mview(q, 4, 2), 1.0);
  CHECK(q[1] == 0.0);
  ck::target_distribution(serial{}, cview(q, 4, 2), mview(p, 4, 2));
  CHECK(p[1] == 0.0);
  CHECK(p[0] == 1.0);
}

TEST_CASE("labels, entropies and collapse diagnostics") {
  const std::vector<double> q = {0.5, 0.5, 0.0,  // tie: the lowest index
                                 0.1, 0.2, 0.7,  //
                                 1.0, 0.0, 0.0,  //
                                 0.2, 0.6, 0.2};
  std::vector<index_t> labels(4);
  ck::argmax_labels(serial{}, cview(q, 4, 3), make_vector_view(labels.data(), 4));
  CHECK(labels == std::vector<index_t>{0, 2, 0, 1});
  std::vector<int> labels32(4);
  ck::argmax_labels(openmp{2}, cview(q, 4, 3), make_vector_view(labels32.data(), 4));
  CHECK(labels32 == std::vector<int>{0, 2, 0, 1});

  std::vector<double> h(4);
  ck::assignment_entropy(serial{}, cview(q, 4, 3), make_vector_view(h.data(), 4));
  CHECK(h[0] == doctest::Approx(std::log(2.0)).epsilon(1e-15));
  CHECK(h[2] == 0.0);
  CHECK(h[1] == doctest::Approx(-(0.1 * std::log(0.1) + 0.2 * std::log(0.2) + 0.7 * std::log(0.7))).epsilon(1e-15));

  const std::vector<double> uniform(12, 1.0 / 3.0);
  CHECK(ck::cluster_mass_entropy(serial{}, cview(uniform, 4, 3)) == doctest::Approx(std::log(3.0)).epsilon(1e-15));
  const std::vector<double> collapsed = {1, 0, 0, 1, 0, 0};
  CHECK(ck::cluster_mass_entropy(cview(collapsed, 2, 3)) == 0.0);

  const std::vector<int> hard = {0, 2, 2, 0, 2};
  CHECK(ck::min_cluster_size(serial{}, make_vector_view(hard.data(), 5), 3) == 0);
  const std::vector<int> balanced = {0, 1, 2, 1, 0, 2, 2};
  CHECK(ck::min_cluster_size(serial{}, make_vector_view(balanced.data(), 7), 3) == 2);

  const std::vector<long> before = {0, 1, 2, 3};
  const std::vector<int> after = {0, 1, 3, 2};
  CHECK(ck::fraction_labels_changed(serial{}, make_vector_view(before.data(), 4), make_vector_view(after.data(), 4)) ==
        0.5);
  CHECK(ck::fraction_labels_changed(openmp{2}, make_vector_view(before.data(), 0), make_vector_view(after.data(), 0)) ==
        0.0);
}

TEST_CASE_TEMPLATE("bad inputs are refused with a message naming the argument", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  std::vector<double> z = {0, 0, 1, 0, 0, 1};
  std::vector<double> mu = {0, 0, 1, 1};
  std::vector<double> q(6), p(6), bad(6);
  const auto zv = cview(z, 3, 2);
  const auto muv = cview(mu, 2, 2);
  CHECK_THROWS_WITH_AS(ck::student_t_assign(policy, zv, muv, mview(q, 3, 2), 0.0),
                       "student_t_assign: invalid argument 'alpha': must be finite and > 0, got 0", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::student_t_assign(policy, zv, muv, mview(q, 3, 2), -1.5),
                       "student_t_assign: invalid argument 'alpha': must be finite and > 0, got -1.5",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::student_t_loss(policy, zv, muv, {}, {.alpha = std::nan("")}),
                       "student_t_loss: invalid argument 'alpha': must be finite and > 0, got NaN", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::student_t_assign(policy, zv, cview(mu, 1, 4), mview(q, 3, 1)),
                       "student_t_assign: dimension mismatch: z is 3 x 2 but mu is 1 x 4 (z and mu must have the same "
                       "number of columns (the embedding dimension))",
                       dimension_mismatch);
  CHECK_THROWS_WITH_AS(ck::student_t_assign(policy, zv, muv, mview(q, 2, 3)),
                       "student_t_assign: dimension mismatch: q is 2 x 3 but z mu^T is 3 x 2 (q must be N x K (cells x "
                       "clusters))",
                       dimension_mismatch);
  CHECK_THROWS_WITH_AS(ck::student_t_assign(policy, zv, cview(mu, 0, 2), mview(q, 3, 0)),
                       "student_t_assign: invalid argument 'mu': must have at least one row (one cluster centre)",
                       invalid_argument);
  std::vector<double> z_nan = z;
  z_nan[3] = std::nan("");
  CHECK_THROWS_WITH_AS(ck::student_t_assign(policy, cview(z_nan, 3, 2), muv, mview(q, 3, 2)),
                       "student_t_assign: invalid argument 'z': z(1, 1) is NaN: every value must be finite",
                       invalid_argument);
  std::vector<double> mu_inf = mu;
  mu_inf[0] = -std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(ck::student_t_loss(policy, zv, cview(mu_inf, 2, 2), {}),
                       "student_t_loss: invalid argument 'mu': mu(0, 0) is -inf: every value must be finite",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::student_t_loss(policy, zv, muv, cview(p, 2, 3), {}),
                       "student_t_loss: dimension mismatch: p is 2 x 3 but z mu^T is 3 x 2 (the target must be N x K "
                       "(cells x clusters))",
                       dimension_mismatch);
  std::vector<double> gz(4);
  CHECK_THROWS_WITH_AS(
      ck::student_t_loss(policy, zv, muv, {.grad_z = mview(gz, 2, 2)}),
      "student_t_loss: dimension mismatch: outputs.grad_z is 2 x 2 but z is 3 x 2 (grad_z must have the "
      "shape of z)",
      dimension_mismatch);
  CHECK_THROWS_WITH_AS(ck::student_t_loss(policy, zv, muv, {}, {.power = 0.0}),
                       "student_t_loss: invalid argument 'params.power': must be finite and > 0, got 0",
                       invalid_argument);
  bad = {0.5, 0.5, -0.1, 1.1, 0.3, 0.7};
  CHECK_THROWS_WITH_AS(ck::target_distribution(policy, cview(bad, 3, 2), mview(p, 3, 2)),
                       "target_distribution: invalid argument 'q': q(1, 0) is -0.10000000000000001: entries must be "
                       "finite and >= 0",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::target_distribution(policy, cview(q, 3, 2), mview(p, 3, 2), -2.0),
                       "target_distribution: invalid argument 'power': must be finite and > 0, got -2",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::kl_divergence_p_q(policy, cview(q, 3, 2), cview(p, 2, 3)),
                       "kl_divergence_p_q: dimension mismatch: p is 3 x 2 but q is 2 x 3 (both must be N x K)",
                       dimension_mismatch);
  std::vector<double> nan_q = {0.5, std::nan(""), 0.5, 0.5, 0.5, 0.5};
  CHECK_THROWS_WITH_AS(ck::binary_cross_entropy(policy, cview(q, 3, 2), cview(nan_q, 3, 2)),
                       "binary_cross_entropy: invalid argument 'q': q(0, 1) is NaN: entries must be finite and >= 0",
                       invalid_argument);
  const std::vector<int> labels = {0, 3, 1};
  CHECK_THROWS_WITH_AS(ck::min_cluster_size(policy, make_vector_view(labels.data(), 3), 2),
                       "min_cluster_size: invalid argument 'labels': label 3 at position 1 is outside [0, 2)",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::min_cluster_size(policy, make_vector_view(labels.data(), 3), 0),
                       "min_cluster_size: invalid argument 'k': must be >= 1, got 0", invalid_argument);
  CHECK_THROWS_WITH_AS(
      ck::fraction_labels_changed(policy, make_vector_view(labels.data(), 3), make_vector_view(labels.data(), 2)),
      "fraction_labels_changed: dimension mismatch: previous is 3 x 1 but current is 2 x 1 (both label "
      "vectors must have one entry per cell)",
      dimension_mismatch);
  const std::vector<double> zeros(6, 0.0);
  CHECK_THROWS_WITH_AS(ck::cluster_mass_entropy(policy, cview(zeros, 3, 2)),
                       "cluster_mass_entropy: invalid argument 'q': has total mass 0 (no cells, or every entry is 0)",
                       invalid_argument);
}

TEST_CASE("row strides: views with padding give the same results as contiguous ones") {
  const auto pr = random_problem(300, 5, 4, 21);
  const index_t n = pr.n, d = pr.d, k = pr.k;
  // z with stride 8, mu with stride 6, outputs with strides 7 and 9.
  std::vector<double> zs(static_cast<std::size_t>(n * 8), -1.0), mus(static_cast<std::size_t>(k * 6), -1.0);
  for (index_t i = 0; i < n; ++i)
    for (index_t a = 0; a < d; ++a) zs[static_cast<std::size_t>(i * 8 + a)] = pr.z[static_cast<std::size_t>(i * d + a)];
  for (index_t j = 0; j < k; ++j)
    for (index_t a = 0; a < d; ++a)
      mus[static_cast<std::size_t>(j * 6 + a)] = pr.mu[static_cast<std::size_t>(j * d + a)];
  std::vector<double> q(static_cast<std::size_t>(n * k)), gz(static_cast<std::size_t>(n * d)),
      gmu(static_cast<std::size_t>(k * d));
  std::vector<double> qs(static_cast<std::size_t>(n * 7)), gzs(static_cast<std::size_t>(n * 9)),
      gmus(static_cast<std::size_t>(k * 9));
  const auto r = ck::student_t_loss(serial{}, cview(pr.z, n, d), cview(pr.mu, k, d),
                                    {.q = mview(q, n, k), .grad_z = mview(gz, n, d), .grad_mu = mview(gmu, k, d)});
  const auto rs = ck::student_t_loss(openmp{2}, matrix_view<const double>(zs.data(), n, d, 8),
                                     matrix_view<const double>(mus.data(), k, d, 6),
                                     {.q = matrix_view<double>(qs.data(), n, k, 7),
                                      .grad_z = matrix_view<double>(gzs.data(), n, d, 9),
                                      .grad_mu = matrix_view<double>(gmus.data(), k, d, 9)});
  CHECK(r.loss == rs.loss);
  for (index_t i = 0; i < n; ++i) {
    for (index_t j = 0; j < k; ++j)
      CHECK(q[static_cast<std::size_t>(i * k + j)] == qs[static_cast<std::size_t>(i * 7 + j)]);
    for (index_t a = 0; a < d; ++a)
      CHECK(gz[static_cast<std::size_t>(i * d + a)] == gzs[static_cast<std::size_t>(i * 9 + a)]);
  }
  for (index_t j = 0; j < k; ++j)
    for (index_t a = 0; a < d; ++a)
      CHECK(gmu[static_cast<std::size_t>(j * d + a)] == gmus[static_cast<std::size_t>(j * 9 + a)]);
}
