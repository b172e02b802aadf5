#pragma once
/// @file
/// `device_buffer<T>`: an owning array in CUDA global memory (cudaMalloc / cudaFree), move-only.
/// Requires nvcc. Allocation and release synchronise the device as cudaMalloc/cudaFree do.

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/cuda_check.cuh>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>

#include <string>
#include <utility>

namespace cellkit {

template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  /// `size` elements, uninitialised (device memory is filled by a copy or a kernel).
  explicit device_buffer(index_t size) : size_(size) {
    CELLKIT_EXPECTS(size >= 0, "device_buffer", "size", "must be non-negative, got " + std::to_string(size));
    if (size > 0) CELLKIT_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), sizeof(T) * size));
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  device_buffer(device_buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  device_buffer& operator=(device_buffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~device_buffer() { release(); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  index_t size() const { return size_; }

  vector_view<T, device_space> view() { return {data_, size_}; }
  vector_view<const T, device_space> view() const { return {data_, size_}; }
  matrix_view<T, device_space> as_matrix(index_t rows, index_t cols) {
    CELLKIT_EXPECTS(rows >= 0 && cols >= 0 && rows * cols == size_, "device_buffer::as_matrix", "rows/cols",
                    "shape does not match the buffer's " + std::to_string(size_) + " elements");
    return matrix_view<T, device_space>(data_, rows, cols);
  }
  matrix_view<const T, device_space> as_matrix(index_t rows, index_t cols) const {
    CELLKIT_EXPECTS(rows >= 0 && cols >= 0 && rows * cols == size_, "device_buffer::as_matrix", "rows/cols",
                    "shape does not match the buffer's " + std::to_string(size_) + " elements");
    return matrix_view<const T, device_space>(data_, rows, cols);
  }

 private:
  void release() noexcept {
    if (data_ != nullptr) (void)cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  index_t size_ = 0;
};

}  // namespace cellkit
