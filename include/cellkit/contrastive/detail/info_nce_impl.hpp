#pragma once
/// @file
/// Internals of cellkit/contrastive/info_nce.hpp: the tiled engines (row log-sum-exp, and the
/// gradient pass that recomputes the similarities tile by tile) and the materialised engine that
/// serves small problems and the tests as an oracle.
///
/// Notation: rows Z_r (M x d) and columns Z_c (K x d) of normalised embeddings, logits
/// S = alpha Z_r Z_c^T (alpha = 1/tau), an optional exclusion of the "self" column (b == a, when
/// Z_r and Z_c are the same matrix), and per-row log-sum-exp lse_a over the non-excluded columns
/// (plus an optional extra logit per row).
///
/// Two tiled engines:
/// - rectangular (tiled_row_lse, tiled_gradient; the bank variant): rows in blocks of `row_block`
///   (one unit of parallel work, one thread, serial GEMMs), columns in tiles of `column_tile`,
///   visited in increasing order; the gradient pass writes only its own rows.
/// - symmetric (symmetric_row_lse, symmetric_gradient; Z_r = Z_c, self excluded): only the tiles of
///   block pairs A <= B, scheduled in rounds of disjoint pairs (round_robin_pairs); a tile feeds
///   both its rows and its columns (S and the gradient coefficients are symmetric).
/// The only O(N)-sized scratch is one tile per thread. Blocks, tiles, GEMM shapes, the round order
/// and the summation orders depend only on the tile sizes, so the bits of every result are the same
/// for every thread count and schedule.

#include <cellkit/contrastive/detail/common.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>

#include <algorithm>
#include <limits>
#include <span>
#include <utility>
#include <vector>

namespace cellkit::contrastive::detail {

/// Lanes of the explicit reductions below: the summation order is fixed in the source (16 partial
/// sums combined pairwise), whatever vector width the compiler picks.
inline constexpr int lanes = 16;

/// max over s[0 .. n).
template <class T>
inline T row_max(const T* CELLKIT_RESTRICT s, index_t n) {
  T lane[lanes];
  for (int l = 0; l < lanes; ++l) lane[l] = -std::numeric_limits<T>::infinity();
  const index_t full = n - n % lanes;
  for (index_t j = 0; j < full; j += lanes) {
    for (int l = 0; l < lanes; ++l) lane[l] = s[j + l] > lane[l] ? s[j + l] : lane[l];
  }
  for (index_t j = full; j < n; ++j) lane[j - full] = s[j] > lane[j - full] ? s[j] : lane[j - full];
  for (int width = lanes / 2; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) lane[l] = lane[l + width] > lane[l] ? lane[l + width] : lane[l];
  }
  return lane[0];
}

/// sum over e^(s[j] - shift), j in [0, n).
template <class T>
inline T row_sum_exp(const T* CELLKIT_RESTRICT s, index_t n, T shift) {
  T lane[lanes];
  for (int l = 0; l < lanes; ++l) lane[l] = T(0);
  const index_t full = n - n % lanes;
  for (index_t j = 0; j < full; j += lanes) {
    for (int l = 0; l < lanes; ++l) lane[l] += vexp(s[j + l] - shift);
  }
  for (index_t j = full; j < n; ++j) lane[j - full] += vexp(s[j] - shift);
  for (int width = lanes / 2; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) lane[l] += lane[l + width];
  }
  return lane[0];
}

/// Tile sizes (validated by the callers).
struct tile_shape {
  index_t row_block = 256;
  index_t column_tile = 512;
};

