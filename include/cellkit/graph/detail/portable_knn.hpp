#pragma once
/// @file
/// Exact kNN search written once for every policy (internal); the cuda policy runs it, the host
/// policies keep the tuned symmetric search of knn_impl.hpp and run this only in the tests.
///
/// The same scores as the host search: Euclidean rows centred (column means in double, summed in
/// row order), score n_j - 2 x_i.x_j; cosine rows scaled to unit length, score -u_i.u_j. Per block
/// of query rows one `cellkit::gemm` gives S = W_b W^T; each (query, chunk of candidates) keeps its
/// kc = k + margin best (score, index) pairs in a sorted list (strict total order, so the kept set
/// does not depend on the order), the chunk lists of a query are merged, and the kept candidates
/// are re-ranked by exact distances computed in double from the original rows (ties: lower index).
/// No atomics: one functor call owns each list. Memory: the working copy (n d), one block of S
/// (about 2^24 scores) and its chunk lists.

#include <cellkit/core/config.hpp>
#include <cellkit/core/copy.hpp>
#include <cellkit/core/detail/functors.hpp>
#include <cellkit/core/detail/math_impl.hpp>
#include <cellkit/core/detail/scratch.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>
#include <cellkit/graph/detail/knn_impl.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

namespace cellkit::graph::detail {

/// List (r, chunk) of a block: the kc best candidates j in [chunk * width, ...) of query first + r.
template <class T, class Space>
struct chunk_candidates_fn {
  matrix_view<const T, Space> s;  ///< block rows x n
  const T* norms;                 ///< nullptr for cosine
  index_t first, width, chunks, kc;
  T* score;
  std::int64_t* index;
  CELLKIT_HD void operator()(index_t e) const {
    const index_t r = e / chunks, chunk = e - r * chunks;
    T* sc = score + e * kc;
    std::int64_t* ix = index + e * kc;
    for (index_t p = 0; p < kc; ++p) {
      sc[p] = math::detail::inf<T>();
      ix[p] = no_candidate;
    }
    const index_t query = first + r;
    const index_t begin = chunk * width, end = begin + width < s.cols() ? begin + width : s.cols();
    for (index_t j = begin; j < end; ++j) {
      if (j == query) continue;
      const T value = norms ? norms[j] - T(2) * s(r, j) : -s(r, j);
      insert_candidate(sc, ix, kc, value, static_cast<std::int64_t>(j));
    }
  }
};

/// Merges the chunk lists of query first + r, re-ranks the kept candidates by exact distance in
/// double and writes the best k (after the point itself when include_self).
template <class T, class Index, class Space>
struct refine_candidates_fn {
  matrix_view<const T, Space> x;  ///< the original rows
  const double* inv_norm;
  bool cosine;
  index_t first, chunks, kc, k;
  bool include_self;
  const T* chunk_score;
  const std::int64_t* chunk_index;
  T* merged_score;             ///< kc per row of the block
  std::int64_t* merged_index;  ///< kc per row of the block
  double* distance;            ///< kc per row of the block
  matrix_view<Index, Space> out_index;
  matrix_view<T, Space> out_distance;
  CELLKIT_HD void operator()(index_t r) const {
    const index_t query = first + r;
    T* sc = merged_score + r * kc;
    std::int64_t* ix = merged_index + r * kc;
    double* dist = distance + r * kc;
    for (index_t p = 0; p < kc; ++p) {
      sc[p] = math::detail::inf<T>();
      ix[p] = no_candidate;
    }
    for (index_t c = 0; c < chunks; ++c) {
      const T* cs = chunk_score + (r * chunks + c) * kc;
      const std::int64_t* ci = chunk_index + (r * chunks + c) * kc;
      for (index_t p = 0; p < kc && ci[p] != no_candidate; ++p) insert_candidate(sc, ix, kc, cs[p], ci[p]);
    }
    rank_by_exact_distance(x, inv_norm, cosine, query, ix, dist, kc);
    index_t col = 0;
    if (include_self) {
      out_index(query, col) = static_cast<Index>(query);
      out_distance(query, col++) = T(0);
    }
    for (index_t p = 0; p < k; ++p, ++col) {
      out_index(query, col) = static_cast<Index>(ix[p]);
      out_distance(query, col) = static_cast<T>(dist[p]);
    }
  }
};

/// Tiling of the portable search; the defaults aim at the device (the tests use small tiles).
struct knn_tiling {
  index_t block_scores = index_t(1) << 24;  ///< scores per block of S (rows = this / n, >= 1)
  index_t chunk = 1024;                     ///< candidates per chunk list
};

/// knn_search into out_index / out_distance (n x k, or n x (k + 1) with include_self); arguments
/// other than X's values checked by the caller. X's values are checked here (device: one
/// reduction, and the bad element copied back).
template <class Policy, class T, class Index, class Space>
void portable_knn_search(const Policy& policy, matrix_view<const T, Space> x, matrix_view<Index, Space> out_index,
                         matrix_view<T, Space> out_distance, index_t k, bool cosine, bool include_self,
                         knn_tiling tiling = {}) {
  using cellkit::detail::make_scratch;
  const index_t n = x.rows(), d = x.cols();
  if (x.rows() > 0 && x.cols() > 0) {
    const index_t bad = transform_reduce(policy, n * d, cellkit::detail::no_element, min_op{},
                                         cellkit::detail::non_finite_element_fn<T, Space>{x});
    if (bad != cellkit::detail::no_element) {
      const index_t i = bad / d, c = bad - i * d;
      cellkit::detail::throw_invalid_argument(
          "knn_search", "X", "entry (" + std::to_string(i) + ", " + std::to_string(c) + ") is not finite (NaN or inf)");
    }
  }
  const index_t kc = std::min(n - 1, k + knn_margin);
  auto work = make_scratch<T, Space>(n * d);
  auto norms = make_scratch<T, Space>(n);
  auto inv_norm = make_scratch<double, Space>(n);
  auto mean = make_scratch<double, Space>(cosine ? 0 : d);
  const matrix_view<T, Space> wv(work.data(), n, d);
  if (!cosine) for_each_index(policy, d, column_mean_fn<T, Space>{x, mean.data()});
  for_each_index(policy, n,
                 working_row_fn<T, Space>{x, cosine ? nullptr : mean.data(), wv, norms.data(), inv_norm.data()});
  const index_t rows = std::clamp<index_t>(tiling.block_scores / std::max<index_t>(n, 1), 1, n);
  const index_t width = std::max<index_t>(tiling.chunk, 1);
  const index_t chunks = (n + width - 1) / width;
  auto s = make_scratch<T, Space>(rows * n);
  auto chunk_score = make_scratch<T, Space>(rows * chunks * kc);
  auto chunk_index = make_scratch<std::int64_t, Space>(rows * chunks * kc);
  auto merged_score = make_scratch<T, Space>(rows * kc);
  auto merged_index = make_scratch<std::int64_t, Space>(rows * kc);
  auto distance = make_scratch<double, Space>(rows * kc);
  const matrix_view<const T, Space> w(work.data(), n, d);
  for (index_t first = 0; first < n; first += rows) {
    const index_t b = std::min(rows, n - first);
    const matrix_view<T, Space> sv(s.data(), b, n);
    gemm(policy, w.row_block(first, b), w, sv, gemm_params<T>{.transpose_b = true});
    for_each_index(policy, b * chunks,
                   chunk_candidates_fn<T, Space>{sv, cosine ? nullptr : norms.data(), first, width, chunks, kc,
                                                 chunk_score.data(), chunk_index.data()});
    for_each_index(
        policy, b,
        refine_candidates_fn<T, Index, Space>{x, inv_norm.data(), cosine, first, chunks, kc, k, include_self,
                                              chunk_score.data(), chunk_index.data(), merged_score.data(),
                                              merged_index.data(), distance.data(), out_index, out_distance});
  }
  synchronize(policy);
}

}  // namespace cellkit::graph::detail
