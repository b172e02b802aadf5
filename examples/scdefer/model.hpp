#pragma once
// A scDEFER-style deep embedded fusion model (Chen et al.; ../shared/seeds/004) assembled from
// cellkit's parts (docs/scdefer.md). Full batch: the graph layers need every cell.
//
//   graph      A: binary KNN graph (K = 10, union) on the scaled highly variable genes;
//              A_hat = D^-1/2 A D^-1/2 for the convolutions, A + I as the reconstruction target
//   encoders   three fused layers l = 1, 2, 3 with widths (1024, 128, 24):
//                Z^1 = X,  Z^l = a H_D^(l-1) + (1 - a) H_G^(l-1)  (a = 0.1)
//                H_D^l = relu(Z^l W_l + b_l)                     (dense, "fusion cell topology")
//                H_G^l = relu(sum_k A_hat^k Z^l G_lk + c_l)        (TAGCN, "graph encoder")
//              the last layer has no ReLU: Z_D = H_D^3, Z_G = H_G^3, fused Z = a Z_D + (1 - a) Z_G
//   decoders   Z -> dense 128 -> relu -> dense 1024 -> relu -> ZINB heads (mean, dispersion, dropout);
//              inner-product graph decoder sigma(Z Z^T) against A + I with the squared loss
//   clustering Student-t Q (alpha = 1) of Z, Z_D, Z_G against shared centres mu; targets P, P_D,
//              P_G from them (detached, recomputed every epoch)
//   loss       pre-training: g1 L_graph + g2 L_ZINB
//              training:     g1 L_graph + g2 L_ZINB + g3 KL(P || Q) + g4 (BCE(P_D, Q_D) + BCE(P_G, Q_G))
//              (g1, g2, g3, g4) = (0.3, 0.1, 0.5, 0.1)
//
// Every part's forward and backward is called explicitly (cellkit::nn has no tape); `step` is one
// full-batch forward + backward, `train` the two phases. main.cpp only reads data and writes results.

#include "../common/counts.hpp"
#include "../common/layers.hpp"
#include "../common/training.hpp"
#include "../common/zinb_heads.hpp"

#include <cellkit/cluster/kmeans.hpp>
#include <cellkit/cluster/soft_assignment.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/decoders.hpp>
#include <cellkit/graph/knn.hpp>
#include <cellkit/graph/normalize.hpp>
#include <cellkit/graph/propagate.hpp>
#include <cellkit/graph/tagcn.hpp>
#include <cellkit/metrics/information.hpp>
#include <cellkit/metrics/pair_counting.hpp>
#include <cellkit/nn/activation.hpp>
#include <cellkit/nn/checkpoint.hpp>
#include <cellkit/nn/dense.hpp>
#include <cellkit/nn/init.hpp>
#include <cellkit/nn/optimizer.hpp>
#include <cellkit/nn/parameters.hpp>
#include <cellkit/preprocess/pca.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace scdefer {

using cellkit::host_buffer;
using cellkit::index_t;
using cellkit::matrix_view;
using cellkit::vector_view;
using examples::dense_layer;
using examples::training_diverged;
namespace nn = cellkit::nn;
namespace graph = cellkit::graph;

/// Count data (examples/common/counts.hpp): features, raw counts, size factors, labels.
template <class T>
using training_data = examples::count_data<T>;

// ---- the cell graph --------------------------------------------------------------------------

/// The two graphs the model reads: A_hat for the convolutions, A + I as the decoder's target.
template <class T>
struct cell_graph {
  graph::propagator<T> a_hat;
  graph::csr_graph<T> target;
  index_t edges = 0;  // stored entries of A (both directions)
};