/// lse[a] = log( sum over non-excluded b of e^{S_ab} (+ e^{extra[a]}) ) for every row a of Z_r.
template <class T>
void tiled_row_lse(int threads, matrix_view<const T> zr, matrix_view<const T> zc, T alpha, bool exclude_self,
                   const T* extra, tile_shape shape, T* lse) {
  const index_t m = zr.rows();
  const index_t k = zc.rows();
  const index_t rb = shape.row_block;
  const index_t ct = shape.column_tile;
  const index_t blocks = (m + rb - 1) / rb;
  parallel_blocks(
      threads, blocks,
      [&] {
        return std::pair{host_buffer<T>(rb * ct, uninitialized),
                         std::vector<math::log_sum_exp_accumulator<T>>(static_cast<std::size_t>(rb))};
      },
      [&](index_t block, auto& scratch) {
        auto& [tile, acc] = scratch;
        const index_t r0 = block * rb;
        const index_t rn = std::min(rb, m - r0);
        std::fill(acc.begin(), acc.end(), math::log_sum_exp_accumulator<T>{});
        const auto rows = zr.row_block(r0, rn);
        for (index_t c0 = 0; c0 < k; c0 += ct) {
          const index_t cn = std::min(ct, k - c0);
          matrix_view<T> s(tile.data(), rn, cn, ct);
          gemm(serial{}, rows, zc.row_block(c0, cn), s, gemm_params<T>{alpha, T(0), false, true});
          for (index_t i = 0; i < rn; ++i) {
            T* row = s.row_data(i);
            const index_t self = r0 + i - c0;
            if (exclude_self && self >= 0 && self < cn) row[self] = -std::numeric_limits<T>::infinity();
            const T tile_max = row_max(row, cn);
            if (!(tile_max > -std::numeric_limits<T>::infinity())) continue;  // every column excluded
            auto& a = acc[static_cast<std::size_t>(i)];
            const T shift = tile_max > a.max ? tile_max : a.max;
            a.merge(math::log_sum_exp_accumulator<T>{shift, row_sum_exp(row, cn, shift)});
          }
        }
        for (index_t i = 0; i < rn; ++i) {
          auto& a = acc[static_cast<std::size_t>(i)];
          if (extra != nullptr) a.add(extra[r0 + i]);
          lse[r0 + i] = a.value();
        }
      });
}

/// Coefficients of the gradient pass: coef_ab = w_a e^{S_ab - row_shift_a} [row term] +
/// v_b e^{S_ab - col_shift_b} [column term], 0 for the excluded self column.
template <class T>
struct gradient_terms {
  const T* row_weight = nullptr;  ///< w_a (required with a row term)
  const T* row_shift = nullptr;   ///< the row term's shift (null: no row term)
  const T* col_weight = nullptr;  ///< v_b (required with a column term)
  const T* col_shift = nullptr;   ///< the column term's shift (null: no column term)
};

/// A range of rows of Z_r and where its gradient goes: out (count x d) = sum_b coef_ab Z_c[b].
template <class T>
struct row_task {
  index_t first = 0;
  index_t count = 0;
  matrix_view<T> out;
};

/// Cuts rows [first, first + count) into tasks of at most `block` rows writing to consecutive rows
/// of `out` (count x d).
template <class T>
void append_row_tasks(std::vector<row_task<T>>& tasks, index_t first, index_t count, index_t block,
                      matrix_view<T> out) {
  for (index_t r = 0; r < count; r += block) {
    const index_t n = std::min(block, count - r);
    tasks.push_back(row_task<T>{first + r, n, out.row_block(r, n)});
  }
}

template <bool RowTerm, bool ColTerm, class T>
inline void gradient_coefficients_row(T* CELLKIT_RESTRICT s, index_t n, T wa, T la, const T* CELLKIT_RESTRICT wb,
                                      const T* CELLKIT_RESTRICT lb) {
  for (index_t j = 0; j < n; ++j) {
    const T x = s[j];
    T c = T(0);
    if constexpr (RowTerm) c += wa * vexp(x - la);
    if constexpr (ColTerm) c += wb[j] * vexp(x - lb[j]);
    s[j] = c;
  }
}

