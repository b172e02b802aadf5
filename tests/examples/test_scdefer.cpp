// The scDEFER example model (examples/scdefer/model.hpp): a full training step's gradients against
// central differences, a short training run that must learn, and its input checks.

#include "../../examples/scdefer/model.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "examples/simulated_counts.hpp"
#include "support/test_support.hpp"

using namespace cellkit;

namespace {

/// Fixed row-stochastic targets for the gradient check.
std::vector<double> fixed_target(index_t cells, index_t k, int shift) {
  std::vector<double> p(cells * k);
  for (index_t i = 0; i < cells; ++i) {
    double s = 0;
    for (index_t j = 0; j < k; ++j) s += p[i * k + j] = 1.0 + static_cast<double>((i + 2 * j + shift) % 4);
    for (index_t j = 0; j < k; ++j) p[i * k + j] /= s;
  }
  return p;
}

}  // namespace

TEST_CASE(
    "scdefer: one full training step's gradients (all four loss terms, every parameter) match central "
    "differences") {
  const index_t cells = 10, genes = 6, k = 3;
  scdefer::training_data<double> d;
  d.cells = cells;
  d.genes = genes;
  d.counts = host_buffer<double>(cells * genes);
  d.features = host_buffer<double>(cells * genes);
  for (index_t i = 0; i < cells * genes; ++i) {
    d.counts[i] = static_cast<double>((i * 7 + 3) % 5 == 0 ? 0 : (i * 13) % 9);
    d.features[i] = std::sin(0.7 * static_cast<double>(i)) * 1.3;
  }
  for (index_t i = 0; i < cells; ++i) d.size_factors.push_back(0.6 + 0.1 * static_cast<double>(i));
  const auto g = scdefer::build_cell_graph(serial{}, matrix_view<const double>(d.features.data(), cells, genes), 3);
  CHECK(g.edges >= cells * 3);
  // the graph on principal components instead (--graph-pcs): same degree bounds
  const auto g_pca =
      scdefer::build_cell_graph(serial{}, matrix_view<const double>(d.features.data(), cells, genes), 3, 4, 7);
  CHECK(g_pca.edges >= cells * 3);
  CHECK(g_pca.edges <= cells * 6);
  // the fusion weight away from 0 and 1 so both encoders carry gradient
  scdefer::model<double> m(genes, k, {.hidden = {5, 4, 3}, .hops = 2, .fusion = 0.3}, 11);
  auto c = m.centres();
  for (index_t i = 0; i < c.rows() * c.cols(); ++i) c.data()[i] = std::cos(1.1 * static_cast<double>(i));
  const auto p = fixed_target(cells, k, 0), p_d = fixed_target(cells, k, 1), p_g = fixed_target(cells, k, 2);
  const scdefer::model<double>::targets targets{matrix_view<const double>(p.data(), cells, k),
                                                matrix_view<const double>(p_d.data(), cells, k),
                                                matrix_view<const double>(p_g.data(), cells, k)};
  scdefer::model<double>::workspace ws(m, cells);
  const scdefer::loss_weights weights{};
  auto loss = [&] { return m.step(serial{}, d, g, ws, weights, true, targets).total; };
  const auto first = m.step(serial{}, d, g, ws, weights, true, targets);
  CHECK(first.graph > 0);
  CHECK(first.zinb > 0);
  CHECK(first.kl > 0);
  CHECK(first.mutual > 0);
  const auto& params = m.all_parameters();
  std::vector<std::vector<double>> grads;
  for (const auto& e : params) grads.emplace_back(e.grad.data(), e.grad.data() + e.size());
  int checked = 0;
  for (std::size_t e = 0; e < params.size(); ++e) {
    double* v = params[e].value.data();
    double largest = 0;
    for (index_t i = 0; i < params[e].size(); ++i) {
      const double keep = v[i], h = 1e-6 * std::max(1.0, std::fabs(keep));
      v[i] = keep + h;
      const double up = loss();
      v[i] = keep - h;
      const double down = loss();
      v[i] = keep;
      const double fd = (up - down) / (2 * h);
      largest = std::max(largest, std::fabs(fd));
      INFO(params[e].name << "[" << i << "] analytic " << grads[e][i] << " numeric " << fd);
      CHECK(std::fabs(grads[e][i] - fd) <= 1e-6 * std::fabs(fd) + 1e-8);
      ++checked;
    }
    INFO(params[e].name);
    CHECK(largest > 1e-6);  // every parameter group takes part in the loss
  }
  CHECK(checked == params.total_size());
}

