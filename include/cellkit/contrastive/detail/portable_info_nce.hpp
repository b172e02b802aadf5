#pragma once
/// @file
/// The InfoNCE variants written once for every policy (internal): what the `cuda` policy runs.
/// Host policies run info_nce_variants.hpp's tuned engines and these only in the tests.
///
/// One rectangular engine serves all four variants (the weighted-pair form of
/// info_nce_variants.hpp): rows Z_r and columns Z_c of normalised embeddings, S = alpha Z_r Z_c^T,
/// visited in tiles of row_block x column_tile (the only scratch beyond O((M + K) d): one tile):
/// - `pair_row_lse`: per tile one `cellkit::gemm`, then the tile's rows cut into chunks of
///   `lse_chunk` columns, each chunk's (max, sum of exponentials) by one functor call, and one call
///   per row merging its chunks in column order into the row's running log-sum-exp.
/// - `pair_gradient`: per tile the GEMM again, the coefficients w_a e^{S_ab - lse_a} by one call per
///   element, then d_rows += C Z_c and d_cols += C^T Z_r (two GEMMs; tiles in a fixed order).
/// The symmetric variants (Z_r = Z_c) compute every tile rather than half of them, as the
/// rectangular form needs no cross-tile scheduling. Every element and row sum has a fixed order and
/// no atomics are used, so device results are the same from run to run.

#include <cellkit/contrastive/detail/info_nce_variants.hpp>
#include <cellkit/contrastive/detail/portable_common.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/math_impl.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/gemm.hpp>

#include <algorithm>
#include <limits>
#include <optional>
#include <vector>

