// The inner-product decoder and the graph-masked attention evaluated for every policy
// (graph/detail/portable_decoders.hpp, portable_attention.hpp), which the cuda policy runs: on host
// policies the portable functions are called directly (so their arithmetic is checked without a
// GPU); under nvcc the cuda instantiation calls the public functions with device views (skipped
// without a GPU). Both are compared with the host functions, which test_decoders.cpp and
// test_attention.cpp check against PyTorch and central differences.

#include <cellkit/graph/attention.hpp>
#include <cellkit/graph/decoders.hpp>

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
using graph_test::policy_csr;

namespace {

template <class P>
struct runner {
  decltype(policy_of<P>()) policy = policy_of<P>();
  using space = typename policy_array<P, double>::space;
  using cmat = matrix_view<const double, space>;
  using mat = matrix_view<double, space>;
  using omat = std::optional<mat>;
  using csr = csr_view<const double, std::int32_t, space>;

  void forward(csr m, cmat q, cmat k, cmat v, mat out, vector_view<double, space> att) {
    if constexpr (on_device<P>) {
      masked_attention_forward(policy, m, q, k, v, out, att);
    } else {
      graph::detail::portable_attention_forward(policy, m, q, k, v, out, att,
                                                graph::detail::attention_scale(0.0, q.cols()));
    }
    synchronize(policy);
  }
  void backward(csr m, cmat q, cmat k, cmat v, vector_view<const double, space> att, cmat d_out, omat dq, omat dk,
                omat dv) {
    if constexpr (on_device<P>) {
      masked_attention_backward(policy, m, q, k, v, att, d_out, dq, dk, dv);
    } else {
      graph::detail::portable_attention_backward(policy, m, q, k, v, att, d_out, dq, dk, dv,
                                                 graph::detail::attention_scale(0.0, q.cols()));
    }
    synchronize(policy);
  }
  void importance(csr m, vector_view<const double, space> att, vector_view<double, space> out) {
    if constexpr (on_device<P>) {
      attention_importance(policy, m, att, out);
    } else {
      graph::detail::portable_attention_importance(policy, m, att, out);
    }
    synchronize(policy);
  }
  void decode(cmat z, mat out) {
    if constexpr (on_device<P>) {
      inner_product_decode(policy, z, out);
    } else {
      gemm(policy, z, z, out, gemm_params<double>{.transpose_b = true});
      for_each_index(policy, out.rows() * out.cols(), graph::detail::sigmoid_fn<double, space>{out});
    }
    synchronize(policy);
  }
  double dense(cmat z, csr a, omat dz, decoder_params<double> params) {
    double loss;
    if constexpr (on_device<P>) {
      loss = inner_product_loss_dense(policy, z, a, dz, params);
    } else {
      loss = graph::detail::portable_inner_product_loss_dense(
          policy, z, a, dz, graph::detail::reconstruction_term<double>{params.loss, params.pos_weight});
    }
    synchronize(policy);
    return loss;
  }
  double sampled(cmat z, csr a, omat dz, decoder_params<double> params) {
    double loss;
    if constexpr (on_device<P>) {
      loss = inner_product_loss_sampled(policy, z, a, dz, params);
    } else {
      loss = graph::detail::portable_inner_product_loss_sampled(
          policy, z, a, dz, graph::detail::reconstruction_term<double>{params.loss, params.pos_weight},
          params.negatives, params.seed, params.stream);
    }
    synchronize(policy);
    return loss;
  }
};

/// A rectangular n_q x n_k mask with empty rows and an empty last column (row i: columns
/// (3 i + 5 t) mod (n_k - 1) for t < i mod 4, sorted and unique).
struct rectangular_mask {
  index_t rows, cols;
  std::vector<std::int32_t> indptr{0}, indices;
  std::vector<double> values;
  rectangular_mask(index_t nq, index_t nk) : rows(nq), cols(nk) {
    for (index_t i = 0; i < nq; ++i) {
      std::vector<std::int32_t> row;
      for (index_t t = 0; t < i % 4; ++t) row.push_back(static_cast<std::int32_t>((3 * i + 5 * t) % (nk - 1)));
      std::sort(row.begin(), row.end());
      row.erase(std::unique(row.begin(), row.end()), row.end());
      indices.insert(indices.end(), row.begin(), row.end());
      indptr.push_back(static_cast<std::int32_t>(indices.size()));
    }
    values.assign(indices.size(), 1.0);
  }
  csr_view<const double, std::int32_t> view() const {
    return {rows, cols, static_cast<index_t>(indices.size()), indptr.data(), indices.data(), values.data()};
  }
};

}  // namespace

