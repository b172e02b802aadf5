#include <cellkit/nn/clip.hpp>
#include <cellkit/nn/optimizer.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace cellkit;

namespace {

/// "g3", "p4", ...: built by append (GCC 12 reports a false -Wrestrict on "g" + std::to_string(k)).
std::string indexed(char prefix, int k) {
  std::string s(1, prefix);
  s += std::to_string(k);
  return s;
}

/// Runs the fixture's 6 steps with optimizer `opt`, checking the parameter after each.
template <class Opt, class Policy>
void replay(const test::fixture_case& c, Opt& opt, const Policy& policy, double tol) {
  std::vector<double> p = c.matrix("p0");
  std::vector<double> g(p.size());
  nn::parameter_list<double> params;
  params.add("p", matrix_view<double>(p.data(), 3, 4), matrix_view<double>(g.data(), 3, 4));
  for (int k = 0; k < 6; ++k) {
    g = c.matrix(indexed('g', k));
    opt.step(policy, params);
    const auto& want = c.matrix(indexed('p', k + 1));
    for (std::size_t i = 0; i < p.size(); ++i) {
      INFO("step " << k + 1 << " element " << i);
      CHECK(test::close(p[i], want[i], tol, tol));
    }
  }
}

}  // namespace

TEST_CASE_TEMPLATE("optimizers follow PyTorch 1.13 step for step", P, CELLKIT_HOST_TEST_POLICIES) {
  auto policy = test::policy_of<P>();
  int seen[4] = {0, 0, 0, 0};
  for (const auto& c : test::read_fixture_cases("nn_optimizer.txt")) {
    const int kind = static_cast<int>(c.params[0]);
    const double lr = c.params[1], a = c.params[2], b = c.params[3], e = c.params[4], wd = c.params[5];
    const bool flag = c.params[6] != 0.0;
    CAPTURE(kind);
    ++seen[kind];
    if (kind == 0) {
      nn::sgd<double> opt({.lr = lr, .momentum = a, .dampening = b, .weight_decay = wd, .nesterov = flag});
      replay(c, opt, policy, 1e-15);
    } else if (kind == 1) {
      nn::adam<double> opt({.lr = lr, .beta1 = a, .beta2 = b, .eps = e, .weight_decay = wd, .amsgrad = flag});
      replay(c, opt, policy, 1e-14);
    } else if (kind == 2) {
      nn::adamw<double> opt({.lr = lr, .beta1 = a, .beta2 = b, .eps = e, .weight_decay = wd, .amsgrad = flag});
      replay(c, opt, policy, 1e-14);
    } else {
      nn::adadelta<double> opt({.lr = lr, .rho = a, .eps = b, .weight_decay = wd});
      replay(c, opt, policy, 1e-14);
    }
  }
  CHECK(seen[0] == 3);
  CHECK(seen[1] == 2);
  CHECK(seen[2] == 1);
  CHECK(seen[3] == 2);
}

TEST_CASE("optimizers: large parameters update identically on every host policy") {
  const index_t n = 200000;
  auto run = [&](auto policy) {
    std::vector<float> p(n), g(n);
    for (index_t i = 0; i < n; ++i) {
      p[i] = std::sin(0.001f * static_cast<float>(i));
      g[i] = std::cos(0.003f * static_cast<float>(i));
    }
    nn::parameter_list<float> params;
    params.add("p", vector_view<float>(p.data(), n), vector_view<float>(g.data(), n));
    nn::adam<float> opt;
    for (int k = 0; k < 3; ++k) opt.step(policy, params);
    return p;
  };
  const auto a = run(serial{});
  CHECK(a == run(openmp{1}));
  CHECK(a == run(openmp{2}));
}

