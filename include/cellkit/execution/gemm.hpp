#pragma once
/// @file
/// Dense matrix product on views: `C = alpha * op(A) * op(B) + beta * C`, op = identity or transpose.
///
/// `gemm(policy, a, b, c, params)`: a, b, c are row-major `matrix_view`s in the policy's memory space
/// (a, b may be const). op(A) is m x k, op(B) is k x n, C is m x n; otherwise `dimension_mismatch`
/// naming both operands and shapes. With `beta == 0`, C is not read (NaN in C does not propagate).
/// C must not alias A or B.
///
/// Backends:
/// - host, default: Eigen's blocked GEMM. Threads come from the policy (serial = 1 thread): the
///   OpenMP thread count of the calling thread is set for the call and restored afterwards, so
///   concurrent calls from different threads do not interfere (unless the program called
///   `Eigen::setNbThreads`, which takes precedence).
/// - host, with `CELLKIT_GEMM_BLAS` defined (CMake option `CELLKIT_GEMM_BACKEND=openblas`): CBLAS
///   `?gemm` from OpenBLAS, thread count set with `openblas_set_num_threads` (process-wide in
///   OpenBLAS, so concurrent calls with different policies race on that setting).
/// - cuda: cuBLAS on the policy's stream (asynchronous; a cuBLAS handle is cached per host thread
///   and device).
/// Determinism: for a fixed thread count the result is reproducible bit for bit; serial and
/// openmp{1} agree bit for bit; different thread counts agree to rounding only (Eigen and OpenBLAS
/// choose their blocking, and so the order of the k-sums, from the thread count).
/// Cost: 2 m n k flops; Eigen packs operands into its own blocks (allocated per call).

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <type_traits>

#if defined(CELLKIT_GEMM_BLAS)
#include <cblas.h>
#else
#include <Eigen/Core>
#endif

#if CELLKIT_CUDA_COMPILER
#include <cellkit/execution/detail/cuda_blas.cuh>
#endif

namespace cellkit {

/// Scalars and transposition flags of `gemm`. Designated initialisers read well:
/// `gemm(policy, a, b, c, {.alpha = 2, .transpose_a = true})`.
template <class T>
struct gemm_params {
  T alpha = T(1);
  T beta = T(0);
  bool transpose_a = false;
  bool transpose_b = false;
};

namespace detail {

/// Sets the calling thread's OpenMP thread count for the lifetime of the object.
class scoped_omp_threads {
 public:
  explicit scoped_omp_threads(int threads) {
#if CELLKIT_HAS_OPENMP
    previous_ = omp_get_max_threads();
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
  }
  ~scoped_omp_threads() {
#if CELLKIT_HAS_OPENMP
    omp_set_num_threads(previous_);
#endif
  }
  scoped_omp_threads(const scoped_omp_threads&) = delete;
  scoped_omp_threads& operator=(const scoped_omp_threads&) = delete;

#if CELLKIT_HAS_OPENMP
 private:
  int previous_ = 1;
#endif
};

#if defined(CELLKIT_GEMM_BLAS)
template <class T>
void host_gemm(int threads, bool ta, bool tb, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
               const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  openblas_set_num_threads(threads);
  const auto op_a = ta ? CblasTrans : CblasNoTrans;
  const auto op_b = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, op_a, op_b, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, op_a, op_b, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
  }
}
#else
/// A GEMM blocking with given sizes (Eigen's level3_blocking, whose sizes only Eigen's heuristic sets).
template <class T>
class fixed_gemm_blocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  fixed_gemm_blocking(Eigen::Index kc, Eigen::Index mc, Eigen::Index nc) {
    this->m_kc = kc;
    this->m_mc = mc;
    this->m_nc = nc;
  }
};

/// Blocking of `serial_float_gemm` (see there): depth kc, rows of the packed op(B)^T block mc,
/// columns nc per packed op(A)^T panel, for the column-major problem Eigen solves.
inline constexpr index_t float_gemm_kc = 256;
inline constexpr index_t float_gemm_mc = 256;
inline constexpr index_t float_gemm_nc = 64;

