#pragma once
/// @file
/// Implementation of cellkit/cluster/sinkhorn.hpp: the fused sweeps, the column fallback and the
/// drivers.
///
/// Layout: rows are cut into at most 64 fixed chunks (>= 16 rows each; the cut depends only on N).
/// A sweep gives every chunk to one thread, which walks its rows in order and adds each updated
/// row of the plan (or of K^T u) into the chunk's own partial column vector; partial vectors are
/// merged in chunk order in double. So results are bit-identical for every thread count.
///
/// Log-domain sweep, row i (x_ij = (g_j - s C_ij) / eps, s = +1 for costs, -1 for scores):
///   m_i = max_j x_ij;  e_ij = exp(x_ij - m_i) (in [0, 1], stored in a row buffer);  r_i = sum_j e_ij
///   f_i' = phi eps (log a_i - m_i - log r_i)            (phi = 1 balanced, tau / (tau + eps) unbalanced)
///   col_j += exp(f_i'/eps + m_i) e_ij                   (= the updated plan entry P'_ij; balanced: a_i e_ij / r_i)
/// One exp per entry. After the sweep, log sum_i exp((f_i' - s C_ij)/eps) = log col_j - g_j/eps,
/// unless col_j underflowed (a column far from every row's maximum, typical in the first
/// iterations at small eps): such columns are recomputed exactly with an online log-sum-exp over
/// the rows (`exact_column_lse`), so the log-domain solver never divides by a zero sum.
///
/// Kernel-domain sweep, row i: s_i = sum_j K_ij v_j; u_i = a_i / s_i (unbalanced: (a_i / s_i)^phi);
/// col_j += u_i K_ij. One pass over K per iteration; v_j = b_j / col_j afterwards.

#include <cellkit/cluster/common.hpp>
#include <cellkit/cluster/detail/parallel.hpp>
#include <cellkit/cluster/detail/simd_kernels.hpp>
#include <cellkit/cluster/detail/vector_math.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace cellkit::cluster::detail {

/// How a sweep cuts the rows: at most 64 chunks of >= 16 rows, sub-blocks of <= sub_rows rows.
struct sweep_layout {
  index_t n = 0;
  index_t m = 0;  ///< width of the partial column vectors (the padded row width for padded kernels)
  index_t chunk_rows = 1;
  index_t chunks = 0;
  index_t sub_rows = 1;

  index_t chunk_first(index_t c) const { return c * chunk_rows; }
  index_t chunk_last(index_t c) const { return std::min(n, (c + 1) * chunk_rows); }
};

inline sweep_layout make_sweep_layout(index_t n, index_t m, index_t max_sub_rows) {
  sweep_layout l;
  l.n = n;
  l.m = m;
  l.chunk_rows = std::max<index_t>(16, (n + 63) / 64);
  l.chunks = (n + l.chunk_rows - 1) / l.chunk_rows;
  l.sub_rows = std::max<index_t>(1, std::min(max_sub_rows, l.chunk_rows));
  return l;
}

/// A block of rows: row r at data + r * stride.
template <class T>
struct row_block_ref {
  const T* data;
  index_t stride;
};

/// Rows of a stored matrix (costs, scores or kernel), read in place.
template <class T>
struct stored_rows {
  matrix_view<const T> matrix;
  index_t padded = 0;  ///< > cols: rows are zero-padded to this width (our own kernel buffer)
  index_t rows() const { return matrix.rows(); }
  index_t cols() const { return matrix.cols(); }
  index_t loop_cols() const { return padded > matrix.cols() ? padded : matrix.cols(); }
  index_t scratch_rows() const { return 0; }
  index_t max_block_rows() const { return std::numeric_limits<index_t>::max() / 4; }
  row_block_ref<T> get(index_t first, index_t, T*) const { return {matrix.row_data(first), matrix.stride()}; }
};

enum class pairwise_kind { squared_euclidean, cosine, student_t };

/// Costs computed on the fly from embeddings x (N x d) and centres c (M x d), block by block with
/// a serial GEMM into per-thread scratch:
/// - squared_euclidean: max(||x||^2 + ||c||^2 - 2 x.c, 0)
/// - cosine: 1 - x.c / (||x|| ||c||)  (a zero vector has similarity 0, cost 1)
/// - student_t: (alpha + 1)/2 log1p(d / alpha), d the squared distance (minus the log Student-t kernel)
template <class T>
struct pairwise_rows {
  matrix_view<const T> x;
  matrix_view<const T> c;
  pairwise_kind kind = pairwise_kind::squared_euclidean;
  T alpha = T(1);
  std::vector<T> c_norm2;
  std::vector<T> c_inv_norm;

