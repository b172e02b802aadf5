#pragma once
/// @file
/// Internals of cellkit/contrastive/info_nce.hpp: the four InfoNCE variants on top of the engines
/// of info_nce_impl.hpp. Arguments arrive checked (shapes, finiteness, parameters); these
/// functions normalise, run the tiled or the materialised engine, add the positive terms and chain
/// the gradients through the normalisation.
///
/// Every variant is a weighted-pair InfoNCE over normalised rows Z_r, columns Z_c and S = Z_r Z_c^T / tau:
///
///     loss = sum_ab W_ab (lse_a - S_ab) / sum_ab W_ab,   lse_a = log sum_{b not excluded} e^{S_ab}
///
/// The tiled path splits it into the softmax part (1/W) sum_a w_a lse_a, w_a = sum_b W_ab, computed
/// by the tiled engines, and the positive part -(1/W) sum_ab W_ab S_ab, computed directly in
/// O(number of positive pairs x d) (two-view: N pairs; SupCon: class sums; graph: edges).

#include <cellkit/contrastive/detail/common.hpp>
#include <cellkit/contrastive/detail/info_nce_impl.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>

#include <algorithm>
#include <optional>
#include <span>
#include <vector>

namespace cellkit::contrastive::detail {

template <class T>
struct info_nce_options {
  T temperature;
  T eps;
  bool materialized;
  tile_shape tiles;
};

/// Copies rows [first, first + out.rows()) of `source` (a contiguous buffer of d columns) into out.
template <class T>
void copy_rows(const T* source, index_t first, index_t d, matrix_view<T> out) {
  for (index_t i = 0; i < out.rows(); ++i) std::copy_n(source + (first + i) * d, d, out.row_data(i));
}

/// out[i] += sign * u rows (row by row), for the positive terms: out_i += coef * src_i.
template <class T>
void add_scaled_rows(matrix_view<T> out, const T* src, index_t src_first, index_t d, T coef) {
  for (index_t i = 0; i < out.rows(); ++i) {
    T* o = out.row_data(i);
    const T* s = src + (src_first + i) * d;
    for (index_t k = 0; k < d; ++k) o[k] += coef * s[k];
  }
}

// ---------------------------------------------------------------------------------------------
// Two views (SimCLR / NT-Xent) and the supervised variant (SupCon)
// ---------------------------------------------------------------------------------------------

/// Class structure of the supervised variant: sample i has class id[i]; P(a) has 2 n_c - 1 members.
struct class_layout {
  std::vector<index_t> id;     ///< per sample (N)
  std::vector<index_t> count;  ///< samples per class
};

/// Two-view InfoNCE; with `classes`, the supervised (SupCon) variant. Returns the loss.
template <class T>
double two_view_info_nce(int threads, matrix_view<const T> view_a, matrix_view<const T> view_b,
                         const class_layout* classes, std::optional<matrix_view<T>> grad_a,
                         std::optional<matrix_view<T>> grad_b, const info_nce_options<T>& opt) {
  const index_t n = view_a.rows();
  const index_t d = view_a.cols();
  const index_t m = 2 * n;
  auto z = make_normalized_rows<T>(m, d);
  normalize_into(threads, view_a, opt.eps, z, 0);
  normalize_into(threads, view_b, opt.eps, z, n);
  const auto u = z.view();
  const T alpha = T(1) / opt.temperature;
  const auto partner = [n](index_t a) { return a < n ? a + n : a - n; };
  const bool want_gradient = grad_a.has_value() || grad_b.has_value();

  if (opt.materialized) {
    dense_pairs<T> pairs{host_buffer<T>(m * m), host_buffer<unsigned char>(m * m)};
    for (index_t a = 0; a < m; ++a) {
      pairs.excluded[a * m + a] = 1;
      if (classes == nullptr) {
        pairs.weight[a * m + partner(a)] = T(1);
      } else {
        const index_t c = classes->id[static_cast<std::size_t>(a % n)];
        const T w = T(1) / static_cast<T>(2 * classes->count[static_cast<std::size_t>(c)] - 1);
        for (index_t b = 0; b < m; ++b) {
          if (b != a && classes->id[static_cast<std::size_t>(b % n)] == c) pairs.weight[a * m + b] = w;
        }
      }
    }
    if (!want_gradient) return materialized_pairs<T>(threads, u, u, alpha, pairs, std::nullopt, std::nullopt);
    host_buffer<T> d_rows(m * d, uninitialized), d_cols(m * d, uninitialized);
    const double loss =
        materialized_pairs<T>(threads, u, u, alpha, pairs, d_rows.as_matrix(m, d), d_cols.as_matrix(m, d));
    for (index_t i = 0; i < m * d; ++i) d_rows[i] += d_cols[i];
    if (grad_a) {
      copy_rows(d_rows.data(), 0, d, *grad_a);
      normalize_backward(threads, z, 0, *grad_a, T(1));
    }
    if (grad_b) {
      copy_rows(d_rows.data(), n, d, *grad_b);
      normalize_backward(threads, z, n, *grad_b, T(1));
    }
    return loss;
  }

  // Tiled: lse of every row of [U_a; U_b] against every other row. Blocks never straddle the two
  // views, so each block's gradient rows are rows of grad_a or of grad_b.
  std::vector<block_range> blocks;
  append_blocks(blocks, 0, n, opt.tiles.row_block);
  append_blocks(blocks, n, n, opt.tiles.row_block);
  host_buffer<T> lse(m, uninitialized);
  symmetric_row_lse<T>(threads, u, alpha, blocks, lse.data());

  // Positive part. Two views: S_{a, partner(a)}; supervised: mean over P(a) of S_ab, from class sums.
  std::vector<double> class_sum;  // classes x d, over both views
  if (classes != nullptr) {
    class_sum.assign(classes->count.size() * static_cast<std::size_t>(d), 0.0);
    for (index_t a = 0; a < m; ++a) {
      double* cs = class_sum.data() + classes->id[static_cast<std::size_t>(a % n)] * d;
      const T* ua = u.row_data(a);
      for (index_t k = 0; k < d; ++k) cs[k] += static_cast<double>(ua[k]);
    }
  }
  double lse_total = 0;
  double positive_total = 0;  // sum_a sum_b W_ab u_a . u_b
  for (index_t a = 0; a < m; ++a) lse_total += static_cast<double>(lse[a]);
  if (classes == nullptr) {
    for (index_t i = 0; i < n; ++i) positive_total += 2.0 * dot_row(u.row_data(i), u.row_data(i + n), d);
  } else {
    for (index_t a = 0; a < m; ++a) {
      const index_t c = classes->id[static_cast<std::size_t>(a % n)];
      const double* cs = class_sum.data() + c * d;
      const T* ua = u.row_data(a);
      double dot = 0;
      for (index_t k = 0; k < d; ++k) dot += static_cast<double>(ua[k]) * (cs[k] - static_cast<double>(ua[k]));
      positive_total += dot / static_cast<double>(2 * classes->count[static_cast<std::size_t>(c)] - 1);
    }
  }
  const double loss = (lse_total - positive_total * static_cast<double>(alpha)) / static_cast<double>(m);
  if (!want_gradient) return loss;

  // Softmax part: D_a = sum_b (P_ab + P_ba) u_b, into the gradient arrays.
  host_buffer<T> ones(m, T(1));
  std::vector<matrix_view<T>> out;
  for (const block_range& b : blocks) {
    const bool in_a = b.first < n;
    const auto& g = in_a ? grad_a : grad_b;
    out.push_back(g ? g->row_block(in_a ? b.first : b.first - n, b.count) : matrix_view<T>());
  }
  symmetric_gradient<T>(threads, u, alpha, blocks, ones.data(), lse.data(), out);
  // Positive part and the chain through the normalisation: dL/du_a = (D_a - 2 sum_b W_ab u_b) / (2N tau).
  const T scale = static_cast<T>(static_cast<double>(alpha) / static_cast<double>(m));
  auto finish = [&](matrix_view<T> g, index_t offset) {
    if (classes == nullptr) {
      add_scaled_rows(g, z.u.data(), offset == 0 ? n : 0, d, T(-2));
    } else {
      for (index_t i = 0; i < n; ++i) {
        const index_t a = offset + i;
        const index_t c = classes->id[static_cast<std::size_t>(i)];
        const double w = 2.0 / static_cast<double>(2 * classes->count[static_cast<std::size_t>(c)] - 1);
        const double* cs = class_sum.data() + c * d;
        const T* ua = u.row_data(a);
        T* gi = g.row_data(i);
        for (index_t k = 0; k < d; ++k) gi[k] -= static_cast<T>(w * (cs[k] - static_cast<double>(ua[k])));
      }
    }
    normalize_backward(threads, z, offset, g, scale);
  };
  if (grad_a) finish(*grad_a, 0);
  if (grad_b) finish(*grad_b, n);
  return loss;
}

// ---------------------------------------------------------------------------------------------
// Graph positives (seed 003)
// ---------------------------------------------------------------------------------------------

/// A graph's weighted edges in CSR form with index_t indices (and its transpose).
template <class T>
struct edge_list {
  std::vector<index_t> indptr;
  std::vector<index_t> indices;
  std::vector<T> weights;
};

template <class T>
edge_list<T> transpose_edges(const edge_list<T>& e, index_t n) {
  edge_list<T> t;
  t.indptr.assign(static_cast<std::size_t>(n) + 1, 0);
  for (index_t j : e.indices) ++t.indptr[static_cast<std::size_t>(j) + 1];
  for (index_t i = 0; i < n; ++i) t.indptr[static_cast<std::size_t>(i) + 1] += t.indptr[static_cast<std::size_t>(i)];
  t.indices.resize(e.indices.size());
  t.weights.resize(e.weights.size());
  std::vector<index_t> next(t.indptr.begin(), t.indptr.end() - 1);
  for (index_t i = 0; i < n; ++i) {
    for (index_t p = e.indptr[static_cast<std::size_t>(i)]; p < e.indptr[static_cast<std::size_t>(i) + 1]; ++p) {
      const auto j = static_cast<std::size_t>(e.indices[static_cast<std::size_t>(p)]);
      const auto q = static_cast<std::size_t>(next[j]++);
      t.indices[q] = i;
      t.weights[q] = e.weights[static_cast<std::size_t>(p)];
    }
  }
  return t;
}

template <class T>
double graph_info_nce(int threads, matrix_view<const T> embeddings, const edge_list<T>& edges,
                      std::optional<matrix_view<T>> grad, const info_nce_options<T>& opt) {
  const index_t n = embeddings.rows();
  const index_t d = embeddings.cols();
  auto z = make_normalized_rows<T>(n, d);
  normalize_into(threads, embeddings, opt.eps, z, 0);
  const auto u = z.view();
  const T alpha = T(1) / opt.temperature;

  if (opt.materialized) {
    dense_pairs<T> pairs{host_buffer<T>(n * n), host_buffer<unsigned char>(n * n)};
    for (index_t a = 0; a < n; ++a) {
      pairs.excluded[a * n + a] = 1;
      for (index_t p = edges.indptr[static_cast<std::size_t>(a)]; p < edges.indptr[static_cast<std::size_t>(a) + 1];
           ++p) {
        pairs.weight[a * n + edges.indices[static_cast<std::size_t>(p)]] = edges.weights[static_cast<std::size_t>(p)];
      }
    }
    if (!grad) return materialized_pairs<T>(threads, u, u, alpha, pairs, std::nullopt, std::nullopt);
    host_buffer<T> d_rows(n * d, uninitialized), d_cols(n * d, uninitialized);
    const double loss =
        materialized_pairs<T>(threads, u, u, alpha, pairs, d_rows.as_matrix(n, d), d_cols.as_matrix(n, d));
    for (index_t i = 0; i < n * d; ++i) d_rows[i] += d_cols[i];
    copy_rows(d_rows.data(), 0, d, *grad);
    normalize_backward(threads, z, 0, *grad, T(1));
    return loss;
  }

  host_buffer<T> row_weight(n);
  double total_weight = 0;
  for (index_t a = 0; a < n; ++a) {
    double w = 0;
    for (index_t p = edges.indptr[static_cast<std::size_t>(a)]; p < edges.indptr[static_cast<std::size_t>(a) + 1];
         ++p) {
      w += static_cast<double>(edges.weights[static_cast<std::size_t>(p)]);
    }
    row_weight[a] = static_cast<T>(w);
    total_weight += w;
  }
  std::vector<block_range> blocks;
  append_blocks(blocks, 0, n, opt.tiles.row_block);
  host_buffer<T> lse(n, uninitialized);
  symmetric_row_lse<T>(threads, u, alpha, blocks, lse.data());
  double softmax_total = 0;
  double positive_total = 0;
  for (index_t a = 0; a < n; ++a) {
    const index_t begin = edges.indptr[static_cast<std::size_t>(a)];
    const index_t end = edges.indptr[static_cast<std::size_t>(a) + 1];
    if (begin == end) continue;
    double w = 0;
    for (index_t p = begin; p < end; ++p) {
      const double wp = static_cast<double>(edges.weights[static_cast<std::size_t>(p)]);
      w += wp;
      positive_total += wp * dot_row(u.row_data(a), u.row_data(edges.indices[static_cast<std::size_t>(p)]), d);
    }
    softmax_total += w * static_cast<double>(lse[a]);
  }
  const double loss = (softmax_total - positive_total * static_cast<double>(alpha)) / total_weight;
  if (!grad) return loss;

  std::vector<matrix_view<T>> out;
  for (const block_range& b : blocks) out.push_back(grad->row_block(b.first, b.count));
  symmetric_gradient<T>(threads, u, alpha, blocks, row_weight.data(), lse.data(), out);
  // dL/du_a = (D_a - sum_b w_ab u_b - sum_b w_ba u_b) / (W tau)
  const edge_list<T> incoming = transpose_edges(edges, n);
  parallel_blocks(threads, (n + 255) / 256, [&](index_t block) {
    const index_t last = std::min(n, (block + 1) * 256);
    std::vector<double> acc(static_cast<std::size_t>(d));
    for (index_t a = block * 256; a < last; ++a) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (const edge_list<T>* e : {&edges, &incoming}) {
        for (index_t p = e->indptr[static_cast<std::size_t>(a)]; p < e->indptr[static_cast<std::size_t>(a) + 1]; ++p) {
          const double w = static_cast<double>(e->weights[static_cast<std::size_t>(p)]);
          const T* ub = u.row_data(e->indices[static_cast<std::size_t>(p)]);
          for (index_t k = 0; k < d; ++k) acc[static_cast<std::size_t>(k)] += w * static_cast<double>(ub[k]);
        }
      }
      T* g = grad->row_data(a);
      for (index_t k = 0; k < d; ++k) g[k] -= static_cast<T>(acc[static_cast<std::size_t>(k)]);
    }
  });
  normalize_backward(threads, z, 0, *grad, static_cast<T>(static_cast<double>(alpha) / total_weight));
  return loss;
}

