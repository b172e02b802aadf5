#pragma once
/// @file
/// `host_buffer<T>`: an owning, 64-byte aligned array on the host, and views onto it.
/// (`device_buffer<T>`, its CUDA counterpart, is in `cellkit/core/device_buffer.cuh`.)
///
/// Buffers are move-only: no reference counting, no hidden copies. Elements are value-initialised
/// (zero for arithmetic types) unless constructed with `uninitialized`.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>

#include <algorithm>
#include <cstddef>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

namespace cellkit {

/// Tag: allocate without initialising the elements (for buffers that are overwritten at once).
struct uninitialized_t {
  explicit constexpr uninitialized_t() = default;
};
inline constexpr uninitialized_t uninitialized{};

template <class T>
class host_buffer {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "host_buffer holds trivially copyable element types (numbers, index types, plain structs)");

 public:
  static constexpr std::size_t alignment = 64;

  host_buffer() = default;
  /// `size` elements, zero-initialised.
  explicit host_buffer(index_t size) : host_buffer(size, uninitialized) { std::fill_n(data_, size_, T{}); }
  /// `size` elements, each set to `value`.
  host_buffer(index_t size, const T& value) : host_buffer(size, uninitialized) { std::fill_n(data_, size_, value); }
  /// `size` elements left uninitialised.
  host_buffer(index_t size, uninitialized_t) : size_(size) {
    CELLKIT_EXPECTS(size >= 0, "host_buffer", "size", "must be non-negative, got " + std::to_string(size));
    if (size > 0) {
      data_ = static_cast<T*>(::operator new (static_cast<std::size_t>(size) * sizeof(T), std::align_val_t{alignment}));
    }
  }
  host_buffer(const host_buffer&) = delete;
  host_buffer& operator=(const host_buffer&) = delete;
  host_buffer(host_buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  host_buffer& operator=(host_buffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~host_buffer() { release(); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  index_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](index_t i) { return data_[i]; }
  const T& operator[](index_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

  vector_view<T> view() { return {data_, size_}; }
  vector_view<const T> view() const { return {data_, size_}; }
  /// The buffer as a contiguous rows x cols matrix; throws unless rows * cols == size().
  matrix_view<T> as_matrix(index_t rows, index_t cols) {
    check_matrix_shape(rows, cols);
    return matrix_view<T>(data_, rows, cols);
  }
  matrix_view<const T> as_matrix(index_t rows, index_t cols) const {
    check_matrix_shape(rows, cols);
    return matrix_view<const T>(data_, rows, cols);
  }

 private:
  void check_matrix_shape(index_t rows, index_t cols) const {
    CELLKIT_EXPECTS(rows >= 0 && cols >= 0 && rows * cols == size_, "host_buffer::as_matrix", "rows/cols",
                    std::to_string(rows) + " x " + std::to_string(cols) + " does not match the buffer's " +
                        std::to_string(size_) + " elements");
  }
  void release() noexcept {
    if (data_ != nullptr) ::operator delete (data_, std::align_val_t{alignment});
    data_ = nullptr;
    size_ = 0;
  }

  T* data_ = nullptr;
  index_t size_ = 0;
};

}  // namespace cellkit