  pairwise_rows(matrix_view<const T> x_, matrix_view<const T> c_, pairwise_kind kind_, T alpha_)
      : x(x_), c(c_), kind(kind_), alpha(alpha_) {
    c_norm2.resize(static_cast<std::size_t>(c.rows()));
    c_inv_norm.resize(static_cast<std::size_t>(c.rows()));
    for (index_t j = 0; j < c.rows(); ++j) {
      const T* row = c.row_data(j);
      T s = T(0);
      for (index_t a = 0; a < c.cols(); ++a) s += row[a] * row[a];
      c_norm2[static_cast<std::size_t>(j)] = s;
      c_inv_norm[static_cast<std::size_t>(j)] = s > T(0) ? T(1) / std::sqrt(s) : T(0);
    }
  }
  index_t rows() const { return x.rows(); }
  index_t cols() const { return c.rows(); }
  index_t loop_cols() const { return c.rows(); }
  index_t max_block_rows() const { return std::clamp<index_t>(65536 / std::max<index_t>(1, c.rows()), 1, 256); }
  index_t scratch_rows() const { return max_block_rows(); }
  row_block_ref<T> get(index_t first, index_t count, T* scratch) const {
    const index_t m = c.rows();
    matrix_view<T> out(scratch, count, m);
    gemm(serial{}, x.row_block(first, count), c, out,
         gemm_params<T>{.alpha = kind == pairwise_kind::cosine ? T(1) : T(-2),
                        .beta = T(0),
                        .transpose_a = false,
                        .transpose_b = true});
    const T half_a1 = (alpha + T(1)) / T(2);
    const T inv_alpha = T(1) / alpha;
    for (index_t r = 0; r < count; ++r) {
      const T* xr = x.row_data(first + r);
      T xn = T(0);
      for (index_t a = 0; a < x.cols(); ++a) xn += xr[a] * xr[a];
      T* o = out.row_data(r);
      switch (kind) {
        case pairwise_kind::squared_euclidean:
          for (index_t j = 0; j < m; ++j) {
            const T v = xn + c_norm2[static_cast<std::size_t>(j)] + o[j];
            o[j] = v > T(0) ? v : T(0);
          }
          break;
        case pairwise_kind::cosine: {
          const T inv_x = xn > T(0) ? T(1) / std::sqrt(xn) : T(0);
          for (index_t j = 0; j < m; ++j) o[j] = T(1) - o[j] * inv_x * c_inv_norm[static_cast<std::size_t>(j)];
          break;
        }
        case pairwise_kind::student_t:
          for (index_t j = 0; j < m; ++j) {
            const T v = xn + c_norm2[static_cast<std::size_t>(j)] + o[j];
            o[j] = half_a1 * std::log1p((v > T(0) ? v : T(0)) * inv_alpha);
          }
          break;
      }
    }
    return {scratch, m};
  }
};

/// Kernel rows exp(coef * C_ij) of an on-the-fly cost source (kernel-domain solver without a
/// stored kernel: one exp per entry per sweep).
template <class T, class Rows>
struct kernel_rows {
  const Rows& costs;
  T coef;
  index_t rows() const { return costs.rows(); }
  index_t cols() const { return costs.cols(); }
  index_t loop_cols() const { return costs.loop_cols(); }
  index_t max_block_rows() const { return costs.max_block_rows(); }
  index_t scratch_rows() const { return costs.scratch_rows(); }
  row_block_ref<T> get(index_t first, index_t count, T* scratch) const {
    auto block = costs.get(first, count, scratch);  // on-the-fly sources write into scratch
    const index_t m = cols();
    for (index_t r = 0; r < count; ++r) {
      T* row = scratch + r * m;
      const T* in = block.data + r * block.stride;
      CELLKIT_CLUSTER_SIMD
      for (index_t j = 0; j < m; ++j) row[j] = exp_flush(in[j] * coef);
    }
    return {scratch, m};
  }
};

/// Per-solve buffers of the sweeps.
template <class T>
struct sweep_workspace {
  sweep_layout layout;
  std::vector<T> partials;                 // chunks x M
  std::vector<std::vector<T>> row_buffer;  // per thread, M
  std::vector<std::vector<T>> block;       // per thread, scratch_rows x M
  std::vector<T> shifted_g;                // M, g / eps in T

  template <class Rows>
  sweep_workspace(const Rows& rows, int threads) {
    layout = make_sweep_layout(rows.rows(), rows.loop_cols(), rows.max_block_rows());
    const index_t m = rows.loop_cols();
    partials.assign(static_cast<std::size_t>(layout.chunks * m), T(0));
    const int t = threads > 0 ? threads : 1;
    row_buffer.assign(static_cast<std::size_t>(t), std::vector<T>(static_cast<std::size_t>(m)));
    block.assign(static_cast<std::size_t>(t), std::vector<T>(static_cast<std::size_t>(rows.scratch_rows() * m)));
    shifted_g.assign(static_cast<std::size_t>(m), T(0));
  }
};

