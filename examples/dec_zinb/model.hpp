#pragma once
// A scDeepCluster-style DEC-ZINB model assembled from cellkit's parts (docs/dec_zinb.md):
//
//   encoder   x + N(0, sigma^2) -> dense 256 -> relu -> dense 64 -> relu -> dense 32 = z
//   decoder   z -> dense 64 -> relu -> dense 256 -> relu = h, then three heads from h:
//             mean = mean_activation(h W_m + b_m), theta = dispersion_activation(h W_t + b_t),
//             pi = sigmoid(h W_p + b_p)
//   loss      ZINB NLL(counts | size_factor * mean, theta, pi), mean over elements (pre-training);
//             + gamma * KL(P || Q) on the noise-free latent z0 (fine-tuning), Q the Student-t
//             assignment of z0 to learnable centres, P the DEC target recomputed every epoch.
//
// Every layer's forward and backward is called explicitly (cellkit::nn has no tape). The training
// loop is `train(...)`; main.cpp only reads data and writes results, and the tests train it briefly.

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
#include <cellkit/likelihood/zinb.hpp>
#include <cellkit/metrics/information.hpp>
#include <cellkit/metrics/pair_counting.hpp>
#include <cellkit/nn/activation.hpp>
#include <cellkit/nn/batches.hpp>
#include <cellkit/nn/checkpoint.hpp>
#include <cellkit/nn/dense.hpp>
#include <cellkit/nn/init.hpp>
#include <cellkit/nn/noise.hpp>
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
#include <type_traits>
#include <vector>

namespace dec_zinb {

using cellkit::host_buffer;
using cellkit::index_t;
using cellkit::matrix_view;
using cellkit::vector_view;
namespace nn = cellkit::nn;

/// What the model trains on (examples/common/counts.hpp): features, raw counts, size factors.
template <class T>
using training_data = examples::count_data<T>;
using examples::dense_layer;
using examples::stack_backward;
using examples::stack_cache;
using examples::stack_forward;
using examples::training_diverged;

// ---- the model -------------------------------------------------------------------------------

struct architecture {
  std::vector<index_t> hidden{256, 64};  // encoder widths; the decoder mirrors them
  index_t latent = 32;
};

template <class T>
class model {
 public:
  model(index_t genes, index_t clusters, const architecture& arch, std::uint64_t seed)
      : genes_(genes),
        clusters_(clusters),
        latent_(arch.latent),
        centres_(clusters * arch.latent),
        d_centres_(clusters * arch.latent) {
    std::vector<index_t> widths = arch.hidden;
    widths.push_back(arch.latent);
    encoder_ = examples::make_stack<T>(genes, widths);
    decoder_ = examples::make_stack<T>(arch.latent, std::vector<index_t>(arch.hidden.rbegin(), arch.hidden.rend()));
    const index_t width = decoder_.empty() ? arch.latent : decoder_.back().out;
    heads_.emplace(width, genes);
    std::uint32_t stream = 0;
    for (auto* group : {&encoder_, &decoder_}) stream = examples::init_stack(*group, seed, stream);
    heads_->init(seed, stream);
    examples::add_stack(encoder_, network_, "encoder");
    examples::add_stack(decoder_, network_, "decoder");
    heads_->add_to(network_, "head");
    with_centres_.append(network_);
    with_centres_.add("centres", centres_.as_matrix(clusters, latent_), d_centres_.as_matrix(clusters, latent_));
  }

  index_t genes() const { return genes_; }
  index_t clusters() const { return clusters_; }
  index_t latent() const { return latent_; }
  /// Network weights only (pre-training) / network and centres (fine-tuning, checkpoints).
  const nn::parameter_list<T>& network_parameters() const { return network_; }
  const nn::parameter_list<T>& all_parameters() const { return with_centres_; }
  matrix_view<T> centres() { return centres_.as_matrix(clusters_, latent_); }
  std::vector<dense_layer<T>>& encoder() { return encoder_; }

