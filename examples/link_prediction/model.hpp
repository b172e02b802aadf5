#pragma once
// A scREGNET-style gene regulatory link predictor assembled from cellkit's parts
// (docs/link_prediction.md):
//
//   encoder   H = relu(A_hat X W1 + b1),  E = A_hat H W2 + b2            (2 GCN layers, training edges)
//             Q = E Wq + bq, K = E Wk + bk, V = E Wv + bv,
//             O = masked softmax attention(Q, K, V) over the training graph (one head)
//             Z = [E | O | X]                                           (joint gene representation)
//   predictor for a pair (s, t): logit = relu([Z_s | Z_t] P1 + c1) P2 + c2
//   loss      mean binary cross-entropy with logits over a mini-batch of labelled pairs
//
// Every layer's forward and backward is called explicitly (cellkit::nn has no tape). The training
// loop is `train(...)`; main.cpp only reads or generates data and writes results, and the tests
// train it briefly.

#include "../common/layers.hpp"
#include "../common/training.hpp"
#include "network.hpp"

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/attention.hpp>
#include <cellkit/graph/gcn.hpp>
#include <cellkit/graph/propagate.hpp>
#include <cellkit/metrics/ranking.hpp>
#include <cellkit/nn/activation.hpp>
#include <cellkit/nn/batches.hpp>
#include <cellkit/nn/dense.hpp>
#include <cellkit/nn/init.hpp>
#include <cellkit/nn/optimizer.hpp>
#include <cellkit/nn/parameters.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace link_prediction {

namespace nn = cellkit::nn;
namespace cg = cellkit::graph;

// ---- layers ----------------------------------------------------------------------------------

/// One layer's parameters and their gradients, W (in x out) and b (out): dense layers and, with the
/// same layout, GCN layers.
using examples::dense_layer;

template <class T>
matrix_view<T> weight_grad(dense_layer<T>& l) {
  return l.dw.as_matrix(l.in, l.out);
}

/// Rows [0, rows) of a buffer as a rows x cols matrix.
template <class T>
matrix_view<T> rows_of(host_buffer<T>& b, index_t rows, index_t cols) {
  return matrix_view<T>(b.data(), rows, cols);
}
template <class T>
matrix_view<const T> const_rows_of(const host_buffer<T>& b, index_t rows, index_t cols) {
  return matrix_view<const T>(b.data(), rows, cols);
}

// ---- the model -------------------------------------------------------------------------------

struct architecture {
  index_t hidden = 32;     // width of both GCN layers (E)
  index_t attention = 16;  // width of Q, K, V and the attention output (O)
  index_t predictor = 64;  // hidden width of the pair MLP
};

template <class T>
class model {
 public:
  model(index_t genes, index_t features, const architecture& arch, std::uint64_t seed)
      : genes_(genes),
        features_(features),
        arch_(arch),
        gcn1_(features, arch.hidden),
        gcn2_(arch.hidden, arch.hidden),
        query_(arch.hidden, arch.attention),
        key_(arch.hidden, arch.attention),
        value_(arch.hidden, arch.attention),
        pair1_(2 * (arch.hidden + arch.attention + features), arch.predictor),
        pair2_(arch.predictor, 1) {
    CELLKIT_EXPECTS(genes >= 2 && features >= 1 && arch.hidden >= 1 && arch.attention >= 1 && arch.predictor >= 1,
                    "link_prediction::model", "architecture",
                    "needs >= 2 genes, >= 1 feature and widths >= 1 (hidden, attention, predictor)");
    // Glorot-uniform weights and zero biases, one Philox stream per layer.
    std::uint32_t stream = 0;
    for (auto* l : layers()) {
      nn::init_weights(cellkit::serial{}, l->weight(),
                       {.scheme = nn::weight_init::glorot_uniform, .key = {seed, stream++}});
    }
    gcn1_.add_to(params_, "gcn.0");
    gcn2_.add_to(params_, "gcn.1");
    query_.add_to(params_, "attention.query");
    key_.add_to(params_, "attention.key");
    value_.add_to(params_, "attention.value");
    pair1_.add_to(params_, "predictor.0");
    pair2_.add_to(params_, "predictor.1");
  }