/// col[j] = sum over chunks of partials[c][j], in double, in chunk order.
template <class T>
void merge_partials(int threads, const sweep_workspace<T>& ws, double* col) {
  const index_t m = ws.layout.m;
  const index_t chunks = ws.layout.chunks;
  constexpr index_t column_block = 2048;
  const index_t blocks = (m + column_block - 1) / column_block;
  parallel_blocks(m >= 4 * column_block ? threads : 1, blocks, [&](int, index_t b) {
    const index_t j0 = b * column_block;
    const index_t j1 = std::min(m, j0 + column_block);
    for (index_t j = j0; j < j1; ++j) col[j] = 0.0;
    for (index_t c = 0; c < chunks; ++c) {
      const T* p = ws.partials.data() + c * m;
      CELLKIT_CLUSTER_SIMD
      for (index_t j = j0; j < j1; ++j) col[j] += static_cast<double>(p[j]);
    }
  });
}

/// One log-domain row sweep (see the file comment). For every row it stores a shift row_max[i]
/// (the maximum of x_ij = (g_j - s C_ij) / eps, or the previous iteration's shift `shift_hint[i]`
/// when that keeps the sum in range) and row_sum[i] = sum_j exp(x_ij - row_max[i]), so that
/// log sum_j exp(x_ij) = row_max[i] + log row_sum[i] (balanced: f_i = eps (log a_i - that), computed
/// only when needed, by `row_potentials`; no log or exp per row in the sweep). Unbalanced
/// (phi < 1) it also writes f_new. col receives the column sums of the updated plan. Rows with
/// log_a[i] = -inf carry no mass (row_sum = 0).
template <class T, class Rows>
void log_row_sweep(int threads, const Rows& rows, sweep_workspace<T>& ws, T coef, double eps, const double* log_a,
                   const T* a, double phi, const double* g, const T* shift_hint, T* row_max, T* row_sum, double* f_new,
                   double* col) {
  const index_t m = rows.cols();
  const double inv_eps = 1.0 / eps;
  for (index_t j = 0; j < m; ++j) ws.shifted_g[static_cast<std::size_t>(j)] = static_cast<T>(g[j] * inv_eps);
  const T* gs = ws.shifted_g.data();
  const sweep_layout& layout = ws.layout;
  const bool balanced = phi == 1.0;
  // A hinted shift is kept when the row sum stays in [hint_low, hint_high]: far from both
  // overflow and the range where flushed terms would matter.
  const T hint_low = sizeof(T) == 4 ? T(1e-25) : T(1e-250);
  const T hint_high = sizeof(T) == 4 ? T(1e25) : T(1e250);
  parallel_blocks(threads, layout.chunks, [&](int thread, index_t c) {
    T* CELLKIT_RESTRICT part = ws.partials.data() + c * layout.m;  // local pointers: see kernel_row_sweep
    const T* CELLKIT_RESTRICT gl = gs;
    const T cf = coef;
    std::fill(part, part + layout.m, T(0));
    T* CELLKIT_RESTRICT e = ws.row_buffer[static_cast<std::size_t>(thread)].data();
    T* scratch = ws.block[static_cast<std::size_t>(thread)].data();
    const index_t last = layout.chunk_last(c);
    for (index_t first = layout.chunk_first(c); first < last; first += layout.sub_rows) {
      const index_t count = std::min(layout.sub_rows, last - first);
      const auto block = rows.get(first, count, scratch);
      for (index_t r = 0; r < count; ++r) {
        const index_t i = first + r;
        if (log_a[i] == -std::numeric_limits<double>::infinity()) {
          row_max[i] = T(0);
          row_sum[i] = T(0);
          if (f_new) f_new[i] = -std::numeric_limits<double>::infinity();
          continue;
        }
        const T* CELLKIT_RESTRICT crow = block.data + r * block.stride;
        T mx = T(0);
        T s = T(0);
        bool shifted = false;
        if (shift_hint) {
          // The previous iteration's shift of this row: near convergence the terms stay O(1), so
          // the max pass is skipped; a sum that overflowed or underflowed is redone below.
          mx = shift_hint[i];
          CELLKIT_CLUSTER_SIMD_SUM(s)
          for (index_t j = 0; j < m; ++j) {
            const T v = exp_flush((crow[j] * cf + gl[j]) - mx);
            e[j] = v;
            s += v;
          }
          shifted = s >= hint_low && s <= hint_high;
        }
        if (!shifted) {
          mx = -std::numeric_limits<T>::infinity();
          CELLKIT_CLUSTER_SIMD_MAX(mx)
          for (index_t j = 0; j < m; ++j) {
            const T x = crow[j] * cf + gl[j];
            mx = x > mx ? x : mx;
          }
          s = T(0);
          CELLKIT_CLUSTER_SIMD_SUM(s)
          for (index_t j = 0; j < m; ++j) {
            const T v = exp_flush((crow[j] * cf + gl[j]) - mx);
            e[j] = v;
            s += v;
          }
        }
        row_max[i] = mx;
        row_sum[i] = s;
        T scale;
        if (balanced) {
          scale = a[i] / s;  // = exp(f_i / eps + mx) with f_i = eps (log a_i - mx - log s)
        } else {
          const double fi = phi * eps * (log_a[i] - static_cast<double>(mx) - std::log(static_cast<double>(s)));
          f_new[i] = fi;
          scale = static_cast<T>(std::exp(fi * inv_eps + static_cast<double>(mx)));
        }
        CELLKIT_CLUSTER_SIMD
        for (index_t j = 0; j < m; ++j) part[j] += scale * e[j];
      }
    }
  });
  merge_partials(threads, ws, col);
}

