#pragma once
// The gene network the link predictor learns from (docs/link_prediction.md): genes with feature
// vectors and a directed regulatory edge list; reading both from TSV files, generating one with
// planted regulatory structure, the per-source train / validation / test split of positive and
// sampled negative pairs, and the training graph the GCN passes messages on.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/normalize.hpp>
#include <cellkit/graph/propagate.hpp>
#include <cellkit/io/file_error.hpp>
#include <cellkit/nn/batches.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace link_prediction {

using cellkit::host_buffer;
using cellkit::index_t;
using cellkit::matrix_view;
using cellkit::vector_view;

// ---- the network ------------------------------------------------------------------------------

/// Genes (names and features) and directed edges source -> target (source regulates target).
template <class T>
struct gene_network {
  std::vector<std::string> genes;
  index_t feature_width = 0;
  host_buffer<T> features;  // genes x feature_width
  std::vector<index_t> sources, targets;
  std::vector<T> weights;  // one per edge, > 0

  index_t gene_count() const { return static_cast<index_t>(genes.size()); }
  index_t edge_count() const { return static_cast<index_t>(sources.size()); }
  matrix_view<const T> feature_matrix() const {
    return matrix_view<const T>(features.data(), gene_count(), feature_width);
  }
};

/// Checks a network before it is split: genes with features of one width, at least one edge,
/// edges between known genes with positive finite weights, finite features.
template <class T>
void check_network(const gene_network<T>& net) {
  constexpr const char* fn = "link_prediction::check_network";
  const index_t n = net.gene_count();
  CELLKIT_EXPECTS(n >= 2, fn, "genes", "needs at least two genes, got " + std::to_string(n));
  CELLKIT_EXPECTS(net.feature_width >= 1, fn, "features", "needs at least one feature per gene");
  cellkit::expect_shapes(net.features.size() == n * net.feature_width, fn, "features",
                         {net.features.size() / net.feature_width, net.feature_width}, "genes", {n, net.feature_width},
                         "one feature row per gene");
  CELLKIT_EXPECTS(net.edge_count() > 0, fn, "edges", "the network has no edges (an empty graph cannot be split)");
  CELLKIT_EXPECTS(net.targets.size() == net.sources.size() && net.weights.size() == net.sources.size(), fn, "edges",
                  "sources, targets and weights must have one entry per edge");
  for (index_t e = 0; e < net.edge_count(); ++e) {
    const index_t s = net.sources[e], t = net.targets[e];
    CELLKIT_EXPECTS(s >= 0 && s < n && t >= 0 && t < n, fn, "edges",
                    "edge " + std::to_string(e) + " joins genes " + std::to_string(s) + " and " + std::to_string(t) +
                        ", outside [0, " + std::to_string(n) + ")");
    CELLKIT_EXPECTS(std::isfinite(net.weights[e]) && net.weights[e] > T(0), fn, "weights",
                    "edge " + std::to_string(e) + " has weight " + std::to_string(net.weights[e]) +
                        "; weights must be finite and > 0");
  }
  for (index_t k = 0; k < net.features.size(); ++k) {
    if (!std::isfinite(net.features[k])) {
      cellkit::detail::throw_invalid_argument(fn, "features",
                                              "gene " + net.genes[static_cast<std::size_t>(k / net.feature_width)] +
                                                  ", feature " + std::to_string(k % net.feature_width) +
                                                  " is not finite");
    }
  }
}

// ---- reading TSV files ------------------------------------------------------------------------

namespace detail {

/// Whitespace-separated fields of one line (tabs in TSV files; a trailing '\r' is dropped).
inline std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  std::istringstream in(line);
  std::string field;
  while (in >> field) fields.push_back(field);
  return fields;
}

/// The whole of `text` as a finite number, or false.
inline bool parse_number(const std::string& text, double& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(value);
}

inline std::string quoted(const std::string& s) {
  std::string q = "'";
  q += s;
  q += '\'';
  return q;
}

}  // namespace detail

