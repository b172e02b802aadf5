#pragma once
/// @file
/// Internals of cellkit/metrics/silhouette.hpp.
///
/// The points are regrouped by cluster (a stable counting sort of the remapped labels) and centred
/// on their mean, so each cluster is one contiguous range of positions and the GEMM formula
/// ||x||^2 + ||y||^2 - 2 x.y works on small norms. `distance_block` turns a tile x tile block of
/// pairs into distances (GEMM, clamp, exact recomputation of close pairs, square roots); the
/// schedules `silhouette_symmetric` and `silhouette_by_row_tiles` decide which blocks are computed
/// and where their per-cluster sums go. The blocks, the GEMM calls (serial) and the summation
/// orders do not depend on the thread count, so neither do the results.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#if (defined(__x86_64__) || defined(_M_X64)) && !CELLKIT_DEVICE_CODE
#include <immintrin.h>
#define CELLKIT_SILHOUETTE_X86 1
#else
#define CELLKIT_SILHOUETTE_X86 0
#endif

namespace cellkit::metrics::detail::silhouette {

/// Points per tile: blocks of pairs are tile x tile (one GEMM call each); a block of distances
/// stays in the L2 cache between the GEMM and the sums.
inline constexpr index_t silhouette_tile = 256;

/// A pair is recomputed from coordinate differences when its GEMM squared distance is below this
/// fraction of ||x||^2 + ||y||^2 (norms of the centred points). Above it, the relative error of the
/// squared distance is at most about k eps / ratio (k = number of features, eps of the compute type).
template <class C>
inline constexpr C close_pair_ratio = std::is_same_v<C, float> ? C(1.0 / 64) : C(1.0 / 1024);

/// The clusters of the silhouette: labels sorted ascending become clusters 0 .. count-1, and the
/// points are listed cluster by cluster (original order inside a cluster).
struct silhouette_clusters {
  index_t count = 0;
  std::vector<index_t> order;  ///< order[p] = row of X of the p-th point in cluster order
  std::vector<index_t> start;  ///< cluster c occupies positions [start[c], start[c + 1])
};

template <class L>
auto widen_cluster_label(L value) {
  if constexpr (std::is_signed_v<L>) {
    return static_cast<std::int64_t>(value);
  } else {
    return static_cast<std::uint64_t>(value);
  }
}

/// Remaps arbitrary integer labels and groups the points by cluster. O(N log N).
template <class L>
silhouette_clusters group_by_cluster(std::span<const L> labels) {
  using W = decltype(widen_cluster_label(L{}));
  const auto n = static_cast<index_t>(labels.size());
  std::vector<W> distinct(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) distinct[i] = widen_cluster_label(labels[i]);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());

  silhouette_clusters clusters;
  clusters.count = static_cast<index_t>(distinct.size());
  std::vector<index_t> cluster_of(labels.size());
  clusters.start.assign(distinct.size() + 1, 0);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto c =
        std::lower_bound(distinct.begin(), distinct.end(), widen_cluster_label(labels[i])) - distinct.begin();
    cluster_of[i] = static_cast<index_t>(c);
    ++clusters.start[static_cast<std::size_t>(c) + 1];
  }
  for (std::size_t c = 0; c < distinct.size(); ++c) clusters.start[c + 1] += clusters.start[c];
  std::vector<index_t> next(clusters.start.begin(), clusters.start.end() - 1);
  clusters.order.resize(labels.size());
  for (index_t i = 0; i < n; ++i) {
    clusters
        .order[static_cast<std::size_t>(next[static_cast<std::size_t>(cluster_of[static_cast<std::size_t>(i)])]++)] = i;
  }
  return clusters;
}

/// v[j] = sqrt(v[j]) for v[j] >= 0. IEEE square roots are correctly rounded, so the SIMD and the
/// scalar paths give the same bits; the SIMD path exists because compilers do not vectorise
/// std::sqrt unless errno is switched off (-fno-math-errno).
inline void sqrt_in_place(double* v, index_t n) {
  index_t j = 0;
#if CELLKIT_SILHOUETTE_X86 && defined(__AVX512F__)
  for (; j + 8 <= n; j += 8) _mm512_storeu_pd(v + j, _mm512_sqrt_pd(_mm512_loadu_pd(v + j)));
#elif CELLKIT_SILHOUETTE_X86 && defined(__AVX__)
  for (; j + 4 <= n; j += 4) _mm256_storeu_pd(v + j, _mm256_sqrt_pd(_mm256_loadu_pd(v + j)));
#elif CELLKIT_SILHOUETTE_X86 && defined(__SSE2__)
  for (; j + 2 <= n; j += 2) _mm_storeu_pd(v + j, _mm_sqrt_pd(_mm_loadu_pd(v + j)));
#endif
  for (; j < n; ++j) v[j] = std::sqrt(v[j]);
}

