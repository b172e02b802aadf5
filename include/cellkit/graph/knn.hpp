#pragma once
/// @file
/// Exact k-nearest-neighbour graphs by blocked brute force on the GEMM primitive.
///
/// `knn_search(policy, X, params)` returns, for every row of X (n points x d features), its k
/// nearest other rows, sorted by distance with ties broken by the lower index. `knn_graph` turns
/// them into a `csr_graph` with weights and symmetrisation; `knn_search_batched` is the
/// batch-balanced variant (BBKNN: k neighbours from each batch).
///
/// Metrics: Euclidean distance ||x_i - x_j||, cosine distance 1 - x_i.x_j / (|x_i| |x_j|) (1 when a
/// row is zero, clipped to [0, 2], as scikit-learn).
///
/// Algorithm. Squared distances expand to |x_i|^2 + |x_j|^2 - 2 x_i.x_j; the products come from
/// serial `cellkit::gemm` calls on fixed 512 x 512 tiles of the (centred, or for cosine unit-length)
/// data, distributed over the policy's threads. Because the distance is symmetric only the tiles
/// on and above the diagonal are computed; each tile updates the candidate lists of both its row
/// block and its column block (under a per-block lock). Each point keeps its k + 8 best candidates
/// by the expanded score, which are then re-ranked by exact distances computed in double from the
/// original rows, so returned distances are accurate to rounding and near-ties are decided on
/// exact values. Every score has fixed bits (fixed tiles, serial GEMMs) and candidate lists use a
/// strict total order, so the result is identical for every thread count.
/// Cost: n^2 d flops (half the full product) + O(n (k + 8) d) for the re-ranking; memory: the working
/// copy (n d), the lists (n (k + 8) x 12 bytes) and one 1 MiB tile per thread: O(n (d + k)), never
/// O(n^2). The batched variant computes full (non-symmetric) tiles: n^2 d flops x 2.
///
/// Weights (`knn_weights`), for a directed entry (i, j) with distance d_ij:
/// - `binary`: 1.
/// - `distance`: d_ij.
/// - `gaussian`: exp(-d_ij^2 / (2 sigma^2)) with `gaussian_sigma` > 0; with `gaussian_sigma` = 0 the
///   self-tuning kernel exp(-d_ij^2 / (s_i s_j)), s_i = distance to i's k-th neighbour (and 1 / 0 for
///   d_ij = 0 / d_ij > 0 when s_i s_j = 0).
/// - `umap`: UMAP's fuzzy membership exp(-max(0, d_ij - rho_i) / sigma_i), with rho_i and sigma_i from
///   `smooth_knn_distances` (umap-learn's smooth_knn_dist with local_connectivity 1, bandwidth 1, 64
///   bisection steps, target log2(m + 1) for m non-self neighbours, i.e. umap-learn's n_neighbors =
///   m + 1 including the point itself). Self entries are dropped (weight 0 in umap-learn).
/// Symmetrisation (`knn_symmetrize`): `none` keeps the directed graph (row i = neighbours of i);
/// `union_edges` keeps an edge present in either direction, `mutual` only edges present in both.
/// Combining weights: max / min, except for `umap`, where union is the fuzzy union a + b - ab and
/// mutual the fuzzy intersection ab (UMAP's set_op_mix_ratio 1 and 0).
/// `include_self`: row i also lists i itself (distance 0) as its first neighbour, in addition to
/// its k nearest others (scikit-learn's kneighbors_graph(include_self=True) counts the point
/// among its k; here k always counts the other points).
///
/// Errors (`invalid_argument`, naming the argument): k < 1 or k >= n; a non-finite feature
/// (NaN or inf) in X, with its row and column; batch labels outside [0, n_batches); a batch with
/// too few points for k; n not representable in Index. Host policies, except the `knn_search`
/// overload that writes into views, which also runs under `cuda`; calls return when done.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/graph/detail/knn_impl.hpp>
#include <cellkit/graph/detail/portable_knn.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::graph {