/// Balanced row potentials from a sweep's row state: f_i = eps (log a_i - row_max_i - log row_sum_i)
/// (-inf for empty rows).
template <class T>
void row_potentials(index_t n, const double* log_a, const T* row_max, const T* row_sum, double eps, double* f) {
  for (index_t i = 0; i < n; ++i) {
    f[i] = log_a[i] == -std::numeric_limits<double>::infinity()
               ? log_a[i]
               : eps * (log_a[i] - static_cast<double>(row_max[i]) - std::log(static_cast<double>(row_sum[i])));
  }
}

/// lse[t] = log sum_i exp(f_i / eps + coef C_{i, columns[t]}) for the listed columns, exactly
/// (online log-sum-exp per chunk, merged in chunk order).
template <class T, class Rows>
void exact_column_lse(int threads, const Rows& rows, sweep_workspace<T>& ws, T coef, double eps, const double* f,
                      const std::vector<index_t>& columns, double* lse) {
  const auto nc = static_cast<index_t>(columns.size());
  const sweep_layout& layout = ws.layout;
  std::vector<math::log_sum_exp_accumulator<double>> acc(static_cast<std::size_t>(layout.chunks * nc));
  const double inv_eps = 1.0 / eps;
  parallel_blocks(threads, layout.chunks, [&](int thread, index_t c) {
    math::log_sum_exp_accumulator<double>* a = acc.data() + c * nc;
    T* scratch = ws.block[static_cast<std::size_t>(thread)].data();
    const index_t last = layout.chunk_last(c);
    for (index_t first = layout.chunk_first(c); first < last; first += layout.sub_rows) {
      const index_t count = std::min(layout.sub_rows, last - first);
      const auto block = rows.get(first, count, scratch);
      for (index_t r = 0; r < count; ++r) {
        const double fi = f[first + r];
        if (fi == -std::numeric_limits<double>::infinity()) continue;
        const T* crow = block.data + r * block.stride;
        const double shift = fi * inv_eps;
        for (index_t t = 0; t < nc; ++t)
          a[t].add(shift + static_cast<double>(coef) * static_cast<double>(crow[columns[static_cast<std::size_t>(t)]]));
      }
    }
  });
  for (index_t t = 0; t < nc; ++t) {
    math::log_sum_exp_accumulator<double> total;
    for (index_t c = 0; c < layout.chunks; ++c) total.merge(acc[static_cast<std::size_t>(c * nc + t)]);
    lse[t] = total.value();
  }
}

/// From the merged column sums of a log-domain sweep: lse_col[j] = log sum_i exp((f_i - s C_ij)/eps),
/// with the exact fallback for columns whose sum is too small to be trusted. `row_f()` returns the
/// new row potentials (only called when a column needs the fallback).
template <class T, class Rows, class RowF>
void column_log_sums(int threads, const Rows& rows, sweep_workspace<T>& ws, T coef, double eps, RowF&& row_f,
                     const double* g, const double* col, double total_mass, double* lse_col) {
  const index_t m = rows.cols();
  // Each flushed term is below the smallest normal of T times a_i, so they sum to at most
  // total_mass * tiny; a column sum above `trusted` is exact to ~1e-8 relative or better.
  const double tiny = static_cast<double>(std::numeric_limits<T>::min());
  const double trusted = total_mass * tiny * (sizeof(T) == 4 ? 1e8 : 1e16);
  std::vector<index_t> bad;
  const double inv_eps = 1.0 / eps;
  for (index_t j = 0; j < m; ++j) {
    if (g[j] == -std::numeric_limits<double>::infinity()) {
      lse_col[j] = -std::numeric_limits<double>::infinity();  // empty column: no mass, stays empty
    } else if (col[j] >= trusted && std::isfinite(col[j])) {
      lse_col[j] = std::log(col[j]) - g[j] * inv_eps;
    } else {
      bad.push_back(j);
    }
  }
  if (!bad.empty()) {
    std::vector<double> exact(bad.size());
    exact_column_lse(threads, rows, ws, coef, eps, row_f(), bad, exact.data());
    for (std::size_t t = 0; t < bad.size(); ++t) lse_col[bad[t]] = exact[t];
  }
}

