#pragma once
/// @file
/// InfoNCE contrastive losses with their gradients (namespace `cellkit::contrastive`): two views
/// (SimCLR's NT-Xent, the instance loss of scGPCL), the supervised multi-positive variant
/// (SupCon), graph neighbours as positives (seed 003) and an external bank of negatives (MoCo).
/// Exact, in O(N x tile) memory: similarities are computed tile by tile with an online
/// log-sum-exp in the forward pass and recomputed in the backward pass (flash-attention style).
///
/// ## Definitions
///
/// Embeddings are L2-normalised inside the loss, as `torch.nn.functional.normalize(x, dim=1, eps)`:
/// u = h / max(||h||_2, eps), so a zero row gives u = 0 (similarity 0 with everything) rather than
/// NaN, and the gradients are with respect to the raw rows h (the normalisation's Jacobian is
/// applied: dh = (g - u (u.g)) / ||h||, or g / eps where ||h|| <= eps). The similarity is the
/// cosine s(h, h') = u . u' and tau > 0 is the temperature.
///
/// - `info_nce` (two views H, H', N rows each): with z = [u_1..u_N, u'_1..u'_N] (2N rows), for
///   anchor a its partner p(a) (the same sample in the other view) and
///   l_a = s_a,p(a)/tau - log sum_{b != a} e^{s_ab/tau},
///   loss = -(1/2N) sum_a l_a = -(1/2N) sum_i [l(h_i, h'_i) + l(h'_i, h_i)] (COMPONENTS.md): both
///   directions, in-view negatives (self excluded) and cross-view negatives (partner included).
/// - `supervised_info_nce` (SupCon, Khosla et al. 2020, "L_out", as the reference SupConLoss with
///   contrast_mode "all" and base_temperature = temperature): labels y_i for the N samples (both
///   views share them); P(a) = {b != a : y_b = y_a} has 2 n_y - 1 members;
///   loss = (1/2N) sum_a [ log sum_{b != a} e^{s_ab/tau} - (1/|P(a)|) sum_{p in P(a)} s_ap/tau ].
///   With all labels distinct it equals `info_nce`.
/// - `graph_info_nce` (one set of N embeddings, a weighted graph G, N x N CSR): every edge (i, j)
///   with weight w_ij >= 0 is a positive pair,
///   l_ij = s_ij/tau - log sum_{k != i} e^{s_ik/tau},  loss = -sum_ij w_ij l_ij / sum_ij w_ij
///   (unit weights: the mean over edges of seed 003's eq. 4.1). Self-loops are rejected.
/// - `info_nce_with_bank` (MoCo, one direction): queries Q and keys K (N rows each) and a bank B
///   (N_bank x d) of negatives; l_i = s(q_i,k_i)/tau - log(e^{s(q_i,k_i)/tau} + sum_j e^{s(q_i,b_j)/tau}),
///   loss = -(1/N) sum_i l_i. The gradient with respect to the bank is optional (MoCo's queue is
///   detached; pass std::nullopt).
///
/// All four are one form: loss = sum_ab W_ab (lse_a - S_ab) / sum_ab W_ab with S = z z'^T / tau,
/// positive weights W and lse_a over the non-excluded columns (docs/contrastive.md).
///
/// ## Arguments
///
/// `(policy, inputs..., gradient outputs..., params)`. Inputs are `matrix_view`s of float or double
/// (row strides allowed), rows are cells. Gradient outputs are `std::optional<matrix_view<T>>` of the
/// input's shape: pass `std::nullopt` to skip one (value only when all are skipped, which also skips
/// the whole backward pass). Gradients are overwritten, not accumulated. All inputs are read (and
/// normalised into internal copies) before any output is written, so an output may alias an input;
/// two outputs must not overlap. The loss is returned as T (accumulated in double).
///
/// Errors: views of different shapes, a label sequence or graph of the wrong size, or a gradient
/// of the wrong shape -> `dimension_mismatch` naming both; no rows or no columns, a non-finite
/// embedding value (named with its row and column), temperature or eps not positive and finite,
/// row_block or column_tile < 1, graph self-loops, negative or non-finite edge weights, a graph with
/// no positive weight -> `invalid_argument` naming the argument.
///
/// ## Algorithms, cost and memory
///
/// `info_nce_algorithm::tiled` (default). Symmetric variants (two views, supervised, graph: the
/// similarity matrix S is symmetric): rows are cut into blocks of `row_block` (never straddling the
/// two views) and only the tiles of block pairs A <= B are computed, in rounds of disjoint pairs
/// (a round-robin tournament schedule; the pairs of a round run in parallel, one thread each).
/// Forward: per tile one serial GEMM (|A| x |B| x d) and an online log-sum-exp
/// (math::log_sum_exp_accumulator) of its rows into A's rows and of its columns into B's rows.
/// Backward (only when a gradient is requested): the same GEMM again, the coefficients
/// M_ab = w_a e^{S_ab - lse_a} + w_b e^{S_ab - lse_b} (= P_ab + P_ba for two views; M is symmetric),
/// then grad_A += M Z_B and grad_B += M^T Z_A. No atomics, no per-thread copies of the gradient.
/// Bank variant (not symmetric): row blocks of `row_block` x column tiles of `column_tile`, the
/// row-local scheme (forward GEMM + online log-sum-exp per row; backward recomputation + one
/// GEMM into the row block's gradient; the bank's gradient is one more pass with the roles swapped).
/// The positive terms cost O(pairs x d) (dot products, class sums, edge lists).
/// Cost, two views of N rows: about (2N)^2 d multiply-adds and (2N)^2 exponentials for the value;
/// with gradients about 2 (2N)^2 d multiply-adds (2/3 of forward + recomputation + dL/dS Z done
/// without the symmetry) and 2 (2N)^2 exponentials.
/// Memory: the normalised copy of the inputs (same size as the inputs), O(N) per-row state and one
/// row_block^2 tile per thread (1 MiB in float with the default 512), never N x N. Measured for
/// N = 65536 per view, d = 128, float: peak RSS 210 MB for the whole process, of which 134 MB are
/// the inputs and gradients (PyTorch needs 68.7 GB for one 2N x 2N matrix; docs/contrastive.md).
///
/// `info_nce_algorithm::materialized`: the whole (2N)^2 similarity matrix, softmax and dL/dS in
/// memory (O(N^2)), plain loops with std::exp in double, GEMMs with the policy's threads;
/// dL/dZ = G Z + G^T Z. For small N and as the tests' oracle; it agrees with the tiled path to
/// rounding (the tests check 1e-12 relative in double).
///
/// Exponentials in the tiled path use a branch-free polynomial (1-2 ulp; results below the
/// smallest normal number flush to 0) so that the elementwise work vectorises. Larger `row_block`
/// means fewer, more efficient GEMMs; smaller means more pairs per round (parallelism with many
/// threads: a round has about (2N / row_block) / 2 pairs).
///
/// ## Determinism and execution
///
/// Host policies (`serial{}`, `openmp{threads}`) run the engines above. Tiled results are
/// bit-identical for every thread count and schedule (every tile is a serial GEMM of a fixed
/// shape, each row receives its tiles' contributions in the fixed round order, and the sums follow
/// fixed orders); they depend on the tile sizes only through rounding. The materialised path's
/// GEMMs follow the policy's thread count (rounding-level differences between thread counts).
/// Every host call returns when the results are written.
///
/// `cuda{stream}` with device views (labels: a device `vector_view` or a host sequence; graph: a
/// device `csr_view`) runs the portable evaluation of detail/portable_info_nce.hpp: every tile of
/// row_block x column_tile (the symmetry is not used), one cuBLAS GEMM per tile, the row
/// log-sum-exp in chunks of 64 columns merged in column order, the gradient as two GEMMs per tile;
/// `algorithm` is ignored (always tiled). Memory: the normalised rows, two M x d gradient
/// accumulators and one tile. No atomics: repeated runs give the same bits; results agree with
/// the host engines to rounding (the tests check 1e-12 in double). The argument checks read the
/// views on the device; labels and graph structure are copied to the host for their checks and
/// class/edge lists (O(N + nnz)). The call synchronises the stream (it returns the loss).///
/// ## Example
///
/// ```cpp
/// cellkit::matrix_view<const float> a(h1.data(), n, d), b(h2.data(), n, d);
/// std::vector<float> ga(n * d), gb(n * d);
/// float loss = cellkit::contrastive::info_nce(cellkit::openmp{2}, a, b,
///     cellkit::matrix_view<float>(ga.data(), n, d), cellkit::matrix_view<float>(gb.data(), n, d),
///     {.temperature = 0.1f});
/// float value_only = cellkit::contrastive::info_nce(a, b, std::nullopt, std::nullopt, {.temperature = 0.1f});
/// ```

