#pragma once
/// @file
/// Graph-masked softmax attention (scNetFormer-style): attention scores exist only on the entries of
/// a CSR mask, rows are normalised by softmax, and each query aggregates the values of its masked
/// keys. Forward, backward, and the gene-wise importance score (attention received).
///
/// For mask entry (i, j) (row i = query, column j = key; the mask's values are ignored):
///   s_ij = scale q_i . k_j   (scale = 1 / sqrt(d) by default),
///   a_ij = exp(s_ij - max_l s_il) / sum_l exp(s_il - max_l s_il)   over the row's entries,
///   out_i = sum_j a_ij v_j   (a query without entries gets out_i = 0).
/// The attention weights a are written in mask entry order (nnz values) and are what backward and
/// `attention_importance` read (nothing is taped).
/// Backward (dOut given; requested gradients are **overwritten**):
///   da_ij = dOut_i . v_j,  ds_ij = a_ij (da_ij - sum_l a_il da_il),
///   dq_i = scale sum_j ds_ij k_j,  dk_j = scale sum_i ds_ij q_i,  dv_j = sum_i a_ij dOut_i.
/// dk and dv sum over a column of the mask: they run over the mask's transpose (built per call by
/// a stable counting sort, O(nnz + n)), so every sum has a fixed order: no atomics, the same bits
/// for every thread count. Multi-head attention: call per head with column-block views of Q, K, V.
/// `attention_importance`: r_j = sum_i a_ij, the attention key j receives (gene importance).
/// Shapes: mask n_q x n_k, Q n_q x d, K n_k x d, V n_k x d_v, out n_q x d_v.
/// Costs: forward 2 nnz (d + d_v) flops + nnz exp; backward 2 nnz (2 d + 2 d_v) flops; scratch nnz.
/// Every policy: `serial`, `openmp` and, with device views, `cuda` (the portable evaluation in
/// detail/portable_attention.hpp; the host runs the same row functors). Calls return when the work
/// is done (on the device, backward and importance copy the mask's structure back to build the
/// transpose, O(n + nnz), which synchronises). Errors: `dimension_mismatch` naming the operands, a
/// malformed mask (checked in importance always; in the device backward on the copied structure;
/// elsewhere with CELLKIT_DEBUG_CHECKS).

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/detail/args.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/graph/detail/portable_attention.hpp>
#include <cellkit/graph/detail/transpose.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace cellkit::graph {

template <class T>
struct attention_params {
  T scale = T(0);  ///< multiplies q . k; 0 means 1 / sqrt(d)
};

namespace detail {
template <class T, class Index, class Space>
void check_attention(const char* fn, const csr_view<const T, Index, Space>& mask, shape2 q, shape2 k, shape2 v) {
  expect_shapes(q.rows == mask.rows(), fn, "Q", q, "mask", mask.shape(), "one query per mask row");
  expect_shapes(k.rows == mask.cols(), fn, "K", k, "mask", mask.shape(), "one key per mask column");
  expect_shapes(k.cols == q.cols, fn, "K", k, "Q", q, "queries and keys have the same width d");
  expect_shapes(v.rows == k.rows, fn, "V", v, "K", k, "one value per key");
}
template <class T>
T attention_scale(T scale, index_t d) {
  return scale != T(0) ? scale : (d > 0 ? T(1) / std::sqrt(static_cast<T>(d)) : T(1));
}
}  // namespace detail

/// out = masked softmax attention; `attention` receives a_ij in mask entry order (nnz values).
template <class Policy, class TM, class Index, class T, class Space>
void masked_attention_forward(const Policy& policy, csr_view<TM, Index, Space> mask, const_matrix_arg<T, Space> q,
                              const_matrix_arg<T, Space> k, const_matrix_arg<T, Space> v, matrix_view<T, Space> out,
                              vector_view<T, Space> attention, attention_params<T> params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "masked_attention_forward";
  csr_view<const std::remove_const_t<TM>, Index, Space> m(mask);
  detail::check_attention(fn, m, q.shape(), k.shape(), v.shape());
  expect_shapes(out.rows() == q.rows() && out.cols() == v.cols(), fn, "out", out.shape(), "n_q x d_v",
                {q.rows(), v.cols()}, "one output row per query, V's width");
  expect_shapes(attention.size() == m.nnz(), fn, "attention", attention.shape(), "mask", {m.nnz(), 1},
                "one weight per mask entry");
  const T scale = detail::attention_scale(params.scale, q.cols());
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_attention_forward(policy, m, q, k, v, out, attention, scale);
  } else {
    detail::require_host_policy<Policy>();
    detail::debug_check_csr(fn, "mask", m);
    const index_t dv = v.cols();
    const detail::attention_softmax_row_fn<T, Index, host_space> softmax{m.indptr(), m.indices(),      q,
                                                                         k,          attention.data(), scale};
    detail::parallel_for(policy, q.rows(), [&](index_t i) {
      softmax(i);
      T* o = out.row_data(i);
      for (index_t c = 0; c < dv; ++c) o[c] = T(0);
      for (index_t p = m.row_begin(i); p < m.row_end(i); ++p) {
        const T* vj = v.row_data(static_cast<index_t>(m.indices()[p]));
        for (index_t c = 0; c < dv; ++c) o[c] += attention[p] * vj[c];
      }
    });
  }
}

