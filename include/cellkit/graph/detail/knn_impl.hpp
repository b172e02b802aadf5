#pragma once
/// @file
/// Internals of knn.hpp: candidate lists, GEMM tiles and their scans, exact refinement.
///
/// Scores. Euclidean: rows are centred (distances do not change; the expansion below loses less to
/// cancellation), n_j = |x_j|^2, and the ranking score of candidate j for row i is n_j - 2 x_i.x_j
/// (= |x_i - x_j|^2 - n_i). Cosine: rows are scaled to unit length and the score is -u_i.u_j.
/// The products come from serial GEMMs on fixed tiles, so every (row, candidate) score has the same
/// bits whatever the thread count. Each row keeps the `kc` = k + margin best (score, index) pairs
/// in a sorted list (ties broken by the lower index: a strict total order, so the kept set does not
/// depend on the order candidates arrive in). The kept candidates are then re-ranked by exact
/// distances computed in double from the original rows, and the best k are returned.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/math_impl.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/detail/common.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <cstring>
#include <limits>
#include <mutex>
#include <type_traits>
#include <vector>

namespace cellkit::graph::detail {

/// Rows per tile side in the symmetric (single set) search and query rows per block otherwise.
inline constexpr index_t knn_tile_rows = 512;
/// Candidate rows per tile in the query-block search.
inline constexpr index_t knn_tile_cols = 2048;
/// Extra candidates kept per row for the exact re-ranking.
inline constexpr index_t knn_margin = 8;

/// The index of an unfilled slot of a candidate list (sorts after every real candidate).
inline constexpr std::int64_t no_candidate = INT64_MAX;

/// Inserts (s, j) into the sorted list (score, index) of kc entries if it beats the last entry.
template <class T>
CELLKIT_HD void insert_candidate(T* score, std::int64_t* index, index_t kc, T s, std::int64_t j) {
  index_t pos = kc - 1;
  if (!(s < score[pos] || (s == score[pos] && j < index[pos]))) return;
  while (pos > 0 && (s < score[pos - 1] || (s == score[pos - 1] && j < index[pos - 1]))) {
    score[pos] = score[pos - 1];
    index[pos] = index[pos - 1];
    --pos;
  }
  score[pos] = s;
  index[pos] = j;
}

/// Sorted candidate lists of `kc` entries per list.
template <class T>
struct candidate_lists {
  index_t kc = 0;
  host_buffer<T> score;
  host_buffer<std::int64_t> index;
  host_buffer<T> worst;  ///< score of the last entry of each list (the admission threshold)

  candidate_lists(index_t lists, index_t kc_)
      : kc(kc_), score(lists * kc_, uninitialized), index(lists * kc_, uninitialized), worst(lists, uninitialized) {
    std::fill(score.begin(), score.end(), std::numeric_limits<T>::infinity());
    std::fill(index.begin(), index.end(), no_candidate);
    std::fill(worst.begin(), worst.end(), std::numeric_limits<T>::infinity());
  }