namespace cellkit::contrastive::detail {

/// Columns per partial log-sum-exp of a tile row.
inline constexpr index_t lse_chunk = 64;

namespace portable_math = ::cellkit::math::detail;

template <class T>
CELLKIT_HD inline T minus_infinity() {
  return -std::numeric_limits<T>::infinity();
}

/// Where the rows of a tile are in Z_r and its columns in Z_c, and whether the column b = a (the
/// anchor itself, when Z_r and Z_c are one matrix) is excluded.
struct tile_position {
  index_t r0, c0;
  bool exclude_self;
  CELLKIT_HD bool excluded(index_t i, index_t j) const { return exclude_self && r0 + i == c0 + j; }
};

/// (max, sum e^{s - max}) of chunk q of tile row i, the excluded column left out.
template <class T>
struct chunk_lse_fn {
  const T* tile;
  index_t ld, cols, chunks;
  tile_position at;
  T* chunk_max;
  T* chunk_sum;
  CELLKIT_HD void operator()(index_t e) const {
    const index_t i = e / chunks;
    const index_t q = e - i * chunks;
    const index_t first = q * lse_chunk;
    const index_t last = first + lse_chunk < cols ? first + lse_chunk : cols;
    const T* row = tile + i * ld;
    T m = minus_infinity<T>();
    for (index_t j = first; j < last; ++j)
      if (!at.excluded(i, j) && row[j] > m) m = row[j];
    T s = T(0);
    if (m > minus_infinity<T>()) {
      for (index_t j = first; j < last; ++j)
        if (!at.excluded(i, j)) s += portable_math::exp_(row[j] - m);
    }
    chunk_max[e] = m;
    chunk_sum[e] = s;
  }
};

/// Merges tile row i's chunks, in column order, into the running (max, sum) of row r0 + i.
template <class T>
struct merge_chunks_fn {
  const T* chunk_max;
  const T* chunk_sum;
  index_t chunks, r0;
  T* row_max;
  T* row_sum;
  CELLKIT_HD void operator()(index_t i) const {
    math::log_sum_exp_accumulator<T> acc{row_max[r0 + i], row_sum[r0 + i]};
    for (index_t q = 0; q < chunks; ++q) {
      const T m = chunk_max[i * chunks + q];
      if (m > minus_infinity<T>()) acc.merge({m, chunk_sum[i * chunks + q]});
    }
    row_max[r0 + i] = acc.max;
    row_sum[r0 + i] = acc.sum;
  }
};

/// lse[a] = the accumulated log-sum-exp of row a, plus e^{extra[a]} when extra is given.
template <class T>
struct finish_lse_fn {
  const T* row_max;
  const T* row_sum;
  const T* extra;
  T* lse;
  CELLKIT_HD void operator()(index_t a) const {
    math::log_sum_exp_accumulator<T> acc{row_max[a], row_sum[a]};
    if (extra != nullptr) acc.add(extra[a]);
    lse[a] = acc.value();
  }
};

/// lse[a] = log( sum over the non-excluded columns b of e^{alpha z_r,a . z_c,b} (+ e^{extra[a]}) ).
template <class Policy, class T, class Space>
void pair_row_lse(const Policy& policy, matrix_view<const T, Space> zr, matrix_view<const T, Space> zc, T alpha,
                  bool exclude_self, const T* extra, tile_shape shape, T* lse) {
  const index_t m = zr.rows();
  const index_t k = zc.rows();
  const index_t rb = std::min(shape.row_block, m);
  const index_t ct = std::max<index_t>(1, std::min(shape.column_tile, k));
  const index_t chunks_max = (ct + lse_chunk - 1) / lse_chunk;
  auto tile = make_scratch<T, Space>(rb * ct);
  auto part_max = make_scratch<T, Space>(rb * chunks_max);
  auto part_sum = make_scratch<T, Space>(rb * chunks_max);
  auto row_max = make_scratch<T, Space>(m);
  auto row_sum = make_scratch<T, Space>(m);
  for_each_index(policy, m, fill_fn<T>{row_max.data(), minus_infinity<T>()});
  for_each_index(policy, m, fill_fn<T>{row_sum.data(), T(0)});
  for (index_t r0 = 0; r0 < m; r0 += rb) {
    const index_t rn = std::min(rb, m - r0);
    for (index_t c0 = 0; c0 < k; c0 += ct) {
      const index_t cn = std::min(ct, k - c0);
      const index_t chunks = (cn + lse_chunk - 1) / lse_chunk;
      matrix_view<T, Space> s(tile.data(), rn, cn, ct);
      gemm(policy, zr.row_block(r0, rn), zc.row_block(c0, cn), s, gemm_params<T>{alpha, T(0), false, true});
      for_each_index(
          policy, rn * chunks,
          chunk_lse_fn<T>{tile.data(), ct, cn, chunks, {r0, c0, exclude_self}, part_max.data(), part_sum.data()});
      for_each_index(policy, rn,
                     merge_chunks_fn<T>{part_max.data(), part_sum.data(), chunks, r0, row_max.data(), row_sum.data()});
    }
  }
  for_each_index(policy, m, finish_lse_fn<T>{row_max.data(), row_sum.data(), extra, lse});
}

/// Tile element (i, j) becomes w_a e^{S_ab - lse_a} (0 for the excluded column).
template <class T>
struct softmax_coefficient_fn {
  T* tile;
  index_t ld, cols;
  tile_position at;
  const T* row_weight;
  const T* lse;
  CELLKIT_HD void operator()(index_t e) const {
    const index_t i = e / cols;
    const index_t j = e - i * cols;
    const index_t a = at.r0 + i;
    T& s = tile[i * ld + j];
    s = at.excluded(i, j) ? T(0) : row_weight[a] * portable_math::exp_(s - lse[a]);
  }
};

/// d_rows = C Z_c and d_cols = C^T Z_r (each when non-null, overwritten) with
/// C_ab = w_a e^{S_ab - lse_a} over the non-excluded pairs.
template <class Policy, class T, class Space>
void pair_gradient(const Policy& policy, matrix_view<const T, Space> zr, matrix_view<const T, Space> zc, T alpha,
                   bool exclude_self, const T* row_weight, const T* lse, tile_shape shape,
                   std::optional<matrix_view<T, Space>> d_rows, std::optional<matrix_view<T, Space>> d_cols) {
  const index_t m = zr.rows();
  const index_t k = zc.rows();
  const index_t d = zr.cols();
  if (k == 0 && d_rows) for_each_index(policy, m * d, fill_fn<T>{d_rows->data(), T(0)});
  if (k == 0 || (!d_rows && !d_cols)) return;
  const index_t rb = std::min(shape.row_block, m);
  const index_t ct = std::min(shape.column_tile, k);
  auto tile = make_scratch<T, Space>(rb * ct);
  for (index_t r0 = 0; r0 < m; r0 += rb) {
    const index_t rn = std::min(rb, m - r0);
    const auto rows = zr.row_block(r0, rn);
    for (index_t c0 = 0; c0 < k; c0 += ct) {
      const index_t cn = std::min(ct, k - c0);
      const auto cols = zc.row_block(c0, cn);
      matrix_view<T, Space> s(tile.data(), rn, cn, ct);
      gemm(policy, rows, cols, s, gemm_params<T>{alpha, T(0), false, true});
      for_each_index(policy, rn * cn,
                     softmax_coefficient_fn<T>{tile.data(), ct, cn, {r0, c0, exclude_self}, row_weight, lse});
      const matrix_view<const T, Space> coef(s);
      if (d_rows)
        gemm(policy, coef, cols, d_rows->row_block(r0, rn), gemm_params<T>{T(1), c0 == 0 ? T(0) : T(1), false, false});
      if (d_cols)
        gemm(policy, coef, rows, d_cols->row_block(c0, cn), gemm_params<T>{T(1), r0 == 0 ? T(0) : T(1), true, false});
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The positive pairs of the symmetric variants, as device-readable structures
// ---------------------------------------------------------------------------------------------

/// Who the positives of row a of Z (M rows) are:
/// - two views (M = 2N): the partner a +- N, weight 1;
/// - supervised: every other row of a's class c, weight 1 / (2 n_c - 1), through the class sums;
/// - graph: the out-edges (a, j, w) and, for the gradient, the in-edges (j, a, w).
template <class T>
struct positive_pairs {
  enum class kind { two_view, supervised, graph } type;
  index_t n = 0;  ///< samples per view (two views, supervised) or nodes (graph)
  index_t d = 0;
  // supervised
  const index_t* class_of = nullptr;    ///< per sample (N)
  const index_t* class_size = nullptr;  ///< 2 n_c - 1 per class
  const double* class_sum = nullptr;    ///< classes x d, sum of u over both views
  // graph: out-edges and in-edges in CSR form
  const index_t* out_ptr = nullptr;
  const index_t* out_idx = nullptr;
  const T* out_w = nullptr;
  const index_t* in_ptr = nullptr;
  const index_t* in_idx = nullptr;
  const T* in_w = nullptr;
};

/// row_loss[a] = w_a lse_a - alpha sum_b W_ab u_a . u_b (double).
template <class T>
struct positive_loss_fn {
  positive_pairs<T> pairs;
  const T* u;
  const T* row_weight;
  const T* lse;
  T alpha;
  double* row_loss;
  CELLKIT_HD void operator()(index_t a) const {
    const index_t d = pairs.d;
    const T* ua = u + a * d;
    double positive = 0;
    if (pairs.type == positive_pairs<T>::kind::two_view) {
      const T* ub = u + (a < pairs.n ? a + pairs.n : a - pairs.n) * d;
      for (index_t k = 0; k < d; ++k) positive += static_cast<double>(ua[k]) * static_cast<double>(ub[k]);
    } else if (pairs.type == positive_pairs<T>::kind::supervised) {
      const index_t c = pairs.class_of[a % pairs.n];
      const double* cs = pairs.class_sum + c * d;
      for (index_t k = 0; k < d; ++k) positive += static_cast<double>(ua[k]) * (cs[k] - static_cast<double>(ua[k]));
      positive /= static_cast<double>(pairs.class_size[c]);
    } else {
      for (index_t p = pairs.out_ptr[a]; p < pairs.out_ptr[a + 1]; ++p) {
        const T* ub = u + pairs.out_idx[p] * d;
        double dot = 0;
        for (index_t k = 0; k < d; ++k) dot += static_cast<double>(ua[k]) * static_cast<double>(ub[k]);
        positive += static_cast<double>(pairs.out_w[p]) * dot;
      }
    }
    row_loss[a] =
        static_cast<double>(row_weight[a]) * static_cast<double>(lse[a]) - static_cast<double>(alpha) * positive;
  }
};

/// g(a) = d_rows(a) + d_cols(a) - sum_b (W_ab + W_ba) u_b for rows [first, first + g.rows()) of Z,
/// into the gradient output (dL/du before the normalisation and the 1/(W tau) scale).
template <class T, class Space>
struct combine_symmetric_fn {
  positive_pairs<T> pairs;
  const T* u;
  const T* d_rows;
  const T* d_cols;
  index_t first;
  matrix_view<T, Space> g;
  CELLKIT_HD void operator()(index_t e) const {
    const index_t d = pairs.d;
    const index_t i = e / d;
    const index_t k = e - i * d;
    const index_t a = first + i;
    double positive = 0;
    if (pairs.type == positive_pairs<T>::kind::two_view) {
      positive = 2.0 * static_cast<double>(u[(a < pairs.n ? a + pairs.n : a - pairs.n) * d + k]);
    } else if (pairs.type == positive_pairs<T>::kind::supervised) {
      const index_t c = pairs.class_of[a % pairs.n];
      positive = 2.0 / static_cast<double>(pairs.class_size[c]) *
                 (pairs.class_sum[c * d + k] - static_cast<double>(u[a * d + k]));
    } else {
      for (index_t p = pairs.out_ptr[a]; p < pairs.out_ptr[a + 1]; ++p)
        positive += static_cast<double>(pairs.out_w[p]) * static_cast<double>(u[pairs.out_idx[p] * d + k]);
      for (index_t p = pairs.in_ptr[a]; p < pairs.in_ptr[a + 1]; ++p)
        positive += static_cast<double>(pairs.in_w[p]) * static_cast<double>(u[pairs.in_idx[p] * d + k]);
    }
    g(i, k) = (d_rows[a * d + k] + d_cols[a * d + k]) - static_cast<T>(positive);
  }
};

/// class_sum(c, k) = sum over the members of class c (rows of both views, in row order) of u(row, k).
template <class T>
struct class_sum_fn {
  const T* u;
  const index_t* member_ptr;
  const index_t* members;
  index_t d;
  double* class_sum;
  CELLKIT_HD void operator()(index_t e) const {
    const index_t c = e / d;
    const index_t k = e - c * d;
    double sum = 0;
    for (index_t p = member_ptr[c]; p < member_ptr[c + 1]; ++p) sum += static_cast<double>(u[members[p] * d + k]);
    class_sum[e] = sum;
  }
};

/// The symmetric variants (two views, supervised, graph) on Z = the normalised rows (M x d):
/// value, and the gradient rows into outputs[v] for the row ranges [first_v, first_v + rows_v).
/// `row_weight` (M, in Space) is w_a; `total_weight` = sum_a w_a.
template <class Policy, class T, class Space>
double portable_symmetric_info_nce(const Policy& policy, const portable_normalized_rows<T, Space>& z,
                                   const positive_pairs<T>& pairs, const T* row_weight, double total_weight,
                                   const std::vector<std::pair<index_t, std::optional<matrix_view<T, Space>>>>& outputs,
                                   const info_nce_options<T>& opt) {
  const index_t m = z.rows;
  const index_t d = z.cols;
  const T alpha = T(1) / opt.temperature;
  const auto u = z.view();
  auto lse = make_scratch<T, Space>(m);
  pair_row_lse(policy, u, u, alpha, true, static_cast<const T*>(nullptr), opt.tiles, lse.data());
  auto row_loss = make_scratch<double, Space>(m);
  for_each_index(policy, m, positive_loss_fn<T>{pairs, z.u.data(), row_weight, lse.data(), alpha, row_loss.data()});
  const double loss = portable_sum(policy, row_loss.data(), m) / total_weight;
  bool any = false;
  for (const auto& out : outputs) any |= out.second.has_value();
  if (!any) return loss;
  auto d_rows = make_scratch<T, Space>(m * d);
  auto d_cols = make_scratch<T, Space>(m * d);
  pair_gradient(policy, u, u, alpha, true, row_weight, lse.data(), opt.tiles,
                std::optional(matrix_view<T, Space>(d_rows.data(), m, d)),
                std::optional(matrix_view<T, Space>(d_cols.data(), m, d)));
  const T scale = static_cast<T>(static_cast<double>(alpha) / total_weight);
  for (const auto& [first, g] : outputs) {
    if (!g) continue;
    for_each_index(policy, g->rows() * d,
                   combine_symmetric_fn<T, Space>{pairs, z.u.data(), d_rows.data(), d_cols.data(), first, *g});
    portable_normalize_backward(policy, z, first, *g, scale);
  }
  synchronize(policy);  // the scratch is freed on return
  return loss;
}

/// Two-view InfoNCE (classes == nullptr) or SupCon, views in Space, classes on the host.
template <class Policy, class T, class Space>
double portable_two_view_info_nce(const Policy& policy, matrix_view<const T, Space> view_a,
                                  matrix_view<const T, Space> view_b, const class_layout* classes,
                                  std::optional<matrix_view<T, Space>> grad_a,
                                  std::optional<matrix_view<T, Space>> grad_b, const info_nce_options<T>& opt) {
  const index_t n = view_a.rows();
  const index_t d = view_a.cols();
  const index_t m = 2 * n;
  portable_normalized_rows<T, Space> z(m, d);
  portable_normalize_into(policy, view_a, opt.eps, z, 0);
  portable_normalize_into(policy, view_b, opt.eps, z, n);
  const auto ones = upload<Space>(policy, std::vector<T>(static_cast<std::size_t>(m), T(1)));
  positive_pairs<T> pairs{positive_pairs<T>::kind::two_view, n, d};
  // Supervised: class ids, 2 n_c - 1 per class, the member rows of each class (both views, in
  // row order) and the class sums of u.
  std::vector<index_t> member_ptr, members, class_size;
  auto class_of_d = make_scratch<index_t, Space>(0);
  auto class_size_d = make_scratch<index_t, Space>(0);
  auto member_ptr_d = make_scratch<index_t, Space>(0);
  auto members_d = make_scratch<index_t, Space>(0);
  auto class_sum = make_scratch<double, Space>(0);
  if (classes != nullptr) {
    const auto count = static_cast<index_t>(classes->count.size());
    member_ptr.assign(static_cast<std::size_t>(count) + 1, 0);
    for (index_t c = 0; c < count; ++c)
      member_ptr[static_cast<std::size_t>(c) + 1] =
          member_ptr[static_cast<std::size_t>(c)] + 2 * classes->count[static_cast<std::size_t>(c)];
    members.resize(static_cast<std::size_t>(m));
    std::vector<index_t> next(member_ptr.begin(), member_ptr.end() - 1);
    for (index_t a = 0; a < m; ++a)
      members[static_cast<std::size_t>(
          next[static_cast<std::size_t>(classes->id[static_cast<std::size_t>(a % n)])]++)] = a;
    for (index_t c : classes->count) class_size.push_back(2 * c - 1);
    class_of_d = upload<Space>(policy, classes->id);
    class_size_d = upload<Space>(policy, class_size);
    member_ptr_d = upload<Space>(policy, member_ptr);
    members_d = upload<Space>(policy, members);
    class_sum = make_scratch<double, Space>(count * d);
    for_each_index(policy, count * d,
                   class_sum_fn<T>{z.u.data(), member_ptr_d.data(), members_d.data(), d, class_sum.data()});
    pairs.type = positive_pairs<T>::kind::supervised;
    pairs.class_of = class_of_d.data();
    pairs.class_size = class_size_d.data();
    pairs.class_sum = class_sum.data();
  }
  return portable_symmetric_info_nce(policy, z, pairs, ones.data(), static_cast<double>(m),
                                     {{index_t(0), grad_a}, {n, grad_b}}, opt);
}

/// Graph InfoNCE, embeddings in Space, the edge lists (checked, weights summing to > 0) on the host.
template <class Policy, class T, class Space>
double portable_graph_info_nce(const Policy& policy, matrix_view<const T, Space> embeddings, const edge_list<T>& edges,
                               std::optional<matrix_view<T, Space>> grad, const info_nce_options<T>& opt) {
  const index_t n = embeddings.rows();
  const index_t d = embeddings.cols();
  portable_normalized_rows<T, Space> z(n, d);
  portable_normalize_into(policy, embeddings, opt.eps, z, 0);
  std::vector<T> row_weight(static_cast<std::size_t>(n));
  double total_weight = 0;
  for (index_t a = 0; a < n; ++a) {
    double w = 0;
    for (index_t p = edges.indptr[static_cast<std::size_t>(a)]; p < edges.indptr[static_cast<std::size_t>(a) + 1]; ++p)
      w += static_cast<double>(edges.weights[static_cast<std::size_t>(p)]);
    row_weight[static_cast<std::size_t>(a)] = static_cast<T>(w);
    total_weight += w;
  }
  const edge_list<T> incoming = transpose_edges(edges, n);
  const auto weight_d = upload<Space>(policy, row_weight);
  const auto out_ptr = upload<Space>(policy, edges.indptr);
  const auto out_idx = upload<Space>(policy, edges.indices);
  const auto out_w = upload<Space>(policy, edges.weights);
  const auto in_ptr = upload<Space>(policy, incoming.indptr);
  const auto in_idx = upload<Space>(policy, incoming.indices);
  const auto in_w = upload<Space>(policy, incoming.weights);
  positive_pairs<T> pairs{positive_pairs<T>::kind::graph, n, d};
  pairs.out_ptr = out_ptr.data();
  pairs.out_idx = out_idx.data();
  pairs.out_w = out_w.data();
  pairs.in_ptr = in_ptr.data();
  pairs.in_idx = in_idx.data();
  pairs.in_w = in_w.data();
  return portable_symmetric_info_nce(policy, z, pairs, weight_d.data(), total_weight, {{index_t(0), grad}}, opt);
}

// ---------------------------------------------------------------------------------------------
// External bank of negatives
// ---------------------------------------------------------------------------------------------

/// positive[i] = alpha u_q,i . u_k,i (accumulated in double).
template <class T>
struct bank_positive_fn {
  const T* uq;
  const T* uk;
  index_t d;
  T alpha;
  T* positive;
  CELLKIT_HD void operator()(index_t i) const {
    double dot = 0;
    for (index_t k = 0; k < d; ++k) dot += static_cast<double>(uq[i * d + k]) * static_cast<double>(uk[i * d + k]);
    positive[i] = static_cast<T>(dot * static_cast<double>(alpha));
  }
};

/// row_loss[i] = lse_i - positive_i.
template <class T>
struct bank_loss_fn {
  const T* lse;
  const T* positive;
  double* row_loss;
  CELLKIT_HD void operator()(index_t i) const {
    row_loss[i] = static_cast<double>(lse[i]) - static_cast<double>(positive[i]);
  }
};

/// Query gradient: g(i, k) = d_rows(i, k) + (e^{pos_i - lse_i} - 1) u_k(i, k) (d_rows null: keys'
/// gradient, g(i, k) = (e^{pos_i - lse_i} - 1) u_q(i, k)).
template <class T, class Space>
struct bank_positive_gradient_fn {
  const T* d_rows;
  const T* other;
  const T* positive;
  const T* lse;
  matrix_view<T, Space> g;
  CELLKIT_HD void operator()(index_t e) const {
    const index_t d = g.cols();
    const index_t i = e / d;
    const index_t k = e - i * d;
    const T coef =
        static_cast<T>(portable_math::expm1_(static_cast<double>(positive[i]) - static_cast<double>(lse[i])));
    g(i, k) = (d_rows != nullptr ? d_rows[e] : T(0)) + coef * other[e];
  }
};

template <class Policy, class T, class Space>
double portable_bank_info_nce(const Policy& policy, matrix_view<const T, Space> queries,
                              matrix_view<const T, Space> keys, matrix_view<const T, Space> bank,
                              std::optional<matrix_view<T, Space>> grad_queries,
                              std::optional<matrix_view<T, Space>> grad_keys,
                              std::optional<matrix_view<T, Space>> grad_bank, const info_nce_options<T>& opt) {
  const index_t n = queries.rows();
  const index_t d = queries.cols();
  const index_t nb = bank.rows();
  portable_normalized_rows<T, Space> z(2 * n + nb, d);
  portable_normalize_into(policy, queries, opt.eps, z, 0);
  portable_normalize_into(policy, keys, opt.eps, z, n);
  portable_normalize_into(policy, bank, opt.eps, z, 2 * n);
  const auto uq = z.row_block(0, n);
  const auto uk = z.row_block(n, n);
  const auto ub = z.row_block(2 * n, nb);
  const T alpha = T(1) / opt.temperature;
  auto positive = make_scratch<T, Space>(n);
  auto lse = make_scratch<T, Space>(n);
  for_each_index(policy, n, bank_positive_fn<T>{uq.data(), uk.data(), d, alpha, positive.data()});
  pair_row_lse(policy, uq, ub, alpha, false, static_cast<const T*>(positive.data()), opt.tiles, lse.data());
  auto row_loss = make_scratch<double, Space>(n);
  for_each_index(policy, n, bank_loss_fn<T>{lse.data(), positive.data(), row_loss.data()});
  const double loss = portable_sum(policy, row_loss.data(), n) / static_cast<double>(n);
  if (!grad_queries && !grad_keys && !grad_bank) return loss;

  const T scale = static_cast<T>(static_cast<double>(alpha) / static_cast<double>(n));
  const auto ones = upload<Space>(policy, std::vector<T>(static_cast<std::size_t>(n), T(1)));
  auto d_rows = make_scratch<T, Space>(grad_queries ? n * d : 0);
  std::optional<matrix_view<T, Space>> d_rows_view;
  if (grad_queries) d_rows_view = matrix_view<T, Space>(d_rows.data(), n, d);
  // The bank's gradient goes straight into its output (C^T U_q), then through the normalisation.
  pair_gradient(policy, uq, ub, alpha, false, ones.data(), lse.data(), opt.tiles, d_rows_view, grad_bank);
  if (grad_queries) {
    for_each_index(
        policy, n * d,
        bank_positive_gradient_fn<T, Space>{d_rows.data(), uk.data(), positive.data(), lse.data(), *grad_queries});
    portable_normalize_backward(policy, z, 0, *grad_queries, scale);
  }
  if (grad_keys) {
    for_each_index(policy, n * d,
                   bank_positive_gradient_fn<T, Space>{nullptr, uq.data(), positive.data(), lse.data(), *grad_keys});
    portable_normalize_backward(policy, z, n, *grad_keys, scale);
  }
  if (grad_bank) portable_normalize_backward(policy, z, 2 * n, *grad_bank, scale);
  synchronize(policy);  // the scratch is freed on return
  return loss;
}

}  // namespace cellkit::contrastive::detail
