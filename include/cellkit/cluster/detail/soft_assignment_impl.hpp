#pragma once
/// @file
/// Implementation of cellkit/cluster/soft_assignment.hpp: blocked passes over the cells.
///
/// Rows are cut into blocks of `soft_block_rows` cells. Each block runs on one thread: a serial GEMM
/// for z_b mu^T (and for the gradient products), then the element-wise work row by row. Column sums
/// (cluster masses, d/dmu partial products, loss and d/dalpha partials) are kept per block and
/// merged in block order, so every policy and thread count gives bit-identical results.

#include <cellkit/cluster/common.hpp>
#include <cellkit/cluster/detail/parallel.hpp>
#include <cellkit/cluster/detail/vector_math.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace cellkit::cluster::detail {

/// Cells per block of the soft-assignment passes (fixed: results do not depend on threads).
inline constexpr index_t soft_block_rows = 256;

inline index_t block_count(index_t n, index_t rows) { return (n + rows - 1) / rows; }

template <class T>
T reduction_scale(loss_reduction reduction, index_t n, index_t k) {
  switch (reduction) {
    case loss_reduction::sum:
      return T(1);
    case loss_reduction::batchmean:
      return n > 0 ? T(1) / static_cast<T>(n) : T(0);
    case loss_reduction::mean:
      return n * k > 0 ? T(1) / (static_cast<T>(n) * static_cast<T>(k)) : T(0);
  }
  return T(1);
}

/// ||mu_j||^2 for every centre, in T.
template <class T>
std::vector<T> row_squared_norms(matrix_view<const T> m) {
  std::vector<T> norms(static_cast<std::size_t>(m.rows()));
  for (index_t j = 0; j < m.rows(); ++j) {
    const T* row = m.row_data(j);
    T s = T(0);
    CELLKIT_CLUSTER_SIMD_SUM(s)
    for (index_t c = 0; c < m.cols(); ++c) s += row[c] * row[c];
    norms[static_cast<std::size_t>(j)] = s;
  }
  return norms;
}

/// out (count x K) = ||z_i||^2 + ||mu_j||^2 - 2 z_i.mu_j clamped at 0, for rows [first, first + count).
template <class T>
void block_squared_distances(matrix_view<const T> z, matrix_view<const T> mu, const T* mu_norms, index_t first,
                             index_t count, matrix_view<T> out) {
  gemm(serial{}, z.row_block(first, count), mu, out,
       gemm_params<T>{.alpha = T(-2), .beta = T(0), .transpose_a = false, .transpose_b = true});
  const index_t k = mu.rows();
  const index_t d = z.cols();
  for (index_t r = 0; r < count; ++r) {
    const T* zr = z.row_data(first + r);
    T zn = T(0);
    CELLKIT_CLUSTER_SIMD_SUM(zn)
    for (index_t c = 0; c < d; ++c) zn += zr[c] * zr[c];
    T* o = out.row_data(r);
    CELLKIT_CLUSTER_SIMD
    for (index_t j = 0; j < k; ++j) {
      const T v = zn + mu_norms[j] + o[j];
      o[j] = v > T(0) ? v : T(0);
    }
  }
}

/// Element-wise over a contiguous block of squared distances d2 (count x K): w = alpha / (alpha + d2)
/// (when `w` is not null) and, in place, log k = c log(1 + d2 / alpha) with c = -(alpha + 1) / 2.
/// log(1 + x) instead of log1p(x) loses relative accuracy only for x < ~1e-8, where log k is
/// within one ulp of 0 either way (the absolute error, which is what q needs, stays ~1e-16).
template <class T>
void block_log_kernel(T* d2_to_logk, T* w, index_t size, T alpha) {
  const T c = -(alpha + T(1)) / T(2);
  const T inv_alpha = T(1) / alpha;
  if (w) {
    CELLKIT_CLUSTER_SIMD
    for (index_t e = 0; e < size; ++e) w[e] = alpha / (alpha + d2_to_logk[e]);
  }
  CELLKIT_CLUSTER_SIMD
  for (index_t e = 0; e < size; ++e) d2_to_logk[e] = c * log_normal(T(1) + d2_to_logk[e] * inv_alpha);
}

