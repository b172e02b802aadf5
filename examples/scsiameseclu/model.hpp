#pragma once
// A scSiameseClu-style model (Xu et al., IJCAI 2025) assembled from cellkit's parts
// (docs/scsiameseclu.md):
//
//   views     view 1: features + N(0, sigma^2) noise on the kNN graph with edges dropped and added
//             (redrawn every epoch); view 2: clean features on the personalised-PageRank diffusion
//             of the graph (K APPNP steps, never an n x n matrix)
//   encoder   one GCN stack with shared (siamese) weights applied to both views:
//             H_{l+1} = relu(Op_v H_l W_l + b_l), Op_1 = D^-1/2 (A_1 + I) D^-1/2,
//             Op_2 = PPR_K(D^-1/2 (A + I) D^-1/2); the last layer is linear: Z_1, Z_2
//   fusion    Z = (Z_1 + Z_2) / 2
//   decoder   Z -> dense -> relu ... = h, then the ZINB heads (examples/common/zinb_heads.hpp)
//   loss      w_zinb ZINB NLL(counts | s mean, theta, pi)
//             + w_corr CrossCorrelation(Z_1, Z_2)                       (Barlow twins)
//             + w_prop JS(softmax(Z / tau) || softmax(A_hat Z / tau))    (propagation regulariser)
//             + w_cluster KL(P || Q)  (training only; Q Student-t of Z to learnable centres, P the
//               Sinkhorn-balanced target computed from the clean views every epoch)
//
// Every layer's forward and backward is called explicitly (cellkit::nn has no tape). Training is
// full-batch (a graph encoder needs every cell's neighbours), one optimiser step per epoch. The
// training loop is `train(...)`; main.cpp only reads data and writes results.

#include "../common/counts.hpp"
#include "../common/layers.hpp"
#include "../common/training.hpp"
#include "../common/zinb_heads.hpp"

#include <cellkit/cluster/kmeans.hpp>
#include <cellkit/cluster/sinkhorn.hpp>
#include <cellkit/cluster/soft_assignment.hpp>
#include <cellkit/contrastive/cross_correlation.hpp>
#include <cellkit/contrastive/jensen_shannon.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/augment.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/diffusion.hpp>
#include <cellkit/graph/gcn.hpp>
#include <cellkit/graph/normalize.hpp>
#include <cellkit/graph/propagate.hpp>
#include <cellkit/metrics/information.hpp>
#include <cellkit/metrics/pair_counting.hpp>
#include <cellkit/nn/activation.hpp>
#include <cellkit/nn/checkpoint.hpp>
#include <cellkit/nn/dense.hpp>
#include <cellkit/nn/noise.hpp>
#include <cellkit/nn/optimizer.hpp>
#include <cellkit/nn/parameters.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace scsiameseclu {

using cellkit::host_buffer;
using cellkit::index_t;
using cellkit::matrix_view;
using cellkit::vector_view;
namespace nn = cellkit::nn;
namespace graph = cellkit::graph;

/// What the model trains on (examples/common/counts.hpp): features, raw counts, size factors.
template <class T>
using training_data = examples::count_data<T>;
using examples::dense_layer;
using examples::training_diverged;
template <class T>
using propagator = graph::propagator<T>;

/// A setting (the Sinkhorn epsilon, the JS temperature) whose value makes a loss overflow: bad
/// input, reported as such (naming the setting), not as a divergence of the training.
class setting_overflow : public cellkit::invalid_argument {
 public:
  using cellkit::invalid_argument::invalid_argument;
};

/// How a view's graph operator acts on a layer's X W.
enum class view_operator {
  adjacency,      ///< Op = the normalised adjacency (a GCN layer, graph::gcn_forward)
  ppr_diffusion,  ///< Op = K steps of personalised PageRank on it (graph::appnp)
};

/// One augmented view: features and the graph operator the shared encoder runs on.
template <class T>
struct graph_view {
  matrix_view<const T> features;                                   // cells x genes
  const propagator<T>* graph = nullptr;                            // normalised adjacency, cells x cells
  view_operator op = view_operator::adjacency;                     //
  graph::appnp_params<T> diffusion{.hops = 10, .alpha = T(0.15)};  // for ppr_diffusion
};

/// Everything one step reads besides the parameters.
template <class T>
struct step_inputs {
  const training_data<T>* data = nullptr;  // counts and size factors (ZINB target)
  graph_view<T> views[2];
  const propagator<T>* smoothing = nullptr;  // A_hat of the propagation regulariser
};

struct loss_weights {
  double zinb = 1.0;
  double correlation = 0.1;            // Barlow twins loss of the two views' embeddings
  double propagation = 1.0;            // JS propagation regulariser
  double clustering = 1.0;             // KL(P || Q), training phase only
  double correlation_lambda = 0.0051;  // off-diagonal weight inside the Barlow twins loss
  double js_temperature = 1.0;         // logits of the JS term are Z / tau
};

