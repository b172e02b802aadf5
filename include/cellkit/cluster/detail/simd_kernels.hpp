#pragma once
/// @file
/// SIMD kernels of the cluster heads, vectorised across rows (cells) rather than along a row: with
/// K = 20 centres, a row-wise loop pads 20 to a whole number of vectors and ends every row with a
/// horizontal reduction; across rows every lane is useful and reductions become plain vector adds.
/// Written with GCC/clang vector extensions (the width is 64 bytes: one AVX-512 register, two AVX2
/// registers); other compilers and nvcc's front end take the scalar paths.
///
/// Bits depend only on the inputs (each output is one fixed-order multiply-add chain), never on the
/// thread count or on block boundaries. Host only.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/views.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

namespace cellkit::cluster::detail {

#if defined(__GNUC__) && !defined(__CUDACC__)  // nvcc's front end: the portable path
#define CELLKIT_CLUSTER_VECTOR_EXTENSIONS 1
// The accumulators live in registers only if the loops over them are fully unrolled.
#if defined(__clang__)
#define CELLKIT_CLUSTER_UNROLL _Pragma("unroll")
#else
#define CELLKIT_CLUSTER_UNROLL _Pragma("GCC unroll 16")
#endif
template <class T>
struct simd_vector;
template <>
struct simd_vector<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct simd_vector<double> {
  typedef double type __attribute__((vector_size(64)));
};
#else
#define CELLKIT_CLUSTER_VECTOR_EXTENSIONS 0
#endif

/// The centres for `nearest_centres`, in groups of `group` centres: -2 c_j as [group][a][j % group]
/// and ||c_j||^2 as [group][j % group]; the padding of the last group has norm +inf, so it never
/// wins. From centres of another type U (double centres for the float screening pass of double
/// k-means), the centres are multiplied by `scale` (a power of two) and ||scale c_j||^2 is summed in
/// U before both are rounded to T.
template <class T>
class centre_groups {
 public:
  static constexpr index_t group = 4;

  template <class U>
  explicit centre_groups(matrix_view<const U> centres, U scale = U(1)) : k_(centres.rows()), d_(centres.cols()) {
    groups_ = (k_ + group - 1) / group;
    coords_.assign(static_cast<std::size_t>(groups_ * d_ * group), T(0));
    norms_.assign(static_cast<std::size_t>(groups_ * group), std::numeric_limits<T>::infinity());
    for (index_t j = 0; j < k_; ++j) {
      const index_t g = j / group, slot = j % group;
      U norm = U(0);
      for (index_t a = 0; a < d_; ++a) {
        const U c = centres(j, a) * scale;
        norm += c * c;
        coords_[static_cast<std::size_t>((g * d_ + a) * group + slot)] = static_cast<T>(U(-2) * c);
      }
      norms_[static_cast<std::size_t>(j)] = static_cast<T>(norm);
    }
  }

  index_t k() const { return k_; }
  index_t d() const { return d_; }
  index_t groups() const { return groups_; }
  const T* coords(index_t g) const { return coords_.data() + g * d_ * group; }
  const T* norms(index_t g) const { return norms_.data() + g * group; }
  T norm(index_t j) const { return norms_[static_cast<std::size_t>(j)]; }