enum class knn_metric { euclidean, cosine };
enum class knn_weights { binary, distance, gaussian, umap };
enum class knn_symmetrize { none, union_edges, mutual };

template <class T>
struct knn_params {
  index_t k = 15;  ///< neighbours per point (self not counted)
  knn_metric metric = knn_metric::euclidean;
  bool include_self = false;                         ///< also list the point itself, first
  knn_weights weights = knn_weights::binary;         ///< for knn_graph
  knn_symmetrize symmetrize = knn_symmetrize::none;  ///< for knn_graph
  T gaussian_sigma = T(0);                           ///< for gaussian weights; 0 = self-tuning
};

/// Neighbour lists: `k` per row (k + 1 with include_self), sorted by (distance, index).
template <class T, class Index = std::int32_t>
struct knn_neighbors {
  index_t n = 0;
  index_t k = 0;  ///< entries per row
  bool includes_self = false;
  host_buffer<Index> indices;  ///< n x k
  host_buffer<T> distances;    ///< n x k

  matrix_view<const Index> index_matrix() const { return indices.as_matrix(n, k); }
  matrix_view<const T> distance_matrix() const { return distances.as_matrix(n, k); }
};

namespace detail {

template <class Index>
void check_index_fits(const char* fn, index_t n) {
  CELLKIT_EXPECTS(static_cast<std::uint64_t>(n) <= static_cast<std::uint64_t>(std::numeric_limits<Index>::max()), fn,
                  "X", std::to_string(n) + " points do not fit the index type; use a wider Index");
}

template <class T>
void check_knn_input(const char* fn, matrix_view<const T> x, index_t k) {
  CELLKIT_EXPECTS(k >= 1, fn, "params.k", "must be >= 1, got " + std::to_string(k));
  CELLKIT_EXPECTS(
      k < x.rows(), fn, "params.k",
      "k = " + std::to_string(k) + " must be smaller than the number of points n = " + std::to_string(x.rows()));
  check_finite(fn, "X", x);
}

/// Puts self first when requested: rows of `k` others become rows of k + 1.
template <class T, class Index>
void finish_neighbors(knn_neighbors<T, Index>& out, const host_buffer<Index>& idx, const host_buffer<T>& dist,
                      index_t n, index_t k, bool include_self) {
  out.n = n;
  out.k = include_self ? k + 1 : k;
  out.includes_self = include_self;
  if (!include_self) {
    out.indices = host_buffer<Index>(n * k, uninitialized);
    out.distances = host_buffer<T>(n * k, uninitialized);
    std::copy(idx.begin(), idx.end(), out.indices.begin());
    std::copy(dist.begin(), dist.end(), out.distances.begin());
    return;
  }
  out.indices = host_buffer<Index>(n * (k + 1), uninitialized);
  out.distances = host_buffer<T>(n * (k + 1), uninitialized);
  for (index_t i = 0; i < n; ++i) {
    out.indices[i * (k + 1)] = static_cast<Index>(i);
    out.distances[i * (k + 1)] = T(0);
    std::copy(idx.begin() + i * k, idx.begin() + (i + 1) * k, out.indices.begin() + i * (k + 1) + 1);
    std::copy(dist.begin() + i * k, dist.begin() + (i + 1) * k, out.distances.begin() + i * (k + 1) + 1);
  }
}

}  // namespace detail

