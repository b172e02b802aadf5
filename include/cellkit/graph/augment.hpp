#pragma once
/// @file
/// Graph and feature augmentations for contrastive training (GraphCL, GRACE, scGPCL,
/// scSiameseClu), driven by cellkit's counter-based Philox generator: every random decision is a
/// pure function of (seed, stream, element), so the result is identical on every backend and for
/// every thread count.
///
/// | function | decision for | Philox element | stream |
/// |---|---|---|---|
/// | `edge_keep_mask`, `drop_edges` | entry (i, j) | i n + j (symmetric: min n + max) | `params.stream` |
/// | `perturb_edges` (removal) | as drop_edges | | `params.stream` |
/// | `perturb_edges` (addition) | node i's new edges | i | `params.stream + 1` |
/// | `mask_features` (elements) | X(i, j) | i d + j | `params.stream` |
/// | `mask_features` (columns) | column j | j | `params.stream` |
/// | `add_gaussian_noise` | X(i, j) | i d + j | `params.stream` |
/// | `sample_nodes` | node i | i | `params.stream` |
/// | `sample_neighborhood` | node u at hop h | u | `params.stream + h` |
///
/// Each element's engine draws in a fixed sequence (`bernoulli` consumes one uniform, `normal` two),
/// so e.g. `mask_features` with the same seed and stream masks the same entries whatever the
/// matrix's row stride or the backend.
///
/// Backends: `edge_keep_mask`, `mask_features` and `add_gaussian_noise` are element-wise
/// (`CELLKIT_HD` functors over `for_each_index`) and accept `serial`, `openmp` and `cuda` (views in
/// the policy's memory space; cuda is asynchronous). Functions that build new graphs (drop,
/// perturb, sampling) are host-only: they compact variable-length output.
/// Costs: O(n + nnz) for edge operations, O(n d) for feature operations, O(sum of sampled degrees)
/// for neighbourhood sampling. Probabilities outside [0, 1] or negative sigma: `invalid_argument`.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/detail/common.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::graph {

struct edge_drop_params {
  double p = 0.2;  ///< probability of dropping each edge
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
  bool symmetric = false;  ///< drop (i, j) and (j, i) together (undirected graphs)
};

struct edge_perturb_params {
  double p_remove = 0.1;      ///< probability of removing each edge
  double p_add = 0.1;         ///< node i gets round(p_add * degree_i) new edges
  double added_weight = 1.0;  ///< weight of added edges
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;  ///< removal uses `stream`, addition `stream + 1`
  bool symmetric = false;    ///< remove pairs together; add both (i, j) and (j, i)
};

enum class feature_mask_mode {
  elements,  ///< each entry independently
  columns,   ///< whole feature columns, the same for every row (GRACE)
};

struct feature_mask_params {
  double p = 0.2;  ///< probability of masking (setting to 0)
  feature_mask_mode mode = feature_mask_mode::elements;
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
};

template <class T>
struct noise_params {
  T sigma = T(0.1);  ///< standard deviation
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
};

struct node_sample_params {
  double p = 0.5;  ///< probability of keeping each node
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
};

struct neighborhood_params {
  index_t hops = 2;     ///< sampling rounds from the seeds
  index_t fanout = 10;  ///< neighbours sampled per node and hop (all when the degree is smaller)
  bool induced = true;  ///< true: every edge among the sampled nodes; false: only sampled edges
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
};

/// A subgraph: the original ids of its nodes (local node l is `nodes[l]`) and its graph.
template <class T, class Index>
struct subgraph {
  std::vector<Index> nodes;
  csr_graph<T, Index> graph;
};

