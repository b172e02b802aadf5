#pragma once
/// @file
/// The two kernels of a full-covariance EM pass over a block of rows (implementation of
/// cellkit/cluster/gmm.hpp), written for the block sizes EM has: a few dozen rows, K <= ~30
/// components, d ~ 50 coordinates.
///
/// A GEMM over the quadratic features x_a x_b (p = d(d+3)/2 per row, gmm_impl.hpp) spends as long
/// building and packing the B x p feature block as multiplying it: at K = 20 the product is too
/// thin for packing to pay off. These kernels read the block's d coordinates instead, and form the
/// products in registers:
///
///   E-step  x^T C_j x + l_j^T x = sum_a x_a (l_ja + sum_{b >= a} C_jab x_b), vectorised across
///           rows (every lane useful whatever K and d are), two components per tile, the
///           coefficients streamed in the order the tile reads them.
///   M-step  S_j = sum_r resp_rj [x_r; 1] [x_r; 1]^T (upper triangle and the last column, which is
///           sum_r resp_rj x_r), vectorised along b over the rows of the block, 4 values of a by
///           up to 4 vectors per tile (8 by up to 2 near the end of the triangle), the vectors
///           starting at the tile's first a.
///
/// Same flops as the feature GEMMs (plus the part of the triangle the M-step's vectors cover below
/// the diagonal), no feature block, no packing. Each output is one fixed-order multiply-add chain
/// over the block, so results depend only on the inputs, never on threads. Host only; GCC and
/// clang take the vector-extension paths, other compilers (and nvcc's front end) the scalar ones,
/// which compute the same sums in another order.

#include <cellkit/cluster/detail/simd_kernels.hpp>
#include <cellkit/core/config.hpp>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