/// The k nearest other points of every row of X (see the file comment). Deterministic for every
/// thread count. Uses params.k, params.metric and params.include_self.
template <class Index = std::int32_t, class Policy, class TX>
knn_neighbors<std::remove_const_t<TX>, Index> knn_search(const Policy& policy, matrix_view<TX> x_in,
                                                         const knn_params<std::remove_const_t<TX>>& params) {
  detail::require_host_policy<Policy>();
  using T = std::remove_const_t<TX>;
  static_assert(std::is_floating_point_v<T>, "knn_search: X must hold float or double");
  constexpr const char* fn = "knn_search";
  matrix_view<const T> x(x_in);
  detail::check_knn_input(fn, x, params.k);
  detail::check_index_fits<Index>(fn, x.rows());
  const index_t n = x.rows();
  const index_t k = params.k;
  const bool cosine = params.metric == knn_metric::cosine;
  host_buffer<T> work, norms;
  host_buffer<double> inv_norm;
  detail::prepare_working(policy, x, cosine, work, norms, inv_norm);
  const index_t kc = std::min(n - 1, k + detail::knn_margin);
  detail::candidate_lists<T> lists(n, kc);
  detail::knn_symmetric_search(policy, matrix_view<const T>(work.data(), n, x.cols()), norms.data(), cosine, lists);
  host_buffer<Index> idx(n * k, uninitialized);
  host_buffer<T> dist(n * k, uninitialized);
  detail::parallel_for(policy, n, [&](index_t i) {
    detail::refine_list<T, Index>(x, inv_norm.data(), cosine, lists, i, i, k, idx.data() + i * k, dist.data() + i * k);
  });
  knn_neighbors<T, Index> out;
  detail::finish_neighbors(out, idx, dist, n, k, params.include_self);
  return out;
}

/// `knn_search` into arrays in the policy's memory space, for every policy (with `cuda`, device
/// views): `indices` and `distances` are n x k, or n x (k + 1) with include_self, rows sorted by
/// (distance, index) as above. Host policies run the search above and copy; `cuda` runs the
/// portable search of detail/portable_knn.hpp (per block of about 2^24 scores one GEMM, candidate
/// lists per chunk of 1024 columns, the same exact re-ranking in double), which finds the same
/// neighbours except where exact distances tie within rounding of the expanded scores at the
/// edge of the k + 8 kept candidates. Synchronises (X's finiteness is one reduction).
template <class Policy, class TX, class Index, class T, class Space>
void knn_search(const Policy& policy, matrix_view<TX, Space> x_in, matrix_view<Index, Space> indices,
                matrix_view<T, Space> distances, const std::type_identity_t<knn_params<T>>& params) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  static_assert(std::is_same_v<std::remove_const_t<TX>, T>, "knn_search: X and distances must have the same type");
  static_assert(std::is_integral_v<Index>, "knn_search: indices must be integers");
  constexpr const char* fn = "knn_search";
  const matrix_view<const T, Space> x(x_in);
  const index_t n = x.rows();
  CELLKIT_EXPECTS(params.k >= 1, fn, "params.k", "must be >= 1, got " + std::to_string(params.k));
  CELLKIT_EXPECTS(
      params.k < n, fn, "params.k",
      "k = " + std::to_string(params.k) + " must be smaller than the number of points n = " + std::to_string(n));
  detail::check_index_fits<Index>(fn, n);
  const index_t width = params.include_self ? params.k + 1 : params.k;
  expect_shapes(indices.rows() == n && indices.cols() == width, fn, "indices", indices.shape(), "n x k", {n, width},
                "one row of k (k + 1 with include_self) neighbours per point");
  expect_shapes(distances.rows() == n && distances.cols() == width, fn, "distances", distances.shape(), "n x k",
                {n, width}, "one row of k (k + 1 with include_self) distances per point");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_knn_search(policy, x, indices, distances, params.k, params.metric == knn_metric::cosine,
                                params.include_self);
  } else {
    detail::require_host_policy<Policy>();
    const auto nb = knn_search<Index>(policy, x, params);
    for (index_t i = 0; i < n; ++i)
      for (index_t c = 0; c < width; ++c) {
        indices(i, c) = nb.indices[i * width + c];
        distances(i, c) = nb.distances[i * width + c];
      }
  }
}