namespace detail {

inline void check_probability(const char* fn, const char* name, double p) {
  CELLKIT_EXPECTS(p >= 0.0 && p <= 1.0, fn, name, "must be a probability in [0, 1], got " + std::to_string(p));
}

CELLKIT_HD inline std::uint64_t pair_key(std::uint64_t i, std::uint64_t j, std::uint64_t n, bool symmetric) {
  if (symmetric && j < i) {
    const std::uint64_t t = i;
    i = j;
    j = t;
  }
  return i * n + j;
}

/// keep[p] = 1 unless entry p (row i) is dropped.
template <class Index>
struct edge_keep_functor {
  const Index* indptr;
  const Index* indices;
  std::uint8_t* keep;
  std::uint64_t n;
  double p;
  std::uint64_t seed;
  std::uint32_t stream;
  bool symmetric;
  CELLKIT_HD void operator()(index_t i) const {
    for (index_t e = static_cast<index_t>(indptr[i]); e < static_cast<index_t>(indptr[i + 1]); ++e) {
      philox_engine eng(seed, stream,
                        pair_key(static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(indices[e]), n, symmetric));
      keep[e] = bernoulli(eng, p) ? std::uint8_t(0) : std::uint8_t(1);
    }
  }
};

template <class T>
struct feature_mask_functor {
  const T* x;
  T* y;
  index_t cols, ldx, ldy;
  double p;
  std::uint64_t seed;
  std::uint32_t stream;
  bool by_column;
  CELLKIT_HD void operator()(index_t flat) const {
    const index_t i = flat / cols;
    const index_t j = flat - i * cols;
    philox_engine eng(seed, stream, static_cast<std::uint64_t>(by_column ? j : flat));
    y[i * ldy + j] = bernoulli(eng, p) ? T(0) : x[i * ldx + j];
  }
};

template <class T>
struct gaussian_noise_functor {
  const T* x;
  T* y;
  index_t cols, ldx, ldy;
  T sigma;
  std::uint64_t seed;
  std::uint32_t stream;
  CELLKIT_HD void operator()(index_t flat) const {
    const index_t i = flat / cols;
    const index_t j = flat - i * cols;
    philox_engine eng(seed, stream, static_cast<std::uint64_t>(flat));
    y[i * ldy + j] = x[i * ldx + j] + sigma * normal<T>(eng);
  }
};

/// Keeps the entries with keep[p] != 0 (host).
template <class T, class Index>
csr_graph<T, Index> compact_entries(const csr_view<const T, Index>& a, const std::uint8_t* keep) {
  const index_t n = a.rows();
  host_buffer<Index> indptr(n + 1);
  index_t total = 0;
  for (index_t i = 0; i < n; ++i) {
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) total += keep[p] != 0;
    indptr[i + 1] = static_cast<Index>(total);
  }
  host_buffer<Index> indices(total, uninitialized);
  host_buffer<T> values(total, uninitialized);
  index_t out = 0;
  for (index_t p = 0; p < a.nnz(); ++p) {
    if (keep[p] == 0) continue;
    indices[out] = a.indices()[p];
    values[out++] = a.values()[p];
  }
  return csr_graph<T, Index>(n, std::move(indptr), std::move(indices), std::move(values));
}

/// Knuth's selection sampling: chooses `k` of `m` positions uniformly without replacement, in
/// increasing order, from one engine (one uniform per position examined).
template <class F>
void select_positions(philox_engine& eng, index_t m, index_t k, F&& take) {
  index_t chosen = 0;
  for (index_t t = 0; t < m && chosen < k; ++t) {
    const double u = uniform<double>(eng);  // (0, 1]
    if (static_cast<double>(m - t) * (1.0 - u) < static_cast<double>(k - chosen)) {
      take(t);
      ++chosen;
    }
  }
}

}  // namespace detail

/// keep[p] = 0 for dropped entries, 1 for kept ones (see the table in the file comment). Any backend;
/// `keep` has nnz entries in the policy's memory space.
template <class Policy, class TA, class Index, class Space>
void edge_keep_mask(const Policy& policy, csr_view<TA, Index, Space> a, vector_view<std::uint8_t, Space> keep,
                    edge_drop_params params) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "edge_keep_mask";
  detail::check_probability(fn, "params.p", params.p);
  expect_shapes(keep.size() == a.nnz(), fn, "keep", keep.shape(), "A", {a.nnz(), 1}, "one flag per stored entry");
  CELLKIT_EXPECTS(!params.symmetric || a.rows() == a.cols(), fn, "params.symmetric", "needs a square A");
  for_each_index(
      policy, a.rows(),
      detail::edge_keep_functor<Index>{a.indptr(), a.indices(), keep.data(), static_cast<std::uint64_t>(a.cols()),
                                       params.p, params.seed, params.stream, params.symmetric});
}

/// A copy of A without the dropped entries. Host.
template <class Policy, class TA, class Index>
csr_graph<std::remove_const_t<TA>, Index> drop_edges(const Policy& policy, csr_view<TA, Index> a,
                                                     edge_drop_params params) {
  detail::require_host_policy<Policy>();
  using T = std::remove_const_t<TA>;
  detail::check_square("drop_edges", "A", a);
  detail::check_csr("drop_edges", "A", a);
  host_buffer<std::uint8_t> keep(a.nnz(), uninitialized);
  edge_keep_mask(policy, a, keep.view(), params);
  return detail::compact_entries(csr_view<const T, Index>(a), keep.data());
}