/// KNN graph (binary, union-symmetrised, Euclidean) of the rows of `features`, or of their top
/// `components` principal components when components > 0, and the operators the model needs.
/// Cost: the exact KNN search, 2 n^2 d flops (d = components with PCA), plus the PCA.
template <class T, class Policy>
cell_graph<T> build_cell_graph(const Policy& policy, matrix_view<const T> features, index_t neighbours,
                               index_t components = 0, std::uint64_t seed = 0) {
  CELLKIT_EXPECTS(neighbours >= 1 && neighbours < features.rows(), "scdefer::build_cell_graph", "neighbours",
                  std::to_string(neighbours) + " neighbours for " + std::to_string(features.rows()) +
                      " cells: need 1 <= K < cells");
  std::optional<cellkit::preprocess::pca_result<T>> pca;
  matrix_view<const T> points = features;
  if (components > 0) {
    const index_t k = std::min(components, std::min(features.rows(), features.cols()) - 1);
    pca = cellkit::preprocess::pca(policy, features, {.n_components = k, .seed = seed});
    points = pca->scores_view();
  }
  auto a = graph::knn_graph(
      policy, points,
      graph::knn_params<T>{
          .k = neighbours, .weights = graph::knn_weights::binary, .symmetrize = graph::knn_symmetrize::union_edges});
  const index_t edges = a.view().nnz();
  auto a_hat = graph::normalize(policy, a, {.kind = graph::normalization::symmetric, .self_loop_weight = T(0)});
  auto target = graph::normalize(policy, a, {.kind = graph::normalization::none, .self_loop_weight = T(1)});
  return {graph::propagator<T>(std::move(a_hat)), std::move(target), edges};
}

// ---- the model -------------------------------------------------------------------------------

struct architecture {
  std::vector<index_t> hidden{1024, 128, 24};  // both encoders; the last width is the latent
  index_t hops = 2;                            // TAGCN's K
  double fusion = 0.1;                         // a in Z = a H_D + (1 - a) H_G
};

struct loss_weights {
  double graph = 0.3;   // g1
  double zinb = 0.1;    // g2
  double kl = 0.5;      // g3
  double mutual = 0.1;  // g4
};

/// One TAGCN layer's parameters: G ((K+1) f_in x f_out, the K+1 hop matrices stacked by rows) and c.
template <class T>
struct tagcn_layer {
  index_t in = 0, out = 0, hops = 0;
  host_buffer<T> w, b, dw, db;
  tagcn_layer(index_t fan_in, index_t fan_out, index_t k)
      : in(fan_in),
        out(fan_out),
        hops(k),
        w((k + 1) * fan_in * fan_out),
        b(fan_out),
        dw((k + 1) * fan_in * fan_out),
        db(fan_out) {}
  matrix_view<T> weight() { return w.as_matrix((hops + 1) * in, out); }
  matrix_view<const T> weight() const { return matrix_view<const T>(w.data(), (hops + 1) * in, out); }
  vector_view<const T> bias() const { return vector_view<const T>(b.data(), out); }
};

/// Losses of one step (each already multiplied by its weight; `total` is their sum).
struct step_losses {
  double graph = 0, zinb = 0, kl = 0, mutual = 0, total = 0;
};