/// Batch-balanced neighbours (BBKNN): for every row, its `params.k` nearest points within each
/// batch (itself excluded), so rows hold k x n_batches entries, sorted by (distance, index).
/// `batch[i]` in [0, n_batches); every batch needs at least k + 1 points.
/// With include_self the point itself is prepended. Full (non-symmetric) tiles: 2 n^2 d flops.
template <class Index = std::int32_t, class Policy, class TX, class Label>
knn_neighbors<std::remove_const_t<TX>, Index> knn_search_batched(const Policy& policy, matrix_view<TX> x_in,
                                                                 vector_view<Label> batch, index_t n_batches,
                                                                 const knn_params<std::remove_const_t<TX>>& params) {
  detail::require_host_policy<Policy>();
  using T = std::remove_const_t<TX>;
  static_assert(std::is_integral_v<std::remove_const_t<Label>>, "knn_search_batched: batch labels must be integers");
  constexpr const char* fn = "knn_search_batched";
  matrix_view<const T> x(x_in);
  const index_t n = x.rows();
  const index_t k = params.k;
  CELLKIT_EXPECTS(k >= 1, fn, "params.k", "must be >= 1, got " + std::to_string(k));
  CELLKIT_EXPECTS(n_batches >= 1, fn, "n_batches", "must be >= 1, got " + std::to_string(n_batches));
  expect_shapes(batch.size() == n, fn, "batch", batch.shape(), "X", x.shape(), "one batch label per row of X");
  detail::check_finite(fn, "X", x);
  detail::check_index_fits<Index>(fn, n);
  std::vector<std::vector<std::int64_t>> members(static_cast<std::size_t>(n_batches));
  for (index_t i = 0; i < n; ++i) {
    const auto b = static_cast<index_t>(batch[i]);
    CELLKIT_EXPECTS(b >= 0 && b < n_batches, fn, "batch",
                    "label " + std::to_string(b) + " of row " + std::to_string(i) + " is outside [0, " +
                        std::to_string(n_batches) + ")");
    members[static_cast<std::size_t>(b)].push_back(i);
  }
  for (index_t b = 0; b < n_batches; ++b) {
    const auto size = static_cast<index_t>(members[static_cast<std::size_t>(b)].size());
    CELLKIT_EXPECTS(size >= k + 1, fn, "params.k",
                    "batch " + std::to_string(b) + " has " + std::to_string(size) + " points; k = " +
                        std::to_string(k) + " neighbours per batch need at least k + 1 points in every batch");
  }
  const bool cosine = params.metric == knn_metric::cosine;
  host_buffer<T> work, norms;
  host_buffer<double> inv_norm;
  detail::prepare_working(policy, x, cosine, work, norms, inv_norm);
  const index_t d = x.cols();
  const index_t kc = k + detail::knn_margin;
  detail::candidate_lists<T> lists(n * n_batches, kc);
  for (index_t b = 0; b < n_batches; ++b) {
    const auto& ids = members[static_cast<std::size_t>(b)];
    const auto m = static_cast<index_t>(ids.size());
    host_buffer<T> cand(m * d, uninitialized);
    host_buffer<T> cand_norm(m, uninitialized);
    for (index_t p = 0; p < m; ++p) {
      const auto src = static_cast<index_t>(ids[static_cast<std::size_t>(p)]);
      std::copy(work.data() + src * d, work.data() + (src + 1) * d, cand.data() + p * d);
      cand_norm[p] = norms[src];
    }
    detail::knn_block_search(policy, matrix_view<const T>(work.data(), n, d), matrix_view<const T>(cand.data(), m, d),
                             cand_norm.data(), ids.data(), cosine, lists, n_batches, b);
  }
  const index_t total = k * n_batches;
  host_buffer<Index> idx(n * total, uninitialized);
  host_buffer<T> dist(n * total, uninitialized);
  detail::parallel_for(policy, n, [&](index_t i) {
    Index* row_idx = idx.data() + i * total;
    T* row_dist = dist.data() + i * total;
    for (index_t b = 0; b < n_batches; ++b)
      detail::refine_list<T, Index>(x, inv_norm.data(), cosine, lists, i * n_batches + b, i, k, row_idx + b * k,
                                    row_dist + b * k);
    // Merge the per-batch lists into one (distance, index) order.
    std::vector<std::pair<T, Index>> merged(static_cast<std::size_t>(total));
    for (index_t p = 0; p < total; ++p) merged[static_cast<std::size_t>(p)] = {row_dist[p], row_idx[p]};
    std::sort(merged.begin(), merged.end());
    for (index_t p = 0; p < total; ++p) {
      row_dist[p] = merged[static_cast<std::size_t>(p)].first;
      row_idx[p] = merged[static_cast<std::size_t>(p)].second;
    }
  });
  knn_neighbors<T, Index> out;
  detail::finish_neighbors(out, idx, dist, n, total, params.include_self);
  return out;
}

