// scgpcl: a scGPCL-style model (graph prototypical contrastive learning on the bipartite cell-gene
// graph, ZINB reconstruction, DEC fine-tuning) built from cellkit's parts (model.hpp; docs/scgpcl.md).
//
//   scgpcl [DATA] [--k K] [--pretrain-epochs N] [--warmup N] [--max-epochs N] [--batch-size B] [--hvg N]
//          [--tau T] [--lambda1 L] [--lambda2 L] [--lambda3 L] [--gene-keep P] [--feature-drop P] [--lr R]
//          [--seed S] [--threads T] [--cells N] [--pretrain-only] [--out DIR]
//
// DATA is a dataset folder (counts.mtx.gz, optional labels.tsv and manifest.json), a 10x directory
// or a .mtx[.gz] file of raw counts, cells x genes. Without DATA it simulates --cells cells x 2000
// genes in 6 cell types. K defaults to the number of labelled cell types (else 8). Progress goes to
// stderr; DIR receives latent.tsv (cells x 64), soft_assignment.tsv (cells x K), labels.tsv (cell,
// predicted label, k-means initial label, true label when known), each written atomically.
// --pretrain-only runs only the InfoNCE + ZINB pre-training (no prototypes, no fine-tuning), prints
// the seconds per epoch of the training steps (the comparison with bench/peers/scgpcl_torch.py) and
// writes latent.tsv. Exit status 1 on bad input or divergence, 2 on usage.

