// link_prediction: scREGNET-style gene regulatory link prediction (GCN + graph-masked attention
// encoder, MLP pair classifier) built from cellkit's parts (model.hpp; docs/link_prediction.md).
//
//   link_prediction [--edges FILE --features FILE] [--epochs N] [--hidden H] [--attention A]
//                   [--predictor P] [--batch-size B] [--lr LR] [--negatives K] [--genes N]
//                   [--seed S] [--threads T] [--out DIR] [--without-graph]
//
// FILE for --edges: one directed edge per line, source gene, target gene, optional weight. FILE for
// --features: one gene per line, its name then its features. Without files it generates --genes
// genes in modules with regulators and planted targets (and writes them to DIR as network.tsv and
// features.tsv, so the run can be repeated from files). Positive and sampled negative pairs are
// split per source gene 70/10/20 into train / validation / test; the GCN only sees training edges.
// Progress goes to stderr; DIR receives test_scores.tsv (test pairs, labels, model and correlation
// scores) and gene_importance.tsv (attention each gene receives), each written atomically. Same
// seed and thread count: the same bits. --without-graph is the ablation: the GCN and the attention
// see self-loops only (no training edges). Exit status 1 on bad input or divergence, 2 on usage.

#include "../common/cli.hpp"
#include "model.hpp"
#include "network.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using cellkit::index_t;
using examples::pending_file;

struct options {
  std::string edges, features;
  std::string out = "link_prediction_out";
  // One thread by default: at the default size (500 genes) each parallel region is microseconds of
  // work; on a busy 2-core machine two threads were 10-50x slower than one (OpenMP barriers under
  // oversubscription, docs/link_prediction.md). Results are the same bits for any count.
  int threads = 1;
  bool without_graph = false;
  link_prediction::generator_params generate{};
  link_prediction::split_params split{};
  link_prediction::train_config train{};
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr,
               "link_prediction: %s\nusage: link_prediction [--edges FILE --features FILE] [--epochs N] [--hidden H] "
               "[--attention A] [--predictor P] [--batch-size B] [--lr LR] [--negatives K] [--genes N] [--seed S] "
               "[--threads T] [--out DIR] [--without-graph]\n",
               message.c_str());
  std::exit(2);
}

long long parse_integer(const std::string& flag, const std::string& text) {
  const auto v = examples::parse_non_negative_integer(text);
  if (!v) usage_error(flag + " expects a non-negative integer, got '" + text + "'");
  return *v;
}

double parse_real(const std::string& flag, const std::string& text) {
  const auto v = examples::parse_non_negative_real(text);
  if (!v) usage_error(flag + " expects a non-negative number, got '" + text + "'");
  return *v;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--edges")
      o.edges = value();
    else if (a == "--features")
      o.features = value();
    else if (a == "--epochs")
      o.train.epochs = static_cast<int>(parse_integer(a, value()));
    else if (a == "--hidden")
      o.train.arch.hidden = parse_integer(a, value());
    else if (a == "--attention")
      o.train.arch.attention = parse_integer(a, value());
    else if (a == "--predictor")
      o.train.arch.predictor = parse_integer(a, value());
    else if (a == "--batch-size")
      o.train.batch_size = parse_integer(a, value());
    else if (a == "--lr")
      o.train.lr = parse_real(a, value());
    else if (a == "--negatives")
      o.split.negatives_per_positive = parse_integer(a, value());
    else if (a == "--genes")
      o.generate.genes = parse_integer(a, value());
    else if (a == "--seed")
      o.train.seed = static_cast<std::uint64_t>(parse_integer(a, value()));
    else if (a == "--threads")
      o.threads = static_cast<int>(parse_integer(a, value()));
    else if (a == "--out")
      o.out = value();
    else if (a == "--without-graph")
      o.without_graph = true;
    else if (a == "-h" || a == "--help")
      usage_error("trains a GCN + attention link predictor (see examples/link_prediction/main.cpp)");
    else
      usage_error("unknown argument " + a);
  }
  if (o.edges.empty() != o.features.empty()) usage_error("--edges and --features go together");
  if (o.threads < 1) usage_error("--threads must be >= 1");
  if (o.train.batch_size < 1) usage_error("--batch-size must be >= 1");
  if (o.train.arch.hidden < 1 || o.train.arch.attention < 1 || o.train.arch.predictor < 1)
    usage_error("--hidden, --attention and --predictor must be >= 1");
  if (o.split.negatives_per_positive < 1) usage_error("--negatives must be >= 1");
  o.split.seed = o.train.seed;
  o.generate.seed = o.train.seed;
  return o;
}