  index_t genes() const { return genes_; }
  index_t features() const { return features_; }
  const architecture& arch() const { return arch_; }
  /// Width of the joint representation Z = [E | O | X].
  index_t joint_width() const { return arch_.hidden + arch_.attention + features_; }
  const nn::parameter_list<T>& parameters() const { return params_; }

  /// Intermediate results of the encoder (whole graph) and the predictor (up to `max_pairs` pairs),
  /// kept for the backward pass, and the gradient buffers.
  struct workspace {
    index_t max_pairs;
    host_buffer<T> h_pre, h, e, q, k, v, o, attention, z;                    // encoder forward
    host_buffer<T> pair, p_pre, p, logit;                                    // predictor forward
    host_buffer<T> d_logit, d_p, d_pair, d_z, d_e, d_o, d_q, d_k, d_v, d_h;  // backward
    workspace(const model& m, const cg::propagator<T>& graph, index_t max_pairs_)
        : max_pairs(max_pairs_),
          h_pre(m.genes_ * m.arch_.hidden),
          h(m.genes_ * m.arch_.hidden),
          e(m.genes_ * m.arch_.hidden),
          q(m.genes_ * m.arch_.attention),
          k(m.genes_ * m.arch_.attention),
          v(m.genes_ * m.arch_.attention),
          o(m.genes_ * m.arch_.attention),
          attention(graph.matrix().nnz()),
          z(m.genes_ * m.joint_width()),
          pair(max_pairs_ * 2 * m.joint_width()),
          p_pre(max_pairs_ * m.arch_.predictor),
          p(max_pairs_ * m.arch_.predictor),
          logit(max_pairs_),
          d_logit(max_pairs_),
          d_p(max_pairs_ * m.arch_.predictor),
          d_pair(max_pairs_ * 2 * m.joint_width()),
          d_z(m.genes_ * m.joint_width()),
          d_e(m.genes_ * m.arch_.hidden),
          d_o(m.genes_ * m.arch_.attention),
          d_q(m.genes_ * m.arch_.attention),
          d_k(m.genes_ * m.arch_.attention),
          d_v(m.genes_ * m.arch_.attention),
          d_h(m.genes_ * m.arch_.hidden) {}
  };

  /// Encoder forward on the whole graph: fills ws.h_pre, h, e, q, k, v, o, attention and z.
  template <class Policy>
  void encode(const Policy& policy, const cg::propagator<T>& graph, matrix_view<const T> x, workspace& ws) const {
    check_inputs(graph, x);
    const index_t n = genes_, hd = arch_.hidden, ad = arch_.attention, f = features_, d = joint_width();
    auto h_pre = rows_of(ws.h_pre, n, hd), h = rows_of(ws.h, n, hd), e = rows_of(ws.e, n, hd);
    cg::gcn_forward(policy, graph, x, gcn1_.weight(), gcn1_.bias(), h_pre);
    nn::activation_forward(policy, nn::relu{}, matrix_view<const T>(h_pre), h);
    cg::gcn_forward(policy, graph, matrix_view<const T>(h), gcn2_.weight(), gcn2_.bias(), e);
    auto q = rows_of(ws.q, n, ad), k = rows_of(ws.k, n, ad), v = rows_of(ws.v, n, ad), o = rows_of(ws.o, n, ad);
    nn::dense_forward(policy, matrix_view<const T>(e), query_.weight(), query_.bias(), q);
    nn::dense_forward(policy, matrix_view<const T>(e), key_.weight(), key_.bias(), k);
    nn::dense_forward(policy, matrix_view<const T>(e), value_.weight(), value_.bias(), v);
    cg::masked_attention_forward(policy, graph.matrix(), matrix_view<const T>(q), matrix_view<const T>(k),
                                 matrix_view<const T>(v), o, ws.attention.view());
    // Z = [E | O | X], row by row
    for (index_t i = 0; i < n; ++i) {
      T* zi = ws.z.data() + i * d;
      std::copy(e.row_data(i), e.row_data(i) + hd, zi);
      std::copy(o.row_data(i), o.row_data(i) + ad, zi + hd);
      std::copy(x.row_data(i), x.row_data(i) + f, zi + hd + ad);
    }
  }