  /// Inserts (s, j) into list r if it beats the last entry in (score, index) order.
  void insert(index_t r, T s, std::int64_t j) {
    insert_candidate(score.data() + r * kc, index.data() + r * kc, kc, s, j);
    worst[r] = score[r * kc + kc - 1];
  }
};

/// 64-byte chunks of scores (16 floats or 8 doubles) compared with thresholds; the result is a
/// bit mask of the lanes that pass. AVX-512 intrinsics where available, a plain loop elsewhere.
/// Only a filter: every passing lane is re-checked with the scalar score before insertion.
template <class T>
struct score_chunk {
  static constexpr index_t lanes = 64 / static_cast<index_t>(sizeof(T));
  /// Lanes l with a * base[l] + b * s[l] <= threshold (base may be null: then b * s[l]).
  static std::uint32_t mask_le(const T* base, T a, const T* s, T b, T threshold) {
#if defined(__AVX512F__) && !CELLKIT_CUDA_COMPILER
    if constexpr (std::is_same_v<T, float>) {
      const __m512 offset = base ? _mm512_mul_ps(_mm512_set1_ps(a), _mm512_loadu_ps(base)) : _mm512_setzero_ps();
      const __m512 score = _mm512_fmadd_ps(_mm512_set1_ps(b), _mm512_loadu_ps(s), offset);
      return _mm512_cmp_ps_mask(score, _mm512_set1_ps(threshold), _CMP_LE_OQ);
    } else {
      const __m512d offset = base ? _mm512_mul_pd(_mm512_set1_pd(a), _mm512_loadu_pd(base)) : _mm512_setzero_pd();
      const __m512d score = _mm512_fmadd_pd(_mm512_set1_pd(b), _mm512_loadu_pd(s), offset);
      return _mm512_cmp_pd_mask(score, _mm512_set1_pd(threshold), _CMP_LE_OQ);
    }
#else
    std::uint32_t m = 0;
    for (index_t l = 0; l < lanes; ++l)
      m |= static_cast<std::uint32_t>((base ? a * base[l] : T(0)) + b * s[l] <= threshold) << l;
    return m;
#endif
  }
  /// Lanes l with c + b * s[l] <= thresholds[l].
  static std::uint32_t mask_le_each(T c, const T* s, T b, const T* thresholds) {
#if defined(__AVX512F__) && !CELLKIT_CUDA_COMPILER
    if constexpr (std::is_same_v<T, float>) {
      const __m512 score = _mm512_fmadd_ps(_mm512_set1_ps(b), _mm512_loadu_ps(s), _mm512_set1_ps(c));
      return _mm512_cmp_ps_mask(score, _mm512_loadu_ps(thresholds), _CMP_LE_OQ);
    } else {
      const __m512d score = _mm512_fmadd_pd(_mm512_set1_pd(b), _mm512_loadu_pd(s), _mm512_set1_pd(c));
      return _mm512_cmp_pd_mask(score, _mm512_loadu_pd(thresholds), _CMP_LE_OQ);
    }
#else
    std::uint32_t m = 0;
    for (index_t l = 0; l < lanes; ++l) m |= static_cast<std::uint32_t>(c + b * s[l] <= thresholds[l]) << l;
    return m;
#endif
  }
};

inline int lowest_bit(std::uint32_t m) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctz(m);
#else
  int l = 0;
  while (!(m & 1u)) {
    m >>= 1;
    ++l;
  }
  return l;
#endif
}

/// Row pass over a tile S (rows = queries q0.., columns = candidates with ids cand_id[j] and norms
/// cand_norm[j]): list `list_of(query)` receives (cand_norm[j] - 2 S_ij) or -S_ij.
template <class T, class ListOf>
void scan_tile_rows(const T* s, index_t ldS, index_t rows, index_t cols, index_t q0, const T* cand_norm,
                    const std::int64_t* cand_id, bool cosine, candidate_lists<T>& lists, ListOf list_of) {
  using chunk = score_chunk<T>;
  constexpr index_t lanes = chunk::lanes;
  const T b = cosine ? T(-1) : T(-2);
  const T a = cosine ? T(0) : T(1);
  const index_t full = cols - cols % lanes;
  for (index_t i = 0; i < rows; ++i) {
    const T* srow = s + i * ldS;
    const std::int64_t self = q0 + i;
    const index_t r = list_of(self);
    T threshold = lists.worst[r];
    auto consider = [&](index_t j) {
      const T score = a * cand_norm[j] + b * srow[j];
      if (score <= threshold && cand_id[j] != self) {
        lists.insert(r, score, cand_id[j]);
        threshold = lists.worst[r];
      }
    };
    for (index_t j0 = 0; j0 < full; j0 += lanes) {
      for (std::uint32_t m = chunk::mask_le(cosine ? nullptr : cand_norm + j0, a, srow + j0, b, threshold); m != 0;
           m &= m - 1) {
        consider(j0 + lowest_bit(m));
      }
    }
    for (index_t j = full; j < cols; ++j) consider(j);
  }
}