inline void sqrt_in_place(float* v, index_t n) {
  index_t j = 0;
#if CELLKIT_SILHOUETTE_X86 && defined(__AVX512F__)
  for (; j + 16 <= n; j += 16) _mm512_storeu_ps(v + j, _mm512_sqrt_ps(_mm512_loadu_ps(v + j)));
#elif CELLKIT_SILHOUETTE_X86 && defined(__AVX__)
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(v + j, _mm256_sqrt_ps(_mm256_loadu_ps(v + j)));
#elif CELLKIT_SILHOUETTE_X86 && defined(__SSE2__)
  for (; j + 4 <= n; j += 4) _mm_storeu_ps(v + j, _mm_sqrt_ps(_mm_loadu_ps(v + j)));
#endif
  for (; j < n; ++j) v[j] = std::sqrt(v[j]);
}

/// Sum of v[0, n) in double, in 16 interleaved lanes combined pairwise (a fixed order that
/// compilers vectorise).
template <class C>
double lane_sum(const C* v, index_t n) {
  constexpr int lanes = 16;
  double lane[lanes] = {};
  index_t j = 0;
  for (; j + lanes <= n; j += lanes) {
    for (int l = 0; l < lanes; ++l) lane[l] += static_cast<double>(v[j + l]);
  }
  for (int l = 0; j < n; ++j, ++l) lane[l] += static_cast<double>(v[j]);
  for (int width = lanes / 2; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) lane[l] += lane[l + width];
  }
  return lane[0];
}

/// Squared distance of rows a and b of X from coordinate differences, in double.
template <class TX>
double direct_squared_distance(matrix_view<TX> x, index_t a, index_t b) {
  const TX* xa = x.row_data(a);
  const TX* xb = x.row_data(b);
  double sum = 0.0;
  for (index_t k = 0; k < x.cols(); ++k) {
    const double diff = static_cast<double>(xa[k]) - static_cast<double>(xb[k]);
    sum += diff * diff;
  }
  return sum;
}

/// Everything the kernels read: X (for exact recomputation), the clusters, the centred points in
/// cluster order and their squared norms.
template <class TX, class C>
struct silhouette_problem {
  matrix_view<TX> x;
  const silhouette_clusters* clusters = nullptr;
  host_buffer<C> centred;  ///< N x d, row p = X[order[p]] - mean, in the compute type
  host_buffer<C> norms;    ///< ||centred row p||^2
  index_t n = 0;
  index_t d = 0;
};

/// How the pairs are visited (see silhouette_values).
enum class silhouette_schedule { automatic, symmetric, row_tiles };

/// Per-thread scratch.
template <class C>
struct silhouette_scratch {
  host_buffer<C> block;             ///< tile x tile distances
  host_buffer<double> row_totals;   ///< row_tiles: tile x clusters totals of the current tile
  host_buffer<double> column_sums;  ///< symmetric: one cluster's column sums of a block
  silhouette_scratch(index_t clusters, bool symmetric)
      : block(silhouette_tile * silhouette_tile, uninitialized),
        row_totals(symmetric ? 0 : silhouette_tile * clusters),
        column_sums(symmetric ? silhouette_tile : 0, uninitialized) {}
};

/// Distances between the points at cluster positions [i0, i0 + rows) and [j0, j0 + cols), into
/// block (rows x cols, contiguous): one single-threaded GEMM gives -2 x.y; d^2 = ||x||^2 + ||y||^2
/// - 2 x.y is clamped at 0; pairs below close_pair_ratio (||x||^2 + ||y||^2) are recomputed from
/// coordinate differences; then square roots.
template <class TX, class C>
void distance_block(const silhouette_problem<TX, C>& problem, C* block, index_t i0, index_t rows, index_t j0,
                    index_t cols) {
  const silhouette_clusters& clusters = *problem.clusters;
  const auto points = problem.centred.as_matrix(problem.n, problem.d);
  const C* norms = problem.norms.data();
  const C ratio = close_pair_ratio<C>;
  gemm(serial{}, points.row_block(i0, rows), points.row_block(j0, cols), matrix_view<C>(block, rows, cols),
       gemm_params<C>{.alpha = C(-2), .beta = C(0), .transpose_a = false, .transpose_b = true});
  for (index_t r = 0; r < rows; ++r) {
    C* distance = block + r * cols;
    const C norm_i = norms[i0 + r];
    const C* norm_j = norms + j0;
    index_t close = 0;
    for (index_t j = 0; j < cols; ++j) {
      const C norm_sum = norm_i + norm_j[j];
      const C squared = distance[j] + norm_sum;
      close += squared < ratio * norm_sum ? 1 : 0;
      distance[j] = squared > C(0) ? squared : C(0);
    }
    if (close > 0) {
      // Cancellation: recompute these pairs from the original coordinates (exactly 0 for a point
      // with itself and for duplicate points).
      const index_t row_i = clusters.order[static_cast<std::size_t>(i0 + r)];
      for (index_t j = 0; j < cols; ++j) {
        if (distance[j] < ratio * (norm_i + norm_j[j])) {
          distance[j] = static_cast<C>(
              direct_squared_distance(problem.x, row_i, clusters.order[static_cast<std::size_t>(j0 + j)]));
        }
      }
    }
    sqrt_in_place(distance, cols);
  }
}