  /// Predictor forward for pairs (sources[b], targets[b]) on the encoded Z: fills ws.pair, p_pre, p
  /// and logit (first sources.size() rows; at most ws.max_pairs).
  template <class Policy>
  void predict(const Policy& policy, std::span<const index_t> sources, std::span<const index_t> targets,
               workspace& ws) const {
    const auto b = static_cast<index_t>(sources.size());
    const index_t d = joint_width(), ph = arch_.predictor;
    CELLKIT_EXPECTS(b <= ws.max_pairs && targets.size() == sources.size(), "link_prediction::model::predict", "pairs",
                    "at most the workspace's max_pairs, one target per source");
    auto z = const_rows_of(ws.z, genes_, d);
    // [Z_s | Z_t]: two gathers into the column halves of one buffer (row stride 2d)
    nn::gather_rows(policy, z, sources, matrix_view<T>(ws.pair.data(), b, d, 2 * d));
    nn::gather_rows(policy, z, targets, matrix_view<T>(ws.pair.data() + d, b, d, 2 * d));
    auto pair = const_rows_of(ws.pair, b, 2 * d);
    auto p_pre = rows_of(ws.p_pre, b, ph), p = rows_of(ws.p, b, ph);
    nn::dense_forward(policy, pair, pair1_.weight(), pair1_.bias(), p_pre);
    nn::activation_forward(policy, nn::relu{}, matrix_view<const T>(p_pre), p);
    nn::dense_forward(policy, matrix_view<const T>(p), pair2_.weight(), pair2_.bias(), rows_of(ws.logit, b, 1));
  }