/// For every task: out = sum over non-excluded b of coef_ab Z_c[b] (overwritten), recomputing each
/// tile of S exactly as tiled_row_lse did (same GEMM calls when the tile shape is the same).
template <class T>
void tiled_gradient(int threads, matrix_view<const T> zr, matrix_view<const T> zc, T alpha, bool exclude_self,
                    gradient_terms<T> terms, std::span<const row_task<T>> tasks, tile_shape shape) {
  const index_t k = zc.rows();
  const index_t ct = shape.column_tile;
  const bool row_term = terms.row_shift != nullptr;
  const bool col_term = terms.col_shift != nullptr;
  index_t max_rows = 1;
  for (const auto& task : tasks) max_rows = std::max(max_rows, task.count);
  parallel_blocks(
      threads, static_cast<index_t>(tasks.size()), [&] { return host_buffer<T>(max_rows * ct, uninitialized); },
      [&](index_t t, host_buffer<T>& tile) {
        const row_task<T>& task = tasks[static_cast<std::size_t>(t)];
        const index_t r0 = task.first;
        const index_t rn = task.count;
        const auto rows = zr.row_block(r0, rn);
        if (k == 0) {
          for (index_t i = 0; i < rn; ++i) std::fill_n(task.out.row_data(i), task.out.cols(), T(0));
          return;
        }
        for (index_t c0 = 0; c0 < k; c0 += ct) {
          const index_t cn = std::min(ct, k - c0);
          matrix_view<T> s(tile.data(), rn, cn, ct);
          const auto cols = zc.row_block(c0, cn);
          gemm(serial{}, rows, cols, s, gemm_params<T>{alpha, T(0), false, true});
          for (index_t i = 0; i < rn; ++i) {
            const index_t a = r0 + i;
            T* row = s.row_data(i);
            const T wa = row_term ? terms.row_weight[a] : T(0);
            const T la = row_term ? terms.row_shift[a] : T(0);
            const T* wb = col_term ? terms.col_weight + c0 : nullptr;
            const T* lb = col_term ? terms.col_shift + c0 : nullptr;
            if (row_term && col_term) {
              gradient_coefficients_row<true, true>(row, cn, wa, la, wb, lb);
            } else if (row_term) {
              gradient_coefficients_row<true, false>(row, cn, wa, la, wb, lb);
            } else {
              gradient_coefficients_row<false, true>(row, cn, wa, la, wb, lb);
            }
            const index_t self = a - c0;
            if (exclude_self && self >= 0 && self < cn) row[self] = T(0);
          }
          gemm(serial{}, matrix_view<const T>(s), cols, task.out,
               gemm_params<T>{T(1), c0 == 0 ? T(0) : T(1), false, false});
        }
      });
}

// ---------------------------------------------------------------------------------------------
// Symmetric engine: Z_r = Z_c = Z, the self column excluded (two views, SupCon, graph)
// ---------------------------------------------------------------------------------------------

/// Rows [first, first + count) of Z: one block of the symmetric engine.
struct block_range {
  index_t first = 0;
  index_t count = 0;
};

/// Cuts rows [first, first + count) into blocks of at most `size` rows.
inline void append_blocks(std::vector<block_range>& blocks, index_t first, index_t count, index_t size) {
  for (index_t r = 0; r < count; r += size) blocks.push_back({first + r, std::min(size, count - r)});
}

/// The unordered pairs {A, B}, A < B, of `count` blocks in rounds of disjoint pairs (the circle
/// method of round-robin tournaments): every pair appears exactly once, and no block appears twice
/// in a round, so the pairs of a round can run in parallel while each block's accumulators
/// receive their contributions in a fixed order (round by round) whatever the thread count.
inline std::vector<std::vector<std::pair<index_t, index_t>>> round_robin_pairs(index_t count) {
  std::vector<std::vector<std::pair<index_t, index_t>>> rounds;
  if (count < 2) return rounds;
  const index_t m = count % 2 == 0 ? count : count + 1;  // block `count` is a bye when count is odd
  for (index_t r = 0; r < m - 1; ++r) {
    std::vector<std::pair<index_t, index_t>> round;
    for (index_t i = 0; i < m / 2; ++i) {
      const index_t a = i == 0 ? m - 1 : (r + i) % (m - 1);
      const index_t b = i == 0 ? r : (r - i + (m - 1)) % (m - 1);
      if (a < count && b < count) round.emplace_back(std::min(a, b), std::max(a, b));
    }
    rounds.push_back(std::move(round));
  }
  return rounds;
}

