// The graph layers' policy-generic evaluation (graph/detail/portable.hpp), which the cuda policy
// runs: on host policies it is called directly (so its arithmetic is checked without a GPU); under
// nvcc the cuda instantiation calls the public functions with device views (skipped without a GPU).
// Both are compared with the host layers, which the other graph tests check against PyG and
// central differences.

#include <cellkit/graph/diffusion.hpp>
#include <cellkit/graph/gcn.hpp>
#include <cellkit/graph/propagate.hpp>
#include <cellkit/graph/sgc.hpp>
#include <cellkit/graph/tagcn.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <cstdint>
#include <optional>
#include <vector>

using namespace cellkit;
using namespace cellkit::graph;
using cellkit::test::on_device;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

namespace {

using graph_test::policy_csr;

/// Runs one layer under P: the public function for the device, the portable evaluation on the host.
template <class P>
struct runner {
  decltype(policy_of<P>()) policy = policy_of<P>();
  using space = typename policy_array<P, double>::space;
  using cmat = matrix_view<const double, space>;
  using mat = matrix_view<double, space>;
  using vec = vector_view<double, space>;
  using csr = csr_view<const double, std::int32_t, space>;

  void propagate_(csr a, cmat x, mat y, spmm_params<double> params) {
    if constexpr (on_device<P>) {
      graph::propagate(policy, a, x, y, params);
    } else {
      graph::detail::portable_propagate(policy, a, x, y, params);
    }
    synchronize(policy);
  }
  void gcn_forward_(csr a, cmat x, cmat w, vector_view<const double, space> b, mat y) {
    if constexpr (on_device<P>) {
      graph::gcn_forward(policy, a, x, w, b, y);
    } else {
      graph::detail::portable_gcn_forward(policy, a, x, w, std::optional(b), y);
    }
    synchronize(policy);
  }
  void gcn_backward_(csr a, csr at, cmat x, cmat w, cmat dy, mat dx, mat dw, vec db) {
    if constexpr (on_device<P>) {
      graph::gcn_backward(policy, a, at, x, w, dy, dx, dw, db);
    } else {
      graph::detail::portable_gcn_backward(policy, a, at, x, w, dy, std::optional(dx), std::optional(dw),
                                           std::optional(db));
    }
    synchronize(policy);
  }
  void tagcn_forward_(csr a, cmat x, cmat w, vector_view<const double, space> b, mat y, mat hops, index_t k) {
    if constexpr (on_device<P>) {
      graph::tagcn_forward(policy, a, x, w, b, y, hops, {.hops = k});
    } else {
      graph::detail::portable_tagcn_forward(policy, a, x, w, std::optional(b), y, hops, k);
    }
    synchronize(policy);
  }
  void tagcn_backward_(csr a, csr at, cmat hops, cmat w, cmat dy, mat dx, mat dw, vec db, index_t k) {
    if constexpr (on_device<P>) {
      graph::tagcn_backward(policy, a, at, hops, w, dy, dx, dw, db, {.hops = k});
    } else {
      (void)a;
      graph::detail::portable_tagcn_backward(policy, at, hops, w, dy, std::optional(dx), std::optional(dw),
                                             std::optional(db), k);
    }
    synchronize(policy);
  }
  void sgc_precompute_(csr a, cmat x, mat f, index_t k) {
    if constexpr (on_device<P>) {
      graph::sgc_precompute(policy, a, x, f, {.hops = k});
    } else {
      graph::detail::portable_power_apply(policy, a, x, f, k);
    }
    synchronize(policy);
  }
  void sgc_forward_(cmat f, cmat w, vector_view<const double, space> b, mat y) {
    if constexpr (on_device<P>) {
      graph::sgc_forward(policy, f, w, b, y);
    } else {
      graph::detail::portable_gemm(policy, f, w, y);
      graph::detail::portable_add_row_vector(policy, b, y);
    }
    synchronize(policy);
  }
  void sgc_backward_(csr at, cmat f, cmat w, cmat dy, mat dx, mat dw, vec db, index_t k) {
    if constexpr (on_device<P>) {
      graph::sgc_backward(policy, at, f, w, dy, dx, dw, db, {.hops = k});
    } else {
      graph::detail::portable_sgc_backward(policy, at, f, w, dy, std::optional(dx), std::optional(dw),
                                           std::optional(db), k);
    }
    synchronize(policy);
  }
  void appnp_(csr a, cmat h, mat z, index_t k, double alpha) {
    if constexpr (on_device<P>) {
      graph::appnp(policy, a, h, z, {.hops = k, .alpha = alpha});
    } else {
      graph::detail::portable_appnp(policy, a, h, z, k, alpha);
    }
    synchronize(policy);
  }
  ppr_result ppr_(csr a, cmat h, mat z, ppr_params<double> params) {
    ppr_result result;
    if constexpr (on_device<P>) {
      result = graph::personalized_pagerank(policy, a, h, z, params);
    } else {
      const auto [iterations, change] =
          graph::detail::portable_personalized_pagerank(policy, a, h, z, params.alpha, params.max_iter, params.tol);
      result = {iterations, change};
    }
    synchronize(policy);
    return result;
  }
  void heat_(csr a, cmat x, mat y, heat_params<double> params) {
    if constexpr (on_device<P>) {
      graph::heat_diffusion(policy, a, x, y, params);
    } else {
      graph::detail::portable_heat_diffusion(policy, a, x, y, params.t, params.terms);
    }
    synchronize(policy);
  }
};

template <class T>
std::vector<double> widen(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

}  // namespace

TEST_CASE_TEMPLATE("portable graph layers (the cuda evaluation) equal the host layers", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  // A directed graph (A != A^T) with empty rows, so both products and rows without entries are used.
  const index_t n = 57;
  const auto g = graph_test::random_graph<double>(n, 6, 21, false);
  const propagator<double> op(g.view());
  REQUIRE(!op.is_symmetric());
  bool empty_row = false;
  for (index_t i = 0; i < n; ++i) empty_row |= op.matrix().row_begin(i) == op.matrix().row_end(i);
  REQUIRE(empty_row);
  policy_csr<P> a(op.matrix()), at(op.transpose());
  runner<P> run;

  // (f_in, f_out): GCN forward in both orders and backward orders (a) and (b); TAGCN backward in
  // Horner and powers form.
  const index_t shapes[3][2] = {{5, 3}, {3, 7}, {4, 4}};
  for (const auto& shape : shapes) {
    const index_t f_in = shape[0], f_out = shape[1];
    CAPTURE(f_in);
    CAPTURE(f_out);
    const auto x = graph_test::random_vector<double>(static_cast<std::size_t>(n * f_in), 1);
    const auto w = graph_test::random_vector<double>(static_cast<std::size_t>(f_in * f_out), 2);
    const auto b = graph_test::random_vector<double>(static_cast<std::size_t>(f_out), 3);
    const auto dy = graph_test::random_vector<double>(static_cast<std::size_t>(n * f_out), 4);
    matrix_view<const double> xh(x.data(), n, f_in), wh(w.data(), f_in, f_out), dyh(dy.data(), n, f_out);

    policy_array<P, double> xd(x), wd(w), bd(b), dyd(dy);
    const auto xv = xd.matrix(n, f_in);
    const auto wv = wd.matrix(f_in, f_out);
    const auto dyv = dyd.matrix(n, f_out);
    const auto bv = vector_view<const double, typename runner<P>::space>(bd.data(), f_out);

    // propagate, with alpha and beta
    {
      std::vector<double> ref(static_cast<std::size_t>(n * f_in), 0.5);
      policy_array<P, double> y(ref);
      propagate(serial{}, op.matrix(), xh, matrix_view<double>(ref.data(), n, f_in), {2.0, -1.0});
      run.propagate_(a.view(), xv, y.matrix(n, f_in), {2.0, -1.0});
      graph_test::check_close(y.to_host(), ref, 1e-13, 1e-14, "propagate");
    }
    // GCN
    {
      std::vector<double> y(static_cast<std::size_t>(n * f_out)), dx(x.size()), dw(w.size()), db(b.size());
      gcn_forward(serial{}, op, xh, wh, vector_view<const double>(b.data(), f_out),
                  matrix_view<double>(y.data(), n, f_out));
      gcn_backward(serial{}, op, xh, wh, dyh, matrix_view<double>(dx.data(), n, f_in),
                   matrix_view<double>(dw.data(), f_in, f_out), vector_view<double>(db.data(), f_out));
      policy_array<P, double> yd(y.size()), dxd(dx.size()), dwd(dw.size()), dbd(db.size());
      run.gcn_forward_(a.view(), xv, wv, bv, yd.matrix(n, f_out));
      run.gcn_backward_(a.view(), at.view(), xv, wv, dyv, dxd.matrix(n, f_in), dwd.matrix(f_in, f_out), dbd.view());
      graph_test::check_close(yd.to_host(), y, 1e-12, 1e-13, "gcn Y");
      graph_test::check_close(dxd.to_host(), dx, 1e-12, 1e-13, "gcn dX");
      graph_test::check_close(dwd.to_host(), dw, 1e-12, 1e-13, "gcn dW");
      graph_test::check_close(dbd.to_host(), db, 1e-12, 1e-13, "gcn db");
    }
    // TAGCN, K = 2
    {
      const index_t k = 2;
      const auto wk = graph_test::random_vector<double>(static_cast<std::size_t>((k + 1) * f_in * f_out), 5);
      matrix_view<const double> wkh(wk.data(), (k + 1) * f_in, f_out);
      std::vector<double> y(static_cast<std::size_t>(n * f_out)), hops(static_cast<std::size_t>((k + 1) * n * f_in));
      std::vector<double> dx(x.size()), dw(wk.size()), db(b.size());
      tagcn_forward(serial{}, op, xh, wkh, vector_view<const double>(b.data(), f_out),
                    matrix_view<double>(y.data(), n, f_out), matrix_view<double>(hops.data(), (k + 1) * n, f_in),
                    {.hops = k});
      tagcn_backward(serial{}, op, matrix_view<const double>(hops.data(), (k + 1) * n, f_in), wkh, dyh,
                     matrix_view<double>(dx.data(), n, f_in), matrix_view<double>(dw.data(), (k + 1) * f_in, f_out),
                     vector_view<double>(db.data(), f_out), {.hops = k});
      policy_array<P, double> wkd(wk), yd(y.size()), hopsd(hops.size()), dxd(dx.size()), dwd(dw.size()), dbd(db.size());
      run.tagcn_forward_(a.view(), xv, wkd.matrix((k + 1) * f_in, f_out), bv, yd.matrix(n, f_out),
                         hopsd.matrix((k + 1) * n, f_in), k);
      run.tagcn_backward_(a.view(), at.view(), hopsd.matrix((k + 1) * n, f_in), wkd.matrix((k + 1) * f_in, f_out), dyv,
                          dxd.matrix(n, f_in), dwd.matrix((k + 1) * f_in, f_out), dbd.view(), k);
      graph_test::check_close(hopsd.to_host(), hops, 1e-12, 1e-13, "tagcn hops");
      graph_test::check_close(yd.to_host(), y, 1e-12, 1e-13, "tagcn Y");
      graph_test::check_close(dxd.to_host(), dx, 1e-12, 1e-13, "tagcn dX");
      graph_test::check_close(dwd.to_host(), dw, 1e-12, 1e-13, "tagcn dW");
      graph_test::check_close(dbd.to_host(), db, 1e-12, 1e-13, "tagcn db");
    }
  }
}

TEST_CASE_TEMPLATE("portable SGC and diffusion (the cuda evaluation) equal the host functions", P,
                   CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  // f_in > f_out and f_in < f_out: both evaluation orders of SGC's dX.
  const index_t shapes[2][2] = {{4, 3}, {2, 5}};
  for (const auto& shape : shapes) {
    const index_t n = 43, f_in = shape[0], f_out = shape[1];
    CAPTURE(f_in);
    CAPTURE(f_out);
    const auto g = graph_test::random_graph<double>(n, 5, 33, false);
    const propagator<double> op(g.view());
    REQUIRE(!op.is_symmetric());
    policy_csr<P> a(op.matrix()), at(op.transpose());
    runner<P> run;
    const auto x = graph_test::random_vector<double>(static_cast<std::size_t>(n * f_in), 11);
    const auto w = graph_test::random_vector<double>(static_cast<std::size_t>(f_in * f_out), 12);
    const auto b = graph_test::random_vector<double>(static_cast<std::size_t>(f_out), 13);
    const auto dy = graph_test::random_vector<double>(static_cast<std::size_t>(n * f_out), 14);
    matrix_view<const double> xh(x.data(), n, f_in), wh(w.data(), f_in, f_out), dyh(dy.data(), n, f_out);
    policy_array<P, double> xd(x), wd(w), bd(b), dyd(dy);
    const auto xv = xd.matrix(n, f_in);
    using space = typename runner<P>::space;

    for (const index_t k : {index_t(0), index_t(1), index_t(3)}) {
      CAPTURE(k);
      // SGC: precompute, forward, backward (dX through (A^T)^K).
      std::vector<double> feat(x.size()), y(static_cast<std::size_t>(n * f_out)), dx(x.size()), dw(w.size()),
          db(b.size());
      sgc_precompute(serial{}, op.matrix(), xh, matrix_view<double>(feat.data(), n, f_in), {.hops = k});
      sgc_forward(serial{}, matrix_view<const double>(feat.data(), n, f_in), wh,
                  vector_view<const double>(b.data(), f_out), matrix_view<double>(y.data(), n, f_out));
      sgc_backward(serial{}, op, matrix_view<const double>(feat.data(), n, f_in), wh, dyh,
                   matrix_view<double>(dx.data(), n, f_in), matrix_view<double>(dw.data(), f_in, f_out),
                   vector_view<double>(db.data(), f_out), {.hops = k});
      policy_array<P, double> featd(feat.size()), yd(y.size()), dxd(dx.size()), dwd(dw.size()), dbd(db.size());
      run.sgc_precompute_(a.view(), xv, featd.matrix(n, f_in), k);
      graph_test::check_close(featd.to_host(), feat, 1e-12, 1e-13, "sgc features");
      run.sgc_forward_(featd.matrix(n, f_in), wd.matrix(f_in, f_out),
                       vector_view<const double, space>(bd.data(), f_out), yd.matrix(n, f_out));
      graph_test::check_close(yd.to_host(), y, 1e-12, 1e-13, "sgc Y");
      run.sgc_backward_(at.view(), featd.matrix(n, f_in), wd.matrix(f_in, f_out), dyd.matrix(n, f_out),
                        dxd.matrix(n, f_in), dwd.matrix(f_in, f_out), dbd.view(), k);
      graph_test::check_close(dxd.to_host(), dx, 1e-12, 1e-13, "sgc dX");
      graph_test::check_close(dwd.to_host(), dw, 1e-12, 1e-13, "sgc dW");
      graph_test::check_close(dbd.to_host(), db, 1e-12, 1e-13, "sgc db");

      // APPNP forward, and its backward = APPNP with A^T.
      std::vector<double> z(x.size()), dh(x.size());
      appnp(serial{}, op.matrix(), xh, matrix_view<double>(z.data(), n, f_in), {.hops = k, .alpha = 0.2});
      appnp_backward(serial{}, op, xh, matrix_view<double>(dh.data(), n, f_in), {.hops = k, .alpha = 0.2});
      policy_array<P, double> zd(z.size()), dhd(dh.size());
      run.appnp_(a.view(), xv, zd.matrix(n, f_in), k, 0.2);
      run.appnp_(at.view(), xv, dhd.matrix(n, f_in), k, 0.2);
      graph_test::check_close(zd.to_host(), z, 1e-12, 1e-13, "appnp");
      graph_test::check_close(dhd.to_host(), dh, 1e-12, 1e-13, "appnp_backward");

      // Heat-kernel diffusion with K = k + 2 terms.
      std::vector<double> heat(x.size());
      const heat_params<double> hp{.t = 1.5, .terms = k + 2};
      heat_diffusion(serial{}, op.matrix(), xh, matrix_view<double>(heat.data(), n, f_in), hp);
      policy_array<P, double> heatd(heat.size());
      run.heat_(a.view(), xv, heatd.matrix(n, f_in), hp);
      graph_test::check_close(heatd.to_host(), heat, 1e-12, 1e-13, "heat_diffusion");
    }
    // Personalised PageRank: the same iterations, change and result.
    const ppr_params<double> pp{.alpha = 0.3, .max_iter = 200, .tol = 1e-9};
    std::vector<double> z(x.size());
    const auto ref = personalized_pagerank(serial{}, op.matrix(), xh, matrix_view<double>(z.data(), n, f_in), pp);
    policy_array<P, double> zd(z.size());
    const auto got = run.ppr_(a.view(), xv, zd.matrix(n, f_in), pp);
    CHECK(got.iterations == ref.iterations);
    CHECK(got.change == doctest::Approx(ref.change).epsilon(1e-6));
    graph_test::check_close(zd.to_host(), z, 1e-12, 1e-13, "personalized_pagerank");
  }
}

TEST_CASE("the view overloads of gcn_backward and tagcn_backward check that A^T is A's transpose") {
  const index_t n = 6;
  const auto g = graph_test::random_graph<double>(n, 3, 5, false);
  const auto other = graph_test::random_graph<double>(n + 1, 3, 5, false);
  std::vector<double> x(static_cast<std::size_t>(n * 2), 1.0), w(4, 1.0), dy(static_cast<std::size_t>(n * 2), 1.0);
  std::vector<double> dx(x.size());
  matrix_view<const double> xv(x.data(), n, 2), wv(w.data(), 2, 2), dyv(dy.data(), n, 2);
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        gcn_backward(serial{}, g.view(), other.view(), xv, wv, dyv, matrix_view<double>(dx.data(), n, 2), std::nullopt,
                     std::nullopt);
      },
      {"gcn_backward", "A_hat^T", "transpose"});
  std::vector<double> hops(static_cast<std::size_t>(2 * n * 2), 1.0), wk(8, 1.0);
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        tagcn_backward(serial{}, g.view(), other.view(), matrix_view<const double>(hops.data(), 2 * n, 2),
                       matrix_view<const double>(wk.data(), 4, 2), dyv, matrix_view<double>(dx.data(), n, 2),
                       std::nullopt, std::nullopt, {.hops = 1});
      },
      {"tagcn_backward", "A_hat^T", "transpose"});
}