TEST_CASE_TEMPLATE("portable masked attention (the cuda evaluation) equals the host functions", P,
                   CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  runner<P> run;
  using space = typename runner<P>::space;
  // A square directed mask with self-loops and a rectangular one with empty rows and columns.
  const auto square = graph_test::random_graph<double>(41, 7, 5, false, true);
  const rectangular_mask rect(23, 17);
  bool empty_column = true;
  for (const auto j : rect.indices) empty_column &= j != 16;
  REQUIRE(empty_column);
  for (const auto& host_mask : {square.view(), rect.view()}) {
    const index_t nq = host_mask.rows(), nk = host_mask.cols(), nnz = host_mask.nnz(), d = 5, dv = 3;
    CAPTURE(nq);
    const auto q = graph_test::random_vector<double>(static_cast<std::size_t>(nq * d), 11);
    const auto k = graph_test::random_vector<double>(static_cast<std::size_t>(nk * d), 12);
    const auto v = graph_test::random_vector<double>(static_cast<std::size_t>(nk * dv), 13);
    const auto dout = graph_test::random_vector<double>(static_cast<std::size_t>(nq * dv), 14);
    matrix_view<const double> qh(q.data(), nq, d), kh(k.data(), nk, d), vh(v.data(), nk, dv),
        douth(dout.data(), nq, dv);
    std::vector<double> out(static_cast<std::size_t>(nq * dv)), att(static_cast<std::size_t>(nnz));
    std::vector<double> dq(q.size()), dk(k.size()), dvv(v.size()), imp(static_cast<std::size_t>(nk));
    masked_attention_forward(serial{}, host_mask, qh, kh, vh, matrix_view<double>(out.data(), nq, dv),
                             vector_view<double>(att.data(), nnz));
    masked_attention_backward(serial{}, host_mask, qh, kh, vh, vector_view<const double>(att.data(), nnz), douth,
                              matrix_view<double>(dq.data(), nq, d), matrix_view<double>(dk.data(), nk, d),
                              matrix_view<double>(dvv.data(), nk, dv));
    attention_importance(serial{}, host_mask, vector_view<const double>(att.data(), nnz),
                         vector_view<double>(imp.data(), nk));

    policy_csr<P> m(host_mask);
    policy_array<P, double> qd(q), kd(k), vd(v), doutd(dout), outd(out.size()), attd(att.size());
    run.forward(m.view(), qd.matrix(nq, d), kd.matrix(nk, d), vd.matrix(nk, dv), outd.matrix(nq, dv), attd.view());
    graph_test::check_close(attd.to_host(), att, 1e-14, 1e-15, "attention");
    graph_test::check_close(outd.to_host(), out, 1e-13, 1e-14, "out");
    const vector_view<const double, space> attv(attd.data(), nnz);
    {
      policy_array<P, double> dqd(dq.size()), dkd(dk.size()), dvd(dvv.size());
      run.backward(m.view(), qd.matrix(nq, d), kd.matrix(nk, d), vd.matrix(nk, dv), attv, doutd.matrix(nq, dv),
                   dqd.matrix(nq, d), dkd.matrix(nk, d), dvd.matrix(nk, dv));
      graph_test::check_close(dqd.to_host(), dq, 1e-13, 1e-14, "dQ");
      graph_test::check_close(dkd.to_host(), dk, 1e-13, 1e-14, "dK");
      graph_test::check_close(dvd.to_host(), dvv, 1e-13, 1e-14, "dV");
    }
    {
      // Only some gradients: the others are not written.
      std::vector<double> sentinel(dk.size(), 7.0);
      policy_array<P, double> dkd(sentinel), dvd(dvv.size());
      run.backward(m.view(), qd.matrix(nq, d), kd.matrix(nk, d), vd.matrix(nk, dv), attv, doutd.matrix(nq, dv),
                   std::nullopt, std::nullopt, dvd.matrix(nk, dv));
      graph_test::check_close(dvd.to_host(), dvv, 1e-13, 1e-14, "dV alone");
      graph_test::check_close(dkd.to_host(), std::vector<double>(sentinel), 0, 0, "dK untouched");
    }
    policy_array<P, double> impd(imp.size());
    run.importance(m.view(), attv, impd.view());
    graph_test::check_close(impd.to_host(), imp, 1e-14, 1e-15, "importance");
  }
}