struct architecture {
  std::vector<index_t> encoder{128};  // hidden GCN widths
  index_t latent = 32;
  std::vector<index_t> decoder{128};  // hidden dense widths before the ZINB heads
};

// ---- the model -------------------------------------------------------------------------------

template <class T>
class model {
 public:
  model(index_t genes, index_t clusters, const architecture& arch, std::uint64_t seed)
      : genes_(genes),
        clusters_(clusters),
        latent_(arch.latent),
        centres_(clusters * arch.latent),
        d_centres_(clusters * arch.latent) {
    CELLKIT_EXPECTS(!arch.decoder.empty(), "scsiameseclu::model", "arch.decoder",
                    "needs at least one hidden layer before the ZINB heads");
    std::vector<index_t> widths = arch.encoder;
    widths.push_back(arch.latent);
    encoder_ = examples::make_stack<T>(genes, widths);
    decoder_ = examples::make_stack<T>(arch.latent, arch.decoder);
    heads_.emplace(decoder_.back().out, genes);
    std::uint32_t stream = 0;
    for (auto* group : {&encoder_, &decoder_}) stream = examples::init_stack(*group, seed, stream);
    heads_->init(seed, stream);
    examples::add_stack(encoder_, network_, "encoder");
    examples::add_stack(decoder_, network_, "decoder");
    examples::add_stack(decoder_, reconstruction_, "decoder");
    heads_->add_to(network_, "head");
    heads_->add_to(reconstruction_, "head");
    with_centres_.append(network_);
    with_centres_.add("centres", centres_.as_matrix(clusters, latent_), d_centres_.as_matrix(clusters, latent_));
  }

  index_t genes() const { return genes_; }
  index_t clusters() const { return clusters_; }
  index_t latent() const { return latent_; }
  /// Network weights only (pre-training) / network and centres (training, checkpoints).
  const nn::parameter_list<T>& network_parameters() const { return network_; }
  const nn::parameter_list<T>& all_parameters() const { return with_centres_; }
  matrix_view<T> centres() { return centres_.as_matrix(clusters_, latent_); }

  /// Activations of one view's encoder pass, kept for its backward pass.
  struct encoder_cache {
    std::vector<host_buffer<T>> pre, post, grad;
    host_buffer<T> u, dw, db;  // X W before diffusion / its gradient; GCN gradients to be added
    encoder_cache(const std::vector<dense_layer<T>>& layers, index_t rows) {
      index_t widest = 0, largest = 0;
      for (const auto& l : layers) {
        pre.emplace_back(rows * l.out);
        post.emplace_back(rows * l.out);
        grad.emplace_back(rows * l.out);
        widest = std::max(widest, l.out);
        largest = std::max(largest, l.in * l.out);
      }
      u = host_buffer<T>(rows * widest);
      dw = host_buffer<T>(largest);
      db = host_buffer<T>(widest);
    }
  };

  /// Work buffers for `cells` cells (training is full-batch).
  struct workspace {
    encoder_cache view[2];
    examples::stack_cache<T> dec;
    typename examples::zinb_heads<T>::workspace heads;
    host_buffer<T> z, d_z, d_view[2], logits, smoothed, grad_p, grad_q, back, d_h, grad_kl;
    index_t cells;
    workspace(const model& m, index_t n)
        : view{encoder_cache(m.encoder_, n), encoder_cache(m.encoder_, n)},
          dec(m.decoder_, n),
          heads(*m.heads_, n),
          z(n * m.latent_),
          d_z(n * m.latent_),
          d_view{host_buffer<T>(n * m.latent_), host_buffer<T>(n * m.latent_)},
          logits(n * m.latent_),
          smoothed(n * m.latent_),
          grad_p(n * m.latent_),
          grad_q(n * m.latent_),
          back(n * m.latent_),
          d_h(n * m.heads_->hidden()),
          grad_kl(n * m.latent_),
          cells(n) {}
  };

  /// Unweighted losses of one step (the step minimises their weighted sum).
  struct step_losses {
    double zinb = 0, correlation = 0, propagation = 0, kl = 0;
    double total(const loss_weights& w) const {
      return w.zinb * zinb + w.correlation * correlation + w.propagation * propagation + w.clustering * kl;
    }
  };

