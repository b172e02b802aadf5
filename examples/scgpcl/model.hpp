#pragma once
// A scGPCL-style model (graph prototypical contrastive learning, Shin et al.) assembled from
// cellkit's parts (docs/scgpcl.md):
//
//   graph     a bipartite cell-gene graph: an expressed gene links a cell to it with weight
//             w_ig = log1p(count_ig / s_i) (graph::bipartite_graph)
//   views     per mini-batch two augmented views of the batch's subgraph: subgraph sampling (each
//             view keeps a random subset of the gene nodes, graph::sample_nodes) and feature masking
//             (each view zeroes random columns of the gene embedding and of the cells' features,
//             graph::mask_features)
//   encoder   a GraphSAGE-style layer for the cells: m_i = sum_g w_ig E~_g / ||w_i||_2 over the cell's
//             sampled genes (cell <- gene message passing, E the learnable gene embedding) and the
//             cell's own features x~_i (scaled log expression, masked columns), relu(m W_m + x~ W_r +
//             b) (256), then dense 64 = h (the cell representation)
//   decoder   h -> dense 256 -> relu -> ZINB heads (examples::zinb_heads)
//   pre-training   lambda1 InfoNCE(h, h') + lambda2 ProtoNCE(h; k-means prototypes at several
//             granularities, recomputed every epoch after a warm-up) + (ZINB(view) + ZINB(view')) / 2;
//             stops early when the ARI between successive epochs' clusterings exceeds 0.99
//   fine-tuning    KL(P || Q) (Student-t Q of h against learnable centres, DEC target P recomputed
//             every epoch) + lambda3 ZINB, on one augmented view
//
// Every layer's forward and backward is called explicitly (cellkit::nn has no tape). The two views
// share the network, so the dense layers and the heads run once on both views stacked (2B rows):
// the ZINB mean over 2B x genes elements is exactly (ZINB(view) + ZINB(view')) / 2.

#include "../common/counts.hpp"
#include "../common/layers.hpp"
#include "../common/training.hpp"
#include "../common/zinb_heads.hpp"

#include <cellkit/cluster/kmeans.hpp>
#include <cellkit/cluster/soft_assignment.hpp>
#include <cellkit/contrastive/info_nce.hpp>
#include <cellkit/contrastive/proto_nce.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/augment.hpp>
#include <cellkit/graph/bipartite.hpp>
#include <cellkit/metrics/information.hpp>
#include <cellkit/metrics/pair_counting.hpp>
#include <cellkit/nn/batches.hpp>
#include <cellkit/nn/dense.hpp>
#include <cellkit/nn/init.hpp>
#include <cellkit/nn/optimizer.hpp>
#include <cellkit/nn/parameters.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace scgpcl {

using cellkit::host_buffer;
using cellkit::index_t;
using cellkit::matrix_view;
using cellkit::vector_view;
namespace nn = cellkit::nn;
namespace cg = cellkit::graph;

/// What the model trains on (examples/common/counts.hpp): raw counts and size factors (the scaled
/// features are not used: the encoder reads the graph).
template <class T>
using training_data = examples::count_data<T>;
using examples::dense_layer;
using examples::stack_backward;
using examples::stack_cache;
using examples::stack_forward;
using examples::training_diverged;

// ---- the cell-gene graph and its augmented views ----------------------------------------------

/// Scales a cell's edge weights to unit Euclidean norm (all zero stays zero): the message of an
/// N(0, 1) gene embedding then has unit variance whatever the cell's number of (sampled) genes.
template <class T>
void unit_norm(std::span<T> weights) {
  double sum = 0;
  for (T w : weights) sum += static_cast<double>(w) * static_cast<double>(w);
  if (sum <= 0) return;
  const T scale = static_cast<T>(1.0 / std::sqrt(sum));
  for (T& w : weights) w *= scale;
}

/// The bipartite cell-gene graph of the whole data set.
template <class T>
struct cell_gene_graph {
  cellkit::csr_matrix<T> expression;  // cells x genes: w_ig = log1p(count_ig / s_i) of the expressed genes
  cg::bipartite_graph<T> full;        // weights of each cell at unit norm: the encoder without augmentation
};

/// Builds the graph from the counts. Errors: a graph without edges, or a cell without any.
template <class T, class Policy>
cell_gene_graph<T> build_graph(const Policy& policy, const training_data<T>& data) {
  constexpr const char* fn = "scgpcl::build_graph";
  std::vector<std::int32_t> indptr{0}, indices;
  std::vector<T> values;
  for (index_t i = 0; i < data.cells; ++i) {
    const T* row = data.counts.data() + i * data.genes;
    for (index_t g = 0; g < data.genes; ++g) {
      if (row[g] > T(0)) {
        indices.push_back(static_cast<std::int32_t>(g));
        values.push_back(std::log1p(row[g] / data.size_factors[i]));
      }
    }
    indptr.push_back(static_cast<std::int32_t>(indices.size()));
  }
  CELLKIT_EXPECTS(!indices.empty(), fn, "graph",
                  "the counts have no non-zero entry: the cell-gene graph has no edges (" + std::to_string(data.cells) +
                      " cells x " + std::to_string(data.genes) + " genes)");
  for (index_t i = 0; i < data.cells; ++i)
    CELLKIT_EXPECTS(indptr[i + 1] > indptr[i], fn, "graph",
                    "cell " + std::to_string(i) + " has no expressed gene: it has no edge in the cell-gene graph");
  cellkit::csr_matrix<T> expression(data.cells, data.genes, indptr, indices, values);
  for (index_t i = 0; i < data.cells; ++i)
    unit_norm(std::span<T>(values.data() + indptr[i], static_cast<std::size_t>(indptr[i + 1] - indptr[i])));
  cellkit::csr_matrix<T> normalised(data.cells, data.genes, indptr, indices, values);
  cg::bipartite_graph<T> full(policy, normalised.view(), cg::bipartite_normalization::none);
  return {std::move(expression), std::move(full)};
}