/// Column pass (symmetric search): candidate row c0 + j of the tile receives query q0 + i with
/// score (query_norm[i] - 2 S_ij) or -S_ij. Lists are indexed by node.
template <class T>
void scan_tile_columns(const T* s, index_t ldS, index_t rows, index_t cols, index_t q0, index_t c0, const T* query_norm,
                       bool cosine, candidate_lists<T>& lists) {
  using chunk = score_chunk<T>;
  constexpr index_t lanes = chunk::lanes;
  const T* worst = lists.worst.data() + c0;
  const T b = cosine ? T(-1) : T(-2);
  const index_t full = cols - cols % lanes;
  for (index_t i = 0; i < rows; ++i) {
    const T* srow = s + i * ldS;
    const T qn = cosine ? T(0) : query_norm[i];
    auto consider = [&](index_t j) {
      const T score = qn + b * srow[j];
      if (score <= worst[j]) lists.insert(c0 + j, score, q0 + i);
    };
    for (index_t j0 = 0; j0 < full; j0 += lanes) {
      for (std::uint32_t m = chunk::mask_le_each(qn, srow + j0, b, worst + j0); m != 0; m &= m - 1) {
        consider(j0 + lowest_bit(m));
      }
    }
    for (index_t j = full; j < cols; ++j) consider(j);
  }
}

/// Symmetric search of one point set against itself: tile pairs (B, C), B <= C, each one serial
/// GEMM; the tile updates the lists of B's rows (row pass) and, for B < C, of C's rows (column
/// pass). Lists of a block are updated under that block's lock. `x` is the working matrix (centred
/// or unit rows), `norms` its squared row norms (unused for cosine).
template <class Policy, class T>
void knn_symmetric_search(const Policy& policy, matrix_view<const T> x, const T* norms, bool cosine,
                          candidate_lists<T>& lists) {
  const index_t n = x.rows();
  const index_t b = knn_tile_rows;
  const index_t blocks = (n + b - 1) / b;
  std::vector<std::pair<index_t, index_t>> pairs;
  pairs.reserve(static_cast<std::size_t>(blocks * (blocks + 1) / 2));
  // Diagonal order (all pairs at distance 0, then 1, ...) spreads concurrent tiles over blocks.
  for (index_t gap = 0; gap < blocks; ++gap)
    for (index_t r = 0; r + gap < blocks; ++r) pairs.emplace_back(r, r + gap);
  std::vector<std::mutex> locks(static_cast<std::size_t>(blocks));
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = i;
  const int threads = host_threads(policy);
  std::vector<host_buffer<T>> tiles;
  for (int t = 0; t < threads; ++t) tiles.emplace_back(b * b, uninitialized);
  auto process = [&](index_t pair, int thread) {
    const auto [bq, bc] = pairs[static_cast<std::size_t>(pair)];
    const index_t q0 = bq * b, c0 = bc * b;
    const index_t rows = std::min(b, n - q0), cols = std::min(b, n - c0);
    T* s = tiles[static_cast<std::size_t>(thread)].data();
    gemm(serial{}, x.row_block(q0, rows), x.row_block(c0, cols), matrix_view<T>(s, rows, cols),
         gemm_params<T>{.transpose_b = true});
    {
      std::lock_guard<std::mutex> guard(locks[static_cast<std::size_t>(bq)]);
      scan_tile_rows(s, cols, rows, cols, q0, norms + c0, ids.data() + c0, cosine, lists,
                     [](std::int64_t q) { return static_cast<index_t>(q); });
    }
    if (bq != bc) {
      std::lock_guard<std::mutex> guard(locks[static_cast<std::size_t>(bc)]);
      scan_tile_columns(s, cols, rows, cols, q0, c0, norms + q0, cosine, lists);
    }
  };
  const auto count = static_cast<index_t>(pairs.size());
#if CELLKIT_HAS_OPENMP
  if (threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (index_t p = 0; p < count; ++p) process(p, omp_get_thread_num());
    return;
  }
#endif
  for (index_t p = 0; p < count; ++p) process(p, 0);
}