  /// Forward and backward of one full-batch step: both views through the shared encoder, the
  /// fused embedding through the decoder and the ZINB heads, the correlation and propagation terms
  /// and, when `target` is given (N x K), KL(P || Q). The gradients of every parameter in
  /// `all_parameters()` are overwritten (the centres' are 0 without a target).
  template <class Policy>
  step_losses step(const Policy& policy, const step_inputs<T>& in, workspace& ws, const loss_weights& w,
                   std::optional<matrix_view<const T>> target = std::nullopt) {
    check_inputs(in, ws, target);
    const index_t n = ws.cells, d = latent_;
    auto mat = [&](host_buffer<T>& b, index_t cols) { return matrix_view<T>(b.data(), n, cols); };
    // 1. the two views through the shared encoder; fusion Z = (Z_1 + Z_2) / 2
    matrix_view<T> zv[2];
    for (int v = 0; v < 2; ++v) zv[v] = encode(policy, in.views[v], ws.view[v]);
    auto z = mat(ws.z, d);
    for (index_t k = 0; k < n * d; ++k) z.data()[k] = T(0.5) * (zv[0].data()[k] + zv[1].data()[k]);
    step_losses losses;
    // 2. ZINB reconstruction from Z: d_z = w_zinb dZINB/dZ
    auto d_z = mat(ws.d_z, d);
    if (w.zinb > 0) {
      auto h = examples::stack_forward(policy, decoder_, true, matrix_view<const T>(z), ws.dec);
      auto d_h = mat(ws.d_h, h.cols());
      const double weighted = heads_->loss_and_backward(
          policy, matrix_view<const T>(h), matrix_view<const T>(in.data->counts.data(), n, genes_),
          vector_view<const T>(in.data->size_factors.data(), n), ws.heads, d_h, static_cast<T>(w.zinb));
      losses.zinb = weighted / w.zinb;
      examples::stack_backward(policy, decoder_, true, matrix_view<const T>(z), ws.dec, d_h, d_z, false);
    } else {
      zero_gradients(reconstruction_);
      std::fill(d_z.data(), d_z.data() + n * d, T(0));
    }
    // 3. propagation regulariser JS(softmax(Z / tau) || softmax(A_hat Z / tau))
    if (w.propagation > 0) losses.propagation = propagation_term(policy, in, ws, w, z, d_z);
    // 4. clustering KL(P || Q) against the Student-t assignment of Z
    if (target) {
      auto grad = mat(ws.grad_kl, d);
      auto r =
          cellkit::cluster::student_t_loss(policy, matrix_view<const T>(z), matrix_view<const T>(centres()), *target,
                                           {.grad_z = grad, .grad_mu = centres_gradient()}, {.alpha = T(1)});
      losses.kl = static_cast<double>(r.loss);
      const T s = static_cast<T>(w.clustering);
      for (index_t k = 0; k < n * d; ++k) d_z.data()[k] += s * grad.data()[k];
      for (index_t k = 0; k < d_centres_.size(); ++k) d_centres_[k] *= s;
    } else {
      std::fill(d_centres_.begin(), d_centres_.end(), T(0));
    }
    // 5. cross-correlation of the two views; dZ_v = w_corr dCC/dZ_v + dZ / 2
    auto d1 = mat(ws.d_view[0], d), d2 = mat(ws.d_view[1], d);
    if (w.correlation > 0) {
      losses.correlation = static_cast<double>(
          cellkit::contrastive::cross_correlation_loss(policy, matrix_view<const T>(zv[0]), matrix_view<const T>(zv[1]),
                                                       d1, d2, {.lambda = static_cast<T>(w.correlation_lambda)}));
    } else {
      std::fill(d1.data(), d1.data() + n * d, T(0));
      std::fill(d2.data(), d2.data() + n * d, T(0));
    }
    const T c = static_cast<T>(w.correlation);
    for (index_t k = 0; k < n * d; ++k) {
      d1.data()[k] = c * d1.data()[k] + T(0.5) * d_z.data()[k];
      d2.data()[k] = c * d2.data()[k] + T(0.5) * d_z.data()[k];
    }
    // 6. encoder backward, view 1 writes the shared gradients, view 2 adds to them
    encode_backward(policy, in.views[0], ws.view[0], d1, false);
    encode_backward(policy, in.views[1], ws.view[1], d2, true);
    return losses;
  }

  /// The fused embedding (cells x latent) of the given (normally un-augmented) views.
  template <class Policy>
  void embed(const Policy& policy, const graph_view<T>& view_1, const graph_view<T>& view_2, workspace& ws,
             matrix_view<T> out) {
    auto z1 = encode(policy, view_1, ws.view[0]);
    auto z2 = encode(policy, view_2, ws.view[1]);
    for (index_t i = 0; i < out.rows(); ++i)
      for (index_t j = 0; j < latent_; ++j) out(i, j) = T(0.5) * (z1(i, j) + z2(i, j));
  }

 private:
  matrix_view<T> centres_gradient() { return d_centres_.as_matrix(clusters_, latent_); }

  static void zero_gradients(const nn::parameter_list<T>& params) {
    for (const auto& p : params) std::fill(p.grad.data(), p.grad.data() + p.size(), T(0));
  }