void write_network(const std::filesystem::path& dir, const link_prediction::gene_network<float>& net) {
  {
    pending_file f(dir / "network.tsv");
    for (index_t e = 0; e < net.edge_count(); ++e)
      f.stream() << net.genes[net.sources[e]] << '\t' << net.genes[net.targets[e]] << '\t' << net.weights[e] << '\n';
    f.commit();
  }
  pending_file f(dir / "features.tsv");
  auto& s = f.stream();
  s.precision(9);  // float round trip
  s << "gene";
  for (index_t c = 0; c < net.feature_width; ++c) s << "\tf" << c;
  s << '\n';
  for (index_t g = 0; g < net.gene_count(); ++g) {
    s << net.genes[g];
    for (index_t c = 0; c < net.feature_width; ++c) s << '\t' << net.features[g * net.feature_width + c];
    s << '\n';
  }
  f.commit();
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse(argc, argv);
  try {
    namespace lp = link_prediction;
    cellkit::openmp policy{opt.threads};
    const auto dir = std::filesystem::path(opt.out);
    lp::gene_network<float> net;
    std::vector<bool> is_regulator;
    if (opt.edges.empty()) {
      auto gen = lp::generate_network<float>(opt.generate);
      net = std::move(gen.network);
      is_regulator = gen.is_regulator;
      std::fprintf(stderr,
                   "no --edges/--features: generated %lld genes in %lld modules, %lld regulators, %lld edges, %lld "
                   "features (seed %llu); written to %s/{network,features}.tsv\n",
                   static_cast<long long>(net.gene_count()), static_cast<long long>(opt.generate.modules),
                   static_cast<long long>(opt.generate.modules * opt.generate.regulators_per_module),
                   static_cast<long long>(net.edge_count()), static_cast<long long>(net.feature_width),
                   static_cast<unsigned long long>(opt.generate.seed), opt.out.c_str());
      std::filesystem::create_directories(dir);
      write_network(dir, net);
    } else {
      net = lp::read_features<float>(opt.features);
      const auto summary = lp::read_edges(opt.edges, opt.features, net);
      std::fprintf(stderr, "read %lld genes x %lld features from %s; %lld edges from %s",
                   static_cast<long long>(net.gene_count()), static_cast<long long>(net.feature_width),
                   opt.features.c_str(), static_cast<long long>(summary.edges), opt.edges.c_str());
      if (summary.self_loops > 0 || summary.duplicates > 0)
        std::fprintf(stderr, " (skipped %lld self-loops, %lld repeated edges)",
                     static_cast<long long>(summary.self_loops), static_cast<long long>(summary.duplicates));
      std::fprintf(stderr, "\n");
      is_regulator.assign(static_cast<std::size_t>(net.gene_count()), false);
      for (index_t s : net.sources) is_regulator[s] = true;
    }

    const auto split = lp::split_pairs(net, opt.split);
    // --without-graph (ablation): message passing and attention over self-loops only, so each gene
    // sees nothing but its own features
    const auto graph =
        lp::training_graph<float>(policy, net.gene_count(), opt.without_graph ? lp::pair_set<float>{} : split.train);
    std::fprintf(stderr,
                 "pairs (positive/negative): train %lld/%lld, validation %lld/%lld, test %lld/%lld; training graph "
                 "%lld stored entries with self-loops\n",
                 static_cast<long long>(split.train.positives()),
                 static_cast<long long>(split.train.size() - split.train.positives()),
                 static_cast<long long>(split.validation.positives()),
                 static_cast<long long>(split.validation.size() - split.validation.positives()),
                 static_cast<long long>(split.test.positives()),
                 static_cast<long long>(split.test.size() - split.test.positives()),
                 static_cast<long long>(graph.matrix().nnz()));

    lp::model<float> model(net.gene_count(), net.feature_width, opt.train.arch, opt.train.seed);
    auto report = [&](const lp::progress& p) {
      if (p.epoch % 10 != 0 && p.epoch != 1 && p.epoch != opt.train.epochs) return;
      std::fprintf(stderr, "[%7.2f s] epoch %4d  loss %.5f  validation AUROC %.4f\n", p.seconds, p.epoch, p.loss,
                   p.validation_auroc);
    };
    const auto r = lp::train(policy, net, split, graph, model, opt.train, report);

    typename lp::model<float>::workspace ws(model, graph, std::min<index_t>(1024, split.test.size()));
    const auto x = net.feature_matrix();
    const auto logits = model.score(policy, graph, x, split.test, ws);
    const auto correlation = lp::correlation_scores(net, split.test);
    const auto ours = lp::rank(policy, split.test.labels, logits);
    const auto baseline = lp::rank(policy, split.test.labels, correlation);
    const auto importance = model.importance(policy, graph, x, ws);

    std::filesystem::create_directories(dir);  // only now: bad input leaves no empty folder behind
    {
      pending_file f(dir / "test_scores.tsv");
      auto& s = f.stream();
      s.precision(9);  // float round trip: the ranking of the file is the ranking scored
      s << "source\ttarget\tlabel\tlogit\tprobability\tcorrelation\n";
      for (index_t i = 0; i < split.test.size(); ++i) {
        const double probability = 1 / (1 + std::exp(-static_cast<double>(logits[i])));
        s << net.genes[split.test.sources[i]] << '\t' << net.genes[split.test.targets[i]] << '\t'
          << split.test.labels[i] << '\t' << logits[i] << '\t' << probability << '\t' << correlation[i] << '\n';
      }
      f.commit();
    }
    std::vector<index_t> degree(static_cast<std::size_t>(net.gene_count()));
    {
      const auto a = graph.matrix();
      for (index_t g = 0; g < net.gene_count(); ++g)
        for (index_t p = a.row_begin(g); p < a.row_end(g); ++p) degree[g] += a.indices()[p] != g;
    }
    double importance_sum[2] = {0, 0};
    index_t count[2] = {0, 0};
    {
      pending_file f(dir / "gene_importance.tsv");
      auto& s = f.stream();
      s << "gene\timportance\ttraining_degree\tregulator\n";
      for (index_t g = 0; g < net.gene_count(); ++g) {
        s << net.genes[g] << '\t' << importance[g] << '\t' << degree[g] << '\t' << (is_regulator[g] ? 1 : 0) << '\n';
        importance_sum[is_regulator[g] ? 1 : 0] += importance[g];
        ++count[is_regulator[g] ? 1 : 0];
      }
      f.commit();
    }
    std::printf("genes %lld  edges %lld  epochs %d (best validation AUROC %.4f at epoch %d)  %.1f s, %.4f s/epoch\n",
                static_cast<long long>(net.gene_count()), static_cast<long long>(net.edge_count()), r.epochs,
                r.best_validation_auroc, r.best_epoch, r.seconds, r.seconds / std::max(r.epochs, 1));
    std::printf("test  model (GCN + attention + MLP)     AUROC %.4f  AUPRC %.4f\n", ours.auroc, ours.auprc);
    std::printf("test  baseline |Pearson correlation|    AUROC %.4f  AUPRC %.4f\n", baseline.auroc, baseline.auprc);
    if (count[0] > 0 && count[1] > 0)
      std::printf("mean attention importance: regulators %.4f, other genes %.4f\n", importance_sum[1] / count[1],
                  importance_sum[0] / count[0]);
    std::printf("wrote %s/{test_scores,gene_importance}.tsv\n", opt.out.c_str());
  } catch (const link_prediction::training_diverged& e) {
    std::fprintf(stderr, "link_prediction: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "link_prediction: %s\n", e.what());
    return 1;
  }
  return 0;
}