/// How the two views of a batch are drawn.
struct augmentation {
  double gene_keep = 0.8;     // subgraph sampling: probability that a gene node is in a view
  double feature_drop = 0.2;  // feature masking: probability that a gene-embedding column is zeroed
};

/// One augmented view of a mini-batch: its cells, the subgraph the encoder reads and the mask of
/// the gene embedding.
template <class T>
struct graph_view {
  std::vector<index_t> cells;              // rows of the data, in batch order
  cg::bipartite_graph<T> graph;            // batch cells x genes, each cell's sampled weights at unit norm
  cg::feature_mask_params embedding_mask;  // the gene-embedding columns this view zeroes
  cg::feature_mask_params feature_mask;    // the cell-feature columns (genes) this view zeroes
};

/// Draws a view of `cells`: the gene nodes kept with probability `aug.gene_keep` (Philox stream
/// `stream`), the embedding columns and the cell-feature columns dropped with probability
/// `aug.feature_drop` (streams `stream + 1`, `stream + 2`). A cell whose sampled genes are all
/// dropped gets an empty row (message 0).
template <class T, class Policy>
graph_view<T> make_view(const Policy& policy, const cell_gene_graph<T>& graph, std::span<const index_t> cells,
                        const augmentation& aug, std::uint64_t seed, std::uint32_t stream) {
  constexpr const char* fn = "scgpcl::make_view";
  const auto expression = graph.expression.view();
  const index_t genes = expression.cols();
  std::vector<std::uint8_t> kept(static_cast<std::size_t>(genes), 0);
  for (auto g : cg::sample_nodes(policy, genes, {.p = aug.gene_keep, .seed = seed, .stream = stream}))
    kept[static_cast<std::size_t>(g)] = 1;
  std::vector<std::int32_t> indptr{0}, indices;
  std::vector<T> values;
  for (index_t c : cells) {
    CELLKIT_EXPECTS(c >= 0 && c < expression.rows(), fn, "cells",
                    "cell " + std::to_string(c) + " is outside [0, " + std::to_string(expression.rows()) + ")");
    const std::size_t first = values.size();
    for (index_t p = expression.row_begin(c); p < expression.row_end(c); ++p) {
      const auto g = expression.indices()[p];
      if (kept[static_cast<std::size_t>(g)] == 0) continue;
      indices.push_back(g);
      values.push_back(expression.values()[p]);
    }
    unit_norm(std::span<T>(values.data() + first, values.size() - first));
    indptr.push_back(static_cast<std::int32_t>(indices.size()));
  }
  cellkit::csr_matrix<T> sub(static_cast<index_t>(cells.size()), genes, indptr, indices, values);
  return graph_view<T>{
      std::vector<index_t>(cells.begin(), cells.end()),
      cg::bipartite_graph<T>(policy, sub.view(), cg::bipartite_normalization::none),
      {.p = aug.feature_drop, .mode = cg::feature_mask_mode::columns, .seed = seed, .stream = stream + 1},
      {.p = aug.feature_drop, .mode = cg::feature_mask_mode::columns, .seed = seed, .stream = stream + 2}};
}

/// The two views of a pre-training step (Philox streams `stream1`, `stream2`), built concurrently on a
/// policy with threads (each view's construction is serial work: the CSR slice and its transpose).
/// The same views as two make_view calls.
template <class T, class Policy>
std::array<graph_view<T>, 2> make_view_pair(const Policy& policy, const cell_gene_graph<T>& graph,
                                            std::span<const index_t> cells, const augmentation& aug, std::uint64_t seed,
                                            std::uint32_t stream1, std::uint32_t stream2) {
  std::array<std::optional<graph_view<T>>, 2> built;
  std::array<std::exception_ptr, 2> errors;
  const std::uint32_t streams[2] = {stream1, stream2};
  cellkit::for_each_index(policy, 2, [&](index_t v) {
    try {
      built[static_cast<std::size_t>(v)].emplace(
          make_view(cellkit::serial{}, graph, cells, aug, seed, streams[static_cast<std::size_t>(v)]));
    } catch (...) {
      errors[static_cast<std::size_t>(v)] = std::current_exception();
    }
  });
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  return {std::move(*built[0]), std::move(*built[1])};
}

// ---- the model ---------------------------------------------------------------------------------

struct architecture {
  index_t gene_embedding = 64;       // width of the gene embedding (the message)
  std::vector<index_t> hidden{256};  // encoder widths (the first is the SAGE layer's); the decoder mirrors them
  index_t latent = 64;               // the cell representation h
};

/// One k-means clustering of all cells: the prototypes of ProtoNCE.
template <class T>
struct prototype_clustering {
  std::vector<index_t> assignments;  // cells
  std::vector<T> centroids;          // k x latent
  index_t k = 0;
};

/// Loss weights and the contrastive temperature.
struct loss_weights {
  double temperature = 0.25;  // tau of InfoNCE and ProtoNCE (scGPCL's default)
  double lambda1 = 1.0;       // InfoNCE
  double lambda2 = 0.05;      // ProtoNCE
  double lambda3 = 1.0;       // ZINB in fine-tuning
};