/// C += alpha op(A) op(B) for float on one thread, C row-major, through Eigen's packing routines and
/// kernel with a blocking of our own. Eigen's heuristic (sized from the cache sizes it reads) packs a
/// kc x nc block of 256 x 256 floats for the 256 x 256 tiles that blocked_gemm hands to one thread, and
/// cuts their 256 rows into panels of 144; kc = 256, mc = 256, nc = 64 measured 112-116 GFLOP/s on one
/// core against Eigen's 90-111 for the three tile shapes of a dense layer (depth 256, 512 and 2000),
/// 93-95% of the core's FMA peak (bench/RESULTS.md, scGPCL pre-training step, item 3). Used for
/// products of at least 32 in every dimension; Eigen's own product otherwise, and for double.
/// Eigen's internal interface (general_matrix_matrix_product, level3_blocking) as of Eigen 3.4.
inline void serial_float_gemm(bool ta, bool tb, index_t m, index_t n, index_t k, float alpha, const float* a,
                              index_t lda, const float* b, index_t ldb, float* c, index_t ldc) {
  // Eigen computes a row-major C as the column-major C^T = op(B)^T op(A)^T: its rows are our columns.
  fixed_gemm_blocking<float> blocking(std::min(k, float_gemm_kc), std::min(n, float_gemm_mc),
                                      std::min(m, float_gemm_nc));
  using Eigen::ColMajor;
  using Eigen::RowMajor;
  using Eigen::internal::general_matrix_matrix_product;
  // Stored row-major, op(A) is row-major with stride lda, or column-major when transposed; same for B.
  if (!ta && !tb) {
    general_matrix_matrix_product<Eigen::Index, float, RowMajor, false, float, RowMajor, false, RowMajor, 1>::run(
        m, n, k, a, lda, b, ldb, c, 1, ldc, alpha, blocking);
  } else if (ta && !tb) {
    general_matrix_matrix_product<Eigen::Index, float, ColMajor, false, float, RowMajor, false, RowMajor, 1>::run(
        m, n, k, a, lda, b, ldb, c, 1, ldc, alpha, blocking);
  } else if (!ta && tb) {
    general_matrix_matrix_product<Eigen::Index, float, RowMajor, false, float, ColMajor, false, RowMajor, 1>::run(
        m, n, k, a, lda, b, ldb, c, 1, ldc, alpha, blocking);
  } else {
    general_matrix_matrix_product<Eigen::Index, float, ColMajor, false, float, ColMajor, false, RowMajor, 1>::run(
        m, n, k, a, lda, b, ldb, c, 1, ldc, alpha, blocking);
  }
}

/// Products at least this large in every dimension go through serial_float_gemm.
inline constexpr index_t float_gemm_min_extent = 32;

template <class T>
void host_gemm(int threads, bool ta, bool tb, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
               const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using const_map = Eigen::Map<const matrix, Eigen::Unaligned, Eigen::OuterStride<> >;
  using map = Eigen::Map<matrix, Eigen::Unaligned, Eigen::OuterStride<> >;
  // Stored shapes: A is (ta ? k x m : m x k), B is (tb ? n x k : k x n).
  const_map a_map(a, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
  const_map b_map(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
  map c_map(c, m, n, Eigen::OuterStride<>(ldc));
  scoped_omp_threads thread_scope(threads);
  if (beta == T(0)) {
    c_map.setZero();
  } else if (beta != T(1)) {
    c_map *= beta;
  }
  if (k == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (threads == 1 && std::min({m, n, k}) >= float_gemm_min_extent) {
      serial_float_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc);
      return;
    }
  }
  if (!ta && !tb) c_map.noalias() += alpha * a_map * b_map;
  if (ta && !tb) c_map.noalias() += alpha * a_map.transpose() * b_map;
  if (!ta && tb) c_map.noalias() += alpha * a_map * b_map.transpose();
  if (ta && tb) c_map.noalias() += alpha * a_map.transpose() * b_map.transpose();
}
#endif

}  // namespace detail

template <class Policy, class TA, class TB, class T, class Space>
void gemm(const Policy& policy, matrix_view<TA, Space> a, matrix_view<TB, Space> b, matrix_view<T, Space> c,
          gemm_params<T> params = {}) {
  static_assert(std::is_same_v<std::remove_const_t<TA>, T> && std::is_same_v<std::remove_const_t<TB>, T>,
                "cellkit::gemm: A, B and C must have the same element type");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cellkit::gemm: supports float and double");
  static_assert(!std::is_const_v<T>, "cellkit::gemm: C must be a mutable view");
  detail::check_policy_and_spaces<Policy, Space>();

  const index_t m = params.transpose_a ? a.cols() : a.rows();
  const index_t k = params.transpose_a ? a.rows() : a.cols();
  const index_t k_b = params.transpose_b ? b.cols() : b.rows();
  const index_t n = params.transpose_b ? b.rows() : b.cols();
  expect_shapes(k == k_b, "gemm", params.transpose_a ? "A^T" : "A", {m, k}, params.transpose_b ? "B^T" : "B", {k_b, n},
                "the inner dimensions must agree");
  expect_shapes(c.rows() == m && c.cols() == n, "gemm", "C", c.shape(), "op(A) op(B)", {m, n},
                "C must have the shape of the product");
  if (m == 0 || n == 0) return;

  if constexpr (is_host_policy_v<Policy>) {
    detail::host_gemm<T>(detail::host_threads(policy), params.transpose_a, params.transpose_b, m, n, k, params.alpha,
                         a.data(), a.stride(), b.data(), b.stride(), params.beta, c.data(), c.stride());
  } else {
#if CELLKIT_CUDA_COMPILER
    detail::cuda_gemm<T>(policy.stream, params.transpose_a, params.transpose_b, m, n, k, params.alpha, a.data(),
                         a.stride(), b.data(), b.stride(), params.beta, c.data(), c.stride());
#endif
  }
}

/// `gemm` with the best host policy.
template <class TA, class TB, class T>
void gemm(matrix_view<TA> a, matrix_view<TB> b, matrix_view<T> c, gemm_params<T> params = {}) {
  gemm(default_host_policy(), a, b, c, params);
}

}  // namespace cellkit