  void check_inputs(const step_inputs<T>& in, const workspace& ws, std::optional<matrix_view<const T>> target) const {
    constexpr const char* fn = "scsiameseclu::model::step";
    CELLKIT_EXPECTS(in.data != nullptr && in.smoothing != nullptr, fn, "inputs", "needs the data and A_hat");
    const cellkit::shape2 expected{ws.cells, genes_};
    const char* feature_names[2] = {"view 1 features", "view 2 features"};
    const char* graph_names[2] = {"view 1 graph", "view 2 graph"};
    for (int v = 0; v < 2; ++v) {
      const auto& view = in.views[v];
      cellkit::expect_shapes(view.features.rows() == ws.cells && view.features.cols() == genes_, fn, feature_names[v],
                             view.features.shape(), "cells x genes", expected,
                             "both views hold the same cells and genes as the model and its workspace");
      CELLKIT_EXPECTS(view.graph != nullptr, fn, graph_names[v], "is missing");
      cellkit::expect_shapes(view.graph->matrix().rows() == ws.cells && view.graph->matrix().cols() == ws.cells, fn,
                             graph_names[v], view.graph->matrix().shape(), feature_names[v], view.features.shape(),
                             "one graph node per cell");
    }
    cellkit::expect_shapes(in.smoothing->matrix().rows() == ws.cells, fn, "smoothing graph",
                           in.smoothing->matrix().shape(), "cells x genes", expected, "one graph node per cell");
    cellkit::expect_shapes(in.data->cells == ws.cells && in.data->genes == genes_, fn, "data",
                           {in.data->cells, in.data->genes}, "cells x genes", expected,
                           "the counts cover the views' cells and genes");
    if (target) {
      cellkit::expect_shapes(target->rows() == ws.cells && target->cols() == clusters_, fn, "target", target->shape(),
                             "cells x clusters", {ws.cells, clusters_}, "one target row per cell");
    }
  }

  template <class Policy>
  double propagation_term(const Policy& policy, const step_inputs<T>& in, workspace& ws, const loss_weights& w,
                          matrix_view<T> z, matrix_view<T> d_z) {
    const index_t n = ws.cells, d = latent_;
    auto logits = matrix_view<T>(ws.logits.data(), n, d);
    auto smoothed = matrix_view<T>(ws.smoothed.data(), n, d);
    auto gp = matrix_view<T>(ws.grad_p.data(), n, d);
    auto gq = matrix_view<T>(ws.grad_q.data(), n, d);
    auto back = matrix_view<T>(ws.back.data(), n, d);
    const T inv_tau = static_cast<T>(1.0 / w.js_temperature);
    bool z_finite = true, logits_finite = true;
    for (index_t k = 0; k < n * d; ++k) {
      logits.data()[k] = z.data()[k] * inv_tau;
      z_finite = z_finite && std::isfinite(z.data()[k]);
      logits_finite = logits_finite && std::isfinite(logits.data()[k]);
    }
    if (z_finite && !logits_finite) {
      std::string message = "scsiameseclu: invalid argument 'js_temperature': ";
      message += std::to_string(w.js_temperature);
      message += " makes the JS logits Z / tau overflow (|Z| up to ";
      message += std::to_string(max_abs(z));
      message += "); use a larger temperature";
      throw setting_overflow(message);
    }
    graph::propagate(policy, *in.smoothing, matrix_view<const T>(logits), smoothed);
    const double js = static_cast<double>(cellkit::contrastive::jensen_shannon(policy, matrix_view<const T>(logits),
                                                                               matrix_view<const T>(smoothed), gp, gq));
    // dJS/dZ = (g_p + A_hat^T g_q) / tau
    graph::propagate_transpose(policy, *in.smoothing, matrix_view<const T>(gq), back);
    const T s = static_cast<T>(w.propagation) * inv_tau;
    for (index_t k = 0; k < n * d; ++k) d_z.data()[k] += s * (gp.data()[k] + back.data()[k]);
    return js;
  }

  static double max_abs(matrix_view<const T> m) {
    double v = 0;
    for (index_t i = 0; i < m.rows(); ++i)
      for (index_t j = 0; j < m.cols(); ++j) v = std::max(v, std::fabs(static_cast<double>(m(i, j))));
    return v;
  }

  /// Shared encoder on one view: relu(Op X W + b) per hidden layer, a linear last layer.
  template <class Policy>
  matrix_view<T> encode(const Policy& policy, const graph_view<T>& view, encoder_cache& c) {
    const index_t n = view.features.rows();
    matrix_view<const T> x = view.features;
    matrix_view<T> out;
    for (std::size_t l = 0; l < encoder_.size(); ++l) {
      const auto& layer = encoder_[l];
      auto pre = matrix_view<T>(c.pre[l].data(), n, layer.out);
      if (view.op == view_operator::adjacency) {
        graph::gcn_forward(policy, *view.graph, x, layer.weight(), layer.bias(), pre);
      } else {
        // PPR_K(A_hat) X W + b: the diffusion is linear, so it runs on X W (width f_out, not f_in)
        auto u = matrix_view<T>(c.u.data(), n, layer.out);
        nn::dense_forward(policy, x, layer.weight(), std::nullopt, u);
        graph::appnp(policy, *view.graph, matrix_view<const T>(u), pre, view.diffusion);
        for (index_t i = 0; i < n; ++i)
          for (index_t j = 0; j < layer.out; ++j) pre(i, j) += layer.b[j];
      }
      out = pre;
      if (l + 1 < encoder_.size()) {
        out = matrix_view<T>(c.post[l].data(), n, layer.out);
        nn::activation_forward(policy, nn::relu{}, pre, out);
      }
      x = out;
    }
    return out;
  }