/// Reads genes and features: one line per gene, its name then its features (whitespace-separated,
/// tabs in a TSV). A first line whose fields after the name are not all numbers is a header; lines
/// starting with '#' and blank lines are skipped. Errors (`io::file_error`, naming file and line):
/// unreadable file, no genes, a gene listed twice, a field that is not a finite number, a line with
/// another number of features than the first.
template <class T>
gene_network<T> read_features(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw cellkit::io::file_error(path, 0, "cannot open the feature file");
  gene_network<T> net;
  std::vector<T> values;
  std::unordered_map<std::string, std::int64_t> first_line;
  std::int64_t width_line = 0;
  std::string line;
  for (std::int64_t number = 1; std::getline(in, line); ++number) {
    const auto fields = detail::split_fields(line);
    if (fields.empty() || fields[0][0] == '#') continue;
    std::vector<double> row;
    bool numeric = fields.size() >= 2;
    for (std::size_t f = 1; f < fields.size() && numeric; ++f) {
      double v = 0;
      numeric = detail::parse_number(fields[f], v);
      row.push_back(v);
    }
    if (!numeric && net.genes.empty() && width_line == 0) {
      width_line = -1;  // a header; only the first line may be one
      continue;
    }
    if (fields.size() < 2)
      throw cellkit::io::file_error(path, number, "gene " + detail::quoted(fields[0]) + " has no features");
    if (!numeric) {
      for (std::size_t f = 1; f < fields.size(); ++f) {
        double v = 0;
        if (!detail::parse_number(fields[f], v)) {
          std::string problem = "feature ";
          problem += std::to_string(f);
          problem +=
              " of gene " + detail::quoted(fields[0]) + " is " + detail::quoted(fields[f]) + ", not a finite number";
          throw cellkit::io::file_error(path, number, problem);
        }
      }
    }
    const auto width = static_cast<index_t>(row.size());
    if (net.genes.empty()) {
      net.feature_width = width;
      width_line = number;
    } else if (width != net.feature_width) {
      std::string problem = "gene " + detail::quoted(fields[0]) + " has ";
      problem += std::to_string(width);
      problem += " features but line ";
      problem += std::to_string(width_line);
      problem += " has ";
      problem += std::to_string(net.feature_width);
      problem += " (every gene needs the same number of features)";
      throw cellkit::io::file_error(path, number, problem);
    }
    const auto [it, inserted] = first_line.emplace(fields[0], number);
    if (!inserted) {
      std::string problem = "gene " + detail::quoted(fields[0]) + " is listed again (first on line ";
      problem += std::to_string(it->second);
      problem += ')';
      throw cellkit::io::file_error(path, number, problem);
    }
    net.genes.push_back(fields[0]);
    for (double v : row) values.push_back(static_cast<T>(v));
  }
  if (net.genes.empty()) throw cellkit::io::file_error(path, 0, "no genes (each line: gene name, then its features)");
  net.features = host_buffer<T>(static_cast<index_t>(values.size()), cellkit::uninitialized);
  std::copy(values.begin(), values.end(), net.features.begin());
  return net;
}

/// Counts of what `read_edges` skipped.
struct edge_read_summary {
  index_t edges = 0;
  index_t self_loops = 0;  // regulator == target: dropped (the GCN adds its own self-loops)
  index_t duplicates = 0;  // the same (source, target) again: the first line's weight is kept
  bool header = false;
};

