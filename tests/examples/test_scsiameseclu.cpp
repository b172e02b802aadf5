// The scSiameseClu-style example model (examples/scsiameseclu/model.hpp): a full step's gradients
// against central differences, a short training run that must learn, and its input checks.

#include "../../examples/scsiameseclu/data.hpp"
#include "../../examples/scsiameseclu/model.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <vector>

#include "examples/simulated_counts.hpp"
#include "support/test_support.hpp"

using namespace cellkit;
namespace ssc = scsiameseclu;

namespace {

/// A ring of n nodes with chords i -- i + 3: symmetric, unit weights, no self-loops.
template <class T>
graph::csr_graph<T> ring_graph(index_t n) {
  std::vector<std::int32_t> rows, cols;
  std::vector<T> vals;
  auto edge = [&](index_t i, index_t j) {
    rows.push_back(static_cast<std::int32_t>(i));
    cols.push_back(static_cast<std::int32_t>(j));
    vals.push_back(T(1));
    rows.push_back(static_cast<std::int32_t>(j));
    cols.push_back(static_cast<std::int32_t>(i));
    vals.push_back(T(1));
  };
  for (index_t i = 0; i < n; ++i) edge(i, (i + 1) % n);
  for (index_t i = 0; i + 3 < n; i += 2) edge(i, i + 3);
  return graph::csr_graph<T>::from_edges(n, rows, cols, vals);
}

template <class T>
ssc::propagator<T> normalised(const graph::csr_graph<T>& g) {
  return ssc::propagator<T>(graph::normalize(serial{}, g, {graph::normalization::symmetric, T(1)}));
}

}  // namespace