  /// Backward of `encode`: d_out (overwritten) -> the shared weights' gradients, overwritten or
  /// (`accumulate`) added to.
  template <class Policy>
  void encode_backward(const Policy& policy, const graph_view<T>& view, encoder_cache& c, matrix_view<T> d_out,
                       bool accumulate) {
    const index_t n = view.features.rows();
    matrix_view<T> d = d_out;
    for (std::size_t l = encoder_.size(); l-- > 0;) {
      auto& layer = encoder_[l];
      if (l + 1 < encoder_.size()) {
        auto pre = matrix_view<T>(c.pre[l].data(), n, layer.out);
        auto post = matrix_view<T>(c.post[l].data(), n, layer.out);
        nn::activation_backward(policy, nn::relu{}, pre, post, d, d);
      }
      matrix_view<const T> x =
          l == 0 ? view.features : matrix_view<const T>(c.post[l - 1].data(), n, encoder_[l - 1].out);
      std::optional<matrix_view<T>> d_in;
      if (l > 0) d_in = matrix_view<T>(c.grad[l - 1].data(), n, encoder_[l - 1].out);
      const index_t weights = layer.in * layer.out;
      if (view.op == view_operator::adjacency) {
        // gcn_backward overwrites its outputs: a second view's gradients go through scratch
        auto dw =
            accumulate ? matrix_view<T>(c.dw.data(), layer.in, layer.out) : layer.dw.as_matrix(layer.in, layer.out);
        auto db = accumulate ? vector_view<T>(c.db.data(), layer.out) : layer.db.view();
        graph::gcn_backward(policy, *view.graph, x, layer.weight(), matrix_view<const T>(d), d_in, dw, db);
        if (accumulate) {
          for (index_t k = 0; k < weights; ++k) layer.dw[k] += c.dw[k];
          for (index_t j = 0; j < layer.out; ++j) layer.db[j] += c.db[j];
        }
      } else {
        auto u = matrix_view<T>(c.u.data(), n, layer.out);
        graph::appnp_backward(policy, *view.graph, matrix_view<const T>(d), u, view.diffusion);
        nn::dense_backward(policy, x, layer.weight(), matrix_view<const T>(u), d_in,
                           layer.dw.as_matrix(layer.in, layer.out), std::nullopt, {.accumulate = accumulate});
        // the bias is added after the diffusion: db = column sums of d (rows in order)
        for (index_t j = 0; j < layer.out; ++j) {
          T sum = T(0);
          for (index_t i = 0; i < n; ++i) sum += d(i, j);
          layer.db[j] = accumulate ? layer.db[j] + sum : sum;
        }
      }
      if (l > 0) d = *d_in;
    }
  }

  index_t genes_, clusters_, latent_;
  std::vector<dense_layer<T>> encoder_, decoder_;
  std::optional<examples::zinb_heads<T>> heads_;  // built once the decoder's width is known
  host_buffer<T> centres_, d_centres_;
  nn::parameter_list<T> network_, with_centres_, reconstruction_;
};

// ---- training --------------------------------------------------------------------------------

struct train_config {
  index_t clusters = 0;
  architecture arch{};
  loss_weights weights{};
  double noise_sd = 0.5;     // view 1: Gaussian noise on the scaled features
  double edge_remove = 0.1;  // view 1: probability of dropping an edge (pairs together)
  double edge_add = 0.1;     // view 1: round(edge_add * degree) new edges per cell
  index_t diffusion_steps = 10;
  double diffusion_alpha = 0.15;  // PPR teleport probability of view 2
  int pretrain_epochs = 60;
  double pretrain_lr = 1e-3;
  int train_max_epochs = 40;
  double train_lr = 1e-3;
  double tol = 0.001;  // stop training when fewer than this fraction of labels change
  double sinkhorn_epsilon = 0.5;
  std::optional<double> sinkhorn_reg_m;  // unbalanced transport with this tau; empty = balanced
  int kmeans_restarts = 20;
  std::uint64_t seed = 0;
  std::string checkpoint;  // saved after every good epoch when not empty
};

struct progress {
  const char* phase = "";  // "pretrain", "kmeans", "train"
  int epoch = 0;
  double zinb = 0, correlation = 0, propagation = 0, kl = 0, total = 0;
  double labels_changed = -1;  // fraction, training only
  std::optional<double> ari, nmi;
  double seconds = 0;  // since training started
};