/// Reads directed edges into `net` (whose genes come from `read_features`): one line per edge,
/// source gene, target gene, optional weight (default 1), whitespace-separated. Lines starting with
/// '#' and blank lines are skipped; a first line naming two unknown genes is a header. Errors
/// (`io::file_error`, naming file and line): unreadable file, an unknown gene (also naming the
/// feature file), a missing target, a weight that is not a finite positive number, extra fields,
/// no edges at all.
template <class T>
edge_read_summary read_edges(const std::string& path, const std::string& feature_path, gene_network<T>& net) {
  std::ifstream in(path);
  if (!in) throw cellkit::io::file_error(path, 0, "cannot open the edge list");
  std::unordered_map<std::string, index_t> index;
  for (index_t g = 0; g < net.gene_count(); ++g) index.emplace(net.genes[static_cast<std::size_t>(g)], g);
  std::set<std::pair<index_t, index_t>> seen;
  edge_read_summary summary;
  bool first = true;
  std::string line;
  for (std::int64_t number = 1; std::getline(in, line); ++number) {
    const auto fields = detail::split_fields(line);
    if (fields.empty() || fields[0][0] == '#') continue;
    const bool was_first = std::exchange(first, false);
    if (fields.size() < 2)
      throw cellkit::io::file_error(path, number,
                                    "needs a source and a target gene, found only " + detail::quoted(fields[0]));
    if (fields.size() > 3) {
      std::string problem = "has ";
      problem += std::to_string(fields.size());
      problem += " fields; expected source, target and an optional weight";
      throw cellkit::io::file_error(path, number, problem);
    }
    const auto s = index.find(fields[0]);
    const auto t = index.find(fields[1]);
    if (was_first && s == index.end() && t == index.end()) {
      summary.header = true;
      continue;
    }
    for (const auto* f : {&fields[0], &fields[1]}) {
      if (!index.contains(*f))
        throw cellkit::io::file_error(
            path, number, "unknown gene " + detail::quoted(*f) + " (not in the feature file " + feature_path + ")");
    }
    double weight = 1;
    if (fields.size() == 3 && (!detail::parse_number(fields[2], weight) || weight <= 0))
      throw cellkit::io::file_error(path, number,
                                    "weight " + detail::quoted(fields[2]) + " is not a finite positive number");
    if (s->second == t->second) {
      ++summary.self_loops;
      continue;
    }
    if (!seen.emplace(s->second, t->second).second) {
      ++summary.duplicates;
      continue;
    }
    net.sources.push_back(s->second);
    net.targets.push_back(t->second);
    net.weights.push_back(static_cast<T>(weight));
  }
  summary.edges = net.edge_count();
  if (net.edge_count() == 0)
    throw cellkit::io::file_error(path, 0, "no edges between distinct genes (an empty graph cannot be learnt from)");
  return summary;
}

// ---- generated networks -----------------------------------------------------------------------

/// A network with planted regulatory structure. Genes fall in `modules` equal blocks; the first
/// `regulators_per_module` genes of each block are regulators (TFs). Each regulator picks between
/// `min_targets` and `max_targets` targets, a fraction `within_module` of them in its own module,
/// by weighted sampling without replacement (weights exp(activity), activity ~ N(0, activity_sd^2)
/// per gene: some genes are regulated far more often than others, as in real networks). Features:
/// x_g = module_signal c_m(g) + regulator_signal mean_{t -> g} u_t + noise e_g, with c_m, u_t, e_g
/// standard normal vectors (a regulator's own features include its u_t).
struct generator_params {
  index_t genes = 500;
  index_t modules = 10;
  index_t regulators_per_module = 5;
  index_t min_targets = 10;
  index_t max_targets = 40;
  double within_module = 0.8;
  double activity_sd = 1.0;
  index_t features = 32;
  double module_signal = 0.6;
  double regulator_signal = 0.6;
  double noise = 1.0;
  std::uint64_t seed = 0;
};

template <class T>
struct generated_network {
  gene_network<T> network;
  std::vector<index_t> module;     // per gene
  std::vector<bool> is_regulator;  // per gene
};

namespace detail {
// Philox streams of the generator (one per independent use of the seed).
enum generator_stream : std::uint32_t {
  module_centre = 100,
  regulator_program = 101,
  target_count = 102,
  gene_activity = 103,
  target_choice = 104,
  feature_noise = 105,
};
}  // namespace detail