/// UMAP's per-point bandwidths (umap-learn `smooth_knn_dist`, local_connectivity 1, bandwidth 1,
/// 64 steps, tolerance 1e-5, minimum scale 1e-3 x mean distance): for the m non-self distances of
/// row i (self entries, index == i, are skipped), rho_i = the smallest positive distance and sigma_i
/// solves sum_j exp(-max(0, d_ij - rho_i) / sigma_i) = log2(m + 1) by bisection. Computed in double.
template <class T, class Index>
void smooth_knn_distances(const knn_neighbors<T, Index>& nb, std::vector<double>& sigma, std::vector<double>& rho) {
  const index_t n = nb.n;
  const index_t kk = nb.k;
  sigma.assign(static_cast<std::size_t>(n), 0.0);
  rho.assign(static_cast<std::size_t>(n), 0.0);
  // umap-learn's distance rows include the point itself at distance 0 in column 0.
  const index_t width = nb.includes_self ? kk : kk + 1;
  double total = 0;
  for (index_t i = 0; i < n; ++i)
    for (index_t p = 0; p < kk; ++p) total += static_cast<double>(nb.distances[i * kk + p]);
  const double mean_all = total / static_cast<double>(n * width);
  const double target = std::log2(static_cast<double>(width));
  std::vector<double> row(static_cast<std::size_t>(width));
  for (index_t i = 0; i < n; ++i) {
    row[0] = 0.0;
    index_t w = 1;
    for (index_t p = 0; p < kk; ++p)
      if (static_cast<index_t>(nb.indices[i * kk + p]) != i)
        row[static_cast<std::size_t>(w++)] = nb.distances[i * kk + p];
    double r = 0.0;
    for (index_t p = 0; p < w; ++p)
      if (row[static_cast<std::size_t>(p)] > 0.0) {
        r = row[static_cast<std::size_t>(p)];
        break;
      }
    double lo = 0.0, hi = std::numeric_limits<double>::infinity(), mid = 1.0;
    for (int it = 0; it < 64; ++it) {
      double psum = 0.0;
      for (index_t p = 1; p < w; ++p) {
        const double dd = row[static_cast<std::size_t>(p)] - r;
        psum += dd > 0 ? std::exp(-(dd / mid)) : 1.0;
      }
      if (std::fabs(psum - target) < 1e-5) break;
      if (psum > target) {
        hi = mid;
        mid = (lo + hi) / 2.0;
      } else {
        lo = mid;
        mid = std::isinf(hi) ? mid * 2 : (lo + hi) / 2.0;
      }
    }
    double mean_row = 0;
    for (index_t p = 0; p < w; ++p) mean_row += row[static_cast<std::size_t>(p)];
    mean_row /= static_cast<double>(w);
    const double floor_scale = 1e-3 * (r > 0.0 ? mean_row : mean_all);
    sigma[static_cast<std::size_t>(i)] = std::max(mid, floor_scale);
    rho[static_cast<std::size_t>(i)] = r;
  }
}