template <class T>
struct train_result {
  host_buffer<T> latent;  // cells x latent
  host_buffer<T> q;       // cells x clusters
  std::vector<index_t> labels;
  std::vector<index_t> kmeans_labels;  // initial clustering of the pre-trained latent
  int pretrain_epochs = 0, train_epochs = 0;
  bool converged = false;
  double first_pretrain_loss = 0, last_pretrain_loss = 0;  // weighted totals
  double pretrain_seconds = 0, kmeans_seconds = 0, train_seconds = 0;
  std::optional<double> ari, nmi, kmeans_ari;
};

/// The Sinkhorn-refined clustering target: the entropic transport plan between cells (mass 1/N
/// each) and clusters (1/K each, or softly with reg_m) under the cost -log k_ij (the Student-t
/// kernel), rows scaled to 1. With epsilon = 1 the rows are q rescaled per cluster; epsilon = 1/2
/// squares the kernel first, DEC's sharpening. Throws `setting_overflow` naming the epsilon when
/// the plan is not finite.
template <class T, class Policy>
void sinkhorn_target(const Policy& policy, matrix_view<const T> z, matrix_view<const T> centres, matrix_view<T> p,
                     const train_config& cfg) {
  const index_t n = z.rows(), k = centres.rows();
  std::vector<T> a(static_cast<std::size_t>(n), static_cast<T>(1.0 / static_cast<double>(n)));
  std::vector<T> b(static_cast<std::size_t>(k), static_cast<T>(1.0 / static_cast<double>(k)));
  cellkit::cluster::sinkhorn_params<T> params{.epsilon = static_cast<T>(cfg.sinkhorn_epsilon), .max_iter = 500};
  params.tol = static_cast<T>(1e-4 / static_cast<double>(k));
  if (cfg.sinkhorn_reg_m) params.reg_m = static_cast<T>(*cfg.sinkhorn_reg_m);
  auto r = cellkit::cluster::sinkhorn(
      policy, cellkit::cluster::pairwise_cost<T>{z, centres, cellkit::cluster::pairwise_cost_kind::student_t, T(1)},
      cellkit::make_vector_view(static_cast<const T*>(a.data()), n),
      cellkit::make_vector_view(static_cast<const T*>(b.data()), k), {.plan = p}, params);
  bool finite = r.reason != cellkit::cluster::stop_reason::numerical_error;
  for (index_t i = 0; i < n && finite; ++i) {
    double sum = 0;
    for (index_t j = 0; j < k; ++j) sum += static_cast<double>(p(i, j));
    finite = std::isfinite(sum) && sum > 0;
    if (finite)
      for (index_t j = 0; j < k; ++j) p(i, j) = static_cast<T>(static_cast<double>(p(i, j)) / sum);
  }
  if (!finite) {
    std::string message = "scsiameseclu: invalid argument 'sinkhorn_epsilon': ";
    message += std::to_string(cfg.sinkhorn_epsilon);
    message += " makes the Sinkhorn target overflow or vanish (cost / epsilon out of range); use a larger epsilon";
    throw setting_overflow(message);
  }
}

/// Checks the settings before any work.
inline void check_config(const train_config& cfg, bool single_precision) {
  constexpr const char* fn = "scsiameseclu::train";
  const auto& w = cfg.weights;
  for (const auto& [name, value] :
       {std::pair{"weights.zinb", w.zinb}, std::pair{"weights.correlation", w.correlation},
        std::pair{"weights.propagation", w.propagation}, std::pair{"weights.clustering", w.clustering},
        std::pair{"weights.correlation_lambda", w.correlation_lambda}, std::pair{"noise_sd", cfg.noise_sd},
        std::pair{"edge_add", cfg.edge_add}}) {
    CELLKIT_EXPECTS(std::isfinite(value) && value >= 0, fn, name,
                    "must be finite and >= 0, got " + std::to_string(value));
  }
  CELLKIT_EXPECTS(cfg.edge_remove >= 0 && cfg.edge_remove <= 1, fn, "edge_remove", "must be a probability in [0, 1]");
  CELLKIT_EXPECTS(cfg.diffusion_alpha > 0 && cfg.diffusion_alpha <= 1, fn, "diffusion_alpha",
                  "must be in (0, 1], got " + std::to_string(cfg.diffusion_alpha));
  CELLKIT_EXPECTS(cfg.diffusion_steps >= 0, fn, "diffusion_steps", "must be >= 0");
  const double largest =
      single_precision ? static_cast<double>(std::numeric_limits<float>::max()) : std::numeric_limits<double>::max();
  for (const auto& [name, value] :
       {std::pair{"sinkhorn_epsilon", cfg.sinkhorn_epsilon}, std::pair{"js_temperature", w.js_temperature}}) {
    CELLKIT_EXPECTS(std::isfinite(value) && value > 0, fn, name,
                    "must be finite and > 0, got " + std::to_string(value));
    if (!(1.0 / value <= largest)) {
      std::string message = "scsiameseclu::train: invalid argument '";
      message += name;
      message += "': 1 / ";
      message += std::to_string(value);
      message += " overflows the floating-point type; every scaled cost or logit would be infinite";
      throw setting_overflow(message);
    }
  }
  if (cfg.sinkhorn_reg_m)
    CELLKIT_EXPECTS(std::isfinite(*cfg.sinkhorn_reg_m) && *cfg.sinkhorn_reg_m > 0, fn, "sinkhorn_reg_m",
                    "must be finite and > 0");
}

