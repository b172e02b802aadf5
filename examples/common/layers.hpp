#pragma once
// Dense layer stacks for the example models: a layer's parameters with their gradients, a stack's
// forward pass (ReLU between layers) that keeps what its backward pass needs, and that backward
// pass. Every call is explicit: cellkit::nn has no tape.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/nn/activation.hpp>
#include <cellkit/nn/dense.hpp>
#include <cellkit/nn/init.hpp>
#include <cellkit/nn/parameters.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace examples {

using cellkit::host_buffer;
using cellkit::index_t;
using cellkit::matrix_view;
using cellkit::vector_view;
namespace nn = cellkit::nn;

/// One dense layer's parameters and their gradients.
template <class T>
struct dense_layer {
  index_t in = 0, out = 0;
  host_buffer<T> w, b, dw, db;

  dense_layer(index_t fan_in, index_t fan_out)
      : in(fan_in), out(fan_out), w(fan_in * fan_out), b(fan_out), dw(fan_in * fan_out), db(fan_out) {}

  matrix_view<T> weight() { return w.as_matrix(in, out); }
  matrix_view<const T> weight() const { return matrix_view<const T>(w.data(), in, out); }
  vector_view<const T> bias() const { return vector_view<const T>(b.data(), out); }

  void add_to(nn::parameter_list<T>& params, const std::string& name) {
    params.add(name + ".weight", w.as_matrix(in, out), dw.as_matrix(in, out));
    params.add(name + ".bias", b.view(), db.view());
  }
};

/// Activations of one pass through a stack of layers (kept for its backward pass).
template <class T>
struct stack_cache {
  std::vector<host_buffer<T>> pre, post, grad;

  stack_cache(const std::vector<dense_layer<T>>& layers, index_t max_rows) {
    for (const auto& l : layers) {
      pre.emplace_back(max_rows * l.out);
      post.emplace_back(max_rows * l.out);
      grad.emplace_back(max_rows * l.out);
    }
  }
  static matrix_view<T> rows(host_buffer<T>& b, index_t n, index_t cols) { return matrix_view<T>(b.data(), n, cols); }
};

/// Dense layers with ReLU between them (and after the last one when `activate_last`).
template <class T, class Policy>
matrix_view<T> stack_forward(const Policy& policy, const std::vector<dense_layer<T>>& layers, bool activate_last,
                             std::type_identity_t<matrix_view<const T>> x, stack_cache<T>& cache) {
  const index_t n = x.rows();
  matrix_view<const T> in = x;
  matrix_view<T> out;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    auto pre = stack_cache<T>::rows(cache.pre[l], n, layers[l].out);
    nn::dense_forward(policy, in, layers[l].weight(), layers[l].bias(), pre);
    out = pre;
    if (l + 1 < layers.size() || activate_last) {
      out = stack_cache<T>::rows(cache.post[l], n, layers[l].out);
      nn::activation_forward(policy, nn::relu{}, pre, out);
    }
    in = out;
  }
  return out;
}

/// Backward of `stack_forward`: d_out (overwritten: it becomes the last layer's pre-activation
/// gradient) -> parameter gradients (overwritten, or added with `accumulate`) and, if requested, dx.
template <class T, class Policy>
void stack_backward(const Policy& policy, std::vector<dense_layer<T>>& layers, bool activate_last,
                    std::type_identity_t<matrix_view<const T>> x, stack_cache<T>& cache,
                    std::type_identity_t<matrix_view<T>> d_out, std::type_identity_t<std::optional<matrix_view<T>>> dx,
                    bool accumulate) {
  const index_t n = x.rows();
  matrix_view<T> d = d_out;
  for (std::size_t l = layers.size(); l-- > 0;) {
    auto& layer = layers[l];
    if (l + 1 < layers.size() || activate_last) {
      auto pre = stack_cache<T>::rows(cache.pre[l], n, layer.out);
      auto post = stack_cache<T>::rows(cache.post[l], n, layer.out);
      nn::activation_backward(policy, nn::relu{}, pre, post, d, d);
    }
    matrix_view<const T> input =
        l == 0 ? x : matrix_view<const T>(stack_cache<T>::rows(cache.post[l - 1], n, layers[l - 1].out));
    std::optional<matrix_view<T>> d_in = dx;
    if (l > 0) d_in = stack_cache<T>::rows(cache.grad[l - 1], n, layers[l - 1].out);
    nn::dense_backward(policy, input, layer.weight(), d, d_in, layer.dw.as_matrix(layer.in, layer.out), layer.db.view(),
                       {.accumulate = accumulate});
    if (l > 0) d = *d_in;
  }
}

/// Dense layers of widths in -> widths[0] -> ... -> widths.back().
template <class T>
std::vector<dense_layer<T>> make_stack(index_t in, const std::vector<index_t>& widths) {
  std::vector<dense_layer<T>> layers;
  for (index_t w : widths) {
    layers.emplace_back(in, w);
    in = w;
  }
  return layers;
}

/// Glorot-uniform weights (one Philox stream per layer, counted from `stream`) and zero biases;
/// returns the next unused stream.
template <class T>
std::uint32_t init_stack(std::vector<dense_layer<T>>& layers, std::uint64_t seed, std::uint32_t stream) {
  for (auto& l : layers) {
    nn::init_weights(cellkit::serial{}, l.weight(),
                     {.scheme = nn::weight_init::glorot_uniform, .key = {seed, stream++}});
  }
  return stream;
}

/// Registers the layers as name.0, name.1, ...
template <class T>
void add_stack(std::vector<dense_layer<T>>& layers, nn::parameter_list<T>& params, const std::string& name) {
  int i = 0;
  for (auto& l : layers) {
    std::string n = name;
    n += '.';
    n += std::to_string(i++);
    l.add_to(params, n);
  }
}

}  // namespace examples