/// One kernel-domain sweep: u_new_i = a_i / (K_i. v) (unbalanced: to the power phi), col = K^T u_new.
/// Returns false if a row with a_i > 0 had K_i. v = 0 or produced a non-finite u.
template <class T, class Rows>
bool kernel_row_sweep(int threads, const Rows& rows, sweep_workspace<T>& ws, const T* a, double phi, const T* v,
                      T* u_new, double* col) {
  const sweep_layout& layout = ws.layout;
  const index_t m = layout.m;  // padded width: v and the padding of K are 0 there
  std::vector<char> ok(static_cast<std::size_t>(layout.chunks), 1);
  const bool balanced = phi == 1.0;
  parallel_blocks(threads, layout.chunks, [&](int thread, index_t c) {
    // Local copies: through the lambda's by-reference captures GCC re-loads the pointers (and
    // vectorises the loads of v as gathers).
    T* CELLKIT_RESTRICT part = ws.partials.data() + c * m;
    const T* CELLKIT_RESTRICT vl = v;
    const T* al = a;
    T* ul = u_new;
    std::fill(part, part + m, T(0));
    T* scratch = ws.block[static_cast<std::size_t>(thread)].data();
    const index_t last = layout.chunk_last(c);
    bool chunk_ok = true;
    for (index_t first = layout.chunk_first(c); first < last; first += layout.sub_rows) {
      const index_t count = std::min(layout.sub_rows, last - first);
      const auto block = rows.get(first, count, scratch);
      for (index_t r = 0; r < count; ++r) {
        const index_t i = first + r;
        const T* CELLKIT_RESTRICT krow = block.data + r * block.stride;
        T s = T(0);
        CELLKIT_CLUSTER_SIMD_SUM(s)
        for (index_t j = 0; j < m; ++j) s += krow[j] * vl[j];
        T u = T(0);
        if (al[i] > T(0)) {
          u = balanced ? al[i] / s : static_cast<T>(std::pow(static_cast<double>(al[i]) / static_cast<double>(s), phi));
          chunk_ok &= s > T(0) && std::isfinite(u);
        }
        ul[i] = u;
        CELLKIT_CLUSTER_SIMD
        for (index_t j = 0; j < m; ++j) part[j] += u * krow[j];
      }
    }
    ok[static_cast<std::size_t>(c)] = chunk_ok ? 1 : 0;
  });
  merge_partials(threads, ws, col);
  return std::all_of(ok.begin(), ok.end(), [](char x) { return x != 0; });
}

/// A small-M matrix (the kernel K, or the costs C for the log domain; N x M, M <= 64) stored a
/// second time in row tiles for the tiled sweeps: tile t holds rows [t L, t L + L) as M x L
/// (column-major within the tile), L = one SIMD vector of T, rows beyond N zero; `a` is the row
/// marginal in the same lanes (zero beyond N, so padding rows are dead lanes). With M = 20 a
/// row-by-row sweep is bound by horizontal sums (K_i. v; a row's max and sum of exps), by the
/// dependency through the row's result and, in the log domain, by the epilogue for the M mod L
/// leftover entries of every row; across rows all of it is plain vector work.
template <class T>
struct row_tiles {
  static constexpr index_t lanes = 64 / static_cast<index_t>(sizeof(T));
  static constexpr index_t max_cols = 64;
  index_t n = 0, m = 0, tiles = 0;
  std::vector<T> data;  // tiles x m x lanes
  std::vector<T> a;     // tiles x lanes: the row marginal, zero beyond N

  static bool worthwhile(index_t cols) { return CELLKIT_CLUSTER_VECTOR_EXTENSIONS && cols <= max_cols; }

  row_tiles(const T* matrix, index_t rows, index_t cols, index_t stride, const T* marginal)
      : n(rows), m(cols), tiles((rows + lanes - 1) / lanes) {
    data.assign(static_cast<std::size_t>(tiles * m * lanes), T(0));
    a.assign(static_cast<std::size_t>(tiles * lanes), T(0));
    for (index_t i = 0; i < n; ++i) {
      T* tile = data.data() + (i / lanes) * m * lanes + i % lanes;
      for (index_t j = 0; j < m; ++j) tile[j * lanes] = matrix[i * stride + j];
      a[static_cast<std::size_t>(i)] = marginal[i];
    }
  }

  /// Chunks of whole tiles, as close to `layout`'s row chunks as tiles allow: at most
  /// layout.chunks, a function of the shape only (so results do not depend on threads).
  index_t tiles_per_chunk(const sweep_layout& layout) const { return (layout.chunk_rows + lanes - 1) / lanes; }
  index_t chunks(const sweep_layout& layout) const {
    return (tiles + tiles_per_chunk(layout) - 1) / tiles_per_chunk(layout);
  }
};

