#pragma once
/// @file
/// Implementation of cellkit/cluster/kmeans.hpp.
///
/// Thread-count independence: rows are cut into fixed chunks of `kmeans_chunk_rows` (partial sums
/// per chunk, merged in chunk order), each computed by one thread, and each chunk into blocks of
/// `kmeans_block_rows` for the E-step kernels. Nothing depends on which thread runs a chunk, so
/// labels, centres and inertia are bit-identical for serial and any openmp thread count.

#include <cellkit/cluster/common.hpp>
#include <cellkit/cluster/detail/parallel.hpp>
#include <cellkit/cluster/detail/simd_kernels.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__) && CELLKIT_CLUSTER_VECTOR_EXTENSIONS
#include <immintrin.h>
#endif

namespace cellkit::cluster::detail {

inline constexpr index_t kmeans_chunk_rows = 2048;  // rows per thread task and per partial sum
inline constexpr index_t kmeans_block_rows = 64;    // rows per E-step call (a float tile), divides the chunk

/// The centred data and everything shared by the restarts.
template <class T>
struct kmeans_data {
  matrix_view<const T> x;         // N x d, centred (x - column means)
  const T* weight = nullptr;      // N sample weights, or null for unit weights
  std::vector<double> row_norms;  // ||x_i||^2 of the centred rows (k-means++, the inertia estimate)
  double weighted_norms = 0.0;    // sum_i w_i ||x_i||^2 (the inertia estimate)
  // x * tile_scale rounded to float and tiled for nearest_centres_tile<float> (empty: the rows are
  // tiled block by block in T). For float x this is x itself and its argmin is the result; for
  // double x (`screen`) it only screens the argmin, see `lloyd_assign`.
  host_buffer<float> tiled;
  T tile_scale = 1;                  // double x: 2^-e with max |x_ia| tile_scale in [0.5, 1); float x: 1
  bool screen = false;               // double x with a float screening copy
  std::vector<double> scaled_norms;  // screen: tile_scale ||x_i||
  index_t n = 0;
  index_t d = 0;
  int threads = 1;

