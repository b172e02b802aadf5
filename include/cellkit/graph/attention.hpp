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
/// Host policies; calls return when the work is done. Errors: `dimension_mismatch` naming the
/// operands, a malformed mask.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/detail/args.hpp>
#include <cellkit/graph/detail/common.hpp>
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
template <class T, class Index>
void check_attention(const char* fn, const csr_view<const T, Index>& mask, shape2 q, shape2 k, shape2 v) {
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
template <class Policy, class TM, class Index, class T>
void masked_attention_forward(const Policy& policy, csr_view<TM, Index> mask, const_matrix_arg<T> q,
                              const_matrix_arg<T> k, const_matrix_arg<T> v, matrix_view<T> out,
                              vector_view<T> attention, attention_params<T> params = {}) {
  detail::require_host_policy<Policy>();
  constexpr const char* fn = "masked_attention_forward";
  csr_view<const std::remove_const_t<TM>, Index> m(mask);
  detail::check_attention(fn, m, q.shape(), k.shape(), v.shape());
  expect_shapes(out.rows() == q.rows() && out.cols() == v.cols(), fn, "out", out.shape(), "n_q x d_v",
                {q.rows(), v.cols()}, "one output row per query, V's width");
  expect_shapes(attention.size() == m.nnz(), fn, "attention", attention.shape(), "mask", {m.nnz(), 1},
                "one weight per mask entry");
  detail::debug_check_csr(fn, "mask", m);
  const T scale = detail::attention_scale(params.scale, q.cols());
  const index_t d = q.cols(), dv = v.cols();
  detail::parallel_for(policy, q.rows(), [&](index_t i) {
    const index_t begin = m.row_begin(i), end = m.row_end(i);
    T* o = out.row_data(i);
    for (index_t c = 0; c < dv; ++c) o[c] = T(0);
    if (begin == end) return;
    const T* qi = q.row_data(i);
    T max_score = -std::numeric_limits<T>::infinity();
    for (index_t p = begin; p < end; ++p) {
      const T* kj = k.row_data(static_cast<index_t>(m.indices()[p]));
      T s = T(0);
      for (index_t c = 0; c < d; ++c) s += qi[c] * kj[c];
      s *= scale;
      attention[p] = s;
      max_score = std::max(max_score, s);
    }
    T sum = T(0);
    for (index_t p = begin; p < end; ++p) {
      attention[p] = std::exp(attention[p] - max_score);
      sum += attention[p];
    }
    const T inv = T(1) / sum;
    for (index_t p = begin; p < end; ++p) {
      attention[p] *= inv;
      const T* vj = v.row_data(static_cast<index_t>(m.indices()[p]));
      for (index_t c = 0; c < dv; ++c) o[c] += attention[p] * vj[c];
    }
  });
}

/// Gradients of `masked_attention_forward` (see the file comment); dq, dk, dv optional.
template <class Policy, class TM, class Index, class TA, class T = std::remove_const_t<TA>>
void masked_attention_backward(const Policy& policy, csr_view<TM, Index> mask, const_matrix_arg<T> q,
                               const_matrix_arg<T> k, const_matrix_arg<T> v, vector_view<TA> attention_in,
                               const_matrix_arg<T> d_out, optional_matrix_out<T> dq, optional_matrix_out<T> dk,
                               optional_matrix_out<T> dv, attention_params<T> params = {}) {
  detail::require_host_policy<Policy>();
  const vector_view<const T> attention(attention_in);
  constexpr const char* fn = "masked_attention_backward";
  csr_view<const std::remove_const_t<TM>, Index> m(mask);
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
  detail::debug_check_csr(fn, "mask", m);
  const T scale = detail::attention_scale(params.scale, q.cols());
  const index_t d = q.cols(), dvw = v.cols();
  host_buffer<T> ds(m.nnz(), uninitialized);
  detail::parallel_for(policy, q.rows(), [&](index_t i) {
    const index_t begin = m.row_begin(i), end = m.row_end(i);
    const T* go = d_out.row_data(i);
    T weighted = T(0);
    for (index_t p = begin; p < end; ++p) {
      const T* vj = v.row_data(static_cast<index_t>(m.indices()[p]));
      T da = T(0);
      for (index_t c = 0; c < dvw; ++c) da += go[c] * vj[c];
      ds[p] = da;
      weighted += attention[p] * da;
    }
    for (index_t p = begin; p < end; ++p) ds[p] = attention[p] * (ds[p] - weighted);
    if (dq) {
      T* out = dq->row_data(i);
      for (index_t c = 0; c < d; ++c) out[c] = T(0);
      for (index_t p = begin; p < end; ++p) {
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

/// r_j = sum_i a_ij (attention received by key j), summed in row order. `importance` has n_k entries.
template <class Policy, class TM, class Index, class T>
void attention_importance(const Policy& policy, csr_view<TM, Index> mask,
                          std::type_identity_t<vector_view<const T>> attention, vector_view<T> importance) {
  detail::require_host_policy<Policy>();
  constexpr const char* fn = "attention_importance";
  csr_view<const std::remove_const_t<TM>, Index> m(mask);
  expect_shapes(attention.size() == m.nnz(), fn, "attention", attention.shape(), "mask", {m.nnz(), 1},
                "one weight per mask entry");
  expect_shapes(importance.size() == m.cols(), fn, "importance", importance.shape(), "mask", m.shape(),
                "one score per mask column");
  detail::check_csr(fn, "mask", m);
  const auto t = detail::build_transpose_map(m);
  detail::parallel_for(policy, m.cols(), [&](index_t j) {
    T s = T(0);
    for (index_t qpos = static_cast<index_t>(t.indptr[j]); qpos < static_cast<index_t>(t.indptr[j + 1]); ++qpos)
      s += attention[static_cast<index_t>(t.source[qpos])];
    importance[j] = s;
  });
}

}  // namespace cellkit::graph