/// The cluster holding cluster position p.
inline index_t cluster_at(const silhouette_clusters& clusters, index_t p) {
  return static_cast<index_t>(std::upper_bound(clusters.start.begin(), clusters.start.end(), p) -
                              clusters.start.begin() - 1);
}

/// For each row r of the block (columns = positions [j0, j0 + cols)): totals[r * k + c] += the sum
/// of the row's distances to the columns in cluster c.
template <class C>
void add_row_sums(const silhouette_clusters& clusters, const C* block, index_t rows, index_t j0, index_t cols,
                  double* totals) {
  const index_t k_count = clusters.count;
  const index_t first_cluster = cluster_at(clusters, j0);
  for (index_t r = 0; r < rows; ++r) {
    const C* distance = block + r * cols;
    double* row_totals = totals + r * k_count;
    for (index_t c = first_cluster; c < k_count && clusters.start[static_cast<std::size_t>(c)] < j0 + cols; ++c) {
      const index_t lo = std::max(clusters.start[static_cast<std::size_t>(c)], j0);
      const index_t hi = std::min(clusters.start[static_cast<std::size_t>(c) + 1], j0 + cols);
      row_totals[c] += lane_sum(distance + (lo - j0), hi - lo);
    }
  }
}

/// For each column j of the block (rows = positions [i0, i0 + rows)): totals[j * k + c] += the sum
/// of the column's distances to the rows in cluster c, summed row by row (a fixed order).
template <class C>
void add_column_sums(const silhouette_clusters& clusters, const C* block, index_t i0, index_t rows, index_t cols,
                     double* sums, double* totals) {
  const index_t k_count = clusters.count;
  for (index_t c = cluster_at(clusters, i0); c < k_count && clusters.start[static_cast<std::size_t>(c)] < i0 + rows;
       ++c) {
    const index_t lo = std::max(clusters.start[static_cast<std::size_t>(c)], i0);
    const index_t hi = std::min(clusters.start[static_cast<std::size_t>(c) + 1], i0 + rows);
    std::fill(sums, sums + cols, 0.0);
    for (index_t r = lo - i0; r < hi - i0; ++r) {
      const C* distance = block + r * cols;
      for (index_t j = 0; j < cols; ++j) sums[j] += static_cast<double>(distance[j]);
    }
    for (index_t j = 0; j < cols; ++j) totals[j * k_count + c] += sums[j];
  }
}

/// s(i) from the point's per-cluster distance totals: (b - a) / max(a, b); 0 for a singleton
/// cluster and for a = b = 0 (scikit-learn's nan_to_num of 0/0).
inline double silhouette_from_totals(const silhouette_clusters& clusters, index_t own, const double* totals) {
  const auto size_of = [&](index_t c) {
    return clusters.start[static_cast<std::size_t>(c) + 1] - clusters.start[static_cast<std::size_t>(c)];
  };
  const index_t own_size = size_of(own);
  if (own_size <= 1) return 0.0;
  const double a = totals[own] / static_cast<double>(own_size - 1);
  double b = std::numeric_limits<double>::infinity();
  for (index_t c = 0; c < clusters.count; ++c) {
    if (c != own) b = std::min(b, totals[c] / static_cast<double>(size_of(c)));
  }
  const double scale = std::max(a, b);
  return scale > 0.0 ? (b - a) / scale : 0.0;
}

