#pragma once
// CUDA runtime error checking for cellkit's device code paths. Included only under nvcc.

#include <cellkit/core/error.hpp>

#include <cuda_runtime.h>

#include <string>

namespace cellkit::detail {

inline void cuda_check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) {
    throw cuda_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                     cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
  }
}

inline cudaStream_t to_cuda_stream(CUstream_st* stream) { return stream; }

/// True when at least one CUDA device is usable (tests skip their CUDA cases otherwise).
inline bool cuda_device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" status
    return false;
  }
  return count > 0;
}

}  // namespace cellkit::detail

#define CELLKIT_CUDA_CHECK(call) ::cellkit::detail::cuda_check((call), #call, __FILE__, __LINE__)
