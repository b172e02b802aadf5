// The DEC-ZINB example model (examples/dec_zinb/model.hpp): a full step's gradients against
// central differences, a short training run that must learn, and its input checks.

#include "../../examples/dec_zinb/model.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <vector>

#include "examples/simulated_counts.hpp"
#include "support/test_support.hpp"

using namespace cellkit;

TEST_CASE("dec_zinb: one full step's gradients (ZINB + gamma KL, every parameter) match central differences") {
  const index_t cells = 9, genes = 6, k = 3;
  dec_zinb::training_data<double> d;
  d.cells = cells;
  d.genes = genes;
  d.counts = host_buffer<double>(cells * genes);
  d.features = host_buffer<double>(cells * genes);
  for (index_t i = 0; i < cells * genes; ++i) {
    d.counts[i] = static_cast<double>((i * 7 + 3) % 5 == 0 ? 0 : (i * 13) % 9);
    d.features[i] = std::sin(0.7 * static_cast<double>(i)) * 1.3;
  }
  for (index_t i = 0; i < cells; ++i) d.size_factors.push_back(0.6 + 0.1 * static_cast<double>(i));
  dec_zinb::model<double> m(genes, k, {.hidden = {5, 4}, .latent = 3}, 11);
  auto c = m.centres();
  for (index_t i = 0; i < c.rows() * c.cols(); ++i) c.data()[i] = std::cos(1.1 * static_cast<double>(i));
  // a fixed target P (rows sum to 1)
  std::vector<double> p(cells * k);
  for (index_t i = 0; i < cells; ++i) {
    double s = 0;
    for (index_t j = 0; j < k; ++j) s += p[i * k + j] = 1.0 + static_cast<double>((i + 2 * j) % 4);
    for (index_t j = 0; j < k; ++j) p[i * k + j] /= s;
  }
  std::vector<index_t> batch{4, 0, 7, 2, 8};
  dec_zinb::model<double>::workspace ws(m, 5);
  const nn::noise_key noise{.seed = 3, .stream = 2, .step = 1};
  const double gamma = 0.7;
  auto loss = [&] {
    auto l = m.step(serial{}, d, batch, ws, noise, 0.5, matrix_view<const double>(p.data(), cells, k), gamma);
    return l.zinb + gamma * l.kl;
  };
  loss();  // fills the gradients
  const auto& params = m.all_parameters();
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

TEST_CASE("dec_zinb: a short training run lowers the loss and recovers the groups") {
  auto d = examples_test::simulated<float>(600, 200, 3, 5);
  dec_zinb::train_config cfg;
  cfg.clusters = 3;
  cfg.arch = {.hidden = {64, 16}, .latent = 8};
  cfg.batch_size = 64;
  cfg.pretrain_epochs = 20;
  cfg.finetune_max_epochs = 8;
  cfg.kmeans_restarts = 4;
  cfg.noise_sd = 1.0;  // 2.5 (scDeepCluster's) swamps 200 genes of 600 cells
  cfg.seed = 2;
  dec_zinb::model<float> m(d.genes, cfg.clusters, cfg.arch, cfg.seed);
  std::vector<double> pretrain_losses;
  auto r = dec_zinb::train(openmp{2}, d, m, cfg, [&](const dec_zinb::progress& p) {
    if (std::string(p.phase) == "pretrain") pretrain_losses.push_back(p.zinb);
  });
  REQUIRE(pretrain_losses.size() == 20);
  CHECK(pretrain_losses.back() < 0.9 * pretrain_losses.front());
  REQUIRE(r.ari.has_value());
  MESSAGE("ARI " << *r.ari << ", k-means on the pre-trained latent " << *r.kmeans_ari);
  CHECK(*r.ari > 0.6);  // chance is 0
  CHECK(r.labels.size() == 600);

  SUBCASE("bit for bit reproducible with the same seed and threads") {
    dec_zinb::model<float> again(d.genes, cfg.clusters, cfg.arch, cfg.seed);
    auto r2 = dec_zinb::train(openmp{2}, d, again, cfg);
    CHECK(r2.labels == r.labels);
    CHECK(std::equal(r2.latent.data(), r2.latent.data() + r2.latent.size(), r.latent.data()));
  }
}

TEST_CASE("dec_zinb: bad input is refused before training, divergence restores the last good epoch") {
  auto d = examples_test::simulated<float>(40, 30, 2, 9);
  dec_zinb::train_config cfg;
  cfg.clusters = 2;
  cfg.arch = {.hidden = {8}, .latent = 3};
  cfg.batch_size = 16;
  cfg.pretrain_epochs = 2;
  cfg.finetune_max_epochs = 0;
  cfg.kmeans_restarts = 1;
  dec_zinb::model<float> m(d.genes, 2, cfg.arch, 1);

  SUBCASE("more clusters than cells") {
    cfg.clusters = 41;
    CHECK_THROWS_WITH_AS(dec_zinb::train(serial{}, d, m, cfg), doctest::Contains("41 clusters for 40 cells"),
                         invalid_argument);
  }
  SUBCASE("a cell without counts") {
    d.size_factors[5] = 0;
    CHECK_THROWS_WITH_AS(dec_zinb::train(serial{}, d, m, cfg), doctest::Contains("cell 5 has size factor 0"),
                         invalid_argument);
  }
  SUBCASE("negative counts") {
    d.counts[31] = -1;
    CHECK_THROWS_WITH_AS(dec_zinb::train(serial{}, d, m, cfg), doctest::Contains("cell 1, gene 1 is -1"),
                         invalid_argument);
  }
  SUBCASE("features and counts for different gene sets") {
    d.features = host_buffer<float>(40 * 29);
    CHECK_THROWS_AS(dec_zinb::train(serial{}, d, m, cfg), dimension_mismatch);
    dec_zinb::model<float> other(29, 2, cfg.arch, 1);
    auto good = examples_test::simulated<float>(40, 30, 2, 9);
    CHECK_THROWS_WITH_AS(dec_zinb::train(serial{}, good, other, cfg), doctest::Contains("built for 29 genes"),
                         invalid_argument);
  }
  SUBCASE("a divergent learning rate stops with the epoch and the quantity; parameters and checkpoint intact") {
    const std::string path = (std::filesystem::temp_directory_path() / "cellkit_test_dec_zinb.ckpt").string();
    cfg.checkpoint = path;
    dec_zinb::train(serial{}, d, m, cfg);
    std::vector<std::vector<float>> before;
    for (const auto& e : m.all_parameters()) before.emplace_back(e.value.data(), e.value.data() + e.size());
    cfg.pretrain_lr = 1e30;
    try {
      dec_zinb::train(serial{}, d, m, cfg);
      FAIL("training with lr 1e30 should diverge");
    } catch (const dec_zinb::training_diverged& e) {
      CHECK(e.phase() == "pretrain");
      CHECK(e.epoch() == 1);
      MESSAGE(std::string(e.what()));
    }
    for (std::size_t i = 0; i < before.size(); ++i) {
      const auto& e = m.all_parameters()[i];
      CHECK(std::equal(before[i].begin(), before[i].end(), e.value.data()));
    }
    dec_zinb::model<float> restored(d.genes, 2, cfg.arch, 99);
    nn::load_parameters(path, restored.all_parameters());
    for (std::size_t i = 0; i < before.size(); ++i) {
      const auto& e = restored.all_parameters()[i];
      CHECK(std::equal(before[i].begin(), before[i].end(), e.value.data()));
    }
    std::filesystem::remove(path);
  }
}