template <class T>
class model {
 public:
  model(index_t genes, index_t clusters, const architecture& arch, std::uint64_t seed)
      : genes_(genes), clusters_(clusters), arch_(arch) {
    CELLKIT_EXPECTS(arch.hidden.size() >= 1, "scdefer::model", "arch.hidden", "needs at least one layer");
    CELLKIT_EXPECTS(arch.fusion >= 0 && arch.fusion <= 1, "scdefer::model", "arch.fusion",
                    "the fusion weight a must lie in [0, 1], got " + std::to_string(arch.fusion));
    CELLKIT_EXPECTS(arch.hops >= 0, "scdefer::model", "arch.hops", "K must be >= 0");
    latent_ = arch.hidden.back();
    index_t in = genes;
    for (index_t width : arch.hidden) {
      dense_.emplace_back(in, width);
      graph_.emplace_back(in, width, arch.hops);
      in = width;
    }
    std::vector<index_t> widths(arch.hidden.rbegin() + 1, arch.hidden.rend());
    decoder_ = examples::make_stack<T>(latent_, widths);
    heads_.emplace(decoder_.empty() ? latent_ : decoder_.back().out, genes, /*dropout_logits=*/true);
    centres_ = host_buffer<T>(clusters * latent_);
    d_centres_ = host_buffer<T>(clusters * latent_);

    // Glorot-uniform weights, zero biases, one Philox stream per weight matrix.
    std::uint32_t stream = examples::init_stack(dense_, seed, 0);
    for (auto& l : graph_) {
      nn::init_weights(cellkit::serial{}, l.weight(),
                       {.scheme = nn::weight_init::glorot_uniform, .key = {seed, stream++}});
    }
    stream = examples::init_stack(decoder_, seed, stream);
    heads_->init(seed, stream);

    examples::add_stack(dense_, network_, "dense_encoder");
    for (std::size_t l = 0; l < graph_.size(); ++l) {
      std::string name = "graph_encoder.";
      name += std::to_string(l);
      network_.add(name + ".weight", graph_[l].weight(),
                   graph_[l].dw.as_matrix((arch.hops + 1) * graph_[l].in, graph_[l].out));
      network_.add(name + ".bias", graph_[l].b.view(), graph_[l].db.view());
    }
    examples::add_stack(decoder_, network_, "decoder");
    heads_->add_to(network_, "head");
    with_centres_.append(network_);
    with_centres_.add("centres", centres(), d_centres_.as_matrix(clusters, latent_));
  }

  index_t genes() const { return genes_; }
  index_t clusters() const { return clusters_; }
  index_t latent() const { return latent_; }
  const architecture& arch() const { return arch_; }
  const nn::parameter_list<T>& network_parameters() const { return network_; }
  const nn::parameter_list<T>& all_parameters() const { return with_centres_; }
  matrix_view<T> centres() { return centres_.as_matrix(clusters_, latent_); }

  /// Buffers for a full-batch pass over `cells` cells.
  struct workspace {
    index_t cells;
    std::vector<host_buffer<T>> fused_in;        // Z^l for l >= 2 (Z^1 is X)
    std::vector<host_buffer<T>> d_pre, d_post;   // dense encoder: pre-activation, output
    std::vector<host_buffer<T>> g_pre, g_post;   // graph encoder
    std::vector<host_buffer<T>> hops;            // TAGCN hop bases
    std::vector<host_buffer<T>> d_grad, g_grad;  // gradients w.r.t. the layers' outputs
    host_buffer<T> fused_grad, dx_graph, z, dz, dz_part, d_zd, d_zg, d_mu_part;
    host_buffer<T> q, q_d, q_g, p, p_d, p_g;
    examples::stack_cache<T> dec;
    typename examples::zinb_heads<T>::workspace heads;
    host_buffer<T> d_hidden;

    workspace(const model& m, index_t n)
        : cells(n),
          fused_grad(n * m.widest_hidden()),
          dx_graph(n * m.widest_hidden()),
          z(n * m.latent_),
          dz(n * m.latent_),
          dz_part(n * m.latent_),
          d_zd(n * m.latent_),
          d_zg(n * m.latent_),
          d_mu_part(m.clusters_ * m.latent_),
          q(n * m.clusters_),
          q_d(n * m.clusters_),
          q_g(n * m.clusters_),
          p(n * m.clusters_),
          p_d(n * m.clusters_),
          p_g(n * m.clusters_),
          dec(m.decoder_, n),
          heads(*m.heads_, n),
          d_hidden(n * m.heads_->hidden()) {
      for (std::size_t l = 0; l < m.dense_.size(); ++l) {
        const index_t in = m.dense_[l].in, out = m.dense_[l].out;
        if (l > 0) fused_in.emplace_back(n * in);
        d_pre.emplace_back(n * out);
        d_post.emplace_back(n * out);
        g_pre.emplace_back(n * out);
        g_post.emplace_back(n * out);
        hops.emplace_back((m.arch_.hops + 1) * n * in);
        d_grad.emplace_back(n * out);
        g_grad.emplace_back(n * out);
      }
    }
    matrix_view<T> target(int which) {
      host_buffer<T>& b = which == 0 ? p : (which == 1 ? p_d : p_g);
      return b.as_matrix(cells, q.size() / std::max<index_t>(cells, 1));
    }
  };

