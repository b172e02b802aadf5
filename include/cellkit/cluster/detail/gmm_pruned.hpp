#pragma once
/// @file
/// The pruned pass of full-covariance EM (implementation of cellkit/cluster/gmm.hpp).
///
/// The dense pass (gmm_impl.hpp) evaluates every component at every cell: 2 N K p flops for the
/// E-step and as many for the statistics. Once components have localised, a cell gets a
/// responsibility of order one from one or two of them and below e^-50 from the rest, which
/// changes no double sum. This pass skips those pairs, with a bound that never skips a pair that
/// could matter:
///
///     log w_j N(x | m_j, P_j^-1) <= c_j - mu_j sum_a p_ja (x_a - m_ja)^2 / 2
///
/// (c_j = log w_j + log det U_j - d log(2 pi) / 2; p_ja = (P_j)_aa, the diagonal of the
/// precision; mu_j <= lambda_min(D_j^-1/2 P_j D_j^-1/2) with D_j = diag(p_j)). The diagonal
/// metric carries each component's own scale per coordinate (for an isotropic component it is the
/// Euclidean bound lambda_min(P_j) |x - m_j|^2). Correlated components weaken it: on PCA scores of
/// 10x PBMC it rules out almost no pair, and the fit runs the dense pass there (docs/gmm.md). The
/// weighted distances of all pairs are two N x K x d GEMMs: [x^2] diag-precisions^T and x (p_j m_j)^T.
/// Per cell: the component with the highest bound is evaluated exactly; every other component
/// whose bound is within `gmm_prune_gap` nats of that exact value is evaluated too; the rest get
/// responsibility 0. Exact values use scikit-learn's formula y = x U_j - m_j U_j, log p = c_j -
/// |y|^2 / 2, one GEMM per component over the cells gathered for it. The statistics are
/// sum r x x^T and sum r x per component over the cells with r > 0, again one gathered GEMM each.
/// Cost: 2 N K d for the bounds plus about 4 d^2 per evaluated pair, against 4 p ~ 2 d^2 per pair
/// (all N K of them) in the dense pass; the fit uses this pass while at most `gmm_prune_fraction`
/// of the pairs are evaluated.
///
/// mu_j = 1 / lambda_max(G) for G = D_j^1/2 C_j D_j^1/2 (C_j = P_j^-1): with B = G / tr(G),
/// lambda_max(B)^8 <= tr(B^8) = |B^4|_F^2, so lambda_max(G) <= tr(G) |B^4|_F^(1/4) (at most d^(1/8)
/// = 1.6 times too high for d = 50), also <= the Gershgorin bound; the smaller bound is used,
/// raised by 1e-6 relative for the rounding of the products. The weighted distance, computed as
/// sum p x^2 - 2 sum p m x + sum p m^2, is lowered by a rounding bound before use.
///
/// Determinism: the same fixed chunks as the dense pass (one thread each); within a chunk every
/// loop runs in index order and partial sums are merged in chunk order.

#include <cellkit/cluster/detail/gmm_impl.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