#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
/// `kernel_row_sweep` (balanced or unbalanced) over the kernel in `row_tiles`: the same u_new and
/// column sums (to rounding: other summation order), vectorised across rows. Chunks are whole tiles;
/// their column partials are summed lane by lane in a fixed order, so results do not depend on threads.
template <class T>
bool tiled_kernel_row_sweep(int threads, const row_tiles<T>& k, sweep_workspace<T>& ws, double phi, const T* v,
                            T* u_new, double* col) {
  using vec = typename simd_vector<T>::type;
  constexpr index_t lanes = row_tiles<T>::lanes;
  const index_t m = k.m;
  const index_t mp = ws.layout.m;
  const index_t tiles_per_chunk = k.tiles_per_chunk(ws.layout);
  const index_t chunks = k.chunks(ws.layout);
  const bool balanced = phi == 1.0;
  std::vector<char> ok(static_cast<std::size_t>(chunks), 1);
  if (ws.row_buffer[0].size() < static_cast<std::size_t>(m * lanes))
    for (auto& buffer : ws.row_buffer) buffer.resize(static_cast<std::size_t>(m * lanes));
  parallel_blocks(threads, chunks, [&](int thread, index_t c) {
    T* acc = ws.row_buffer[static_cast<std::size_t>(thread)].data();  // m vectors of column partials
    std::fill(acc, acc + m * lanes, T(0));
    vec bad = {};
    const index_t t_last = std::min(k.tiles, (c + 1) * tiles_per_chunk);
    for (index_t t = c * tiles_per_chunk; t < t_last; ++t) {
      const T* tile = k.data.data() + t * m * lanes;
      vec s = {};
      for (index_t j = 0; j < m; ++j) {
        vec kj;
        std::memcpy(&kj, tile + j * lanes, sizeof(vec));
        s += kj * v[j];
      }
      vec a;
      std::memcpy(&a, k.a.data() + t * lanes, sizeof(vec));
      const vec zero = {};
      const auto live = a > zero;
      const vec safe_s = live ? s : zero + T(1);
      vec u = live ? a / safe_s : zero;
      if (!balanced) {
        T lane_u[lanes], lane_a[lanes], lane_s[lanes];
        std::memcpy(lane_a, &a, sizeof(vec));
        std::memcpy(lane_s, &s, sizeof(vec));
        for (index_t l = 0; l < lanes; ++l)
          lane_u[l] =
              lane_a[l] > T(0)
                  ? static_cast<T>(std::pow(static_cast<double>(lane_a[l]) / static_cast<double>(lane_s[l]), phi))
                  : T(0);
        std::memcpy(&u, lane_u, sizeof(vec));
      }
      // A live row needs s > 0 and a finite u (u - u is 0 only for finite u).
      const auto fine = (s > zero) & ((u - u) == zero);
      bad += live & ~fine ? zero + T(1) : zero;
      const index_t first = t * lanes;
      T lane_u[lanes];
      std::memcpy(lane_u, &u, sizeof(vec));
      const index_t count = std::min(lanes, k.n - first);
      for (index_t l = 0; l < count; ++l) u_new[first + l] = lane_u[l];
      for (index_t j = 0; j < m; ++j) {
        vec kj, aj;
        std::memcpy(&kj, tile + j * lanes, sizeof(vec));
        std::memcpy(&aj, acc + j * lanes, sizeof(vec));
        aj += u * kj;
        std::memcpy(acc + j * lanes, &aj, sizeof(vec));
      }
    }
    T* part = ws.partials.data() + c * mp;
    for (index_t j = 0; j < mp; ++j) {
      T sum = T(0);
      if (j < m)
        for (index_t l = 0; l < lanes; ++l) sum += acc[j * lanes + l];
      part[j] = sum;
    }
    T lane_bad[lanes];
    std::memcpy(lane_bad, &bad, sizeof(vec));
    for (index_t l = 0; l < lanes; ++l)
      if (lane_bad[l] != T(0)) ok[static_cast<std::size_t>(c)] = 0;
  });
  std::fill(ws.partials.begin() + chunks * mp, ws.partials.end(), T(0));
  merge_partials(threads, ws, col);
  return std::all_of(ok.begin(), ok.end(), [](char x) { return x != 0; });
}

