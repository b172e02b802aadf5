// Tests of cellkit/contrastive/proto_nce.hpp: ProtoNCE values and gradients against PyTorch autograd
// (with the sampled negatives reproduced by a Python Philox in gen_contrastive_fixtures.py), PCL's
// concentration against numpy, central differences, determinism, prototypes without members and
// argument errors. Host engine: templated over CELLKIT_HOST_TEST_POLICIES; the device evaluation is
// checked against it in test_portable_proto_nce.cpp.

#include <cellkit/contrastive/proto_nce.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <span>
#include <vector>

using namespace cellkit;
using cellkit::test::policy_of;
namespace ck = cellkit::contrastive;

namespace {

template <class T>
std::vector<T> cast_to(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

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

/// Runs one fixture case in type T and compares with the float64 reference (and torch in T).
template <class T, class P>
void run_proto_case(const cellkit::test::fixture_case& c, double value_tol, double grad_tol) {
  const auto n = static_cast<index_t>(c.params[0]);
  const auto d = static_cast<index_t>(c.params[1]);
  const auto t_count = static_cast<index_t>(c.params[2]);
  const auto negatives = static_cast<index_t>(c.params[3]);
  const auto seed = static_cast<std::uint64_t>(c.params[4]);
  const bool has_phi = c.params[5] != 0;
  const double temperature = c.params[7];
  CAPTURE(n);
  CAPTURE(t_count);
  CAPTURE(negatives);
  const auto h = cast_to<T>(c.matrix("H"));
  std::vector<std::vector<int>> assign(static_cast<std::size_t>(t_count));
  std::vector<std::vector<T>> cents(static_cast<std::size_t>(t_count)), phis(static_cast<std::size_t>(t_count)),
      grads(static_cast<std::size_t>(t_count));
  std::vector<ck::prototype_set<T, int>> sets;
  std::vector<matrix_view<T>> grad_views;
  for (index_t t = 0; t < t_count; ++t) {
    const auto ts = std::to_string(t);
    const auto tt = static_cast<std::size_t>(t);
    for (double v : c.matrix("assign_" + ts)) assign[tt].push_back(static_cast<int>(v));
    cents[tt] = cast_to<T>(c.matrix("C_" + ts));
    phis[tt] = cast_to<T>(c.matrix("phi_" + ts));
    grads[tt].assign(cents[tt].size(), T(7));
  }
  for (index_t t = 0; t < t_count; ++t) {
    const auto tt = static_cast<std::size_t>(t);
    const auto k = static_cast<index_t>(phis[tt].size());
    std::optional<vector_view<const T>> phi;
    if (has_phi) phi = vector_view<const T>(phis[tt].data(), k);
    sets.push_back({vector_view<const int>(assign[tt].data(), n), matrix_view<const T>(cents[tt].data(), k, d), phi});
    grad_views.emplace_back(grads[tt].data(), k, d);
  }
  std::vector<T> gh(h.size());
  const T loss = ck::proto_nce(policy_of<P>(), matrix_view<const T>(h.data(), n, d), sets,
                               matrix_view<T>(gh.data(), n, d), std::span<const matrix_view<T>>(grad_views),
                               {.temperature = static_cast<T>(temperature), .negatives = negatives, .seed = seed});
  const double ref = c.matrix("loss64")[0];
  CHECK(std::fabs(static_cast<double>(loss) - ref) <= value_tol * std::max(1.0, std::fabs(ref)));
  CHECK(std::fabs(static_cast<double>(loss) - c.matrix("loss")[0]) <= value_tol * std::max(1.0, std::fabs(ref)));
  CHECK(scaled_error(gh, c.matrix("grad_H64")) <= grad_tol);
  for (index_t t = 0; t < t_count; ++t) {
    CAPTURE(t);
    CHECK(scaled_error(grads[static_cast<std::size_t>(t)], c.matrix("grad_C_" + std::to_string(t) + "64")) <= grad_tol);
  }
  // value only: the same number
  const T value = ck::proto_nce(policy_of<P>(), matrix_view<const T>(h.data(), n, d), sets, std::nullopt, std::nullopt,
                                {.temperature = static_cast<T>(temperature), .negatives = negatives, .seed = seed});
  CHECK(value == loss);
}

}  // namespace

TEST_CASE_TEMPLATE("proto_nce matches PyTorch autograd (sampled negatives, concentrations, several clusterings)", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto cases = cellkit::test::read_fixture_cases("contrastive_proto.txt");
  REQUIRE(cases.size() >= 7);
  for (const auto& c : cases) {
    if (c.params[6] == 0) {
      run_proto_case<double, P>(c, 1e-12, 1e-12);
    } else {
      run_proto_case<float, P>(c, 2e-6, 2e-5);
    }
  }
}

TEST_CASE("proto_nce gradients agree with central differences; empty prototypes get a gradient") {
  std::mt19937_64 rng(17);
  std::normal_distribution<double> normal;
  const index_t n = 14, d = 4, k0 = 5, k1 = 3;
  std::vector<double> h(static_cast<std::size_t>(n * d)), c0(static_cast<std::size_t>(k0 * d)),
      c1(static_cast<std::size_t>(k1 * d));
  for (auto* v : {&h, &c0, &c1})
    for (auto& x : *v) x = normal(rng);
  std::vector<int> a0(static_cast<std::size_t>(n)), a1(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    a0[static_cast<std::size_t>(i)] = static_cast<int>(i % (k0 - 1));  // prototype 4 has no member
    a1[static_cast<std::size_t>(i)] = static_cast<int>((i * 5) % k1);
  }
  const std::vector<double> phi0 = {0.1, 0.3, 0.2, 0.15, 0.25};
  const ck::proto_nce_params<double> params{.temperature = 0.2, .negatives = 2, .seed = 99};
  auto value = [&](const std::vector<double>& hh, const std::vector<double>& cc0, const std::vector<double>& cc1) {
    std::vector<ck::prototype_set<double, int>> sets = {
        {vector_view<const int>(a0.data(), n), matrix_view<const double>(cc0.data(), k0, d),
         vector_view<const double>(phi0.data(), k0)},
        {vector_view<const int>(a1.data(), n), matrix_view<const double>(cc1.data(), k1, d), std::nullopt}};
    return ck::proto_nce(serial{}, matrix_view<const double>(hh.data(), n, d), sets, std::nullopt, std::nullopt,
                         params);
  };
  std::vector<ck::prototype_set<double, int>> sets = {
      {vector_view<const int>(a0.data(), n), matrix_view<const double>(c0.data(), k0, d),
       vector_view<const double>(phi0.data(), k0)},
      {vector_view<const int>(a1.data(), n), matrix_view<const double>(c1.data(), k1, d), std::nullopt}};
  std::vector<double> gh(h.size()), g0(c0.size()), g1(c1.size());
  const std::vector<matrix_view<double>> gc = {matrix_view<double>(g0.data(), k0, d),
                                               matrix_view<double>(g1.data(), k1, d)};
  const double loss =
      ck::proto_nce(openmp{2}, matrix_view<const double>(h.data(), n, d), sets, matrix_view<double>(gh.data(), n, d),
                    std::span<const matrix_view<double>>(gc), params);
  CHECK(loss == value(h, c0, c1));
  const double step = 1e-6;
  auto check = [&](std::vector<double> x, const std::vector<double>& g, int which) {
    double scale = 1e-8;
    for (double v : g) scale = std::max(scale, std::fabs(v));
    for (std::size_t i = 0; i < x.size(); ++i) {
      CAPTURE(which);
      CAPTURE(i);
      const double keep = x[i];
      x[i] = keep + step;
      const double up = which == 0 ? value(x, c0, c1) : which == 1 ? value(h, x, c1) : value(h, c0, x);
      x[i] = keep - step;
      const double down = which == 0 ? value(x, c0, c1) : which == 1 ? value(h, x, c1) : value(h, c0, x);
      x[i] = keep;
      CHECK(std::fabs((up - down) / (2 * step) - g[i]) <= 1e-7 * scale);
    }
  };
  check(h, gh, 0);
  check(c0, g0, 1);
  check(c1, g1, 2);
  // prototype 4 of clustering 0 has no member but is a negative of the anchors that drew it
  double empty_norm = 0;
  for (index_t m = 0; m < d; ++m) empty_norm += std::fabs(g0[static_cast<std::size_t>(4 * d + m)]);
  CHECK(empty_norm > 0);
}

TEST_CASE("proto_nce sampling is deterministic, policy-independent and uses all prototypes when r >= K - 1") {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal;
  const index_t n = 600, d = 16, k = 40;
  std::vector<float> h(static_cast<std::size_t>(n * d)), c(static_cast<std::size_t>(k * d));
  for (auto& v : h) v = normal(rng);
  for (auto& v : c) v = normal(rng);
  std::vector<std::int64_t> a(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) a[static_cast<std::size_t>(i)] = (i * 7) % k;
  const std::vector<ck::prototype_set<float, std::int64_t>> sets = {
      {vector_view<const std::int64_t>(a.data(), n), matrix_view<const float>(c.data(), k, d), std::nullopt}};
  auto run = [&](auto policy, index_t r, std::uint64_t seed) {
    std::vector<float> gh(h.size()), gc(c.size());
    const std::vector<matrix_view<float>> gcv = {matrix_view<float>(gc.data(), k, d)};
    const float loss =
        ck::proto_nce(policy, matrix_view<const float>(h.data(), n, d), sets, matrix_view<float>(gh.data(), n, d),
                      std::span<const matrix_view<float>>(gcv), {.negatives = r, .seed = seed});
    gh.push_back(loss);
    gh.insert(gh.end(), gc.begin(), gc.end());
    return gh;
  };
  const auto ref = run(serial{}, 5, 42);
  CHECK(run(openmp{1}, 5, 42) == ref);
  CHECK(run(openmp{2}, 5, 42) == ref);
  CHECK(run(serial{}, 5, 43) != ref);
  CHECK(run(serial{}, k - 1, 1) == run(serial{}, -1, 2));
  CHECK(run(serial{}, 1000, 1) == run(serial{}, -1, 2));
  // r = 0: only the positive is in the denominator: loss 0
  CHECK(run(serial{}, 0, 1)[static_cast<std::size_t>(n * d)] == 0.0f);
  // the sampled sets have exactly r + 1 members and contain the positive
  std::vector<unsigned char> mask;
  for (index_t anchor = 0; anchor < 50; ++anchor) {
    ck::detail::mark_denominator(mask, 10, anchor % 10, 4, 5, 0, anchor);
    CHECK(std::count(mask.begin(), mask.end(), 1) == 5);
    CHECK(mask[static_cast<std::size_t>(anchor % 10)] == 1);
  }
}

TEST_CASE_TEMPLATE("prototype_concentration matches PCL's estimate", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto cases = cellkit::test::read_fixture_cases("contrastive_concentration.txt");
  REQUIRE(cases.size() >= 4);
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto d = static_cast<index_t>(c.params[1]);
    const auto k = static_cast<index_t>(c.params[2]);
    CAPTURE(n);
    CAPTURE(k);
    std::vector<long> assign;
    for (double v : c.matrix("assign")) assign.push_back(static_cast<long>(v));
    std::vector<double> phi(static_cast<std::size_t>(k));
    ck::prototype_concentration(policy_of<P>(), matrix_view<const double>(c.matrix("X").data(), n, d),
                                vector_view<const long>(assign.data(), n),
                                matrix_view<const double>(c.matrix("C").data(), k, d),
                                vector_view<double>(phi.data(), k), {.alpha = c.params[3], .temperature = c.params[4]});
    const auto& expected = c.matrix("phi");
    for (index_t j = 0; j < k; ++j) {
      CHECK(cellkit::test::close(phi[static_cast<std::size_t>(j)], expected[static_cast<std::size_t>(j)], 1e-13));
    }
    // float
    const auto xf = cast_to<float>(c.matrix("X"));
    const auto cf = cast_to<float>(c.matrix("C"));
    std::vector<float> phif(static_cast<std::size_t>(k));
    ck::prototype_concentration(
        policy_of<P>(), matrix_view<const float>(xf.data(), n, d), vector_view<const long>(assign.data(), n),
        matrix_view<const float>(cf.data(), k, d), vector_view<float>(phif.data(), k),
        {.alpha = static_cast<float>(c.params[3]), .temperature = static_cast<float>(c.params[4])});
    for (index_t j = 0; j < k; ++j) {
      CHECK(cellkit::test::close(phif[static_cast<std::size_t>(j)], expected[static_cast<std::size_t>(j)], 2e-6));
    }
  }
}

