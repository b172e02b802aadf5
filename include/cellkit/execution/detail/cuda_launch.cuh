#pragma once
// CUDA kernels behind for_each_index; included only by nvcc.

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/cuda_check.cuh>

#include <algorithm>

namespace cellkit::detail {

template <class F>
__global__ void for_each_index_kernel(index_t n, F f) {
  const index_t step = static_cast<index_t>(blockDim.x) * gridDim.x;
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

inline int cuda_grid_size(index_t n, int block) {
  const index_t blocks = (n + block - 1) / block;
  return static_cast<int>(std::min<index_t>(blocks, 65535 * 32));
}

template <class F>
void cuda_for_each_index(cudaStream_t stream, index_t n, F f) {
  constexpr int block = 256;
  for_each_index_kernel<<<cuda_grid_size(n, block), block, 0, stream>>>(n, f);
  CELLKIT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cellkit::detail