/// Query-block search: queries x (all rows) against a candidate set (rows `cand` with global ids
/// `cand_id` and norms `cand_norm`), filling list `list_base + query * list_stride`. Each thread
/// owns whole query blocks (no locks).
template <class Policy, class T>
void knn_block_search(const Policy& policy, matrix_view<const T> x, matrix_view<const T> cand, const T* cand_norm,
                      const std::int64_t* cand_id, bool cosine, candidate_lists<T>& lists, index_t list_stride,
                      index_t list_base) {
  const index_t n = x.rows();
  const index_t m = cand.rows();
  const index_t b = knn_tile_rows;
  const index_t c = knn_tile_cols;
  const index_t blocks = (n + b - 1) / b;
  const int threads = host_threads(policy);
  std::vector<host_buffer<T>> tiles;
  for (int t = 0; t < threads; ++t) tiles.emplace_back(b * c, uninitialized);
  auto process = [&](index_t blk, int thread) {
    const index_t q0 = blk * b;
    const index_t rows = std::min(b, n - q0);
    T* s = tiles[static_cast<std::size_t>(thread)].data();
    for (index_t c0 = 0; c0 < m; c0 += c) {
      const index_t cols = std::min(c, m - c0);
      gemm(serial{}, x.row_block(q0, rows), cand.row_block(c0, cols), matrix_view<T>(s, rows, cols),
           gemm_params<T>{.transpose_b = true});
      scan_tile_rows(s, cols, rows, cols, q0, cand_norm + c0, cand_id + c0, cosine, lists,
                     [&](std::int64_t q) { return list_base + static_cast<index_t>(q) * list_stride; });
    }
  };
#if CELLKIT_HAS_OPENMP
  if (threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (index_t blk = 0; blk < blocks; ++blk) process(blk, omp_get_thread_num());
    return;
  }
#endif
  for (index_t blk = 0; blk < blocks; ++blk) process(blk, 0);
}

/// Exact distance in double between rows i and j of the original data (Euclidean, or cosine
/// distance 1 - cos clipped to [0, 2]; 1 when either row is zero). Host and device.
template <class T, class Space>
CELLKIT_HD double exact_distance(matrix_view<const T, Space> x, const double* inv_norm, index_t i, index_t j,
                                 bool cosine) {
  const index_t d = x.cols();
  if (cosine) {
    if (inv_norm[i] == 0.0 || inv_norm[j] == 0.0) return 1.0;
    double dot = 0;
    for (index_t c = 0; c < d; ++c) dot += static_cast<double>(x(i, c)) * static_cast<double>(x(j, c));
    const double v = 1.0 - dot * inv_norm[i] * inv_norm[j];
    return v < 0.0 ? 0.0 : (v > 2.0 ? 2.0 : v);
  }
  double s = 0;
  for (index_t c = 0; c < d; ++c) {
    const double diff = static_cast<double>(x(i, c)) - static_cast<double>(x(j, c));
    s += diff * diff;
  }
  return math::detail::sqrt_(s);
}

/// Re-ranks the candidates ix[0, count) of `query` (count: up to kc, ended early by no_candidate) by
/// exact distance: dist[p] gets each one's distance and both arrays end sorted by (distance, index).
/// Returns count. Host and device.
template <class T, class Space>
CELLKIT_HD index_t rank_by_exact_distance(matrix_view<const T, Space> x, const double* inv_norm, bool cosine,
                                          index_t query, std::int64_t* ix, double* dist, index_t kc) {
  index_t count = 0;
  for (; count < kc && ix[count] != no_candidate; ++count) {
    const std::int64_t j = ix[count];
    dist[count] = math::detail::inf<double>();  // the open slot the list grows into
    insert_candidate(dist, ix, count + 1, exact_distance(x, inv_norm, query, static_cast<index_t>(j), cosine), j);
  }
  return count;
}

