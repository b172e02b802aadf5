// scdefer: a scDEFER-style deep embedded fusion model (dense + TAGCN encoders fused layer by layer,
// ZINB and graph decoders, DEC KL with mutual BCE supervision), built from cellkit's parts
// (model.hpp; docs/scdefer.md).
//
//   scdefer [DATA] [--k K] [--neighbours N] [--graph-pcs N] [--pretrain-epochs N] [--epochs N] [--pretrain-lr R]
//           [--lr R] [--warmup-epochs N] [--hvg N] [--seed S] [--threads T] [--cells N] [--checkpoint FILE] [--out DIR]
//
// DATA is a dataset folder (counts.mtx.gz, optional labels.tsv and manifest.json), a 10x directory
// or a .mtx[.gz] file of raw counts, cells x genes. Without DATA it simulates --cells cells x 2000
// genes in 6 cell types. K defaults to the number of labelled cell types (else 8). Progress goes to
// stderr; DIR receives latent.tsv (cells x 24), soft_assignment.tsv (cells x K) and labels.tsv (cell,
// predicted label, k-means initial label, true label when known), each written atomically. Exit
// status 1 on bad input or divergence (the checkpoint then holds the last good epoch), 2 on usage.

#include "../common/cli.hpp"
#include "../common/counts.hpp"
#include "../common/run.hpp"
#include "model.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using cellkit::index_t;

struct options {
  std::string data;
  std::string out = "scdefer_out";
  index_t k = 0;
  index_t hvg = 2000;
  index_t cells = 2000;
  int threads = 2;
  scdefer::train_config train;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(
      stderr,
      "scdefer: %s\nusage: scdefer [DATA] [--k K] [--neighbours N] [--graph-pcs N] [--pretrain-epochs N] [--epochs N] "
      "[--pretrain-lr R] [--lr R] [--warmup-epochs N] [--hvg N] [--seed S] [--threads T] [--cells N] "
      "[--checkpoint FILE] "
      "[--out DIR]\n",
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
    if (a == "--k")
      o.k = parse_integer(a, value());
    else if (a == "--neighbours")
      o.train.neighbours = parse_integer(a, value());
    else if (a == "--pretrain-epochs")
      o.train.pretrain_epochs = static_cast<int>(parse_integer(a, value()));
    else if (a == "--epochs")
      o.train.train_epochs = static_cast<int>(parse_integer(a, value()));
    else if (a == "--pretrain-lr")
      o.train.pretrain_lr = parse_real(a, value());
    else if (a == "--lr")
      o.train.train_lr = parse_real(a, value());
    else if (a == "--graph-pcs")
      o.train.graph_components = parse_integer(a, value());
    else if (a == "--warmup-epochs")
      o.train.warmup_epochs = static_cast<int>(parse_integer(a, value()));
    else if (a == "--hvg")
      o.hvg = parse_integer(a, value());
    else if (a == "--seed")
      o.train.seed = static_cast<std::uint64_t>(parse_integer(a, value()));
    else if (a == "--threads")
      o.threads = static_cast<int>(parse_integer(a, value()));
    else if (a == "--cells")
      o.cells = parse_integer(a, value());
    else if (a == "--checkpoint")
      o.train.checkpoint = value();
    else if (a == "--out")
      o.out = value();
    else if (a == "-h" || a == "--help")
      usage_error("trains a scDEFER-style fusion model (see examples/scdefer/main.cpp)");
    else if (!a.empty() && a[0] == '-')
      usage_error("unknown option " + a);
    else if (o.data.empty())
      o.data = a;
    else
      usage_error("more than one DATA argument");
  }
  if (o.threads < 1) usage_error("--threads must be >= 1");
  if (o.hvg < 1) usage_error("--hvg must be >= 1");
  if (o.train.neighbours < 1) usage_error("--neighbours must be >= 1");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  options opt = parse(argc, argv);
  try {
    cellkit::openmp policy{opt.threads};
    auto input = examples::read_or_simulate(policy, opt.data, opt.cells, opt.train.seed);
    auto prep = examples::prepare_counts(policy, input.counts, input.labels, opt.hvg);
    auto& data = prep.data;
    const index_t k = examples::choose_clusters(opt.k, data.labels);
    std::fprintf(stderr, "%s: %lld cells x %lld genes%s, K = %lld\n", input.name.c_str(),
                 static_cast<long long>(data.cells), static_cast<long long>(data.genes),
                 prep.hvg_applied ? " (highly variable)" : "", static_cast<long long>(k));
    opt.train.clusters = k;
    scdefer::model<float> model(data.genes, k, opt.train.arch, opt.train.seed);
    auto report = [&](const scdefer::progress& p) {
      const std::string phase = p.phase;
      const bool every_tenth = p.epoch % 10 == 0 || p.epoch <= 10;
      if (phase == "pretrain" && !every_tenth && p.epoch != opt.train.pretrain_epochs) return;
      if (phase == "train" && !every_tenth && p.epoch != opt.train.train_epochs) return;
      std::fprintf(stderr, "[%7.1f s] %-8s", p.seconds, p.phase);
      if (phase == "pretrain" || phase == "train") {
        std::fprintf(stderr, " epoch %4d  total %.5f  graph %.5f  zinb %.5f", p.epoch, p.losses.total, p.losses.graph,
                     p.losses.zinb);
      }
      if (phase == "train") {
        std::fprintf(stderr, "  kl %.5f  bce %.5f  changed %.4f", p.losses.kl, p.losses.mutual, p.labels_changed);
      }
      if (p.ari) std::fprintf(stderr, "  ARI %.4f  NMI %.4f", *p.ari, *p.nmi);
      std::fprintf(stderr, "\n");
    };
    auto r = scdefer::train(policy, data, model, opt.train, report);

    std::filesystem::create_directories(opt.out);
    const auto dir = std::filesystem::path(opt.out);
    examples::write_matrix(dir / "latent.tsv", prep.kept_cells, r.latent.data(), model.latent(), "z");
    examples::write_matrix(dir / "soft_assignment.tsv", prep.kept_cells, r.q.data(), k, "q");
    examples::write_labels(dir / "labels.tsv", prep.kept_cells, r.labels, r.kmeans_labels, data.labels);
    std::printf(
        "cells %lld  genes %lld  K %lld  graph %lld edges %.1f s  pretrain %d epochs %.1f s  kmeans %.1f s  "
        "train %d epochs %.1f s\n",
        static_cast<long long>(data.cells), static_cast<long long>(data.genes), static_cast<long long>(k),
        static_cast<long long>(r.graph_edges), r.graph_seconds, r.pretrain_epochs, r.pretrain_seconds, r.kmeans_seconds,
        r.train_epochs, r.train_seconds);
    if (r.ari)
      std::printf("ARI %.4f  NMI %.4f  (k-means on the pre-trained latent: ARI %.4f)\n", *r.ari, *r.nmi, *r.kmeans_ari);
    std::printf("wrote %s/{latent,soft_assignment,labels}.tsv\n", opt.out.c_str());
  } catch (const scdefer::training_diverged& e) {
    std::fprintf(stderr, "scdefer: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scdefer: %s\n", e.what());
    return 1;
  }
  return 0;
}