  double w(index_t i) const { return weight ? static_cast<double>(weight[i]) : 1.0; }
  index_t chunks() const { return (n + kmeans_chunk_rows - 1) / kmeans_chunk_rows; }
};

/// Relative part of the screening bound: |F_j - s^2 v_j| + s^2 |D_j - v_j| <= K P_j + A for a centre
/// j and a row x, where v_j = ||c_j||^2 - 2 x.c_j exactly, D_j its double value (the chain of
/// `nearest_centres_tile<double>`), F_j the float value on x and c scaled by s = tile_scale and
/// rounded to float, and P_j = s^2 (||c_j||^2 + 2 sum_a |x_a c_ja|) <= s^2 (||c_j||^2 +
/// 2 ||x|| ||c_j||). Float: rounding x, c and ||c||^2 (3 u) and a chain of d FMAs (gamma_d < (d + 1)
/// u); double: the norm and the chain (2d + 4 u_d). 1% covers the second-order terms and the
/// rounding of the bound itself (valid while (d + 4) u <= 2^-8, else no screening).
inline double kmeans_screen_relative(index_t d) {
  return 1.01 * (static_cast<double>(d + 4) * 0x1p-24 + static_cast<double>(2 * d + 4) * 0x1p-53);
}

/// Prepares the E-step's tiled copy (see kmeans_data), chunk by chunk in parallel. Double x is
/// screened only where the float copy cannot overflow or lose everything to underflow (max |x| in
/// [2^-100, 2^100], scaled to [0.5, 1)) and the float error bound is meaningful ((d + 4) 2^-24 <=
/// 2^-8); otherwise its rows are tiled in double block by block at every step.
template <class T>
void prepare_e_step(kmeans_data<T>& data) {
  data.weighted_norms = 0.0;
  for (index_t i = 0; i < data.n; ++i) data.weighted_norms += data.w(i) * data.row_norms[static_cast<std::size_t>(i)];
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
  const index_t chunks = data.chunks();
  auto tile = [&](T scale) {
    data.tiled = host_buffer<float>(nearest_centres_tiled_size<float>(data.n, data.d), uninitialized);
    parallel_blocks(data.threads, chunks, [&](int, index_t c) {
      const index_t first = c * kmeans_chunk_rows;
      tile_rows_for_nearest_centres(data.x, scale, first, std::min(kmeans_chunk_rows, data.n - first),
                                    data.tiled.data());
    });
  };
  if constexpr (std::is_same_v<T, float>) {
    tile(1.0f);
  } else {
    if (static_cast<double>(data.d + 4) * 0x1p-24 > 0x1p-8) return;
    std::vector<double> chunk_max(static_cast<std::size_t>(chunks), 0.0);
    parallel_blocks(data.threads, chunks, [&](int, index_t c) {
      double m = 0.0;
      for (index_t i = c * kmeans_chunk_rows; i < std::min(data.n, (c + 1) * kmeans_chunk_rows); ++i) {
        const T* row = data.x.row_data(i);
        for (index_t a = 0; a < data.d; ++a) m = std::max(m, std::abs(static_cast<double>(row[a])));
      }
      chunk_max[static_cast<std::size_t>(c)] = m;
    });
    const double max_abs = *std::max_element(chunk_max.begin(), chunk_max.end());
    if (max_abs > 0x1p100 || (max_abs > 0.0 && max_abs < 0x1p-100)) return;
    int exponent = 0;
    std::frexp(max_abs, &exponent);  // max_abs = m 2^exponent, m in [0.5, 1)
    data.tile_scale = max_abs > 0.0 ? std::ldexp(1.0, -exponent) : 1.0;
    tile(data.tile_scale);
    data.scaled_norms.resize(static_cast<std::size_t>(data.n));
    for (index_t i = 0; i < data.n; ++i)
      data.scaled_norms[static_cast<std::size_t>(i)] =
          data.tile_scale * std::sqrt(data.row_norms[static_cast<std::size_t>(i)]);
    data.screen = true;
  }
#endif
}

/// Scratch values per thread for `lloyd_assign`: a tile for `nearest_centres` and a block of rows
/// gathered for the exact re-check.
template <class T>
index_t lloyd_scratch_size(index_t d) {
  return d * (nearest_centres_tile_rows<T>() + kmeans_block_rows);
}

/// Row stride of the partial sums: d rounded up to whole 64-byte vectors, so that the M-step's
/// vector loads and stores never straddle cache lines.
inline index_t kmeans_sum_stride(index_t d) { return (d + 7) / 8 * 8; }

/// Per-chunk sums of the rows currently in each cluster, kept from one Lloyd step to the next and
/// updated only for the rows whose label changed (see `lloyd_assign`); merged in chunk order.
/// Each sum is a compensated pair (running value, accumulated rounding error), so that thousands of
/// additions and removals leave it as accurate as one ordered sum (more, in fact).
struct lloyd_partials {
  index_t sum_stride = 0;                    // kmeans_sum_stride(d)
  host_buffer<double> sums;                  // chunks x k x (2 sum_stride): sum_stride values, then their compensation
  std::vector<double> weights;               // chunks x k x 2: weight and compensation
  std::vector<index_t> positive;             // chunks x k: members with weight > 0 (a cluster without is empty)
  std::vector<index_t> changed;              // chunks: labels changed in the last step
  std::vector<index_t> rechecked_per_chunk;  // chunks: rows re-checked in double in the last step
  index_t rechecked = 0;                     // their total