  /// Fixed clustering targets (P, P_D, P_G), e.g. for a gradient check; without them `step`
  /// computes them from the current assignments (detached, as DEC).
  struct targets {
    matrix_view<const T> p, p_d, p_g;
  };

  /// Full-batch forward and backward. With `clustering`, adds the KL and mutual BCE terms (the
  /// training phase; needs initialised centres). Gradients of the parameters in
  /// `network_parameters()` (and of the centres, with `clustering`) are overwritten. After the call
  /// ws.z holds the fused latent and, with `clustering`, ws.q / ws.p the assignment and its target.
  template <class Policy>
  step_losses step(const Policy& policy, const training_data<T>& data, const cell_graph<T>& g, workspace& ws,
                   const loss_weights& weights, bool clustering, std::optional<targets> fixed = std::nullopt) {
    const index_t n = data.cells;
    CELLKIT_EXPECTS(ws.cells == n, "scdefer::model::step", "workspace",
                    "built for " + std::to_string(ws.cells) + " cells but the data have " + std::to_string(n));
    const auto x = matrix_view<const T>(data.features.data(), n, genes_);
    forward_encoders(policy, x, g, ws);
    auto z = ws.z.as_matrix(n, latent_);
    step_losses losses;

    // ZINB reconstruction through the decoder
    auto h = examples::stack_forward(policy, decoder_, true, matrix_view<const T>(z), ws.dec);
    auto d_h = matrix_view<T>(ws.d_hidden.data(), n, h.cols());
    losses.zinb = heads_->loss_and_backward(
        policy, matrix_view<const T>(h), matrix_view<const T>(data.counts.data(), n, genes_),
        vector_view<const T>(data.size_factors.data(), n), ws.heads, d_h, static_cast<T>(weights.zinb));
    auto dz = ws.dz.as_matrix(n, latent_);
    examples::stack_backward(policy, decoder_, true, matrix_view<const T>(z), ws.dec, d_h, dz, false);

    // graph reconstruction sigma(Z Z^T) ~ A + I
    auto dz_part = ws.dz_part.as_matrix(n, latent_);
    losses.graph = weights.graph * static_cast<double>(graph::inner_product_loss_dense(
                                       policy, matrix_view<const T>(z), g.target.view(), dz_part,
                                       {.loss = graph::reconstruction_loss::squared}));
    axpy(static_cast<T>(weights.graph), dz_part, dz);

    const T a = static_cast<T>(arch_.fusion);
    auto d_zd = ws.d_zd.as_matrix(n, latent_);
    auto d_zg = ws.d_zg.as_matrix(n, latent_);
    if (clustering) {
      // KL(P || Q) of the fused latent first: its gradient joins dZ before dZ splits to the encoders
      losses.kl = cluster_term(policy, 0, matrix_view<const T>(z), ws, weights.kl, dz, fixed);
    }
    scale_into(a, dz, d_zd);
    scale_into(T(1) - a, dz, d_zg);
    if (clustering) {
      const index_t last = static_cast<index_t>(dense_.size()) - 1;
      losses.mutual = cluster_term(policy, 1, post(ws.d_post, last, n), ws, weights.mutual, d_zd, fixed) +
                      cluster_term(policy, 2, post(ws.g_post, last, n), ws, weights.mutual, d_zg, fixed);
    }
    losses.total = losses.graph + losses.zinb + losses.kl + losses.mutual;

    backward_encoders(policy, x, g, ws);
    return losses;
  }

  /// The fused latent Z of every cell (cells x latent) into ws.z, and the Student-t assignment Q
  /// of Z into `q` when given.
  template <class Policy>
  matrix_view<const T> embed(const Policy& policy, const training_data<T>& data, const cell_graph<T>& g, workspace& ws,
                             std::optional<matrix_view<T>> q = std::nullopt) {
    const auto x = matrix_view<const T>(data.features.data(), data.cells, genes_);
    forward_encoders(policy, x, g, ws);
    auto z = matrix_view<const T>(ws.z.data(), data.cells, latent_);
    if (q)
      cellkit::cluster::student_t_assign(policy, z, matrix_view<const T>(centres_.data(), clusters_, latent_), *q,
                                         T(1));
    return z;
  }

