// Tests of cellkit/contrastive/info_nce.hpp: the four InfoNCE variants against PyTorch autograd
// (tests/reference/gen_contrastive_fixtures.py), central differences in double, tiled ==
// materialised, independence of tile sizes and thread counts, and argument errors.
// The host engines: the templated cases run over CELLKIT_HOST_TEST_POLICIES; the device evaluation
// is checked against them in test_portable_info_nce.cpp.

#include <cellkit/contrastive/info_nce.hpp>
#include <cellkit/core/csr_matrix.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <random>
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
matrix_view<const T> cview(const std::vector<T>& v, index_t rows, index_t cols) {
  return {v.data(), rows, cols};
}

template <class T>
matrix_view<T> mview(std::vector<T>& v, index_t rows, index_t cols) {
  return {v.data(), rows, cols};
}

/// max |got - expected| / max(max |expected|, floor): a scale-aware error for gradient arrays.
template <class T>
double scaled_error(const std::vector<T>& got, const std::vector<double>& expected, double floor = 1e-300) {
  REQUIRE(got.size() == expected.size());
  double scale = floor;
  double err = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    scale = std::max(scale, std::fabs(expected[i]));
    err = std::max(err, std::fabs(static_cast<double>(got[i]) - expected[i]));
  }
  return err / scale;
}

std::vector<double> random_embeddings(std::mt19937_64& rng, index_t n, index_t d) {
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> scale(0.3, 3.0);
  std::vector<double> x(static_cast<std::size_t>(n * d));
  for (index_t i = 0; i < n; ++i) {
    const double s = scale(rng);
    for (index_t k = 0; k < d; ++k) x[static_cast<std::size_t>(i * d + k)] = s * normal(rng);
  }
  return x;
}

const ck::info_nce_algorithm tiled = ck::info_nce_algorithm::tiled;
const ck::info_nce_algorithm materialized = ck::info_nce_algorithm::materialized;

/// The (algorithm, row_block, column_tile) configurations every fixture case runs with.
struct config {
  ck::info_nce_algorithm algorithm;
  index_t row_block;
  index_t column_tile;
};
const config configs[] = {{tiled, 256, 512}, {tiled, 1, 1}, {tiled, 3, 7}, {tiled, 16, 5}, {materialized, 256, 512}};

// Tolerances against the float64 reference (see docs/contrastive.md, "Accuracy").
constexpr double double_tol = 1e-12;
constexpr double float_value_tol = 2e-5;  // relative to max(1, |loss|)
constexpr double float_grad_tol = 2e-4;   // relative to max |grad|

}  // namespace

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("info_nce matches PyTorch autograd (two views)", P, CELLKIT_HOST_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto cases = cellkit::test::read_fixture_cases("contrastive_info_nce.txt");
  REQUIRE(cases.size() >= 8);
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto d = static_cast<index_t>(c.params[1]);
    const double tau = c.params[2];
    const bool is_float = c.params[3] != 0;
    CAPTURE(n);
    CAPTURE(d);
    CAPTURE(tau);
    CAPTURE(is_float);
    for (const config& cfg : configs) {
      CAPTURE(cfg.row_block);
      CAPTURE(cfg.column_tile);
      if (!is_float) {
        const auto& a = c.matrix("A");
        const auto& b = c.matrix("B");
        std::vector<double> ga(a.size()), gb(b.size());
        const double loss = ck::info_nce(policy_of<P>(), cview(a, n, d), cview(b, n, d), mview(ga, n, d),
                                         mview(gb, n, d), {tau, 1e-12, cfg.algorithm, cfg.row_block, cfg.column_tile});
        CHECK(cellkit::test::close(loss, c.matrix("loss64")[0], double_tol, double_tol));
        CHECK(scaled_error(ga, c.matrix("grad_A64"), 1e-3) <= double_tol);
        CHECK(scaled_error(gb, c.matrix("grad_B64"), 1e-3) <= double_tol);
      } else {
        const auto a = cast_to<float>(c.matrix("A"));
        const auto b = cast_to<float>(c.matrix("B"));
        std::vector<float> ga(a.size()), gb(b.size());
        const float loss =
            ck::info_nce(policy_of<P>(), cview(a, n, d), cview(b, n, d), mview(ga, n, d), mview(gb, n, d),
                         {static_cast<float>(tau), 1e-12f, cfg.algorithm, cfg.row_block, cfg.column_tile});
        const double ref = c.matrix("loss64")[0];
        CHECK(std::fabs(loss - ref) <= float_value_tol * std::max(1.0, std::fabs(ref)));
        CHECK(std::fabs(loss - c.matrix("loss")[0]) <= float_value_tol * std::max(1.0, std::fabs(ref)));
        CHECK(scaled_error(ga, c.matrix("grad_A64"), 1e-3) <= float_grad_tol);
        CHECK(scaled_error(gb, c.matrix("grad_B64"), 1e-3) <= float_grad_tol);
        CHECK(scaled_error(ga, c.matrix("grad_A"), 1e-3) <= float_grad_tol);
      }
    }
  }
}