template <class T>
generated_network<T> generate_network(const generator_params& p) {
  constexpr const char* fn = "link_prediction::generate_network";
  CELLKIT_EXPECTS(p.modules >= 2 && p.genes >= 2 * p.modules, fn, "modules",
                  "needs at least 2 modules of at least 2 genes each");
  const index_t per_module = p.genes / p.modules;
  CELLKIT_EXPECTS(p.regulators_per_module >= 1 && p.regulators_per_module < per_module, fn, "regulators_per_module",
                  "needs 1 <= regulators per module < genes per module (" + std::to_string(per_module) + ")");
  CELLKIT_EXPECTS(p.min_targets >= 1 && p.min_targets <= p.max_targets, fn, "min_targets",
                  "needs 1 <= min_targets <= max_targets");
  CELLKIT_EXPECTS(p.features >= 1, fn, "features", "needs at least one feature");
  CELLKIT_EXPECTS(p.within_module >= 0 && p.within_module <= 1, fn, "within_module", "must lie in [0, 1]");
  const index_t n = p.genes, f = p.features;
  generated_network<T> out;
  out.module.resize(static_cast<std::size_t>(n));
  out.is_regulator.assign(static_cast<std::size_t>(n), false);
  auto& net = out.network;
  for (index_t g = 0; g < n; ++g) {
    const index_t m = std::min(g / per_module, p.modules - 1);
    out.module[g] = m;
    out.is_regulator[g] = g - m * per_module < p.regulators_per_module;
  }
  for (index_t g = 0; g < n; ++g) {
    const index_t m = out.module[g];
    std::string name = out.is_regulator[g] ? "TF" : "G";
    name += std::to_string(g);
    name += "_M";
    name += std::to_string(m);
    net.genes.push_back(std::move(name));
  }
  std::vector<double> activity(static_cast<std::size_t>(n));
  for (index_t g = 0; g < n; ++g) {
    cellkit::philox_engine eng(p.seed, detail::gene_activity, static_cast<std::uint64_t>(g));
    activity[g] = p.activity_sd * cellkit::normal<double>(eng);
  }
  // Weighted sampling without replacement (Efraimidis and Spirakis): the k largest log(u) / w.
  auto choose = [&](index_t regulator, const std::vector<index_t>& candidates, index_t k) {
    std::vector<std::pair<double, index_t>> keys;
    for (index_t g : candidates) {
      cellkit::philox_engine eng(
          p.seed, detail::target_choice,
          static_cast<std::uint64_t>(regulator) * static_cast<std::uint64_t>(n) + static_cast<std::uint64_t>(g));
      keys.emplace_back(std::log(cellkit::uniform<double>(eng)) / std::exp(activity[g]), g);
    }
    k = std::min<index_t>(k, static_cast<index_t>(keys.size()));
    std::partial_sort(keys.begin(), keys.begin() + k, keys.end(), std::greater<>());
    std::vector<index_t> chosen;
    for (index_t i = 0; i < k; ++i) chosen.push_back(keys[i].second);
    std::sort(chosen.begin(), chosen.end());
    return chosen;
  };
  std::vector<std::vector<index_t>> regulators_of(static_cast<std::size_t>(n));
  for (index_t t = 0; t < n; ++t) {
    if (!out.is_regulator[t]) continue;
    cellkit::philox_engine eng(p.seed, detail::target_count, static_cast<std::uint64_t>(t));
    const index_t count =
        p.min_targets + std::min<index_t>(static_cast<index_t>(cellkit::uniform<double>(eng) *
                                                               static_cast<double>(p.max_targets - p.min_targets + 1)),
                                          p.max_targets - p.min_targets);
    const auto inside = static_cast<index_t>(std::llround(p.within_module * static_cast<double>(count)));
    std::vector<index_t> same, other;
    for (index_t g = 0; g < n; ++g) {
      if (g == t) continue;
      (out.module[g] == out.module[t] ? same : other).push_back(g);
    }
    for (const auto* group : {&same, &other}) {
      const index_t k = group == &same ? inside : count - inside;
      for (index_t g : choose(t, *group, k)) {
        net.sources.push_back(t);
        net.targets.push_back(g);
        net.weights.push_back(T(1));
        regulators_of[g].push_back(t);
      }
    }
  }
  // Features: module centre, the mean programme of the gene's regulators (and its own), noise.
  auto standard_normal = [&](std::uint32_t stream, index_t row, index_t col) {
    cellkit::philox_engine eng(
        p.seed, stream,
        static_cast<std::uint64_t>(row) * static_cast<std::uint64_t>(f) + static_cast<std::uint64_t>(col));
    return cellkit::normal<double>(eng);
  };
  net.feature_width = f;
  net.features = host_buffer<T>(n * f, cellkit::uninitialized);
  for (index_t g = 0; g < n; ++g) {
    std::vector<index_t> programmes = regulators_of[g];
    if (out.is_regulator[g]) programmes.push_back(g);
    for (index_t c = 0; c < f; ++c) {
      double x = p.module_signal * standard_normal(detail::module_centre, out.module[g], c) +
                 p.noise * standard_normal(detail::feature_noise, g, c);
      if (!programmes.empty()) {
        double u = 0;
        for (index_t t : programmes) u += standard_normal(detail::regulator_program, t, c);
        x += p.regulator_signal * u / static_cast<double>(programmes.size());
      }
      net.features[g * f + c] = static_cast<T>(x);
    }
  }
  return out;
}