#include "../common/cli.hpp"
#include "../common/run.hpp"
#include "data.hpp"
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
  std::string out = "scgpcl_out";
  index_t k = 0;
  index_t hvg = 2000;
  index_t cells = 2000;
  int threads = 2;
  bool warmup_given = false;
  scgpcl::train_config train;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr,
               "scgpcl: %s\nusage: scgpcl [DATA] [--k K] [--pretrain-epochs N] [--warmup N] [--max-epochs N] "
               "[--batch-size B] [--hvg N] [--tau T] [--lambda1 L] [--lambda2 L] [--lambda3 L] [--gene-keep P] "
               "[--feature-drop P] [--lr R] [--seed S] [--threads T] [--cells N] [--pretrain-only] [--out DIR]\n",
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
    else if (a == "--pretrain-epochs")
      o.train.pretrain_epochs = static_cast<int>(parse_integer(a, value()));
    else if (a == "--warmup") {
      o.train.warmup = static_cast<int>(parse_integer(a, value()));
      o.warmup_given = true;
    } else if (a == "--max-epochs")
      o.train.finetune_max_epochs = static_cast<int>(parse_integer(a, value()));
    else if (a == "--batch-size")
      o.train.batch_size = parse_integer(a, value());
    else if (a == "--hvg")
      o.hvg = parse_integer(a, value());
    else if (a == "--tau")
      o.train.weights.temperature = parse_real(a, value());
    else if (a == "--lambda1")
      o.train.weights.lambda1 = parse_real(a, value());
    else if (a == "--lambda2")
      o.train.weights.lambda2 = parse_real(a, value());
    else if (a == "--lambda3")
      o.train.weights.lambda3 = parse_real(a, value());
    else if (a == "--gene-keep")
      o.train.views.gene_keep = parse_real(a, value());
    else if (a == "--feature-drop")
      o.train.views.feature_drop = parse_real(a, value());
    else if (a == "--lr")
      o.train.pretrain_lr = parse_real(a, value());
    else if (a == "--seed")
      o.train.seed = static_cast<std::uint64_t>(parse_integer(a, value()));
    else if (a == "--threads")
      o.threads = static_cast<int>(parse_integer(a, value()));
    else if (a == "--cells")
      o.cells = parse_integer(a, value());
    else if (a == "--pretrain-only")
      o.train.pretrain_only = true;
    else if (a == "--out")
      o.out = value();
    else if (a == "-h" || a == "--help")
      usage_error("trains a scGPCL-style model (see examples/scgpcl/main.cpp)");
    else if (!a.empty() && a[0] == '-')
      usage_error("unknown option " + a);
    else if (o.data.empty())
      o.data = a;
    else
      usage_error("more than one DATA argument");
  }
  if (o.threads < 1) usage_error("--threads must be >= 1");
  if (o.train.batch_size < 2) usage_error("--batch-size must be >= 2");
  if (o.hvg < 1) usage_error("--hvg must be >= 1");
  if (!o.warmup_given) o.train.warmup = o.train.pretrain_epochs / 2;
  if (o.train.pretrain_only) o.train.warmup = o.train.pretrain_epochs;  // InfoNCE + ZINB only
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  options opt = parse(argc, argv);
  try {
    cellkit::openmp policy{opt.threads};
    auto input = examples::read_or_simulate(policy, opt.data, opt.cells, opt.train.seed);
    auto prep = scgpcl::prepare_counts(policy, input.counts, input.labels, opt.hvg);
    auto& data = prep.data;
    const index_t k = examples::choose_clusters(opt.k, data.labels);
    std::fprintf(stderr, "%s: %lld cells x %lld genes%s, K = %lld\n", input.name.c_str(),
                 static_cast<long long>(data.cells), static_cast<long long>(data.genes),
                 prep.hvg_applied ? " (highly variable)" : "", static_cast<long long>(k));
    opt.train.clusters = k;
    scgpcl::model<float> model(data.genes, k, opt.train.arch, opt.train.seed);
    auto report = [&](const scgpcl::progress& p) {
      const std::string phase = p.phase;
      std::fprintf(stderr, "[%7.1f s] %-8s", p.seconds, p.phase);
      if (phase == "pretrain")
        std::fprintf(stderr, " epoch %4d  zinb %.5f  infonce %.5f  protonce %.5f", p.epoch, p.zinb, p.instance,
                     p.proto);
      if (phase == "finetune")
        std::fprintf(stderr, " epoch %4d  zinb %.5f  kl %.5f  changed %.4f", p.epoch, p.zinb, p.kl, p.labels_changed);
      if (p.stability) std::fprintf(stderr, "  ARI(previous clustering) %.4f", *p.stability);
      if (p.ari) std::fprintf(stderr, "  ARI %.4f  NMI %.4f", *p.ari, *p.nmi);
      if (p.epoch_seconds > 0) std::fprintf(stderr, "  (%.2f s)", p.epoch_seconds);
      std::fprintf(stderr, "\n");
    };
    auto r = scgpcl::train(policy, data, model, opt.train, report);

    std::filesystem::create_directories(opt.out);
    const auto dir = std::filesystem::path(opt.out);
    examples::write_matrix(dir / "latent.tsv", prep.kept_cells, r.latent.data(), model.latent(), "h");
    if (opt.train.pretrain_only) {
      std::printf("cells %lld  genes %lld  pretrain %d epochs  %.3f s per epoch (training steps)  %.1f s total\n",
                  static_cast<long long>(data.cells), static_cast<long long>(data.genes), r.pretrain_epochs,
                  r.pretrain_step_seconds / std::max(r.pretrain_epochs, 1), r.pretrain_seconds);
      if (r.kmeans_ari) std::printf("k-means on the pre-trained representation: ARI %.4f\n", *r.kmeans_ari);
      std::printf("wrote %s/latent.tsv\n", opt.out.c_str());
      return 0;
    }
    examples::write_matrix(dir / "soft_assignment.tsv", prep.kept_cells, r.q.data(), k, "q");
    examples::write_labels(dir / "labels.tsv", prep.kept_cells, r.labels, r.kmeans_labels, data.labels);
    std::printf(
        "cells %lld  genes %lld  K %lld  pretrain %d epochs%s %.1f s (%.3f s per epoch)  kmeans %.1f s  finetune %d "
        "epochs %.1f s%s\n",
        static_cast<long long>(data.cells), static_cast<long long>(data.genes), static_cast<long long>(k),
        r.pretrain_epochs, r.pretrain_stopped_early ? " (clustering stable)" : "", r.pretrain_seconds,
        r.pretrain_step_seconds / std::max(r.pretrain_epochs, 1), r.kmeans_seconds, r.finetune_epochs,
        r.finetune_seconds, r.converged ? " (converged)" : "");
    if (r.ari)
      std::printf("ARI %.4f  NMI %.4f  (k-means on the pre-trained representation: ARI %.4f)\n", *r.ari, *r.nmi,
                  *r.kmeans_ari);
    std::printf("wrote %s/{latent,soft_assignment,labels}.tsv\n", opt.out.c_str());
  } catch (const scgpcl::training_diverged& e) {
    std::fprintf(stderr, "scgpcl: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scgpcl: %s\n", e.what());
    return 1;
  }
  return 0;
}