/// Removes edges as `drop_edges` (p_remove) and adds round(p_add * degree_i) new edges per node i,
/// to targets drawn uniformly among nodes that are not i and not already neighbours (redrawn up to
/// 32 times, then skipped), with weight `added_weight`. Symmetric: removal of pairs, and every added
/// (i, j) also adds (j, i) (a pair added from both sides is kept once). Host.
template <class Policy, class TA, class Index>
csr_graph<std::remove_const_t<TA>, Index> perturb_edges(const Policy& policy, csr_view<TA, Index> a,
                                                        edge_perturb_params params) {
  detail::require_host_policy<Policy>();
  using T = std::remove_const_t<TA>;
  constexpr const char* fn = "perturb_edges";
  detail::check_square(fn, "A", a);
  detail::check_csr(fn, "A", a);
  detail::check_probability(fn, "params.p_remove", params.p_remove);
  CELLKIT_EXPECTS(params.p_add >= 0.0 && std::isfinite(params.p_add), fn, "params.p_add", "must be finite and >= 0");
  const index_t n = a.rows();
  host_buffer<std::uint8_t> keep(a.nnz(), uninitialized);
  edge_keep_mask(policy, a, keep.view(),
                 edge_drop_params{params.p_remove, params.seed, params.stream, params.symmetric});
  std::vector<std::vector<Index>> added(static_cast<std::size_t>(n));
  detail::parallel_for(policy, n, [&](index_t i) {
    const index_t degree = a.row_end(i) - a.row_begin(i);
    const auto m = static_cast<index_t>(std::llround(params.p_add * static_cast<double>(degree)));
    if (m == 0 || n <= 1) return;
    philox_engine eng(params.seed, params.stream + 1, static_cast<std::uint64_t>(i));
    auto& out = added[static_cast<std::size_t>(i)];
    const Index* first = a.indices() + a.row_begin(i);
    const Index* last = a.indices() + a.row_end(i);
    for (index_t r = 0; r < m; ++r) {
      for (int attempt = 0; attempt < 32; ++attempt) {
        const auto j = static_cast<index_t>(
            std::min<double>(static_cast<double>(n) * (1.0 - uniform<double>(eng)), static_cast<double>(n - 1)));
        if (j == i || std::binary_search(first, last, static_cast<Index>(j)) ||
            std::find(out.begin(), out.end(), static_cast<Index>(j)) != out.end())
          continue;
        out.push_back(static_cast<Index>(j));
        break;
      }
    }
  });
  std::vector<Index> rows, cols;
  std::vector<T> vals;
  for (index_t i = 0; i < n; ++i) {
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p) {
      if (keep[p] == 0) continue;
      rows.push_back(static_cast<Index>(i));
      cols.push_back(a.indices()[p]);
      vals.push_back(a.values()[p]);
    }
  }
  // Added edges: collected as a set so that a pair added twice (symmetric mode) is kept once.
  std::vector<std::pair<Index, Index>> extra;
  for (index_t i = 0; i < n; ++i)
    for (Index j : added[static_cast<std::size_t>(i)]) {
      extra.emplace_back(static_cast<Index>(i), j);
      if (params.symmetric) extra.emplace_back(j, static_cast<Index>(i));
    }
  std::sort(extra.begin(), extra.end());
  extra.erase(std::unique(extra.begin(), extra.end()), extra.end());
  for (const auto& [i, j] : extra) {
    // In symmetric mode (j, i) may be an existing, kept edge: then do not add it again.
    const Index* first = a.indices() + a.row_begin(i);
    const Index* last = a.indices() + a.row_end(i);
    const Index* it = std::lower_bound(first, last, j);
    if (it != last && *it == j) continue;
    rows.push_back(i);
    cols.push_back(j);
    vals.push_back(static_cast<T>(params.added_weight));
  }
  return csr_graph<T, Index>::from_edges(n, rows, cols, vals);
}