// ---- the per-source split ---------------------------------------------------------------------

/// Labelled directed gene pairs (source, target): label 1 for a network edge, 0 for a sampled
/// non-edge. `weights` holds the edge weight of positives (0 for negatives).
template <class T>
struct pair_set {
  std::vector<index_t> sources, targets;
  std::vector<int> labels;
  std::vector<T> weights;

  index_t size() const { return static_cast<index_t>(sources.size()); }
  index_t positives() const { return static_cast<index_t>(std::count(labels.begin(), labels.end(), 1)); }
  void add(index_t s, index_t t, int label, T weight) {
    sources.push_back(s);
    targets.push_back(t);
    labels.push_back(label);
    weights.push_back(weight);
  }
};

template <class T>
struct pair_split {
  pair_set<T> train, validation, test;
};

struct split_params {
  double train = 0.7;
  double validation = 0.1;  // the test split is the rest
  /// Sampled non-targets per target of each source (fewer when the source has fewer non-targets).
  index_t negatives_per_positive = 1;
  std::uint64_t seed = 0;
};

namespace detail {
enum split_stream : std::uint32_t { negative_choice = 200, positive_order = 201, negative_order = 202 };

/// A Philox permutation of 0..count-1 keyed by (seed, stream, element): the mini-batch shuffle.
inline std::vector<index_t> permutation(index_t count, std::uint64_t seed, std::uint32_t stream, index_t element) {
  if (count == 0) return {};
  cellkit::nn::minibatches order(count, {.batch_size = count, .shuffle = true, .seed = seed, .stream = stream});
  return order.epoch(static_cast<std::uint64_t>(element)).order();
}
}  // namespace detail