namespace cellkit::cluster::detail {

/// Components per E-step tile; the coefficient stream pads K to a multiple of it with zeros.
inline constexpr index_t gmm_quadratic_tile_components = 2;

/// The coefficients of the log-density's x-dependent part, in the order the E-step tiles read
/// them: per tile of two components j, j + 1, for each a: (l_ja, l_j+1,a), then (C_jab, C_j+1,ab)
/// for b = a .. d - 1. `coef` is the p x k feature-coefficient matrix of gmm_impl.hpp (quadratic
/// features (a, b), a <= b, in row-major triangle order, then the d linear ones).
template <class T>
std::vector<T> gmm_quadratic_stream(const T* coef, index_t k, index_t d) {
  constexpr index_t tc = gmm_quadratic_tile_components;
  const index_t q = d * (d + 1) / 2;
  const index_t p = q + d;
  const index_t tiles = (k + tc - 1) / tc;
  std::vector<T> stream(static_cast<std::size_t>(tiles * tc * p), T(0));
  T* out = stream.data();
  for (index_t t = 0; t < tiles; ++t) {
    index_t f = 0;
    for (index_t a = 0; a < d; ++a) {
      for (index_t c = 0; c < tc; ++c, ++out)
        if (t * tc + c < k) *out = coef[(q + a) * k + t * tc + c];
      for (index_t b = a; b < d; ++b, ++f)
        for (index_t c = 0; c < tc; ++c, ++out)
          if (t * tc + c < k) *out = coef[f * k + t * tc + c];
    }
  }
  return stream;
}

/// Row-vector width of the blocks the kernels read: the transposed block's leading dimension and
/// the padded row length of the row-major block are multiples of it.
template <class T>
constexpr index_t gmm_kernel_lanes() {
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
  return 64 / static_cast<index_t>(sizeof(T));
#else
  return 1;
#endif
}

/// Row length of the padded row-major block (x, then 1, then zeros) and of the M-step's sums: an
/// M-step tile starting at row a0 reads vectors from column a0 through column d, so up to column
/// d + lanes - 1, and broadcasts from columns below gmm_moment_rows(d) <= d + 7.
template <class T>
constexpr index_t gmm_padded_row(index_t d) {
  constexpr index_t lanes = gmm_kernel_lanes<T>();
  return (d + 1 + lanes - 1) / lanes * lanes + lanes;
}

/// Rows of the M-step's sums per component (a < this; a >= d are padding).
constexpr index_t gmm_moment_rows(index_t d) { return (d + 7) / 8 * 8; }

/// Copies `count` rows of x (N x d, contiguous) into the kernels' two layouts: `xt` (d x ld,
/// transposed; columns count .. round_up(count, lanes) zero) and `xr` (count x padded_row: x, 1,
/// zeros).
template <class T>
void gmm_kernel_layouts(const T* x, index_t count, index_t d, index_t ld, T* CELLKIT_RESTRICT xt,
                        T* CELLKIT_RESTRICT xr) {
  constexpr index_t lanes = gmm_kernel_lanes<T>();
  const index_t cols = (count + lanes - 1) / lanes * lanes;
  const index_t dp = gmm_padded_row<T>(d);
  for (index_t r = 0; r < count; ++r) {
    const T* CELLKIT_RESTRICT row = x + r * d;
    T* CELLKIT_RESTRICT out = xr + r * dp;
    std::copy(row, row + d, out);
    out[d] = T(1);
    std::fill(out + d + 1, out + dp, T(0));
    for (index_t a = 0; a < d; ++a) xt[a * ld + r] = row[a];
  }
  for (index_t a = 0; a < d; ++a) std::fill(xt + a * ld + count, xt + a * ld + cols, T(0));
}

#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
/// One E-step tile: two components (rows out0, out1) x RowVectors row vectors.
template <class T, int RowVectors>
void gmm_quadratic_tile(const T* CELLKIT_RESTRICT stream, index_t d, const T* xt, index_t ld, T* out0, T* out1) {
  using vec = typename simd_vector<T>::type;
  constexpr index_t lanes = gmm_kernel_lanes<T>();
  vec acc0[RowVectors], acc1[RowVectors];
  CELLKIT_CLUSTER_UNROLL
  for (int v = 0; v < RowVectors; ++v) acc0[v] = acc1[v] = vec{};
  const T* s = stream;
  for (index_t a = 0; a < d; ++a) {
    vec in0[RowVectors], in1[RowVectors];
    CELLKIT_CLUSTER_UNROLL
    for (int v = 0; v < RowVectors; ++v) {
      in0[v] = vec{} + s[0];
      in1[v] = vec{} + s[1];
    }
    s += 2;
    const T* xb = xt + a * ld;
    for (index_t b = a; b < d; ++b, s += 2, xb += ld) {
      const T c0 = s[0], c1 = s[1];
      CELLKIT_CLUSTER_UNROLL
      for (int v = 0; v < RowVectors; ++v) {
        vec xv;
        std::memcpy(&xv, xb + v * lanes, sizeof(vec));
        in0[v] += xv * c0;
        in1[v] += xv * c1;
      }
    }
    CELLKIT_CLUSTER_UNROLL
    for (int v = 0; v < RowVectors; ++v) {
      vec xa;
      std::memcpy(&xa, xt + a * ld + v * lanes, sizeof(vec));
      acc0[v] += xa * in0[v];
      acc1[v] += xa * in1[v];
    }
  }
  CELLKIT_CLUSTER_UNROLL
  for (int v = 0; v < RowVectors; ++v) {
    std::memcpy(out0 + v * lanes, &acc0[v], sizeof(vec));
    std::memcpy(out1 + v * lanes, &acc1[v], sizeof(vec));
  }
}

/// out[0 .. Vectors * lanes) += the lanes of v, in double.
template <class T, int Vectors>
void gmm_add_to_sums(const typename simd_vector<T>::type (&v)[Vectors], double* out) {
  using vec = typename simd_vector<T>::type;
  constexpr index_t lanes = gmm_kernel_lanes<T>();
  CELLKIT_CLUSTER_UNROLL
  for (int i = 0; i < Vectors; ++i) {
    if constexpr (std::is_same_v<T, double>) {
      vec o;
      std::memcpy(&o, out + i * lanes, sizeof(vec));
      o += v[i];
      std::memcpy(out + i * lanes, &o, sizeof(vec));
    } else {
      for (index_t l = 0; l < lanes; ++l) out[i * lanes + l] += static_cast<double>(v[i][l]);
    }
  }
}

/// One M-step tile: rows a0 .. a0 + Rows - 1 of S_j x Vectors vectors of the padded block starting
/// at column b0, over `count` rows with responsibilities resp[r * stride]; adds into sums[a * dp +
/// b] (sums points at row a0). The responsibility scales the block's vectors, not the broadcasts:
/// Vectors multiplications a row instead of Rows.
template <class T, int Rows, int Vectors>
void gmm_second_moment_tile(const T* xr, index_t dp, const T* resp, index_t stride, index_t count, index_t a0,
                            index_t b0, double* sums) {
  using vec = typename simd_vector<T>::type;
  constexpr index_t lanes = gmm_kernel_lanes<T>();
  vec acc[Rows][Vectors];
  CELLKIT_CLUSTER_UNROLL
  for (int a = 0; a < Rows; ++a) {
    CELLKIT_CLUSTER_UNROLL
    for (int v = 0; v < Vectors; ++v) acc[a][v] = vec{};
  }
  for (index_t r = 0; r < count; ++r) {
    vec xv[Vectors];
    const T rj = resp[r * stride];
    CELLKIT_CLUSTER_UNROLL
    for (int v = 0; v < Vectors; ++v) {
      std::memcpy(&xv[v], xr + r * dp + b0 + v * lanes, sizeof(vec));
      xv[v] *= rj;
    }
    CELLKIT_CLUSTER_UNROLL
    for (int a = 0; a < Rows; ++a) {
      const T wa = xr[r * dp + a0 + a];
      CELLKIT_CLUSTER_UNROLL
      for (int v = 0; v < Vectors; ++v) acc[a][v] += xv[v] * wa;
    }
  }
  CELLKIT_CLUSTER_UNROLL
  for (int a = 0; a < Rows; ++a) gmm_add_to_sums<T, Vectors>(acc[a], sums + a * dp + b0);
}

/// Calls tile(std::integral_constant<int, vectors>) for 1 <= vectors <= Max (nothing otherwise).
template <int Max, class Tile>
void gmm_dispatch_vectors(index_t vectors, Tile&& tile) {
  if constexpr (Max >= 1) {
    if (vectors == Max)
      tile(std::integral_constant<int, Max>{});
    else
      gmm_dispatch_vectors<Max - 1>(vectors, tile);
  }
}
#endif

/// E-step: dot[j * ld + r] = x_r^T C_j x_r + l_j^T x_r for j < k and r < round_up(count, lanes),
/// from the transposed block `xt` (d x ld) and `gmm_quadratic_stream`. `pad` is scratch of ld values
/// (the second output row of the last tile when k is odd).
template <class T>
void gmm_quadratic_block(const T* stream, index_t k, index_t d, const T* xt, index_t ld, index_t count, T* dot,
                         T* pad) {
  constexpr index_t tc = gmm_quadratic_tile_components;
  const index_t p = d * (d + 3) / 2;
  const index_t tiles = (k + tc - 1) / tc;
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
  constexpr index_t lanes = gmm_kernel_lanes<T>();
  constexpr int max_vectors = 4;
  const index_t vectors = (count + lanes - 1) / lanes;
  for (index_t t = 0; t < tiles; ++t) {
    const T* s = stream + t * tc * p;
    T* out0 = dot + t * tc * ld;
    T* out1 = t * tc + 1 < k ? out0 + ld : pad;
    for (index_t v0 = 0; v0 < vectors; v0 += max_vectors) {
      const index_t offset = v0 * lanes;
      gmm_dispatch_vectors<max_vectors>(std::min<index_t>(max_vectors, vectors - v0), [&](auto width) {
        gmm_quadratic_tile<T, decltype(width)::value>(s, d, xt + offset, ld, out0 + offset, out1 + offset);
      });
    }
  }
#else
  (void)pad;
  for (index_t t = 0; t < tiles; ++t)
    for (index_t c = 0; c < tc && t * tc + c < k; ++c) {
      T* out = dot + (t * tc + c) * ld;
      for (index_t r = 0; r < count; ++r) {
        const T* s = stream + t * tc * p + c;
        T acc = T(0);
        for (index_t a = 0; a < d; ++a) {
          T inner = *s;
          s += tc;
          for (index_t b = a; b < d; ++b, s += tc) inner += *s * xt[b * ld + r];
          acc += xt[a * ld + r] * inner;
        }
        out[r] = acc;
      }
    }
#endif
}

/// M-step: sums[j][a][b] += sum_{r < count} resp_rj xr_ra xr_rb for j < k, a < gmm_moment_rows(d)
/// and the b the tiles cover: every b >= a up to column d, the 1 (sums[j][a][d] = sum_r resp_rj
/// x_ra), and a few on either side, which callers ignore. `sums` is k x gmm_moment_rows(d) x
/// gmm_padded_row(d) doubles; resp is count x k.
template <class T>
void gmm_second_moment_block(const T* xr, index_t d, const T* resp, index_t k, index_t count, double* sums) {
  const index_t dp = gmm_padded_row<T>(d);
  const index_t rows = gmm_moment_rows(d);
  for (index_t j = 0; j < k; ++j) {
    double* sj = sums + j * rows * dp;
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
    constexpr index_t lanes = gmm_kernel_lanes<T>();
    // Tiles of 4 rows a by up to 4 vectors; 8 rows where the row is at most 2 vectors long (the
    // accumulators and the vectors of the block stay in registers).
    for (index_t a0 = 0; a0 < rows;) {
      const index_t vectors = (d + 1 - a0 + lanes - 1) / lanes;  // columns a0 .. d
      if (vectors <= 2 && a0 % 8 == 0) {
        gmm_dispatch_vectors<2>(vectors, [&](auto width) {
          gmm_second_moment_tile<T, 8, decltype(width)::value>(xr, dp, resp + j, k, count, a0, a0, sj + a0 * dp);
        });
        a0 += 8;
        continue;
      }
      const index_t parts = (vectors + 3) / 4;
      for (index_t part = 0, v0 = 0; part < parts; ++part) {
        const index_t width = (vectors - v0) / (parts - part);
        gmm_dispatch_vectors<4>(width, [&](auto w) {
          gmm_second_moment_tile<T, 4, decltype(w)::value>(xr, dp, resp + j, k, count, a0, a0 + v0 * lanes,
                                                           sj + a0 * dp);
        });
        v0 += width;
      }
      a0 += 4;
    }
#else
    for (index_t a = 0; a < rows; ++a)
      for (index_t b = std::min(a, d); b <= d; ++b) {
        T acc = T(0);
        for (index_t r = 0; r < count; ++r) acc += xr[r * dp + a] * (resp[r * k + j] * xr[r * dp + b]);
        sj[a * dp + b] += static_cast<double>(acc);
      }
#endif
  }
}

}  // namespace cellkit::cluster::detail