/// Y = X with masked entries (or columns) set to 0. Y may be X (in place). Any backend.
template <class Policy, class TX, class T, class Space>
void mask_features(const Policy& policy, matrix_view<TX, Space> x, matrix_view<T, Space> y,
                   feature_mask_params params) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  static_assert(std::is_same_v<std::remove_const_t<TX>, T>, "mask_features: X and Y must have the same element type");
  constexpr const char* fn = "mask_features";
  detail::check_probability(fn, "params.p", params.p);
  expect_shapes(x.rows() == y.rows() && x.cols() == y.cols(), fn, "Y", y.shape(), "X", x.shape(),
                "Y has the shape of X");
  if (x.empty()) return;
  for_each_index(
      policy, x.rows() * x.cols(),
      detail::feature_mask_functor<T>{x.data(), y.data(), x.cols(), x.stride(), y.stride(), params.p, params.seed,
                                      params.stream, params.mode == feature_mask_mode::columns});
}

/// Y = X + sigma * N(0, 1) noise. Y may be X (in place). Any backend.
template <class Policy, class TX, class T, class Space>
void add_gaussian_noise(const Policy& policy, matrix_view<TX, Space> x, matrix_view<T, Space> y,
                        noise_params<T> params) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  static_assert(std::is_same_v<std::remove_const_t<TX>, T>, "add_gaussian_noise: X and Y must have the same type");
  constexpr const char* fn = "add_gaussian_noise";
  CELLKIT_EXPECTS(params.sigma >= T(0) && std::isfinite(static_cast<double>(params.sigma)), fn, "params.sigma",
                  "must be finite and >= 0, got " + std::to_string(static_cast<double>(params.sigma)));
  expect_shapes(x.rows() == y.rows() && x.cols() == y.cols(), fn, "Y", y.shape(), "X", x.shape(),
                "Y has the shape of X");
  if (x.empty()) return;
  for_each_index(policy, x.rows() * x.cols(),
                 detail::gaussian_noise_functor<T>{x.data(), y.data(), x.cols(), x.stride(), y.stride(), params.sigma,
                                                   params.seed, params.stream});
}

/// The nodes kept with probability p, in increasing order. Host.
template <class Index = std::int32_t, class Policy>
std::vector<Index> sample_nodes(const Policy& policy, index_t n, node_sample_params params) {
  detail::require_host_policy<Policy>();
  detail::check_probability("sample_nodes", "params.p", params.p);
  CELLKIT_EXPECTS(n >= 0, "sample_nodes", "n", "must be >= 0");
  host_buffer<std::uint8_t> keep(n, uninitialized);
  detail::parallel_for(policy, n, [&](index_t i) {
    philox_engine eng(params.seed, params.stream, static_cast<std::uint64_t>(i));
    keep[i] = bernoulli(eng, params.p) ? 1 : 0;
  });
  std::vector<Index> out;
  for (index_t i = 0; i < n; ++i)
    if (keep[i] != 0) out.push_back(static_cast<Index>(i));
  return out;
}

/// The subgraph induced by `nodes` (distinct, in range; local node l = nodes[l]), keeping weights.
template <class TA, class Index>
subgraph<std::remove_const_t<TA>, Index> induced_subgraph(csr_view<TA, Index> a, const std::vector<Index>& nodes) {
  using T = std::remove_const_t<TA>;
  constexpr const char* fn = "induced_subgraph";
  detail::check_square(fn, "A", a);
  detail::check_csr(fn, "A", a);
  const index_t n = a.rows();
  std::vector<index_t> local(static_cast<std::size_t>(n), -1);
  for (std::size_t l = 0; l < nodes.size(); ++l) {
    const auto v = static_cast<index_t>(nodes[l]);
    CELLKIT_EXPECTS(v >= 0 && v < n, fn, "nodes",
                    "node " + std::to_string(v) + " is outside [0, " + std::to_string(n) + ")");
    CELLKIT_EXPECTS(local[static_cast<std::size_t>(v)] < 0, fn, "nodes",
                    "node " + std::to_string(v) + " is listed twice");
    local[static_cast<std::size_t>(v)] = static_cast<index_t>(l);
  }
  std::vector<Index> rows, cols;
  std::vector<T> vals;
  for (std::size_t l = 0; l < nodes.size(); ++l) {
    const auto v = static_cast<index_t>(nodes[l]);
    for (index_t p = a.row_begin(v); p < a.row_end(v); ++p) {
      const index_t u = local[static_cast<std::size_t>(a.indices()[p])];
      if (u < 0) continue;
      rows.push_back(static_cast<Index>(l));
      cols.push_back(static_cast<Index>(u));
      vals.push_back(a.values()[p]);
    }
  }
  const auto m = static_cast<index_t>(nodes.size());
  return subgraph<T, Index>{nodes, csr_graph<T, Index>::from_edges(m, rows, cols, vals)};
}

