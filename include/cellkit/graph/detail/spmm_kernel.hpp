#pragma once
/// @file
/// The CSR x dense product used by the graph layers (internal): `Y = alpha A X + beta Y`.
///
/// Same contract, row split and per-column summation order (nonzeros in index order) as
/// `cellkit::spmm` (equal to it up to the compiler's FMA contraction), and independent of the
/// thread count. The
/// inner loop follows the measurements in bench/RESULTS.md ("Suggestions for spmm.hpp"): the
/// accumulators are GCC/Clang vector-extension values (GCC 12 compiles `T acc[W]` + `omp simd`
/// into gathers and stack traffic), columns are covered by compile-time tiles, and for float the
/// X row of nonzero p + 8 is prefetched. 2-3x faster than the library kernel on kNN-shaped graphs.
/// Falls back to `cellkit::spmm` where vector extensions are not available (other compilers, nvcc).
/// To be removed once execution/spmm.hpp adopts the same changes.

#include <cellkit/core/config.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/spmm.hpp>
#include <cellkit/graph/detail/common.hpp>

#include <algorithm>
#include <cstring>
#include <type_traits>

#if (defined(__GNUC__) || defined(__clang__)) && !CELLKIT_CUDA_COMPILER
#define CELLKIT_GRAPH_VECTOR_SPMM 1
#else
#define CELLKIT_GRAPH_VECTOR_SPMM 0
#endif

namespace cellkit::graph::detail {

#if CELLKIT_GRAPH_VECTOR_SPMM

inline void prefetch_line(const void* address) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(address)));
#else
  __builtin_prefetch(address, 0, 3);
#endif
}

template <class T, int Lanes>
struct vector_of {
  typedef T type __attribute__((vector_size(Lanes * sizeof(T))));
};

template <int Distance, int W, class T, class Index>
inline void spmm_tile(const Index* CELLKIT_RESTRICT indices, const T* CELLKIT_RESTRICT values, index_t begin,
                      index_t end, index_t prefetch_end, const T* CELLKIT_RESTRICT x, index_t ldx, index_t col0,
                      T alpha, T beta, T* CELLKIT_RESTRICT y_row) {
  constexpr int lanes = std::min(W, 64 / static_cast<int>(sizeof(T)));
  constexpr int vectors = W / lanes;
  using vec = typename vector_of<T, lanes>::type;
  vec acc[vectors];
  for (int j = 0; j < vectors; ++j) acc[j] = vec{};
  for (index_t p = begin; p < end; ++p) {
    if constexpr (Distance > 0) {
      if (p + Distance < prefetch_end) {
        const char* line = reinterpret_cast<const char*>(x + static_cast<index_t>(indices[p + Distance]) * ldx + col0);
        for (int l = 0; l < (W * static_cast<int>(sizeof(T)) + 63) / 64; ++l) prefetch_line(line + l * 64);
      }
    }
    const T v = values[p];
    const T* x_row = x + static_cast<index_t>(indices[p]) * ldx + col0;
    for (int j = 0; j < vectors; ++j) {
      vec xv;
      std::memcpy(&xv, x_row + j * lanes, sizeof(vec));
      acc[j] += v * xv;
    }
  }
  T* out = y_row + col0;
  for (int j = 0; j < vectors; ++j) {
    vec result = alpha * acc[j];
    if (beta != T(0)) {
      vec old;
      std::memcpy(&old, out + j * lanes, sizeof(vec));
      result = alpha * acc[j] + beta * old;
    }
    std::memcpy(out + j * lanes, &result, sizeof(vec));
  }
}

template <class T, class Index>
inline void spmm_column(const Index* indices, const T* values, index_t begin, index_t end, const T* x, index_t ldx,
                        index_t col, T alpha, T beta, T* y_row) {
  T acc = T(0);
  for (index_t p = begin; p < end; ++p) acc += values[p] * x[static_cast<index_t>(indices[p]) * ldx + col];
  y_row[col] = beta == T(0) ? alpha * acc : alpha * acc + beta * y_row[col];
}

template <int Distance, class T, class Index>
void spmm_row_range(index_t first, index_t last, const Index* indptr, const Index* indices, const T* values, const T* x,
                    index_t ldx, index_t n, T alpha, T beta, T* y, index_t ldy) {
  constexpr int W = 512 / static_cast<int>(sizeof(T));
  const index_t prefetch_end = static_cast<index_t>(indptr[last]);
  for (index_t i = first; i < last; ++i) {
    const index_t begin = static_cast<index_t>(indptr[i]);
    const index_t end = static_cast<index_t>(indptr[i + 1]);
    T* y_row = y + i * ldy;
    index_t col = 0;
    for (; col + W <= n; col += W)
      spmm_tile<Distance, W>(indices, values, begin, end, prefetch_end, x, ldx, col, alpha, beta, y_row);
    if (col + W / 2 <= n) {
      spmm_tile<Distance, W / 2>(indices, values, begin, end, prefetch_end, x, ldx, col, alpha, beta, y_row);
      col += W / 2;
    }
    if (col + W / 4 <= n) {
      spmm_tile<Distance, W / 4>(indices, values, begin, end, prefetch_end, x, ldx, col, alpha, beta, y_row);
      col += W / 4;
    }
    if (col + W / 8 <= n) {
      spmm_tile<Distance, W / 8>(indices, values, begin, end, prefetch_end, x, ldx, col, alpha, beta, y_row);
      col += W / 8;
    }
    if (col + W / 16 <= n) {
      spmm_tile<Distance, W / 16>(indices, values, begin, end, prefetch_end, x, ldx, col, alpha, beta, y_row);
      col += W / 16;
    }
    for (; col < n; ++col) spmm_column(indices, values, begin, end, x, ldx, col, alpha, beta, y_row);
  }
}

#endif  // CELLKIT_GRAPH_VECTOR_SPMM

/// Y = alpha A X + beta Y (host). Shapes are the caller's responsibility (checked by the callers).
template <class Policy, class TA, class Index, class TX, class T>
void graph_spmm(const Policy& policy, csr_view<TA, Index> a, matrix_view<TX> x, matrix_view<T> y,
                spmm_params<T> params = {}) {
#if CELLKIT_GRAPH_VECTOR_SPMM
  static_assert(std::is_floating_point_v<T>);
  expect_shapes(a.cols() == x.rows(), "spmm", "A", a.shape(), "X", x.shape(), "A.cols must equal X.rows");
  expect_shapes(y.rows() == a.rows() && y.cols() == x.cols(), "spmm", "Y", y.shape(), "A X", {a.rows(), x.cols()},
                "Y must have the shape of the product");
  if (y.empty()) return;
  using I = std::remove_cv_t<Index>;
  const index_t rows = a.rows();
  auto run_part = [&](int part, int parts) {
    const index_t first = cellkit::detail::balanced_row_split(a.indptr(), rows, part, parts);
    const index_t last = cellkit::detail::balanced_row_split(a.indptr(), rows, part + 1, parts);
    if (first == last) return;
    constexpr int distance = std::is_same_v<T, float> ? 8 : 0;
    spmm_row_range<distance, T, I>(first, last, a.indptr(), a.indices(), a.values(), x.data(), x.stride(), x.cols(),
                                   params.alpha, params.beta, y.data(), y.stride());
  };
  parallel_parts(policy, run_part);
#else
  spmm(policy, a, x, y, params);
#endif
}

}  // namespace cellkit::graph::detail