TEST_CASE("adam and adamw on a multi-entry float list follow the documented update element by element") {
  // Entries of 40000 (three chunks, the last partial) and 7 elements: the vectorised chunk kernel
  // against a plain scalar loop of the formula in optimizer.hpp.
  const index_t sizes[2] = {40000, 7};
  for (const bool decoupled : {false, true}) {
    CAPTURE(decoupled);
    std::vector<float> p[2], g[2], ref_p[2], ref_m[2], ref_v[2];
    nn::parameter_list<float> params;
    for (int e = 0; e < 2; ++e) {
      const auto n = static_cast<std::size_t>(sizes[e]);
      p[e].resize(n);
      g[e].resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        p[e][i] = std::sin(0.0007f * static_cast<float>(i) + static_cast<float>(e));
        g[e][i] = std::cos(0.0031f * static_cast<float>(i)) * (i % 5 == 0 ? 1e-4f : 1.0f);
      }
      ref_p[e] = p[e];
      ref_m[e].assign(n, 0.0f);
      ref_v[e].assign(n, 0.0f);
      params.add(e == 0 ? "p0" : "p1", vector_view<float>(p[e].data(), sizes[e]),
                 vector_view<float>(g[e].data(), sizes[e]));
    }
    const nn::adam_params<float> o{.lr = 0.01f, .weight_decay = 0.05f};
    nn::adam<float> adam(o);
    nn::adamw<float> adamw(o);
    for (int t = 1; t <= 3; ++t) {
      if (decoupled) {
        adamw.step(openmp{2}, params);
      } else {
        adam.step(openmp{2}, params);
      }
      const double bias1 = 1.0 - std::pow(static_cast<double>(0.9f), t);
      const double bias2 = 1.0 - std::pow(static_cast<double>(0.999f), t);
      const auto step_size = static_cast<float>(static_cast<double>(0.01f) / bias1);
      const auto bias2_sqrt = static_cast<float>(std::sqrt(bias2));
      for (int e = 0; e < 2; ++e) {
        for (std::size_t i = 0; i < ref_p[e].size(); ++i) {
          float gi = g[e][i];
          if (decoupled) {
            ref_p[e][i] *= static_cast<float>(1.0 - static_cast<double>(0.01f) * static_cast<double>(0.05f));
          } else {
            gi += 0.05f * ref_p[e][i];
          }
          ref_m[e][i] = ref_m[e][i] * 0.9f + (1.0f - 0.9f) * gi;
          ref_v[e][i] = ref_v[e][i] * 0.999f + (1.0f - 0.999f) * (gi * gi);
          ref_p[e][i] -= step_size * (ref_m[e][i] / (std::sqrt(ref_v[e][i]) / bias2_sqrt + 1e-8f));
        }
      }
    }
    for (int e = 0; e < 2; ++e) {
      double worst = 0.0;
      for (std::size_t i = 0; i < ref_p[e].size(); ++i)
        worst = std::max(worst, std::abs(static_cast<double>(p[e][i]) - ref_p[e][i]) /
                                    std::max(1e-3, std::abs(static_cast<double>(ref_p[e][i]))));
      CAPTURE(e);
      CHECK(worst < 1e-6);
    }
  }
}

TEST_CASE("optimizers reject bad hyperparameters and a changed parameter list") {
  CHECK_THROWS_WITH_AS(nn::adam<float>({.lr = -1.0f}), doctest::Contains("'lr'"), invalid_argument);
  CHECK_THROWS_WITH_AS(nn::adam<float>({.beta1 = 1.0f}), doctest::Contains("'beta1'"), invalid_argument);
  CHECK_THROWS_AS(nn::adam<float>({.eps = 0.0f}), invalid_argument);
  CHECK_THROWS_WITH_AS(nn::sgd<float>({.lr = 0.1f, .nesterov = true}), doctest::Contains("Nesterov"), invalid_argument);
  CHECK_THROWS_AS(nn::adadelta<double>({.rho = 1.5}), invalid_argument);
  CHECK_THROWS_AS(nn::sgd<double>({.weight_decay = -1.0}), invalid_argument);

  std::vector<double> p(4), g(4), q(2), h(2);
  nn::parameter_list<double> one, two;
  one.add("p", matrix_view<double>(p.data(), 2, 2), matrix_view<double>(g.data(), 2, 2));
  two.append(one);
  two.add("q", vector_view<double>(q.data(), 2), vector_view<double>(h.data(), 2));
  nn::adam<double> opt;
  opt.step(serial{}, one);
  CHECK_THROWS_WITH_AS(opt.step(serial{}, two), doctest::Contains("changed since the first step"), invalid_argument);
  nn::parameter_list<double> empty;
  nn::adam<double> fresh;
  CHECK_THROWS_AS(fresh.step(serial{}, empty), invalid_argument);
}

