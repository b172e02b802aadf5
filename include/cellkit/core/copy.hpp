#pragma once
/// @file
/// `copy(policy, src, dst)`: the only way data moves between views, and between host and device.
///
/// Shapes must match exactly (else `dimension_mismatch`); strides may differ. With a host policy both
/// views must be host views. With `cuda{stream}` any combination of host and device views is
/// accepted and the copy is queued on the stream (cudaMemcpy2DAsync): it does not synchronise, so a
/// host destination is valid only after `synchronize(policy)`; host memory that is not page-locked
/// makes the CUDA runtime stage the copy, which can block the calling thread.
/// Cost: O(rows x cols) element moves.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <cstring>
#include <type_traits>

#if CELLKIT_CUDA_COMPILER
#include <cellkit/core/detail/cuda_check.cuh>
#endif

namespace cellkit {

namespace detail {
template <class Policy, class SrcSpace, class DstSpace>
constexpr void check_copy_spaces() {
  static_assert(is_execution_policy_v<Policy>,
                "cellkit::copy: the first argument must be an execution policy (serial{}, openmp{}, cuda{stream})");
  if constexpr (is_host_policy_v<Policy>) {
    static_assert(std::is_same_v<SrcSpace, host_space> && std::is_same_v<DstSpace, host_space>,
                  "cellkit::copy with a host policy needs host views on both sides: use cellkit::cuda{stream} "
                  "to copy to or from device memory");
  } else {
    static_assert(CELLKIT_CUDA_COMPILER || dependent_false_v<Policy>,
                  "cellkit::copy with the cuda policy must be compiled by nvcc (a .cu file, or LANGUAGE CUDA)");
  }
}

#if CELLKIT_CUDA_COMPILER
template <class SrcSpace, class DstSpace>
constexpr cudaMemcpyKind memcpy_kind() {
  constexpr bool src_device = std::is_same_v<SrcSpace, device_space>;
  constexpr bool dst_device = std::is_same_v<DstSpace, device_space>;
  if constexpr (src_device && dst_device) return cudaMemcpyDeviceToDevice;
  if constexpr (src_device) return cudaMemcpyDeviceToHost;
  if constexpr (dst_device) return cudaMemcpyHostToDevice;
  return cudaMemcpyHostToHost;
}
#endif
}  // namespace detail

/// Copies the elements of `src` into `dst` (same length).
template <class Policy, class S, class SrcSpace, class T, class DstSpace>
void copy(const Policy& policy, vector_view<S, SrcSpace> src, vector_view<T, DstSpace> dst) {
  static_assert(std::is_same_v<std::remove_const_t<S>, T>,
                "cellkit::copy: source and destination element types differ");
  detail::check_copy_spaces<Policy, SrcSpace, DstSpace>();
  expect_shapes(src.size() == dst.size(), "copy", "src", src.shape(), "dst", dst.shape(), "lengths must be equal");
  if (src.size() == 0) return;
  if constexpr (is_host_policy_v<Policy>) {
    (void)policy;
    std::memmove(dst.data(), src.data(), sizeof(T) * static_cast<std::size_t>(src.size()));
  } else {
#if CELLKIT_CUDA_COMPILER
    CELLKIT_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), sizeof(T) * src.size(),
                                       detail::memcpy_kind<SrcSpace, DstSpace>(), policy.stream));
#endif
  }
}

/// Copies the elements of `src` into `dst` (same rows and cols; strides may differ).
template <class Policy, class S, class SrcSpace, class T, class DstSpace>
void copy(const Policy& policy, matrix_view<S, SrcSpace> src, matrix_view<T, DstSpace> dst) {
  static_assert(std::is_same_v<std::remove_const_t<S>, T>,
                "cellkit::copy: source and destination element types differ");
  detail::check_copy_spaces<Policy, SrcSpace, DstSpace>();
  expect_shapes(src.rows() == dst.rows() && src.cols() == dst.cols(), "copy", "src", src.shape(), "dst", dst.shape(),
                "shapes must be equal");
  if (src.empty()) return;
  if constexpr (is_host_policy_v<Policy>) {
    (void)policy;
    const auto row_bytes = sizeof(T) * static_cast<std::size_t>(src.cols());
    if (src.is_contiguous() && dst.is_contiguous()) {
      std::memmove(dst.data(), src.data(), row_bytes * static_cast<std::size_t>(src.rows()));
    } else {
      for (index_t i = 0; i < src.rows(); ++i) std::memmove(dst.row_data(i), src.row_data(i), row_bytes);
    }
  } else {
#if CELLKIT_CUDA_COMPILER
    CELLKIT_CUDA_CHECK(cudaMemcpy2DAsync(dst.data(), sizeof(T) * dst.stride(), src.data(), sizeof(T) * src.stride(),
                                         sizeof(T) * src.cols(), src.rows(), detail::memcpy_kind<SrcSpace, DstSpace>(),
                                         policy.stream));
#endif
  }
}

/// Waits until all work queued under `policy` has finished (a no-op for host policies).
template <class Policy>
void synchronize(const Policy& policy) {
  static_assert(is_execution_policy_v<Policy>, "cellkit::synchronize: expects an execution policy");
  if constexpr (is_device_policy_v<Policy>) {
    static_assert(CELLKIT_CUDA_COMPILER || detail::dependent_false_v<Policy>,
                  "cellkit::synchronize(cuda) must be compiled by nvcc (a .cu file, or LANGUAGE CUDA)");
#if CELLKIT_CUDA_COMPILER
    CELLKIT_CUDA_CHECK(cudaStreamSynchronize(policy.stream));
#endif
  } else {
    (void)policy;
  }
}

}  // namespace cellkit
