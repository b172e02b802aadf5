#pragma once
// CUB-backed device reduction behind transform_reduce; included only by nvcc.

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/cuda_check.cuh>

#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>
#include <cub/device/device_reduce.cuh>

namespace cellkit::detail {

template <class T, class F>
struct cast_transform {
  F f;
  CELLKIT_HD T operator()(index_t i) const { return static_cast<T>(f(i)); }
};

template <class T, class R, class F>
T cuda_transform_reduce(cudaStream_t stream, index_t n, T init, R reduce, F transform) {
  auto input = thrust::make_transform_iterator(thrust::counting_iterator<index_t>(0), cast_transform<T, F>{transform});
  T* result = nullptr;
  void* scratch = nullptr;
  std::size_t scratch_bytes = 0;
  CELLKIT_CUDA_CHECK(cub::DeviceReduce::Reduce(nullptr, scratch_bytes, input, result, n, reduce, init, stream));
  const std::size_t result_offset = (scratch_bytes + 255) / 256 * 256;  // keep the result aligned
  CELLKIT_CUDA_CHECK(cudaMallocAsync(&scratch, result_offset + sizeof(T), stream));
  result = reinterpret_cast<T*>(static_cast<char*>(scratch) + result_offset);
  CELLKIT_CUDA_CHECK(cub::DeviceReduce::Reduce(scratch, scratch_bytes, input, result, n, reduce, init, stream));
  T host_result{};
  CELLKIT_CUDA_CHECK(cudaMemcpyAsync(&host_result, result, sizeof(T), cudaMemcpyDeviceToHost, stream));
  CELLKIT_CUDA_CHECK(cudaFreeAsync(scratch, stream));
  CELLKIT_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host_result;
}

}  // namespace cellkit::detail
