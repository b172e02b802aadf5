// The link prediction example (examples/link_prediction/): a full step's gradients (GCN layers,
// attention projections, pair MLP) against central differences, a short training run that must
// learn and beat the correlation baseline, the per-source split, and the input checks.

#include "../../examples/link_prediction/model.hpp"
#include "../../examples/link_prediction/network.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace cellkit;
namespace lp = link_prediction;

namespace {

/// A small generated network: `genes` genes in `modules` modules, two regulators each.
template <class T>
lp::generated_network<T> small_network(index_t genes, index_t modules, index_t features, std::uint64_t seed) {
  return lp::generate_network<T>({.genes = genes,
                                  .modules = modules,
                                  .regulators_per_module = 2,
                                  .min_targets = 4,
                                  .max_targets = 10,
                                  .features = features,
                                  .seed = seed});
}

/// A file under the temporary directory, removed at scope exit.
struct temp_file {
  std::filesystem::path path;
  temp_file(const std::string& name, const std::string& text)
      : path(std::filesystem::temp_directory_path() / ("cellkit_test_link_prediction_" + name)) {
    std::ofstream(path) << text;
  }
  ~temp_file() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
  std::string str() const { return path.string(); }
};

}  // namespace

TEST_CASE(
    "link_prediction: one full step's gradients (GCN, attention, predictor; every parameter) match central "
    "differences") {
  auto gen = small_network<double>(24, 3, 5, 4);
  const auto& net = gen.network;
  const auto split = lp::split_pairs(net, {.seed = 4});
  const auto graph = lp::training_graph<double>(serial{}, net.gene_count(), split.train);
  lp::model<double> m(net.gene_count(), net.feature_width, {.hidden = 4, .attention = 3, .predictor = 5}, 7);
  // non-zero biases, so that every bias shifts the pre-activations it feeds
  for (const auto& p : m.parameters()) {
    if (p.name.ends_with(".bias"))
      for (index_t i = 0; i < p.size(); ++i) p.value.data()[i] = 0.1 * std::sin(1.7 * static_cast<double>(i) + 0.3);
  }
  std::vector<index_t> batch;
  for (index_t i = 0; i < std::min<index_t>(12, split.train.size()); ++i) batch.push_back((i * 5) % split.train.size());
  lp::model<double>::workspace ws(m, graph, 12);
  const auto x = net.feature_matrix();
  auto loss = [&] { return m.step(serial{}, graph, x, split.train, batch, ws); };
  loss();  // fills the gradients
  const auto& params = m.parameters();
  std::vector<std::vector<double>> grads;
  for (const auto& e : params) grads.emplace_back(e.grad.data(), e.grad.data() + e.size());
  int checked = 0, nonzero = 0;
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
      nonzero += grads[e][i] != 0;
    }
  }
  CHECK(checked == params.total_size());
  CHECK(nonzero > checked / 2);  // the check is not passing on zeros
  for (const char* name : {"gcn.0.weight", "gcn.1.weight", "attention.query.weight", "attention.key.weight",
                           "attention.value.weight", "predictor.0.weight", "predictor.1.weight"}) {
    bool found = false;
    for (const auto& p : params) found = found || p.name == name;
    CHECK_MESSAGE(found, name);
  }
}

TEST_CASE(
    "link_prediction: the per-source split keeps every pair once, per source, and the graph only sees "
    "training edges") {
  auto gen = small_network<float>(60, 3, 4, 1);
  const auto& net = gen.network;
  const auto split = lp::split_pairs(net, {.seed = 3});
  std::set<std::pair<index_t, index_t>> edges, seen;
  for (index_t e = 0; e < net.edge_count(); ++e) edges.emplace(net.sources[e], net.targets[e]);
  index_t positives = 0;
  for (const auto* set : {&split.train, &split.validation, &split.test}) {
    for (index_t i = 0; i < set->size(); ++i) {
      const std::pair<index_t, index_t> pair{set->sources[i], set->targets[i]};
      CHECK(seen.insert(pair).second);  // no pair in two splits
      CHECK(set->labels[i] == (edges.contains(pair) ? 1 : 0));
      CHECK(pair.first != pair.second);
      positives += set->labels[i];
    }
  }
  CHECK(positives == net.edge_count());
  // each source with 10 targets: 7 / 1 / 2 positives and as many negatives of each kind
  for (index_t s = 0; s < net.gene_count(); ++s) {
    index_t count = 0, test = 0;
    for (index_t e = 0; e < net.edge_count(); ++e) count += net.sources[e] == s;
    for (index_t i = 0; i < split.test.size(); ++i) test += split.test.sources[i] == s && split.test.labels[i] == 1;
    CHECK(test == static_cast<index_t>(std::llround(0.2 * static_cast<double>(count))));
  }
  const auto graph = lp::training_graph<float>(serial{}, net.gene_count(), split.train);
  const auto a = graph.matrix();
  for (index_t i = 0; i < split.test.size(); ++i) {
    if (split.test.labels[i] != 1) continue;
    const index_t s = split.test.sources[i], t = split.test.targets[i];
    bool in_graph = false;
    for (index_t p = a.row_begin(t); p < a.row_end(t); ++p) in_graph = in_graph || a.indices()[p] == s;
    // a test edge may only be in the graph when the reverse direction is a training edge
    bool reverse_trains = false;
    for (index_t k = 0; k < split.train.size(); ++k)
      reverse_trains =
          reverse_trains || (split.train.labels[k] == 1 && split.train.sources[k] == t && split.train.targets[k] == s);
    CHECK((!in_graph || reverse_trains));
  }
}