  /// Empty clusters (every label -1): call before the first step of every run.
  void reset(index_t chunks, index_t k, index_t d) {
    sum_stride = kmeans_sum_stride(d);
    if (sums.size() != chunks * k * 2 * sum_stride)
      sums = host_buffer<double>(chunks * k * 2 * sum_stride, uninitialized);
    std::fill(sums.begin(), sums.end(), 0.0);
    weights.assign(static_cast<std::size_t>(chunks * k * 2), 0.0);
    positive.assign(static_cast<std::size_t>(chunks * k), 0);
  }
};

struct lloyd_step_result {
  index_t changed = 0;  // labels that differ from the previous ones
};

/// (sum, compensation) += y with Knuth's TwoSum: the exact rounding error of sum + y goes into
/// `compensation`, so sum + compensation misses the exact total only by the rounding of the (tiny)
/// compensations. No multiplications, so FMA contraction cannot change it.
inline void compensated_add(double& sum, double& compensation, double y) {
  const double t = sum + y;
  const double bp = t - sum;
  compensation += (sum - (t - bp)) + (y - bp);
  sum = t;
}

/// The cluster sums (s: sum_stride values, then sum_stride compensations; the padding stays 0)
/// += w x, x converted to double, each element by `compensated_add` (w = -w_i removes a row). For
/// unit weights w x is exact; otherwise its rounding (at most u |w x| per update, whether or not
/// the compiler fuses it into the addition) is not compensated. With AVX-512, 8 doubles per step:
/// x's last partial vector read with a mask (zeros beyond the row), the sums loaded and stored
/// whole (a load cannot be forwarded from a masked store still in the store buffer, and the next
/// row of the same cluster often follows within that window). maskz forms: the unmasked conversion
/// passes an undefined vector that GCC 12 reports under -Wmaybe-uninitialized.
template <class T>
void compensated_add_row(double* s, index_t sum_stride, const T* x, double w, index_t d) {
  double* c = s + sum_stride;
#if defined(__AVX512F__) && CELLKIT_CLUSTER_VECTOR_EXTENSIONS
  const __m512d wv = _mm512_set1_pd(w);
  for (index_t a = 0; a < d; a += 8) {
    const auto mask = static_cast<__mmask8>(d - a >= 8 ? 0xffu : (1u << (d - a)) - 1u);
    __m512d xv;
    if constexpr (std::is_same_v<T, float>) {
      xv = _mm512_maskz_cvtps_pd(0xff, _mm256_maskz_loadu_ps(mask, x + a));
    } else {
      xv = _mm512_maskz_loadu_pd(mask, x + a);
    }
    const __m512d y = _mm512_mul_pd(wv, xv);
    const __m512d sum = _mm512_load_pd(s + a);
    const __m512d t = _mm512_add_pd(sum, y);
    const __m512d bp = _mm512_sub_pd(t, sum);
    const __m512d err = _mm512_add_pd(_mm512_sub_pd(sum, _mm512_sub_pd(t, bp)), _mm512_sub_pd(y, bp));
    _mm512_store_pd(c + a, _mm512_add_pd(_mm512_load_pd(c + a), err));
    _mm512_store_pd(s + a, t);
  }
#else
  for (index_t a = 0; a < d; ++a) compensated_add(s[a], c[a], w * static_cast<double>(x[a]));
#endif
}

/// Labels of rows against `centres` (E-step) and, with `update`, the cluster sums (M-step input),
/// chunk by chunk in one parallel pass. The sums are not recomputed: a row whose label changed
/// moves from its old cluster's chunk sums to the new one's, and rows that kept their label cost
/// nothing. After the first Lloyd steps only a few percent of the labels change per step (2 - 11%
/// in steps 3 - 12 of the benchmark), so the M-step no longer reads every row: the step reads the
/// tiled copy and little else (re-reading all rows in their own layout had cost as much as the
/// distances). `partials` must hold the sums of the current labels (`reset` with all labels -1).
/// The argmin is of ||c_j||^2 - 2 x_i.c_j (||x_i||^2 is the same for every j and left out, as
/// scikit-learn), the lowest j on ties.
///
/// Float x: `nearest_centres_tile<float>` on the tiled copy. Double x (`data.screen`): the float
/// kernel on the scaled float copy gives F_j, j* = its argmin and F_2 = the lowest other value;
/// with E = K (max_j ||c_j||^2 + 2 ||x|| max_j ||c_j||) + A (all scaled; `kmeans_screen_relative`)
/// bounding |F_j - s^2 D_j| for every j, F_2 - F_j* > 2 E proves D_j > D_j* for every j != j*, so
/// j* is the argmin of the double values D. Rows that fail the test (near ties: a few per 100 000
/// on the benchmark) are re-done by the double kernel, whose values are bit for bit those the
/// pure double pass computes; the labels are therefore exactly the double labels, at the float
/// kernel's cost (half the bytes, twice the lanes per FMA).
template <class T>
lloyd_step_result lloyd_assign(const kmeans_data<T>& data, matrix_view<const T> centres, index_t* labels, bool update,
                               lloyd_partials& partials, std::vector<host_buffer<T>>& scratch) {
  const index_t k = centres.rows();
  const index_t d = data.d;
  const index_t chunks = data.chunks();
  const centre_groups<T> groups(centres);
  const index_t sd = partials.sum_stride;
  CELLKIT_EXPECTS(!update || partials.sums.size() == chunks * k * 2 * sd, "kmeans", "partials",
                  "internal error: cluster sums not reset for this shape");
  partials.changed.assign(static_cast<std::size_t>(chunks), 0);
  partials.rechecked_per_chunk.assign(static_cast<std::size_t>(chunks), 0);

  // The float copy is usable with these centres: always for float x; for double x while the scaled
  // centres stay within 2^40 (the float values then cannot overflow). The bound 2E = alpha + beta ||x||.
  bool use_tiles = !data.tiled.empty();
  std::optional<centre_groups<float>> screen_groups;
  double alpha = 0.0, beta = 0.0;
  if (use_tiles && data.screen) {
    double max_norm = 0.0, max_abs = 0.0;
    for (index_t j = 0; j < k; ++j) {
      double norm = 0.0;
      for (index_t a = 0; a < d; ++a) {
        const double c = static_cast<double>(centres(j, a)) * static_cast<double>(data.tile_scale);
        norm += c * c;
        max_abs = std::max(max_abs, std::abs(c));
      }
      max_norm = std::max(max_norm, norm);
    }
    if (max_abs <= 0x1p40) {
      screen_groups.emplace(centres, data.tile_scale);
      const double relative = kmeans_screen_relative(d);
      const double absolute = 0x1p-140 * static_cast<double>(d + 4) * (2.0 + max_abs);
      alpha = 2.0 * (relative * max_norm + absolute);
      beta = 4.0 * relative * std::sqrt(max_norm);
    } else {
      use_tiles = false;
    }
  }

  parallel_blocks(data.threads, chunks, [&](int thread, index_t c) {
    T* tile = scratch[static_cast<std::size_t>(thread)].data();
    T* gathered = tile + d * nearest_centres_tile_rows<T>();
    index_t chunk_labels[kmeans_chunk_rows];
    const index_t chunk_first = c * kmeans_chunk_rows;
    const index_t chunk_last = std::min(data.n, chunk_first + kmeans_chunk_rows);
    double* sums = update ? partials.sums.data() + c * k * 2 * sd : nullptr;
    double* wsum = update ? partials.weights.data() + c * k * 2 : nullptr;
    index_t* positive = update ? partials.positive.data() + c * k : nullptr;
    for (index_t first = chunk_first; first < chunk_last; first += kmeans_block_rows) {
      const index_t count = std::min(kmeans_block_rows, chunk_last - first);
      index_t* block_labels = chunk_labels + (first - chunk_first);
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
      static_assert(nearest_centres_tile_rows<float>() == kmeans_block_rows, "one float tile per block");
      if (use_tiles) {
        const float* xt = data.tiled.data() + first * d;
        // The next block's tile (its rows are read only where a label changes: not prefetched).
        prefetch_plan next;
        if (first + kmeans_block_rows < chunk_last) {
          next.first = reinterpret_cast<const char*>(xt + kmeans_block_rows * d);
          next.first_bytes = sizeof(float) * static_cast<std::size_t>(kmeans_block_rows * d);
        }
        float index[kmeans_block_rows], best[kmeans_block_rows], second[kmeans_block_rows];
        if constexpr (std::is_same_v<T, float>) {
          nearest_centres_tile<float, false>(xt, groups, next, index, nullptr, nullptr);
          for (index_t r = 0; r < count; ++r) block_labels[r] = static_cast<index_t>(index[r]);
        } else {
          nearest_centres_tile<float, true>(xt, *screen_groups, next, index, best, second);
          index_t which[kmeans_block_rows];
          index_t m = 0;
          for (index_t r = 0; r < count; ++r) {
            block_labels[r] = static_cast<index_t>(index[r]);
            const double gap = static_cast<double>(second[r]) - static_cast<double>(best[r]);
            if (!(gap > alpha + beta * data.scaled_norms[static_cast<std::size_t>(first + r)])) which[m++] = r;
          }
          if (m > 0) {
            for (index_t q = 0; q < m; ++q)
              std::copy(data.x.row_data(first + which[q]), data.x.row_data(first + which[q]) + d, gathered + q * d);
            index_t exact[kmeans_block_rows];
            nearest_centres<T>(matrix_view<const T>(gathered, m, d), groups, tile, exact, nullptr);
            for (index_t q = 0; q < m; ++q) block_labels[which[q]] = exact[q];
            partials.rechecked_per_chunk[static_cast<std::size_t>(c)] += m;
          }
        }
      } else {
        nearest_centres<T>(data.x.row_block(first, count), groups, tile, block_labels, nullptr);
      }
#else
      (void)gathered;
      nearest_centres<T>(data.x.row_block(first, count), groups, tile, block_labels, nullptr);
#endif
    }

    // M-step input. A changed row moves from its old cluster's sums to the new one's (reading the
    // row: about 2 x 14 vector operations per 8 values); when more than half of the chunk's labels
    // changed (the first step, or a restless one), re-summing the chunk's rows from zero costs
    // less. The choice depends on the labels only, so the result does not depend on threads.
    const index_t rows = chunk_last - chunk_first;
    index_t changed = 0;
    for (index_t r = 0; r < rows; ++r) changed += labels[chunk_first + r] != chunk_labels[r] ? 1 : 0;
    if (update && 2 * changed > rows) {
      std::fill(sums, sums + k * 2 * sd, 0.0);
      std::fill(wsum, wsum + 2 * k, 0.0);
      std::fill(positive, positive + k, index_t(0));
      for (index_t r = 0; r < rows; ++r) {
        const index_t i = chunk_first + r, label = chunk_labels[r];
        const double wi = data.w(i);
        compensated_add_row(sums + label * 2 * sd, sd, data.x.row_data(i), wi, d);
        compensated_add(wsum[2 * label], wsum[2 * label + 1], wi);
        positive[label] += wi > 0.0 ? 1 : 0;
      }
    } else if (update && changed > 0) {
      for (index_t r = 0; r < rows; ++r) {
        const index_t i = chunk_first + r, label = chunk_labels[r], old = labels[i];
        if (old == label) continue;
        const double wi = data.w(i);
        const T* xi = data.x.row_data(i);
        if (old >= 0) {
          compensated_add_row(sums + old * 2 * sd, sd, xi, -wi, d);
          compensated_add(wsum[2 * old], wsum[2 * old + 1], -wi);
          positive[old] -= wi > 0.0 ? 1 : 0;
        }
        compensated_add_row(sums + label * 2 * sd, sd, xi, wi, d);
        compensated_add(wsum[2 * label], wsum[2 * label + 1], wi);
        positive[label] += wi > 0.0 ? 1 : 0;
      }
    }
    std::copy(chunk_labels, chunk_labels + rows, labels + chunk_first);
    partials.changed[static_cast<std::size_t>(c)] = changed;
  });

  lloyd_step_result result;
  partials.rechecked = 0;
  for (index_t c = 0; c < chunks; ++c) {
    result.changed += partials.changed[static_cast<std::size_t>(c)];
    partials.rechecked += partials.rechecked_per_chunk[static_cast<std::size_t>(c)];
  }
  return result;
}

/// ||x_i - c||^2 in double from coordinate differences.
template <class T>
double squared_distance(const T* x, const T* c, index_t d) {
  double s = 0.0;
  for (index_t a = 0; a < d; ++a) {
    const double diff = static_cast<double>(x[a]) - static_cast<double>(c[a]);
    s += diff * diff;
  }
  return s;
}

struct lloyd_update_result {
  double shift = 0.0;             // sum_j ||new_j - old_j||^2
  double inertia_estimate = 0.0;  // sum_i w_i ||x_i - old_label(i)||^2 from the sums (see lloyd_update)
};

/// M-step: merges the chunk partials, relocates empty clusters (scikit-learn's rule: the points
/// farthest from their current centre move, farthest first) and divides by the cluster weights.
/// The inertia of the E-step's labels against the old centres is estimated without a per-row
/// pass: sum_i w_i ||x_i - c_l(i)||^2 = sum_i w_i ||x_i||^2 + sum_j (W_j ||c_j||^2 - 2 c_j.S_j),
/// with S_j, W_j the weighted sum and weight of cluster j (before relocation).
template <class T>
lloyd_update_result lloyd_update(const kmeans_data<T>& data, matrix_view<const T> old_centres, const index_t* labels,
                                 const lloyd_partials& partials, matrix_view<T> new_centres) {
  const index_t k = old_centres.rows();
  const index_t d = data.d;
  const index_t chunks = data.chunks();
  std::vector<double> sums(static_cast<std::size_t>(k * d), 0.0);
  std::vector<double> weights(static_cast<std::size_t>(k), 0.0);
  // Values in chunk order, then compensations in chunk order. A cluster without members of positive
  // weight has weight exactly 0 (its compensated sum might leave a rounding residue).
  const index_t sd = partials.sum_stride;
  std::vector<double> compensation(static_cast<std::size_t>(k * d), 0.0);
  std::vector<double> weight_compensation(static_cast<std::size_t>(k), 0.0);
  std::vector<index_t> positive(static_cast<std::size_t>(k), 0);
  for (index_t c = 0; c < chunks; ++c) {
    const double* ps = partials.sums.data() + c * k * 2 * sd;
    for (index_t j = 0; j < k; ++j)
      for (index_t a = 0; a < d; ++a) {
        sums[static_cast<std::size_t>(j * d + a)] += ps[j * 2 * sd + a];
        compensation[static_cast<std::size_t>(j * d + a)] += ps[j * 2 * sd + sd + a];
      }
    const double* pw = partials.weights.data() + c * k * 2;
    for (index_t j = 0; j < k; ++j) {
      weights[static_cast<std::size_t>(j)] += pw[2 * j];
      weight_compensation[static_cast<std::size_t>(j)] += pw[2 * j + 1];
      positive[static_cast<std::size_t>(j)] += partials.positive[static_cast<std::size_t>(c * k + j)];
    }
  }
  for (index_t e = 0; e < k * d; ++e) sums[static_cast<std::size_t>(e)] += compensation[static_cast<std::size_t>(e)];
  for (index_t j = 0; j < k; ++j) {
    auto& w = weights[static_cast<std::size_t>(j)];
    w = positive[static_cast<std::size_t>(j)] > 0 ? w + weight_compensation[static_cast<std::size_t>(j)] : 0.0;
  }
  lloyd_update_result result;
  result.inertia_estimate = data.weighted_norms;
  for (index_t j = 0; j < k; ++j) {
    const T* c = old_centres.row_data(j);
    double norm = 0.0, dot = 0.0;
    for (index_t a = 0; a < d; ++a) {
      norm += static_cast<double>(c[a]) * static_cast<double>(c[a]);
      dot += static_cast<double>(c[a]) * sums[static_cast<std::size_t>(j * d + a)];
    }
    result.inertia_estimate += weights[static_cast<std::size_t>(j)] * norm - 2.0 * dot;
  }

  std::vector<index_t> empty;
  for (index_t j = 0; j < k; ++j)
    if (weights[static_cast<std::size_t>(j)] == 0.0) empty.push_back(j);
  if (!empty.empty()) {
    // Distances of every point to its (old) centre; the farthest points seed the empty clusters.
    std::vector<double> dist(static_cast<std::size_t>(data.n));
    parallel_blocks(data.threads, data.chunks(), [&](int, index_t c) {
      const index_t last = std::min(data.n, (c + 1) * kmeans_chunk_rows);
      for (index_t i = c * kmeans_chunk_rows; i < last; ++i)
        dist[static_cast<std::size_t>(i)] = squared_distance(data.x.row_data(i), old_centres.row_data(labels[i]), d);
    });
    const auto n_empty = static_cast<index_t>(empty.size());
    std::vector<index_t> order(static_cast<std::size_t>(data.n));
    std::iota(order.begin(), order.end(), index_t(0));
    auto farther = [&](index_t a, index_t b) {
      const double da = dist[static_cast<std::size_t>(a)];
      const double db = dist[static_cast<std::size_t>(b)];
      return da > db || (da == db && a < b);
    };
    const index_t take = std::min(n_empty, data.n);
    std::partial_sort(order.begin(), order.begin() + take, order.end(), farther);
    for (index_t e = 0; e < take; ++e) {
      const index_t target = empty[static_cast<std::size_t>(e)];
      const index_t far = order[static_cast<std::size_t>(e)];
      const double wi = data.w(far);
      const index_t from = labels[far];
      const T* xf = data.x.row_data(far);
      for (index_t a = 0; a < d; ++a) {
        sums[static_cast<std::size_t>(from * d + a)] -= static_cast<double>(xf[a]) * wi;
        sums[static_cast<std::size_t>(target * d + a)] = static_cast<double>(xf[a]) * wi;
      }
      weights[static_cast<std::size_t>(target)] = wi;
      weights[static_cast<std::size_t>(from)] -= wi;
    }
  }

  double& shift = result.shift;
  for (index_t j = 0; j < k; ++j) {
    const double wj = weights[static_cast<std::size_t>(j)];
    const double scale = wj > 0.0 ? 1.0 / wj : 1.0;
    T* out = new_centres.row_data(j);
    const T* old = old_centres.row_data(j);
    for (index_t a = 0; a < d; ++a) {
      out[a] = static_cast<T>(sums[static_cast<std::size_t>(j * d + a)] * scale);
      const double diff = static_cast<double>(out[a]) - static_cast<double>(old[a]);
      shift += diff * diff;
    }
  }
  return result;
}

/// sum_i w_i ||x_i - c_{label_i}||^2 in double from coordinate differences (chunked, fixed order).
template <class T>
double exact_inertia(const kmeans_data<T>& data, matrix_view<const T> centres, const index_t* labels) {
  std::vector<double> partial(static_cast<std::size_t>(data.chunks()), 0.0);
  parallel_blocks(data.threads, data.chunks(), [&](int, index_t c) {
    const index_t last = std::min(data.n, (c + 1) * kmeans_chunk_rows);
    double s = 0.0;
    for (index_t i = c * kmeans_chunk_rows; i < last; ++i)
      s += data.w(i) * squared_distance(data.x.row_data(i), centres.row_data(labels[i]), data.d);
    partial[static_cast<std::size_t>(c)] = s;
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

/// Index of the first entry of the non-decreasing `cumulative` that is >= value (numpy's
/// searchsorted side='left'), clipped to n - 1.
inline index_t search_sorted(const std::vector<double>& cumulative, double value) {
  const auto it = std::lower_bound(cumulative.begin(), cumulative.end(), value);
  const auto index = static_cast<index_t>(it - cumulative.begin());
  const auto last = static_cast<index_t>(cumulative.size()) - 1;
  return index < last ? index : last;
}

/// Greedy k-means++ (scikit-learn's `_kmeans_plusplus`, with sample weights as scikit-learn >= 1.3):
/// first centre drawn with probability proportional to w_i; every next centre: n_local_trials =
/// 2 + floor(log k) candidates drawn with probability proportional to w_i D(x_i)^2, the one that
/// minimises the potential sum_i w_i min(D(x_i)^2, ||x_i - candidate||^2) is kept (first on ties).
/// Random numbers: centre c of restart r draws uniform<double> values from
/// philox_engine(seed, stream, r * k + c): one for c = 0, n_local_trials for c >= 1.
template <class T>
void kmeans_plus_plus(const kmeans_data<T>& data, index_t k, std::uint64_t seed, std::uint32_t stream, int restart,
                      matrix_view<T> centres) {
  const index_t n = data.n;
  const index_t d = data.d;
  const int trials = 2 + static_cast<int>(std::log(static_cast<double>(k)));
  std::vector<double> cumulative(static_cast<std::size_t>(n));
  auto set_centre = [&](index_t c, index_t point) {
    std::copy(data.x.row_data(point), data.x.row_data(point) + d, centres.row_data(c));
  };
  auto engine_for = [&](index_t c) {
    return philox_engine(
        seed, stream,
        static_cast<std::uint64_t>(restart) * static_cast<std::uint64_t>(k) + static_cast<std::uint64_t>(c));
  };

  // First centre: weighted draw.
  {
    double total = 0.0;
    for (index_t i = 0; i < n; ++i) {
      total += data.w(i);
      cumulative[static_cast<std::size_t>(i)] = total;
    }
    philox_engine eng = engine_for(0);
    set_centre(0, search_sorted(cumulative, uniform<double>(eng) * total));
  }
  std::vector<double> closest(static_cast<std::size_t>(n));
  const index_t chunks = data.chunks();
  parallel_blocks(data.threads, chunks, [&](int, index_t c) {
    const index_t last = std::min(n, (c + 1) * kmeans_chunk_rows);
    for (index_t i = c * kmeans_chunk_rows; i < last; ++i)
      closest[static_cast<std::size_t>(i)] = squared_distance(data.x.row_data(i), centres.row_data(0), d);
  });
  double potential = 0.0;
  for (index_t i = 0; i < n; ++i) potential += data.w(i) * closest[static_cast<std::size_t>(i)];

  std::vector<double> candidate_dist(static_cast<std::size_t>(n * trials));
  std::vector<double> candidate_partial(static_cast<std::size_t>(chunks * trials));
  std::vector<index_t> candidates(static_cast<std::size_t>(trials));
  for (index_t c = 1; c < k; ++c) {
    double total = 0.0;
    for (index_t i = 0; i < n; ++i) {
      total += data.w(i) * closest[static_cast<std::size_t>(i)];
      cumulative[static_cast<std::size_t>(i)] = total;
    }
    philox_engine eng = engine_for(c);
    for (int t = 0; t < trials; ++t)
      candidates[static_cast<std::size_t>(t)] = search_sorted(cumulative, uniform<double>(eng) * potential);
    parallel_blocks(data.threads, chunks, [&](int, index_t ch) {
      const index_t last = std::min(n, (ch + 1) * kmeans_chunk_rows);
      for (int t = 0; t < trials; ++t) {
        const T* cand = data.x.row_data(candidates[static_cast<std::size_t>(t)]);
        double s = 0.0;
        for (index_t i = ch * kmeans_chunk_rows; i < last; ++i) {
          const double dist =
              std::min(closest[static_cast<std::size_t>(i)], squared_distance(data.x.row_data(i), cand, d));
          candidate_dist[static_cast<std::size_t>(t * n + i)] = dist;
          s += data.w(i) * dist;
        }
        candidate_partial[static_cast<std::size_t>(ch * trials + t)] = s;
      }
    });
    int best = 0;
    double best_potential = std::numeric_limits<double>::infinity();
    for (int t = 0; t < trials; ++t) {
      double s = 0.0;
      for (index_t ch = 0; ch < chunks; ++ch) s += candidate_partial[static_cast<std::size_t>(ch * trials + t)];
      if (s < best_potential) {
        best_potential = s;
        best = t;
      }
    }
    potential = best_potential;
    std::copy(candidate_dist.begin() + best * n, candidate_dist.begin() + (best + 1) * n, closest.begin());
    set_centre(c, candidates[static_cast<std::size_t>(best)]);
  }
}

/// Random initialisation: k distinct points, drawn without replacement with probability
/// proportional to their weight (Efraimidis-Spirakis keys log(u_i) / w_i, the k largest win, the
/// lower index on ties). u_i = uniform<double>(philox_engine(seed, stream, r * N + i)).
template <class T>
void kmeans_random_init(const kmeans_data<T>& data, index_t k, std::uint64_t seed, std::uint32_t stream, int restart,
                        matrix_view<T> centres) {
  const index_t n = data.n;
  std::vector<double> key(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    philox_engine eng(
        seed, stream,
        static_cast<std::uint64_t>(restart) * static_cast<std::uint64_t>(n) + static_cast<std::uint64_t>(i));
    const double wi = data.w(i);
    key[static_cast<std::size_t>(i)] =
        wi > 0.0 ? std::log(uniform<double>(eng)) / wi : -std::numeric_limits<double>::infinity();
  }
  std::vector<index_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), index_t(0));
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](index_t a, index_t b) {
    const double ka = key[static_cast<std::size_t>(a)];
    const double kb = key[static_cast<std::size_t>(b)];
    return ka > kb || (ka == kb && a < b);
  });
  for (index_t c = 0; c < k; ++c)
    std::copy(data.x.row_data(order[static_cast<std::size_t>(c)]),
              data.x.row_data(order[static_cast<std::size_t>(c)]) + data.d, centres.row_data(c));
}

/// scikit-learn's `_is_same_clustering`: labels1 maps consistently onto labels2.
inline bool same_clustering(const std::vector<index_t>& a, const std::vector<index_t>& b, index_t k) {
  std::vector<index_t> mapping(static_cast<std::size_t>(k), -1);
  for (std::size_t i = 0; i < a.size(); ++i) {
    index_t& m = mapping[static_cast<std::size_t>(a[i])];
    if (m == -1) {
      m = b[i];
    } else if (m != b[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace cellkit::cluster::detail