TEST_CASE_TEMPLATE("supervised_info_nce matches PyTorch SupConLoss", P, CELLKIT_HOST_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto cases = cellkit::test::read_fixture_cases("contrastive_supcon.txt");
  REQUIRE(cases.size() >= 6);
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto d = static_cast<index_t>(c.params[1]);
    const double tau = c.params[2];
    const bool is_float = c.params[3] != 0;
    CAPTURE(n);
    CAPTURE(tau);
    CAPTURE(is_float);
    std::vector<long long> labels;
    for (double v : c.matrix("labels")) labels.push_back(static_cast<long long>(v));
    for (const config& cfg : configs) {
      CAPTURE(cfg.row_block);
      if (!is_float) {
        const auto& a = c.matrix("A");
        const auto& b = c.matrix("B");
        std::vector<double> ga(a.size()), gb(b.size());
        const double loss =
            ck::supervised_info_nce(policy_of<P>(), cview(a, n, d), cview(b, n, d), labels, mview(ga, n, d),
                                    mview(gb, n, d), {tau, 1e-12, cfg.algorithm, cfg.row_block, cfg.column_tile});
        CHECK(cellkit::test::close(loss, c.matrix("loss64")[0], double_tol, double_tol));
        CHECK(scaled_error(ga, c.matrix("grad_A64"), 1e-3) <= double_tol);
        CHECK(scaled_error(gb, c.matrix("grad_B64"), 1e-3) <= double_tol);
      } else {
        const auto a = cast_to<float>(c.matrix("A"));
        const auto b = cast_to<float>(c.matrix("B"));
        std::vector<float> ga(a.size()), gb(b.size());
        const float loss = ck::supervised_info_nce(
            policy_of<P>(), cview(a, n, d), cview(b, n, d), labels, mview(ga, n, d), mview(gb, n, d),
            {static_cast<float>(tau), 1e-12f, cfg.algorithm, cfg.row_block, cfg.column_tile});
        const double ref = c.matrix("loss64")[0];
        CHECK(std::fabs(loss - ref) <= float_value_tol * std::max(1.0, std::fabs(ref)));
        CHECK(std::fabs(loss - c.matrix("loss")[0]) <= float_value_tol * std::max(1.0, std::fabs(ref)));
        CHECK(scaled_error(ga, c.matrix("grad_A64"), 1e-3) <= float_grad_tol);
        CHECK(scaled_error(gb, c.matrix("grad_B"), 1e-3) <= float_grad_tol);
      }
    }
  }
}

TEST_CASE_TEMPLATE("graph_info_nce matches PyTorch (graph neighbours as positives)", P, CELLKIT_HOST_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto cases = cellkit::test::read_fixture_cases("contrastive_graph.txt");
  REQUIRE(cases.size() >= 5);
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto d = static_cast<index_t>(c.params[1]);
    const double tau = c.params[2];
    const bool is_float = c.params[3] != 0;
    const auto nnz = static_cast<index_t>(c.params[4]);
    CAPTURE(n);
    CAPTURE(tau);
    CAPTURE(is_float);
    std::vector<std::int64_t> indptr, indices;
    for (double v : c.matrix("indptr")) indptr.push_back(static_cast<std::int64_t>(v));
    for (double v : c.matrix("indices")) indices.push_back(static_cast<std::int64_t>(v));
    for (const config& cfg : configs) {
      CAPTURE(cfg.row_block);
      if (!is_float) {
        const auto& z = c.matrix("Z");
        const auto& w = c.matrix("values");
        csr_view<const double, std::int64_t> g(n, n, nnz, indptr.data(), indices.data(), w.data());
        std::vector<double> gz(z.size());
        const double loss = ck::graph_info_nce(policy_of<P>(), cview(z, n, d), g, mview(gz, n, d),
                                               {tau, 1e-12, cfg.algorithm, cfg.row_block, cfg.column_tile});
        CHECK(cellkit::test::close(loss, c.matrix("loss64")[0], double_tol, double_tol));
        CHECK(scaled_error(gz, c.matrix("grad_Z64"), 1e-3) <= double_tol);
      } else {
        const auto z = cast_to<float>(c.matrix("Z"));
        const auto w = cast_to<float>(c.matrix("values"));
        csr_view<const float, std::int64_t> g(n, n, nnz, indptr.data(), indices.data(), w.data());
        std::vector<float> gz(z.size());
        const float loss =
            ck::graph_info_nce(policy_of<P>(), cview(z, n, d), g, mview(gz, n, d),
                               {static_cast<float>(tau), 1e-12f, cfg.algorithm, cfg.row_block, cfg.column_tile});
        const double ref = c.matrix("loss64")[0];
        CHECK(std::fabs(loss - ref) <= float_value_tol * std::max(1.0, std::fabs(ref)));
        CHECK(std::fabs(loss - c.matrix("loss")[0]) <= float_value_tol * std::max(1.0, std::fabs(ref)));
        CHECK(scaled_error(gz, c.matrix("grad_Z64"), 1e-3) <= float_grad_tol);
        CHECK(scaled_error(gz, c.matrix("grad_Z"), 1e-3) <= float_grad_tol);
      }
    }
  }
}