/// A number for an error message (%g: 1e-30 stays readable, unlike std::to_string's %f).
inline std::string number_text(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

/// The largest 1 / temperature for which the logits s / tau (|s| <= 1), the losses and their
/// gradients stay finite in T: sqrt of the largest T leaves room for one more factor of that size.
template <class T>
void check_temperature(const char* fn, double temperature) {
  const double limit = std::sqrt(static_cast<double>(std::numeric_limits<T>::max()));
  CELLKIT_EXPECTS(std::isfinite(temperature) && temperature > 0, fn, "temperature",
                  "must be positive and finite, got " + number_text(temperature));
  if (!(1.0 / temperature <= limit)) {
    std::string problem = "temperature ";
    problem += number_text(temperature);
    problem += " makes the logits s / temperature reach ";
    problem += number_text(1.0 / temperature);
    problem += ", beyond the range where the contrastive losses and their gradients stay finite (needs temperature >= ";
    problem += number_text(1.0 / limit);
    problem += ")";
    cellkit::detail::throw_invalid_argument(fn, "temperature", problem);
  }
}

template <class T>
class model {
 public:
  model(index_t genes, index_t clusters, const architecture& arch, std::uint64_t seed)
      : genes_(genes),
        clusters_(clusters),
        embedding_width_(arch.gene_embedding),
        latent_(arch.latent),
        embedding_(genes * arch.gene_embedding),
        d_embedding_(genes * arch.gene_embedding),
        centres_(clusters * arch.latent),
        d_centres_(clusters * arch.latent) {
    CELLKIT_EXPECTS(!arch.hidden.empty(), "scgpcl::model", "arch.hidden", "needs the graph layer's width");
    const index_t first = arch.hidden.front();
    first_.emplace_back(arch.gene_embedding, first);  // message weights W_m and the bias
    first_.emplace_back(genes, first);                // root weights W_r (the bias is W_m's)
    std::vector<index_t> widths(arch.hidden.begin() + 1, arch.hidden.end());
    widths.push_back(arch.latent);
    encoder_ = examples::make_stack<T>(first, widths);
    decoder_ = examples::make_stack<T>(arch.latent, std::vector<index_t>(arch.hidden.rbegin(), arch.hidden.rend()));
    const index_t width = decoder_.empty() ? arch.latent : decoder_.back().out;
    heads_.emplace(width, genes);
    // N(0, 1) like nn.Embedding: glorot_normal's sd is gain sqrt(2 / (fan_in + fan_out))
    std::uint32_t stream = 0;
    nn::init_weights(cellkit::serial{}, embedding(),
                     {.scheme = nn::weight_init::glorot_normal,
                      .key = {seed, stream++},
                      .gain = std::sqrt(static_cast<double>(genes + arch.gene_embedding) / 2.0)});
    for (auto* group : {&first_, &encoder_, &decoder_}) stream = examples::init_stack(*group, seed, stream);
    heads_->init(seed, stream);
    network_.add("gene_embedding", embedding(), d_embedding_.as_matrix(genes, embedding_width_));
    first_[0].add_to(network_, "graph_layer.message");
    network_.add("graph_layer.root.weight", first_[1].weight(), first_[1].dw.as_matrix(genes, first));
    examples::add_stack(encoder_, network_, "encoder");
    examples::add_stack(decoder_, network_, "decoder");
    heads_->add_to(network_, "head");
    with_centres_.append(network_);
    with_centres_.add("centres", centres(), d_centres_.as_matrix(clusters, latent_));
  }

  index_t genes() const { return genes_; }
  index_t clusters() const { return clusters_; }
  index_t latent() const { return latent_; }
  index_t embedding_width() const { return embedding_width_; }
  /// Network weights and the gene embedding (pre-training) / and the centres (fine-tuning).
  const nn::parameter_list<T>& network_parameters() const { return network_; }
  const nn::parameter_list<T>& all_parameters() const { return with_centres_; }
  matrix_view<T> centres() { return centres_.as_matrix(clusters_, latent_); }
  matrix_view<T> embedding() { return embedding_.as_matrix(genes_, embedding_width_); }

  /// Work buffers for mini-batches of up to `max_rows` cells per view.
  struct workspace {
    index_t rows;
    stack_cache<T> enc, dec;  // both views stacked: 2 rows
    typename examples::zinb_heads<T>::workspace heads;
    host_buffer<T> masked[2], d_masked, message, d_message, features, first_pre, first_root, first_post, d_first,
        counts, size_factors, d_hidden, d_rep, g_instance, g_proto, p;
    std::vector<std::vector<index_t>> batch_assignments;
    workspace(const model& m, index_t max_rows)
        : rows(max_rows),
          enc(m.encoder_, 2 * max_rows),
          dec(m.decoder_, 2 * max_rows),
          heads(*m.heads_, 2 * max_rows),
          masked{host_buffer<T>(m.genes_ * m.embedding_width_), host_buffer<T>(m.genes_ * m.embedding_width_)},
          d_masked(m.genes_ * m.embedding_width_),
          message(2 * max_rows * m.embedding_width_),
          d_message(2 * max_rows * m.embedding_width_),
          features(2 * max_rows * m.genes_),
          first_pre(2 * max_rows * m.first_[0].out),
          first_root(2 * max_rows * m.first_[0].out),
          first_post(2 * max_rows * m.first_[0].out),
          d_first(2 * max_rows * m.first_[0].out),
          counts(2 * max_rows * m.genes_),
          size_factors(2 * max_rows),
          d_hidden(2 * max_rows * m.heads_->hidden()),
          d_rep(2 * max_rows * m.latent_),
          g_instance(2 * max_rows * m.latent_),
          g_proto(max_rows * m.latent_),
          p(max_rows * m.clusters_) {}
  };

  /// Losses of one mini-batch step (unweighted).
  struct step_losses {
    double zinb = 0;
    double instance = 0;
    double proto = 0;
    double kl = 0;
  };

  /// Pre-training step on two views of one batch: lambda1 InfoNCE(h, h') + lambda2 ProtoNCE(h) (when
  /// `prototypes` is not empty) + (ZINB + ZINB') / 2. Gradients of every entry of
  /// `network_parameters()` are overwritten.
  template <class Policy>
  step_losses pretrain_step(const Policy& policy, const training_data<T>& data, const graph_view<T>& view1,
                            const graph_view<T>& view2, std::span<const prototype_clustering<T>> prototypes,
                            workspace& ws, const loss_weights& weights) {
    constexpr const char* fn = "scgpcl::pretrain_step";
    check_view(fn, "view1", data, view1, ws);
    check_view(fn, "view2", data, view2, ws);
    const auto n = static_cast<index_t>(view1.cells.size());
    cellkit::expect_shapes(
        view2.cells.size() == view1.cells.size(), fn, "view2", view2.graph.cells_from_genes_operator().shape(), "view1",
        view1.graph.cells_from_genes_operator().shape(),
        "the two views must hold the same cells (InfoNCE pairs row i of one with row i of the other)");
    CELLKIT_EXPECTS(view1.cells == view2.cells, fn, "view2",
                    "holds other cells than view1: the two views must be of the same batch, in the same order");
    check_temperature<T>(fn, weights.temperature);
    const index_t d = embedding_width_;
    gather_counts(policy, data, view1.cells, ws, 0);
    gather_counts(policy, data, view1.cells, ws, n);

    // messages of both views, stacked: rows [0, n) view 1, [n, 2n) view 2
    const graph_view<T>* views[2] = {&view1, &view2};
    for (int v = 0; v < 2; ++v) {
      auto masked = mask_embedding(policy, views[v]->embedding_mask, ws, v);
      views[v]->graph.cells_from_genes(policy, matrix_view<const T>(masked), rows_of(ws.message, v * n, n, d));
      gather_features(policy, data, *views[v], ws, v * n);
    }
    auto message = matrix_view<const T>(ws.message.data(), 2 * n, d);
    auto features = matrix_view<const T>(ws.features.data(), 2 * n, genes_);
    auto rep = encode(policy, message, features, ws);
    auto h = stack_forward(policy, decoder_, true, matrix_view<const T>(rep), ws.dec);
    auto d_h = matrix_view<T>(ws.d_hidden.data(), 2 * n, h.cols());
    step_losses losses;
    losses.zinb = heads_->loss_and_backward(policy, matrix_view<const T>(h), counts_rows(ws, 2 * n),
                                            vector_view<const T>(ws.size_factors.data(), 2 * n), ws.heads, d_h);
    auto d_rep = matrix_view<T>(ws.d_rep.data(), 2 * n, latent_);
    stack_backward(policy, decoder_, true, matrix_view<const T>(rep), ws.dec, d_h, d_rep, false);

    // InfoNCE between the views, ProtoNCE of view 1 against the prototypes (scGPCL's choice)
    const auto rep1 = matrix_view<const T>(rep.data(), n, latent_);
    const auto rep2 = matrix_view<const T>(rep.data() + n * latent_, n, latent_);
    const T tau = static_cast<T>(weights.temperature);
    losses.instance = static_cast<double>(
        cellkit::contrastive::info_nce(policy, rep1, rep2, rows_of(ws.g_instance, 0, n, latent_),
                                       rows_of(ws.g_instance, n, n, latent_), {.temperature = tau}));
    add_scaled(ws.g_instance.data(), 2 * n * latent_, weights.lambda1, d_rep.data());
    if (!prototypes.empty() && weights.lambda2 != 0.0) {
      std::vector<cellkit::contrastive::prototype_set<T, index_t>> sets;
      ws.batch_assignments.resize(prototypes.size());
      for (std::size_t t = 0; t < prototypes.size(); ++t) {
        auto& a = ws.batch_assignments[t];
        a.resize(static_cast<std::size_t>(n));
        for (index_t i = 0; i < n; ++i) a[i] = prototypes[t].assignments[view1.cells[i]];
        sets.push_back({vector_view<const index_t>(a.data(), n),
                        matrix_view<const T>(prototypes[t].centroids.data(), prototypes[t].k, latent_), std::nullopt});
      }
      losses.proto = static_cast<double>(cellkit::contrastive::proto_nce(
          policy, rep1, sets, rows_of(ws.g_proto, 0, n, latent_), std::nullopt, {.temperature = tau}));
      add_scaled(ws.g_proto.data(), n * latent_, weights.lambda2, d_rep.data());
    }

    auto d_message = matrix_view<T>(ws.d_message.data(), 2 * n, d);
    encode_backward(policy, message, features, ws, d_rep, d_message);
    embedding_backward(policy, view1, matrix_view<const T>(rows_of(ws.d_message, 0, n, d)), ws, false);
    embedding_backward(policy, view2, matrix_view<const T>(rows_of(ws.d_message, n, n, d)), ws, true);
    return losses;
  }

  /// Fine-tuning step on one view: KL(P || Q) + lambda3 ZINB, `target` P (cells x clusters, rows
  /// indexed like the data). Gradients of every entry of `all_parameters()` are overwritten.
  template <class Policy>
  step_losses finetune_step(const Policy& policy, const training_data<T>& data, const graph_view<T>& view,
                            matrix_view<const T> target, workspace& ws, const loss_weights& weights) {
    constexpr const char* fn = "scgpcl::finetune_step";
    check_view(fn, "view", data, view, ws);
    cellkit::expect_shapes(target.rows() == data.cells && target.cols() == clusters_, fn, "target", target.shape(),
                           "cells x clusters", {data.cells, clusters_}, "one target row per cell");
    CELLKIT_EXPECTS(weights.lambda3 > 0 && std::isfinite(weights.lambda3), fn, "lambda3",
                    "must be positive and finite, got " + std::to_string(weights.lambda3));
    const auto n = static_cast<index_t>(view.cells.size());
    const index_t d = embedding_width_;
    gather_counts(policy, data, view.cells, ws, 0);
    auto masked = mask_embedding(policy, view.embedding_mask, ws, 0);
    view.graph.cells_from_genes(policy, matrix_view<const T>(masked), rows_of(ws.message, 0, n, d));
    gather_features(policy, data, view, ws, 0);
    auto message = matrix_view<const T>(ws.message.data(), n, d);
    auto features = matrix_view<const T>(ws.features.data(), n, genes_);
    auto rep = encode(policy, message, features, ws);
    auto h = stack_forward(policy, decoder_, true, matrix_view<const T>(rep), ws.dec);
    auto d_h = matrix_view<T>(ws.d_hidden.data(), n, h.cols());
    step_losses losses;
    const T lambda3 = static_cast<T>(weights.lambda3);
    losses.zinb = heads_->loss_and_backward(policy, matrix_view<const T>(h), counts_rows(ws, n),
                                            vector_view<const T>(ws.size_factors.data(), n), ws.heads, d_h, lambda3) /
                  static_cast<double>(lambda3);
    auto d_rep = matrix_view<T>(ws.d_rep.data(), n, latent_);
    stack_backward(policy, decoder_, true, matrix_view<const T>(rep), ws.dec, d_h, d_rep, false);

    auto p_batch = matrix_view<T>(ws.p.data(), n, clusters_);
    nn::gather_rows(policy, target, std::span<const index_t>(view.cells), p_batch);
    auto d_rep_kl = rows_of(ws.g_instance, 0, n, latent_);
    auto r = cellkit::cluster::student_t_loss(
        policy, matrix_view<const T>(rep), matrix_view<const T>(centres()), matrix_view<const T>(p_batch),
        {.grad_z = d_rep_kl, .grad_mu = d_centres_.as_matrix(clusters_, latent_)}, {.alpha = T(1)});
    losses.kl = static_cast<double>(r.loss);
    add_scaled(d_rep_kl.data(), n * latent_, 1.0, d_rep.data());
    auto d_message = matrix_view<T>(ws.d_message.data(), n, d);
    encode_backward(policy, message, features, ws, d_rep, d_message);
    embedding_backward(policy, view, matrix_view<const T>(d_message), ws, false);
    return losses;
  }

  /// Representation h of every cell without augmentation (all genes, no mask), in chunks through `ws`.
  template <class Policy>
  void embed(const Policy& policy, const training_data<T>& data, const cell_gene_graph<T>& graph, workspace& ws,
             matrix_view<T> out) {
    const index_t cells = graph.full.cells();
    cellkit::expect_shapes(out.rows() == cells && out.cols() == latent_, "scgpcl::embed", "out", out.shape(),
                           "cells x latent", {cells, latent_}, "one row per cell");
    host_buffer<T> message(cells * embedding_width_, cellkit::uninitialized);
    graph.full.cells_from_genes(policy, matrix_view<const T>(embedding()), message.as_matrix(cells, embedding_width_));
    const index_t chunk = 2 * ws.rows;
    for (index_t first = 0; first < cells; first += chunk) {
      const index_t n = std::min(chunk, cells - first);
      auto z = encode(policy, matrix_view<const T>(message.data() + first * embedding_width_, n, embedding_width_),
                      matrix_view<const T>(data.features.data() + first * genes_, n, genes_), ws);
      for (index_t i = 0; i < n; ++i) std::copy(z.row_data(i), z.row_data(i) + latent_, out.row_data(first + i));
    }
  }

 private:
  static matrix_view<T> rows_of(host_buffer<T>& b, index_t first, index_t n, index_t cols) {
    return matrix_view<T>(b.data() + first * cols, n, cols);
  }
  matrix_view<const T> counts_rows(workspace& ws, index_t n) const {
    return matrix_view<const T>(ws.counts.data(), n, genes_);
  }
  static void add_scaled(const T* from, index_t count, double scale, T* to) {
    const T s = static_cast<T>(scale);
    for (index_t k = 0; k < count; ++k) to[k] += s * from[k];
  }

  void check_view(const char* fn, const char* name, const training_data<T>& data, const graph_view<T>& view,
                  const workspace& ws) const {
    cellkit::expect_shapes(
        view.graph.genes() == genes_ && view.graph.cells() == static_cast<index_t>(view.cells.size()), fn, name,
        view.graph.cells_from_genes_operator().shape(), "batch cells x model genes",
        {static_cast<index_t>(view.cells.size()), genes_}, "a view's graph links its batch cells to the model's genes");
    CELLKIT_EXPECTS(!view.cells.empty(), fn, name, "has no cells");
    CELLKIT_EXPECTS(static_cast<index_t>(view.cells.size()) <= ws.rows, fn, name,
                    std::to_string(view.cells.size()) + " cells, but the workspace holds batches of up to " +
                        std::to_string(ws.rows));
    CELLKIT_EXPECTS(data.genes == genes_, fn, "data",
                    "has " + std::to_string(data.genes) + " genes, the model " + std::to_string(genes_));
    for (index_t c : view.cells)
      CELLKIT_EXPECTS(c >= 0 && c < data.cells, fn, name,
                      "cell " + std::to_string(c) + " is outside [0, " + std::to_string(data.cells) + ")");
  }

  /// The cells' features (scaled log expression) of the view's cells with its masked columns
  /// zeroed, into rows [first, first + |cells|) of the workspace.
  template <class Policy>
  void gather_features(const Policy& policy, const training_data<T>& data, const graph_view<T>& view, workspace& ws,
                       index_t first) const {
    const auto keep = column_mask(policy, view.feature_mask, genes_);
    const index_t genes = genes_;
    cellkit::for_each_index(policy, static_cast<index_t>(view.cells.size()), [&](index_t i) {
      const T* from = data.features.data() + view.cells[static_cast<std::size_t>(i)] * genes;
      T* to = ws.features.data() + (first + i) * genes;
      for (index_t g = 0; g < genes; ++g) to[g] = keep[static_cast<std::size_t>(g)] * from[g];
    });
  }

  /// h = rest(relu(m W_m + b + x W_r)): the graph layer (two dense products into one
  /// pre-activation), then the remaining dense layers. Keeps what encode_backward needs in `ws`.
  template <class Policy>
  matrix_view<T> encode(const Policy& policy, matrix_view<const T> message, matrix_view<const T> features,
                        workspace& ws) {
    const index_t n = message.rows();
    const index_t width = first_[0].out;
    auto pre = rows_of(ws.first_pre, 0, n, width);
    auto root = rows_of(ws.first_root, 0, n, width);
    auto post = rows_of(ws.first_post, 0, n, width);
    nn::dense_forward(policy, message, first_[0].weight(), first_[0].bias(), pre);
    nn::dense_forward(policy, features, first_[1].weight(), std::nullopt, root);
    add_scaled(root.data(), n * width, 1.0, pre.data());
    nn::activation_forward(policy, nn::relu{}, pre, post);
    return stack_forward(policy, encoder_, false, matrix_view<const T>(post), ws.enc);
  }

  /// Backward of `encode`: d_rep (overwritten) -> the encoder's parameter gradients (overwritten)
  /// and dL/dm (overwritten); the features need no gradient.
  template <class Policy>
  void encode_backward(const Policy& policy, matrix_view<const T> message, matrix_view<const T> features, workspace& ws,
                       matrix_view<T> d_rep, matrix_view<T> d_message) {
    const index_t n = message.rows();
    const index_t width = first_[0].out;
    auto pre = rows_of(ws.first_pre, 0, n, width);
    auto post = rows_of(ws.first_post, 0, n, width);
    auto d_post = rows_of(ws.d_first, 0, n, width);
    stack_backward(policy, encoder_, false, matrix_view<const T>(post), ws.enc, d_rep, d_post, false);
    nn::activation_backward(policy, nn::relu{}, pre, post, d_post, d_post);
    auto& m = first_[0];
    auto& r = first_[1];
    nn::dense_backward(policy, message, m.weight(), d_post, d_message, m.dw.as_matrix(m.in, m.out), m.db.view());
    nn::dense_backward(policy, features, r.weight(), d_post, std::nullopt, r.dw.as_matrix(r.in, r.out), std::nullopt);
  }

  /// counts and size factors of `cells` into rows [first, first + |cells|) of the workspace.
  template <class Policy>
  void gather_counts(const Policy& policy, const training_data<T>& data, const std::vector<index_t>& cells,
                     workspace& ws, index_t first) const {
    const index_t genes = genes_;
    cellkit::for_each_index(policy, static_cast<index_t>(cells.size()), [&](index_t i) {
      const index_t c = cells[static_cast<std::size_t>(i)];
      const T* from = data.counts.data() + c * genes;
      std::copy(from, from + genes, ws.counts.data() + (first + i) * genes);
      ws.size_factors[first + i] = data.size_factors[c];
    });
  }

  /// dE (+)= mask(M^T dm): the message's backward (genes <- cells with the view's transpose) and
  /// the mask's (the same columns are zeroed).
  template <class Policy>
  void embedding_backward(const Policy& policy, const graph_view<T>& view, matrix_view<const T> d_message,
                          workspace& ws, bool accumulate) {
    auto d_masked = ws.d_masked.as_matrix(genes_, embedding_width_);
    view.graph.genes_from_cells(policy, d_message, d_masked);
    const auto keep = column_mask(policy, view.embedding_mask, embedding_width_);
    auto d_e = d_embedding_.as_matrix(genes_, embedding_width_);
    for (index_t g = 0; g < genes_; ++g) {
      const T* from = d_masked.row_data(g);
      T* to = d_e.row_data(g);
      for (index_t j = 0; j < embedding_width_; ++j) to[j] = (accumulate ? to[j] : T(0)) + keep[j] * from[j];
    }
  }

  /// The view's column mask of the gene embedding: 1 for kept, 0 for dropped columns. In the
  /// `columns` mode mask_features decides per column (Philox element = column), so masking one row
  /// of ones gives the decisions for the whole genes x width matrix at 1/genes of the cost.
  template <class Policy>
  static std::vector<T> column_mask(const Policy& policy, const cg::feature_mask_params& mask, index_t width) {
    std::vector<T> keep(static_cast<std::size_t>(width), T(1));
    auto row = matrix_view<T>(keep.data(), 1, width);
    cg::mask_features(policy, row, row, mask);
    return keep;
  }

  /// E~ = E with the view's dropped columns zeroed, into the workspace's slot `slot`.
  template <class Policy>
  matrix_view<T> mask_embedding(const Policy& policy, const cg::feature_mask_params& mask, workspace& ws, int slot) {
    const auto keep = column_mask(policy, mask, embedding_width_);
    auto masked = ws.masked[slot].as_matrix(genes_, embedding_width_);
    for (index_t g = 0; g < genes_; ++g) {
      const T* from = embedding_.data() + g * embedding_width_;
      T* to = masked.row_data(g);
      for (index_t j = 0; j < embedding_width_; ++j) to[j] = keep[j] * from[j];
    }
    return masked;
  }

  index_t genes_, clusters_, embedding_width_, latent_;
  host_buffer<T> embedding_, d_embedding_;
  std::vector<dense_layer<T>> first_;  // the graph layer: message weights (+ bias), root weights
  std::vector<dense_layer<T>> encoder_, decoder_;
  std::optional<examples::zinb_heads<T>> heads_;  // built once the decoder's width is known
  host_buffer<T> centres_, d_centres_;
  nn::parameter_list<T> network_, with_centres_;
};

// ---- training ----------------------------------------------------------------------------------

struct train_config {
  index_t clusters = 0;
  architecture arch{};
  augmentation views{};
  loss_weights weights{};
  std::vector<double> granularity{1.0, 1.5, 2.0};  // prototype sets: round(g K) clusters each
  index_t batch_size = 256;
  int pretrain_epochs = 60;
  int warmup = 30;         // epochs of InfoNCE + ZINB before ProtoNCE and the stopping rule start
  double stop_ari = 0.99;  // stop pre-training when successive clusterings agree this well
  double pretrain_lr = 1e-3;
  double weight_decay = 1e-4;  // AdamW (pre-training) and Adadelta (fine-tuning), as scGPCL
  int finetune_max_epochs = 100;
  double finetune_lr = 1.0;
  double finetune_rho = 0.95;
  double tol = 0.001;  // stop fine-tuning when fewer than this fraction of labels change
  int prototype_restarts = 3;
  int kmeans_restarts = 20;
  bool pretrain_only = false;  // stop after the k-means of the pre-trained representation (timing)
  std::uint64_t seed = 0;
};

struct progress {
  const char* phase = "";  // "pretrain", "kmeans", "finetune"
  int epoch = 0;
  double zinb = 0, instance = 0, proto = 0, kl = 0;
  std::optional<double> stability;  // ARI between this and the previous epoch's clustering
  double labels_changed = -1;       // fraction, fine-tuning only
  std::optional<double> ari, nmi;   // against the true labels, when known
  double seconds = 0;               // since training started
  double epoch_seconds = 0;
};

template <class T>
struct train_result {
  host_buffer<T> latent;  // cells x latent
  host_buffer<T> q;       // cells x clusters
  std::vector<index_t> labels;
  std::vector<index_t> kmeans_labels;  // initial clustering of the pre-trained representation
  int pretrain_epochs = 0, finetune_epochs = 0;
  bool pretrain_stopped_early = false, converged = false;
  double final_zinb = 0, final_instance = 0, final_proto = 0, final_kl = 0;
  double pretrain_seconds = 0, pretrain_step_seconds = 0, kmeans_seconds = 0, finetune_seconds = 0;
  std::optional<double> ari, nmi, kmeans_ari;
};

template <class T>
void check_config(const training_data<T>& data, const model<T>& m, const train_config& cfg) {
  constexpr const char* fn = "scgpcl::train";
  examples::check_count_data(data, cfg.clusters, fn);
  CELLKIT_EXPECTS(m.genes() == data.genes, fn, "model",
                  "built for " + std::to_string(m.genes()) + " genes but the data have " + std::to_string(data.genes));
  CELLKIT_EXPECTS(m.clusters() == cfg.clusters, fn, "model",
                  "built for " + std::to_string(m.clusters()) + " clusters but the configuration asks for " +
                      std::to_string(cfg.clusters));
  check_temperature<T>(fn, cfg.weights.temperature);
  for (double w : {cfg.weights.lambda1, cfg.weights.lambda2})
    CELLKIT_EXPECTS(std::isfinite(w) && w >= 0, fn, "weights", "lambda1 and lambda2 must be finite and >= 0");
  CELLKIT_EXPECTS(cfg.weights.lambda3 > 0 && std::isfinite(cfg.weights.lambda3), fn, "weights.lambda3",
                  "must be positive and finite");
  CELLKIT_EXPECTS(cfg.batch_size >= 2, fn, "batch_size", "needs at least 2 cells (InfoNCE needs negatives)");
  CELLKIT_EXPECTS(!cfg.granularity.empty(), fn, "granularity", "needs at least one prototype set");
  for (double g : cfg.granularity)
    CELLKIT_EXPECTS(std::isfinite(g) && g > 0, fn, "granularity", "factors must be positive and finite");
  CELLKIT_EXPECTS(cfg.views.gene_keep > 0 && cfg.views.gene_keep <= 1, fn, "views.gene_keep",
                  "must be in (0, 1]: a view needs gene nodes");
  CELLKIT_EXPECTS(cfg.views.feature_drop >= 0 && cfg.views.feature_drop < 1, fn, "views.feature_drop",
                  "must be in [0, 1)");
}

/// Pre-trains (InfoNCE + ZINB, then + ProtoNCE after the warm-up, until the clustering is stable),
/// initialises the centres by k-means on the representation and fine-tunes with KL(P || Q) +
/// lambda3 ZINB until fewer than `tol` of the labels change between epochs.
template <class T, class Policy>
train_result<T> train(const Policy& policy, const training_data<T>& data, model<T>& m, const train_config& cfg,
                      const std::function<void(const progress&)>& report = {}) {
  check_config(data, m, cfg);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto notify = [&](const progress& p) {
    if (report) report(p);
  };
  const index_t n = data.cells;
  const index_t k = cfg.clusters;
  const auto graph = build_graph(policy, data);
  typename model<T>::workspace ws(m, std::min(cfg.batch_size, n));
  nn::minibatches batches(n, {.batch_size = cfg.batch_size, .shuffle = true, .seed = cfg.seed, .stream = 1});
  // Views draw from Philox streams 16 + 8 step + {0, 1, 2} (view 1) and + {4, 5, 6} (view 2);
  // streams 0-15 are the initialisation's and the batches'.
  std::uint64_t global_step = 0;
  auto view_stream = [&](int v) { return static_cast<std::uint32_t>(16 + 8 * global_step + 4 * v); };
  examples::last_good_epoch<T> good(m.all_parameters(), "");  // no checkpoint file in this example
  train_result<T> result;
  result.latent = host_buffer<T>(n * m.latent());
  auto latent = result.latent.as_matrix(n, m.latent());

  // 1. pre-training
  {
    nn::adamw<T> opt({.lr = static_cast<T>(cfg.pretrain_lr), .weight_decay = static_cast<T>(cfg.weight_decay)});
    std::vector<prototype_clustering<T>> prototypes;
    std::vector<index_t> previous;
    for (int epoch = 0; epoch < cfg.pretrain_epochs; ++epoch) {
      progress pr;
      if (epoch >= cfg.warmup) {
        // prototypes of this epoch: k-means of every cell's representation at each granularity
        m.embed(policy, data, graph, ws, latent);
        prototypes.clear();
        for (double g : cfg.granularity) {
          const index_t kt = std::clamp<index_t>(static_cast<index_t>(std::llround(g * static_cast<double>(k))), 1, n);
          auto km = cellkit::cluster::kmeans(policy, matrix_view<const T>(latent),
                                             {.k = kt, .n_init = cfg.prototype_restarts, .seed = cfg.seed});
          prototypes.push_back({std::move(km.labels), std::move(km.centres), kt});
        }
        const auto& current = prototypes.front().assignments;
        examples::score_labels(data.labels, current, pr.ari, pr.nmi);
        if (!previous.empty()) {
          pr.stability = cellkit::metrics::adjusted_rand_index(previous, current);
          if (*pr.stability > cfg.stop_ari) {
            result.pretrain_stopped_early = true;
            pr.phase = "pretrain";
            pr.epoch = epoch;
            pr.zinb = result.final_zinb;
            pr.instance = result.final_instance;
            pr.proto = result.final_proto;
            pr.seconds = seconds();
            notify(pr);
            break;
          }
        }
        previous = current;
      }
      const auto epoch_start = seconds();
      double zinb = 0, instance = 0, proto = 0;
      index_t seen = 0;
      for (auto rows : batches.epoch(static_cast<std::uint64_t>(epoch))) {
        typename model<T>::step_losses l;
        try {
          auto views = make_view_pair(policy, graph, rows, cfg.views, cfg.seed, view_stream(0), view_stream(1));
          l = m.pretrain_step(policy, data, views[0], views[1], std::span<const prototype_clustering<T>>(prototypes),
                              ws, cfg.weights);
        } catch (const cellkit::invalid_argument& e) {
          // the inputs were checked up front: a rejected value here was produced by the training
          good.diverged("pretrain", epoch + 1, std::string("a layer output (") + e.what() + ")");
        }
        ++global_step;
        if (!std::isfinite(l.zinb)) good.diverged("pretrain", epoch + 1, "the ZINB loss");
        if (!std::isfinite(l.instance)) good.diverged("pretrain", epoch + 1, "the InfoNCE loss");
        if (!std::isfinite(l.proto)) good.diverged("pretrain", epoch + 1, "the ProtoNCE loss");
        opt.step(policy, m.network_parameters());
        const auto b = static_cast<double>(rows.size());
        zinb += l.zinb * b;
        instance += l.instance * b;
        proto += l.proto * b;
        seen += static_cast<index_t>(rows.size());
      }
      if (!examples::all_finite(m.network_parameters())) good.diverged("pretrain", epoch + 1, "a network parameter");
      good.save();
      result.pretrain_step_seconds += seconds() - epoch_start;
      result.pretrain_epochs = epoch + 1;
      result.final_zinb = zinb / static_cast<double>(seen);
      result.final_instance = instance / static_cast<double>(seen);
      result.final_proto = proto / static_cast<double>(seen);
      pr.phase = "pretrain";
      pr.epoch = epoch + 1;
      pr.zinb = result.final_zinb;
      pr.instance = result.final_instance;
      pr.proto = result.final_proto;
      pr.seconds = seconds();
      pr.epoch_seconds = seconds() - epoch_start;
      notify(pr);
    }
  }
  result.pretrain_seconds = seconds();
  m.embed(policy, data, graph, ws, latent);

  // 2. centres from k-means on the representation
  {
    auto km = cellkit::cluster::kmeans(policy, matrix_view<const T>(latent),
                                       {.k = k, .n_init = cfg.kmeans_restarts, .seed = cfg.seed});
    std::copy(km.centres.begin(), km.centres.end(), m.centres().data());
    result.kmeans_labels = km.labels;
    progress pr;
    examples::score_labels(data.labels, km.labels, result.kmeans_ari, pr.nmi);
    good.save();
    pr.phase = "kmeans";
    pr.ari = result.kmeans_ari;
    pr.seconds = seconds();
    notify(pr);
  }
  result.kmeans_seconds = seconds() - result.pretrain_seconds;
  if (cfg.pretrain_only) return result;

  // 3. fine-tuning: KL(P || Q) + lambda3 ZINB, P recomputed from all cells every epoch
  result.q = host_buffer<T>(n * k);
  auto q = result.q.as_matrix(n, k);
  host_buffer<T> p(n * k);
  auto assign = [&] {
    m.embed(policy, data, graph, ws, latent);
    cellkit::cluster::student_t_assign(policy, matrix_view<const T>(latent), matrix_view<const T>(m.centres()), q,
                                       T(1));
    return examples::argmax_rows<T>(matrix_view<const T>(q));
  };
  {
    nn::adadelta<T> opt({.lr = static_cast<T>(cfg.finetune_lr),
                         .rho = static_cast<T>(cfg.finetune_rho),
                         .weight_decay = static_cast<T>(cfg.weight_decay)});
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
      const auto epoch_start = seconds();
      double zinb = 0, kl = 0;
      index_t seen = 0;
      for (auto rows : batches.epoch(static_cast<std::uint64_t>(cfg.pretrain_epochs + epoch))) {
        typename model<T>::step_losses l;
        try {
          auto view = make_view(policy, graph, rows, cfg.views, cfg.seed, view_stream(0));
          l = m.finetune_step(policy, data, view, matrix_view<const T>(p.as_matrix(n, k)), ws, cfg.weights);
        } catch (const cellkit::invalid_argument& e) {
          good.diverged("finetune", epoch + 1, std::string("a layer output (") + e.what() + ")");
        }
        ++global_step;
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
      pr.epoch_seconds = seconds() - epoch_start;
      notify(pr);
    }
  }
  result.labels = assign();
  examples::score_labels(data.labels, result.labels, result.ari, result.nmi);
  result.finetune_seconds = seconds() - result.pretrain_seconds - result.kmeans_seconds;
  return result;
}

}  // namespace scgpcl
