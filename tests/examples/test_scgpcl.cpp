// The scGPCL example model (examples/scgpcl/model.hpp): a full pre-training step's and a full
// fine-tuning step's gradients against central differences, a short training run that must learn,
// and its input checks.

#include "../../examples/scgpcl/model.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "examples/simulated_counts.hpp"
#include "support/test_support.hpp"

using namespace cellkit;

namespace {

/// 9 cells x 6 genes of small counts (every cell expresses some genes), in double.
scgpcl::training_data<double> tiny_data() {
  const index_t cells = 9, genes = 6;
  scgpcl::training_data<double> d;
  d.cells = cells;
  d.genes = genes;
  d.counts = host_buffer<double>(cells * genes);
  d.features = host_buffer<double>(cells * genes);
  for (index_t i = 0; i < cells * genes; ++i) {
    d.counts[i] = static_cast<double>((i * 7 + 3) % 5 == 0 ? 0 : (i * 13) % 9);
    d.features[i] = std::sin(0.7 * static_cast<double>(i));
  }
  for (index_t i = 0; i < cells; ++i) d.size_factors.push_back(0.6 + 0.1 * static_cast<double>(i));
  return d;
}

/// Compares every parameter's analytic gradient (filled by one call of `loss`) with central differences.
void check_gradients(const nn::parameter_list<double>& params, const std::function<double()>& loss) {
  loss();
  std::vector<std::vector<double>> grads;
  for (const auto& e : params) grads.emplace_back(e.grad.data(), e.grad.data() + e.size());
  int checked = 0;
  for (std::size_t e = 0; e < params.size(); ++e) {
    double* v = params[e].value.data();
    for (index_t i = 0; i < params[e].size(); ++i) {
      const double keep = v[i], h = 1e-6 * std::max(1.0, std::fabs(keep));
      v[i] = keep + h;
      const double up = loss();
      v[i] = keep - h;
      const double down = loss();
      v[i] = keep;
      const double fd = (up - down) / (2 * h);
      INFO(params[e].name << "[" << i << "] analytic " << grads[e][i] << " numeric " << fd);
      CHECK(std::fabs(grads[e][i] - fd) <= 1e-6 * std::fabs(fd) + 1e-8);
      ++checked;
    }
  }
  CHECK(checked == params.total_size());
}

}  // namespace

TEST_CASE(
    "scgpcl: one full pre-training step (InfoNCE + ProtoNCE + ZINB, every parameter) matches central "
    "differences") {
  auto d = tiny_data();
  const auto graph = scgpcl::build_graph(serial{}, d);
  scgpcl::model<double> m(d.genes, 3, {.gene_embedding = 4, .hidden = {5}, .latent = 3}, 11);
  const std::vector<index_t> batch{4, 0, 7, 2, 8};
  const scgpcl::augmentation aug{.gene_keep = 0.7, .feature_drop = 0.3};
  auto v1 = scgpcl::make_view(serial{}, graph, batch, aug, 5, 16);
  auto v2 = scgpcl::make_view(serial{}, graph, batch, aug, 5, 18);
  // the views differ (otherwise InfoNCE's two sides would be the same function)
  const auto a = v1.graph.cells_from_genes_operator(), b = v2.graph.cells_from_genes_operator();
  CHECK((a.nnz() != b.nnz() || !std::equal(a.indices(), a.indices() + a.nnz(), b.indices())));
  // two prototype sets over all 9 cells (k = 2 and 3), fixed centroids
  std::vector<scgpcl::prototype_clustering<double>> prototypes(2);
  for (int t = 0; t < 2; ++t) {
    auto& p = prototypes[static_cast<std::size_t>(t)];
    p.k = 2 + t;
    for (index_t i = 0; i < d.cells; ++i) p.assignments.push_back((i * (t + 2)) % p.k);
    for (index_t j = 0; j < p.k * 3; ++j) p.centroids.push_back(std::cos(0.9 * static_cast<double>(j + t)));
  }
  scgpcl::model<double>::workspace ws(m, 5);
  const scgpcl::loss_weights w{.temperature = 0.5, .lambda1 = 1.0, .lambda2 = 0.7};
  check_gradients(m.network_parameters(), [&] {
    auto l =
        m.pretrain_step(serial{}, d, v1, v2, std::span<const scgpcl::prototype_clustering<double>>(prototypes), ws, w);
    CHECK(l.proto > 0);
    return l.zinb + w.lambda1 * l.instance + w.lambda2 * l.proto;
  });
}

