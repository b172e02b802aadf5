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
#include <cstring>
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

#if defined(__GNUC__) || defined(__clang__)
/// A GNU vector of `Lanes` elements. GCC 12 compiles a plain `T acc[W]` accumulator loop with
/// gathers and keeps it on the stack; vector-extension values stay in registers (2x faster,
/// measured in bench/RESULTS.md).
template <class T, int Lanes>
struct simd_vector {
  typedef T type __attribute__((vector_size(Lanes * sizeof(T))));
};
#endif

/// Brings one cache line towards L1. An explicit instruction on x86-64: GCC 12 drops or reorders
/// `__builtin_prefetch` in this kernel (bench/RESULTS.md).
inline void prefetch_line(const void* address) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(address)));
#elif defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(address, 0, 3);
#else
  (void)address;
#endif
}

/// How many nonzeros ahead the X row is prefetched (0 = off). Worth ~10% for float rows gathered
/// from beyond L2; measured to hurt in double, where the wider rows already keep the prefetchers busy.
template <class T>
inline constexpr index_t spmm_prefetch_distance = sizeof(T) == 4 ? 8 : 0;

/// Row i of alpha * A X (+ beta Y) for columns [col0, col0 + W), W a compile-time tile width.
/// Nonzeros are summed in index order, so the result does not depend on how rows are split.
/// `nnz` bounds the look-ahead of the prefetch (indices beyond this row are only read, never used).
template <int W, class T, class Index>
inline void spmm_row_tile(const Index* CELLKIT_RESTRICT indices, const T* CELLKIT_RESTRICT values, index_t begin,
                          index_t end, index_t nnz, const T* CELLKIT_RESTRICT x, index_t ldx, index_t col0, T alpha,
                          T beta, T* CELLKIT_RESTRICT y_row) {
#if defined(__GNUC__) || defined(__clang__)
  constexpr int lanes = W < 64 / static_cast<int>(sizeof(T)) ? W : 64 / static_cast<int>(sizeof(T));
  constexpr int vectors = W / lanes;
  constexpr index_t distance = spmm_prefetch_distance<T>;
  constexpr int lines = (W * static_cast<int>(sizeof(T)) + 63) / 64;
  using vec = typename simd_vector<T, lanes>::type;
  vec acc[vectors];
  for (int j = 0; j < vectors; ++j) acc[j] = vec{};
  for (index_t p = begin; p < end; ++p) {
    if constexpr (distance > 0) {
      if (p + distance < nnz) {
        const char* ahead = reinterpret_cast<const char*>(x + static_cast<index_t>(indices[p + distance]) * ldx + col0);
        for (int l = 0; l < lines; ++l) prefetch_line(ahead + 64 * l);
      }
    }
    const T v = values[p];
    const T* x_row = x + static_cast<index_t>(indices[p]) * ldx + col0;
    for (int j = 0; j < vectors; ++j) {
      vec xv;
      std::memcpy(&xv, x_row + j * lanes, sizeof(vec));  // unaligned load
      acc[j] += v * xv;
    }
  }
  T* out = y_row + col0;
  for (int j = 0; j < vectors; ++j) {
    vec result = alpha * acc[j];
    if (beta != T(0)) {
      vec previous;
      std::memcpy(&previous, out + j * lanes, sizeof(vec));
      result += beta * previous;
    }
    std::memcpy(out + j * lanes, &result, sizeof(vec));
  }
#else
  (void)nnz;
  T acc[W] = {};
  for (index_t p = begin; p < end; ++p) {
    const T v = values[p];
    const T* x_row = x + static_cast<index_t>(indices[p]) * ldx + col0;
    for (int j = 0; j < W; ++j) acc[j] += v * x_row[j];
  }
  T* out = y_row + col0;
  for (int j = 0; j < W; ++j) out[j] = beta == T(0) ? alpha * acc[j] : alpha * acc[j] + beta * out[j];
#endif
}

/// One column of row i (the remainder after the compile-time tiles).
template <class T, class Index>
inline void spmm_row_column(const Index* CELLKIT_RESTRICT indices, const T* CELLKIT_RESTRICT values, index_t begin,
                            index_t end, const T* CELLKIT_RESTRICT x, index_t ldx, index_t col, T alpha, T beta,
                            T* CELLKIT_RESTRICT y_row) {
  T acc = T(0);
  for (index_t p = begin; p < end; ++p) acc += values[p] * x[static_cast<index_t>(indices[p]) * ldx + col];
  y_row[col] = beta == T(0) ? alpha * acc : alpha * acc + beta * y_row[col];
}

template <class T, class Index>
void spmm_rows(index_t row_first, index_t row_last, const Index* indptr, const Index* indices, const T* values,
               const T* x, index_t ldx, index_t n, T alpha, T beta, T* y, index_t ldy, index_t nnz) {
  // Widest tile: 512 bytes (eight 64-byte vectors); then halves down to W/16, then single columns,
  // so every column count runs compile-time tiles.
  constexpr int W = 512 / static_cast<int>(sizeof(T));
  for (index_t i = row_first; i < row_last; ++i) {
    const index_t begin = static_cast<index_t>(indptr[i]);
    const index_t end = static_cast<index_t>(indptr[i + 1]);
    T* y_row = y + i * ldy;
    index_t col = 0;
    for (; col + W <= n; col += W) spmm_row_tile<W>(indices, values, begin, end, nnz, x, ldx, col, alpha, beta, y_row);
    if (col + W / 2 <= n) {
      spmm_row_tile<W / 2>(indices, values, begin, end, nnz, x, ldx, col, alpha, beta, y_row);
      col += W / 2;
    }
    if (col + W / 4 <= n) {
      spmm_row_tile<W / 4>(indices, values, begin, end, nnz, x, ldx, col, alpha, beta, y_row);
      col += W / 4;
    }
    if (col + W / 8 <= n) {
      spmm_row_tile<W / 8>(indices, values, begin, end, nnz, x, ldx, col, alpha, beta, y_row);
      col += W / 8;
    }
    if (col + W / 16 <= n) {
      spmm_row_tile<W / 16>(indices, values, begin, end, nnz, x, ldx, col, alpha, beta, y_row);
      col += W / 16;
    }
    for (; col < n; ++col) spmm_row_column(indices, values, begin, end, x, ldx, col, alpha, beta, y_row);
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
          y.data(), y.stride(), a.nnz());
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