TEST_CASE("parameter_list rejects duplicates, empty and strided entries") {
  std::vector<double> p(6), g(6);
  nn::parameter_list<double> list;
  list.add("w", matrix_view<double>(p.data(), 2, 3), matrix_view<double>(g.data(), 2, 3));
  CHECK(list.total_size() == 6);
  CHECK(list.find("w") != nullptr);
  CHECK_THROWS_WITH_AS(list.add("w", matrix_view<double>(p.data(), 2, 3), matrix_view<double>(g.data(), 2, 3)),
                       doctest::Contains("already"), invalid_argument);
  CHECK_THROWS_AS(list.add("s", matrix_view<double>(p.data(), 2, 2, 3), matrix_view<double>(g.data(), 2, 2, 3)),
                  invalid_argument);
  CHECK_THROWS_AS(list.add("e", matrix_view<double>(p.data(), 0, 3), matrix_view<double>(g.data(), 0, 3)),
                  invalid_argument);
  CHECK_THROWS_AS(list.add("m", matrix_view<double>(p.data(), 2, 3), matrix_view<double>(g.data(), 3, 2)),
                  dimension_mismatch);
  g.assign(6, 3.0);
  list.zero_grad();
  CHECK(g == std::vector<double>(6, 0.0));
}

TEST_CASE("clip_grad_norm matches PyTorch's clip_grad_norm_") {
  for (const auto& c : test::read_fixture_cases("nn_clip.txt")) {
    auto g1 = c.matrix("g1");
    auto g2 = c.matrix("g2");
    std::vector<double> v1(g1.size()), v2(g2.size());
    nn::parameter_list<double> params;
    params.add("a", matrix_view<double>(v1.data(), 4, 3), matrix_view<double>(g1.data(), 4, 3));
    params.add("b", matrix_view<double>(v2.data(), 5, 1), matrix_view<double>(g2.data(), 5, 1));
    const double norm = nn::clip_grad_norm(params, c.params[0]);
    CHECK(norm == doctest::Approx(c.params[1]).epsilon(1e-14));
    for (std::size_t i = 0; i < g1.size(); ++i) CHECK(test::close(g1[i], c.matrix("c1")[i], 1e-14));
    for (std::size_t i = 0; i < g2.size(); ++i) CHECK(test::close(g2[i], c.matrix("c2")[i], 1e-14));
  }
}

TEST_CASE("clip_grad_norm names the entry holding a non-finite gradient") {
  std::vector<double> v(3), g{1.0, std::nan(""), 2.0};
  nn::parameter_list<double> params;
  params.add("decoder.mean.bias", vector_view<double>(v.data(), 3), vector_view<double>(g.data(), 3));
  CHECK_THROWS_WITH_AS(nn::clip_grad_norm(params, 1.0),
                       doctest::Contains("'decoder.mean.bias' is nan at element (1, 0)"), invalid_argument);
  CHECK(std::isnan(nn::clip_grad_norm(params, 1.0, {.error_if_nonfinite = false})));
  CHECK_THROWS_AS(nn::clip_grad_norm(params, 0.0), invalid_argument);
  std::vector<double> h{5.0, -7.0, 0.5};
  nn::parameter_list<double> other;
  other.add("x", vector_view<double>(v.data(), 3), vector_view<double>(h.data(), 3));
  nn::clip_grad_value(other, 1.0);
  CHECK(h == std::vector<double>{1.0, -1.0, 0.5});
}