/// Runs `body(scratch, phase, item)` for every phase in order and every item in [0,
/// items(phase)), the items of a phase in parallel on `threads` threads (dynamic schedule) or on
/// the calling thread; a phase starts when the previous one has finished. Exceptions (bad_alloc)
/// must not leave a parallel region: the first one is kept and rethrown after it.
template <class C, class Items, class Body>
void run_phases(int threads, index_t phases, Items&& items, index_t clusters, bool symmetric, Body&& body) {
#if CELLKIT_HAS_OPENMP
  if (threads > 1) {
    std::exception_ptr failure;
#pragma omp parallel num_threads(threads)
    {
      std::unique_ptr<silhouette_scratch<C>> scratch;  // null when its allocation failed
      try {
        scratch = std::make_unique<silhouette_scratch<C>>(clusters, symmetric);
      } catch (...) {
#pragma omp critical(cellkit_silhouette_failure)
        if (!failure) failure = std::current_exception();
      }
      for (index_t phase = 0; phase < phases; ++phase) {
        const index_t count = items(phase);
#pragma omp for schedule(dynamic, 1)
        for (index_t item = 0; item < count; ++item) {
          if (!scratch) continue;
          try {
            body(*scratch, phase, item);
          } catch (...) {
#pragma omp critical(cellkit_silhouette_failure)
            if (!failure) failure = std::current_exception();
          }
        }
      }
    }
    if (failure) std::rethrow_exception(failure);
    return;
  }
#endif
  (void)threads;
  silhouette_scratch<C> scratch(clusters, symmetric);
  for (index_t phase = 0; phase < phases; ++phase) {
    const index_t count = items(phase);
    for (index_t item = 0; item < count; ++item) body(scratch, phase, item);
  }
}

/// Row tiles: each tile of points is compared with every point, block by block; the tile's totals
/// live in per-thread scratch. Memory O(threads x tile x clusters); every pair computed twice.
template <class TX, class C>
void silhouette_by_row_tiles(int threads, const silhouette_problem<TX, C>& problem, double* s_by_position) {
  const silhouette_clusters& clusters = *problem.clusters;
  const index_t n = problem.n;
  const index_t tiles = (n + silhouette_tile - 1) / silhouette_tile;
  run_phases<C>(
      threads, 1, [&](index_t) { return tiles; }, clusters.count, false,
      [&](silhouette_scratch<C>& scratch, index_t, index_t t) {
        const index_t i0 = t * silhouette_tile;
        const index_t rows = std::min(silhouette_tile, n - i0);
        std::fill(scratch.row_totals.begin(), scratch.row_totals.end(), 0.0);
        for (index_t j0 = 0; j0 < n; j0 += silhouette_tile) {
          const index_t cols = std::min(silhouette_tile, n - j0);
          distance_block(problem, scratch.block.data(), i0, rows, j0, cols);
          add_row_sums(clusters, scratch.block.data(), rows, j0, cols, scratch.row_totals.data());
        }
        index_t own = cluster_at(clusters, i0);
        for (index_t r = 0; r < rows; ++r) {
          while (clusters.start[static_cast<std::size_t>(own) + 1] <= i0 + r) ++own;
          s_by_position[i0 + r] = silhouette_from_totals(clusters, own, scratch.row_totals.data() + r * clusters.count);
        }
      });
}

/// Symmetric: each block of pairs (I, J), I <= J, is computed once and feeds the totals of both
/// tiles (row sums for I, column sums for J). The blocks are visited in rounds of a round-robin
/// tournament (circle method): in one round every tile appears in at most one block, so the blocks
/// of a round run in parallel without sharing a total, and every total receives its contributions
/// in round order: the same sums in the same order for any thread count. Round 0 holds the
/// diagonal blocks (I, I). Memory: N x clusters totals.
template <class TX, class C>
void silhouette_symmetric(int threads, const silhouette_problem<TX, C>& problem, double* s_by_position) {
  const silhouette_clusters& clusters = *problem.clusters;
  const index_t n = problem.n;
  const index_t k_count = clusters.count;
  const index_t tiles = (n + silhouette_tile - 1) / silhouette_tile;
  host_buffer<double> totals(n * k_count);
  auto tile_rows = [&](index_t t) { return std::min(silhouette_tile, n - t * silhouette_tile); };
  auto run_block = [&](silhouette_scratch<C>& scratch, index_t a, index_t b) {
    const index_t i0 = a * silhouette_tile;
    const index_t j0 = b * silhouette_tile;
    const index_t rows = tile_rows(a);
    const index_t cols = tile_rows(b);
    distance_block(problem, scratch.block.data(), i0, rows, j0, cols);
    add_row_sums(clusters, scratch.block.data(), rows, j0, cols, totals.data() + i0 * k_count);
    if (a != b) {
      add_column_sums(clusters, scratch.block.data(), i0, rows, cols, scratch.column_sums.data(),
                      totals.data() + j0 * k_count);
    }
  };
  // Phase 0: the diagonal blocks. Phase 1 + round: the circle method on an even number of slots
  // (slot `tiles` is a bye when tiles is odd): slot slots-1 meets slot round, and slot round + k
  // meets slot round - k (mod slots - 1).
  const index_t slots = tiles + (tiles % 2);
  run_phases<C>(
      threads, slots, [&](index_t phase) { return phase == 0 ? tiles : slots / 2; }, k_count, true,
      [&](silhouette_scratch<C>& scratch, index_t phase, index_t k) {
        if (phase == 0) {
          run_block(scratch, k, k);
          return;
        }
        const index_t round = phase - 1;
        index_t a = k == 0 ? slots - 1 : (round + k) % (slots - 1);
        index_t b = k == 0 ? round : (round + slots - 1 - k) % (slots - 1);
        if (a >= tiles || b >= tiles) return;  // the bye
        if (a > b) std::swap(a, b);
        run_block(scratch, a, b);
      });
  for (index_t c = 0; c < k_count; ++c) {
    for (index_t p = clusters.start[static_cast<std::size_t>(c)]; p < clusters.start[static_cast<std::size_t>(c) + 1];
         ++p) {
      s_by_position[p] = silhouette_from_totals(clusters, c, totals.data() + p * k_count);
    }
  }
}

