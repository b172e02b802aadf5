#include <cellkit/graph/attention.hpp>

#include "graph/graph_test_util.hpp"
#include "support/test_support.hpp"

#include <vector>

using namespace cellkit;
using namespace cellkit::graph;
using graph_test::cast;

TEST_CASE_TEMPLATE("masked attention forward, backward and importance match torch autograd", T, float, double) {
  const auto cases = test::read_fixture_cases("graph_attention.txt");
  REQUIRE(cases.size() == 2);
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  for (const auto& c : cases) {
    const auto nq = static_cast<index_t>(c.params[0]);
    const auto nk = static_cast<index_t>(c.params[1]);
    const auto d = static_cast<index_t>(c.params[2]);
    const auto dv = static_cast<index_t>(c.params[3]);
    std::vector<std::int32_t> indptr, indices;
    for (double v : c.matrix("indptr")) indptr.push_back(static_cast<std::int32_t>(v));
    for (double v : c.matrix("indices")) indices.push_back(static_cast<std::int32_t>(v));
    const auto vals = cast<T>(c.matrix("values"));
    csr_view<const T, std::int32_t> mask(nq, nk, static_cast<index_t>(indices.size()), indptr.data(), indices.data(),
                                         vals.data());
    const auto q = cast<T>(c.matrix("Q")), k = cast<T>(c.matrix("K")), v = cast<T>(c.matrix("V"));
    const auto dout = cast<T>(c.matrix("dOut"));
    std::vector<T> out(nq * dv), att(indices.size()), dq(nq * d), dk(nk * d), dvv(nk * dv), imp(nk);
    matrix_view<const T> qv(q.data(), nq, d), kv(k.data(), nk, d), vv(v.data(), nk, dv);
    masked_attention_forward(openmp{2}, mask, qv, kv, vv, matrix_view<T>(out.data(), nq, dv),
                             vector_view<T>(att.data(), static_cast<index_t>(att.size())));
    graph_test::check_close(out, c.matrix("out"), tol, tol, "out");
    graph_test::check_close(att, c.matrix("attention"), tol, tol, "attention");
    masked_attention_backward(serial{}, mask, qv, kv, vv,
                              vector_view<const T>(att.data(), static_cast<index_t>(att.size())),
                              matrix_view<const T>(dout.data(), nq, dv), matrix_view<T>(dq.data(), nq, d),
                              matrix_view<T>(dk.data(), nk, d), matrix_view<T>(dvv.data(), nk, dv));
    graph_test::check_close(dq, c.matrix("dQ"), tol, tol, "dQ");
    graph_test::check_close(dk, c.matrix("dK"), tol, tol, "dK");
    graph_test::check_close(dvv, c.matrix("dV"), tol, tol, "dV");
    attention_importance(serial{}, mask, vector_view<const T>(att.data(), static_cast<index_t>(att.size())),
                         vector_view<T>(imp.data(), nk));
    graph_test::check_close(imp, c.matrix("importance"), tol, tol, "importance");
  }
}

TEST_CASE_TEMPLATE("masked attention gives the same bits for every host policy and passes central differences", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  const index_t n = 700, d = 8, dv = 5;
  auto mask = graph_test::random_graph<double>(n, 9, 3, false, true);
  auto q = graph_test::random_vector<double>(n * d, 1), k = graph_test::random_vector<double>(n * d, 2);
  auto v = graph_test::random_vector<double>(n * dv, 3), dout = graph_test::random_vector<double>(n * dv, 4);
  const index_t nnz = mask.num_edges();
  auto run = [&](const auto& policy, std::vector<double>& out, std::vector<double>& att, std::vector<double>& dq,
                 std::vector<double>& dk, std::vector<double>& dvv) {
    out.assign(n * dv, 0);
    att.assign(static_cast<std::size_t>(nnz), 0);
    dq.assign(n * d, 0);
    dk.assign(n * d, 0);
    dvv.assign(n * dv, 0);
    masked_attention_forward(policy, mask.view(), matrix_view<const double>(q.data(), n, d),
                             matrix_view<const double>(k.data(), n, d), matrix_view<const double>(v.data(), n, dv),
                             matrix_view<double>(out.data(), n, dv), vector_view<double>(att.data(), nnz), {0.3});
    masked_attention_backward(policy, mask.view(), matrix_view<const double>(q.data(), n, d),
                              matrix_view<const double>(k.data(), n, d), matrix_view<const double>(v.data(), n, dv),
                              vector_view<const double>(att.data(), nnz), matrix_view<const double>(dout.data(), n, dv),
                              matrix_view<double>(dq.data(), n, d), matrix_view<double>(dk.data(), n, d),
                              matrix_view<double>(dvv.data(), n, dv), {0.3});
  };
  std::vector<double> o1, a1, q1, k1, v1, o2, a2, q2, k2, v2;
  run(serial{}, o1, a1, q1, k1, v1);
  run(test::policy_of<P>(), o2, a2, q2, k2, v2);
  CHECK(o1 == o2);
  CHECK(a1 == a2);
  CHECK(q1 == q2);
  CHECK(k1 == k2);
  CHECK(v1 == v2);
  // Central differences on a sample of coordinates of q, k and v.
  auto loss = [&] {
    std::vector<double> out(n * dv), att(static_cast<std::size_t>(nnz));
    masked_attention_forward(serial{}, mask.view(), matrix_view<const double>(q.data(), n, d),
                             matrix_view<const double>(k.data(), n, d), matrix_view<const double>(v.data(), n, dv),
                             matrix_view<double>(out.data(), n, dv), vector_view<double>(att.data(), nnz), {0.3});
    return graph_test::dot(out, dout);
  };
  for (auto [vec, grad] : {std::pair<std::vector<double>*, std::vector<double>*>{&q, &q1}, {&k, &k1}, {&v, &v1}}) {
    for (std::size_t idx = 3; idx < vec->size(); idx += vec->size() / 7) {
      const double saved = (*vec)[idx], h = 1e-6;
      (*vec)[idx] = saved + h;
      const double up = loss();
      (*vec)[idx] = saved - h;
      const double down = loss();
      (*vec)[idx] = saved;
      CHECK((*grad)[idx] == doctest::Approx((up - down) / (2 * h)).epsilon(1e-6));
    }
  }
}

TEST_CASE("masked attention rejects bad shapes") {
  auto mask = graph_test::random_graph<double>(4, 2, 1, false);
  std::vector<double> q(8), k(8), v(8), out(8), att(static_cast<std::size_t>(mask.num_edges()));
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        masked_attention_forward(serial{}, mask.view(), matrix_view<const double>(q.data(), 4, 2),
                                 matrix_view<const double>(k.data(), 2, 4), matrix_view<const double>(v.data(), 4, 2),
                                 matrix_view<double>(out.data(), 4, 2),
                                 vector_view<double>(att.data(), mask.num_edges()));
      },
      {"masked_attention_forward", "K is 2 x 4"});
  graph_test::check_throws_with<dimension_mismatch>(
      [&] {
        masked_attention_forward(serial{}, mask.view(), matrix_view<const double>(q.data(), 4, 2),
                                 matrix_view<const double>(k.data(), 4, 2), matrix_view<const double>(v.data(), 4, 2),
                                 matrix_view<double>(out.data(), 4, 2), vector_view<double>(att.data(), 1));
      },
      {"masked_attention_forward", "attention is 1 x 1"});
}