// ---------------------------------------------------------------------------------------------
// External bank of negatives (MoCo)
// ---------------------------------------------------------------------------------------------

template <class T>
double bank_info_nce(int threads, matrix_view<const T> queries, matrix_view<const T> keys, matrix_view<const T> bank,
                     std::optional<matrix_view<T>> grad_queries, std::optional<matrix_view<T>> grad_keys,
                     std::optional<matrix_view<T>> grad_bank, const info_nce_options<T>& opt) {
  const index_t n = queries.rows();
  const index_t d = queries.cols();
  const index_t nb = bank.rows();
  // One buffer: rows [0, n) queries, [n, 2n) keys, [2n, 2n + nb) bank.
  auto z = make_normalized_rows<T>(2 * n + nb, d);
  normalize_into(threads, queries, opt.eps, z, 0);
  normalize_into(threads, keys, opt.eps, z, n);
  normalize_into(threads, bank, opt.eps, z, 2 * n);
  const auto all = z.view();
  const auto uq = all.row_block(0, n);
  const auto uk = all.row_block(n, n);
  const auto ub = all.row_block(2 * n, nb);
  const T alpha = T(1) / opt.temperature;

  if (opt.materialized) {
    // Columns [U_k; U_bank]: row i's positive is column i, the other keys are excluded.
    const index_t k = n + nb;
    const auto cols = all.row_block(n, k);
    dense_pairs<T> pairs{host_buffer<T>(n * k), host_buffer<unsigned char>(n * k)};
    for (index_t i = 0; i < n; ++i) {
      for (index_t j = 0; j < n; ++j) pairs.excluded[i * k + j] = j == i ? 0 : 1;
      pairs.weight[i * k + i] = T(1);
    }
    const bool want_cols = grad_keys.has_value() || grad_bank.has_value();
    host_buffer<T> d_cols(want_cols ? k * d : 0, uninitialized);
    std::optional<matrix_view<T>> d_cols_view;
    if (want_cols) d_cols_view = d_cols.as_matrix(k, d);
    const double loss = materialized_pairs<T>(threads, uq, cols, alpha, pairs, grad_queries, d_cols_view);
    if (grad_queries) normalize_backward(threads, z, 0, *grad_queries, T(1));
    if (grad_keys) {
      copy_rows(d_cols.data(), 0, d, *grad_keys);
      normalize_backward(threads, z, n, *grad_keys, T(1));
    }
    if (grad_bank) {
      copy_rows(d_cols.data(), n, d, *grad_bank);
      normalize_backward(threads, z, 2 * n, *grad_bank, T(1));
    }
    return loss;
  }

  host_buffer<T> positive(n, uninitialized), lse(n, uninitialized);
  for (index_t i = 0; i < n; ++i) {
    positive[i] = static_cast<T>(dot_row(uq.row_data(i), uk.row_data(i), d) * static_cast<double>(alpha));
  }
  tiled_row_lse<T>(threads, uq, ub, alpha, false, positive.data(), opt.tiles, lse.data());
  double total = 0;
  for (index_t i = 0; i < n; ++i) total += static_cast<double>(lse[i]) - static_cast<double>(positive[i]);
  const double loss = total / static_cast<double>(n);
  if (!grad_queries && !grad_keys && !grad_bank) return loss;

  const T scale = static_cast<T>(static_cast<double>(alpha) / static_cast<double>(n));
  host_buffer<T> ones(std::max(n, nb), T(1));
  // P_pos,i - 1 = e^{positive_i - lse_i} - 1 (<= 0)
  host_buffer<T> positive_coef(n, uninitialized);
  for (index_t i = 0; i < n; ++i)
    positive_coef[i] = static_cast<T>(std::expm1(static_cast<double>(positive[i]) - static_cast<double>(lse[i])));
  if (grad_queries) {
    std::vector<row_task<T>> tasks;
    append_row_tasks<T>(tasks, 0, n, opt.tiles.row_block, *grad_queries);
    tiled_gradient<T>(threads, uq, ub, alpha, false, gradient_terms<T>{ones.data(), lse.data(), nullptr, nullptr},
                      tasks, opt.tiles);
    for (index_t i = 0; i < n; ++i) {
      T* g = grad_queries->row_data(i);
      const T* kk = uk.row_data(i);
      for (index_t c = 0; c < d; ++c) g[c] += positive_coef[i] * kk[c];
    }
    normalize_backward(threads, z, 0, *grad_queries, scale);
  }
  if (grad_keys) {
    for (index_t i = 0; i < n; ++i) {
      T* g = grad_keys->row_data(i);
      const T* q = uq.row_data(i);
      for (index_t c = 0; c < d; ++c) g[c] = positive_coef[i] * q[c];
    }
    normalize_backward(threads, z, n, *grad_keys, scale);
  }
  if (grad_bank) {
    // dL/du_bank_j = sum_i P_ij u_q,i / (N tau): the same tiles transposed (rows = bank, columns = queries).
    std::vector<row_task<T>> tasks;
    append_row_tasks<T>(tasks, 0, nb, opt.tiles.row_block, *grad_bank);
    tiled_gradient<T>(threads, ub, uq, alpha, false, gradient_terms<T>{nullptr, nullptr, ones.data(), lse.data()},
                      tasks, opt.tiles);
    normalize_backward(threads, z, 2 * n, *grad_bank, scale);
  }
  return loss;
}

}  // namespace cellkit::contrastive::detail
