#pragma once
/// @file
/// Sparse (CSR) times dense: `Y = alpha * A * X + beta * Y`.
///
/// `spmm(policy, a, x, y, params)`: A is an m x k `csr_view`, X a k x n `matrix_view`, Y an m x n
/// `matrix_view`, all in the policy's memory space; otherwise `dimension_mismatch`. With beta == 0,
/// Y is not read. Y must not alias X.
///
/// Host kernel: rows are split between threads in contiguous ranges holding equal numbers of
/// nonzeros; each row is accumulated over column tiles held in registers, nonzeros in index order.
/// A row's result therefore does not depend on the policy or thread count (bit-identical output for
/// serial, openmp{1}, openmp{2}). Memory traffic: A once, one row of X per nonzero, Y once (twice
/// with beta != 0). Column indices are trusted: call `validate(a)` on untrusted input (done
/// automatically when `CELLKIT_DEBUG_CHECKS` is 1).
/// cuda: cuSPARSE's generic SpMM on the policy's stream (asynchronous; it allocates its scratch
/// stream-ordered).
/// Cost: 2 nnz n flops.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <type_traits>

#if CELLKIT_CUDA_COMPILER
#include <cellkit/execution/detail/cuda_blas.cuh>
#endif

namespace cellkit {

/// Scalars of `spmm`: `Y = alpha * A * X + beta * Y`.
template <class T>
struct spmm_params {
  T alpha = T(1);
  T beta = T(0);
};

namespace detail {

/// Accumulates row i of A*X for columns [col0, col0 + W) (W a compile-time tile) and writes Y.
template <int W, class T, class Index>
inline void spmm_row_tile(const Index* CELLKIT_RESTRICT indices, const T* CELLKIT_RESTRICT values, index_t begin,
                          index_t end, const T* CELLKIT_RESTRICT x, index_t ldx, index_t col0, T alpha, T beta,
                          T* CELLKIT_RESTRICT y_row) {
  T acc[W];
  for (int j = 0; j < W; ++j) acc[j] = T(0);
  for (index_t p = begin; p < end; ++p) {
    const T v = values[p];
    const T* CELLKIT_RESTRICT x_row = x + static_cast<index_t>(indices[p]) * ldx + col0;
#pragma omp simd
    for (int j = 0; j < W; ++j) acc[j] += v * x_row[j];
  }
  T* CELLKIT_RESTRICT out = y_row + col0;
  if (beta == T(0)) {
#pragma omp simd
    for (int j = 0; j < W; ++j) out[j] = alpha * acc[j];
  } else {
#pragma omp simd
    for (int j = 0; j < W; ++j) out[j] = alpha * acc[j] + beta * out[j];
  }
}

/// The same for a runtime width w < W (the last, partial tile).
template <int W, class T, class Index>
inline void spmm_row_tail(const Index* CELLKIT_RESTRICT indices, const T* CELLKIT_RESTRICT values, index_t begin,
                          index_t end, const T* CELLKIT_RESTRICT x, index_t ldx, index_t col0, index_t w, T alpha,
                          T beta, T* CELLKIT_RESTRICT y_row) {
  T acc[W];
  for (int j = 0; j < W; ++j) acc[j] = T(0);
  for (index_t p = begin; p < end; ++p) {
    const T v = values[p];
    const T* CELLKIT_RESTRICT x_row = x + static_cast<index_t>(indices[p]) * ldx + col0;
    for (index_t j = 0; j < w; ++j) acc[j] += v * x_row[j];
  }
  T* CELLKIT_RESTRICT out = y_row + col0;
  for (index_t j = 0; j < w; ++j) out[j] = beta == T(0) ? alpha * acc[j] : alpha * acc[j] + beta * out[j];
}

template <class T, class Index>
void spmm_rows(index_t row_first, index_t row_last, const Index* indptr, const Index* indices, const T* values,
               const T* x, index_t ldx, index_t n, T alpha, T beta, T* y, index_t ldy) {
  // 64 bytes x 8: eight AVX-512 (or sixteen AVX2) accumulator registers per tile.
  constexpr int W = 512 / static_cast<int>(sizeof(T));
  const index_t full_tiles = n / W;
  const index_t tail = n - full_tiles * W;
  for (index_t i = row_first; i < row_last; ++i) {
    const index_t begin = static_cast<index_t>(indptr[i]);
    const index_t end = static_cast<index_t>(indptr[i + 1]);
    T* y_row = y + i * ldy;
    for (index_t t = 0; t < full_tiles; ++t)
      spmm_row_tile<W>(indices, values, begin, end, x, ldx, t * W, alpha, beta, y_row);
    if (tail > 0) spmm_row_tail<W>(indices, values, begin, end, x, ldx, full_tiles * W, tail, alpha, beta, y_row);
  }
}

/// First row of part `part` of `parts` when rows are split so that each part has ~nnz/parts nonzeros
/// (plus rows, so that empty rows are spread too).
template <class Index>
index_t balanced_row_split(const Index* indptr, index_t rows, int part, int parts) {
  if (part <= 0) return 0;
  if (part >= parts) return rows;
  const index_t nnz = static_cast<index_t>(indptr[rows]);
  const index_t target = (nnz + rows) * part / parts;  // weight of rows [0, r) is indptr[r] + r
  index_t lo = 0;
  index_t hi = rows;
  while (lo < hi) {
    const index_t mid = lo + (hi - lo) / 2;
    if (static_cast<index_t>(indptr[mid]) + mid < target) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace detail

template <class Policy, class TA, class Index, class TX, class T, class Space>
void spmm(const Policy& policy, csr_view<TA, Index, Space> a, matrix_view<TX, Space> x, matrix_view<T, Space> y,
          spmm_params<T> params = {}) {
  static_assert(std::is_same_v<std::remove_const_t<TA>, T> && std::is_same_v<std::remove_const_t<TX>, T>,
                "cellkit::spmm: A, X and Y must have the same element type");
  static_assert(std::is_floating_point_v<T>, "cellkit::spmm: supports float and double");
  detail::check_policy_and_spaces<Policy, Space>();
  expect_shapes(a.cols() == x.rows(), "spmm", "A", a.shape(), "X", x.shape(), "A.cols must equal X.rows");
  expect_shapes(y.rows() == a.rows() && y.cols() == x.cols(), "spmm", "Y", y.shape(), "A X", {a.rows(), x.cols()},
                "Y must have the shape of the product");
  if (y.empty()) return;

  if constexpr (is_host_policy_v<Policy>) {
#if CELLKIT_DEBUG_CHECKS
    validate(a);
#endif
    const index_t rows = a.rows();
    const index_t n = x.cols();
    auto run_part = [&](int part, int parts) {
      const index_t first = detail::balanced_row_split(a.indptr(), rows, part, parts);
      const index_t last = detail::balanced_row_split(a.indptr(), rows, part + 1, parts);
      detail::spmm_rows<T, typename csr_view<TA, Index, Space>::index_type>(
          first, last, a.indptr(), a.indices(), a.values(), x.data(), x.stride(), n, params.alpha, params.beta,
          y.data(), y.stride());
    };
    if constexpr (std::is_same_v<Policy, openmp> && CELLKIT_HAS_OPENMP) {
      const int threads = policy.resolved_threads();
#pragma omp parallel num_threads(threads)
      run_part(omp_get_thread_num(), omp_get_num_threads());
    } else {
      (void)policy;
      run_part(0, 1);
    }
  } else {
#if CELLKIT_CUDA_COMPILER
    detail::cuda_spmm<T>(policy.stream, a.rows(), a.cols(), a.nnz(), a.indptr(), a.indices(), a.values(), x.data(),
                         x.cols(), x.stride(), params.alpha, params.beta, y.data(), y.stride());
#endif
  }
}

/// `spmm` with the best host policy.
template <class TA, class Index, class TX, class T>
void spmm(csr_view<TA, Index> a, matrix_view<TX> x, matrix_view<T> y, spmm_params<T> params = {}) {
  spmm(default_host_policy(), a, x, y, params);
}

}  // namespace cellkit