/// Normalises rows of exp(log k) into q (count rows, K columns, row stride q_stride) and stores
/// each row's log normaliser in lse. Every log k <= 0, so exp(log k) <= 1 without a shift; a row
/// whose sum falls below `tiny` (all its clusters far away) is redone with its maximum subtracted.
/// `e` is count x K scratch.
template <class T>
void block_normalise(const T* logk, T* e, index_t count, index_t k, T* q, index_t q_stride, T* lse) {
  const index_t size = count * k;
  CELLKIT_CLUSTER_SIMD
  for (index_t i = 0; i < size; ++i) e[i] = exp_flush(logk[i]);
  constexpr T tiny = sizeof(T) == 4 ? T(1e-20) : T(1e-200);
  for (index_t r = 0; r < count; ++r) {
    const T* lr = logk + r * k;
    T* er = e + r * k;
    T sum = T(0);
    CELLKIT_CLUSTER_SIMD_SUM(sum)
    for (index_t j = 0; j < k; ++j) sum += er[j];
    T shift = T(0);
    if (!(sum >= tiny)) {
      shift = -std::numeric_limits<T>::infinity();
      for (index_t j = 0; j < k; ++j) shift = lr[j] > shift ? lr[j] : shift;
      sum = T(0);
      for (index_t j = 0; j < k; ++j) {
        er[j] = exp_flush(lr[j] - shift);
        sum += er[j];
      }
    }
    const T inv = T(1) / sum;
    T* qr = q + r * q_stride;
    CELLKIT_CLUSTER_SIMD
    for (index_t j = 0; j < k; ++j) qr[j] = er[j] * inv;
    lse[r] = shift + std::log(sum);
  }
}

/// student_t_assign: q (N x K) from z, mu, alpha.
template <class T>
void student_t_assign_host(int threads, matrix_view<const T> z, matrix_view<const T> mu, matrix_view<T> q, T alpha) {
  const index_t n = z.rows();
  const index_t k = mu.rows();
  const std::vector<T> mu_norms = row_squared_norms(mu);
  const int t = threads > 0 ? threads : 1;
  std::vector<std::vector<T>> scratch(static_cast<std::size_t>(t),
                                      std::vector<T>(static_cast<std::size_t>(3 * soft_block_rows * k)));
  parallel_blocks(threads, block_count(n, soft_block_rows), [&](int thread, index_t b) {
    const index_t first = b * soft_block_rows;
    const index_t count = std::min(soft_block_rows, n - first);
    T* logk = scratch[static_cast<std::size_t>(thread)].data();
    T* e = logk + soft_block_rows * k;
    T* lse = e + soft_block_rows * k;
    block_squared_distances(z, mu, mu_norms.data(), first, count, matrix_view<T>(logk, count, k));
    block_log_kernel(logk, static_cast<T*>(nullptr), count * k, alpha);
    block_normalise(logk, e, count, k, q.row_data(first), q.stride(), lse);
  });
}

/// Column sums of a non-negative N x K matrix, blocked and merged in block order, in double.
template <class T>
std::vector<double> column_sums(int threads, matrix_view<const T> q) {
  const index_t n = q.rows();
  const index_t k = q.cols();
  const index_t blocks = block_count(n, soft_block_rows);
  std::vector<double> partial(static_cast<std::size_t>(blocks * k), 0.0);
  parallel_blocks(threads, blocks, [&](int, index_t b) {
    const index_t first = b * soft_block_rows;
    const index_t last = std::min(n, first + soft_block_rows);
    double* out = partial.data() + b * k;
    for (index_t i = first; i < last; ++i) {
      const T* row = q.row_data(i);
      for (index_t j = 0; j < k; ++j) out[j] += static_cast<double>(row[j]);
    }
  });
  std::vector<double> sums(static_cast<std::size_t>(k), 0.0);
  for (index_t b = 0; b < blocks; ++b)
    for (index_t j = 0; j < k; ++j) sums[static_cast<std::size_t>(j)] += partial[static_cast<std::size_t>(b * k + j)];
  return sums;
}

