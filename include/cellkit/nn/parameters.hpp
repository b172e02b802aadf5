#pragma once
/// @file
/// `parameter_list<T>`: the named (value, gradient) pairs of a model that optimizers, gradient
/// clipping and checkpoints work on (namespace `cellkit::nn`).
///
/// The list does not own memory: each entry views a parameter the model owns (a weight matrix, a
/// bias vector, cluster centres) and the buffer its backward pass writes the gradient into. Entries
/// must be contiguous (stride == cols), non-empty, with the gradient of the value's shape, and names
/// must be unique (they identify the entry in a checkpoint). Vectors are stored as size x 1.
/// Host memory (the optimizers keep their state in host buffers).
///
/// ```cpp
/// cellkit::nn::parameter_list<float> params;
/// params.add("encoder.0.weight", w0.as_matrix(g, 256), dw0.as_matrix(g, 256));
/// params.add("encoder.0.bias", b0.view(), db0.view());
/// params.zero_grad();
/// ```

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace cellkit::nn {

/// One named parameter: its value and gradient (same shape, contiguous).
template <class T>
struct parameter {
  std::string name;
  matrix_view<T> value;
  matrix_view<T> grad;

  index_t size() const { return value.rows() * value.cols(); }
};

/// An ordered list of named parameters. See the file comment.
template <class T>
class parameter_list {
 public:
  /// Adds a matrix parameter. Throws `invalid_argument` for an empty or strided view or a duplicate
  /// name, `dimension_mismatch` when grad's shape differs from value's.
  void add(std::string name, matrix_view<T> value, matrix_view<T> grad) {
    constexpr const char* fn = "parameter_list::add";
    CELLKIT_EXPECTS(!name.empty(), fn, "name", "must not be empty");
    CELLKIT_EXPECTS(find(name) == nullptr, fn, "name", "'" + name + "' is already in the list");
    CELLKIT_EXPECTS(value.rows() > 0 && value.cols() > 0, fn, "value", "parameter '" + name + "' is empty");
    CELLKIT_EXPECTS(value.stride() == value.cols() && grad.stride() == grad.cols(), fn, "value",
                    "parameter '" + name + "' must be contiguous (stride == cols)");
    expect_shapes(value.rows() == grad.rows() && value.cols() == grad.cols(), fn, "value", value.shape(), "grad",
                  grad.shape(), "a gradient has the shape of its parameter");
    entries_.push_back({std::move(name), value, grad});
  }

  /// Adds a vector parameter (stored as size x 1).
  void add(std::string name, vector_view<T> value, vector_view<T> grad) {
    add(std::move(name), matrix_view<T>(value.data(), value.size(), 1), matrix_view<T>(grad.data(), grad.size(), 1));
  }

  /// Appends every entry of `other` with `prefix` before its name (e.g. "encoder.").
  void append(const parameter_list& other, const std::string& prefix = {}) {
    for (const auto& p : other) add(prefix + p.name, p.value, p.grad);
  }

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const parameter<T>& operator[](std::size_t i) const { return entries_[i]; }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }

  /// The entry called `name`, or nullptr.
  const parameter<T>* find(const std::string& name) const {
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const parameter<T>& p) { return p.name == name; });
    return it == entries_.end() ? nullptr : &*it;
  }

  /// Total number of scalars over all entries.
  index_t total_size() const {
    index_t n = 0;
    for (const auto& p : entries_) n += p.size();
    return n;
  }

  /// Sets every gradient to zero.
  void zero_grad() const {
    for (const auto& p : entries_) std::fill_n(p.grad.data(), p.size(), T(0));
  }

 private:
  std::vector<parameter<T>> entries_;
};

}  // namespace cellkit::nn
