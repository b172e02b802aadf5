#pragma once
// The ZINB decoder heads the count models share (scDeepCluster, scDEFER, scGPCL, scSiameseClu):
// from a decoder's last hidden layer h, three dense heads give
//   mean = mean_activation(h W_m + b_m), theta = dispersion_activation(h W_t + b_t),
//   pi = sigmoid(h W_p + b_p),
// and the loss is the ZINB negative log-likelihood of the counts given size_factor * mean, theta,
// pi, averaged over all elements. `loss_and_backward` does the forward pass, the loss and the whole
// backward pass to dL/dh in one call, since no model needs the heads' outputs for anything else.
// With `dropout_logits` the dropout head's output goes to the likelihood as a logit (scvi-tools'
// form): the same loss, but pi and 1 - pi come from e^-|l|, so a saturated head (pi = 1 in float
// with a count > 0) gives a large finite loss instead of +inf. scDeepCluster applies the sigmoid
// first, and so does the DEC-ZINB example, to match its PyTorch peer.

#include "layers.hpp"

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/likelihood/zinb.hpp>
#include <cellkit/nn/activation.hpp>
#include <cellkit/nn/dense.hpp>
#include <cellkit/nn/parameters.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace examples {

template <class T>
class zinb_heads {
 public:
  zinb_heads(index_t hidden, index_t genes, bool dropout_logits = false)
      : genes_(genes), dropout_logits_(dropout_logits) {
    for (int h = 0; h < 3; ++h) layers_.emplace_back(hidden, genes);
  }

  index_t genes() const { return genes_; }
  index_t hidden() const { return layers_[0].in; }

  /// Glorot-uniform weights from Philox streams `stream`, `stream` + 1, `stream` + 2; returns the next.
  std::uint32_t init(std::uint64_t seed, std::uint32_t stream) { return init_stack(layers_, seed, stream); }

  /// Registers name.mean, name.dispersion, name.dropout.
  void add_to(nn::parameter_list<T>& params, const std::string& name) {
    const char* suffix[3] = {".mean", ".dispersion", ".dropout"};
    for (int h = 0; h < 3; ++h) layers_[h].add_to(params, name + suffix[h]);
  }

  struct workspace {
    host_buffer<T> pre[3], act[3], grad[3];
    workspace(const zinb_heads& heads, index_t max_rows) {
      for (int h = 0; h < 3; ++h) {
        pre[h] = host_buffer<T>(max_rows * heads.genes_);
        act[h] = host_buffer<T>(max_rows * heads.genes_);
        grad[h] = host_buffer<T>(max_rows * heads.genes_);
      }
    }
  };

  /// Returns weight * mean ZINB NLL of `counts` (rows x genes) given h (rows x hidden) and the rows'
  /// size factors. The heads' parameter gradients are overwritten; d_h receives dLoss/dh
  /// (overwritten, or added to with `accumulate_dh`).
  template <class Policy>
  double loss_and_backward(const Policy& policy, matrix_view<const T> h, matrix_view<const T> counts,
                           vector_view<const T> size_factors, workspace& ws, matrix_view<T> d_h, T weight = T(1),
                           bool accumulate_dh = false) {
    const index_t n = h.rows();
    matrix_view<T> pre[3], act[3], grad[3];
    for (int k = 0; k < 3; ++k) {
      pre[k] = matrix_view<T>(ws.pre[k].data(), n, genes_);
      act[k] = matrix_view<T>(ws.act[k].data(), n, genes_);
      grad[k] = matrix_view<T>(ws.grad[k].data(), n, genes_);
      nn::dense_forward(policy, h, layers_[k].weight(), layers_[k].bias(), pre[k]);
    }
    nn::activation_forward(policy, nn::mean_activation{}, pre[0], act[0]);
    nn::activation_forward(policy, nn::dispersion_activation{}, pre[1], act[1]);
    if (!dropout_logits_) nn::activation_forward(policy, nn::sigmoid{}, pre[2], act[2]);
    const matrix_view<const T> pi = dropout_logits_ ? pre[2] : act[2];
    namespace lk = cellkit::likelihood;
    const double loss = static_cast<double>(
        lk::zinb_nll(policy, counts, matrix_view<const T>(act[0]), matrix_view<const T>(act[1]), pi,
                     {.d_mu = grad[0], .d_theta = grad[1], .d_pi = grad[2]},
                     {.reduce = lk::reduction::mean,
                      .size_factors = size_factors,
                      .pi = dropout_logits_ ? lk::pi_parameter::logits : lk::pi_parameter::probability}));
    if (weight != T(1)) {
      for (int k = 0; k < 3; ++k)
        for (index_t e = 0; e < n * genes_; ++e) grad[k].data()[e] *= weight;
    }
    nn::activation_backward(policy, nn::mean_activation{}, pre[0], act[0], grad[0], grad[0]);
    nn::activation_backward(policy, nn::dispersion_activation{}, pre[1], act[1], grad[1], grad[1]);
    if (!dropout_logits_) nn::activation_backward(policy, nn::sigmoid{}, pre[2], act[2], grad[2], grad[2]);
    for (int k = 0; k < 3; ++k) {
      auto& l = layers_[k];
      nn::dense_backward(policy, h, l.weight(), grad[k], d_h, l.dw.as_matrix(l.in, l.out), l.db.view(),
                         {.accumulate_input = accumulate_dh || k > 0});
    }
    return static_cast<double>(weight) * loss;
  }

 private:
  index_t genes_;
  bool dropout_logits_;
  std::vector<dense_layer<T>> layers_;
};

}  // namespace examples