/// A graph from neighbour lists: weights and symmetrisation from `params` (see the file comment).
template <class Policy, class T, class Index>
csr_graph<T, Index> knn_graph_from_neighbors(const Policy& policy, const knn_neighbors<T, Index>& nb,
                                             const knn_params<T>& params) {
  detail::require_host_policy<Policy>();
  constexpr const char* fn = "knn_graph";
  const index_t n = nb.n;
  const index_t kk = nb.k;
  const bool umap = params.weights == knn_weights::umap;
  CELLKIT_EXPECTS(params.weights != knn_weights::gaussian || params.gaussian_sigma >= T(0), fn, "params.gaussian_sigma",
                  "must be >= 0 (0 = self-tuning)");
  std::vector<double> sigma, rho;
  if (umap) smooth_knn_distances(nb, sigma, rho);
  std::vector<double> scale;  // self-tuning Gaussian: distance to the k-th other neighbour
  if (params.weights == knn_weights::gaussian && params.gaussian_sigma == T(0)) {
    scale.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i)
      scale[static_cast<std::size_t>(i)] = static_cast<double>(nb.distances[i * kk + kk - 1]);
  }
  auto weight = [&](index_t i, index_t j, double d) -> T {
    switch (params.weights) {
      case knn_weights::binary:
        return T(1);
      case knn_weights::distance:
        return static_cast<T>(d);
      case knn_weights::gaussian: {
        if (params.gaussian_sigma > T(0)) {
          const double s = static_cast<double>(params.gaussian_sigma);
          return static_cast<T>(std::exp(-d * d / (2 * s * s)));
        }
        const double ss = scale[static_cast<std::size_t>(i)] * scale[static_cast<std::size_t>(j)];
        if (ss == 0.0) return d == 0.0 ? T(1) : T(0);
        return static_cast<T>(std::exp(-d * d / ss));
      }
      case knn_weights::umap: {
        const double dd = d - rho[static_cast<std::size_t>(i)];
        const double s = sigma[static_cast<std::size_t>(i)];
        return static_cast<T>(dd <= 0.0 || s == 0.0 ? 1.0 : std::exp(-(dd / s)));
      }
    }
    return T(0);
  };
  // Directed graph, rows sorted by column.
  host_buffer<Index> indptr(n + 1);
  for (index_t i = 0; i < n; ++i) {
    index_t count = 0;
    for (index_t p = 0; p < kk; ++p) count += !(umap && static_cast<index_t>(nb.indices[i * kk + p]) == i);
    indptr[i + 1] = static_cast<Index>(static_cast<index_t>(indptr[i]) + count);
  }
  const auto nnz = static_cast<index_t>(indptr[n]);
  host_buffer<Index> indices(nnz, uninitialized);
  host_buffer<T> values(nnz, uninitialized);
  detail::parallel_for(policy, n, [&](index_t i) {
    std::vector<std::pair<Index, T>> row;
    row.reserve(static_cast<std::size_t>(kk));
    for (index_t p = 0; p < kk; ++p) {
      const auto j = static_cast<index_t>(nb.indices[i * kk + p]);
      if (umap && j == i) continue;
      row.emplace_back(static_cast<Index>(j), weight(i, j, static_cast<double>(nb.distances[i * kk + p])));
    }
    std::sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    index_t out = static_cast<index_t>(indptr[i]);
    for (const auto& [j, w] : row) {
      indices[out] = j;
      values[out++] = w;
    }
  });
  csr_graph<T, Index> directed(n, std::move(indptr), std::move(indices), std::move(values));
  if (params.symmetrize == knn_symmetrize::none) return directed;
  const bool union_edges = params.symmetrize == knn_symmetrize::union_edges;
  const symmetrize_mode mode = umap ? (union_edges ? symmetrize_mode::fuzzy_union : symmetrize_mode::fuzzy_intersection)
                                    : (union_edges ? symmetrize_mode::max : symmetrize_mode::min);
  return symmetrize(policy, directed.view(), mode);
}

/// knn_search + knn_graph_from_neighbors.
template <class Index = std::int32_t, class Policy, class TX>
csr_graph<std::remove_const_t<TX>, Index> knn_graph(const Policy& policy, matrix_view<TX> x,
                                                    const knn_params<std::remove_const_t<TX>>& params) {
  const auto nb = knn_search<Index>(policy, x, params);
  return knn_graph_from_neighbors(policy, nb, params);
}

/// `knn_graph` with the best host policy.
template <class Index = std::int32_t, class TX>
csr_graph<std::remove_const_t<TX>, Index> knn_graph(matrix_view<TX> x,
                                                    const knn_params<std::remove_const_t<TX>>& params) {
  return knn_graph<Index>(default_host_policy(), x, params);
}

}  // namespace cellkit::graph