  /// Forward and backward of one mini-batch of labelled pairs (rows `batch` of `pairs`): returns the
  /// mean binary cross-entropy with logits; the gradient of every parameter is overwritten.
  template <class Policy>
  double step(const Policy& policy, const cg::propagator<T>& graph, matrix_view<const T> x, const pair_set<T>& pairs,
              std::span<const index_t> batch, workspace& ws) {
    const auto b = static_cast<index_t>(batch.size());
    CELLKIT_EXPECTS(b >= 1 && b <= ws.max_pairs, "link_prediction::model::step", "batch",
                    "needs 1 to max_pairs (" + std::to_string(ws.max_pairs) + ") pairs, got " + std::to_string(b));
    std::vector<index_t> sources(static_cast<std::size_t>(b)), targets(static_cast<std::size_t>(b));
    for (index_t i = 0; i < b; ++i) {
      sources[i] = pairs.sources[batch[i]];
      targets[i] = pairs.targets[batch[i]];
    }
    encode(policy, graph, x, ws);
    predict(policy, sources, targets, ws);

    // loss: l = max(s, 0) - s y + log(1 + e^-|s|), dl/ds = (sigmoid(s) - y) / b
    double loss = 0;
    for (index_t i = 0; i < b; ++i) {
      const double s = static_cast<double>(ws.logit[i]);
      const double y = pairs.labels[batch[i]];
      loss += std::max(s, 0.0) - s * y + std::log1p(std::exp(-std::fabs(s)));
      const double sigma = s >= 0 ? 1 / (1 + std::exp(-s)) : std::exp(s) / (1 + std::exp(s));
      ws.d_logit[i] = static_cast<T>((sigma - y) / static_cast<double>(b));
    }
    loss /= static_cast<double>(b);

    // predictor backward
    const index_t n = genes_, hd = arch_.hidden, ad = arch_.attention, d = joint_width(), ph = arch_.predictor;
    auto p_pre = const_rows_of(ws.p_pre, b, ph), p = const_rows_of(ws.p, b, ph);
    auto d_p = rows_of(ws.d_p, b, ph);
    nn::dense_backward(policy, p, pair2_.weight(), const_rows_of(ws.d_logit, b, 1), d_p, weight_grad(pair2_),
                       pair2_.db.view());
    nn::activation_backward(policy, nn::relu{}, p_pre, p, matrix_view<const T>(d_p), d_p);
    auto d_pair = rows_of(ws.d_pair, b, 2 * d);
    nn::dense_backward(policy, const_rows_of(ws.pair, b, 2 * d), pair1_.weight(), matrix_view<const T>(d_p), d_pair,
                       weight_grad(pair1_), pair1_.db.view());
    // scatter-add into dZ, pairs in batch order (a fixed order: the same bits for every thread count)
    std::fill(ws.d_z.begin(), ws.d_z.end(), T(0));
    for (index_t i = 0; i < b; ++i) {
      const T* g = d_pair.row_data(i);
      T* ds = ws.d_z.data() + sources[i] * d;
      T* dt = ws.d_z.data() + targets[i] * d;
      for (index_t c = 0; c < d; ++c) ds[c] += g[c];
      for (index_t c = 0; c < d; ++c) dt[c] += g[d + c];
    }
    // split dZ = [dE | dO | dX] (X is data: its gradient is not needed)
    auto d_e = rows_of(ws.d_e, n, hd), d_o = rows_of(ws.d_o, n, ad);
    for (index_t i = 0; i < n; ++i) {
      const T* dz = ws.d_z.data() + i * d;
      std::copy(dz, dz + hd, d_e.row_data(i));
      std::copy(dz + hd, dz + hd + ad, d_o.row_data(i));
    }

    // attention backward, then the three projections add their input gradients into dE
    auto e = const_rows_of(ws.e, n, hd);
    auto q = const_rows_of(ws.q, n, ad), k = const_rows_of(ws.k, n, ad), v = const_rows_of(ws.v, n, ad);
    auto d_q = rows_of(ws.d_q, n, ad), d_k = rows_of(ws.d_k, n, ad), d_v = rows_of(ws.d_v, n, ad);
    cg::masked_attention_backward(policy, graph.matrix(), q, k, v,
                                  vector_view<const T>(ws.attention.data(), ws.attention.size()),
                                  matrix_view<const T>(d_o), d_q, d_k, d_v);
    for (auto [proj, grad] : {std::pair{&query_, d_q}, std::pair{&key_, d_k}, std::pair{&value_, d_v}}) {
      nn::dense_backward(policy, e, proj->weight(), matrix_view<const T>(grad), d_e, weight_grad(*proj),
                         proj->db.view(), {.accumulate_input = true});
    }

    // GCN backward: layer 2 (dH), relu, layer 1 (no input gradient: X is data)
    auto h_pre = const_rows_of(ws.h_pre, n, hd), h = const_rows_of(ws.h, n, hd);
    auto d_h = rows_of(ws.d_h, n, hd);
    cg::gcn_backward(policy, graph, h, gcn2_.weight(), matrix_view<const T>(d_e), d_h, weight_grad(gcn2_),
                     gcn2_.db.view());
    nn::activation_backward(policy, nn::relu{}, h_pre, h, matrix_view<const T>(d_h), d_h);
    cg::gcn_backward(policy, graph, x, gcn1_.weight(), matrix_view<const T>(d_h), std::nullopt, weight_grad(gcn1_),
                     gcn1_.db.view());
    return loss;
  }

  /// Logits of `pairs` (encodes once, then predicts in chunks of ws.max_pairs).
  template <class Policy>
  std::vector<T> score(const Policy& policy, const cg::propagator<T>& graph, matrix_view<const T> x,
                       const pair_set<T>& pairs, workspace& ws) const {
    encode(policy, graph, x, ws);
    std::vector<T> out(static_cast<std::size_t>(pairs.size()));
    for (index_t first = 0; first < pairs.size(); first += ws.max_pairs) {
      const index_t count = std::min(ws.max_pairs, pairs.size() - first);
      const auto at = static_cast<std::size_t>(first), len = static_cast<std::size_t>(count);
      predict(policy, std::span<const index_t>(pairs.sources).subspan(at, len),
              std::span<const index_t>(pairs.targets).subspan(at, len), ws);
      std::copy(ws.logit.data(), ws.logit.data() + count, out.begin() + first);
    }
    return out;
  }