/// `log_row_sweep` over the costs in `row_tiles` (M <= 64), vectorised across the rows of a tile:
/// per column one vector of x_ij = (g_j - s C_ij) / eps for L rows, so the row maximum and the row
/// sum are lane-wise max / add, every exp is a full-width vector exp, and the updated plan rows are
/// added to per-lane column accumulators (summed lane by lane in a fixed order at the end of the
/// chunk; chunks are whole tiles, so the bits do not depend on threads). The shift is always the
/// row's true maximum (the max pass is two vector operations per entry, the exp about 25, so the
/// previous iteration's shift is not worth reusing here). Writes the same row state as
/// `log_row_sweep` and returns whether every live row's state is finite.
template <class T>
bool tiled_log_row_sweep(int threads, const row_tiles<T>& c, sweep_workspace<T>& ws, T coef, double eps,
                         const double* log_a, double phi, const double* g, T* row_max, T* row_sum, double* f_new,
                         double* col) {
  using vec = typename simd_vector<T>::type;
  constexpr index_t lanes = row_tiles<T>::lanes;
  const index_t m = c.m;
  const index_t mp = ws.layout.m;
  const double inv_eps = 1.0 / eps;
  for (index_t j = 0; j < m; ++j) ws.shifted_g[static_cast<std::size_t>(j)] = static_cast<T>(g[j] * inv_eps);
  const index_t tiles_per_chunk = c.tiles_per_chunk(ws.layout);
  const index_t chunks = c.chunks(ws.layout);
  const bool balanced = phi == 1.0;
  std::vector<char> ok(static_cast<std::size_t>(chunks), 1);
  // Per thread: m vectors of column accumulators, then m vectors of the tile's exps.
  if (ws.row_buffer[0].size() < static_cast<std::size_t>(2 * m * lanes))
    for (auto& buffer : ws.row_buffer) buffer.resize(static_cast<std::size_t>(2 * m * lanes));
  parallel_blocks(threads, chunks, [&](int thread, index_t ch) {
    T* acc = ws.row_buffer[static_cast<std::size_t>(thread)].data();
    T* e = acc + m * lanes;
    const T* gs = ws.shifted_g.data();  // local copies: see kernel_row_sweep
    const T cf = coef;
    std::fill(acc, acc + m * lanes, T(0));
    const vec zero = {};
    vec bad = {};
    const index_t t_last = std::min(c.tiles, (ch + 1) * tiles_per_chunk);
    for (index_t t = ch * tiles_per_chunk; t < t_last; ++t) {
      const T* tile = c.data.data() + t * m * lanes;
      vec mx = zero - std::numeric_limits<T>::infinity();
      for (index_t j = 0; j < m; ++j) {
        vec cj;
        std::memcpy(&cj, tile + j * lanes, sizeof(vec));
        const vec x = cj * cf + gs[j];
        mx = x > mx ? x : mx;
      }
      vec s = {};
      for (index_t j = 0; j < m; ++j) {
        vec cj;
        std::memcpy(&cj, tile + j * lanes, sizeof(vec));
        vec v = (cj * cf + gs[j]) - mx;
        exp_flush_in_place(v);
        std::memcpy(e + j * lanes, &v, sizeof(vec));
        s += v;
      }
      vec a;
      std::memcpy(&a, c.a.data() + t * lanes, sizeof(vec));
      const auto live = a > zero;  // rows with a_i = 0 (and padding rows) carry no mass
      // A live row needs a finite shift and a finite sum > 0 (x - x is 0 only for finite x).
      const auto fine = ((mx - mx) == zero) & ((s - s) == zero) & (s > zero);
      bad += live & ~fine ? zero + T(1) : zero;
      vec scale;
      const index_t first = t * lanes;
      const index_t count = std::min(lanes, c.n - first);
      T lane_mx[lanes], lane_s[lanes];
      std::memcpy(lane_mx, &mx, sizeof(vec));
      std::memcpy(lane_s, &s, sizeof(vec));
      if (balanced) {
        scale = live ? a / (live ? s : zero + T(1)) : zero;  // = exp(f_i / eps + mx_i), as log_row_sweep
      } else {
        T lane_scale[lanes] = {};
        for (index_t l = 0; l < count; ++l) {
          const index_t i = first + l;
          if (log_a[i] == -std::numeric_limits<double>::infinity()) {
            f_new[i] = log_a[i];
            continue;
          }
          const double fi =
              phi * eps * (log_a[i] - static_cast<double>(lane_mx[l]) - std::log(static_cast<double>(lane_s[l])));
          f_new[i] = fi;
          lane_scale[l] = static_cast<T>(std::exp(fi * inv_eps + static_cast<double>(lane_mx[l])));
          if (!std::isfinite(fi)) ok[static_cast<std::size_t>(ch)] = 0;
        }
        std::memcpy(&scale, lane_scale, sizeof(vec));
      }
      for (index_t l = 0; l < count; ++l) {
        const bool dead = log_a[first + l] == -std::numeric_limits<double>::infinity();
        row_max[first + l] = dead ? T(0) : lane_mx[l];
        row_sum[first + l] = dead ? T(0) : lane_s[l];
      }
      for (index_t j = 0; j < m; ++j) {
        vec ej, aj;
        std::memcpy(&ej, e + j * lanes, sizeof(vec));
        std::memcpy(&aj, acc + j * lanes, sizeof(vec));
        aj += scale * ej;
        std::memcpy(acc + j * lanes, &aj, sizeof(vec));
      }
    }
    T* part = ws.partials.data() + ch * mp;
    for (index_t j = 0; j < mp; ++j) {
      T sum = T(0);
      if (j < m)
        for (index_t l = 0; l < lanes; ++l) sum += acc[j * lanes + l];
      part[j] = sum;
    }
    T lane_bad[lanes];
    std::memcpy(lane_bad, &bad, sizeof(vec));
    for (index_t l = 0; l < lanes; ++l)
      if (lane_bad[l] != T(0)) ok[static_cast<std::size_t>(ch)] = 0;
  });
  std::fill(ws.partials.begin() + chunks * mp, ws.partials.end(), T(0));
  merge_partials(threads, ws, col);
  return std::all_of(ok.begin(), ok.end(), [](char x) { return x != 0; });
}
#endif