/// Pre-trains on ZINB + correlation + propagation, initialises the centres by k-means on the
/// clean fused latent, then trains with w_cluster KL(P || Q) added (P from Sinkhorn every epoch)
/// until fewer than `tol` of the labels change between epochs. `knn` is the symmetric cell graph
/// (unnormalised; its self-loops are added here).
template <class T, class Policy>
train_result<T> train(const Policy& policy, const training_data<T>& data, const graph::csr_graph<T>& knn, model<T>& m,
                      const train_config& cfg, const std::function<void(const progress&)>& report = {}) {
  constexpr const char* fn = "scsiameseclu::train";
  examples::check_count_data(data, cfg.clusters, fn);
  CELLKIT_EXPECTS(m.genes() == data.genes, fn, "model",
                  "built for " + std::to_string(m.genes()) + " genes but the data have " + std::to_string(data.genes));
  CELLKIT_EXPECTS(
      m.clusters() == cfg.clusters, fn, "model",
      "built for " + std::to_string(m.clusters()) + " clusters but cfg.clusters is " + std::to_string(cfg.clusters));
  cellkit::expect_shapes(knn.num_nodes() == data.cells, fn, "graph", {knn.num_nodes(), knn.num_nodes()}, "data",
                         {data.cells, data.genes}, "one graph node per cell");
  index_t edges = 0;
  {
    const auto g = knn.view();
    for (index_t i = 0; i < g.rows(); ++i)
      for (index_t p = g.row_begin(i); p < g.row_end(i); ++p) edges += g.indices()[p] != i;
  }
  CELLKIT_EXPECTS(edges > 0, fn, "graph",
                  "has no edges between cells: the graph encoder and the propagation regulariser need neighbours");
  CELLKIT_EXPECTS(data.cells >= 2, fn, "data", "needs at least 2 cells (the correlation standardises over cells)");
  check_config(cfg, sizeof(T) == sizeof(float));

  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto notify = [&](const progress& p) {
    if (report) report(p);
  };
  const index_t n = data.cells, k = cfg.clusters;
  const auto features = matrix_view<const T>(data.features.data(), n, data.genes);
  const propagator<T> a_hat(graph::normalize(policy, knn, {graph::normalization::symmetric, T(1)}));
  const graph::appnp_params<T> diffusion{.hops = cfg.diffusion_steps, .alpha = static_cast<T>(cfg.diffusion_alpha)};
  const graph_view<T> clean_1{features, &a_hat, view_operator::adjacency, diffusion};
  const graph_view<T> clean_2{features, &a_hat, view_operator::ppr_diffusion, diffusion};
  typename model<T>::workspace ws(m, n);
  host_buffer<T> noisy(n * data.genes);
  std::uint64_t global_epoch = 0;

  // one augmented pair of views per epoch: fresh noise and edge perturbation (Philox keyed by epoch)
  auto augmented = [&](std::optional<propagator<T>>& perturbed) {
    nn::gaussian_noise(policy, features, noisy.as_matrix(n, data.genes),
                       {.sigma = cfg.noise_sd, .key = {.seed = cfg.seed, .stream = 2, .step = global_epoch}});
    auto graph_1 = graph::perturb_edges(policy, knn.view(),
                                        {.p_remove = cfg.edge_remove,
                                         .p_add = cfg.edge_add,
                                         .seed = cfg.seed,
                                         .stream = static_cast<std::uint32_t>(16 + 2 * global_epoch),
                                         .symmetric = true});
    perturbed.emplace(graph::normalize(policy, graph_1, {graph::normalization::symmetric, T(1)}));
    step_inputs<T> in;
    in.data = &data;
    in.views[0] = {matrix_view<const T>(noisy.data(), n, data.genes), &*perturbed, view_operator::adjacency, diffusion};
    in.views[1] = clean_2;
    in.smoothing = &a_hat;
    ++global_epoch;
    return in;
  };

  examples::last_good_epoch<T> good(m.all_parameters(), cfg.checkpoint);
  // One optimiser step on one augmented pair; layer errors on produced values are a divergence.
  auto run_step = [&](const char* phase, int epoch, auto& opt, const nn::parameter_list<T>& params,
                      std::optional<matrix_view<const T>> target) {
    std::optional<propagator<T>> perturbed;
    auto in = augmented(perturbed);
    typename model<T>::step_losses l;
    try {
      l = m.step(policy, in, ws, cfg.weights, target);
    } catch (const setting_overflow&) {
      throw;
    } catch (const cellkit::invalid_argument& e) {
      // the inputs were checked up front: a rejected value here was produced by the training
      good.diverged(phase, epoch, std::string("a layer output (") + e.what() + ")");
    }
    const double total = l.total(cfg.weights);
    if (!std::isfinite(total)) good.diverged(phase, epoch, "the loss");
    opt.step(policy, params);
    if (!examples::all_finite(params)) good.diverged(phase, epoch, "a parameter");
    good.save();
    progress pr;
    pr.phase = phase;
    pr.epoch = epoch;
    pr.zinb = l.zinb;
    pr.correlation = l.correlation;
    pr.propagation = l.propagation;
    pr.kl = l.kl;
    pr.total = total;
    return pr;
  };
  train_result<T> result;

  // 1. pre-training: ZINB + correlation + propagation
  {
    nn::adam<T> opt({.lr = static_cast<T>(cfg.pretrain_lr)});
    for (int epoch = 1; epoch <= cfg.pretrain_epochs; ++epoch) {
      auto pr = run_step("pretrain", epoch, opt, m.network_parameters(), std::nullopt);
      if (epoch == 1) result.first_pretrain_loss = pr.total;
      result.last_pretrain_loss = pr.total;
      result.pretrain_epochs = epoch;
      pr.seconds = seconds();
      notify(pr);
    }
  }
  result.pretrain_seconds = seconds();

  // 2. centres from k-means on the clean fused latent
  result.latent = host_buffer<T>(n * m.latent());
  auto latent = result.latent.as_matrix(n, m.latent());
  m.embed(policy, clean_1, clean_2, ws, latent);
  if (!examples::all_finite(m.network_parameters())) good.diverged("kmeans", 0, "a parameter");
  for (index_t e = 0; e < n * m.latent(); ++e)
    if (!std::isfinite(latent.data()[e])) good.diverged("kmeans", 0, "the latent embedding");
  {
    auto km = cellkit::cluster::kmeans(policy, matrix_view<const T>(latent),
                                       {.k = k, .n_init = cfg.kmeans_restarts, .seed = cfg.seed});
    std::copy(km.centres.begin(), km.centres.end(), m.centres().data());
    result.kmeans_labels = km.labels;
    std::optional<double> nmi;
    examples::score_labels(data.labels, km.labels, result.kmeans_ari, nmi);
    good.save();
    progress pr;
    pr.phase = "kmeans";
    pr.ari = result.kmeans_ari;
    pr.nmi = nmi;
    pr.seconds = seconds();
    notify(pr);
  }
  result.kmeans_seconds = seconds() - result.pretrain_seconds;

  // 3. training with the clustering loss; Q and the Sinkhorn target P from the clean views
  result.q = host_buffer<T>(n * k);
  auto q = result.q.as_matrix(n, k);
  host_buffer<T> p(n * k);
  auto assign = [&] {
    m.embed(policy, clean_1, clean_2, ws, latent);
    cellkit::cluster::student_t_assign(policy, matrix_view<const T>(latent), matrix_view<const T>(m.centres()), q,
                                       T(1));
    return examples::argmax_rows<T>(matrix_view<const T>(q));
  };
  {
    nn::adam<T> opt({.lr = static_cast<T>(cfg.train_lr)});
    std::vector<index_t> previous = result.kmeans_labels;
    for (int epoch = 1; epoch <= cfg.train_max_epochs; ++epoch) {
      auto labels = assign();
      index_t changed = 0;
      for (index_t i = 0; i < n; ++i) changed += labels[i] != previous[i];
      const double fraction = static_cast<double>(changed) / static_cast<double>(n);
      previous = labels;
      if (epoch > 1 && fraction < cfg.tol) {
        result.converged = true;
        break;
      }
      sinkhorn_target(policy, matrix_view<const T>(latent), matrix_view<const T>(m.centres()), p.as_matrix(n, k), cfg);
      auto pr = run_step("train", epoch, opt, m.all_parameters(), matrix_view<const T>(p.as_matrix(n, k)));
      result.train_epochs = epoch;
      pr.labels_changed = fraction;
      examples::score_labels(data.labels, labels, pr.ari, pr.nmi);
      pr.seconds = seconds();
      notify(pr);
    }
  }
  result.labels = assign();
  examples::score_labels(data.labels, result.labels, result.ari, result.nmi);
  result.train_seconds = seconds() - result.pretrain_seconds - result.kmeans_seconds;
  return result;
}

}  // namespace scsiameseclu