/// Sum over blocks of rows of `row_value(i)` (double), merged in block order.
template <class F>
double blocked_row_sum(int threads, index_t n, F row_value) {
  const index_t blocks = block_count(n, soft_block_rows);
  std::vector<double> partial(static_cast<std::size_t>(blocks), 0.0);
  parallel_blocks(threads, blocks, [&](int, index_t b) {
    const index_t first = b * soft_block_rows;
    const index_t last = std::min(n, first + soft_block_rows);
    double s = 0.0;
    for (index_t i = first; i < last; ++i) s += row_value(i);
    partial[static_cast<std::size_t>(b)] = s;
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

/// Row i of the target: p_ij = q_ij^power / f_j, normalised to sum 1 (zero row if every term is 0).
/// `inv_f[j]` = 1 / f_j (0 for an empty cluster, whose column of p is then 0). Returns the row's
/// normaliser s_i = sum_j q_ij^power / f_j (before normalisation).
template <class T>
double target_row(const T* q, const double* inv_f, T power, T* p, index_t k) {
  double s = 0.0;
  if (power == T(2)) {
    for (index_t j = 0; j < k; ++j) {
      const double v = static_cast<double>(q[j]) * static_cast<double>(q[j]) * inv_f[j];
      p[j] = static_cast<T>(v);
      s += v;
    }
  } else {
    for (index_t j = 0; j < k; ++j) {
      const double v = std::pow(static_cast<double>(q[j]), static_cast<double>(power)) * inv_f[j];
      p[j] = static_cast<T>(v);
      s += v;
    }
  }
  if (s > 0.0) {
    const double inv = 1.0 / s;
    for (index_t j = 0; j < k; ++j) p[j] = static_cast<T>(static_cast<double>(p[j]) * inv);
  }
  return s;
}

template <class T>
void target_distribution_host(int threads, matrix_view<const T> q, matrix_view<T> p, T power) {
  const index_t n = q.rows();
  const index_t k = q.cols();
  const std::vector<double> f = column_sums(threads, q);
  std::vector<double> inv_f(static_cast<std::size_t>(k));
  for (index_t j = 0; j < k; ++j)
    inv_f[static_cast<std::size_t>(j)] =
        f[static_cast<std::size_t>(j)] > 0.0 ? 1.0 / f[static_cast<std::size_t>(j)] : 0.0;
  parallel_blocks(threads, block_count(n, soft_block_rows), [&](int, index_t b) {
    const index_t first = b * soft_block_rows;
    const index_t last = std::min(n, first + soft_block_rows);
    for (index_t i = first; i < last; ++i) target_row(q.row_data(i), inv_f.data(), power, p.row_data(i), k);
  });
}

// ---- the fused loss and gradient pass ------------------------------------------------------

enum class loss_kind { kl_p_q, binary_cross_entropy };

template <class T>
struct loss_request {
  matrix_view<const T> z;
  matrix_view<const T> mu;
  std::optional<matrix_view<const T>> target;  // nullopt: computed from q
  std::optional<matrix_view<T>> q_out;
  std::optional<matrix_view<T>> p_out;
  std::optional<matrix_view<T>> grad_z;
  std::optional<matrix_view<T>> grad_mu;
  T alpha;
  T power;
  loss_kind kind;
  loss_reduction reduction;
  bool alpha_gradient;
};

template <class T>
struct loss_values {
  T loss;
  std::optional<T> grad_alpha;
};

template <class T>
loss_values<T> student_t_loss_host(int threads, const loss_request<T>& req) {
  const index_t n = req.z.rows();
  const index_t k = req.mu.rows();
  const index_t d = req.z.cols();
  const index_t blocks = block_count(n, soft_block_rows);
  const T alpha = req.alpha;
  const T inv_alpha = T(1) / alpha;
  const bool need_w = req.grad_z || req.grad_mu || req.alpha_gradient;
  const bool compute_target = !req.target.has_value();

  // Buffers: q (the caller's or ours), log kernel L, and w = alpha / (alpha + d2) (becomes W in phase 2).
  host_buffer<T> q_storage;
  matrix_view<T> q;
  if (req.q_out) {
    q = *req.q_out;
  } else {
    q_storage = host_buffer<T>(n * k, uninitialized);
    q = q_storage.as_matrix(n, k);
  }
  host_buffer<T> logk_storage(n * k, uninitialized);
  auto logk = logk_storage.as_matrix(n, k);
  host_buffer<T> w_storage(need_w ? n * k : 0, uninitialized);
  auto w = need_w ? w_storage.as_matrix(n, k) : matrix_view<T>();
  std::vector<T> lse(static_cast<std::size_t>(n));
  std::vector<double> mass_partial(compute_target ? static_cast<std::size_t>(blocks * k) : 0, 0.0);
  const std::vector<T> mu_norms = row_squared_norms(req.mu);

  // Phase 1: distances, log kernel, w, q, per-block cluster masses.
  const int scratch_threads = threads > 0 ? threads : 1;
  std::vector<std::vector<T>> e_scratch(static_cast<std::size_t>(scratch_threads),
                                        std::vector<T>(static_cast<std::size_t>(soft_block_rows * k)));
  parallel_blocks(threads, blocks, [&](int thread, index_t b) {
    const index_t first = b * soft_block_rows;
    const index_t count = std::min(soft_block_rows, n - first);
    auto dist = logk.row_block(first, count);
    block_squared_distances(req.z, req.mu, mu_norms.data(), first, count, dist);
    block_log_kernel(dist.data(), need_w ? w.row_data(first) : static_cast<T*>(nullptr), count * k, alpha);
    block_normalise(dist.data(), e_scratch[static_cast<std::size_t>(thread)].data(), count, k, q.row_data(first),
                    q.stride(), lse.data() + first);
    if (compute_target) {
      double* mass = mass_partial.data() + b * k;
      for (index_t r = 0; r < count; ++r) {
        const T* qrow = q.row_data(first + r);
        for (index_t j = 0; j < k; ++j) mass[j] += static_cast<double>(qrow[j]);
      }
    }
  });

  std::vector<double> inv_f;
  std::vector<double> log_f;
  if (compute_target) {
    inv_f.assign(static_cast<std::size_t>(k), 0.0);
    log_f.assign(static_cast<std::size_t>(k), 0.0);
    for (index_t j = 0; j < k; ++j) {
      double f = 0.0;
      for (index_t b = 0; b < blocks; ++b) f += mass_partial[static_cast<std::size_t>(b * k + j)];
      inv_f[static_cast<std::size_t>(j)] = f > 0.0 ? 1.0 / f : 0.0;
      log_f[static_cast<std::size_t>(j)] = f > 0.0 ? std::log(f) : 0.0;  // p_ij = 0 there; avoids 0 * inf
    }
  }

  // Phase 2: target, loss, W = -(alpha+1)/alpha * w * dL/dlogk * scale, gradient products.
  const T scale = reduction_scale<T>(req.reduction, n, k);
  const T w_coef = -(alpha + T(1)) * inv_alpha;
  const T t_coef = T(-2) / (alpha + T(1));  // log1p(d2/alpha) = t_coef * logk
  const T a_coef = (alpha + T(1)) / (T(2) * alpha);
  std::vector<double> loss_partial(static_cast<std::size_t>(blocks), 0.0);
  std::vector<double> alpha_partial(static_cast<std::size_t>(blocks), 0.0);
  std::vector<double> wsum_partial(req.grad_mu ? static_cast<std::size_t>(blocks * k) : 0, 0.0);
  host_buffer<T> mu_partial(req.grad_mu ? blocks * k * d : 0, uninitialized);
  std::vector<std::vector<T>> p_scratch(static_cast<std::size_t>(scratch_threads),
                                        std::vector<T>(static_cast<std::size_t>(k)));
  std::vector<std::vector<T>> g_scratch(static_cast<std::size_t>(scratch_threads),
                                        std::vector<T>(static_cast<std::size_t>(k)));
  std::vector<T> inv_f_t(static_cast<std::size_t>(compute_target ? k : 0));
  std::vector<T> log_f_t(static_cast<std::size_t>(compute_target ? k : 0));
  for (std::size_t j = 0; j < inv_f_t.size(); ++j) {
    inv_f_t[j] = static_cast<T>(inv_f[j]);
    log_f_t[j] = static_cast<T>(log_f[j]);
  }
  const bool power_two = req.power == T(2);

  parallel_blocks(threads, blocks, [&](int thread, index_t b) {
    const index_t first = b * soft_block_rows;
    const index_t count = std::min(soft_block_rows, n - first);
    T* p_row_scratch = p_scratch[static_cast<std::size_t>(thread)].data();
    T* g = g_scratch[static_cast<std::size_t>(thread)].data();
    double loss_sum = 0.0;
    double alpha_sum = 0.0;
    double* wsum = req.grad_mu ? wsum_partial.data() + b * k : nullptr;
    for (index_t r = 0; r < count; ++r) {
      const index_t i = first + r;
      const T* qrow = q.row_data(i);
      const T* lrow = logk.row_data(i);
      const T row_lse = lse[static_cast<std::size_t>(i)];
      const T* prow = nullptr;
      T log_s = T(0);
      if (compute_target) {
        // p_ij = q_ij^power / f_j / s_i (power 2: multiplies only; vectorised).
        T* out = req.p_out ? req.p_out->row_data(i) : p_row_scratch;
        T s_row = T(0);
        if (power_two) {
          const T* invf = inv_f_t.data();
          CELLKIT_CLUSTER_SIMD_SUM(s_row)
          for (index_t j = 0; j < k; ++j) {
            const T v = qrow[j] * qrow[j] * invf[j];
            out[j] = v;
            s_row += v;
          }
          const T inv_s = s_row > T(0) ? T(1) / s_row : T(0);
          CELLKIT_CLUSTER_SIMD
          for (index_t j = 0; j < k; ++j) out[j] *= inv_s;
        } else {
          s_row = static_cast<T>(target_row(qrow, inv_f.data(), req.power, out, k));  // normalises out
        }
        log_s = s_row > T(0) ? std::log(s_row) : T(0);
        prow = out;
      } else if (req.p_out) {
        const T* given = req.target->row_data(i);
        T* out = req.p_out->row_data(i);
        for (index_t j = 0; j < k; ++j) out[j] = given[j];
        prow = out;
      } else {
        prow = req.target->row_data(i);
      }
      T row_loss = T(0);
      if (req.kind == loss_kind::kl_p_q) {
        T p_total = T(0);
        if (compute_target) {
          // log p_ij - log q_ij = (power - 1) log q_ij - log f_j - log s_i: no log per entry.
          const T pm1 = req.power - T(1);
          const T* logf = log_f_t.data();
          CELLKIT_CLUSTER_SIMD_SUM(row_loss)
          for (index_t j = 0; j < k; ++j) {
            const T log_q = lrow[j] - row_lse;
            row_loss += prow[j] * (pm1 * log_q - logf[j] - log_s);
          }
        } else {
          CELLKIT_CLUSTER_SIMD_SUM(row_loss)
          for (index_t j = 0; j < k; ++j) {
            const T pj = prow[j];
            const T term = pj * (log_normal(pj) - (lrow[j] - row_lse));
            row_loss += pj > T(0) ? term : T(0);
          }
        }
        CELLKIT_CLUSTER_SIMD_SUM(p_total)
        for (index_t j = 0; j < k; ++j) p_total += prow[j];
        // dL/dlogk_ij = -(p_ij - q_ij sum_l p_il)
        CELLKIT_CLUSTER_SIMD
        for (index_t j = 0; j < k; ++j) g[j] = qrow[j] * p_total - prow[j];
      } else {
        T gq = T(0);
        CELLKIT_CLUSTER_SIMD_SUM(row_loss)
        for (index_t j = 0; j < k; ++j) {
          const T pj = prow[j];
          const T qj = qrow[j];
          const T lq = lrow[j] - row_lse;
          const T one_minus = T(1) - qj;
          const T l1 = one_minus > T(0) ? log_normal(one_minus) : T(-100);
          row_loss += -(pj * (lq > T(-100) ? lq : T(-100)) + (T(1) - pj) * (l1 > T(-100) ? l1 : T(-100)));
        }
        CELLKIT_CLUSTER_SIMD_SUM(gq)
        for (index_t j = 0; j < k; ++j) {
          const T qj = qrow[j];
          const T den = qj * (T(1) - qj);
          const T dq = (qj - prow[j]) / (den > T(1e-12) ? den : T(1e-12));
          g[j] = dq;
          gq += dq * qj;
        }
        CELLKIT_CLUSTER_SIMD
        for (index_t j = 0; j < k; ++j) g[j] = qrow[j] * (g[j] - gq);
      }
      loss_sum += static_cast<double>(row_loss);
      if (!need_w) continue;
      T* wrow = w.row_data(i);
      if (req.alpha_gradient) {
        T a_sum = T(0);
        CELLKIT_CLUSTER_SIMD_SUM(a_sum)
        for (index_t j = 0; j < k; ++j) a_sum += g[j] * (T(-0.5) * t_coef * lrow[j] + a_coef * (T(1) - wrow[j]));
        alpha_sum += static_cast<double>(a_sum);
      }
      const T wg = w_coef * scale;
      CELLKIT_CLUSTER_SIMD
      for (index_t j = 0; j < k; ++j) wrow[j] = wg * wrow[j] * g[j];
      if (wsum)
        for (index_t j = 0; j < k; ++j) wsum[j] += static_cast<double>(wrow[j]);
    }
    loss_partial[static_cast<std::size_t>(b)] = loss_sum;
    alpha_partial[static_cast<std::size_t>(b)] = alpha_sum;
    if (!need_w) return;
    auto wblock = matrix_view<const T>(w.row_block(first, count));
    if (req.grad_z) {
      auto gz = req.grad_z->row_block(first, count);
      // grad z_i = (sum_j W_ij) z_i - sum_j W_ij mu_j
      gemm(serial{}, wblock, req.mu, gz,
           gemm_params<T>{.alpha = T(-1), .beta = T(0), .transpose_a = false, .transpose_b = false});
      for (index_t r = 0; r < count; ++r) {
        const T* wrow = wblock.row_data(r);
        T ws = T(0);
        for (index_t j = 0; j < k; ++j) ws += wrow[j];
        const T* zr = req.z.row_data(first + r);
        T* out = gz.row_data(r);
        CELLKIT_CLUSTER_SIMD
        for (index_t c2 = 0; c2 < d; ++c2) out[c2] += ws * zr[c2];
      }
    }
    if (req.grad_mu) {
      matrix_view<T> part(mu_partial.data() + b * k * d, k, d);
      gemm(serial{}, wblock, req.z.row_block(first, count), part,
           gemm_params<T>{.alpha = T(1), .beta = T(0), .transpose_a = true, .transpose_b = false});
    }
  });

  double loss_total = 0.0;
  for (double v : loss_partial) loss_total += v;
  loss_values<T> result{static_cast<T>(loss_total * static_cast<double>(scale)), std::nullopt};
  if (req.alpha_gradient) {
    double a_total = 0.0;
    for (double v : alpha_partial) a_total += v;
    result.grad_alpha = static_cast<T>(a_total * static_cast<double>(scale));
  }
  if (req.grad_mu) {
    // grad mu_j = (sum_i W_ij) mu_j - sum_i W_ij z_i
    auto gm = *req.grad_mu;
    std::vector<double> acc(static_cast<std::size_t>(d));
    for (index_t j = 0; j < k; ++j) {
      double ws = 0.0;
      for (index_t b = 0; b < blocks; ++b) ws += wsum_partial[static_cast<std::size_t>(b * k + j)];
      std::fill(acc.begin(), acc.end(), 0.0);
      for (index_t b = 0; b < blocks; ++b) {
        const T* part = mu_partial.data() + (b * k + j) * d;
        for (index_t c2 = 0; c2 < d; ++c2) acc[static_cast<std::size_t>(c2)] += static_cast<double>(part[c2]);
      }
      const T* mj = req.mu.row_data(j);
      T* out = gm.row_data(j);
      for (index_t c2 = 0; c2 < d; ++c2)
        out[c2] = static_cast<T>(ws * static_cast<double>(mj[c2]) - acc[static_cast<std::size_t>(c2)]);
    }
  }
  return result;
}

}  // namespace cellkit::cluster::detail