 private:
  // Term t of the clustering loss: t = 0 KL(P || Q) of Z (batchmean), t = 1, 2 BCE(P_D, Q_D) and
  // BCE(P_G, Q_G) (mean). Returns weight * loss; adds weight * dLoss/dlatent to `d_latent` and
  // weight * dLoss/dmu to the centres' gradient (overwritten by t = 0).
  template <class Policy>
  double cluster_term(const Policy& policy, int t, matrix_view<const T> latent, workspace& ws, double weight,
                      matrix_view<T> d_latent, const std::optional<targets>& fixed) {
    namespace cl = cellkit::cluster;
    const index_t n = latent.rows();
    auto mu = matrix_view<const T>(centres_.data(), clusters_, latent_);
    auto d_mu = d_centres_.as_matrix(clusters_, latent_);
    auto d_mu_part = ws.d_mu_part.as_matrix(clusters_, latent_);
    auto dz_part = ws.dz_part.as_matrix(n, latent_);
    host_buffer<T>* qs[3] = {&ws.q, &ws.q_d, &ws.q_g};
    const cl::student_t_loss_params<T> params{
        .alpha = T(1),
        .loss = t == 0 ? cl::assignment_loss::kl_p_q : cl::assignment_loss::binary_cross_entropy,
        .reduction = t == 0 ? cl::loss_reduction::batchmean : cl::loss_reduction::mean};
    const cl::student_t_loss_outputs<T> out{.q = qs[t]->as_matrix(n, clusters_),
                                            .p = fixed ? std::nullopt : std::optional(ws.target(t)),
                                            .grad_z = dz_part,
                                            .grad_mu = d_mu_part};
    cl::student_t_loss_result<T> r{};
    if (fixed) {
      const matrix_view<const T> given[3] = {fixed->p, fixed->p_d, fixed->p_g};
      r = cl::student_t_loss(policy, latent, mu, given[t], out, params);
    } else {
      r = cl::student_t_loss(policy, latent, mu, out, params);
    }
    const T s = static_cast<T>(weight);
    axpy(s, dz_part, d_latent);
    if (t == 0) {
      scale_into(s, d_mu_part, d_mu);
    } else {
      axpy(s, d_mu_part, d_mu);
    }
    return weight * static_cast<double>(r.loss);
  }

  index_t widest_hidden() const { return *std::max_element(arch_.hidden.begin(), arch_.hidden.end()); }

  static matrix_view<T> post(std::vector<host_buffer<T>>& b, index_t l, index_t n) {
    return b[l].as_matrix(n, b[l].size() / n);
  }
  static matrix_view<const T> post(const std::vector<host_buffer<T>>& b, index_t l, index_t n) {
    return matrix_view<const T>(b[l].data(), n, b[l].size() / n);
  }

  // y += s x
  static void axpy(T s, matrix_view<const T> x, matrix_view<T> y) {
    for (index_t i = 0; i < x.rows(); ++i) {
      const T* xi = x.row_data(i);
      T* yi = y.row_data(i);
      for (index_t j = 0; j < x.cols(); ++j) yi[j] += s * xi[j];
    }
  }
  // y = s x (y may alias x)
  static void scale_into(T s, matrix_view<const T> x, matrix_view<T> y) {
    for (index_t i = 0; i < x.rows(); ++i) {
      const T* xi = x.row_data(i);
      T* yi = y.row_data(i);
      for (index_t j = 0; j < x.cols(); ++j) yi[j] = s * xi[j];
    }
  }
  // out = a u + (1 - a) v
  static void fuse(T a, matrix_view<const T> u, matrix_view<const T> v, matrix_view<T> out) {
    for (index_t i = 0; i < u.rows(); ++i) {
      const T* ui = u.row_data(i);
      const T* vi = v.row_data(i);
      T* oi = out.row_data(i);
      for (index_t j = 0; j < u.cols(); ++j) oi[j] = a * ui[j] + (T(1) - a) * vi[j];
    }
  }