TEST_CASE(
    "scgpcl: one full fine-tuning step (KL(P || Q) + lambda3 ZINB, every parameter and the centres) matches "
    "central differences") {
  auto d = tiny_data();
  const index_t k = 3;
  const auto graph = scgpcl::build_graph(serial{}, d);
  scgpcl::model<double> m(d.genes, k, {.gene_embedding = 4, .hidden = {5}, .latent = 3}, 12);
  auto c = m.centres();
  for (index_t i = 0; i < c.rows() * c.cols(); ++i) c.data()[i] = std::cos(1.1 * static_cast<double>(i));
  std::vector<double> p(d.cells * k);
  for (index_t i = 0; i < d.cells; ++i) {
    double s = 0;
    for (index_t j = 0; j < k; ++j) s += p[i * k + j] = 1.0 + static_cast<double>((i + 2 * j) % 4);
    for (index_t j = 0; j < k; ++j) p[i * k + j] /= s;
  }
  const std::vector<index_t> batch{1, 6, 3, 5};
  auto view = scgpcl::make_view(serial{}, graph, batch, {.gene_keep = 0.8, .feature_drop = 0.25}, 9, 20);
  scgpcl::model<double>::workspace ws(m, 4);
  const scgpcl::loss_weights w{.lambda3 = 0.6};
  check_gradients(m.all_parameters(), [&] {
    auto l = m.finetune_step(serial{}, d, view, matrix_view<const double>(p.data(), d.cells, k), ws, w);
    return l.kl + w.lambda3 * l.zinb;
  });
}

TEST_CASE("scgpcl: a short training run lowers the losses and recovers the groups, bit for bit reproducibly") {
  auto d = examples_test::simulated<float>(600, 200, 3, 5);
  scgpcl::train_config cfg;
  cfg.clusters = 3;
  cfg.arch = {.gene_embedding = 16, .hidden = {32}, .latent = 8};
  cfg.batch_size = 64;
  cfg.pretrain_epochs = 12;
  cfg.warmup = 6;
  cfg.granularity = {1.0, 2.0};
  cfg.finetune_max_epochs = 6;
  cfg.kmeans_restarts = 4;
  cfg.prototype_restarts = 2;
  cfg.seed = 2;
  scgpcl::model<float> m(d.genes, cfg.clusters, cfg.arch, cfg.seed);
  std::vector<double> zinb, instance, proto;
  auto r = scgpcl::train(openmp{2}, d, m, cfg, [&](const scgpcl::progress& p) {
    if (std::string(p.phase) == "pretrain" && p.epoch_seconds > 0) {
      zinb.push_back(p.zinb);
      instance.push_back(p.instance);
      proto.push_back(p.proto);
    }
    MESSAGE(p.phase << " " << p.epoch << " zinb " << p.zinb << " ins " << p.instance << " proto " << p.proto << " kl "
                    << p.kl << " ari " << p.ari.value_or(-1) << " changed " << p.labels_changed);
  });
  REQUIRE(zinb.size() >= 7);
  CHECK(zinb.back() < 0.9 * zinb.front());
  CHECK(instance.back() < instance.front());
  CHECK(proto[5] == 0);  // warm-up: no prototypes yet
  CHECK(proto[6] > 0);
  REQUIRE(r.ari.has_value());
  MESSAGE("ARI " << *r.ari << " NMI " << *r.nmi << ", k-means on the pre-trained representation " << *r.kmeans_ari
                 << ", pre-training epochs " << r.pretrain_epochs << ", fine-tuning epochs " << r.finetune_epochs);
  CHECK(*r.ari > 0.6);  // chance is 0
  CHECK(r.labels.size() == 600);

  SUBCASE("the same seed and threads give the same bits") {
    scgpcl::model<float> again(d.genes, cfg.clusters, cfg.arch, cfg.seed);
    auto r2 = scgpcl::train(openmp{2}, d, again, cfg);
    CHECK(r2.labels == r.labels);
    CHECK(std::equal(r2.latent.data(), r2.latent.data() + r2.latent.size(), r.latent.data()));
  }
}