/// For each source gene (in gene order): its targets are the positives, `negatives_per_positive`
/// times as many non-targets (other genes, not the source) are drawn as negatives, and each of the
/// two lists is shuffled and cut into train / validation / test in the given proportions
/// (validation and test sizes rounded to nearest, the rest trains). Every source thus contributes
/// to every split it has enough pairs for, and no pair is in two splits. Errors: a split without
/// positives or without negatives (the network is too small for the proportions).
template <class T>
pair_split<T> split_pairs(const gene_network<T>& net, const split_params& params) {
  constexpr const char* fn = "link_prediction::split_pairs";
  check_network(net);
  CELLKIT_EXPECTS(params.train > 0 && params.validation >= 0 && params.train + params.validation < 1, fn, "params",
                  "needs train > 0, validation >= 0 and train + validation < 1");
  CELLKIT_EXPECTS(params.negatives_per_positive >= 1, fn, "negatives_per_positive", "must be >= 1");
  const index_t n = net.gene_count();
  std::vector<std::map<index_t, T>> targets_of(static_cast<std::size_t>(n));
  for (index_t e = 0; e < net.edge_count(); ++e) targets_of[net.sources[e]].emplace(net.targets[e], net.weights[e]);
  const double test_fraction = 1 - params.train - params.validation;
  pair_split<T> split;
  auto deal = [&](index_t s, const std::vector<index_t>& genes, const std::vector<T>& weights, int label,
                  std::uint32_t stream) {
    const auto order = detail::permutation(static_cast<index_t>(genes.size()), params.seed, stream, s);
    const auto k = static_cast<double>(genes.size());
    const auto tests = static_cast<std::size_t>(std::llround(test_fraction * k));
    const auto validations = static_cast<std::size_t>(std::llround(params.validation * k));
    for (std::size_t i = 0; i < order.size(); ++i) {
      auto& set = i < tests ? split.test : (i < tests + validations ? split.validation : split.train);
      set.add(s, genes[order[i]], label, weights[order[i]]);
    }
  };
  for (index_t s = 0; s < n; ++s) {
    const auto& targets = targets_of[s];
    if (targets.empty()) continue;
    std::vector<index_t> positives;
    std::vector<T> weights;
    for (const auto& [t, w] : targets) {
      positives.push_back(t);
      weights.push_back(w);
    }
    std::vector<index_t> candidates;
    for (index_t g = 0; g < n; ++g)
      if (g != s && !targets.contains(g)) candidates.push_back(g);
    const auto picked =
        detail::permutation(static_cast<index_t>(candidates.size()), params.seed, detail::negative_choice, s);
    const auto wanted =
        std::min(picked.size(), positives.size() * static_cast<std::size_t>(params.negatives_per_positive));
    std::vector<index_t> negatives;
    for (std::size_t i = 0; i < wanted; ++i) negatives.push_back(candidates[picked[i]]);
    std::sort(negatives.begin(), negatives.end());
    deal(s, positives, weights, 1, detail::positive_order);
    deal(s, negatives, std::vector<T>(negatives.size(), T(0)), 0, detail::negative_order);
  }
  for (const auto* set : {&split.train, &split.validation, &split.test}) {
    const char* name = set == &split.train ? "train" : (set == &split.validation ? "validation" : "test");
    const index_t pos = set->positives();
    CELLKIT_EXPECTS(pos > 0 && pos < set->size(), fn, "network",
                    std::string("the ") + name + " split has " + std::to_string(pos) + " positive and " +
                        std::to_string(set->size() - pos) +
                        " negative pairs; the network is too small for the split proportions");
  }
  return split;
}

/// The graph the GCN and the attention run on: the training positives as undirected edges (max
/// weight where both directions are edges), normalised symmetrically with self-loops,
/// D^-1/2 (A + I) D^-1/2 (GCNConv's operator). Validation and test edges are not in it.
template <class T, class Policy>
cellkit::graph::propagator<T> training_graph(const Policy& policy, index_t genes, const pair_set<T>& train) {
  namespace cg = cellkit::graph;
  std::vector<std::int32_t> rows, cols;
  std::vector<T> weights;
  for (index_t i = 0; i < train.size(); ++i) {
    if (train.labels[i] != 1) continue;
    rows.push_back(static_cast<std::int32_t>(train.targets[i]));  // the target receives from its source
    cols.push_back(static_cast<std::int32_t>(train.sources[i]));
    weights.push_back(train.weights[i]);
  }
  auto directed = cg::csr_graph<T>::from_edges(genes, rows, cols, weights);
  auto undirected = cg::symmetrize(policy, directed.view(), cg::symmetrize_mode::max);
  return cg::propagator<T>(
      cg::normalize(policy, undirected.view(), {.kind = cg::normalization::symmetric, .self_loop_weight = T(1)}));
}

}  // namespace link_prediction