TEST_CASE("proto_nce and prototype_concentration reject bad input with messages") {
  const index_t n = 4, d = 2, k = 3;
  std::vector<double> h = {1, 0, 0, 1, 1, 1, -1, 0.5};
  std::vector<double> c = {1, 0, 0, 1, -1, -1};
  std::vector<int> a = {0, 1, 1, 0};
  std::vector<double> phi = {0.1, 0.2, 0.3};
  const matrix_view<const double> hv(h.data(), n, d), cv(c.data(), k, d);
  auto sets_with = [&](vector_view<const int> av, matrix_view<const double> cc,
                       std::optional<vector_view<const double>> p) {
    return std::vector<ck::prototype_set<double, int>>{{av, cc, p}};
  };
  const auto good = sets_with(vector_view<const int>(a.data(), n), cv, std::nullopt);
  CHECK_NOTHROW(ck::proto_nce(serial{}, hv, good, std::nullopt, std::nullopt));

  CHECK_THROWS_WITH_AS(
      ck::proto_nce(serial{}, hv, std::vector<ck::prototype_set<double, int>>{}, std::nullopt, std::nullopt),
      "proto_nce: invalid argument 'clusterings': is empty: ProtoNCE needs at least one clustering", invalid_argument);
  CHECK_THROWS_WITH_AS(
      ck::proto_nce(serial{}, hv, sets_with(vector_view<const int>(a.data(), n - 1), cv, std::nullopt), std::nullopt,
                    std::nullopt),
      "proto_nce: dimension mismatch: clusterings[0].assignments is 3 x 1 but embeddings is 4 x 2 (one "
      "assignment per row of embeddings)",
      dimension_mismatch);
  CHECK_THROWS_WITH_AS(ck::proto_nce(serial{}, hv,
                                     sets_with(vector_view<const int>(a.data(), n),
                                               matrix_view<const double>(c.data(), d, k), std::nullopt),
                                     std::nullopt, std::nullopt),
                       "proto_nce: dimension mismatch: clusterings[0].centroids is 2 x 3 but embeddings is 4 x 2 "
                       "(centroids have the embedding dimension)",
                       dimension_mismatch);
  std::vector<int> bad_a = {0, 3, 1, 0};
  CHECK_THROWS_WITH_AS(ck::proto_nce(serial{}, hv, sets_with(vector_view<const int>(bad_a.data(), n), cv, std::nullopt),
                                     std::nullopt, std::nullopt),
                       "proto_nce: invalid argument 'clusterings[0].assignments': assignments[1] = 3 is outside [0, 3)",
                       invalid_argument);
  std::vector<double> bad_phi = {0.1, 0.0, 0.3};
  CHECK_THROWS_WITH_AS(
      ck::proto_nce(serial{}, hv,
                    sets_with(vector_view<const int>(a.data(), n), cv, vector_view<const double>(bad_phi.data(), k)),
                    std::nullopt, std::nullopt),
      "proto_nce: invalid argument 'clusterings[0].concentration': concentration[1] = 0 must be "
      "positive and finite",
      invalid_argument);
  CHECK_THROWS_WITH_AS(
      ck::proto_nce(serial{}, hv,
                    sets_with(vector_view<const int>(a.data(), n), cv, vector_view<const double>(phi.data(), k - 1)),
                    std::nullopt, std::nullopt),
      "proto_nce: dimension mismatch: clusterings[0].concentration is 2 x 1 but "
      "clusterings[0].centroids is 3 x 2 (one concentration per prototype)",
      dimension_mismatch);
  CHECK_THROWS_WITH_AS(ck::proto_nce(serial{}, hv, good, std::nullopt, std::nullopt, {.temperature = -1.0}),
                       "proto_nce: invalid argument 'temperature': must be positive and finite, got -1",
                       invalid_argument);
  std::vector<double> g(static_cast<std::size_t>(k * d));
  const std::vector<matrix_view<double>> wrong = {matrix_view<double>(g.data(), k, d),
                                                  matrix_view<double>(g.data(), k, d)};
  CHECK_THROWS_WITH_AS(ck::proto_nce(serial{}, hv, good, std::nullopt, std::span<const matrix_view<double>>(wrong)),
                       "proto_nce: dimension mismatch: grad_centroids is 2 x 1 but clusterings is 1 x 1 (one centroid "
                       "gradient per clustering)",
                       dimension_mismatch);

  // concentration: a cluster without members, single-member clusters only, wrong phi length
  std::vector<double> out(static_cast<std::size_t>(k));
  std::vector<int> no_member = {0, 1, 1, 0};  // cluster 2 empty
  CHECK_THROWS_WITH_AS(ck::prototype_concentration(serial{}, hv, vector_view<const int>(no_member.data(), n), cv,
                                                   vector_view<double>(out.data(), k)),
                       "prototype_concentration: invalid argument 'assignments': cluster 2 has no members: the "
                       "concentration needs every cluster's points (pass the assignments of the whole clustered data "
                       "set)",
                       invalid_argument);
  std::vector<int> singles = {0, 1, 2};
  CHECK_THROWS_WITH_AS(
      ck::prototype_concentration(serial{}, matrix_view<const double>(h.data(), 3, d),
                                  vector_view<const int>(singles.data(), 3), cv, vector_view<double>(out.data(), k)),
      "prototype_concentration: invalid argument 'assignments': every cluster has a single member: no "
      "cluster to estimate a concentration from",
      invalid_argument);
  CHECK_THROWS_WITH_AS(ck::prototype_concentration(serial{}, hv, vector_view<const int>(a.data(), n), cv,
                                                   vector_view<double>(out.data(), k - 1)),
                       "prototype_concentration: dimension mismatch: phi is 2 x 1 but centroids is 3 x 2 (one "
                       "concentration per centroid)",
                       dimension_mismatch);
}