  template <class Policy>
  void forward_encoders(const Policy& policy, matrix_view<const T> x, const cell_graph<T>& g, workspace& ws) {
    const index_t n = x.rows();
    const T a = static_cast<T>(arch_.fusion);
    const auto layers = static_cast<index_t>(dense_.size());
    matrix_view<const T> in = x;
    for (index_t l = 0; l < layers; ++l) {
      const index_t out = dense_[l].out;
      auto dp = ws.d_pre[l].as_matrix(n, out);
      auto gp = ws.g_pre[l].as_matrix(n, out);
      auto hops = ws.hops[l].as_matrix((arch_.hops + 1) * n, dense_[l].in);
      nn::dense_forward(policy, in, dense_[l].weight(), dense_[l].bias(), dp);
      graph::tagcn_forward(policy, g.a_hat, in, graph_[l].weight(), graph_[l].bias(), gp, hops, {.hops = arch_.hops});
      auto dq = ws.d_post[l].as_matrix(n, out);
      auto gq = ws.g_post[l].as_matrix(n, out);
      if (l + 1 < layers) {
        nn::activation_forward(policy, nn::relu{}, dp, dq);
        nn::activation_forward(policy, nn::relu{}, gp, gq);
        auto next = ws.fused_in[l].as_matrix(n, out);
        fuse(a, dq, gq, next);
        in = next;
      } else {
        std::copy(dp.data(), dp.data() + n * out, dq.data());
        std::copy(gp.data(), gp.data() + n * out, gq.data());
        fuse(a, dq, gq, ws.z.as_matrix(n, out));
      }
    }
  }

  // Reads ws.d_zd / ws.d_zg (dLoss/dZ_D, dLoss/dZ_G) and writes every encoder parameter's gradient.
  template <class Policy>
  void backward_encoders(const Policy& policy, matrix_view<const T> x, const cell_graph<T>& g, workspace& ws) {
    const index_t n = x.rows();
    const T a = static_cast<T>(arch_.fusion);
    const auto layers = static_cast<index_t>(dense_.size());
    matrix_view<T> d_out_dense = ws.d_zd.as_matrix(n, latent_);
    matrix_view<T> d_out_graph = ws.d_zg.as_matrix(n, latent_);
    for (index_t l = layers; l-- > 0;) {
      auto& dl = dense_[l];
      auto& gl = graph_[l];
      const index_t in_width = dl.in;
      if (l + 1 < layers) {
        nn::activation_backward(policy, nn::relu{}, ws.d_pre[l].as_matrix(n, dl.out), ws.d_post[l].as_matrix(n, dl.out),
                                d_out_dense, d_out_dense);
        nn::activation_backward(policy, nn::relu{}, ws.g_pre[l].as_matrix(n, dl.out), ws.g_post[l].as_matrix(n, dl.out),
                                d_out_graph, d_out_graph);
      }
      const matrix_view<const T> in = l == 0 ? x : matrix_view<const T>(ws.fused_in[l - 1].data(), n, in_width);
      std::optional<matrix_view<T>> d_in, d_in_graph;
      if (l > 0) {
        d_in = matrix_view<T>(ws.fused_grad.data(), n, in_width);
        d_in_graph = matrix_view<T>(ws.dx_graph.data(), n, in_width);
      }
      nn::dense_backward(policy, in, dl.weight(), d_out_dense, d_in, dl.dw.as_matrix(dl.in, dl.out), dl.db.view());
      graph::tagcn_backward(policy, g.a_hat, matrix_view<const T>(ws.hops[l].data(), (arch_.hops + 1) * n, in_width),
                            matrix_view<const T>(gl.weight()), matrix_view<const T>(d_out_graph), d_in_graph,
                            gl.dw.as_matrix((arch_.hops + 1) * gl.in, gl.out), gl.db.view(), {.hops = arch_.hops});
      if (l > 0) {
        // Z^l = a H_D^(l-1) + (1 - a) H_G^(l-1) feeds both encoders' layer l
        axpy(T(1), *d_in_graph, *d_in);
        d_out_dense = ws.d_grad[l - 1].as_matrix(n, in_width);
        d_out_graph = ws.g_grad[l - 1].as_matrix(n, in_width);
        scale_into(a, *d_in, d_out_dense);
        scale_into(T(1) - a, *d_in, d_out_graph);
      }
    }
  }