TEST_CASE("link_prediction: a short training run lowers the loss and beats chance and the correlation baseline") {
  auto gen = lp::generate_network<float>({.genes = 200, .modules = 5, .regulators_per_module = 4, .seed = 2});
  const auto& net = gen.network;
  const auto split = lp::split_pairs(net, {.seed = 2});
  const auto graph = lp::training_graph<float>(openmp{2}, net.gene_count(), split.train);
  lp::train_config cfg{
      .arch = {.hidden = 16, .attention = 8, .predictor = 32}, .epochs = 40, .batch_size = 128, .lr = 3e-3, .seed = 2};
  lp::model<float> m(net.gene_count(), net.feature_width, cfg.arch, cfg.seed);
  auto r = lp::train(openmp{2}, net, split, graph, m, cfg);
  REQUIRE(r.losses.size() == 40);
  CHECK(r.losses.back() < 0.5 * r.losses.front());
  lp::model<float>::workspace ws(m, graph, 512);
  const auto logits = m.score(openmp{2}, graph, net.feature_matrix(), split.test, ws);
  const auto ours = lp::rank(openmp{2}, split.test.labels, logits);
  const auto baseline = lp::rank(openmp{2}, split.test.labels, lp::correlation_scores(net, split.test));
  MESSAGE("test AUROC " << ours.auroc << " AUPRC " << ours.auprc << "; correlation baseline AUROC " << baseline.auroc
                        << " AUPRC " << baseline.auprc << "; best validation epoch " << r.best_epoch);
  CHECK(ours.auroc > 0.75);  // chance is 0.5
  CHECK(ours.auroc > baseline.auroc);
  CHECK(ours.auprc > baseline.auprc);
  const auto importance = m.importance(openmp{2}, graph, net.feature_matrix(), ws);
  double total = 0;
  for (float v : importance) total += v;
  CHECK(total == doctest::Approx(static_cast<double>(net.gene_count())).epsilon(1e-4));  // each row sums to 1

  SUBCASE("bit for bit reproducible with the same seed, for 1 and 2 threads") {
    for (int threads : {2, 1}) {
      lp::model<float> again(net.gene_count(), net.feature_width, cfg.arch, cfg.seed);
      auto r2 = lp::train(openmp{threads}, net, split, graph, again, cfg);
      CHECK(r2.losses == r.losses);
      lp::model<float>::workspace ws2(again, graph, 512);
      CHECK(again.score(openmp{threads}, graph, net.feature_matrix(), split.test, ws2) == logits);
    }
  }
}

