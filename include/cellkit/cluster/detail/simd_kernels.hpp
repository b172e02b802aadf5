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
/// wins.
template <class T>
class centre_groups {
 public:
  static constexpr index_t group = 4;

  explicit centre_groups(matrix_view<const T> centres) : k_(centres.rows()), d_(centres.cols()) {
    groups_ = (k_ + group - 1) / group;
    coords_.assign(static_cast<std::size_t>(groups_ * d_ * group), T(0));
    norms_.assign(static_cast<std::size_t>(groups_ * group), std::numeric_limits<T>::infinity());
    for (index_t j = 0; j < k_; ++j) {
      const index_t g = j / group, slot = j % group;
      T norm = T(0);
      for (index_t a = 0; a < d_; ++a) {
        const T c = centres(j, a);
        norm += c * c;
        coords_[static_cast<std::size_t>((g * d_ + a) * group + slot)] = T(-2) * c;
      }
      norms_[static_cast<std::size_t>(j)] = norm;
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

/// x (rows x d) laid out in tiles for `nearest_centres`: tile t holds rows [t R, t R + R) as d x R
/// (coordinate-major), R = nearest_centres_tile_rows<T>(), rows beyond x zero. Returns an empty
/// vector where the tiled kernel is not compiled (it then reads x directly).
template <class T>
std::vector<T> tile_rows_for_nearest_centres(matrix_view<const T> x) {
  constexpr index_t tile_rows = nearest_centres_tile_rows<T>();
  if constexpr (tile_rows == 1) {
    (void)x;
    return {};
  } else {
    const index_t d = x.cols();
    const index_t tiles = (x.rows() + tile_rows - 1) / tile_rows;
    std::vector<T> tiled(static_cast<std::size_t>(tiles * tile_rows * d), T(0));
    for (index_t i = 0; i < x.rows(); ++i) {
      T* tile = tiled.data() + (i / tile_rows) * tile_rows * d + i % tile_rows;
      const T* xi = x.row_data(i);
      for (index_t a = 0; a < d; ++a) tile[a * tile_rows] = xi[a];
    }
    return tiled;
  }
}

/// For every row x_i of `x`: labels[i] = argmin_j (||c_j||^2 - 2 x_i.c_j), the lowest j on ties, and
/// best[i] = that minimum. `tiled`: the same rows from `tile_rows_for_nearest_centres` (pointer to
/// the tile of x's first row), or null to tile here into `tile` (scratch of d *
/// nearest_centres_tile_rows<T>() values); transposing costs about as much as the distances at
/// k = 20, so callers that pass over the same rows repeatedly tile them once.
///
/// Vectorised across rows, not centres: a tile of rows is transposed so that one SIMD vector holds
/// one coordinate of 16 (float) or 8 (double) rows; each centre coordinate is a broadcast. No lane
/// is wasted on padding whatever k is (a centre-major layout pads k = 20 to 32 floats), and the
/// argmin is a vector compare-and-select per centre. Each distance is one fixed-order FMA chain.
template <class T>
void nearest_centres(matrix_view<const T> x, const T* tiled, const centre_groups<T>& c, T* tile, index_t* labels,
                     T* best) {
  const index_t rows = x.rows();
  const index_t d = c.d();
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
  using vec = typename simd_vector<T>::type;
  constexpr index_t lanes = 64 / static_cast<index_t>(sizeof(T));
  constexpr int row_vectors = 4;
  constexpr int group = static_cast<int>(centre_groups<T>::group);
  constexpr index_t tile_rows = lanes * row_vectors;
  for (index_t first = 0; first < rows; first += tile_rows) {
    const index_t count = std::min(tile_rows, rows - first);
    const T* xt = tiled != nullptr ? tiled + first * d : tile;
    if (tiled == nullptr) {
      for (index_t r = 0; r < count; ++r) {
        const T* xr = x.row_data(first + r);
        for (index_t a = 0; a < d; ++a) tile[a * tile_rows + r] = xr[a];
      }
      for (index_t a = 0; a < d; ++a)
        for (index_t r = count; r < tile_rows; ++r) tile[a * tile_rows + r] = T(0);
    }

    vec min_value[row_vectors], min_index[row_vectors];
    for (int v = 0; v < row_vectors; ++v) {
      min_value[v] = vec{} + std::numeric_limits<T>::infinity();
      min_index[v] = vec{};
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
      for (int j = 0; j < group; ++j) {
        const vec index = vec{} + static_cast<T>(g * group + j);
        CELLKIT_CLUSTER_UNROLL
        for (int v = 0; v < row_vectors; ++v) {
          const auto less = acc[v][j] < min_value[v];
          min_value[v] = less ? acc[v][j] : min_value[v];
          min_index[v] = less ? index : min_index[v];
        }
      }
    }
    T values[tile_rows], indices[tile_rows];
    std::memcpy(values, min_value, sizeof(values));
    std::memcpy(indices, min_index, sizeof(indices));
    for (index_t r = 0; r < count; ++r) {
      labels[first + r] = static_cast<index_t>(indices[r]);
      best[first + r] = values[r];
    }
  }
#else
  (void)tiled;
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
    best[r] = best_value;
  }
#endif
}

}  // namespace cellkit::cluster::detail
