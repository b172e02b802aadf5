#pragma once
/// @file
/// Graph-masked attention written once for every policy (internal). The row functors (scores and
/// softmax, ds) are also what the host functions run, so a row's arithmetic is the same code on
/// every backend; the outputs are one functor call per element, summing a row's (or, over the
/// mask's transpose, a column's) entries in index order: no atomics, the same bits on every run.
///
/// The transpose of the mask is built on the host by a stable counting sort: on the device the
/// mask's structure is copied back (O(n + nnz), synchronises) and the map copied over. Releasing
/// the device scratch (cudaFree) synchronises too, so these functions return when done.

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/functors.hpp>
#include <cellkit/core/detail/scratch.hpp>
#include <cellkit/core/detail/transfer.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/detail/structure_on.hpp>
#include <cellkit/graph/detail/transpose.hpp>

#include <optional>
#include <vector>

namespace cellkit::graph::detail {

using cellkit::detail::element_at;

/// attention[p] for row i's mask entries p: s_p = scale q_i . k_{j_p}, then the row's softmax.
template <class T, class Index, class Space>
struct attention_softmax_row_fn {
  const Index* indptr;
  const Index* indices;
  matrix_view<const T, Space> q, k;
  T* attention;
  T scale;
  CELLKIT_HD void operator()(index_t i) const {
    const auto begin = static_cast<index_t>(indptr[i]), end = static_cast<index_t>(indptr[i + 1]);
    if (begin == end) return;
    T max_score = -math::detail::inf<T>();
    for (index_t p = begin; p < end; ++p) {
      const auto j = static_cast<index_t>(indices[p]);
      T s = T(0);
      for (index_t c = 0; c < q.cols(); ++c) s += q(i, c) * k(j, c);
      s *= scale;
      attention[p] = s;
      max_score = s > max_score ? s : max_score;
    }
    T sum = T(0);
    for (index_t p = begin; p < end; ++p) {
      attention[p] = math::exp(attention[p] - max_score);
      sum += attention[p];
    }
    const T inv = T(1) / sum;
    for (index_t p = begin; p < end; ++p) attention[p] *= inv;
  }
};

/// ds[p] = a_p (da_p - sum_l a_l da_l) over row i's entries, da_p = dOut_i . v_{j_p}.
template <class T, class Index, class Space>
struct attention_ds_row_fn {
  const Index* indptr;
  const Index* indices;
  matrix_view<const T, Space> v, d_out;
  const T* attention;
  T* ds;
  CELLKIT_HD void operator()(index_t i) const {
    const auto begin = static_cast<index_t>(indptr[i]), end = static_cast<index_t>(indptr[i + 1]);
    T weighted = T(0);
    for (index_t p = begin; p < end; ++p) {
      const auto j = static_cast<index_t>(indices[p]);
      T da = T(0);
      for (index_t c = 0; c < v.cols(); ++c) da += d_out(i, c) * v(j, c);
      ds[p] = da;
      weighted += attention[p] * da;
    }
    for (index_t p = begin; p < end; ++p) ds[p] = attention[p] * (ds[p] - weighted);
  }
};

/// out(i, c) = sum_p (factor w[p]) x(idx[p], c) over positions p = ptr[i] .. ptr[i + 1], where
/// idx is the position's row of x and w (through `weight_at`, to read w through the transpose's
/// source positions) its weight. The row's positions in order; one element per call.
template <class T, class Index, class Space>
struct gather_rows_fn {
  const Index* ptr;
  const Index* idx;
  const Index* weight_at;  ///< nullptr: w[p]; else w[weight_at[p]]
  const T* w;
  T factor;
  matrix_view<const T, Space> x;
  matrix_view<T, Space> out;
  CELLKIT_HD void operator()(index_t e) const {
    const auto [i, c] = element_at(e, out.cols());
    T sum = T(0);
    for (auto p = static_cast<index_t>(ptr[i]); p < static_cast<index_t>(ptr[i + 1]); ++p) {
      const T weight = weight_at ? w[static_cast<index_t>(weight_at[p])] : w[p];
      sum += (factor * weight) * x(static_cast<index_t>(idx[p]), c);
    }
    out(i, c) = sum;
  }
};

/// r_j = sum over column j's entries (transpose order) of attention.
template <class T, class Index>
struct column_weight_sum_fn {
  const Index* ptr;
  const Index* source;
  const T* attention;
  T* out;
  CELLKIT_HD void operator()(index_t j) const {
    T s = T(0);
    for (auto q = static_cast<index_t>(ptr[j]); q < static_cast<index_t>(ptr[j + 1]); ++q)
      s += attention[static_cast<index_t>(source[q])];
    out[j] = s;
  }
};

/// The mask's transpose map in Space (see the file comment).
template <class Index, class Space>
struct transpose_map_on {
  decltype(cellkit::detail::make_scratch<Index, Space>(0)) indptr, indices, source;
};

/// The mask's transpose map in Space; the mask's structure is checked first (check_csr).
template <class Space, class Policy, class TM, class Index>
transpose_map_on<Index, Space> transpose_map_in_space(const Policy& policy, const char* fn,
                                                      csr_view<const TM, Index, Space> m) {
  auto to_vector = [](const host_buffer<Index>& b) { return std::vector<Index>(b.begin(), b.end()); };
  const auto structure = checked_structure(policy, fn, "mask", m);
  const auto t = build_transpose_map(m.rows(), m.cols(), structure.indptr.data(), structure.indices.data());
  return {cellkit::detail::upload<Space>(policy, to_vector(t.indptr)),
          cellkit::detail::upload<Space>(policy, to_vector(t.indices)),
          cellkit::detail::upload<Space>(policy, to_vector(t.source))};
}

/// masked_attention_forward's evaluation (arguments checked by the caller).
template <class Policy, class TM, class Index, class T, class Space>
void portable_attention_forward(const Policy& policy, csr_view<const TM, Index, Space> m, matrix_view<const T, Space> q,
                                matrix_view<const T, Space> k, matrix_view<const T, Space> v, matrix_view<T, Space> out,
                                vector_view<T, Space> attention, T scale) {
  for_each_index(policy, q.rows(),
                 attention_softmax_row_fn<T, Index, Space>{m.indptr(), m.indices(), q, k, attention.data(), scale});
  for_each_index(policy, out.rows() * out.cols(),
                 gather_rows_fn<T, Index, Space>{m.indptr(), m.indices(), nullptr, attention.data(), T(1), v, out});
}

/// masked_attention_backward's evaluation (arguments checked by the caller).
template <class Policy, class TM, class Index, class T, class Space>
void portable_attention_backward(const Policy& policy, csr_view<const TM, Index, Space> m,
                                 matrix_view<const T, Space> q, matrix_view<const T, Space> k,
                                 matrix_view<const T, Space> v, vector_view<const T, Space> attention,
                                 matrix_view<const T, Space> d_out, std::optional<matrix_view<T, Space>> dq,
                                 std::optional<matrix_view<T, Space>> dk, std::optional<matrix_view<T, Space>> dv,
                                 T scale) {
  auto ds = cellkit::detail::make_scratch<T, Space>(m.nnz());
  for_each_index(policy, q.rows(),
                 attention_ds_row_fn<T, Index, Space>{m.indptr(), m.indices(), v, d_out, attention.data(), ds.data()});
  if (dq)
    for_each_index(policy, dq->rows() * dq->cols(),
                   gather_rows_fn<T, Index, Space>{m.indptr(), m.indices(), nullptr, ds.data(), scale, k, *dq});
  if (!dk && !dv) return;
  const auto t = transpose_map_in_space<Space>(policy, "masked_attention_backward", m);
  if (dk)
    for_each_index(
        policy, dk->rows() * dk->cols(),
        gather_rows_fn<T, Index, Space>{t.indptr.data(), t.indices.data(), t.source.data(), ds.data(), scale, q, *dk});
  if (dv)
    for_each_index(policy, dv->rows() * dv->cols(),
                   gather_rows_fn<T, Index, Space>{t.indptr.data(), t.indices.data(), t.source.data(), attention.data(),
                                                   T(1), d_out, *dv});
}

/// attention_importance's evaluation (arguments checked by the caller).
template <class Policy, class TM, class Index, class T, class Space>
void portable_attention_importance(const Policy& policy, csr_view<const TM, Index, Space> m,
                                   vector_view<const T, Space> attention, vector_view<T, Space> importance) {
  const auto t = transpose_map_in_space<Space>(policy, "attention_importance", m);
  for_each_index(policy, m.cols(),
                 column_weight_sum_fn<T, Index>{t.indptr.data(), t.source.data(), attention.data(), importance.data()});
}

}  // namespace cellkit::graph::detail