#include <cellkit/contrastive/detail/common.hpp>
#include <cellkit/contrastive/detail/info_nce_impl.hpp>
#include <cellkit/contrastive/detail/info_nce_variants.hpp>
#include <cellkit/contrastive/detail/portable_info_nce.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>

#include <cmath>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::contrastive {

/// How the InfoNCE losses are computed (see the file comment).
enum class info_nce_algorithm {
  tiled,         ///< O(N x tile) memory, online log-sum-exp, recomputation in the backward pass
  materialized,  ///< the whole similarity matrix in memory (small N, test oracle)
};

/// Parameters of every InfoNCE variant.
template <class T>
struct info_nce_params {
  T temperature = T(0.5);  ///< tau > 0 (SimCLR's default 0.5; scGPCL and MoCo use 0.1-0.2)
  T eps = T(1e-12);        ///< normalisation floor: u = h / max(||h||, eps), as F.normalize
  info_nce_algorithm algorithm = info_nce_algorithm::tiled;
  index_t row_block = 512;    ///< rows per block (tiled): the tile is row_block x row_block (symmetric variants)
  index_t column_tile = 512;  ///< columns per tile of the bank variant (tiled)
};

/// A gradient output: a view of the input's shape (in the input's memory space), or std::nullopt
/// to skip it.
template <class T, class Space = host_space>
using gradient_output = std::optional<matrix_view<T, Space>>;