TEST_CASE_TEMPLATE("portable inner-product decoder losses (the cuda evaluation) equal the host functions", P,
                   CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  runner<P> run;
  // n = 300: the host uses two blocks of rows, the portable evaluation one. Row 0 is adjacent to
  // every other node, so its negatives cannot be drawn.
  const index_t n = 300, d = 4;
  auto base = graph_test::random_graph<double>(n, 5, 17, false);
  std::vector<std::int32_t> rows, cols;
  std::vector<double> weights;
  for (index_t i = 0; i < n; ++i)
    for (index_t p = base.view().row_begin(i); p < base.view().row_end(i); ++p) {
      rows.push_back(static_cast<std::int32_t>(i));
      cols.push_back(base.view().indices()[p]);
      weights.push_back(base.view().values()[p]);
    }
  for (index_t j = 1; j < n; ++j) {
    rows.push_back(0);
    cols.push_back(static_cast<std::int32_t>(j));
    weights.push_back(0.5);
  }
  const auto g = csr_graph<double>::from_edges(n, rows, cols, weights);
  // Targets in [0, 1]: duplicates of row 0 were summed.
  std::vector<double> clipped(g.view().values(), g.view().values() + g.num_edges());
  for (auto& w : clipped) w = std::min(w, 1.0);
  const csr_view<const double, std::int32_t> a(n, n, g.num_edges(), g.view().indptr(), g.view().indices(),
                                               clipped.data());
  const auto z = graph_test::random_vector<double>(static_cast<std::size_t>(n * d), 21, 0.8);
  const matrix_view<const double> zh(z.data(), n, d);
  policy_csr<P> ad(a);
  policy_array<P, double> zd(z);
  const auto zv = zd.matrix(n, d);

  {
    const index_t small = 37;
    std::vector<double> out(static_cast<std::size_t>(small * small));
    inner_product_decode(serial{}, zh.row_block(0, small), matrix_view<double>(out.data(), small, small));
    policy_array<P, double> outd(out.size());
    run.decode(zv.row_block(0, small), outd.matrix(small, small));
    graph_test::check_close(outd.to_host(), out, 1e-14, 1e-15, "decode");
  }
  for (const auto loss : {reconstruction_loss::bce, reconstruction_loss::squared}) {
    CAPTURE(static_cast<int>(loss));
    for (const index_t negatives : {0, 1, 3}) {
      CAPTURE(negatives);
      const decoder_params<double> params{
          .loss = loss, .pos_weight = 2.5, .negatives = negatives, .seed = 99, .stream = 4};
      std::vector<double> dz(z.size());
      const matrix_view<double> dzh(dz.data(), n, d);
      policy_array<P, double> dzd(dz.size());
      if (negatives == 1) {  // the dense loss does not sample
        const double ref = inner_product_loss_dense(serial{}, zh, a, dzh, params);
        const double got = run.dense(zv, ad.view(), dzd.matrix(n, d), params);
        CHECK(test::close(got, ref, 1e-13));
        CHECK(test::close(run.dense(zv, ad.view(), std::nullopt, params), ref, 1e-13));
        graph_test::check_close(dzd.to_host(), dz, 1e-12, 1e-16, "dense dZ");
      }
      const double ref = inner_product_loss_sampled(serial{}, zh, a, dzh, params);
      const double got = run.sampled(zv, ad.view(), dzd.matrix(n, d), params);
      CHECK(test::close(got, ref, 1e-13));
      CHECK(test::close(run.sampled(zv, ad.view(), std::nullopt, params), ref, 1e-13));
      graph_test::check_close(dzd.to_host(), dz, 1e-12, 1e-16, "sampled dZ");
    }
  }
}

TEST_CASE_TEMPLATE("portable attention checks the mask it copies for the transpose", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  runner<P> run;
  // Row 1 lists column 2 before column 0.
  const std::vector<std::int32_t> indptr{0, 1, 3}, indices{1, 2, 0};
  const std::vector<double> values{1, 1, 1};
  policy_array<P, std::int32_t> ip(indptr), ix(indices);
  policy_array<P, double> vals(values), att(values), imp(3);
  const csr_view<const double, std::int32_t, typename runner<P>::space> m(2, 3, 3, ip.data(), ix.data(), vals.data());
  graph_test::check_throws_with<invalid_argument>(
      [&] { run.importance(m, vector_view<const double, typename runner<P>::space>(att.data(), 3), imp.view()); },
      {"attention_importance", "mask", "row 1"});
}