TEST_CASE_TEMPLATE("info_nce_with_bank matches PyTorch (MoCo cross-entropy)", P, CELLKIT_HOST_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto cases = cellkit::test::read_fixture_cases("contrastive_bank.txt");
  REQUIRE(cases.size() >= 6);
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[0]);
    const auto d = static_cast<index_t>(c.params[1]);
    const auto nb = static_cast<index_t>(c.params[2]);
    const double tau = c.params[3];
    const bool is_float = c.params[4] != 0;
    CAPTURE(n);
    CAPTURE(nb);
    CAPTURE(tau);
    CAPTURE(is_float);
    for (const config& cfg : configs) {
      CAPTURE(cfg.row_block);
      if (!is_float) {
        const auto& q = c.matrix("Q");
        const auto& k = c.matrix("K");
        const auto& bank = c.matrix("bank");
        std::vector<double> gq(q.size()), gk(k.size()), gbank(bank.size());
        const double loss = ck::info_nce_with_bank(policy_of<P>(), cview(q, n, d), cview(k, n, d), cview(bank, nb, d),
                                                   mview(gq, n, d), mview(gk, n, d), mview(gbank, nb, d),
                                                   {tau, 1e-12, cfg.algorithm, cfg.row_block, cfg.column_tile});
        CHECK(cellkit::test::close(loss, c.matrix("loss64")[0], double_tol, double_tol));
        CHECK(scaled_error(gq, c.matrix("grad_Q64"), 1e-3) <= double_tol);
        CHECK(scaled_error(gk, c.matrix("grad_K64"), 1e-3) <= double_tol);
        CHECK(scaled_error(gbank, c.matrix("grad_bank64"), 1e-3) <= double_tol);
      } else {
        const auto q = cast_to<float>(c.matrix("Q"));
        const auto k = cast_to<float>(c.matrix("K"));
        const auto bank = cast_to<float>(c.matrix("bank"));
        std::vector<float> gq(q.size()), gk(k.size()), gbank(bank.size());
        const float loss = ck::info_nce_with_bank(
            policy_of<P>(), cview(q, n, d), cview(k, n, d), cview(bank, nb, d), mview(gq, n, d), mview(gk, n, d),
            mview(gbank, nb, d), {static_cast<float>(tau), 1e-12f, cfg.algorithm, cfg.row_block, cfg.column_tile});
        const double ref = c.matrix("loss64")[0];
        CHECK(std::fabs(loss - ref) <= float_value_tol * std::max(1.0, std::fabs(ref)));
        CHECK(std::fabs(loss - c.matrix("loss")[0]) <= float_value_tol * std::max(1.0, std::fabs(ref)));
        CHECK(scaled_error(gq, c.matrix("grad_Q64"), 1e-3) <= float_grad_tol);
        CHECK(scaled_error(gk, c.matrix("grad_K64"), 1e-3) <= float_grad_tol);
        CHECK(scaled_error(gbank, c.matrix("grad_bank64"), 1e-3) <= float_grad_tol);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Central differences (double)
// ---------------------------------------------------------------------------------------------

namespace {

/// Checks the analytic gradient of `loss(x)` at `x` against central differences for `count`
/// coordinates spread over x (step h, relative agreement `tol` against max |gradient|).
void check_central_differences(const std::function<double(const std::vector<double>&)>& loss,
                               const std::vector<double>& x, const std::vector<double>& gradient, int count,
                               double tol = 2e-7) {
  const double h = 1e-6;
  double scale = 1e-8;
  for (double g : gradient) scale = std::max(scale, std::fabs(g));
  std::vector<double> xp = x;
  const std::size_t stride = std::max<std::size_t>(1, x.size() / static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < x.size(); i += stride) {
    CAPTURE(i);
    xp[i] = x[i] + h;
    const double up = loss(xp);
    xp[i] = x[i] - h;
    const double down = loss(xp);
    xp[i] = x[i];
    const double numeric = (up - down) / (2 * h);
    CHECK(std::fabs(numeric - gradient[i]) <= tol * scale);
  }
}

}  // namespace

TEST_CASE("InfoNCE gradients agree with central differences (double, every variant)") {
  std::mt19937_64 rng(7);
  const index_t n = 11, d = 5;
  const ck::info_nce_params<double> params{.temperature = 0.2, .row_block = 4, .column_tile = 6};
  auto a = random_embeddings(rng, n, d);
  auto b = random_embeddings(rng, n, d);

  SUBCASE("two views") {
    std::vector<double> ga(a.size()), gb(b.size());
    ck::info_nce(serial{}, cview(a, n, d), cview(b, n, d), mview(ga, n, d), mview(gb, n, d), params);
    check_central_differences(
        [&](const std::vector<double>& x) {
          return ck::info_nce(serial{}, cview(x, n, d), cview(b, n, d), std::nullopt, std::nullopt, params);
        },
        a, ga, 30);
    check_central_differences(
        [&](const std::vector<double>& x) {
          return ck::info_nce(serial{}, cview(a, n, d), cview(x, n, d), std::nullopt, std::nullopt, params);
        },
        b, gb, 30);
  }
  SUBCASE("supervised") {
    const std::vector<int> labels = {3, 1, 3, 3, -2, 1, 9, 9, 3, 1, -2};
    std::vector<double> ga(a.size()), gb(b.size());
    ck::supervised_info_nce(serial{}, cview(a, n, d), cview(b, n, d), labels, mview(ga, n, d), mview(gb, n, d), params);
    check_central_differences(
        [&](const std::vector<double>& x) {
          return ck::supervised_info_nce(serial{}, cview(x, n, d), cview(b, n, d), labels, std::nullopt, std::nullopt,
                                         params);
        },
        a, ga, 30);
    check_central_differences(
        [&](const std::vector<double>& x) {
          return ck::supervised_info_nce(serial{}, cview(a, n, d), cview(x, n, d), labels, std::nullopt, std::nullopt,
                                         params);
        },
        b, gb, 30);
  }
  SUBCASE("graph") {
    const std::vector<int> indptr = {0, 2, 3, 3, 5, 6, 6, 8, 9, 9, 10, 12};
    const std::vector<int> indices = {1, 4, 0, 2, 7, 3, 0, 5, 10, 6, 2, 8};
    const std::vector<double> w = {1, 0.5, 2, 1, 1, 0.25, 1, 1, 3, 1, 1, 0.75};
    csr_view<const double, int> g(n, n, 12, indptr.data(), indices.data(), w.data());
    std::vector<double> gz(a.size());
    ck::graph_info_nce(serial{}, cview(a, n, d), g, mview(gz, n, d), params);
    check_central_differences(
        [&](const std::vector<double>& x) {
          return ck::graph_info_nce(serial{}, cview(x, n, d), g, std::nullopt, params);
        },
        a, gz, 40);
  }
  SUBCASE("bank") {
    const index_t nb = 9;
    auto bank = random_embeddings(rng, nb, d);
    std::vector<double> gq(a.size()), gk(b.size()), gbank(bank.size());
    ck::info_nce_with_bank(serial{}, cview(a, n, d), cview(b, n, d), cview(bank, nb, d), mview(gq, n, d),
                           mview(gk, n, d), mview(gbank, nb, d), params);
    auto value = [&](const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& m) {
      return ck::info_nce_with_bank(serial{}, cview(q, n, d), cview(k, n, d), cview(m, nb, d), std::nullopt,
                                    std::nullopt, std::nullopt, params);
    };
    check_central_differences([&](const std::vector<double>& x) { return value(x, b, bank); }, a, gq, 30);
    check_central_differences([&](const std::vector<double>& x) { return value(a, x, bank); }, b, gk, 30);
    check_central_differences([&](const std::vector<double>& x) { return value(a, b, x); }, bank, gbank, 30);
  }
}

// ---------------------------------------------------------------------------------------------
// Tiled == materialised, tile sizes, thread counts
// ---------------------------------------------------------------------------------------------

TEST_CASE("tiled and materialised InfoNCE agree for every tile shape (double, N = 300)") {
  std::mt19937_64 rng(11);
  const index_t n = 300, d = 20;
  const auto a = random_embeddings(rng, n, d);
  const auto b = random_embeddings(rng, n, d);
  for (double tau : {0.5, 0.05, 0.01}) {
    CAPTURE(tau);
    std::vector<double> ga_ref(a.size()), gb_ref(b.size());
    const double ref = ck::info_nce(openmp{2}, cview(a, n, d), cview(b, n, d), mview(ga_ref, n, d), mview(gb_ref, n, d),
                                    {.temperature = tau, .algorithm = materialized});
    const std::pair<index_t, index_t> shapes[] = {{256, 512}, {1, 600}, {600, 1}, {7, 13}, {64, 64}, {1000, 1000}};
    for (const auto& shape : shapes) {
      const index_t rb = shape.first;
      const index_t ct = shape.second;
      CAPTURE(rb);
      CAPTURE(ct);
      std::vector<double> ga(a.size()), gb(b.size());
      const double loss = ck::info_nce(openmp{2}, cview(a, n, d), cview(b, n, d), mview(ga, n, d), mview(gb, n, d),
                                       {.temperature = tau, .row_block = rb, .column_tile = ct});
      CHECK(cellkit::test::close(loss, ref, 1e-13, 1e-13));
      CHECK(scaled_error(ga, ga_ref) <= 1e-12);
      CHECK(scaled_error(gb, gb_ref) <= 1e-12);
      // the value alone (no backward pass) is the same number
      CHECK(ck::info_nce(serial{}, cview(a, n, d), cview(b, n, d), std::nullopt, std::nullopt,
                         {.temperature = tau, .row_block = rb, .column_tile = ct}) == loss);
    }
  }
}

TEST_CASE("tiled InfoNCE is bit-identical across policies and thread counts (float, every variant)") {
  std::mt19937_64 rng(5);
  const index_t n = 700, d = 32, nb = 333;
  const auto a = cast_to<float>(random_embeddings(rng, n, d));
  const auto b = cast_to<float>(random_embeddings(rng, n, d));
  const auto bank = cast_to<float>(random_embeddings(rng, nb, d));
  std::vector<int> labels(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = static_cast<int>((i * 7) % 13);
  const ck::info_nce_params<float> params{.temperature = 0.07f, .row_block = 64, .column_tile = 96};
  std::vector<index_t> rows, cols;
  std::vector<float> weights;
  for (index_t i = 0; i < n; ++i) {
    for (index_t j : {(i + 3) % n, (i + 17) % n, (i * 5 + 1) % n}) {
      if (j == i) continue;
      rows.push_back(i);
      cols.push_back(j);
      weights.push_back(0.5f + static_cast<float>(j % 3));
    }
  }
  const auto graph = csr_matrix<float, index_t>::from_triplets(n, n, rows, cols, weights);

  auto run = [&](auto policy) {
    std::vector<float> ga(a.size()), gb(b.size()), gs(a.size()), gq(a.size()), gk(b.size()), gbank(bank.size());
    std::vector<float> values;
    values.push_back(ck::info_nce(policy, cview(a, n, d), cview(b, n, d), mview(ga, n, d), mview(gb, n, d), params));
    values.push_back(
        ck::supervised_info_nce(policy, cview(a, n, d), cview(b, n, d), labels, mview(gs, n, d), std::nullopt, params));
    values.push_back(ck::info_nce_with_bank(policy, cview(a, n, d), cview(b, n, d), cview(bank, nb, d), mview(gq, n, d),
                                            mview(gk, n, d), mview(gbank, nb, d), params));
    std::vector<float> gg(a.size());
    values.push_back(ck::graph_info_nce(policy, cview(a, n, d), graph.view(), mview(gg, n, d), params));
    return std::vector<std::vector<float>>{values, ga, gb, gs, gq, gk, gbank, gg};
  };
  const auto ref = run(serial{});
  CHECK(run(openmp{1}) == ref);
  CHECK(run(openmp{2}) == ref);
  CHECK(run(openmp{3}) == ref);
}

TEST_CASE("tiled InfoNCE in float does not depend on the tile shape beyond rounding") {
  std::mt19937_64 rng(3);
  const index_t n = 500, d = 64;
  const auto a = random_embeddings(rng, n, d);
  const auto b = random_embeddings(rng, n, d);
  const auto af = cast_to<float>(a);
  const auto bf = cast_to<float>(b);
  // float64 reference on the float inputs
  const std::vector<double> ad(af.begin(), af.end()), bd(bf.begin(), bf.end());
  std::vector<double> ga_ref(a.size()), gb_ref(b.size());
  const double ref = ck::info_nce(openmp{2}, cview(ad, n, d), cview(bd, n, d), mview(ga_ref, n, d), mview(gb_ref, n, d),
                                  {.temperature = 0.05});
  for (const auto& shape : {std::pair<index_t, index_t>{256, 512}, {32, 1000}, {1000, 32}, {5, 77}}) {
    const index_t rb = shape.first;
    const index_t ct = shape.second;
    CAPTURE(rb);
    std::vector<float> ga(a.size()), gb(b.size());
    const float loss = ck::info_nce(openmp{2}, cview(af, n, d), cview(bf, n, d), mview(ga, n, d), mview(gb, n, d),
                                    {.temperature = 0.05f, .row_block = rb, .column_tile = ct});
    CHECK(std::fabs(loss - ref) <= 1e-5 * std::fabs(ref));
    CHECK(scaled_error(ga, ga_ref) <= 1e-4);
    CHECK(scaled_error(gb, gb_ref) <= 1e-4);
  }
}

// ---------------------------------------------------------------------------------------------
// Views, aliasing, special inputs
// ---------------------------------------------------------------------------------------------

TEST_CASE("InfoNCE accepts strided views, optional gradients and gradients aliasing the inputs") {
  std::mt19937_64 rng(9);
  const index_t n = 40, d = 6, stride = 9;
  const auto a = random_embeddings(rng, n, d);
  const auto b = random_embeddings(rng, n, d);
  std::vector<double> ga(a.size()), gb(b.size());
  const ck::info_nce_params<double> params{.temperature = 0.1, .row_block = 16, .column_tile = 24};
  const double ref = ck::info_nce(serial{}, cview(a, n, d), cview(b, n, d), mview(ga, n, d), mview(gb, n, d), params);

  // strided copies; the gradients overwrite the inputs themselves
  std::vector<double> as(static_cast<std::size_t>(n * stride), 99.0), bs(as.size(), -99.0);
  for (index_t i = 0; i < n; ++i)
    for (index_t k = 0; k < d; ++k) {
      as[static_cast<std::size_t>(i * stride + k)] = a[static_cast<std::size_t>(i * d + k)];
      bs[static_cast<std::size_t>(i * stride + k)] = b[static_cast<std::size_t>(i * d + k)];
    }
  matrix_view<double> av(as.data(), n, d, stride), bv(bs.data(), n, d, stride);
  const double loss = ck::info_nce(openmp{2}, av, bv, av, bv, params);
  CHECK(loss == ref);
  for (index_t i = 0; i < n; ++i)
    for (index_t k = 0; k < d; ++k) {
      CHECK(as[static_cast<std::size_t>(i * stride + k)] == ga[static_cast<std::size_t>(i * d + k)]);
      CHECK(bs[static_cast<std::size_t>(i * stride + k)] == gb[static_cast<std::size_t>(i * d + k)]);
    }
  CHECK(as[static_cast<std::size_t>(stride - 1)] == 99.0);  // padding untouched

  // only one gradient
  std::vector<double> gb_only(b.size(), 5.0);
  CHECK(ck::info_nce(serial{}, cview(a, n, d), cview(b, n, d), std::nullopt, mview(gb_only, n, d), params) == ref);
  CHECK(gb_only == gb);
  // no policy: the default host policy
  std::vector<double> ga2(a.size()), gb2(b.size());
  CHECK(ck::info_nce(cview(a, n, d), cview(b, n, d), mview(ga2, n, d), mview(gb2, n, d), params) == ref);
  CHECK(ga2 == ga);
}

TEST_CASE("InfoNCE special cases: zero rows, one sample, distinct labels, huge similarities") {
  std::mt19937_64 rng(21);
  const index_t n = 9, d = 4;
  auto a = random_embeddings(rng, n, d);
  auto b = random_embeddings(rng, n, d);
  SUBCASE("a zero row is normalised to 0 (F.normalize's eps) and gets gradient g / eps") {
    std::fill_n(a.begin() + 2 * d, d, 0.0);
    std::vector<double> ga(a.size()), gb(b.size()), ga_m(a.size()), gb_m(b.size());
    const double t =
        ck::info_nce(serial{}, cview(a, n, d), cview(b, n, d), mview(ga, n, d), mview(gb, n, d), {.temperature = 0.3});
    const double m = ck::info_nce(serial{}, cview(a, n, d), cview(b, n, d), mview(ga_m, n, d), mview(gb_m, n, d),
                                  {.temperature = 0.3, .algorithm = materialized});
    CHECK(std::isfinite(t));
    CHECK(cellkit::test::close(t, m, 1e-13));
    CHECK(scaled_error(ga, ga_m) <= 1e-12);
    // the zero row's gradient is dL/du / eps: huge but finite, as PyTorch's
    double norm = 0;
    for (index_t k = 0; k < d; ++k) norm += std::fabs(ga[static_cast<std::size_t>(2 * d + k)]);
    CHECK(norm > 1e6);
    CHECK(std::isfinite(norm));
  }
  SUBCASE("N = 1: the only denominator term is the positive, so the loss and gradients are 0") {
    std::vector<double> ga(d, 1.0), gb(d, 1.0);
    CHECK(ck::info_nce(serial{}, cview(a, 1, d), cview(b, 1, d), mview(ga, 1, d), mview(gb, 1, d)) == 0.0);
    for (double g : ga) CHECK(g == 0.0);
  }
  SUBCASE("supervised with distinct labels equals the two-view loss") {
    std::vector<int> labels(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = static_cast<int>(100 - i);
    std::vector<double> ga(a.size()), gb(b.size()), gs_a(a.size()), gs_b(b.size());
    const double plain = ck::info_nce(serial{}, cview(a, n, d), cview(b, n, d), mview(ga, n, d), mview(gb, n, d));
    const double sup =
        ck::supervised_info_nce(serial{}, cview(a, n, d), cview(b, n, d), labels, mview(gs_a, n, d), mview(gs_b, n, d));
    CHECK(cellkit::test::close(sup, plain, 1e-14));
    CHECK(scaled_error(gs_a, ga) <= 1e-14);
  }
  SUBCASE("tau = 1e-4 (logits up to 1e4) stays finite and matches the materialised path") {
    std::vector<double> ga(a.size()), gb(b.size()), ga_m(a.size()), gb_m(b.size());
    const double t =
        ck::info_nce(serial{}, cview(a, n, d), cview(b, n, d), mview(ga, n, d), mview(gb, n, d), {.temperature = 1e-4});
    const double m = ck::info_nce(serial{}, cview(a, n, d), cview(b, n, d), mview(ga_m, n, d), mview(gb_m, n, d),
                                  {.temperature = 1e-4, .algorithm = materialized});
    CHECK(std::isfinite(t));
    CHECK(cellkit::test::close(t, m, 1e-12));
    CHECK(scaled_error(ga, ga_m) <= 1e-10);
    const std::vector<float> af = cast_to<float>(a), bf = cast_to<float>(b);
    std::vector<float> gaf(a.size()), gbf(b.size());
    const float tf = ck::info_nce(serial{}, cview(af, n, d), cview(bf, n, d), mview(gaf, n, d), mview(gbf, n, d),
                                  {.temperature = 1e-4f});
    CHECK(std::isfinite(tf));
    for (float g : gaf) CHECK(std::isfinite(g));
  }
}

TEST_CASE("the vectorised exponential is accurate to a few ulps") {
  double worst_float = 0, worst_double = 0;
  for (int i = -200000; i <= 200000; ++i) {
    const double x = i * 4.3e-4;  // [-86, 86]
    const float xf = static_cast<float>(x);
    const double ref_f = std::exp(static_cast<double>(xf));
    worst_float = std::max(worst_float, std::fabs(ck::detail::vexp(xf) - ref_f) / ref_f);
    const double xd = i * 3.5e-3;  // [-700, 700]
    worst_double = std::max(worst_double, std::fabs(ck::detail::vexp(xd) - std::exp(xd)) / std::exp(xd));
  }
  MESSAGE("vexp max relative error: float " << worst_float << ", double " << worst_double);
  CHECK(worst_float < 2.5e-7);
  CHECK(worst_double < 5e-16);
  CHECK(ck::detail::vexp(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(ck::detail::vexp(-100.0f) == 0.0f);
  CHECK(ck::detail::vexp(0.0f) == 1.0f);
  CHECK(ck::detail::vexp(0.0) == 1.0);
  CHECK(std::isinf(ck::detail::vexp(100.0f)));
  CHECK(std::isinf(ck::detail::vexp(710.0)));
  CHECK(std::isnan(ck::detail::vexp(std::numeric_limits<double>::quiet_NaN())));
  CHECK(std::fabs(ck::detail::vexp(88.5f) - std::exp(88.5)) / std::exp(88.5) < 3e-7);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

TEST_CASE("InfoNCE rejects bad input with messages that name the argument") {
  const index_t n = 4, d = 3;
  std::vector<double> a(n * d, 1.0), b(n * d, 1.0), g(n * d), small((n - 1) * d, 1.0);
  for (index_t i = 0; i < n * d; ++i) a[static_cast<std::size_t>(i)] = b[static_cast<std::size_t>(i)] = 0.1 * (i + 1);
  const auto av = cview(a, n, d);
  const auto bv = cview(b, n, d);

  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, av, cview(small, n - 1, d), std::nullopt, std::nullopt),
                       "info_nce: dimension mismatch: view_b is 3 x 3 but view_a is 4 x 3 (the two views must have "
                       "the same shape)",
                       dimension_mismatch);
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, av, bv, std::nullopt, std::nullopt, {.temperature = 0.0}),
                       "info_nce: invalid argument 'temperature': must be positive and finite, got 0",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, av, bv, std::nullopt, std::nullopt, {.temperature = -0.5}),
                       "info_nce: invalid argument 'temperature': must be positive and finite, got -0.5",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, av, bv, std::nullopt, std::nullopt,
                                    {.temperature = std::numeric_limits<double>::infinity()}),
                       "info_nce: invalid argument 'temperature': must be positive and finite, got inf",
                       invalid_argument);
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, av, bv, std::nullopt, std::nullopt, {.eps = 0.0}),
                       "info_nce: invalid argument 'eps': must be positive and finite, got 0", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, av, bv, std::nullopt, std::nullopt, {.row_block = 0}),
                       "info_nce: invalid argument 'row_block': must be at least 1, got 0", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, av, bv, std::nullopt, std::nullopt, {.column_tile = -3}),
                       "info_nce: invalid argument 'column_tile': must be at least 1, got -3", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, cview(a, 0, d), cview(b, 0, d), std::nullopt, std::nullopt),
                       "info_nce: invalid argument 'view_a': has no rows (cells)", invalid_argument);
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, av, bv, mview(g, n, d - 1), std::nullopt),
                       "info_nce: dimension mismatch: grad_a is 4 x 2 but view_a is 4 x 3 (a gradient has the shape "
                       "of its input)",
                       dimension_mismatch);
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, av, bv, mview(g, n, d), mview(g, n, d)),
                       "info_nce: invalid argument 'grad_a': overlaps grad_b in memory: each gradient needs its own "
                       "array",
                       invalid_argument);
  std::vector<double> bad = a;
  bad[7] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, av, cview(bad, n, d), std::nullopt, std::nullopt),
                       "info_nce: invalid argument 'view_b': view_b(2, 1) is NaN: embeddings must be finite",
                       invalid_argument);
  bad[7] = -std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(ck::info_nce(serial{}, cview(bad, n, d), bv, std::nullopt, std::nullopt),
                       "info_nce: invalid argument 'view_a': view_a(2, 1) is infinite: embeddings must be finite",
                       invalid_argument);

  // supervised: labels of the wrong length
  const std::vector<int> labels = {1, 2, 3};
  CHECK_THROWS_WITH_AS(ck::supervised_info_nce(serial{}, av, bv, labels, std::nullopt, std::nullopt),
                       "supervised_info_nce: dimension mismatch: labels is 3 x 1 but view_a is 4 x 3 (labels needs "
                       "one entry per row of the views)",
                       dimension_mismatch);

  // graph: wrong size, self-loop, negative weight, no positive weight
  std::vector<int> indptr = {0, 1, 2, 2, 3};
  std::vector<int> indices = {1, 0, 2};
  std::vector<double> w = {1, 1, 1};
  CHECK_THROWS_WITH_AS(
      ck::graph_info_nce(serial{}, cview(a, n - 1, d),
                         csr_view<const double, int>(n, n, 3, indptr.data(), indices.data(), w.data()), std::nullopt),
      "graph_info_nce: dimension mismatch: graph is 4 x 4 but embeddings is 3 x 3 (the graph needs "
      "one row and one column per row of embeddings)",
      dimension_mismatch);
  indices[1] = 1;
  CHECK_THROWS_WITH_AS(
      ck::graph_info_nce(serial{}, av, csr_view<const double, int>(n, n, 3, indptr.data(), indices.data(), w.data()),
                         std::nullopt),
      "graph_info_nce: invalid argument 'graph': has a self-loop at row 1: a cell cannot be its own positive",
      invalid_argument);
  indices[1] = 0;
  w[2] = -1;
  CHECK_THROWS_WITH_AS(
      ck::graph_info_nce(serial{}, av, csr_view<const double, int>(n, n, 3, indptr.data(), indices.data(), w.data()),
                         std::nullopt),
      "graph_info_nce: invalid argument 'graph': edge (3, 2) has weight -1; edge weights must be finite and "
      "non-negative",
      invalid_argument);
  w = {0, 0, 0};
  CHECK_THROWS_WITH_AS(
      ck::graph_info_nce(serial{}, av, csr_view<const double, int>(n, n, 3, indptr.data(), indices.data(), w.data()),
                         std::nullopt),
      "graph_info_nce: invalid argument 'graph': has no edge with a positive weight: there is no positive pair",
      invalid_argument);
  indices = {1, 5, 3};
  w = {1, 1, 1};
  CHECK_THROWS_AS(
      ck::graph_info_nce(serial{}, av, csr_view<const double, int>(n, n, 3, indptr.data(), indices.data(), w.data()),
                         std::nullopt),
      invalid_argument);

  // bank: wrong dimension
  std::vector<double> bank(5 * 2, 1.0);
  CHECK_THROWS_WITH_AS(
      ck::info_nce_with_bank(serial{}, av, bv, cview(bank, 5, 2), std::nullopt, std::nullopt, std::nullopt),
      "info_nce_with_bank: dimension mismatch: bank is 5 x 2 but queries is 4 x 3 (the bank's rows "
      "must have the embedding dimension of the queries)",
      dimension_mismatch);
}

TEST_CASE("the round-robin schedule covers every pair of blocks once, with disjoint pairs in each round") {
  for (index_t count = 1; count <= 41; ++count) {
    CAPTURE(count);
    const auto rounds = ck::detail::round_robin_pairs(count);
    std::vector<int> seen(static_cast<std::size_t>(count * count), 0);
    for (const auto& round : rounds) {
      std::vector<int> used(static_cast<std::size_t>(count), 0);
      for (const auto& [a, b] : round) {
        REQUIRE(a < b);
        REQUIRE(b < count);
        CHECK(used[static_cast<std::size_t>(a)]++ == 0);
        CHECK(used[static_cast<std::size_t>(b)]++ == 0);
        ++seen[static_cast<std::size_t>(a * count + b)];
      }
    }
    for (index_t a = 0; a < count; ++a)
      for (index_t b = a + 1; b < count; ++b) CHECK(seen[static_cast<std::size_t>(a * count + b)] == 1);
  }
}