TEST_CASE("scgpcl: bad input is refused with the input named; divergence restores the last good epoch") {
  auto d = examples_test::simulated<float>(40, 30, 2, 9);
  scgpcl::train_config cfg;
  cfg.clusters = 2;
  cfg.arch = {.gene_embedding = 4, .hidden = {8}, .latent = 3};
  cfg.batch_size = 16;
  cfg.pretrain_epochs = 2;
  cfg.warmup = 1;
  cfg.finetune_max_epochs = 0;
  cfg.kmeans_restarts = 1;
  scgpcl::model<float> m(d.genes, 2, cfg.arch, 1);
  const auto graph = scgpcl::build_graph(serial{}, d);
  scgpcl::model<float>::workspace ws(m, 16);
  const std::vector<index_t> batch{0, 1, 2, 3}, shorter{0, 1, 2}, other{4, 5, 6, 7};

  SUBCASE("views of different shapes or of different cells") {
    auto v1 = scgpcl::make_view(serial{}, graph, batch, {}, 1, 16);
    auto v2 = scgpcl::make_view(serial{}, graph, shorter, {}, 1, 18);
    CHECK_THROWS_WITH_AS(m.pretrain_step(serial{}, d, v1, v2, {}, ws, {}), doctest::Contains("view2"),
                         dimension_mismatch);
    auto v3 = scgpcl::make_view(serial{}, graph, other, {}, 1, 18);
    CHECK_THROWS_WITH_AS(m.pretrain_step(serial{}, d, v1, v3, {}, ws, {}),
                         doctest::Contains("holds other cells than view1"), invalid_argument);
  }
  SUBCASE("an empty graph") {
    for (index_t i = 0; i < d.cells * d.genes; ++i) d.counts[i] = 0;
    CHECK_THROWS_WITH_AS(scgpcl::train(serial{}, d, m, cfg), doctest::Contains("graph has no edges"), invalid_argument);
    CHECK_THROWS_WITH_AS(scgpcl::build_graph(serial{}, d), doctest::Contains("'graph'"), invalid_argument);
  }
  SUBCASE("a temperature whose logits would overflow") {
    cfg.weights.temperature = 1e-30;
    CHECK_THROWS_WITH_AS(scgpcl::train(serial{}, d, m, cfg), doctest::Contains("temperature 1e-30 makes the logits"),
                         invalid_argument);
    auto v1 = scgpcl::make_view(serial{}, graph, batch, {}, 1, 16);
    auto v2 = scgpcl::make_view(serial{}, graph, batch, {}, 1, 18);
    CHECK_THROWS_WITH_AS(m.pretrain_step(serial{}, d, v1, v2, {}, ws, {.temperature = 0}),
                         doctest::Contains("'temperature'"), invalid_argument);
  }
  SUBCASE("more clusters than cells, a model for other genes") {
    cfg.clusters = 41;
    CHECK_THROWS_WITH_AS(scgpcl::train(serial{}, d, m, cfg), doctest::Contains("41 clusters for 40 cells"),
                         invalid_argument);
    cfg.clusters = 2;
    scgpcl::model<float> other_genes(29, 2, cfg.arch, 1);
    CHECK_THROWS_WITH_AS(scgpcl::train(serial{}, d, other_genes, cfg), doctest::Contains("built for 29 genes"),
                         invalid_argument);
  }
  SUBCASE("a divergent learning rate stops with the phase and epoch; the parameters are those of the last good epoch") {
    scgpcl::train(serial{}, d, m, cfg);
    std::vector<std::vector<float>> before;
    for (const auto& e : m.all_parameters()) before.emplace_back(e.value.data(), e.value.data() + e.size());
    cfg.pretrain_lr = 1e30;
    try {
      scgpcl::train(serial{}, d, m, cfg);
      FAIL("training with lr 1e30 should diverge");
    } catch (const scgpcl::training_diverged& e) {
      CHECK(e.phase() == "pretrain");
      CHECK(e.epoch() == 1);
      MESSAGE(std::string(e.what()));
    }
    for (std::size_t i = 0; i < before.size(); ++i) {
      const auto& e = m.all_parameters()[i];
      CHECK(std::equal(before[i].begin(), before[i].end(), e.value.data()));
    }
  }
}