namespace cellkit::cluster::detail {

/// Pairs whose bound is this many nats below a cell's best exact log-density are skipped: their
/// responsibilities are below e^-50 ~ 2e-22, under the rounding of any double sum they join.
inline constexpr double gmm_prune_gap = 50.0;
/// The fit goes back to the dense pass while more than this fraction of the N K pairs are evaluated
/// (an evaluated pair costs about twice a dense one).
inline constexpr double gmm_prune_fraction = 0.35;
/// Below this many components even one evaluated pair per cell saves little over the dense pass.
inline constexpr index_t gmm_prune_min_k = 4;

template <class T>
struct gmm_pruned_coefficients {
  std::vector<T> u;               // k x d x d: U_j (P_j = U_j U_j^T)
  std::vector<T> mu;              // k x d: m_j^T U_j
  std::vector<T> diag_prec;       // k x d: p_ja = (P_j)_aa
  std::vector<T> weighted_means;  // k x d: p_ja m_ja
  std::vector<double> mean_sq;    // k: sum_a p_ja m_ja^2
  std::vector<double> constant;   // k: log w_j + log det U_j - d log(2 pi) / 2
  std::vector<double> lambda;     // k: mu_j, lower bound of lambda_min(D_j^-1/2 P_j D_j^-1/2)
};

/// An upper bound of the largest eigenvalue of the symmetric positive semi-definite d x d `c`.
inline double largest_eigenvalue_bound(const double* c, index_t d) {
  double gershgorin = 0.0;
  double trace = 0.0;
  for (index_t a = 0; a < d; ++a) {
    double row = 0.0;
    for (index_t b = 0; b < d; ++b) row += std::fabs(c[a * d + b]);
    gershgorin = std::max(gershgorin, row);
    trace += c[a * d + a];
  }
  if (!(trace > 0.0) || !std::isfinite(trace)) return gershgorin;
  std::vector<double> b(static_cast<std::size_t>(d * d)), b2(b.size());
  for (index_t e = 0; e < d * d; ++e) b[static_cast<std::size_t>(e)] = c[e] / trace;
  for (int squaring = 0; squaring < 2; ++squaring) {
    gemm(serial{}, matrix_view<const double>(b.data(), d, d), matrix_view<const double>(b.data(), d, d),
         matrix_view<double>(b2.data(), d, d));
    b.swap(b2);
  }
  double frobenius_sq = 0.0;
  for (double v : b) frobenius_sq += v * v;
  const double by_power = trace * std::pow(frobenius_sq, 0.125) * (1.0 + 1e-6);
  return std::min(gershgorin, by_power);
}

template <class T>
gmm_pruned_coefficients<T> make_pruned_coefficients(const gmm_state& s) {
  const index_t d = s.d;
  const index_t k = s.k;
  gmm_pruned_coefficients<T> c;
  c.u.resize(static_cast<std::size_t>(k * d * d));
  c.mu.assign(static_cast<std::size_t>(k * d), T(0));
  c.diag_prec.resize(static_cast<std::size_t>(k * d));
  c.weighted_means.resize(static_cast<std::size_t>(k * d));
  c.mean_sq.assign(static_cast<std::size_t>(k), 0.0);
  c.constant.resize(static_cast<std::size_t>(k));
  c.lambda.resize(static_cast<std::size_t>(k));
  std::vector<double> g(static_cast<std::size_t>(d * d)), root(static_cast<std::size_t>(d));
  for (index_t j = 0; j < k; ++j) {
    const double* u = s.prec_chol.data() + j * d * d;
    const double* prec = s.precisions.data() + j * d * d;
    const double* m = s.means.data() + j * d;
    for (index_t e = 0; e < d * d; ++e) c.u[static_cast<std::size_t>(j * d * d + e)] = static_cast<T>(u[e]);
    for (index_t b = 0; b < d; ++b) {
      double v = 0.0;
      for (index_t a = 0; a < d; ++a) v += m[a] * u[a * d + b];
      c.mu[static_cast<std::size_t>(j * d + b)] = static_cast<T>(v);
    }
    for (index_t a = 0; a < d; ++a) {
      // The T copies are what the distance GEMMs use, so the bound is built from them.
      const T pa = static_cast<T>(prec[a * d + a]);
      c.diag_prec[static_cast<std::size_t>(j * d + a)] = pa;
      c.weighted_means[static_cast<std::size_t>(j * d + a)] = static_cast<T>(static_cast<double>(pa) * m[a]);
      c.mean_sq[static_cast<std::size_t>(j)] += static_cast<double>(pa) * m[a] * m[a];
      root[static_cast<std::size_t>(a)] = std::sqrt(std::max(0.0, static_cast<double>(pa)));
    }
    c.constant[static_cast<std::size_t>(j)] = std::log(s.weights[static_cast<std::size_t>(j)]) +
                                              s.log_det[static_cast<std::size_t>(j)] -
                                              0.5 * static_cast<double>(d) * gmm_log_2pi;
    const double* cov = s.covariances.data() + j * d * d;
    for (index_t a = 0; a < d; ++a)
      for (index_t b = 0; b < d; ++b)
        g[static_cast<std::size_t>(a * d + b)] =
            root[static_cast<std::size_t>(a)] * cov[a * d + b] * root[static_cast<std::size_t>(b)];
    const double top = largest_eigenvalue_bound(g.data(), d);
    c.lambda[static_cast<std::size_t>(j)] = top > 0.0 && std::isfinite(top) ? 1.0 / top : 0.0;
  }
  return c;
}

/// Per-thread buffers of a pruned pass (sized for one chunk).
template <class T>
struct gmm_pruned_scratch {
  host_buffer<T> squares;                     // rows x d: x_a^2
  host_buffer<T> quadratic;                   // rows x k: sum_a p_ja x_a^2
  host_buffer<T> dots;                        // rows x k: sum_a p_ja m_ja x_a
  host_buffer<T> gathered;                    // rows x d
  host_buffer<T> weighted;                    // rows x d
  host_buffer<T> projected;                   // rows x d
  host_buffer<T> resp;                        // rows x k
  host_buffer<T> scatter;                     // d x d
  std::vector<double> log_norm;               // rows
  std::vector<std::vector<index_t>> members;  // k lists of rows
};

/// One pruned pass over the data with the state `s` (full covariances), in two phases over the
/// chunks: (1) bounds, the first choice of every cell evaluated exactly, the other pairs that pass
/// the bound counted; (2) those pairs evaluated, responsibilities, `on_block`, statistics. Returns
/// what gmm_pass returns (statistics in its p x k layout), or nothing when phase 1 finds that more
/// than `max_fraction` of the N K pairs would be evaluated (the caller runs the dense pass; phase 1
/// cost about 1 / K of it). `on_block(first, count, wlp, log_norm, resp)` as in gmm_pass, once per
/// chunk, with wlp = -inf for skipped pairs.
template <class T, class OnBlock>
std::optional<gmm_pass_result> gmm_pruned_pass(const gmm_data<T>& data, const gmm_state& s, bool want_stats,
                                               OnBlock&& on_block, double max_fraction = gmm_prune_fraction) {
  const index_t n = data.n;
  const index_t d = data.d;
  const index_t k = s.k;
  const index_t q = gmm_quadratic_features(gmm_covariance::full, d);
  const index_t p = q + d;
  const index_t chunks = data.chunks();
  const auto c = make_pruned_coefficients<T>(s);
  const int threads = effective_threads(data.threads, static_cast<double>(n) * static_cast<double>(p * k));
  const index_t rows = std::min(n, gmm_chunk_rows);
  std::vector<gmm_pruned_scratch<T>> scratch(static_cast<std::size_t>(threads));
  for (auto& sc : scratch) {
    sc.squares = host_buffer<T>(rows * d, uninitialized);
    sc.quadratic = host_buffer<T>(rows * k, uninitialized);
    sc.dots = host_buffer<T>(rows * k, uninitialized);
    sc.gathered = host_buffer<T>(rows * d, uninitialized);
    sc.weighted = host_buffer<T>(rows * d, uninitialized);
    sc.projected = host_buffer<T>(rows * d, uninitialized);
    sc.resp = host_buffer<T>(rows * k, uninitialized);
    sc.scatter = host_buffer<T>(d * d, uninitialized);
    sc.log_norm.resize(static_cast<std::size_t>(rows));
    sc.members.resize(static_cast<std::size_t>(k));
  }
  host_buffer<double> bound(n * k, uninitialized);
  host_buffer<double> wlp(n * k, uninitialized);  // -inf where skipped
  std::vector<index_t> first_choice(static_cast<std::size_t>(n));
  std::vector<double> pairs_partial(static_cast<std::size_t>(chunks), 0.0);
  constexpr double neg_inf = -std::numeric_limits<double>::infinity();
  const double rounding = 4.0 * static_cast<double>(d + 2) * static_cast<double>(std::numeric_limits<T>::epsilon());

  // Exact weighted log-densities of the pairs (first + row, j) listed in members[j]; clears the lists.
  auto evaluate_members = [&](gmm_pruned_scratch<T>& sc, index_t first, matrix_view<const T> x) {
    for (index_t j = 0; j < k; ++j) {
      auto& list = sc.members[static_cast<std::size_t>(j)];
      const index_t m = static_cast<index_t>(list.size());
      if (m == 0) continue;
      for (index_t i = 0; i < m; ++i) {
        const T* src = x.row_data(list[static_cast<std::size_t>(i)]);
        std::copy(src, src + d, sc.gathered.data() + i * d);
      }
      matrix_view<T> y(sc.projected.data(), m, d);
      gemm(serial{}, matrix_view<const T>(sc.gathered.data(), m, d), matrix_view<const T>(c.u.data() + j * d * d, d, d),
           y);
      const T* mu = c.mu.data() + j * d;
      const double cst = c.constant[static_cast<std::size_t>(j)];
      for (index_t i = 0; i < m; ++i) {
        const T* yr = y.row_data(i);
        double sq = 0.0;
        for (index_t a = 0; a < d; ++a) {
          const double v = static_cast<double>(yr[a]) - static_cast<double>(mu[a]);
          sq += v * v;
        }
        wlp[static_cast<std::size_t>((first + list[static_cast<std::size_t>(i)]) * k + j)] = cst - 0.5 * sq;
      }
      list.clear();
    }
  };
  // The pairs of row i that the bound does not rule out, besides its first choice.
  auto for_each_candidate = [&](index_t i, auto&& visit) {
    const index_t chosen = first_choice[static_cast<std::size_t>(i)];
    const double floor = wlp[static_cast<std::size_t>(i * k + chosen)] - gmm_prune_gap;
    for (index_t j = 0; j < k; ++j)
      if (j != chosen && bound[static_cast<std::size_t>(i * k + j)] >= floor) visit(j);
  };

  parallel_blocks(threads, chunks, [&](int thread, index_t chunk) {
    gmm_pruned_scratch<T>& sc = scratch[static_cast<std::size_t>(thread)];
    const index_t first = chunk * gmm_chunk_rows;
    const index_t count = std::min(n, first + gmm_chunk_rows) - first;
    const auto x = data.x.row_block(first, count);
    // Bounds from sum_a p_ja (x_a - m_ja)^2 = sum p x^2 - 2 sum p m x + sum p m^2.
    for (index_t e = 0; e < count * d; ++e) sc.squares[static_cast<std::size_t>(e)] = x.data()[e] * x.data()[e];
    gemm(serial{}, matrix_view<const T>(sc.squares.data(), count, d), matrix_view<const T>(c.diag_prec.data(), k, d),
         matrix_view<T>(sc.quadratic.data(), count, k), gemm_params<T>{.transpose_b = true});
    gemm(serial{}, x, matrix_view<const T>(c.weighted_means.data(), k, d), matrix_view<T>(sc.dots.data(), count, k),
         gemm_params<T>{.transpose_b = true});
    for (index_t r = 0; r < count; ++r) {
      double* b = bound.data() + (first + r) * k;
      index_t best = 0;
      for (index_t j = 0; j < k; ++j) {
        const double xx = static_cast<double>(sc.quadratic[static_cast<std::size_t>(r * k + j)]);
        const double mm = c.mean_sq[static_cast<std::size_t>(j)];
        const double dist =
            xx + mm - 2.0 * static_cast<double>(sc.dots[static_cast<std::size_t>(r * k + j)]) - rounding * (xx + mm);
        b[j] =
            c.constant[static_cast<std::size_t>(j)] - 0.5 * c.lambda[static_cast<std::size_t>(j)] * std::max(0.0, dist);
        wlp[static_cast<std::size_t>((first + r) * k + j)] = neg_inf;
        if (b[j] > b[best]) best = j;
      }
      first_choice[static_cast<std::size_t>(first + r)] = best;
      sc.members[static_cast<std::size_t>(best)].push_back(r);
    }
    evaluate_members(sc, first, x);
    double pairs = static_cast<double>(count);
    for (index_t r = 0; r < count; ++r) for_each_candidate(first + r, [&](index_t) { pairs += 1.0; });
    pairs_partial[static_cast<std::size_t>(chunk)] = pairs;
  });
  double pairs = 0.0;
  for (double v : pairs_partial) pairs += v;
  if (pairs > max_fraction * static_cast<double>(n) * static_cast<double>(k)) return std::nullopt;

  // Chunk partials: k d x d scatters and k d first moments (double), k n_k.
  std::vector<double> scatter_partial(want_stats ? static_cast<std::size_t>(chunks * k * d * d) : 0, 0.0);
  std::vector<double> moment_partial(want_stats ? static_cast<std::size_t>(chunks * k * d) : 0, 0.0);
  std::vector<double> nk_partial(static_cast<std::size_t>(chunks * k), 0.0);
  std::vector<double> ll_partial(static_cast<std::size_t>(chunks), 0.0);
  gmm_pass_result result;
  result.worst.assign(static_cast<std::size_t>(chunks), 0);
  result.worst_value.assign(static_cast<std::size_t>(chunks), std::numeric_limits<double>::infinity());
  parallel_blocks(threads, chunks, [&](int thread, index_t chunk) {
    gmm_pruned_scratch<T>& sc = scratch[static_cast<std::size_t>(thread)];
    const index_t first = chunk * gmm_chunk_rows;
    const index_t count = std::min(n, first + gmm_chunk_rows) - first;
    const auto x = data.x.row_block(first, count);
    for (index_t r = 0; r < count; ++r)
      for_each_candidate(first + r, [&](index_t j) { sc.members[static_cast<std::size_t>(j)].push_back(r); });
    evaluate_members(sc, first, x);

    double ll = 0.0;
    for (index_t r = 0; r < count; ++r) {
      const double* w = wlp.data() + (first + r) * k;
      double top = neg_inf;
      for (index_t j = 0; j < k; ++j) top = std::max(top, w[j]);
      double sum = 0.0;
      for (index_t j = 0; j < k; ++j)
        if (w[j] != neg_inf) sum += exp_flush(w[j] - top);
      const double log_norm = top + std::log(sum);
      sc.log_norm[static_cast<std::size_t>(r)] = log_norm;
      T* rr = sc.resp.data() + r * k;
      for (index_t j = 0; j < k; ++j) rr[j] = w[j] == neg_inf ? T(0) : static_cast<T>(exp_flush(w[j] - log_norm));
      ll += log_norm;
      if (log_norm < result.worst_value[static_cast<std::size_t>(chunk)]) {
        result.worst_value[static_cast<std::size_t>(chunk)] = log_norm;
        result.worst[static_cast<std::size_t>(chunk)] = first + r;
      }
    }
    ll_partial[static_cast<std::size_t>(chunk)] = ll;
    on_block(first, count, static_cast<const double*>(wlp.data() + first * k),
             static_cast<const double*>(sc.log_norm.data()), static_cast<const T*>(sc.resp.data()));
    if (!want_stats) return;

    // Statistics per component over its rows with r > 0, in sub-blocks of gmm_chunk_rows / 8 rows so
    // that float sums stay short before they reach the double partials.
    constexpr index_t sub_rows = gmm_chunk_rows / 8;
    for (index_t j = 0; j < k; ++j) {
      double* scatter = scatter_partial.data() + (chunk * k + j) * d * d;
      double* moment = moment_partial.data() + (chunk * k + j) * d;
      double nk = 0.0;
      index_t m = 0;
      auto flush = [&]() {
        if (m == 0) return;
        gemm(serial{}, matrix_view<const T>(sc.gathered.data(), m, d), matrix_view<const T>(sc.weighted.data(), m, d),
             matrix_view<T>(sc.scatter.data(), d, d), gemm_params<T>{.transpose_a = true});
        for (index_t e = 0; e < d * d; ++e) scatter[e] += static_cast<double>(sc.scatter[static_cast<std::size_t>(e)]);
        for (index_t i = 0; i < m; ++i) {
          const T* wr = sc.weighted.data() + i * d;
          for (index_t a = 0; a < d; ++a) moment[a] += static_cast<double>(wr[a]);
        }
        m = 0;
      };
      for (index_t r = 0; r < count; ++r) {
        const T resp = sc.resp[static_cast<std::size_t>(r * k + j)];
        if (!(resp > T(0))) continue;
        nk += static_cast<double>(resp);
        const T* xr = x.row_data(r);
        T* g = sc.gathered.data() + m * d;
        T* wv = sc.weighted.data() + m * d;
        for (index_t a = 0; a < d; ++a) {
          g[a] = xr[a];
          wv[a] = resp * xr[a];
        }
        if (++m == sub_rows) flush();
      }
      flush();
      nk_partial[static_cast<std::size_t>(chunk * k + j)] = nk;
    }
  });

  for (index_t chunk = 0; chunk < chunks; ++chunk) result.log_likelihood += ll_partial[static_cast<std::size_t>(chunk)];
  if (want_stats) {
    result.stats.assign(static_cast<std::size_t>(p * k), 0.0);
    result.nk.assign(static_cast<std::size_t>(k), 0.0);
    for (index_t chunk = 0; chunk < chunks; ++chunk)
      for (index_t j = 0; j < k; ++j) {
        const double* scatter = scatter_partial.data() + (chunk * k + j) * d * d;
        const double* moment = moment_partial.data() + (chunk * k + j) * d;
        index_t f = 0;
        for (index_t a = 0; a < d; ++a)
          for (index_t b = a; b < d; ++b, ++f) result.stats[static_cast<std::size_t>(f * k + j)] += scatter[a * d + b];
        for (index_t a = 0; a < d; ++a) result.stats[static_cast<std::size_t>((q + a) * k + j)] += moment[a];
        result.nk[static_cast<std::size_t>(j)] += nk_partial[static_cast<std::size_t>(chunk * k + j)];
      }
  }
  return result;
}

}  // namespace cellkit::cluster::detail