/// GraphSAGE-style neighbourhood sampling: from the seed nodes, `hops` rounds in which every node of
/// the current frontier samples min(fanout, degree) of its neighbours (row entries) without
/// replacement; newly reached nodes form the next frontier. Nodes: the seeds in the given order,
/// then each hop's new nodes in increasing order. Graph: the induced subgraph on them (`induced`)
/// or only the sampled edges (local ids, original weights). Host; deterministic.
template <class Policy, class TA, class Index>
subgraph<std::remove_const_t<TA>, Index> sample_neighborhood(const Policy& policy, csr_view<TA, Index> a,
                                                             const std::vector<Index>& seeds,
                                                             neighborhood_params params) {
  detail::require_host_policy<Policy>();
  using T = std::remove_const_t<TA>;
  constexpr const char* fn = "sample_neighborhood";
  detail::check_square(fn, "A", a);
  detail::check_csr(fn, "A", a);
  CELLKIT_EXPECTS(params.hops >= 0, fn, "params.hops", "must be >= 0");
  CELLKIT_EXPECTS(params.fanout >= 0, fn, "params.fanout", "must be >= 0");
  const index_t n = a.rows();
  std::vector<index_t> local(static_cast<std::size_t>(n), -1);
  std::vector<Index> nodes;
  for (Index s : seeds) {
    const auto v = static_cast<index_t>(s);
    CELLKIT_EXPECTS(v >= 0 && v < n, fn, "seeds",
                    "node " + std::to_string(v) + " is outside [0, " + std::to_string(n) + ")");
    if (local[static_cast<std::size_t>(v)] >= 0) continue;
    local[static_cast<std::size_t>(v)] = static_cast<index_t>(nodes.size());
    nodes.push_back(s);
  }
  std::vector<std::pair<Index, Index>> sampled_edges;  // (receiver, neighbour), original ids
  std::vector<Index> frontier = nodes;
  for (index_t hop = 0; hop < params.hops && !frontier.empty(); ++hop) {
    std::vector<std::vector<index_t>> picks(frontier.size());
    detail::parallel_for(policy, static_cast<index_t>(frontier.size()), [&](index_t f) {
      const auto u = static_cast<index_t>(frontier[static_cast<std::size_t>(f)]);
      philox_engine eng(params.seed, params.stream + static_cast<std::uint32_t>(hop), static_cast<std::uint64_t>(u));
      const index_t begin = a.row_begin(u);
      const index_t degree = a.row_end(u) - begin;
      detail::select_positions(eng, degree, std::min(params.fanout, degree),
                               [&](index_t t) { picks[static_cast<std::size_t>(f)].push_back(begin + t); });
    });
    std::vector<Index> next;
    for (std::size_t f = 0; f < frontier.size(); ++f) {
      for (index_t p : picks[f]) {
        const Index v = a.indices()[p];
        sampled_edges.emplace_back(frontier[f], v);
        if (local[static_cast<std::size_t>(v)] < 0) {
          local[static_cast<std::size_t>(v)] = -2;  // reached this hop
          next.push_back(v);
        }
      }
    }
    std::sort(next.begin(), next.end());
    for (Index v : next) {
      local[static_cast<std::size_t>(v)] = static_cast<index_t>(nodes.size());
      nodes.push_back(v);
    }
    frontier = std::move(next);
  }
  if (params.induced) return induced_subgraph(a, nodes);
  std::vector<Index> rows, cols;
  std::vector<T> vals;
  for (const auto& [u, v] : sampled_edges) {
    const Index* first = a.indices() + a.row_begin(u);
    const Index* it = std::lower_bound(first, a.indices() + a.row_end(u), v);
    rows.push_back(static_cast<Index>(local[static_cast<std::size_t>(u)]));
    cols.push_back(static_cast<Index>(local[static_cast<std::size_t>(v)]));
    vals.push_back(a.values()[a.row_begin(u) + (it - first)]);
  }
  const auto m = static_cast<index_t>(nodes.size());
  return subgraph<T, Index>{nodes, csr_graph<T, Index>::from_edges(m, rows, cols, vals)};
}

}  // namespace cellkit::graph