/// Gradients of `masked_attention_forward` (see the file comment); dq, dk, dv optional.
template <class Policy, class TM, class Index, class TA, class Space, class T = std::remove_const_t<TA>>
void masked_attention_backward(const Policy& policy, csr_view<TM, Index, Space> mask, const_matrix_arg<T, Space> q,
                               const_matrix_arg<T, Space> k, const_matrix_arg<T, Space> v,
                               vector_view<TA, Space> attention_in, const_matrix_arg<T, Space> d_out,
                               optional_matrix_out<T, Space> dq, optional_matrix_out<T, Space> dk,
                               optional_matrix_out<T, Space> dv, attention_params<T> params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  const vector_view<const T, Space> attention(attention_in);
  constexpr const char* fn = "masked_attention_backward";
  csr_view<const std::remove_const_t<TM>, Index, Space> m(mask);
  detail::check_attention(fn, m, q.shape(), k.shape(), v.shape());
  expect_shapes(attention.size() == m.nnz(), fn, "attention", attention.shape(), "mask", {m.nnz(), 1},
                "one weight per mask entry");
  expect_shapes(d_out.rows() == q.rows() && d_out.cols() == v.cols(), fn, "dOut", d_out.shape(), "n_q x d_v",
                {q.rows(), v.cols()}, "dOut has the output's shape");
  if (dq)
    expect_shapes(dq->rows() == q.rows() && dq->cols() == q.cols(), fn, "dQ", dq->shape(), "Q", q.shape(),
                  "dQ has Q's shape");
  if (dk)
    expect_shapes(dk->rows() == k.rows() && dk->cols() == k.cols(), fn, "dK", dk->shape(), "K", k.shape(),
                  "dK has K's shape");
  if (dv)
    expect_shapes(dv->rows() == v.rows() && dv->cols() == v.cols(), fn, "dV", dv->shape(), "V", v.shape(),
                  "dV has V's shape");
  const T scale = detail::attention_scale(params.scale, q.cols());
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_attention_backward(policy, m, q, k, v, attention, d_out, dq, dk, dv, scale);
    return;
  } else {
    detail::require_host_policy<Policy>();
    detail::debug_check_csr(fn, "mask", m);
    const index_t d = q.cols(), dvw = v.cols();
    host_buffer<T> ds(m.nnz(), uninitialized);
    const detail::attention_ds_row_fn<T, Index, host_space> ds_row{m.indptr(), m.indices(),      v,
                                                                   d_out,      attention.data(), ds.data()};
    detail::parallel_for(policy, q.rows(), [&](index_t i) {
      ds_row(i);
      if (dq) {
        T* out = dq->row_data(i);
        for (index_t c = 0; c < d; ++c) out[c] = T(0);
        for (index_t p = m.row_begin(i); p < m.row_end(i); ++p) {
          const T* kj = k.row_data(static_cast<index_t>(m.indices()[p]));
          const T w = scale * ds[p];
          for (index_t c = 0; c < d; ++c) out[c] += w * kj[c];
        }
      }
    });
    if (!dk && !dv) return;
    const auto t = detail::build_transpose_map(m);
    detail::parallel_for(policy, k.rows(), [&](index_t j) {
      T* gk = dk ? dk->row_data(j) : nullptr;
      T* gv = dv ? dv->row_data(j) : nullptr;
      if (gk)
        for (index_t c = 0; c < d; ++c) gk[c] = T(0);
      if (gv)
        for (index_t c = 0; c < dvw; ++c) gv[c] = T(0);
      for (index_t qpos = static_cast<index_t>(t.indptr[j]); qpos < static_cast<index_t>(t.indptr[j + 1]); ++qpos) {
        const auto i = static_cast<index_t>(t.indices[qpos]);
        const auto p = static_cast<index_t>(t.source[qpos]);
        if (gk) {
          const T* qi = q.row_data(i);
          const T w = scale * ds[p];
          for (index_t c = 0; c < d; ++c) gk[c] += w * qi[c];
        }
        if (gv) {
          const T* go = d_out.row_data(i);
          for (index_t c = 0; c < dvw; ++c) gv[c] += attention[p] * go[c];
        }
      }
    });
  }
}

/// r_j = sum_i a_ij (attention received by key j), summed in row order. `importance` has n_k entries.
template <class Policy, class TM, class Index, class T, class Space>
void attention_importance(const Policy& policy, csr_view<TM, Index, Space> mask,
                          std::type_identity_t<vector_view<const T, Space>> attention,
                          vector_view<T, Space> importance) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "attention_importance";
  csr_view<const std::remove_const_t<TM>, Index, Space> m(mask);
  expect_shapes(attention.size() == m.nnz(), fn, "attention", attention.shape(), "mask", {m.nnz(), 1},
                "one weight per mask entry");
  expect_shapes(importance.size() == m.cols(), fn, "importance", importance.shape(), "mask", m.shape(),
                "one score per mask column");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_attention_importance(policy, m, attention, importance);
  } else {
    detail::require_host_policy<Policy>();
    detail::check_csr(fn, "mask", m);
    const auto t = detail::build_transpose_map(m);
    detail::parallel_for(policy, m.cols(), [&](index_t j) {
      detail::column_weight_sum_fn<T, Index>{t.indptr.data(), t.source.data(), attention.data(), importance.data()}(j);
    });
  }
}

}  // namespace cellkit::graph