/// Runs `body(task, scratch)` for task in [0, count) of every round, rounds one after the other.
template <class MakeScratch, class Body>
void run_rounds(int threads, const std::vector<index_t>& tasks_per_round, MakeScratch make_scratch, Body body) {
  for (std::size_t r = 0; r < tasks_per_round.size(); ++r) {
    parallel_blocks(threads, tasks_per_round[r], make_scratch,
                    [&](index_t task, auto& scratch) { body(static_cast<index_t>(r), task, scratch); });
  }
}

/// Online log-sum-exp of the rows of a tile (rows x cols, row stride ld) into acc[0 .. rows).
template <class T>
inline void merge_tile_rows(const T* tile, index_t rows, index_t cols, index_t ld,
                            math::log_sum_exp_accumulator<T>* acc) {
  for (index_t i = 0; i < rows; ++i) {
    const T* row = tile + i * ld;
    const T tile_max = row_max(row, cols);
    if (!(tile_max > -std::numeric_limits<T>::infinity())) continue;
    auto& a = acc[i];
    const T shift = tile_max > a.max ? tile_max : a.max;
    a.merge(math::log_sum_exp_accumulator<T>{shift, row_sum_exp(row, cols, shift)});
  }
}

/// Online log-sum-exp of the columns of a tile into acc[0 .. cols). Walks the tile row by row
/// (contiguous, vectorised across columns); `column` is scratch of 2 cols values.
template <class T>
inline void merge_tile_columns(const T* tile, index_t rows, index_t cols, index_t ld,
                               math::log_sum_exp_accumulator<T>* acc, T* column) {
  T* CELLKIT_RESTRICT shift = column;
  T* CELLKIT_RESTRICT sum = column + cols;
  for (index_t j = 0; j < cols; ++j) shift[j] = acc[j].max;
  for (index_t i = 0; i < rows; ++i) {
    const T* CELLKIT_RESTRICT row = tile + i * ld;
    for (index_t j = 0; j < cols; ++j) shift[j] = row[j] > shift[j] ? row[j] : shift[j];
  }
  for (index_t j = 0; j < cols; ++j) sum[j] = T(0);
  for (index_t i = 0; i < rows; ++i) {
    const T* CELLKIT_RESTRICT row = tile + i * ld;
    for (index_t j = 0; j < cols; ++j) sum[j] += vexp(row[j] - shift[j]);
  }
  for (index_t j = 0; j < cols; ++j) {
    if (!(shift[j] > -std::numeric_limits<T>::infinity())) continue;
    acc[j].merge(math::log_sum_exp_accumulator<T>{shift[j], sum[j]});
  }
}