/// mean[c] = (sum_i x(i, c)) / n in double, rows in order.
template <class T, class Space>
struct column_mean_fn {
  matrix_view<const T, Space> x;
  double* mean;
  CELLKIT_HD void operator()(index_t c) const {
    double s = 0;
    for (index_t i = 0; i < x.rows(); ++i) s += static_cast<double>(x(i, c));
    mean[c] = s / static_cast<double>(x.rows() > 0 ? x.rows() : 1);
  }
};

/// Row i of the working matrix (centred or unit length), its squared norm (Euclidean) and the
/// inverse norm of the original row in double (as knn_impl.hpp's prepare_working).
template <class T, class Space>
struct working_row_fn {
  matrix_view<const T, Space> x;
  const double* mean;  ///< nullptr for cosine
  matrix_view<T, Space> work;
  T* norms;
  double* inv_norm;
  CELLKIT_HD void operator()(index_t i) const {
    const index_t d = x.cols();
    double sq = 0;
    for (index_t c = 0; c < d; ++c) sq += static_cast<double>(x(i, c)) * static_cast<double>(x(i, c));
    inv_norm[i] = sq > 0 ? 1.0 / math::detail::sqrt_(sq) : 0.0;
    if (mean == nullptr) {
      for (index_t c = 0; c < d; ++c) work(i, c) = static_cast<T>(static_cast<double>(x(i, c)) * inv_norm[i]);
      norms[i] = T(0);
    } else {
      for (index_t c = 0; c < d; ++c) work(i, c) = static_cast<T>(static_cast<double>(x(i, c)) - mean[c]);
      T s = T(0);
      for (index_t c = 0; c < d; ++c) s += work(i, c) * work(i, c);
      norms[i] = s;
    }
  }
};

/// The working matrix: centred rows and squared norms (Euclidean) or unit rows (cosine); also the
/// inverse norms in double for the exact pass.
template <class Policy, class T>
void prepare_working(const Policy& policy, matrix_view<const T> x, bool cosine, host_buffer<T>& work,
                     host_buffer<T>& norms, host_buffer<double>& inv_norm) {
  const index_t n = x.rows(), d = x.cols();
  work = host_buffer<T>(n * d, uninitialized);
  norms = host_buffer<T>(n, uninitialized);
  inv_norm = host_buffer<double>(n, uninitialized);
  std::vector<double> mean(static_cast<std::size_t>(cosine ? 0 : d));
  if (!cosine)
    for (index_t c = 0; c < d; ++c) column_mean_fn<T, host_space>{x, mean.data()}(c);
  const working_row_fn<T, host_space> row{x, cosine ? nullptr : mean.data(), work.as_matrix(n, d), norms.data(),
                                          inv_norm.data()};
  parallel_for(policy, n, [&](index_t i) { row(i); });
}

/// Re-ranks list r (ids in lists.index) by exact distance; writes the best `k` (distance, index) to
/// out_index / out_distance (ties: lower index first). Unfilled slots (no_candidate) are skipped.
template <class T, class Index>
index_t refine_list(matrix_view<const T> x, const double* inv_norm, bool cosine, const candidate_lists<T>& lists,
                    index_t r, index_t query, index_t k, Index* out_index, T* out_distance) {
  const index_t kc = lists.kc;
  std::int64_t ix_buffer[256];
  double dist_buffer[256];
  std::vector<std::int64_t> ix_heap;
  std::vector<double> dist_heap;
  std::int64_t* ix = ix_buffer;
  double* dist = dist_buffer;
  if (kc > 256) {
    ix_heap.resize(static_cast<std::size_t>(kc));
    dist_heap.resize(static_cast<std::size_t>(kc));
    ix = ix_heap.data();
    dist = dist_heap.data();
  }
  std::copy(lists.index.data() + r * kc, lists.index.data() + (r + 1) * kc, ix);
  const index_t keep = std::min(k, rank_by_exact_distance(x, inv_norm, cosine, query, ix, dist, kc));
  for (index_t p = 0; p < keep; ++p) {
    out_index[p] = static_cast<Index>(ix[p]);
    out_distance[p] = static_cast<T>(dist[p]);
  }
  return keep;
}

}  // namespace cellkit::graph::detail