TEST_CASE("link_prediction: bad input gives errors naming the file, line and gene; divergence names the epoch") {
  temp_file features("features.tsv", "gene\tf0\tf1\nA\t1\t0.5\nB\t-1\t2\nC\t0\t1\nD\t3\t1\n");
  SUBCASE("a readable pair of files") {
    temp_file edges("edges.tsv", "# regulator target weight\nA\tB\t2\nA\tC\nB\tB\nA\tB\nD\tC\t0.5\n");
    auto net = lp::read_features<double>(features.str());
    CHECK(net.gene_count() == 4);
    CHECK(net.feature_width == 2);
    CHECK(net.features[2] == -1);
    const auto summary = lp::read_edges(edges.str(), features.str(), net);
    CHECK(summary.edges == 3);
    CHECK(summary.self_loops == 1);
    CHECK(summary.duplicates == 1);
    CHECK(net.weights == std::vector<double>{2, 1, 0.5});
  }
  SUBCASE("an unknown gene in the edge list") {
    temp_file edges("edges.tsv", "A\tB\nA\tZNF999\n");
    auto net = lp::read_features<double>(features.str());
    const std::string expected =
        edges.str() + ":2: unknown gene 'ZNF999' (not in the feature file " + features.str() + ")";
    CHECK_THROWS_WITH_AS(lp::read_edges(edges.str(), features.str(), net), doctest::Contains(expected.c_str()),
                         io::file_error);
  }
  SUBCASE("an empty graph") {
    temp_file edges("edges.tsv", "# nothing here\n\nA\tA\n");
    auto net = lp::read_features<double>(features.str());
    CHECK_THROWS_WITH_AS(lp::read_edges(edges.str(), features.str(), net), doctest::Contains("no edges"),
                         io::file_error);
    CHECK_THROWS_WITH_AS(lp::check_network(net), doctest::Contains("the network has no edges"), invalid_argument);
  }
  SUBCASE("mismatched feature widths") {
    temp_file bad("bad_features.tsv", "A\t1\t2\nB\t3\nC\t4\t5\n");
    const std::string expected = bad.str() + ":2: gene 'B' has 1 features but line 1 has 2";
    CHECK_THROWS_WITH_AS(lp::read_features<double>(bad.str()), doctest::Contains(expected.c_str()), io::file_error);
  }
  SUBCASE("a feature that is not a number, a gene listed twice, a bad weight, a missing file") {
    temp_file text("text_features.tsv", "A\t1\t2\nB\t3\tx\n");
    CHECK_THROWS_WITH_AS(lp::read_features<double>(text.str()), doctest::Contains(":2: feature 2 of gene 'B' is 'x'"),
                         io::file_error);
    temp_file twice("twice_features.tsv", "A\t1\nB\t2\nA\t3\n");
    CHECK_THROWS_WITH_AS(lp::read_features<double>(twice.str()),
                         doctest::Contains(":3: gene 'A' is listed again (first on line 1)"), io::file_error);
    temp_file edges("edges.tsv", "A\tB\t-1\n");
    auto net = lp::read_features<double>(features.str());
    CHECK_THROWS_WITH_AS(lp::read_edges(edges.str(), features.str(), net),
                         doctest::Contains(":1: weight '-1' is not a finite positive number"), io::file_error);
    CHECK_THROWS_WITH_AS(lp::read_features<double>("/nonexistent/features.tsv"), doctest::Contains("cannot open"),
                         io::file_error);
  }
  SUBCASE("a model built for another feature width") {
    auto gen = small_network<float>(60, 3, 4, 1);
    const auto split = lp::split_pairs(gen.network, {.seed = 1});
    const auto graph = lp::training_graph<float>(serial{}, gen.network.gene_count(), split.train);
    lp::model<float> other(60, 5, {}, 1);
    CHECK_THROWS_WITH_AS(lp::train(serial{}, gen.network, split, graph, other, {.epochs = 1}),
                         doctest::Contains("built for 60 genes x 5 features but the network has 60 x 4"),
                         invalid_argument);
  }
  SUBCASE("a network too small to split") {
    auto net = lp::read_features<double>(features.str());
    temp_file edges("edges.tsv", "A\tB\n");
    lp::read_edges(edges.str(), features.str(), net);
    CHECK_THROWS_WITH_AS(lp::split_pairs(net, {}), doctest::Contains("split has 0 positive"), invalid_argument);
  }
  SUBCASE("a divergent learning rate stops with the epoch and the quantity; parameters of the last good epoch") {
    auto gen = small_network<float>(60, 3, 4, 1);
    const auto split = lp::split_pairs(gen.network, {.seed = 1});
    const auto graph = lp::training_graph<float>(serial{}, gen.network.gene_count(), split.train);
    lp::model<float> m(60, 4, {.hidden = 8, .attention = 4, .predictor = 8}, 1);
    std::vector<std::vector<float>> before;
    for (const auto& e : m.parameters()) before.emplace_back(e.value.data(), e.value.data() + e.size());
    try {
      lp::train(serial{}, gen.network, split, graph, m, {.epochs = 3, .batch_size = 16, .lr = 1e30});
      FAIL("training with lr 1e30 should diverge");
    } catch (const lp::training_diverged& e) {
      CHECK(e.epoch() == 1);
      MESSAGE(std::string(e.what()));
    }
    for (std::size_t i = 0; i < before.size(); ++i) {
      const auto& e = m.parameters()[i];
      CHECK(std::equal(before[i].begin(), before[i].end(), e.value.data()));
    }
  }
}