  index_t genes_, clusters_, latent_ = 0;
  architecture arch_;
  std::vector<dense_layer<T>> dense_;
  std::vector<tagcn_layer<T>> graph_;
  std::vector<dense_layer<T>> decoder_;
  std::optional<examples::zinb_heads<T>> heads_;  // built once the decoder's width is known
  host_buffer<T> centres_, d_centres_;
  nn::parameter_list<T> network_, with_centres_;
};

// ---- training --------------------------------------------------------------------------------

struct train_config {
  index_t clusters = 0;
  index_t neighbours = 10;
  index_t graph_components = 0;  // > 0: KNN on this many principal components of the features
  architecture arch{};
  loss_weights weights{};
  int pretrain_epochs = 200;
  double pretrain_lr = 3e-4;
  int warmup_epochs = 10;  // pre-training's learning rate ramps up linearly over these epochs
  int train_epochs = 50;
  double train_lr = 1e-4;
  int kmeans_restarts = 20;
  std::uint64_t seed = 0;
  std::string checkpoint;  // saved after every good epoch when not empty
};

struct progress {
  const char* phase = "";  // "graph", "pretrain", "kmeans", "train"
  int epoch = 0;
  step_losses losses;
  double labels_changed = -1;  // training only
  std::optional<double> ari, nmi;
  double seconds = 0;  // since training started
};

template <class T>
struct train_result {
  host_buffer<T> latent;  // cells x latent (fused Z)
  host_buffer<T> q;       // cells x clusters
  std::vector<index_t> labels;
  std::vector<index_t> kmeans_labels;
  index_t graph_edges = 0;
  int pretrain_epochs = 0, train_epochs = 0;
  step_losses final_losses;
  double graph_seconds = 0, pretrain_seconds = 0, kmeans_seconds = 0, train_seconds = 0;
  std::optional<double> ari, nmi, kmeans_ari;
};