TEST_CASE("scsiameseclu: one full step's gradients (every loss term, every parameter) match central differences") {
  const index_t cells = 9, genes = 6, k = 3;
  ssc::training_data<double> d;
  d.cells = cells;
  d.genes = genes;
  d.counts = host_buffer<double>(cells * genes);
  d.features = host_buffer<double>(cells * genes);
  host_buffer<double> noisy(cells * genes);
  for (index_t i = 0; i < cells * genes; ++i) {
    d.counts[i] = static_cast<double>((i * 7 + 3) % 5 == 0 ? 0 : (i * 13) % 9);
    d.features[i] = std::sin(0.7 * static_cast<double>(i)) * 1.3;
    noisy[i] = d.features[i] + 0.2 * std::cos(1.9 * static_cast<double>(i));
  }
  for (index_t i = 0; i < cells; ++i) d.size_factors.push_back(0.6 + 0.1 * static_cast<double>(i));
  auto knn = ring_graph<double>(cells);
  auto a_hat = normalised(knn);
  // view 1's graph: a perturbed copy (a fixed draw, so the loss is a function of the parameters)
  auto perturbed = normalised(
      graph::perturb_edges(serial{}, knn.view(), {.p_remove = 0.3, .p_add = 0.3, .seed = 5, .symmetric = true}));
  ssc::model<double> m(genes, k, {.encoder = {5}, .latent = 3, .decoder = {4}}, 11);
  auto c = m.centres();
  for (index_t i = 0; i < c.rows() * c.cols(); ++i) c.data()[i] = std::cos(1.1 * static_cast<double>(i));
  std::vector<double> p(cells * k);  // a fixed target P (rows sum to 1)
  for (index_t i = 0; i < cells; ++i) {
    double s = 0;
    for (index_t j = 0; j < k; ++j) s += p[i * k + j] = 1.0 + static_cast<double>((i + 2 * j) % 4);
    for (index_t j = 0; j < k; ++j) p[i * k + j] /= s;
  }
  ssc::step_inputs<double> in;
  in.data = &d;
  in.views[0] = {noisy.as_matrix(cells, genes), &perturbed, ssc::view_operator::adjacency, {}};
  in.views[1] = {
      d.features.as_matrix(cells, genes), &a_hat, ssc::view_operator::ppr_diffusion, {.hops = 3, .alpha = 0.2}};
  in.smoothing = &a_hat;
  ssc::loss_weights w{.zinb = 1.0, .correlation = 0.3, .propagation = 2.0, .clustering = 0.7, .js_temperature = 0.5};
  ssc::model<double>::workspace ws(m, cells);
  auto loss = [&] {
    auto l = m.step(serial{}, in, ws, w, matrix_view<const double>(p.data(), cells, k));
    return l.total(w);
  };
  const auto l0 = m.step(serial{}, in, ws, w, matrix_view<const double>(p.data(), cells, k));
  CHECK(l0.zinb > 0);
  CHECK(l0.correlation > 0);
  CHECK(l0.propagation > 0);
  CHECK(l0.kl > 0);
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

TEST_CASE("scsiameseclu: a short training run lowers the loss and recovers the groups") {
  auto d = examples_test::simulated<float>(300, 200, 3, 5);
  auto knn = ssc::cell_graph(serial{}, d, {.neighbours = 10, .components = 20});
  ssc::train_config cfg;
  cfg.clusters = 3;
  cfg.arch = {.encoder = {32}, .latent = 8, .decoder = {32}};
  cfg.pretrain_epochs = 20;
  cfg.train_max_epochs = 6;
  cfg.pretrain_lr = 3e-3;
  cfg.kmeans_restarts = 4;
  cfg.seed = 2;
  ssc::model<float> m(d.genes, cfg.clusters, cfg.arch, cfg.seed);
  std::vector<double> pretrain_losses;
  auto r = ssc::train(serial{}, d, knn, m, cfg, [&](const ssc::progress& p) {
    if (std::string(p.phase) == "pretrain") pretrain_losses.push_back(p.total);
  });
  REQUIRE(pretrain_losses.size() == 20);
  CHECK(pretrain_losses.back() < 0.9 * pretrain_losses.front());
  REQUIRE(r.ari.has_value());
  MESSAGE("ARI " << *r.ari << ", k-means on the pre-trained latent " << *r.kmeans_ari);
  CHECK(*r.ari > 0.6);  // chance is 0
  CHECK(r.labels.size() == 300);

  // bit for bit the same with the same seed, whatever the thread count
  ssc::model<float> again(d.genes, cfg.clusters, cfg.arch, cfg.seed);
  auto r2 = ssc::train(openmp{2}, d, ssc::cell_graph(openmp{2}, d, {.neighbours = 10, .components = 20}), again, cfg);
  CHECK(r2.labels == r.labels);
  CHECK(std::equal(r2.latent.data(), r2.latent.data() + r2.latent.size(), r.latent.data()));
}

TEST_CASE("scsiameseclu: bad input is refused with the input named, divergence restores the last good epoch") {
  auto d = examples_test::simulated<float>(40, 30, 2, 9);
  auto knn = ring_graph<float>(40);
  ssc::train_config cfg;
  cfg.clusters = 2;
  cfg.arch = {.encoder = {8}, .latent = 3, .decoder = {8}};
  cfg.pretrain_epochs = 2;
  cfg.train_max_epochs = 0;
  cfg.kmeans_restarts = 1;
  ssc::model<float> m(d.genes, 2, cfg.arch, 1);

  SUBCASE("views of different shapes") {
    auto a_hat = normalised(knn);
    ssc::step_inputs<float> in;
    in.data = &d;
    in.views[0] = {d.features.as_matrix(40, 30), &a_hat, ssc::view_operator::adjacency, {}};
    in.views[1] = {matrix_view<const float>(d.features.data(), 39, 30), &a_hat, ssc::view_operator::ppr_diffusion, {}};
    in.smoothing = &a_hat;
    ssc::model<float>::workspace ws(m, 40);
    CHECK_THROWS_WITH_AS(m.step(serial{}, in, ws, {}), doctest::Contains("view 2 features"), dimension_mismatch);
    auto small = normalised(ring_graph<float>(39));
    in.views[1] = {d.features.as_matrix(40, 30), &small, ssc::view_operator::ppr_diffusion, {}};
    CHECK_THROWS_WITH_AS(m.step(serial{}, in, ws, {}), doctest::Contains("view 2 graph"), dimension_mismatch);
  }
  SUBCASE("an empty graph, a graph of other cells") {
    CHECK_THROWS_WITH_AS(ssc::train(serial{}, d, graph::csr_graph<float>(40), m, cfg),
                         doctest::Contains("has no edges"), invalid_argument);
    CHECK_THROWS_WITH_AS(ssc::train(serial{}, d, ring_graph<float>(41), m, cfg), doctest::Contains("graph"),
                         dimension_mismatch);
  }
  SUBCASE("an epsilon or temperature that overflows the loss") {
    cfg.weights.js_temperature = 1e-39;
    CHECK_THROWS_WITH_AS(ssc::train(serial{}, d, knn, m, cfg), doctest::Contains("'js_temperature'"),
                         ssc::setting_overflow);
    cfg.weights.js_temperature = 1;
    cfg.sinkhorn_epsilon = 1e-45;
    CHECK_THROWS_WITH_AS(ssc::train(serial{}, d, knn, m, cfg), doctest::Contains("'sinkhorn_epsilon'"),
                         ssc::setting_overflow);
    cfg.sinkhorn_epsilon = 0;
    CHECK_THROWS_WITH_AS(ssc::train(serial{}, d, knn, m, cfg), doctest::Contains("sinkhorn_epsilon"), invalid_argument);
    // representable, but Z / tau overflows once the embedding is large: caught in the step
    auto big = examples_test::simulated<float>(40, 30, 2, 9);
    for (index_t e = 0; e < 40 * 30; ++e) big.features[e] *= 1e12f;
    auto a_hat = normalised(knn);
    ssc::step_inputs<float> in;
    in.data = &big;
    in.views[0] = {big.features.as_matrix(40, 30), &a_hat, ssc::view_operator::adjacency, {}};
    in.views[1] = {big.features.as_matrix(40, 30), &a_hat, ssc::view_operator::ppr_diffusion, {}};
    in.smoothing = &a_hat;
    ssc::model<float>::workspace ws(m, 40);
    CHECK_THROWS_WITH_AS(m.step(serial{}, in, ws, {.js_temperature = 1e-37}), doctest::Contains("'js_temperature'"),
                         ssc::setting_overflow);
  }
  SUBCASE("more clusters than cells, a cell without counts") {
    cfg.clusters = 41;
    CHECK_THROWS_WITH_AS(ssc::train(serial{}, d, knn, m, cfg), doctest::Contains("41 clusters for 40 cells"),
                         invalid_argument);
    cfg.clusters = 2;
    d.size_factors[5] = 0;
    CHECK_THROWS_WITH_AS(ssc::train(serial{}, d, knn, m, cfg), doctest::Contains("cell 5 has size factor 0"),
                         invalid_argument);
  }
  SUBCASE("a divergent learning rate stops with the epoch and the quantity; parameters and checkpoint intact") {
    // One full-batch step per epoch: with lr 1e30 the first epoch's parameters are huge but finite
    // (the last good epoch), the second epoch's layer outputs overflow.
    const std::string path = (std::filesystem::temp_directory_path() / "cellkit_test_scsiameseclu.ckpt").string();
    cfg.checkpoint = path;
    cfg.pretrain_lr = 1e30;
    try {
      ssc::train(serial{}, d, knn, m, cfg);
      FAIL("training with lr 1e30 should diverge");
    } catch (const ssc::training_diverged& e) {
      CHECK(e.phase() == "pretrain");
      CHECK(e.epoch() == 2);
      MESSAGE(std::string(e.what()));
    }
    CHECK(examples::all_finite(m.all_parameters()));
    ssc::model<float> restored(d.genes, 2, cfg.arch, 99);
    nn::load_parameters(path, restored.all_parameters());
    for (std::size_t i = 0; i < m.all_parameters().size(); ++i) {
      const auto& got = m.all_parameters()[i];
      const auto& saved = restored.all_parameters()[i];
      CHECK(std::equal(got.value.data(), got.value.data() + got.size(), saved.value.data()));
    }
    std::filesystem::remove(path);
  }
}