  /// Gene-wise attention importance r_j = sum_i a_ij (attention gene j receives over the training
  /// graph, itself included) of the current parameters.
  template <class Policy>
  std::vector<T> importance(const Policy& policy, const cg::propagator<T>& graph, matrix_view<const T> x,
                            workspace& ws) const {
    encode(policy, graph, x, ws);
    std::vector<T> out(static_cast<std::size_t>(genes_));
    cg::attention_importance(policy, graph.matrix(), vector_view<const T>(ws.attention.data(), ws.attention.size()),
                             vector_view<T>(out.data(), genes_));
    return out;
  }

 private:
  void check_inputs(const cg::propagator<T>& graph, matrix_view<const T> x) const {
    constexpr const char* fn = "link_prediction::model";
    cellkit::expect_shapes(graph.rows() == genes_ && graph.cols() == genes_, fn, "graph", {graph.rows(), graph.cols()},
                           "model", {genes_, genes_}, "the graph must have one node per gene of the model");
    cellkit::expect_shapes(x.rows() == genes_ && x.cols() == features_, fn, "features", x.shape(), "model",
                           {genes_, features_}, "the model was built for another number of genes or features");
  }
  std::vector<dense_layer<T>*> layers() { return {&gcn1_, &gcn2_, &query_, &key_, &value_, &pair1_, &pair2_}; }

  index_t genes_, features_;
  architecture arch_;
  dense_layer<T> gcn1_, gcn2_, query_, key_, value_, pair1_, pair2_;
  nn::parameter_list<T> params_;
};

// ---- evaluation ------------------------------------------------------------------------------

struct ranking_scores {
  double auroc = 0;
  double auprc = 0;  // average precision
};

/// AUROC and average precision of scores for a labelled pair set.
template <class Policy, class S>
ranking_scores rank(const Policy& policy, const std::vector<int>& labels, const std::vector<S>& scores) {
  return {cellkit::metrics::roc_auc(policy, labels, scores),
          cellkit::metrics::average_precision(policy, labels, scores)};
}

/// The co-expression baseline: |Pearson correlation| of the two genes' feature vectors.
template <class T>
std::vector<double> correlation_scores(const gene_network<T>& net, const pair_set<T>& pairs) {
  const index_t n = net.gene_count(), f = net.feature_width;
  std::vector<double> unit(static_cast<std::size_t>(n * f));  // centred, unit length rows
  for (index_t g = 0; g < n; ++g) {
    const T* x = net.features.data() + g * f;
    double mean = 0;
    for (index_t c = 0; c < f; ++c) mean += static_cast<double>(x[c]);
    mean /= static_cast<double>(f);
    double ss = 0;
    for (index_t c = 0; c < f; ++c) ss += (static_cast<double>(x[c]) - mean) * (static_cast<double>(x[c]) - mean);
    const double inv = ss > 0 ? 1 / std::sqrt(ss) : 0;  // a constant gene correlates with nothing
    for (index_t c = 0; c < f; ++c) unit[g * f + c] = (static_cast<double>(x[c]) - mean) * inv;
  }
  std::vector<double> out(static_cast<std::size_t>(pairs.size()));
  for (index_t i = 0; i < pairs.size(); ++i) {
    const double* a = unit.data() + pairs.sources[i] * f;
    const double* b = unit.data() + pairs.targets[i] * f;
    double r = 0;
    for (index_t c = 0; c < f; ++c) r += a[c] * b[c];
    out[i] = std::fabs(r);
  }
  return out;
}

// ---- training --------------------------------------------------------------------------------

