#pragma once
/// @file
/// Internals of cellkit/contrastive/proto_nce.hpp: negative-prototype sampling (Floyd's algorithm on
/// a counter-based Philox stream, so the draws of an anchor do not depend on the policy or thread
/// count), one clustering's loss and gradients, and PCL's concentration estimate.

#include <cellkit/contrastive/detail/common.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace cellkit::contrastive::detail {

/// A uniform integer in [0, range) from 32-bit words, without bias (Lemire 2019: multiply, reject
/// the low products below 2^32 mod range). range >= 1.
CELLKIT_HD inline std::uint32_t uniform_below(philox_engine& eng, std::uint32_t range) {
  std::uint64_t m = static_cast<std::uint64_t>(eng.next_u32()) * range;
  auto low = static_cast<std::uint32_t>(m);
  if (low < range) {
    const std::uint32_t threshold = (0u - range) % range;
    while (low < threshold) {
      m = static_cast<std::uint64_t>(eng.next_u32()) * range;
      low = static_cast<std::uint32_t>(m);
    }
  }
  return static_cast<std::uint32_t>(m >> 32);
}

/// Marks (mask[j] = 1, else 0, for j in [0, k)) the prototypes in the denominator of anchor
/// `anchor` for clustering `stream`: its positive `positive`, and `r` of the other k - 1
/// prototypes drawn without replacement (all of them when r < 0 or r >= k - 1). Sampling: Floyd's
/// algorithm over the positions 0 .. k-2 of the other prototypes (position p is prototype p, or
/// p + 1 from the positive on): for j = k-1-r .. k-2, t = uniform_below(j + 1); mark t, or j if t
/// is marked already. Draws from philox_engine(seed, stream, anchor) only, so host and device mark
/// the same prototypes. Cost O(k) (clearing the mask) + O(r) draws.
CELLKIT_HD inline void mark_denominator(unsigned char* mask, index_t k, index_t positive, index_t r, std::uint64_t seed,
                                        std::uint32_t stream, index_t anchor) {
  const bool all = r < 0 || r >= k - 1;
  for (index_t j = 0; j < k; ++j) mask[j] = all ? 1 : 0;
  if (all) return;
  mask[positive] = 1;
  philox_engine eng(seed, stream, static_cast<std::uint64_t>(anchor));
  for (index_t j = k - 1 - r; j < k - 1; ++j) {
    const auto t = static_cast<index_t>(uniform_below(eng, static_cast<std::uint32_t>(j + 1)));
    const index_t slot_t = t < positive ? t : t + 1;
    const index_t slot_j = j < positive ? j : j + 1;
    if (mask[slot_t]) {
      mask[slot_j] = 1;
    } else {
      mask[slot_t] = 1;
    }
  }
}

/// `mark_denominator` into a host vector (resized to k).
inline void mark_denominator(std::vector<unsigned char>& mask, index_t k, index_t positive, index_t r,
                             std::uint64_t seed, std::uint32_t stream, index_t anchor) {
  mask.resize(static_cast<std::size_t>(k));
  mark_denominator(mask.data(), k, positive, r, seed, stream, anchor);
}

/// One clustering's contribution. Inputs: normalised embeddings u (N x d), the prototypes' rows
/// already normalised and divided by their concentration (cs = c_j / phi_j, K x d), assignments.
/// Adds sum_i (lse_i - s_i,pos) to `loss` (double, rows in index order); with `du`, adds
/// scale * sum_j G_ij cs_j to du (N x d); with `dcs`, writes scale * sum_i G_ij u_i (K x d), where
/// G_ij = P_ij - [j = pos(i)] over the marked denominator. Rows in fixed blocks with serial GEMMs:
/// bit-identical for every thread count.
template <class T>
void proto_nce_clustering(int threads, matrix_view<const T> u, matrix_view<const T> cs, const index_t* assignment,
                          index_t negatives, std::uint64_t seed, std::uint32_t stream, T scale, double& loss,
                          matrix_view<T>* du, matrix_view<T>* dcs) {
  const index_t n = u.rows();
  const index_t k = cs.rows();
  const index_t d = u.cols();
  constexpr index_t block = 256;
  const index_t blocks = (n + block - 1) / block;
  const bool gradients = du != nullptr || dcs != nullptr;
  // G for every row when the prototypes' gradient is wanted (N x K); else one block per thread.
  host_buffer<T> g_all(dcs != nullptr ? n * k : 0, uninitialized);
  std::vector<double> row_loss(static_cast<std::size_t>(n));
  parallel_blocks(
      threads, blocks,
      [&] {
        return std::pair{host_buffer<T>(dcs != nullptr ? 0 : block * k, uninitialized), std::vector<unsigned char>()};
      },
      [&](index_t b, auto& scratch) {
        auto& [own, mask] = scratch;
        const index_t r0 = b * block;
        const index_t rn = std::min(block, n - r0);
        T* tile = dcs != nullptr ? g_all.data() + r0 * k : own.data();
        matrix_view<T> s(tile, rn, k, k);
        gemm(serial{}, u.row_block(r0, rn), cs, s, gemm_params<T>{T(1), T(0), false, true});
        for (index_t i = 0; i < rn; ++i) {
          const index_t a = r0 + i;
          const index_t pos = assignment[a];
          mark_denominator(mask, k, pos, negatives, seed, stream, a);
          T* row = s.row_data(i);
          double mx = -std::numeric_limits<double>::infinity();
          for (index_t j = 0; j < k; ++j) {
            if (mask[static_cast<std::size_t>(j)]) mx = std::max(mx, static_cast<double>(row[j]));
          }
          double sum = 0;
          for (index_t j = 0; j < k; ++j) {
            if (mask[static_cast<std::size_t>(j)]) sum += std::exp(static_cast<double>(row[j]) - mx);
          }
          const double lse = mx + std::log(sum);
          row_loss[static_cast<std::size_t>(a)] = lse - static_cast<double>(row[pos]);
          if (!gradients) continue;
          for (index_t j = 0; j < k; ++j) {
            const double p = mask[static_cast<std::size_t>(j)] ? std::exp(static_cast<double>(row[j]) - lse) : 0.0;
            row[j] = static_cast<T>((p - (j == pos ? 1.0 : 0.0)) * static_cast<double>(scale));
          }
        }
        if (du != nullptr) {
          gemm(serial{}, matrix_view<const T>(s), cs, du->row_block(r0, rn), gemm_params<T>{T(1), T(1), false, false});
        }
      });
  for (double v : row_loss) loss += v;
  if (dcs != nullptr) {
    gemm_rows_blocked<T>(threads, g_all.as_matrix(n, k), u, *dcs, gemm_params<T>{T(1), T(0), true, false});
  }
  (void)d;
}

/// numpy.percentile(x, q) with the default linear interpolation (x is sorted in place).
inline double percentile_linear(std::vector<double>& x, double q) {
  std::sort(x.begin(), x.end());
  const double position = (static_cast<double>(x.size()) - 1.0) * q / 100.0;
  const auto lo = static_cast<std::size_t>(std::floor(position));
  const std::size_t hi = std::min(lo + 1, x.size() - 1);
  const double t = position - static_cast<double>(lo);
  const double a = x[lo];
  const double b = x[hi];
  // numpy's _lerp: a + (b - a) t, or b - (b - a) (1 - t) for t >= 0.5
  return t >= 0.5 ? b - (b - a) * (1.0 - t) : a + (b - a) * t;
}

}  // namespace cellkit::contrastive::detail