  /// Work buffers for mini-batches of up to `rows` cells.
  struct workspace {
    stack_cache<T> noisy, clean, dec;
    typename examples::zinb_heads<T>::workspace heads;
    host_buffer<T> x, noisy_x, counts, size_factors, d_hidden, p, d_z, d_z0;
    index_t rows;
    workspace(const model& m, index_t max_rows)
        : noisy(m.encoder_, max_rows),
          clean(m.encoder_, max_rows),
          dec(m.decoder_, max_rows),
          heads(*m.heads_, max_rows),
          x(max_rows * m.genes_),
          noisy_x(max_rows * m.genes_),
          counts(max_rows * m.genes_),
          size_factors(max_rows),
          d_hidden(max_rows * m.heads_->hidden()),
          p(max_rows * m.clusters_),
          d_z(max_rows * m.latent_),
          d_z0(max_rows * m.latent_),
          rows(max_rows) {}
  };

  /// Losses of one mini-batch step.
  struct step_losses {
    double zinb = 0;
    double kl = 0;
  };

  /// Forward and backward of one mini-batch (rows `batch` of `data`): the ZINB loss of the noisy
  /// reconstruction and, when `target` is given (fine-tuning; N x K, rows indexed like the data),
  /// gamma * KL(P || Q) of the noise-free latent. Gradients of every parameter in
  /// `all_parameters()` are overwritten (the centres' only when `target` is given).
  template <class Policy>
  step_losses step(const Policy& policy, const training_data<T>& data, std::span<const index_t> batch, workspace& ws,
                   nn::noise_key noise, double noise_sd, std::optional<matrix_view<const T>> target = std::nullopt,
                   double gamma = 1.0) {
    const auto n = static_cast<index_t>(batch.size());
    const index_t g = genes_;
    auto x = matrix_view<T>(ws.x.data(), n, g);
    auto counts = matrix_view<T>(ws.counts.data(), n, g);
    nn::gather_rows(policy, matrix_view<const T>(data.features.data(), data.cells, g), batch, x);
    nn::gather_rows(policy, matrix_view<const T>(data.counts.data(), data.cells, g), batch, counts);
    for (index_t i = 0; i < n; ++i) ws.size_factors[i] = data.size_factors[batch[i]];

    // noisy reconstruction path
    auto xn = matrix_view<T>(ws.noisy_x.data(), n, g);
    nn::gaussian_noise(policy, matrix_view<const T>(x), xn, {.sigma = noise_sd, .key = noise});
    auto z = stack_forward(policy, encoder_, false, matrix_view<const T>(xn), ws.noisy);
    auto h = stack_forward(policy, decoder_, true, matrix_view<const T>(z), ws.dec);
    auto d_h = matrix_view<T>(ws.d_hidden.data(), n, h.cols());
    step_losses losses;
    losses.zinb = heads_->loss_and_backward(policy, matrix_view<const T>(h), matrix_view<const T>(counts),
                                            vector_view<const T>(ws.size_factors.data(), n), ws.heads, d_h);
    auto d_z = matrix_view<T>(ws.d_z.data(), n, latent_);
    stack_backward(policy, decoder_, true, matrix_view<const T>(z), ws.dec, d_h, d_z, false);
    stack_backward(policy, encoder_, false, matrix_view<const T>(xn), ws.noisy, d_z, std::nullopt, false);

    if (target) {
      // clustering path: noise-free encoder, Student-t assignment against the centres, KL to P
      auto z0 = stack_forward(policy, encoder_, false, matrix_view<const T>(x), ws.clean);
      auto p_batch = matrix_view<T>(ws.p.data(), n, clusters_);
      nn::gather_rows(policy, *target, batch, p_batch);
      auto d_z0 = matrix_view<T>(ws.d_z0.data(), n, latent_);
      auto r = cellkit::cluster::student_t_loss(
          policy, matrix_view<const T>(z0), matrix_view<const T>(centres()), matrix_view<const T>(p_batch),
          {.grad_z = d_z0, .grad_mu = d_centres_.as_matrix(clusters_, latent_)}, {.alpha = T(1)});
      losses.kl = static_cast<double>(r.loss);
      if (gamma != 1.0) {
        const T s = static_cast<T>(gamma);
        for (index_t k = 0; k < n * latent_; ++k) d_z0.data()[k] *= s;
        for (index_t k = 0; k < d_centres_.size(); ++k) d_centres_[k] *= s;
      }
      stack_backward(policy, encoder_, false, matrix_view<const T>(x), ws.clean, d_z0, std::nullopt, true);
    }
    return losses;
  }

