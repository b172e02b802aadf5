#pragma once
// cuBLAS and cuSPARSE handles and calls behind gemm and spmm; included only by nvcc.

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/cuda_check.cuh>
#include <cellkit/core/error.hpp>

#include <cublas_v2.h>
#include <cusparse.h>

#include <map>
#include <string>
#include <type_traits>

namespace cellkit::detail {

inline void cublas_check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw cuda_error(std::string(call) + " failed: cuBLAS status " + std::to_string(static_cast<int>(status)));
  }
}
inline void cusparse_check(cusparseStatus_t status, const char* call) {
  if (status != CUSPARSE_STATUS_SUCCESS) {
    throw cuda_error(std::string(call) + " failed: " + cusparseGetErrorString(status));
  }
}

/// One handle per host thread and device, created on first use and kept for the thread's lifetime.
template <class Handle>
class handle_cache {
 public:
  using create_fn = void (*)(Handle*);
  using destroy_fn = void (*)(Handle);
  handle_cache(create_fn create, destroy_fn destroy) : create_(create), destroy_(destroy) {}
  ~handle_cache() {
    for (auto& entry : handles_) destroy_(entry.second);
  }
  Handle get() {
    int device = 0;
    CELLKIT_CUDA_CHECK(cudaGetDevice(&device));
    auto found = handles_.find(device);
    if (found != handles_.end()) return found->second;
    Handle handle{};
    create_(&handle);
    handles_.emplace(device, handle);
    return handle;
  }

 private:
  create_fn create_;
  destroy_fn destroy_;
  std::map<int, Handle> handles_;
};

inline cublasHandle_t cublas_handle(cudaStream_t stream) {
  static thread_local handle_cache<cublasHandle_t> cache(
      +[](cublasHandle_t* h) { cublas_check(cublasCreate(h), "cublasCreate"); },
      +[](cublasHandle_t h) { (void)cublasDestroy(h); });
  cublasHandle_t handle = cache.get();
  cublas_check(cublasSetStream(handle, stream), "cublasSetStream");
  return handle;
}

inline cusparseHandle_t cusparse_handle(cudaStream_t stream) {
  static thread_local handle_cache<cusparseHandle_t> cache(
      +[](cusparseHandle_t* h) { cusparse_check(cusparseCreate(h), "cusparseCreate"); },
      +[](cusparseHandle_t h) { (void)cusparseDestroy(h); });
  cusparseHandle_t handle = cache.get();
  cusparse_check(cusparseSetStream(handle, stream), "cusparseSetStream");
  return handle;
}

/// Row-major C = alpha op(A) op(B) + beta C via column-major cuBLAS: C^T = op(B)^T op(A)^T.
template <class T>
void cuda_gemm(cudaStream_t stream, bool ta, bool tb, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
               const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  cublasHandle_t handle = cublas_handle(stream);
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  if constexpr (std::is_same_v<T, float>) {
    cublas_check(cublasSgemm(handle, op_b, op_a, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha,
                             b, static_cast<int>(ldb), a, static_cast<int>(lda), &beta, c, static_cast<int>(ldc)),
                 "cublasSgemm");
  } else {
    cublas_check(cublasDgemm(handle, op_b, op_a, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha,
                             b, static_cast<int>(ldb), a, static_cast<int>(lda), &beta, c, static_cast<int>(ldc)),
                 "cublasDgemm");
  }
}

template <class T>
constexpr cudaDataType cuda_data_type() {
  return std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_64F;
}
template <class Index>
constexpr cusparseIndexType_t cusparse_index_type() {
  static_assert(sizeof(Index) == 4 || sizeof(Index) == 8, "cuSPARSE needs 32- or 64-bit CSR indices");
  return sizeof(Index) == 4 ? CUSPARSE_INDEX_32I : CUSPARSE_INDEX_64I;
}

/// Row-major Y = alpha A X + beta Y with cuSPARSE's generic SpMM (CSR, row-major dense operands).
template <class T, class Index>
void cuda_spmm(cudaStream_t stream, index_t rows, index_t cols, index_t nnz, const Index* indptr, const Index* indices,
               const T* values, const T* x, index_t x_cols, index_t ldx, T alpha, T beta, T* y, index_t ldy) {
  cusparseHandle_t handle = cusparse_handle(stream);
  cusparseSpMatDescr_t a_desc{};
  cusparseDnMatDescr_t x_desc{};
  cusparseDnMatDescr_t y_desc{};
  cusparse_check(cusparseCreateCsr(&a_desc, rows, cols, nnz, const_cast<Index*>(indptr), const_cast<Index*>(indices),
                                   const_cast<T*>(values), cusparse_index_type<Index>(), cusparse_index_type<Index>(),
                                   CUSPARSE_INDEX_BASE_ZERO, cuda_data_type<T>()),
                 "cusparseCreateCsr");
  cusparse_check(
      cusparseCreateDnMat(&x_desc, cols, x_cols, ldx, const_cast<T*>(x), cuda_data_type<T>(), CUSPARSE_ORDER_ROW),
      "cusparseCreateDnMat(X)");
  cusparse_check(cusparseCreateDnMat(&y_desc, rows, x_cols, ldy, y, cuda_data_type<T>(), CUSPARSE_ORDER_ROW),
                 "cusparseCreateDnMat(Y)");
  std::size_t scratch_bytes = 0;
  cusparse_check(cusparseSpMM_bufferSize(handle, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                         &alpha, a_desc, x_desc, &beta, y_desc, cuda_data_type<T>(),
                                         CUSPARSE_SPMM_ALG_DEFAULT, &scratch_bytes),
                 "cusparseSpMM_bufferSize");
  void* scratch = nullptr;
  if (scratch_bytes > 0) CELLKIT_CUDA_CHECK(cudaMallocAsync(&scratch, scratch_bytes, stream));
  cusparse_check(cusparseSpMM(handle, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE, &alpha,
                              a_desc, x_desc, &beta, y_desc, cuda_data_type<T>(), CUSPARSE_SPMM_ALG_DEFAULT, scratch),
                 "cusparseSpMM");
  if (scratch != nullptr) CELLKIT_CUDA_CHECK(cudaFreeAsync(scratch, stream));
  (void)cusparseDestroySpMat(a_desc);
  (void)cusparseDestroyDnMat(x_desc);
  (void)cusparseDestroyDnMat(y_desc);
}

}  // namespace cellkit::detail