TEST_CASE("scdefer: pre-training and training lower the loss and recover the groups; reruns are bit-identical") {
  auto d = examples_test::simulated<float>(300, 150, 3, 5);
  scdefer::train_config cfg;
  cfg.clusters = 3;
  cfg.arch = {.hidden = {64, 16, 8}, .hops = 2, .fusion = 0.1};
  cfg.pretrain_epochs = 40;
  cfg.train_epochs = 15;
  cfg.pretrain_lr = 2e-3;
  cfg.train_lr = 1e-3;
  cfg.kmeans_restarts = 5;
  cfg.seed = 4;
  scdefer::model<float> m(d.genes, cfg.clusters, cfg.arch, cfg.seed);
  std::vector<double> pretrain;
  auto r = scdefer::train(openmp{2}, d, m, cfg, [&](const scdefer::progress& p) {
    if (std::string(p.phase) == "pretrain") pretrain.push_back(p.losses.total);
  });
  REQUIRE(pretrain.size() == 40);
  CHECK(pretrain.back() < 0.8 * pretrain.front());
  REQUIRE(r.ari.has_value());
  CHECK(*r.ari > 0.6);
  CHECK(*r.kmeans_ari > 0.5);
  CHECK(r.labels.size() == 300);
  CHECK(r.train_epochs == 15);

  SUBCASE("bit-identical rerun") {
    scdefer::model<float> again(d.genes, cfg.clusters, cfg.arch, cfg.seed);
    auto r2 = scdefer::train(openmp{2}, d, again, cfg);
    CHECK(r2.labels == r.labels);
    CHECK(std::equal(r2.latent.begin(), r2.latent.end(), r.latent.begin()));
  }
}

TEST_CASE("scdefer: bad input and divergence") {
  auto d = examples_test::simulated<float>(40, 30, 2, 9);
  scdefer::train_config cfg;
  cfg.clusters = 2;
  cfg.arch = {.hidden = {8, 4, 2}};
  cfg.pretrain_epochs = 2;
  cfg.train_epochs = 1;
  cfg.kmeans_restarts = 1;
  scdefer::model<float> m(d.genes, 2, cfg.arch, 1);

  SUBCASE("more clusters than cells") {
    scdefer::model<float> many(d.genes, 41, cfg.arch, 1);
    cfg.clusters = 41;
    CHECK_THROWS_WITH_AS(scdefer::train(serial{}, d, many, cfg), doctest::Contains("41 clusters for 40 cells"),
                         invalid_argument);
  }
  SUBCASE("a zero-count cell") {
    d.size_factors[5] = 0;
    CHECK_THROWS_WITH_AS(scdefer::train(serial{}, d, m, cfg), doctest::Contains("cell 5 has size factor 0"),
                         invalid_argument);
  }
  SUBCASE("negative counts") {
    d.counts[d.genes + 1] = -1;
    CHECK_THROWS_WITH_AS(scdefer::train(serial{}, d, m, cfg), doctest::Contains("cell 1, gene 1 is -1"),
                         invalid_argument);
  }
  SUBCASE("gene sets that differ") {
    scdefer::model<float> other(29, 2, cfg.arch, 1);
    CHECK_THROWS_WITH_AS(scdefer::train(serial{}, d, other, cfg), doctest::Contains("built for 29 genes"),
                         invalid_argument);
    d.features = host_buffer<float>(d.cells * (d.genes - 1));
    CHECK_THROWS_AS(scdefer::train(serial{}, d, m, cfg), dimension_mismatch);
  }
  SUBCASE("as many neighbours as cells") {
    cfg.neighbours = 40;
    CHECK_THROWS_WITH_AS(scdefer::train(serial{}, d, m, cfg), doctest::Contains("40 neighbours for 40 cells"),
                         invalid_argument);
  }
  SUBCASE("a fusion weight outside [0, 1]") {
    CHECK_THROWS_WITH_AS(scdefer::model<float>(d.genes, 2, {.hidden = {8, 4}, .hops = 1, .fusion = 1.5}, 1),
                         doctest::Contains("fusion weight"), invalid_argument);
  }
  SUBCASE("divergence stops with the phase, epoch and quantity and restores the last good epoch") {
    const auto path = (std::filesystem::temp_directory_path() / "cellkit_scdefer_checkpoint.bin").string();
    cfg.checkpoint = path;
    cfg.pretrain_lr = 1e30;  // the first Adam step sends the weights to +-1e30: the next forward pass overflows
    cfg.pretrain_epochs = 5;
    try {
      scdefer::train(serial{}, d, m, cfg);
      FAIL("no divergence reported");
    } catch (const scdefer::training_diverged& e) {
      CHECK(e.phase() == "pretrain");
      CHECK(e.epoch() >= 1);
      CHECK(e.epoch() <= 5);
      CHECK(!e.quantity().empty());
    }
    CHECK(examples::all_finite(m.all_parameters()));
    // the model and the checkpoint both hold the last good epoch
    scdefer::model<float> restored(d.genes, 2, cfg.arch, 99);
    nn::load_parameters(path, restored.all_parameters());
    for (std::size_t i = 0; i < m.all_parameters().size(); ++i) {
      const auto& a = m.all_parameters()[i];
      const auto& b = restored.all_parameters()[i];
      CHECK(std::equal(a.value.data(), a.value.data() + a.size(), b.value.data()));
    }
    std::filesystem::remove(path);
  }
}