  /// Noise-free latent of every cell (cells x latent), in mini-batches through `ws`.
  template <class Policy>
  void embed(const Policy& policy, const training_data<T>& data, workspace& ws, matrix_view<T> out) {
    for (index_t first = 0; first < data.cells; first += ws.rows) {
      const index_t n = std::min(ws.rows, data.cells - first);
      auto x = matrix_view<const T>(data.features.data() + first * genes_, n, genes_);
      auto z = stack_forward(policy, encoder_, false, x, ws.clean);
      for (index_t i = 0; i < n; ++i) std::copy(z.row_data(i), z.row_data(i) + latent_, out.row_data(first + i));
    }
  }

 private:
  index_t genes_, clusters_, latent_;
  std::vector<dense_layer<T>> encoder_, decoder_;
  std::optional<examples::zinb_heads<T>> heads_;  // built once the decoder's width is known
  host_buffer<T> centres_, d_centres_;
  nn::parameter_list<T> network_, with_centres_;
};

// ---- training --------------------------------------------------------------------------------

struct train_config {
  index_t clusters = 0;
  architecture arch{};
  index_t batch_size = 256;
  double noise_sd = 2.5;
  int pretrain_epochs = 300;
  double pretrain_lr = 1e-3;
  int finetune_max_epochs = 200;
  double finetune_lr = 1.0;
  double finetune_rho = 0.95;
  double gamma = 1.0;
  double tol = 0.001;  // stop fine-tuning when fewer than this fraction of labels change
  int kmeans_restarts = 20;
  std::uint64_t seed = 0;
  std::string checkpoint;  // saved after every good epoch when not empty
};

struct progress {
  const char* phase = "";  // "pretrain", "kmeans", "finetune"
  int epoch = 0;
  double zinb = 0, kl = 0;
  double labels_changed = -1;  // fraction, fine-tuning only
  std::optional<double> ari, nmi;
  double seconds = 0;  // since training started
};

template <class T>
struct train_result {
  host_buffer<T> latent;  // cells x latent
  host_buffer<T> q;       // cells x clusters
  std::vector<index_t> labels;
  std::vector<index_t> kmeans_labels;  // initial clustering of the pre-trained latent
  int pretrain_epochs = 0, finetune_epochs = 0;
  bool converged = false;
  double final_zinb = 0, final_kl = 0;
  double pretrain_seconds = 0, kmeans_seconds = 0, finetune_seconds = 0;
  std::optional<double> ari, nmi, kmeans_ari;
};

/// Pre-trains on the ZINB loss, initialises the centres by k-means on the latent, and fine-tunes
/// with ZINB + gamma KL(P || Q) until fewer than `tol` of the labels change between epochs.
template <class T, class Policy>
train_result<T> train(const Policy& policy, const training_data<T>& data, model<T>& m, const train_config& cfg,
                      const std::function<void(const progress&)>& report = {}) {
  examples::check_count_data(data, cfg.clusters, "dec_zinb::train");
  CELLKIT_EXPECTS(m.genes() == data.genes, "dec_zinb::train", "model",
                  "built for " + std::to_string(m.genes()) + " genes but the data have " + std::to_string(data.genes));
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto notify = [&](const progress& p) {
    if (report) report(p);
  };
  const index_t n = data.cells;
  const index_t k = cfg.clusters;
  typename model<T>::workspace ws(m, std::min(cfg.batch_size, n));
  nn::minibatches batches(n, {.batch_size = cfg.batch_size, .shuffle = true, .seed = cfg.seed, .stream = 1});
  std::uint64_t global_step = 0;
  examples::last_good_epoch<T> good(m.all_parameters(), cfg.checkpoint);
  train_result<T> result;

  // 1. pre-training on the ZINB loss
  {
    nn::adam<T> opt({.lr = static_cast<T>(cfg.pretrain_lr)});
    for (int epoch = 0; epoch < cfg.pretrain_epochs; ++epoch) {
      double sum = 0;
      index_t seen = 0;
      for (auto rows : batches.epoch(static_cast<std::uint64_t>(epoch))) {
        typename model<T>::step_losses l;
        try {
          l = m.step(policy, data, rows, ws, {.seed = cfg.seed, .stream = 2, .step = global_step++}, cfg.noise_sd);
        } catch (const cellkit::invalid_argument& e) {
          // the inputs were checked up front: a rejected value here was produced by the training
          good.diverged("pretrain", epoch + 1, std::string("a layer output (") + e.what() + ")");
        }
        if (!std::isfinite(l.zinb)) good.diverged("pretrain", epoch + 1, "the ZINB loss");
        opt.step(policy, m.network_parameters());
        sum += l.zinb * static_cast<double>(rows.size());
        seen += static_cast<index_t>(rows.size());
      }
      if (!examples::all_finite(m.network_parameters())) good.diverged("pretrain", epoch + 1, "a network parameter");
      good.save();
      result.final_zinb = sum / static_cast<double>(seen);
      result.pretrain_epochs = epoch + 1;
      progress pr;
      pr.phase = "pretrain";
      pr.epoch = epoch + 1;
      pr.zinb = result.final_zinb;
      pr.seconds = seconds();
      notify(pr);
    }
  }
  result.pretrain_seconds = seconds();

  // 2. centres from k-means on the noise-free latent
  result.latent = host_buffer<T>(n * m.latent());
  auto latent = result.latent.as_matrix(n, m.latent());
  m.embed(policy, data, ws, latent);
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

  // 3. fine-tuning: ZINB + gamma KL(P || Q), P recomputed from all cells every epoch
  result.q = host_buffer<T>(n * k);
  auto q = result.q.as_matrix(n, k);
  host_buffer<T> p(n * k);
  auto assign = [&] {
    m.embed(policy, data, ws, latent);
    cellkit::cluster::student_t_assign(policy, matrix_view<const T>(latent), matrix_view<const T>(m.centres()), q,
                                       T(1));
    return examples::argmax_rows<T>(matrix_view<const T>(q));
  };
  {
    nn::adadelta<T> opt({.lr = static_cast<T>(cfg.finetune_lr), .rho = static_cast<T>(cfg.finetune_rho)});
    std::vector<index_t> previous = result.kmeans_labels;
    for (int epoch = 0; epoch < cfg.finetune_max_epochs; ++epoch) {
      auto labels = assign();
      index_t changed = 0;
      for (index_t i = 0; i < n; ++i) changed += labels[i] != previous[i];
      const double fraction = static_cast<double>(changed) / static_cast<double>(n);
      previous = labels;
      if (epoch > 0 && fraction < cfg.tol) {
        result.converged = true;
        break;
      }
      cellkit::cluster::target_distribution(policy, matrix_view<const T>(q), p.as_matrix(n, k));
      double zinb = 0, kl = 0;
      index_t seen = 0;
      for (auto rows : batches.epoch(static_cast<std::uint64_t>(cfg.pretrain_epochs + epoch))) {
        typename model<T>::step_losses l;
        try {
          l = m.step(policy, data, rows, ws, {.seed = cfg.seed, .stream = 2, .step = global_step++}, cfg.noise_sd,
                     matrix_view<const T>(p.as_matrix(n, k)), cfg.gamma);
        } catch (const cellkit::invalid_argument& e) {
          good.diverged("finetune", epoch + 1, std::string("a layer output (") + e.what() + ")");
        }
        if (!std::isfinite(l.zinb)) good.diverged("finetune", epoch + 1, "the ZINB loss");
        if (!std::isfinite(l.kl)) good.diverged("finetune", epoch + 1, "the KL loss");
        opt.step(policy, m.all_parameters());
        zinb += l.zinb * static_cast<double>(rows.size());
        kl += l.kl * static_cast<double>(rows.size());
        seen += static_cast<index_t>(rows.size());
      }
      if (!examples::all_finite(m.all_parameters())) good.diverged("finetune", epoch + 1, "a parameter");
      good.save();
      result.finetune_epochs = epoch + 1;
      result.final_zinb = zinb / static_cast<double>(seen);
      result.final_kl = kl / static_cast<double>(seen);
      progress pr;
      pr.phase = "finetune";
      pr.epoch = epoch + 1;
      pr.zinb = result.final_zinb;
      pr.kl = result.final_kl;
      pr.labels_changed = fraction;
      examples::score_labels(data.labels, labels, pr.ari, pr.nmi);
      pr.seconds = seconds();
      notify(pr);
    }
  }
  result.labels = assign();
  examples::score_labels(data.labels, result.labels, result.ari, result.nmi);
  result.finetune_seconds = seconds() - result.pretrain_seconds - result.kmeans_seconds;
  return result;
}

}  // namespace dec_zinb