/// Builds the cell graph, pre-trains on g1 L_graph + g2 L_ZINB, initialises the centres by k-means
/// on the fused latent and trains with all four terms. Full batch: one Adam step per epoch.
template <class T, class Policy>
train_result<T> train(const Policy& policy, const training_data<T>& data, model<T>& m, const train_config& cfg,
                      const std::function<void(const progress&)>& report = {}) {
  examples::check_count_data(data, cfg.clusters, "scdefer::train");
  CELLKIT_EXPECTS(m.genes() == data.genes, "scdefer::train", "model",
                  "built for " + std::to_string(m.genes()) + " genes but the data have " + std::to_string(data.genes));
  CELLKIT_EXPECTS(
      m.clusters() == cfg.clusters, "scdefer::train", "model",
      "built for " + std::to_string(m.clusters()) + " clusters but cfg.clusters is " + std::to_string(cfg.clusters));
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto notify = [&](const progress& p) {
    if (report) report(p);
  };
  const index_t n = data.cells;
  const index_t k = cfg.clusters;
  train_result<T> result;

  const auto g = build_cell_graph(policy, matrix_view<const T>(data.features.data(), n, data.genes), cfg.neighbours,
                                  cfg.graph_components, cfg.seed);
  result.graph_edges = g.edges;
  result.graph_seconds = seconds();
  {
    progress pr;
    pr.phase = "graph";
    pr.seconds = result.graph_seconds;
    notify(pr);
  }

  typename model<T>::workspace ws(m, n);
  examples::last_good_epoch<T> good(m.all_parameters(), cfg.checkpoint);
  auto checked_step = [&](const char* phase, int epoch, bool clustering) {
    step_losses l;
    try {
      l = m.step(policy, data, g, ws, cfg.weights, clustering);
    } catch (const cellkit::invalid_argument& e) {
      // the inputs were checked up front: a rejected value here was produced by the training
      good.diverged(phase, epoch, std::string("a layer output (") + e.what() + ")");
    }
    if (!std::isfinite(l.zinb)) good.diverged(phase, epoch, "the ZINB loss");
    if (!std::isfinite(l.graph)) good.diverged(phase, epoch, "the graph reconstruction loss");
    if (!std::isfinite(l.kl)) good.diverged(phase, epoch, "the KL loss");
    if (!std::isfinite(l.mutual)) good.diverged(phase, epoch, "the mutual BCE loss");
    return l;
  };

  // 1. pre-training on the reconstruction losses
  {
    nn::adam<T> opt({.lr = static_cast<T>(cfg.pretrain_lr)});
    for (int epoch = 0; epoch < cfg.pretrain_epochs; ++epoch) {
      auto l = checked_step("pretrain", epoch + 1, false);
      // Adam's first steps move every weight by ~lr whatever its gradient; on a 2000-gene input
      // layer that coherent move saturates sigma(Z Z^T) at once, so the rate starts small
      const double ramp = std::min(1.0, static_cast<double>(epoch + 1) / std::max(1, cfg.warmup_epochs));
      opt.set_lr(static_cast<T>(cfg.pretrain_lr * ramp));
      opt.step(policy, m.network_parameters());
      if (!examples::all_finite(m.network_parameters())) good.diverged("pretrain", epoch + 1, "a network parameter");
      good.save();
      result.final_losses = l;
      result.pretrain_epochs = epoch + 1;
      progress pr;
      pr.phase = "pretrain";
      pr.epoch = epoch + 1;
      pr.losses = l;
      pr.seconds = seconds();
      notify(pr);
    }
  }
  result.pretrain_seconds = seconds() - result.graph_seconds;

  // 2. centres from k-means on the fused latent
  result.latent = host_buffer<T>(n * m.latent());
  auto latent = result.latent.as_matrix(n, m.latent());
  {
    auto z = m.embed(policy, data, g, ws);
    std::copy(z.data(), z.data() + n * m.latent(), latent.data());
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
  result.kmeans_seconds = seconds() - result.graph_seconds - result.pretrain_seconds;

  // 3. training with the clustering terms; the targets follow Q every epoch (computed in `step`)
  {
    nn::adam<T> opt({.lr = static_cast<T>(cfg.train_lr)});
    std::vector<index_t> previous = result.kmeans_labels;
    for (int epoch = 0; epoch < cfg.train_epochs; ++epoch) {
      auto l = checked_step("train", epoch + 1, true);
      auto labels = examples::argmax_rows<T>(matrix_view<const T>(ws.q.data(), n, k));
      index_t changed = 0;
      for (index_t i = 0; i < n; ++i) changed += labels[i] != previous[i];
      previous = labels;
      opt.step(policy, m.all_parameters());
      if (!examples::all_finite(m.all_parameters())) good.diverged("train", epoch + 1, "a parameter");
      good.save();
      result.final_losses = l;
      result.train_epochs = epoch + 1;
      progress pr;
      pr.phase = "train";
      pr.epoch = epoch + 1;
      pr.losses = l;
      pr.labels_changed = static_cast<double>(changed) / static_cast<double>(n);
      examples::score_labels(data.labels, labels, pr.ari, pr.nmi);
      pr.seconds = seconds();
      notify(pr);
    }
  }
  result.q = host_buffer<T>(n * k);
  auto q = result.q.as_matrix(n, k);
  auto z = m.embed(policy, data, g, ws, q);
  std::copy(z.data(), z.data() + n * m.latent(), latent.data());
  result.labels = examples::argmax_rows<T>(matrix_view<const T>(q));
  examples::score_labels(data.labels, result.labels, result.ari, result.nmi);
  result.train_seconds = seconds() - result.graph_seconds - result.pretrain_seconds - result.kmeans_seconds;
  return result;
}

}  // namespace scdefer
