#pragma once
/// @file
/// Implementation of cellkit/cluster/kmeans.hpp.
///
/// Thread-count independence: rows are cut into fixed chunks of `kmeans_chunk_rows` (partial sums
/// per chunk, merged in chunk order) and each chunk into GEMM blocks of `kmeans_block_rows`, each
/// computed by one thread with `nearest_centres`. Nothing depends on which thread runs a chunk, so
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
#include <limits>
#include <numeric>
#include <optional>
#include <vector>

namespace cellkit::cluster::detail {

inline constexpr index_t kmeans_block_rows = 256;
inline constexpr index_t kmeans_chunk_rows = 2048;  // a multiple of kmeans_block_rows

/// The centred data and everything shared by the restarts.
template <class T>
struct kmeans_data {
  matrix_view<const T> x;         // N x d, centred (x - column means), contiguous
  const T* weight = nullptr;      // N sample weights, or null for unit weights
  std::vector<double> row_norms;  // ||x_i||^2 of the centred rows (k-means++ and the inertia estimate)
  std::vector<T> tiled;           // x tiled for nearest_centres (empty: tiled block by block)
  index_t n = 0;
  index_t d = 0;
  int threads = 1;

  double w(index_t i) const { return weight ? static_cast<double>(weight[i]) : 1.0; }
  index_t chunks() const { return (n + kmeans_chunk_rows - 1) / kmeans_chunk_rows; }
};

/// Scratch values per thread for `lloyd_assign`.
template <class T>
index_t lloyd_scratch_size(index_t d) {
  return d * nearest_centres_tile_rows<T>() + kmeans_block_rows;
}

/// Per-chunk partial results of one Lloyd step (merged in chunk order).
struct lloyd_partials {
  std::vector<double> sums;      // chunks x k x d
  std::vector<double> weights;   // chunks x k
  std::vector<index_t> changed;  // chunks
  std::vector<double> inertia;   // chunks
};

struct lloyd_step_result {
  index_t changed = 0;          // labels that differ from the previous ones
  double inertia_estimate = 0;  // sum_i w_i (||x_i||^2 + min_j (||c_j||^2 - 2 x_i.c_j)), from the GEMM form
};

/// Labels of rows against `centres` (E-step) and, with `update`, the weighted sums per cluster
/// (M-step input). Distances: ||c_j||^2 - 2 x_i.c_j by `nearest_centres` per block (||x_i||^2 is the
/// same for every j and left out of the argmin, as scikit-learn); the argmin takes the lowest j on
/// ties.
template <class T>
lloyd_step_result lloyd_assign(const kmeans_data<T>& data, matrix_view<const T> centres, index_t* labels, bool update,
                               lloyd_partials& partials, std::vector<host_buffer<T>>& scratch) {
  const index_t k = centres.rows();
  const index_t d = data.d;
  const index_t chunks = data.chunks();
  const centre_groups<T> groups(centres);
  if (update) {
    partials.sums.assign(static_cast<std::size_t>(chunks * k * d), 0.0);
    partials.weights.assign(static_cast<std::size_t>(chunks * k), 0.0);
  }
  partials.changed.assign(static_cast<std::size_t>(chunks), 0);
  partials.inertia.assign(static_cast<std::size_t>(chunks), 0.0);

  parallel_blocks(data.threads, chunks, [&](int thread, index_t c) {
    T* tile = scratch[static_cast<std::size_t>(thread)].data();
    T* best_values = tile + d * nearest_centres_tile_rows<T>();
    index_t block_labels[kmeans_block_rows];
    const index_t chunk_first = c * kmeans_chunk_rows;
    const index_t chunk_last = std::min(data.n, chunk_first + kmeans_chunk_rows);
    double* sums = update ? partials.sums.data() + c * k * d : nullptr;
    double* wsum = update ? partials.weights.data() + c * k : nullptr;
    index_t changed = 0;
    double inertia = 0.0;
    for (index_t first = chunk_first; first < chunk_last; first += kmeans_block_rows) {
      const index_t count = std::min(kmeans_block_rows, chunk_last - first);
      nearest_centres(data.x.row_block(first, count), data.tiled.empty() ? nullptr : data.tiled.data() + first * d,
                      groups, tile, block_labels, best_values);
      for (index_t r = 0; r < count; ++r) {
        const index_t label = block_labels[r];
        const T best = best_values[r];
        const index_t i = first + r;
        changed += labels[i] != label ? 1 : 0;
        labels[i] = label;
        const double wi = data.w(i);
        inertia += wi * (data.row_norms[static_cast<std::size_t>(i)] + static_cast<double>(best));
        if (update) {
          const T* xi = data.x.row_data(i);
          double* s = sums + label * d;
          CELLKIT_CLUSTER_SIMD
          for (index_t a = 0; a < d; ++a) s[a] += wi * static_cast<double>(xi[a]);
          wsum[label] += wi;
        }
      }
    }
    partials.changed[static_cast<std::size_t>(c)] = changed;
    partials.inertia[static_cast<std::size_t>(c)] = inertia;
  });

  lloyd_step_result result;
  for (index_t c = 0; c < chunks; ++c) {
    result.changed += partials.changed[static_cast<std::size_t>(c)];
    result.inertia_estimate += partials.inertia[static_cast<std::size_t>(c)];
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

/// M-step: merges the chunk partials, relocates empty clusters (scikit-learn's rule: the points
/// farthest from their current centre move, farthest first), divides by the cluster weights and
/// returns sum_j ||new_j - old_j||^2.
template <class T>
double lloyd_update(const kmeans_data<T>& data, matrix_view<const T> old_centres, const index_t* labels,
                    const lloyd_partials& partials, matrix_view<T> new_centres) {
  const index_t k = old_centres.rows();
  const index_t d = data.d;
  const index_t chunks = data.chunks();
  std::vector<double> sums(static_cast<std::size_t>(k * d), 0.0);
  std::vector<double> weights(static_cast<std::size_t>(k), 0.0);
  for (index_t c = 0; c < chunks; ++c) {
    const double* ps = partials.sums.data() + c * k * d;
    for (index_t e = 0; e < k * d; ++e) sums[static_cast<std::size_t>(e)] += ps[e];
    const double* pw = partials.weights.data() + c * k;
    for (index_t j = 0; j < k; ++j) weights[static_cast<std::size_t>(j)] += pw[j];
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

  double shift = 0.0;
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
  return shift;
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