/// lse[a] = log sum_{b != a} e^{alpha z_a . z_b} for every row of Z, from the tiles of the pairs
/// of blocks with A <= B only (S is symmetric: a tile serves its rows and its columns). Cost:
/// (M^2 / 2) d multiply-adds (half of the rectangular engine) and M^2 exponentials.
template <class T>
void symmetric_row_lse(int threads, matrix_view<const T> z, T alpha, const std::vector<block_range>& blocks, T* lse) {
  const index_t m = z.rows();
  index_t size = 1;
  for (const auto& b : blocks) size = std::max(size, b.count);
  std::vector<math::log_sum_exp_accumulator<T>> acc(static_cast<std::size_t>(m));
  const auto rounds = round_robin_pairs(static_cast<index_t>(blocks.size()));
  std::vector<index_t> tasks{static_cast<index_t>(blocks.size())};  // round 0: the diagonal tiles
  for (const auto& r : rounds) tasks.push_back(static_cast<index_t>(r.size()));
  run_rounds(
      threads, tasks, [&] { return host_buffer<T>(size * size + 2 * size, uninitialized); },
      [&](index_t round, index_t task, host_buffer<T>& scratch) {
        const bool diagonal = round == 0;
        const block_range a = blocks[static_cast<std::size_t>(
            diagonal ? task : rounds[static_cast<std::size_t>(round - 1)][static_cast<std::size_t>(task)].first)];
        const block_range b =
            diagonal ? a
                     : blocks[static_cast<std::size_t>(
                           rounds[static_cast<std::size_t>(round - 1)][static_cast<std::size_t>(task)].second)];
        matrix_view<T> s(scratch.data(), a.count, b.count, size);
        gemm(serial{}, z.row_block(a.first, a.count), z.row_block(b.first, b.count), s,
             gemm_params<T>{alpha, T(0), false, true});
        if (diagonal) {
          for (index_t i = 0; i < a.count; ++i) s(i, i) = -std::numeric_limits<T>::infinity();
        }
        merge_tile_rows(s.data(), a.count, b.count, size, acc.data() + a.first);
        if (!diagonal)
          merge_tile_columns(s.data(), a.count, b.count, size, acc.data() + b.first, scratch.data() + size * size);
      });
  for (index_t i = 0; i < m; ++i) lse[i] = acc[static_cast<std::size_t>(i)].value();
}

/// out[A] = sum_b (w_a e^{S_ab - lse_a} + w_b e^{S_ab - lse_b}) z_b for every block A with an
/// output (an empty view: not requested), excluding b = a, from the tiles of the pairs A <= B:
/// the coefficient matrix is symmetric, so the tile of pair (A, B) gives out[A] += M Z_B and
/// out[B] += M^T Z_A. The diagonal round comes first and initialises each output (beta = 0).
/// Cost: (3/2) M^2 d multiply-adds (3/4 of the rectangular engine) and M^2 exponentials.
template <class T>
void symmetric_gradient(int threads, matrix_view<const T> z, T alpha, const std::vector<block_range>& blocks,
                        const T* weight, const T* lse, const std::vector<matrix_view<T>>& out) {
  index_t size = 1;
  for (const auto& b : blocks) size = std::max(size, b.count);
  const auto rounds = round_robin_pairs(static_cast<index_t>(blocks.size()));
  std::vector<index_t> tasks{static_cast<index_t>(blocks.size())};
  for (const auto& r : rounds) tasks.push_back(static_cast<index_t>(r.size()));
  run_rounds(
      threads, tasks, [&] { return host_buffer<T>(size * size, uninitialized); },
      [&](index_t round, index_t task, host_buffer<T>& scratch) {
        const bool diagonal = round == 0;
        const index_t ia =
            diagonal ? task : rounds[static_cast<std::size_t>(round - 1)][static_cast<std::size_t>(task)].first;
        const index_t ib =
            diagonal ? task : rounds[static_cast<std::size_t>(round - 1)][static_cast<std::size_t>(task)].second;
        const block_range a = blocks[static_cast<std::size_t>(ia)];
        const block_range b = blocks[static_cast<std::size_t>(ib)];
        const bool want_a = !out[static_cast<std::size_t>(ia)].empty();
        const bool want_b = !diagonal && !out[static_cast<std::size_t>(ib)].empty();
        if (!want_a && !want_b) return;
        matrix_view<T> s(scratch.data(), a.count, b.count, size);
        const auto za = z.row_block(a.first, a.count);
        const auto zb = z.row_block(b.first, b.count);
        gemm(serial{}, za, zb, s, gemm_params<T>{alpha, T(0), false, true});
        for (index_t i = 0; i < a.count; ++i) {
          const index_t row = a.first + i;
          gradient_coefficients_row<true, true>(s.row_data(i), b.count, weight[row], lse[row], weight + b.first,
                                                lse + b.first);
          if (diagonal) s(i, i) = T(0);
        }
        const matrix_view<const T> coef(s);
        if (want_a) {
          gemm(serial{}, coef, zb, out[static_cast<std::size_t>(ia)],
               gemm_params<T>{T(1), diagonal ? T(0) : T(1), false, false});
        }
        if (want_b) {
          gemm(serial{}, coef, za, out[static_cast<std::size_t>(ib)], gemm_params<T>{T(1), T(1), true, false});
        }
      });
}