/// The plan P_ij = exp((f_i + g_j - s C_ij) / eps) and / or the row argmax of (g_j - s C_ij),
/// the lowest j on ties.
template <class T, class Rows>
void log_plan_and_assignment(int threads, const Rows& rows, sweep_workspace<T>& ws, T coef, double eps, const double* f,
                             const double* g, T* plan, index_t plan_stride, index_t* assignment) {
  const index_t m = rows.cols();
  const double inv_eps = 1.0 / eps;
  for (index_t j = 0; j < m; ++j) ws.shifted_g[static_cast<std::size_t>(j)] = static_cast<T>(g[j] * inv_eps);
  const T* gs = ws.shifted_g.data();
  const sweep_layout& layout = ws.layout;
  parallel_blocks(threads, layout.chunks, [&](int thread, index_t c) {
    T* scratch = ws.block[static_cast<std::size_t>(thread)].data();
    const index_t last = layout.chunk_last(c);
    for (index_t first = layout.chunk_first(c); first < last; first += layout.sub_rows) {
      const index_t count = std::min(layout.sub_rows, last - first);
      const auto block = rows.get(first, count, scratch);
      for (index_t r = 0; r < count; ++r) {
        const index_t i = first + r;
        const T* crow = block.data + r * block.stride;
        if (plan) {
          T* out = plan + i * plan_stride;
          const double fi = f[i] * inv_eps;
          if (fi == -std::numeric_limits<double>::infinity()) {
            std::fill(out, out + m, T(0));
          } else {
            // x = f_i/eps + g_j/eps + coef C_ij, with the large parts combined in double first
            for (index_t j = 0; j < m; ++j) {
              const double x = (fi + g[j] * inv_eps) + static_cast<double>(coef) * static_cast<double>(crow[j]);
              out[j] = static_cast<T>(std::exp(x));
            }
          }
        }
        if (assignment) {
          index_t best = 0;
          T value = crow[0] * coef + gs[0];
          for (index_t j = 1; j < m; ++j) {
            const T x = crow[j] * coef + gs[j];
            if (x > value) {
              value = x;
              best = j;
            }
          }
          assignment[i] = best;
        }
      }
    }
  });
}

/// out_i = softmax_j(coef C_ij + g_j / eps) for every row (rows sum to 1).
template <class T, class Rows>
void row_softmax(int threads, const Rows& rows, sweep_workspace<T>& ws, T coef, double eps, const double* g, T* out,
                 index_t out_stride) {
  const index_t m = rows.cols();
  for (index_t j = 0; j < m; ++j) ws.shifted_g[static_cast<std::size_t>(j)] = static_cast<T>(g[j] / eps);
  const T* gs = ws.shifted_g.data();
  const sweep_layout& layout = ws.layout;
  parallel_blocks(threads, layout.chunks, [&](int thread, index_t c) {
    T* scratch = ws.block[static_cast<std::size_t>(thread)].data();
    const index_t last = layout.chunk_last(c);
    for (index_t first = layout.chunk_first(c); first < last; first += layout.sub_rows) {
      const index_t count = std::min(layout.sub_rows, last - first);
      const auto block = rows.get(first, count, scratch);
      for (index_t r = 0; r < count; ++r) {
        const T* crow = block.data + r * block.stride;
        T* o = out + (first + r) * out_stride;
        T mx = -std::numeric_limits<T>::infinity();
        for (index_t j = 0; j < m; ++j) {
          const T x = crow[j] * coef + gs[j];
          mx = x > mx ? x : mx;
        }
        double s = 0.0;
        for (index_t j = 0; j < m; ++j) {
          const double e = std::exp(static_cast<double>(crow[j] * coef + gs[j]) - static_cast<double>(mx));
          o[j] = static_cast<T>(e);
          s += e;
        }
        const double inv = 1.0 / s;
        for (index_t j = 0; j < m; ++j) o[j] = static_cast<T>(static_cast<double>(o[j]) * inv);
      }
    }
  });
}

}  // namespace cellkit::cluster::detail