namespace detail {

template <class T>
info_nce_options<T> check_info_nce_params(const char* function, const info_nce_params<T>& p) {
  check_positive_finite(function, "temperature", p.temperature);
  check_positive_finite(function, "eps", p.eps);
  CELLKIT_EXPECTS(p.row_block >= 1, function, "row_block", "must be at least 1, got " + std::to_string(p.row_block));
  CELLKIT_EXPECTS(p.column_tile >= 1, function, "column_tile",
                  "must be at least 1, got " + std::to_string(p.column_tile));
  CELLKIT_EXPECTS(p.algorithm == info_nce_algorithm::tiled || p.algorithm == info_nce_algorithm::materialized, function,
                  "algorithm", "is not an info_nce_algorithm value");
  return {p.temperature, p.eps, p.algorithm == info_nce_algorithm::materialized, {p.row_block, p.column_tile}};
}

template <class Policy, class T, class Space>
void check_embeddings(const Policy& policy, const char* function, const char* name, matrix_view<const T, Space> x) {
  CELLKIT_EXPECTS(x.rows() >= 1, function, name, "has no rows (cells)");
  CELLKIT_EXPECTS(x.cols() >= 1, function, name, "has no columns (embedding dimensions)");
  check_finite_on(policy, function, name, x);
}

template <class T, class Space>
void check_same_shape(const char* function, const char* name_a, matrix_view<const T, Space> a, const char* name_b,
                      matrix_view<const T, Space> b, const char* rule) {
  expect_shapes(a.rows() == b.rows() && a.cols() == b.cols(), function, name_b, b.shape(), name_a, a.shape(), rule);
}

/// The labels as a host sequence: a span of host labels, or a copy of device labels (a
/// vector_view of device memory, cuda policy only).
template <class Policy, class Labels>
auto labels_on_host(const Policy& policy, const Labels& labels) {
  using L = label_value_t<Labels>;
  if constexpr (requires { typename Labels::space; }) {
    if constexpr (std::is_same_v<typename Labels::space, device_space>) {
      static_assert(is_device_policy_v<Policy>,
                    "cellkit::contrastive::supervised_info_nce: device labels need the cuda policy");
      return download(policy, vector_view<const L, device_space>(labels.data(), labels.size()));
    } else {
      return std::span<const L>(labels.data(), static_cast<std::size_t>(labels.size()));
    }
  } else {
    return std::span<const L>(labels.data(), static_cast<std::size_t>(labels.size()));
  }
}

/// The checked edges of a host graph: no self-loops, weights finite and >= 0, some weight > 0.
template <class T, class TG, class Index>
edge_list<T> graph_edges(const char* fn, csr_view<TG, Index> graph) {
  validate(graph);
  const index_t n = graph.rows();
  edge_list<T> edges;
  edges.indptr.resize(static_cast<std::size_t>(n) + 1);
  edges.indices.reserve(static_cast<std::size_t>(graph.nnz()));
  edges.weights.reserve(static_cast<std::size_t>(graph.nnz()));
  double total = 0;
  for (index_t i = 0; i < n; ++i) {
    edges.indptr[static_cast<std::size_t>(i)] = static_cast<index_t>(edges.indices.size());
    for (index_t p = graph.row_begin(i); p < graph.row_end(i); ++p) {
      const auto j = static_cast<index_t>(graph.indices()[p]);
      const double w = static_cast<double>(graph.values()[p]);
      CELLKIT_EXPECTS(j != i, fn, "graph",
                      "has a self-loop at row " + std::to_string(i) + ": a cell cannot be its own positive");
      CELLKIT_EXPECTS(std::isfinite(w) && w >= 0, fn, "graph",
                      "edge (" + std::to_string(i) + ", " + std::to_string(j) + ") has weight " + number_text(w) +
                          "; edge weights must be finite and non-negative");
      edges.indices.push_back(j);
      edges.weights.push_back(static_cast<T>(w));
      total += w;
    }
  }
  edges.indptr[static_cast<std::size_t>(n)] = static_cast<index_t>(edges.indices.size());
  CELLKIT_EXPECTS(total > 0, fn, "graph", "has no edge with a positive weight: there is no positive pair");
  return edges;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Two views
// ---------------------------------------------------------------------------------------------

/// Two-view InfoNCE (NT-Xent) of `view_a` and `view_b` (N x d each, row i of both = sample i).
/// Returns the loss; writes dL/d view_a into grad_a and dL/d view_b into grad_b when given.
template <class Policy, class TA, class SpaceA, class TB, class SpaceB>
std::remove_const_t<TA> info_nce(const Policy& policy, matrix_view<TA, SpaceA> view_a, matrix_view<TB, SpaceB> view_b,
                                 std::type_identity_t<gradient_output<std::remove_const_t<TA>, SpaceA>> grad_a,
                                 std::type_identity_t<gradient_output<std::remove_const_t<TA>, SpaceA>> grad_b,
                                 const std::type_identity_t<info_nce_params<std::remove_const_t<TA>>>& params = {}) {
  using T = std::remove_const_t<TA>;
  detail::check_policy<Policy, SpaceA, SpaceB>();
  static_assert(detail::is_real_v<T>, "cellkit::contrastive::info_nce: embeddings must be float or double");
  static_assert(std::is_same_v<std::remove_const_t<TB>, T>, "cellkit::contrastive::info_nce: both views need one type");
  constexpr const char* fn = "info_nce";
  const auto opt = detail::check_info_nce_params(fn, params);
  const matrix_view<const T, SpaceA> a(view_a), b(view_b);
  detail::check_same_shape<T>(fn, "view_a", a, "view_b", b, "the two views must have the same shape");
  detail::check_embeddings(policy, fn, "view_a", a);
  detail::check_embeddings(policy, fn, "view_b", b);
  detail::check_output_shape(fn, "grad_a", grad_a, "view_a", a.shape());
  detail::check_output_shape(fn, "grad_b", grad_b, "view_b", b.shape());
  detail::check_no_overlap(fn, "grad_a", grad_a, "grad_b", grad_b);
  if constexpr (is_device_policy_v<Policy>) {
    return static_cast<T>(detail::portable_two_view_info_nce(policy, a, b, nullptr, grad_a, grad_b, opt));
  } else {
    return static_cast<T>(
        detail::two_view_info_nce<T>(::cellkit::detail::host_threads(policy), a, b, nullptr, grad_a, grad_b, opt));
  }
}

/// `info_nce` with `default_host_policy()`.
template <class TA, class TB>
std::remove_const_t<TA> info_nce(matrix_view<TA> view_a, matrix_view<TB> view_b,
                                 std::type_identity_t<gradient_output<std::remove_const_t<TA>>> grad_a,
                                 std::type_identity_t<gradient_output<std::remove_const_t<TA>>> grad_b,
                                 const std::type_identity_t<info_nce_params<std::remove_const_t<TA>>>& params = {}) {
  return info_nce(default_host_policy(), view_a, view_b, grad_a, grad_b, params);
}

// ---------------------------------------------------------------------------------------------
// Supervised (SupCon)
// ---------------------------------------------------------------------------------------------

/// Supervised contrastive loss over two views with `labels` (N integers of any values, any
/// contiguous sequence: std::vector, std::span, vector_view, ...; with the cuda policy a
/// vector_view of device memory or a host sequence): positives are all other views of the same
/// label. Extra cost over `info_nce`: O(N d + N log N) for the class sums (the labels are
/// remapped on the host: device labels are copied there first).
template <class Policy, class TA, class SpaceA, class TB, class SpaceB, detail::label_sequence Labels>
std::remove_const_t<TA> supervised_info_nce(
    const Policy& policy, matrix_view<TA, SpaceA> view_a, matrix_view<TB, SpaceB> view_b, const Labels& labels,
    std::type_identity_t<gradient_output<std::remove_const_t<TA>, SpaceA>> grad_a,
    std::type_identity_t<gradient_output<std::remove_const_t<TA>, SpaceA>> grad_b,
    const std::type_identity_t<info_nce_params<std::remove_const_t<TA>>>& params = {}) {
  using T = std::remove_const_t<TA>;
  detail::check_policy<Policy, SpaceA, SpaceB>();
  static_assert(detail::is_real_v<T>, "cellkit::contrastive::supervised_info_nce: embeddings must be float or double");
  static_assert(std::is_same_v<std::remove_const_t<TB>, T>,
                "cellkit::contrastive::supervised_info_nce: both views need one type");
  constexpr const char* fn = "supervised_info_nce";
  const auto opt = detail::check_info_nce_params(fn, params);
  const matrix_view<const T, SpaceA> a(view_a), b(view_b);
  detail::check_same_shape<T>(fn, "view_a", a, "view_b", b, "the two views must have the same shape");
  const auto label_count = static_cast<index_t>(labels.size());
  expect_shapes(label_count == a.rows(), fn, "labels", {label_count, 1}, "view_a", a.shape(),
                "labels needs one entry per row of the views");
  detail::check_embeddings(policy, fn, "view_a", a);
  detail::check_embeddings(policy, fn, "view_b", b);
  detail::check_output_shape(fn, "grad_a", grad_a, "view_a", a.shape());
  detail::check_output_shape(fn, "grad_b", grad_b, "view_b", b.shape());
  detail::check_no_overlap(fn, "grad_a", grad_a, "grad_b", grad_b);
  using L = detail::label_value_t<Labels>;
  const auto host_labels = detail::labels_on_host(policy, labels);
  const auto remapped = detail::remap_labels(std::span<const L>(host_labels.data(), host_labels.size()));
  detail::class_layout classes{remapped.id, std::vector<index_t>(static_cast<std::size_t>(remapped.count), 0)};
  for (index_t c : classes.id) ++classes.count[static_cast<std::size_t>(c)];
  if constexpr (is_device_policy_v<Policy>) {
    return static_cast<T>(detail::portable_two_view_info_nce(policy, a, b, &classes, grad_a, grad_b, opt));
  } else {
    return static_cast<T>(
        detail::two_view_info_nce<T>(::cellkit::detail::host_threads(policy), a, b, &classes, grad_a, grad_b, opt));
  }
}

/// `supervised_info_nce` with `default_host_policy()`.
template <class TA, class TB, detail::label_sequence Labels>
std::remove_const_t<TA> supervised_info_nce(
    matrix_view<TA> view_a, matrix_view<TB> view_b, const Labels& labels,
    std::type_identity_t<gradient_output<std::remove_const_t<TA>>> grad_a,
    std::type_identity_t<gradient_output<std::remove_const_t<TA>>> grad_b,
    const std::type_identity_t<info_nce_params<std::remove_const_t<TA>>>& params = {}) {
  return supervised_info_nce(default_host_policy(), view_a, view_b, labels, grad_a, grad_b, params);
}

// ---------------------------------------------------------------------------------------------
// Graph neighbours as positives
// ---------------------------------------------------------------------------------------------

/// Graph InfoNCE of `embeddings` (N x d) with positives = the edges of `graph` (N x N CSR, any
/// index type; values are the edge weights w_ij >= 0; structure checked with `validate`). Rows
/// without edges only act as negatives. Extra cost: O(nnz d) for the positive terms and O(N + nnz)
/// for the transposed edge list (built on the host: a device graph is copied there first).
template <class Policy, class TE, class SpaceE, class TG, class Index, class SpaceG>
std::remove_const_t<TE> graph_info_nce(
    const Policy& policy, matrix_view<TE, SpaceE> embeddings, csr_view<TG, Index, SpaceG> graph,
    std::type_identity_t<gradient_output<std::remove_const_t<TE>, SpaceE>> grad,
    const std::type_identity_t<info_nce_params<std::remove_const_t<TE>>>& params = {}) {
  using T = std::remove_const_t<TE>;
  detail::check_policy<Policy, SpaceE, SpaceG>();
  static_assert(detail::is_real_v<T>, "cellkit::contrastive::graph_info_nce: embeddings must be float or double");
  static_assert(std::is_arithmetic_v<std::remove_const_t<TG>>,
                "cellkit::contrastive::graph_info_nce: graph values (edge weights) must be numbers");
  constexpr const char* fn = "graph_info_nce";
  const auto opt = detail::check_info_nce_params(fn, params);
  const matrix_view<const T, SpaceE> z(embeddings);
  const index_t n = z.rows();
  expect_shapes(graph.rows() == n && graph.cols() == n, fn, "graph", graph.shape(), "embeddings", z.shape(),
                "the graph needs one row and one column per row of embeddings");
  detail::check_embeddings(policy, fn, "embeddings", z);
  detail::check_output_shape(fn, "grad", grad, "embeddings", z.shape());
  if constexpr (is_device_policy_v<Policy>) {
    using V = std::remove_const_t<TG>;
    const auto indptr = detail::download(policy, vector_view<const Index, SpaceG>(graph.indptr(), n + 1));
    const auto indices = detail::download(policy, vector_view<const Index, SpaceG>(graph.indices(), graph.nnz()));
    const auto values = detail::download(policy, vector_view<const V, SpaceG>(graph.values(), graph.nnz()));
    const csr_view<const V, Index> host_graph(n, n, graph.nnz(), indptr.data(), indices.data(), values.data());
    return static_cast<T>(
        detail::portable_graph_info_nce(policy, z, detail::graph_edges<T>(fn, host_graph), grad, opt));
  } else {
    return static_cast<T>(detail::graph_info_nce<T>(::cellkit::detail::host_threads(policy), z,
                                                    detail::graph_edges<T>(fn, graph), grad, opt));
  }
}

/// `graph_info_nce` with `default_host_policy()`.
template <class TE, class TG, class Index>
std::remove_const_t<TE> graph_info_nce(
    matrix_view<TE> embeddings, csr_view<TG, Index> graph,
    std::type_identity_t<gradient_output<std::remove_const_t<TE>>> grad,
    const std::type_identity_t<info_nce_params<std::remove_const_t<TE>>>& params = {}) {
  return graph_info_nce(default_host_policy(), embeddings, graph, grad, params);
}

// ---------------------------------------------------------------------------------------------
// External bank of negatives
// ---------------------------------------------------------------------------------------------

/// InfoNCE of `queries` against their `keys` (N x d each, positive pairs row by row) and the
/// negatives in `bank` (N_bank x d, N_bank >= 0). One direction (queries are the anchors).
/// Cost: 2 N N_bank d flops for the value, 3x with grad_queries, 2 more GEMM passes with grad_bank.
template <class Policy, class TQ, class SpaceQ, class TK, class SpaceK, class TB, class SpaceB>
std::remove_const_t<TQ> info_nce_with_bank(
    const Policy& policy, matrix_view<TQ, SpaceQ> queries, matrix_view<TK, SpaceK> keys, matrix_view<TB, SpaceB> bank,
    std::type_identity_t<gradient_output<std::remove_const_t<TQ>, SpaceQ>> grad_queries,
    std::type_identity_t<gradient_output<std::remove_const_t<TQ>, SpaceQ>> grad_keys,
    std::type_identity_t<gradient_output<std::remove_const_t<TQ>, SpaceQ>> grad_bank,
    const std::type_identity_t<info_nce_params<std::remove_const_t<TQ>>>& params = {}) {
  using T = std::remove_const_t<TQ>;
  detail::check_policy<Policy, SpaceQ, SpaceK, SpaceB>();
  static_assert(detail::is_real_v<T>, "cellkit::contrastive::info_nce_with_bank: embeddings must be float or double");
  static_assert(std::is_same_v<std::remove_const_t<TK>, T> && std::is_same_v<std::remove_const_t<TB>, T>,
                "cellkit::contrastive::info_nce_with_bank: queries, keys and bank need one type");
  constexpr const char* fn = "info_nce_with_bank";
  const auto opt = detail::check_info_nce_params(fn, params);
  const matrix_view<const T, SpaceQ> q(queries), k(keys), nb(bank);
  detail::check_same_shape<T>(fn, "queries", q, "keys", k, "queries and keys must have the same shape");
  expect_shapes(nb.cols() == q.cols(), fn, "bank", nb.shape(), "queries", q.shape(),
                "the bank's rows must have the embedding dimension of the queries");
  detail::check_embeddings(policy, fn, "queries", q);
  detail::check_embeddings(policy, fn, "keys", k);
  detail::check_finite_on(policy, fn, "bank", nb);
  detail::check_output_shape(fn, "grad_queries", grad_queries, "queries", q.shape());
  detail::check_output_shape(fn, "grad_keys", grad_keys, "keys", k.shape());
  detail::check_output_shape(fn, "grad_bank", grad_bank, "bank", nb.shape());
  detail::check_no_overlap(fn, "grad_queries", grad_queries, "grad_keys", grad_keys);
  detail::check_no_overlap(fn, "grad_queries", grad_queries, "grad_bank", grad_bank);
  detail::check_no_overlap(fn, "grad_keys", grad_keys, "grad_bank", grad_bank);
  if constexpr (is_device_policy_v<Policy>) {
    return static_cast<T>(detail::portable_bank_info_nce(policy, q, k, nb, grad_queries, grad_keys, grad_bank, opt));
  } else {
    return static_cast<T>(detail::bank_info_nce<T>(::cellkit::detail::host_threads(policy), q, k, nb, grad_queries,
                                                   grad_keys, grad_bank, opt));
  }
}

/// `info_nce_with_bank` with `default_host_policy()`.
template <class TQ, class TK, class TB>
std::remove_const_t<TQ> info_nce_with_bank(
    matrix_view<TQ> queries, matrix_view<TK> keys, matrix_view<TB> bank,
    std::type_identity_t<gradient_output<std::remove_const_t<TQ>>> grad_queries,
    std::type_identity_t<gradient_output<std::remove_const_t<TQ>>> grad_keys,
    std::type_identity_t<gradient_output<std::remove_const_t<TQ>>> grad_bank,
    const std::type_identity_t<info_nce_params<std::remove_const_t<TQ>>>& params = {}) {
  return info_nce_with_bank(default_host_policy(), queries, keys, bank, grad_queries, grad_keys, grad_bank, params);
}

}  // namespace cellkit::contrastive
