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

/// C = alpha * A * op(B) + beta * C with A m x k (not transposed). Rows of A and C are split into
/// blocks of gemm_block_rows, each a serial gemm: bits independent of the thread count.
template <class Policy, class T>
void blocked_gemm(const Policy& policy, matrix_view<const T> a, matrix_view<const T> b, matrix_view<T> c, T alpha,
                  T beta, bool transpose_b = false) {
  const index_t m = a.rows();
  const index_t blocks = (m + gemm_block_rows - 1) / gemm_block_rows;
  parallel_for(policy, blocks, [&](index_t blk) {
    const index_t first = blk * gemm_block_rows;
    const index_t count = std::min(gemm_block_rows, m - first);
    gemm(serial{}, a.row_block(first, count), b, c.row_block(first, count),
         gemm_params<T>{.alpha = alpha, .beta = beta, .transpose_a = false, .transpose_b = transpose_b});
  });
}

/// C = alpha * A^T * B + beta * C with A n x m, B n x p (a reduction over the n rows). Partials over
/// fixed row blocks (serial gemm each) are added in block order.
template <class Policy, class T>
void blocked_gemm_tn(const Policy& policy, matrix_view<const T> a, matrix_view<const T> b, matrix_view<T> c, T alpha,
                     T beta) {
  const index_t n = a.rows();
  const index_t m = a.cols();
  const index_t p = b.cols();
  const index_t per = reduction_rows_per_block(n);
  const index_t blocks = (n + per - 1) / per;
  if (blocks <= 1) {
    gemm(serial{}, a, b, c, gemm_params<T>{.alpha = alpha, .beta = beta, .transpose_a = true});
    return;
  }
  host_buffer<T> partial(blocks * m * p, uninitialized);
  parallel_for(
      policy, blocks,
      [&](index_t blk) {
        const index_t first = blk * per;
        const index_t count = std::min(per, n - first);
        gemm(serial{}, a.row_block(first, count), b.row_block(first, count),
             matrix_view<T>(partial.data() + blk * m * p, m, p), gemm_params<T>{.transpose_a = true});
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

/// Columns [first, first + count) of x as a strided view (no copy).
template <class T>
matrix_view<T> column_block(matrix_view<T> x, index_t first, index_t count) {
  if (x.data() == nullptr) return matrix_view<T>(nullptr, x.rows(), count, x.stride());
  return matrix_view<T>(x.data() + first, x.rows(), count, x.stride());
}

}  // namespace cellkit::detail