/// Silhouette of every point, indexed by row of X. `threads` = 1 runs on the calling thread.
/// `automatic` takes the symmetric schedule (half the GEMM and square-root work) when its N x
/// clusters totals take at most max(64 MiB, the size of X), else row tiles. Both schedules give
/// results independent of the thread count; they differ from each other by rounding only.
template <class C, class TX>
std::vector<double> silhouette_values(int threads, matrix_view<TX> x, const silhouette_clusters& clusters,
                                      silhouette_schedule schedule = silhouette_schedule::automatic) {
  silhouette_problem<TX, C> problem;
  problem.x = x;
  problem.clusters = &clusters;
  problem.n = x.rows();
  problem.d = x.cols();
  const index_t n = problem.n;
  const index_t d = problem.d;

  // Centre on the mean (distances do not change; the norms, and so the cancellation, shrink).
  std::vector<double> mean(static_cast<std::size_t>(d), 0.0);
  for (index_t i = 0; i < n; ++i) {
    const TX* row = x.row_data(i);
    for (index_t k = 0; k < d; ++k) mean[static_cast<std::size_t>(k)] += static_cast<double>(row[k]);
  }
  for (double& m : mean) m /= static_cast<double>(n);
  problem.centred = host_buffer<C>(n * d, uninitialized);
  problem.norms = host_buffer<C>(n, uninitialized);
  double largest_norm = 0.0;
  for (index_t p = 0; p < n; ++p) {
    const TX* row = x.row_data(clusters.order[static_cast<std::size_t>(p)]);
    C* out = problem.centred.data() + p * d;
    double norm = 0.0;
    for (index_t k = 0; k < d; ++k) {
      out[k] = static_cast<C>(static_cast<double>(row[k]) - mean[static_cast<std::size_t>(k)]);
      norm += static_cast<double>(out[k]) * static_cast<double>(out[k]);
    }
    problem.norms[p] = static_cast<C>(norm);
    largest_norm = std::max(largest_norm, norm);
  }
  if constexpr (std::is_same_v<C, float>) {
    // Squared norms near float's range would overflow in ||x||^2 + ||y||^2 - 2 x.y: compute in double.
    if (largest_norm > 1e36) return silhouette_values<double>(threads, x, clusters, schedule);
  }

  if (schedule == silhouette_schedule::automatic) {
    const double totals_bytes = static_cast<double>(n) * static_cast<double>(clusters.count) * sizeof(double);
    const double input_bytes = static_cast<double>(n) * static_cast<double>(d) * sizeof(TX);
    schedule = totals_bytes <= std::max(64.0 * 1024 * 1024, input_bytes) ? silhouette_schedule::symmetric
                                                                         : silhouette_schedule::row_tiles;
  }
  std::vector<double> s_by_position(static_cast<std::size_t>(n));
  if (schedule == silhouette_schedule::symmetric) {
    silhouette_symmetric(threads, problem, s_by_position.data());
  } else {
    silhouette_by_row_tiles(threads, problem, s_by_position.data());
  }

  std::vector<double> s(static_cast<std::size_t>(n));
  for (index_t p = 0; p < n; ++p) {
    s[static_cast<std::size_t>(clusters.order[static_cast<std::size_t>(p)])] =
        s_by_position[static_cast<std::size_t>(p)];
  }
  return s;
}

}  // namespace cellkit::metrics::detail::silhouette
