#pragma once
/// @file
/// Host loops and dense products whose results do not depend on the thread count (internal; used
/// by the graph layers and the nn blocks).
///
/// `cellkit::gemm` under openmp{n} is bit-identical only for a fixed n (the BLAS blocking depends on
/// it). Callers that promise the same bits for serial, openmp{1} and openmp{2} cut their dense
/// products here into fixed blocks (sizes that depend on the shapes only), each computed by a
/// serial gemm, with partial sums of reductions added in block order.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/detail/host_parallel.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <type_traits>

namespace cellkit::detail {

/// Rows of C per serial gemm call in `blocked_gemm`.
inline constexpr index_t gemm_block_rows = 256;
/// Rows per partial product in reductions over rows (`blocked_gemm_tn`, `blocked_column_sums`).
inline constexpr index_t reduction_block_rows = 2048;
/// At most this many partials (larger inputs use proportionally larger blocks), bounding the scratch.
inline constexpr index_t max_reduction_blocks = 64;

/// Rows per block of a reduction over n rows: a multiple of reduction_block_rows, a function of n only.
inline index_t reduction_rows_per_block(index_t n) {
  const index_t base = reduction_block_rows;
  const index_t blocks = (n + base - 1) / base;
  if (blocks <= max_reduction_blocks) return base;
  const index_t per = (blocks + max_reduction_blocks - 1) / max_reduction_blocks;
  return per * base;
}

/// Columns [first, first + count) of x as a strided view (no copy).
template <class T>
matrix_view<T> column_block(matrix_view<T> x, index_t first, index_t count) {
  if (x.data() == nullptr) return matrix_view<T>(nullptr, x.rows(), count, x.stride());
  return matrix_view<T>(x.data() + first, x.rows(), count, x.stride());
}

/// Columns of C per serial gemm tile: wide outputs (a decoder's 256 -> 2000 genes, a weight
/// gradient 2000 x 256) are cut into column tiles as well, so a mini-batch of a few hundred rows
/// still gives every thread work.
inline constexpr index_t gemm_block_cols = 256;

inline index_t block_count(index_t n, index_t block) { return (n + block - 1) / block; }

/// C = alpha * A * op(B) + beta * C with A m x k (not transposed). C is cut into tiles of
/// gemm_block_rows x gemm_block_cols, each a serial gemm: bits independent of the thread count.
template <class Policy, class T>
void blocked_gemm(const Policy& policy, matrix_view<const T> a, matrix_view<const T> b, matrix_view<T> c, T alpha,
                  T beta, bool transpose_b = false) {
  const index_t m = a.rows();
  const index_t n = c.cols();
  const index_t row_blocks = block_count(m, gemm_block_rows);
  const index_t col_blocks = std::max<index_t>(1, block_count(n, gemm_block_cols));
  parallel_for(policy, row_blocks * col_blocks, [&](index_t tile) {
    const index_t first = (tile / col_blocks) * gemm_block_rows;
    const index_t count = std::min(gemm_block_rows, m - first);
    const index_t col_first = (tile % col_blocks) * gemm_block_cols;
    const index_t col_count = std::min(gemm_block_cols, n - col_first);
    auto b_tile = transpose_b ? b.row_block(col_first, col_count) : column_block(b, col_first, col_count);
    gemm(serial{}, a.row_block(first, count), b_tile, column_block(c.row_block(first, count), col_first, col_count),
         gemm_params<T>{.alpha = alpha, .beta = beta, .transpose_a = false, .transpose_b = transpose_b});
  });
}

/// C = alpha * A^T * B + beta * C with A n x m, B n x p (a reduction over the n rows). C is cut
/// into gemm_block_rows x gemm_block_cols tiles; the n rows into fixed reduction blocks whose
/// partials (serial gemm each) are added in block order.
template <class Policy, class T>
void blocked_gemm_tn(const Policy& policy, matrix_view<const T> a, matrix_view<const T> b, matrix_view<T> c, T alpha,
                     T beta) {
  const index_t n = a.rows();
  const index_t m = a.cols();
  const index_t p = b.cols();
  const index_t per = reduction_rows_per_block(n);
  const index_t blocks = std::max<index_t>(1, block_count(n, per));
  const index_t row_tiles = std::max<index_t>(1, block_count(m, gemm_block_rows));
  const index_t col_tiles = std::max<index_t>(1, block_count(p, gemm_block_cols));
  const index_t tiles = row_tiles * col_tiles;
  // The tile of C (or of a partial) that work item t covers.
  auto tile_of = [&](matrix_view<T> target, index_t t, index_t& i0, index_t& mi, index_t& j0, index_t& pj) {
    i0 = (t / col_tiles) * gemm_block_rows;
    mi = std::min(gemm_block_rows, m - i0);
    j0 = (t % col_tiles) * gemm_block_cols;
    pj = std::min(gemm_block_cols, p - j0);
    return column_block(target.row_block(i0, mi), j0, pj);
  };
  if (blocks <= 1) {
    parallel_for(policy, tiles, [&](index_t t) {
      index_t i0, mi, j0, pj;
      auto c_tile = tile_of(c, t, i0, mi, j0, pj);
      gemm(serial{}, column_block(a, i0, mi), column_block(b, j0, pj), c_tile,
           gemm_params<T>{.alpha = alpha, .beta = beta, .transpose_a = true});
    });
    return;
  }
  host_buffer<T> partial(blocks * m * p, uninitialized);
  parallel_for(
      policy, blocks * tiles,
      [&](index_t item) {
        const index_t blk = item / tiles;
        const index_t first = blk * per;
        const index_t count = std::min(per, n - first);
        index_t i0, mi, j0, pj;
        auto p_tile = tile_of(matrix_view<T>(partial.data() + blk * m * p, m, p), item % tiles, i0, mi, j0, pj);
        gemm(serial{}, column_block(a.row_block(first, count), i0, mi), column_block(b.row_block(first, count), j0, pj),
             p_tile, gemm_params<T>{.transpose_a = true});
      },
      true);
  // Element-wise ordered sum of the partials, parallel over rows of C.
  parallel_for(policy, m, [&](index_t i) {
    T* out = c.row_data(i);
    for (index_t j = 0; j < p; ++j) {
      T s = partial[i * p + j];
      for (index_t blk = 1; blk < blocks; ++blk) s += partial[blk * m * p + i * p + j];
      out[j] = beta == T(0) ? alpha * s : alpha * s + beta * out[j];
    }
  });
}

/// out[j] = alpha * sum_i x(i, j) + beta * out[j], summed over fixed row blocks in block order.
template <class Policy, class T>
void blocked_column_sums(const Policy& policy, matrix_view<const T> x, vector_view<T> out, T alpha, T beta) {
  const index_t n = x.rows();
  const index_t p = x.cols();
  const index_t per = reduction_rows_per_block(n);
  const index_t blocks = std::max<index_t>(1, (n + per - 1) / per);
  host_buffer<T> partial(blocks * p);
  parallel_for(policy, blocks, [&](index_t blk) {
    T* acc = partial.data() + blk * p;
    const index_t first = blk * per;
    const index_t last = std::min(n, first + per);
    for (index_t i = first; i < last; ++i) {
      const T* row = x.row_data(i);
      for (index_t j = 0; j < p; ++j) acc[j] += row[j];
    }
  });
  for (index_t j = 0; j < p; ++j) {
    T s = partial[j];
    for (index_t blk = 1; blk < blocks; ++blk) s += partial[blk * p + j];
    out[j] = beta == T(0) ? alpha * s : alpha * s + beta * out[j];
  }
}

/// Y(i, :) += b for every row.
template <class Policy, class T>
void add_row_vector(const Policy& policy, vector_view<const T> b, matrix_view<T> y) {
  const index_t p = y.cols();
  parallel_for(policy, y.rows(), [&](index_t i) {
    T* row = y.row_data(i);
    for (index_t j = 0; j < p; ++j) row[j] += b[j];
  });
}

/// dst = src (same shape; strides may differ), parallel over rows.
template <class Policy, class T>
void copy_rows(const Policy& policy, matrix_view<const T> src, matrix_view<T> dst) {
  const index_t p = src.cols();
  parallel_for(policy, src.rows(), [&](index_t i) {
    const T* s = src.row_data(i);
    T* d = dst.row_data(i);
    std::copy(s, s + p, d);
  });
}

}  // namespace cellkit::detail