 private:
  index_t k_, d_, groups_ = 0;
  std::vector<T> coords_, norms_;
};

/// Rows handled together by `nearest_centres` (and the scratch it needs: d x tile_rows values).
template <class T>
constexpr index_t nearest_centres_tile_rows() {
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
  return 4 * (64 / static_cast<index_t>(sizeof(T)));
#else
  return 1;
#endif
}

/// Values in the tiled layout of `rows` x d rows for `nearest_centres_tile<S>` (0 where that kernel
/// is not compiled).
template <class S>
index_t nearest_centres_tiled_size(index_t rows, index_t d) {
  constexpr index_t tile_rows = nearest_centres_tile_rows<S>();
  return tile_rows == 1 ? 0 : (rows + tile_rows - 1) / tile_rows * tile_rows * d;
}

/// Rows [first, first + count) of x in the tiled layout of `nearest_centres_tile<S>`: tile t holds
/// rows [t R, t R + R) as d x R (coordinate-major), R = nearest_centres_tile_rows<S>(); every value
/// is x * scale rounded to S. `first` is a multiple of R; the lanes of the last tile beyond
/// first + count are zeroed. Whole tiles are written, so disjoint row ranges can be tiled in
/// parallel into one `tiled` array (nearest_centres_tiled_size<S>(x.rows(), d) values, best 64-byte
/// aligned so that no vector load straddles two cache lines).
template <class S, class T>
void tile_rows_for_nearest_centres(matrix_view<const T> x, T scale, index_t first, index_t count, S* tiled) {
  constexpr index_t tile_rows = nearest_centres_tile_rows<S>();
  const index_t d = x.cols();
  for (index_t i = first; i < first + count; ++i) {
    S* tile = tiled + (i / tile_rows) * tile_rows * d + i % tile_rows;
    const T* xi = x.row_data(i);
    for (index_t a = 0; a < d; ++a) tile[a * tile_rows] = static_cast<S>(xi[a] * scale);
  }
  const index_t end = first + count;
  if (end % tile_rows != 0) {
    S* tile = tiled + (end / tile_rows) * tile_rows * d;
    for (index_t a = 0; a < d; ++a)
      for (index_t r = end % tile_rows; r < tile_rows; ++r) tile[a * tile_rows + r] = S(0);
  }
}

/// Memory the E-step will need next (up to two contiguous byte ranges), fetched into cache while a
/// tile's distances are computed: the kernel is compute-bound and has load slots to spare, while
/// the rows stream from memory and the hardware prefetcher alone leaves the FMA units waiting at
/// every tile start.
struct prefetch_plan {
  const char* first = nullptr;
  std::size_t first_bytes = 0;
  const char* second = nullptr;
  std::size_t second_bytes = 0;
};

#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
/// The argmin of ||c_j||^2 - 2 x_r.c_j over the centres for each of the R rows of one tile `xt`
/// (d x R, see `tile_rows_for_nearest_centres`): index[r] (as T; k < 2^24), value[r] (if not null)
/// and, with `Second`, second[r] = the lowest value among the other centres (+inf for k = 1). The
/// lowest j wins ties (then second[r] == value[r]). `prefetch`: see `prefetch_plan`.
///
/// Vectorised across rows, not centres: one SIMD vector holds one coordinate of 16 (float) or 8
/// (double) rows and each centre coordinate is a broadcast, so no lane is wasted on padding
/// whatever k is (a centre-major layout pads k = 20 to 32 floats), 4 x 4 accumulators stay in
/// registers for the whole d-loop and the argmin is a vector compare-and-select per centre. Each
/// value is one fixed-order FMA chain. The running minima live in memory between centre groups:
/// kept in registers they push the row vectors out of the 32 registers inside the d-loop.
template <class T, bool Second>
void nearest_centres_tile(const T* xt, const centre_groups<T>& c, const prefetch_plan& prefetch, T* index, T* value,
                          T* second) {
  using vec = typename simd_vector<T>::type;
  constexpr index_t lanes = 64 / static_cast<index_t>(sizeof(T));
  constexpr int row_vectors = 4;
  constexpr int group = static_cast<int>(centre_groups<T>::group);
  constexpr index_t tile_rows = lanes * row_vectors;
  const index_t d = c.d();
  // The prefetches are spread evenly over all d-loop steps of the tile.
  const char* line_base[2] = {prefetch.first, prefetch.second};
  const std::size_t lines[2] = {(prefetch.first_bytes + 63) / 64, (prefetch.second_bytes + 63) / 64};
  const std::size_t steps = static_cast<std::size_t>(c.groups() * d);
  const std::size_t per_step = steps > 0 ? (lines[0] + lines[1] + steps - 1) / steps : 0;
  int region = lines[0] > 0 ? 0 : 1;
  std::size_t line = 0;

  alignas(64) T min_value[tile_rows], min_index[tile_rows], min_second[tile_rows];
  for (index_t r = 0; r < tile_rows; ++r) {
    min_value[r] = std::numeric_limits<T>::infinity();
    min_second[r] = std::numeric_limits<T>::infinity();
    min_index[r] = T(0);
  }
  for (index_t g = 0; g < c.groups(); ++g) {
    const T* cg = c.coords(g);
    const T* ng = c.norms(g);
    vec acc[row_vectors][group];
    CELLKIT_CLUSTER_UNROLL
    for (int v = 0; v < row_vectors; ++v) {
      CELLKIT_CLUSTER_UNROLL
      for (int j = 0; j < group; ++j) acc[v][j] = vec{} + ng[j];
    }
    for (index_t a = 0; a < d; ++a) {
      for (std::size_t p = 0; p < per_step && region < 2; ++p) {
        __builtin_prefetch(line_base[region] + 64 * line);
        if (++line == lines[region]) {
          line = 0;
          region = region == 0 && lines[1] > 0 ? 1 : 2;
        }
      }
      vec xv[row_vectors];
      CELLKIT_CLUSTER_UNROLL
      for (int v = 0; v < row_vectors; ++v) std::memcpy(&xv[v], xt + a * tile_rows + v * lanes, sizeof(vec));
      CELLKIT_CLUSTER_UNROLL
      for (int j = 0; j < group; ++j) {
        const T cj = cg[a * group + j];
        CELLKIT_CLUSTER_UNROLL
        for (int v = 0; v < row_vectors; ++v) acc[v][j] += xv[v] * cj;
      }
    }
    CELLKIT_CLUSTER_UNROLL
    for (int v = 0; v < row_vectors; ++v) {
      vec best, best_index, next_best;
      std::memcpy(&best, min_value + v * lanes, sizeof(vec));
      std::memcpy(&best_index, min_index + v * lanes, sizeof(vec));
      if constexpr (Second) std::memcpy(&next_best, min_second + v * lanes, sizeof(vec));
      CELLKIT_CLUSTER_UNROLL
      for (int j = 0; j < group; ++j) {
        const auto less = acc[v][j] < best;
        if constexpr (Second) {
          // second = min over the others: the old minimum when j takes over, else the candidate.
          const vec loser = less ? best : acc[v][j];
          next_best = loser < next_best ? loser : next_best;
        }
        best = less ? acc[v][j] : best;
        best_index = less ? vec{} + static_cast<T>(g * group + j) : best_index;
      }
      std::memcpy(min_value + v * lanes, &best, sizeof(vec));
      std::memcpy(min_index + v * lanes, &best_index, sizeof(vec));
      if constexpr (Second) std::memcpy(min_second + v * lanes, &next_best, sizeof(vec));
    }
  }
  std::memcpy(index, min_index, sizeof(min_index));
  if (value != nullptr) std::memcpy(value, min_value, sizeof(min_value));
  if constexpr (Second) std::memcpy(second, min_second, sizeof(min_second));
}
#endif

/// For every row x_i of `x` (any row stride): labels[i] = argmin_j (||c_j||^2 - 2 x_i.c_j), the
/// lowest j on ties, and, if `best` is not null, best[i] = that minimum. The rows are transposed
/// here, tile by tile, into `tile` (scratch of d * nearest_centres_tile_rows<T>() values); that
/// costs about as much as the distances at k = 20, so callers that pass over the same rows
/// repeatedly tile them once and call `nearest_centres_tile` instead. The values are bit for bit
/// those of `nearest_centres_tile` on the same rows.
template <class T>
void nearest_centres(matrix_view<const T> x, const centre_groups<T>& c, T* tile, index_t* labels, T* best) {
  const index_t rows = x.rows();
  const index_t d = c.d();
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
  constexpr index_t tile_rows = nearest_centres_tile_rows<T>();
  for (index_t first = 0; first < rows; first += tile_rows) {
    const index_t count = std::min(tile_rows, rows - first);
    for (index_t r = 0; r < count; ++r) {
      const T* xr = x.row_data(first + r);
      for (index_t a = 0; a < d; ++a) tile[a * tile_rows + r] = xr[a];
    }
    for (index_t a = 0; a < d; ++a)
      for (index_t r = count; r < tile_rows; ++r) tile[a * tile_rows + r] = T(0);
    T indices[tile_rows], values[tile_rows];
    nearest_centres_tile<T, false>(tile, c, prefetch_plan{}, indices, values, nullptr);
    for (index_t r = 0; r < count; ++r) {
      labels[first + r] = static_cast<index_t>(indices[r]);
      if (best != nullptr) best[first + r] = values[r];
    }
  }
#else
  (void)tile;
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x.row_data(r);
    T best_value = std::numeric_limits<T>::infinity();
    index_t best_label = 0;
    for (index_t j = 0; j < c.k(); ++j) {
      const T* cg = c.coords(j / centre_groups<T>::group);
      const index_t slot = j % centre_groups<T>::group;
      T s = c.norm(j);
      for (index_t a = 0; a < d; ++a) s += xr[a] * cg[a * centre_groups<T>::group + slot];
      if (s < best_value) {
        best_value = s;
        best_label = j;
      }
    }
    labels[r] = best_label;
    if (best != nullptr) best[r] = best_value;
  }
#endif
}

}  // namespace cellkit::cluster::detail