struct train_config {
  architecture arch{};
  int epochs = 100;
  index_t batch_size = 256;
  double lr = 1e-3;
  double weight_decay = 0;
  std::uint64_t seed = 0;
};

struct progress {
  int epoch = 0;
  double loss = 0;  // mean training loss over the epoch
  double validation_auroc = 0;
  double seconds = 0;  // since training started
};

/// Thrown (phase "train") when the loss, a validation score or a parameter stops being finite; the
/// parameters are restored to the end of the last good epoch first.
using examples::training_diverged;

struct train_result {
  int epochs = 0;
  int best_epoch = 0;  // the epoch whose parameters the model holds at the end (best validation AUROC)
  double best_validation_auroc = 0;
  std::vector<double> losses;  // per epoch
  double seconds = 0;
};

/// Trains on `split.train` with Adam over shuffled mini-batches of pairs (the encoder runs on the
/// whole training graph every step), scores `split.validation` after every epoch and leaves the
/// model with the parameters of the epoch with the best validation AUROC (early stopping's choice).
template <class T, class Policy>
train_result train(const Policy& policy, const gene_network<T>& net, const pair_split<T>& split,
                   const cg::propagator<T>& graph, model<T>& m, const train_config& cfg,
                   const std::function<void(const progress&)>& report = {}) {
  constexpr const char* fn = "link_prediction::train";
  check_network(net);
  CELLKIT_EXPECTS(m.genes() == net.gene_count() && m.features() == net.feature_width, fn, "model",
                  "built for " + std::to_string(m.genes()) + " genes x " + std::to_string(m.features()) +
                      " features but the network has " + std::to_string(net.gene_count()) + " x " +
                      std::to_string(net.feature_width));
  CELLKIT_EXPECTS(cfg.batch_size >= 1, fn, "batch_size", "must be >= 1");
  CELLKIT_EXPECTS(split.train.size() > 0 && split.validation.size() > 0, fn, "split",
                  "needs training and validation pairs");
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const auto x = net.feature_matrix();
  typename model<T>::workspace ws(m, graph, std::min(cfg.batch_size, std::max(split.train.size(), index_t(1))));
  nn::minibatches batches(split.train.size(),
                          {.batch_size = cfg.batch_size, .shuffle = true, .seed = cfg.seed, .stream = 1});
  nn::adam<T> opt({.lr = static_cast<T>(cfg.lr), .weight_decay = static_cast<T>(cfg.weight_decay)});
  examples::snapshot<T> best, last_good;
  best.take(m.parameters());
  last_good.take(m.parameters());
  train_result result;
  result.best_validation_auroc = -1;
  auto diverged = [&](int epoch, const std::string& what) {
    last_good.restore(m.parameters());
    throw training_diverged("train", epoch, what);
  };
  for (int epoch = 1; epoch <= cfg.epochs; ++epoch) {
    double sum = 0;
    for (auto rows : batches.epoch(static_cast<std::uint64_t>(epoch))) {
      const double loss = m.step(policy, graph, x, split.train, rows, ws);
      if (!std::isfinite(loss)) diverged(epoch, "the training loss");
      opt.step(policy, m.parameters());
      sum += loss * static_cast<double>(rows.size());
    }
    if (!examples::all_finite(m.parameters())) diverged(epoch, "a parameter");
    const auto scores = m.score(policy, graph, x, split.validation, ws);
    for (T s : scores)
      if (!std::isfinite(s)) diverged(epoch, "a validation score");
    last_good.take(m.parameters());
    const double auroc = cellkit::metrics::roc_auc(policy, split.validation.labels, scores);
    if (auroc > result.best_validation_auroc) {
      result.best_validation_auroc = auroc;
      result.best_epoch = epoch;
      best.take(m.parameters());
    }
    result.losses.push_back(sum / static_cast<double>(split.train.size()));
    result.epochs = epoch;
    if (report) report({.epoch = epoch, .loss = result.losses.back(), .validation_auroc = auroc, .seconds = seconds()});
  }
  best.restore(m.parameters());
  result.seconds = seconds();
  return result;
}

}  // namespace link_prediction