// ---------------------------------------------------------------------------------------------
// Materialised engine (small problems, test oracle)
// ---------------------------------------------------------------------------------------------

/// Positive weights W (M x K, dense) and the excluded pairs of a weighted-pair InfoNCE:
/// loss = sum_ab W_ab (lse_a - S_ab) / sum_ab W_ab, lse_a over the non-excluded b.
template <class T>
struct dense_pairs {
  host_buffer<T> weight;                ///< M x K
  host_buffer<unsigned char> excluded;  ///< M x K, 1 = not in the denominator
};

/// The whole S, P and G = dL/dS in memory (O(M K)); d_rows = dL/dZ_r and d_cols = dL/dZ_c
/// (overwritten when given). Returns the loss. Plain loops with std::exp and the
/// log_sum_exp_accumulator, GEMMs with the caller's threads.
template <class T>
double materialized_pairs(int threads, matrix_view<const T> zr, matrix_view<const T> zc, T alpha,
                          const dense_pairs<T>& pairs, std::optional<matrix_view<T>> d_rows,
                          std::optional<matrix_view<T>> d_cols) {
  const index_t m = zr.rows();
  const index_t k = zc.rows();
  const openmp policy{threads < 1 ? 1 : threads};
  host_buffer<T> s_buffer(m * k, uninitialized);
  const auto s = s_buffer.as_matrix(m, k);
  if (m > 0 && k > 0) gemm(policy, zr, zc, s, gemm_params<T>{alpha, T(0), false, true});
  std::vector<double> lse(static_cast<std::size_t>(m));
  double total_weight = 0;
  double loss = 0;
  for (index_t a = 0; a < m; ++a) {
    math::log_sum_exp_accumulator<double> acc;
    for (index_t b = 0; b < k; ++b) {
      if (!pairs.excluded[a * k + b]) acc.add(static_cast<double>(s(a, b)));
    }
    lse[static_cast<std::size_t>(a)] = acc.value();
    for (index_t b = 0; b < k; ++b) {
      const double w = static_cast<double>(pairs.weight[a * k + b]);
      if (w != 0) {
        total_weight += w;
        loss += w * (acc.value() - static_cast<double>(s(a, b)));
      }
    }
  }
  if (!(total_weight > 0)) return 0.0;
  loss /= total_weight;
  if (!d_rows && !d_cols) return loss;
  // G_ab = (w_a P_ab - W_ab) / sum W, written over S.
  for (index_t a = 0; a < m; ++a) {
    double wa = 0;
    for (index_t b = 0; b < k; ++b) wa += static_cast<double>(pairs.weight[a * k + b]);
    for (index_t b = 0; b < k; ++b) {
      const double p =
          pairs.excluded[a * k + b] ? 0.0 : std::exp(static_cast<double>(s(a, b)) - lse[static_cast<std::size_t>(a)]);
      s(a, b) = static_cast<T>((wa * p - static_cast<double>(pairs.weight[a * k + b])) / total_weight);
    }
  }
  const matrix_view<const T> g(s);
  if (d_rows) {
    if (k > 0) {
      gemm(policy, g, zc, *d_rows, gemm_params<T>{alpha, T(0), false, false});
    } else {
      for (index_t a = 0; a < m; ++a) std::fill_n(d_rows->row_data(a), d_rows->cols(), T(0));
    }
  }
  if (d_cols) {
    if (m > 0) {
      gemm(policy, g, zr, *d_cols, gemm_params<T>{alpha, T(0), true, false});
    } else {
      for (index_t b = 0; b < k; ++b) std::fill_n(d_cols->row_data(b), d_cols->cols(), T(0));
    }
  }
  return loss;
}

}  // namespace cellkit::contrastive::detail
