#pragma once
/// @file
/// Entropic optimal transport by Sinkhorn iterations, for balanced soft assignments of cells to
/// clusters (namespace `cellkit::cluster`). Full description: docs/cluster.md.
///
/// ## Problem
///
/// Given an N x M cost matrix C (or a score matrix S, read as C = -S), marginals a (N) and b (M)
/// with non-negative entries, and epsilon > 0:
///
///     balanced:   min_P <C, P> + eps sum_ij P_ij (log P_ij - 1)   s.t.  P 1 = a,  P^T 1 = b
///     unbalanced: min_P <C, P> + eps sum_ij P_ij (log P_ij - 1) + tau KL(P 1 | a) + tau KL(P^T 1 | b)
///
/// (the unbalanced problem as POT's `sinkhorn_unbalanced(a, b, M, reg=eps, reg_m=tau)`). The solution
/// is P_ij = exp((f_i + g_j - C_ij) / eps) = u_i K_ij v_j with K = exp(-C / eps), u = exp(f / eps),
/// v = exp(g / eps). `sinkhorn` returns the dual potentials f, g (cost units) and, on request, the
/// plan and the assignment argmax_j P_ij of every row.
///
/// ## Iterations
///
/// Each iteration updates the rows, then the columns (phi = 1 balanced, tau / (tau + eps) unbalanced):
///
///     f_i = phi eps (log a_i - log sum_j exp((g_j - C_ij) / eps))      kernel: u_i = (a_i / (K v)_i)^phi
///     g_j = phi eps (log b_j - log sum_i exp((f_i - C_ij) / eps))      kernel: v_j = (b_j / (K^T u)_j)^phi
///
/// - `sinkhorn_method::log` (default): log-sum-exp updates, stable for any epsilon (1e-4 and below).
///   ONE fused pass over C per iteration: each row's log-sum-exp (max, then exp of the shifted
///   terms), then the updated plan row is added to per-chunk column sums, from which the column
///   update follows; columns whose sum underflows are recomputed exactly. One exp per entry per
///   iteration, computed in T (float exp for float).
/// - `sinkhorn_method::kernel`: the classical scaling iterations on a stored K = exp(-C / eps)
///   (N M extra values of T), ONE fused pass over K per iteration (K v and K^T u in the same sweep).
///   Fast, but K underflows for small epsilon / large costs (then the solver stops with
///   `stop_reason::numerical_error` and returns the last finite iterate, like POT).
///
/// Stopping (checked at iterations 1, 1 + check_every, 1 + 2 check_every, ..., as POT):
/// - balanced: error = || P^T 1 - b ||_2 of the iterate after the row update (rows exact, POT's
///   criterion); the solver stops when error < tol and returns that iterate. When the budget runs
///   out it also returns the iterate after a row update, so `error` always describes the returned
///   potentials exactly.
/// - unbalanced: error = max(max_i |f_i - f_i^prev|, max_j |g_j - g_j^prev|) (cost units).
///
/// Epsilon scaling (log method only): with `epsilon_start > epsilon` the solver runs stages with
/// eps = epsilon_start, epsilon_start * epsilon_decay, ..., epsilon (potentials carried over). An
/// intermediate stage ends when its error is below tol or after `stage_iterations` iterations; the
/// last stage runs until tol. `max_iter` bounds the total; if it runs out in an intermediate stage,
/// `result.epsilon` is that stage's epsilon (and the plan uses it).
/// Warm start: `f_init`, `g_init` (dual potentials, e.g. the previous minibatch's). The first row
/// update only needs g.
///
/// Costs on the fly (`pairwise_cost`): squared Euclidean, cosine (1 - cos) or Student-t
/// ((alpha+1)/2 log1p(d^2/alpha), i.e. minus the log Student-t kernel) between embeddings x (N x d)
/// and centres (M x d), recomputed block by block with a serial GEMM in every pass instead of being
/// stored (memory O(threads x block x M); cost + 2 N M d flops per pass).
///
/// `balanced_pseudo_labels`: SwAV's fixed-iteration Sinkhorn-Knopp on scores (N x K):
/// Q = exp(S / eps), then `iterations` times: columns to 1/K, rows to 1/N; finally rows scaled to
/// sum 1 (computed in the log domain, so exp(S / eps) cannot overflow).
///
/// ## Determinism and cost
///
/// Host only. Rows are cut into at most 64 fixed chunks; each chunk's column partial sums are merged
/// in chunk order, so results are bit-identical for every policy and thread count. Per iteration:
/// N M (log: 1 exp + 4 flops; kernel: 4 flops) + O(64 M) merge. Memory: 64 M partial sums,
/// O(N + M) potentials, plus K (kernel method on a stored matrix); a stored matrix with M <= 64
/// columns is also copied once into row tiles (N M values), so that both methods sweep across
/// rows with full SIMD vectors. Synchronous.
///
/// ## Errors
///
/// `invalid_argument`: epsilon <= 0 or not finite; marginals with negative or non-finite entries or
/// zero total mass; in balanced mode, sum a != sum b (relative tolerance 1e-8 for double, 1e-4 for
/// float); tau <= 0; max_iter < 1; check_every < 1; tol < 0; epsilon scaling with the kernel method,
/// epsilon_start < epsilon, epsilon_decay outside (0, 1); NaN or +inf in warm-start potentials;
/// with debug checks non-finite costs. `dimension_mismatch`: a, b, plan, assignment, f_init, g_init
/// or the embeddings not matching the cost matrix.
///
/// ## Example
///
/// ```cpp
/// namespace ck = cellkit::cluster;
/// std::vector<double> a(n, 1.0 / n), b(k, 1.0 / k);
/// auto r = ck::sinkhorn(cellkit::openmp{}, cost, cellkit::make_vector_view(a.data(), n),
///                       cellkit::make_vector_view(b.data(), k), {.plan = plan}, {.epsilon = 0.05});
/// if (!r.converged) { /* r.reason, r.error */ }
/// ```

#include <cellkit/cluster/common.hpp>
#include <cellkit/cluster/detail/parallel.hpp>
#include <cellkit/cluster/detail/sinkhorn_impl.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::cluster {

enum class sinkhorn_method {
  log,    ///< log-domain (stabilised) updates of the potentials f, g (default)
  kernel  ///< scaling updates of u, v on K = exp(-C / eps)
};

/// Whether a matrix given to `sinkhorn` holds costs (minimised) or scores (maximised, C = -S).
enum class matrix_kind { cost, score };

/// Costs computed on the fly by `pairwise_cost`.
enum class pairwise_cost_kind {
  squared_euclidean,  ///< ||x_i - c_j||^2
  cosine,             ///< 1 - cos(x_i, c_j)
  student_t           ///< (alpha + 1)/2 log(1 + ||x_i - c_j||^2 / alpha)
};

/// Costs between embeddings and centres, computed block by block instead of stored.
template <class T>
struct pairwise_cost {
  matrix_view<const T> x;        ///< N x d embeddings (cells)
  matrix_view<const T> centres;  ///< M x d centres (clusters, prototypes)
  pairwise_cost_kind kind = pairwise_cost_kind::squared_euclidean;
  T alpha = T(1);  ///< Student-t degrees of freedom (kind == student_t), > 0
};

/// What the progress callback sees at every check.
struct sinkhorn_progress {
  int iteration = 0;   ///< iterations done (all stages)
  double error = 0;    ///< the stopping error of this iteration
  double epsilon = 0;  ///< the current stage's epsilon
};

template <class T>
struct sinkhorn_params {
  T epsilon = T(0.1);                                         ///< entropic regularisation, > 0
  sinkhorn_method method = sinkhorn_method::log;              ///< log (stable) or kernel (fast for large epsilon)
  matrix_kind kind = matrix_kind::cost;                       ///< the matrix holds costs or scores
  int max_iter = 1000;                                        ///< iteration budget (all stages)
  T tol = T(1e-9);                                            ///< stopping threshold on the error
  int check_every = 10;                                       ///< check the error every so many iterations
  std::optional<T> reg_m = std::nullopt;                      ///< tau of the unbalanced problem; empty = balanced
  T epsilon_start = T(0);                                     ///< > epsilon turns on epsilon scaling (log method)
  T epsilon_decay = T(0.5);                                   ///< factor between epsilon stages, in (0, 1)
  int stage_iterations = 100;                                 ///< iteration cap of each intermediate epsilon stage
  std::optional<vector_view<const T>> f_init = std::nullopt;  ///< warm start, N potentials
  std::optional<vector_view<const T>> g_init = std::nullopt;  ///< warm start, M potentials
  /// Called at every check; return false to stop (reason stopped_by_callback).
  std::function<bool(const sinkhorn_progress&)> progress = {};
};

/// Optional outputs: present views are overwritten, absent ones skipped.
template <class T>
struct sinkhorn_outputs {
  std::optional<matrix_view<T>> plan = std::nullopt;              ///< N x M transport plan
  std::optional<vector_view<index_t>> assignment = std::nullopt;  ///< N, argmax_j of each plan row
};

template <class T>
struct sinkhorn_result {
  std::vector<T> f;  ///< N row potentials (cost units): P_ij = exp((f_i + g_j - C_ij) / epsilon)
  std::vector<T> g;  ///< M column potentials
  int iterations = 0;
  T error = T(0);  ///< the stopping error of the returned iterate (see the file comment)
  bool converged = false;
  stop_reason reason = stop_reason::max_iterations;
  T epsilon = T(0);  ///< the epsilon the potentials belong to (the target unless the budget ran out early)
};

template <class T>
struct pseudo_label_params {
  T epsilon = T(0.05);  ///< SwAV's default
  int iterations = 3;   ///< column + row normalisations, >= 1
};

namespace detail {

template <class T>
struct marginal_info {
  double mass_a = 0;
  double mass_b = 0;
};

template <class T>
marginal_info<T> check_sinkhorn_inputs(index_t n, index_t m, vector_view<const T> a, vector_view<const T> b,
                                       const sinkhorn_params<T>& p, const sinkhorn_outputs<T>& out, const char* fn) {
  CELLKIT_EXPECTS(std::isfinite(p.epsilon) && p.epsilon > T(0), fn, "params.epsilon",
                  "must be finite and > 0, got " + detail::value_text(p.epsilon));
  expect_shapes(a.size() == n, fn, "a", a.shape(), "cost", {n, m}, "a needs one entry per row of the cost matrix");
  expect_shapes(b.size() == m, fn, "b", b.shape(), "cost", {n, m}, "b needs one entry per column of the cost matrix");
  expect_finite_non_negative(a, fn, "a");
  expect_finite_non_negative(b, fn, "b");
  marginal_info<T> info;
  for (index_t i = 0; i < n; ++i) info.mass_a += static_cast<double>(a[i]);
  for (index_t j = 0; j < m; ++j) info.mass_b += static_cast<double>(b[j]);
  CELLKIT_EXPECTS(info.mass_a > 0.0, fn, "a", "has total mass 0");
  CELLKIT_EXPECTS(info.mass_b > 0.0, fn, "b", "has total mass 0");
  if (p.reg_m) {
    CELLKIT_EXPECTS(std::isfinite(*p.reg_m) && *p.reg_m > T(0), fn, "params.reg_m",
                    "tau must be finite and > 0, got " + detail::value_text(*p.reg_m));
  } else {
    const double rel = sizeof(T) == 4 ? 1e-4 : 1e-8;
    CELLKIT_EXPECTS(std::fabs(info.mass_a - info.mass_b) <= rel * std::max(info.mass_a, info.mass_b), fn, "a/b",
                    "the marginals must have the same total mass in balanced mode (sum a = " +
                        detail::value_text(info.mass_a) + ", sum b = " + detail::value_text(info.mass_b) +
                        "); normalise them or set params.reg_m for unbalanced transport");
  }
  CELLKIT_EXPECTS(p.max_iter >= 1, fn, "params.max_iter", "must be >= 1, got " + std::to_string(p.max_iter));
  CELLKIT_EXPECTS(p.check_every >= 1, fn, "params.check_every", "must be >= 1, got " + std::to_string(p.check_every));
  CELLKIT_EXPECTS(std::isfinite(p.tol) && p.tol >= T(0), fn, "params.tol",
                  "must be finite and >= 0, got " + detail::value_text(p.tol));
  if (p.epsilon_start > p.epsilon) {
    CELLKIT_EXPECTS(p.method == sinkhorn_method::log, fn, "params.epsilon_start",
                    "epsilon scaling needs the log method (the kernel would underflow)");
    CELLKIT_EXPECTS(p.epsilon_decay > T(0) && p.epsilon_decay < T(1), fn, "params.epsilon_decay",
                    "must be in (0, 1), got " + detail::value_text(p.epsilon_decay));
    CELLKIT_EXPECTS(std::isfinite(p.epsilon_start), fn, "params.epsilon_start", "must be finite");
    CELLKIT_EXPECTS(p.stage_iterations >= 1, fn, "params.stage_iterations",
                    "must be >= 1, got " + std::to_string(p.stage_iterations));
  } else {
    CELLKIT_EXPECTS(p.epsilon_start == T(0) || p.epsilon_start == p.epsilon, fn, "params.epsilon_start",
                    "must be 0 (no scaling) or >= epsilon, got " + detail::value_text(p.epsilon_start));
  }
  auto check_potential = [&](const std::optional<vector_view<const T>>& v, index_t size, const char* name) {
    if (!v) return;
    expect_shapes(v->size() == size, fn, name, v->shape(), "cost", {n, m}, "one potential per row (f) / column (g)");
    for (index_t i = 0; i < v->size(); ++i)
      CELLKIT_EXPECTS(!std::isnan((*v)[i]) && (*v)[i] != std::numeric_limits<T>::infinity(), fn, name,
                      "element " + std::to_string(i) + " is NaN or +inf");
  };
  check_potential(p.f_init, n, "params.f_init");
  check_potential(p.g_init, m, "params.g_init");
  if (out.plan)
    expect_shapes(out.plan->rows() == n && out.plan->cols() == m, fn, "outputs.plan", out.plan->shape(), "cost", {n, m},
                  "the plan has the shape of the cost matrix");
  if (out.assignment)
    expect_shapes(out.assignment->size() == n, fn, "outputs.assignment", out.assignment->shape(), "cost", {n, m},
                  "one label per row of the cost matrix");
  return info;
}

template <class T>
std::vector<double> to_log(vector_view<const T> v) {
  std::vector<double> out(static_cast<std::size_t>(v.size()));
  for (index_t i = 0; i < v.size(); ++i)
    out[static_cast<std::size_t>(i)] =
        v[i] > T(0) ? std::log(static_cast<double>(v[i])) : -std::numeric_limits<double>::infinity();
  return out;
}

/// Epsilon stages: epsilon_start, * decay, ..., epsilon (just epsilon without scaling).
template <class T>
std::vector<double> epsilon_stages(const sinkhorn_params<T>& p) {
  std::vector<double> stages;
  const auto target = static_cast<double>(p.epsilon);
  if (p.epsilon_start > p.epsilon) {
    for (double e = static_cast<double>(p.epsilon_start); e > target; e *= static_cast<double>(p.epsilon_decay))
      stages.push_back(e);
  }
  stages.push_back(target);
  return stages;
}

template <class T, class Rows>
sinkhorn_result<T> sinkhorn_log_solve(int threads, const Rows& rows, T sign, vector_view<const T> a,
                                      vector_view<const T> b, const marginal_info<T>& info, const sinkhorn_params<T>& p,
                                      const sinkhorn_outputs<T>& out, const row_tiles<T>* tiled = nullptr) {
  const index_t n = rows.rows();
  const index_t m = rows.cols();
  sweep_workspace<T> ws(rows, threads);
  const std::vector<double> log_a = to_log(a);
  const std::vector<double> log_b = to_log(b);
  std::vector<double> f(static_cast<std::size_t>(n), 0.0);
  std::vector<double> g(static_cast<std::size_t>(m), 0.0);
  if (p.f_init)
    for (index_t i = 0; i < n; ++i) f[static_cast<std::size_t>(i)] = static_cast<double>((*p.f_init)[i]);
  if (p.g_init)
    for (index_t j = 0; j < m; ++j) g[static_cast<std::size_t>(j)] = static_cast<double>((*p.g_init)[j]);
  for (index_t j = 0; j < m; ++j)
    if (log_b[static_cast<std::size_t>(j)] == -std::numeric_limits<double>::infinity())
      g[static_cast<std::size_t>(j)] = -std::numeric_limits<double>::infinity();
  std::vector<double> f_new(static_cast<std::size_t>(n));
  std::vector<double> g_new(static_cast<std::size_t>(m));
  std::vector<double> col(static_cast<std::size_t>(m));
  std::vector<double> lse_col(static_cast<std::size_t>(m));
  // Row state of the accepted iterate and of the sweep in progress (balanced: f is derived from it).
  std::vector<T> max_cur(static_cast<std::size_t>(n)), sum_cur(static_cast<std::size_t>(n));
  std::vector<T> max_new(static_cast<std::size_t>(n)), sum_new(static_cast<std::size_t>(n));
  bool have_rows = false;
  const bool balanced = !p.reg_m.has_value();
  const std::vector<double> stages = epsilon_stages(p);

  sinkhorn_result<T> result;
  int it = 0;
  bool done = false;
  double eps = stages.front();
  double eps_state = eps;  // the epsilon of the accepted iterate
  for (std::size_t s = 0; s < stages.size() && !done; ++s) {
    eps = stages[s];
    const bool last_stage = s + 1 == stages.size();
    const T coef = static_cast<T>(-static_cast<double>(sign) / eps);
    const double phi = balanced ? 1.0 : static_cast<double>(*p.reg_m) / (static_cast<double>(*p.reg_m) + eps);
    const int stage_first = it;
    while (true) {
      ++it;
      bool finite = true;  // every live row's state (the tiled sweep checks it per chunk itself)
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
      if (tiled != nullptr) {
        finite = tiled_log_row_sweep(threads, *tiled, ws, coef, eps, log_a.data(), phi, g.data(), max_new.data(),
                                     sum_new.data(), balanced ? nullptr : f_new.data(), col.data());
      } else
#endif
      {
        const T* hint = have_rows && eps_state == eps ? max_cur.data() : nullptr;
        log_row_sweep(threads, rows, ws, coef, eps, log_a.data(), a.data(), phi, g.data(), hint, max_new.data(),
                      sum_new.data(), balanced ? nullptr : f_new.data(), col.data());
        for (index_t i = 0; i < n; ++i) {
          const auto si = static_cast<std::size_t>(i);
          if (log_a[si] == -std::numeric_limits<double>::infinity()) continue;
          finite &= balanced ? std::isfinite(max_new[si]) && std::isfinite(sum_new[si]) && sum_new[si] > T(0)
                             : std::isfinite(f_new[si]);
        }
      }
      bool f_ready = !balanced;
      auto new_f = [&]() -> const double* {
        if (!f_ready) row_potentials(n, log_a.data(), max_new.data(), sum_new.data(), eps, f_new.data());
        f_ready = true;
        return f_new.data();
      };
      column_log_sums(threads, rows, ws, coef, eps, new_f, g.data(), col.data(), info.mass_a, lse_col.data());
      double err = 0.0;
      for (index_t j = 0; j < m; ++j) {
        const auto sj = static_cast<std::size_t>(j);
        g_new[sj] =
            log_b[sj] == -std::numeric_limits<double>::infinity() ? log_b[sj] : phi * eps * (log_b[sj] - lse_col[sj]);
        finite &= std::isfinite(g_new[sj]) || log_b[sj] == -std::numeric_limits<double>::infinity();
      }
      if (!finite) {
        result.reason = stop_reason::numerical_error;
        done = true;
        break;
      }
      if (balanced) {
        for (index_t j = 0; j < m; ++j) {
          const auto sj = static_cast<std::size_t>(j);
          const double mass = std::exp(g[sj] / eps + lse_col[sj]);  // column sums of the iterate (f_new, g)
          const double diff = (std::isfinite(mass) ? mass : 0.0) - static_cast<double>(b[j]);
          err += diff * diff;
        }
        err = std::sqrt(err);
      } else {
        for (index_t i = 0; i < n; ++i) {
          const auto si = static_cast<std::size_t>(i);
          if (std::isfinite(f_new[si])) err = std::max(err, std::fabs(f_new[si] - f[si]));
        }
        for (index_t j = 0; j < m; ++j) {
          const auto sj = static_cast<std::size_t>(j);
          if (std::isfinite(g_new[sj])) err = std::max(err, std::fabs(g_new[sj] - g[sj]));
        }
        f.swap(f_new);
      }
      max_cur.swap(max_new);  // the row state (also the next sweep's shift hints)
      sum_cur.swap(sum_new);
      have_rows = true;
      eps_state = eps;
      result.error = static_cast<T>(err);
      const bool check = (it - 1) % p.check_every == 0;
      const bool converged_now = check && err < static_cast<double>(p.tol);
      const bool stage_done = !last_stage && (converged_now || it - stage_first >= p.stage_iterations);
      if ((last_stage && converged_now) || it == p.max_iter) {
        result.reason = converged_now && last_stage ? stop_reason::converged : stop_reason::max_iterations;
        done = true;
      }
      if (!done && check && p.progress && !p.progress(sinkhorn_progress{it, err, eps})) {
        result.reason = stop_reason::stopped_by_callback;
        done = true;
      }
      // Balanced: the iterate (f, g) after the row update is the one `err` describes; return it when
      // stopping, otherwise complete the iteration with the column update.
      if (!balanced || !done) g.swap(g_new);
      if (done || stage_done) break;
    }
  }
  eps = eps_state;
  if (balanced && have_rows) row_potentials(n, log_a.data(), max_cur.data(), sum_cur.data(), eps, f.data());
  result.iterations = it;
  result.converged = result.reason == stop_reason::converged;
  result.epsilon = static_cast<T>(eps);
  if (out.plan || out.assignment) {
    const T coef = static_cast<T>(-static_cast<double>(sign) / eps);
    log_plan_and_assignment(threads, rows, ws, coef, eps, f.data(), g.data(), out.plan ? out.plan->data() : nullptr,
                            out.plan ? out.plan->stride() : 0, out.assignment ? out.assignment->data() : nullptr);
  }
  result.f.resize(static_cast<std::size_t>(n));
  result.g.resize(static_cast<std::size_t>(m));
  for (index_t i = 0; i < n; ++i)
    result.f[static_cast<std::size_t>(i)] = static_cast<T>(f[static_cast<std::size_t>(i)]);
  for (index_t j = 0; j < m; ++j)
    result.g[static_cast<std::size_t>(j)] = static_cast<T>(g[static_cast<std::size_t>(j)]);
  return result;
}

/// Kernel-domain solver on kernel rows `krows` (K = exp(-s C / eps)); `crows` gives the costs for
/// the assignment output.
template <class T, class KRows, class CRows>
sinkhorn_result<T> sinkhorn_kernel_solve(int threads, const KRows& krows, const CRows& crows, T sign,
                                         vector_view<const T> a, vector_view<const T> b, const sinkhorn_params<T>& p,
                                         const sinkhorn_outputs<T>& out, const row_tiles<T>* tiled = nullptr) {
  const index_t n = krows.rows();
  const index_t m = krows.cols();
  const double eps = static_cast<double>(p.epsilon);
  sweep_workspace<T> ws(krows, threads);
  const bool balanced = !p.reg_m.has_value();
  const double phi = balanced ? 1.0 : static_cast<double>(*p.reg_m) / (static_cast<double>(*p.reg_m) + eps);
  const index_t mp = krows.loop_cols();  // >= m; v is 0 beyond m (so is the padding of K)
  std::vector<T> u(static_cast<std::size_t>(n), T(1) / static_cast<T>(n));
  std::vector<T> v(static_cast<std::size_t>(mp), T(0));
  for (index_t j = 0; j < m; ++j) v[static_cast<std::size_t>(j)] = T(1) / static_cast<T>(m);
  if (p.f_init)
    for (index_t i = 0; i < n; ++i)
      u[static_cast<std::size_t>(i)] = static_cast<T>(std::exp(static_cast<double>((*p.f_init)[i]) / eps));
  if (p.g_init)
    for (index_t j = 0; j < m; ++j)
      v[static_cast<std::size_t>(j)] = static_cast<T>(std::exp(static_cast<double>((*p.g_init)[j]) / eps));
  for (index_t j = 0; j < m; ++j)
    if (!(b[j] > T(0))) v[static_cast<std::size_t>(j)] = T(0);
  std::vector<T> u_new(static_cast<std::size_t>(n));
  std::vector<T> v_new(static_cast<std::size_t>(mp), T(0));
  std::vector<double> col(static_cast<std::size_t>(mp));

  sinkhorn_result<T> result;
  int it = 0;
  while (true) {
    ++it;
#if CELLKIT_CLUSTER_VECTOR_EXTENSIONS
    bool finite = tiled != nullptr
                      ? tiled_kernel_row_sweep(threads, *tiled, ws, phi, v.data(), u_new.data(), col.data())
                      : kernel_row_sweep(threads, krows, ws, a.data(), phi, v.data(), u_new.data(), col.data());
#else
    bool finite = kernel_row_sweep(threads, krows, ws, a.data(), phi, v.data(), u_new.data(), col.data());
#endif
    double err = 0.0;
    for (index_t j = 0; j < m; ++j) {
      const auto sj = static_cast<std::size_t>(j);
      if (b[j] > T(0)) {
        const double ratio = static_cast<double>(b[j]) / col[sj];
        v_new[sj] = static_cast<T>(balanced ? ratio : std::pow(ratio, phi));
        finite &= col[sj] > 0.0 && std::isfinite(v_new[sj]) && v_new[sj] > T(0);
      } else {
        v_new[sj] = T(0);
      }
    }
    if (!finite) {
      result.reason = stop_reason::numerical_error;
      break;
    }
    if (balanced) {
      for (index_t j = 0; j < m; ++j) {
        const double diff = static_cast<double>(v[static_cast<std::size_t>(j)]) * col[static_cast<std::size_t>(j)] -
                            static_cast<double>(b[j]);
        err += diff * diff;
      }
      err = std::sqrt(err);
    } else {
      auto log_change = [&](T now, T before) {
        return now > T(0) && before > T(0)
                   ? eps * std::fabs(std::log(static_cast<double>(now)) - std::log(static_cast<double>(before)))
                   : 0.0;
      };
      for (index_t i = 0; i < n; ++i)
        err = std::max(err, log_change(u_new[static_cast<std::size_t>(i)], u[static_cast<std::size_t>(i)]));
      for (index_t j = 0; j < m; ++j)
        err = std::max(err, log_change(v_new[static_cast<std::size_t>(j)], v[static_cast<std::size_t>(j)]));
    }
    u.swap(u_new);
    result.error = static_cast<T>(err);
    const bool check = (it - 1) % p.check_every == 0;
    const bool converged_now = check && err < static_cast<double>(p.tol);
    bool done = false;
    if (converged_now || it == p.max_iter) {
      result.reason = converged_now ? stop_reason::converged : stop_reason::max_iterations;
      done = true;
    }
    if (!done && check && p.progress && !p.progress(sinkhorn_progress{it, err, eps})) {
      result.reason = stop_reason::stopped_by_callback;
      done = true;
    }
    // Balanced: return the iterate `err` describes (after the row update); else finish the iteration.
    if (!balanced || !done) v.swap(v_new);
    if (done) break;
  }
  result.iterations = it;
  result.converged = result.reason == stop_reason::converged;
  result.epsilon = p.epsilon;
  result.f.resize(static_cast<std::size_t>(n));
  result.g.resize(static_cast<std::size_t>(m));
  std::vector<double> f(static_cast<std::size_t>(n));
  std::vector<double> g(static_cast<std::size_t>(m));
  for (index_t i = 0; i < n; ++i) {
    const auto ui = static_cast<double>(u[static_cast<std::size_t>(i)]);
    f[static_cast<std::size_t>(i)] = ui > 0.0 ? eps * std::log(ui) : -std::numeric_limits<double>::infinity();
    result.f[static_cast<std::size_t>(i)] = static_cast<T>(f[static_cast<std::size_t>(i)]);
  }
  for (index_t j = 0; j < m; ++j) {
    const auto vj = static_cast<double>(v[static_cast<std::size_t>(j)]);
    g[static_cast<std::size_t>(j)] = vj > 0.0 ? eps * std::log(vj) : -std::numeric_limits<double>::infinity();
    result.g[static_cast<std::size_t>(j)] = static_cast<T>(g[static_cast<std::size_t>(j)]);
  }
  if (out.plan) {
    // P = diag(u) K diag(v), from the kernel rows (as POT returns it).
    const sweep_layout& layout = ws.layout;
    T* plan = out.plan->data();
    const index_t stride = out.plan->stride();
    parallel_blocks(threads, layout.chunks, [&](int thread, index_t c) {
      T* scratch = ws.block[static_cast<std::size_t>(thread)].data();
      const index_t last = layout.chunk_last(c);
      for (index_t first = layout.chunk_first(c); first < last; first += layout.sub_rows) {
        const index_t count = std::min(layout.sub_rows, last - first);
        const auto block = krows.get(first, count, scratch);
        for (index_t r = 0; r < count; ++r) {
          const T ui = u[static_cast<std::size_t>(first + r)];
          const T* krow = block.data + r * block.stride;
          T* o = plan + (first + r) * stride;
          for (index_t j = 0; j < m; ++j) o[j] = ui * krow[j] * v[static_cast<std::size_t>(j)];
        }
      }
    });
  }
  if (out.assignment) {
    sweep_workspace<T> cws(crows, threads);
    const T coef = static_cast<T>(-static_cast<double>(sign) / eps);
    log_plan_and_assignment(threads, crows, cws, coef, eps, f.data(), g.data(), static_cast<T*>(nullptr), 0,
                            out.assignment->data());
  }
  return result;
}

template <class T, class Rows>
sinkhorn_result<T> sinkhorn_dispatch(int threads, const Rows& rows, T sign, vector_view<const T> a,
                                     vector_view<const T> b, const sinkhorn_params<T>& p,
                                     const sinkhorn_outputs<T>& out, const char* fn) {
  const auto info = check_sinkhorn_inputs<T>(rows.rows(), rows.cols(), a, b, p, out, fn);
  threads = effective_threads(threads, static_cast<double>(rows.rows()) * static_cast<double>(rows.cols()));
  if (p.method == sinkhorn_method::log) {
    if constexpr (std::is_same_v<Rows, stored_rows<T>>) {
      // Few columns: a second copy of C in row tiles for the vectorised sweep (costs on the fly are
      // never stored, so they keep the row sweep).
      if (row_tiles<T>::worthwhile(rows.cols())) {
        const row_tiles<T> tiled(rows.matrix.data(), rows.rows(), rows.cols(), rows.matrix.stride(), a.data());
        return sinkhorn_log_solve<T>(threads, rows, sign, a, b, info, p, out, &tiled);
      }
    }
    return sinkhorn_log_solve<T>(threads, rows, sign, a, b, info, p, out);
  }
  const T coef = static_cast<T>(-static_cast<double>(sign) / static_cast<double>(p.epsilon));
  if constexpr (std::is_same_v<Rows, stored_rows<T>>) {
    // Stored matrix: compute K = exp(-s C / eps) once.
    // Rows padded with zeros to a multiple of 64 bytes: the sweep's loops then have no remainder.
    const index_t n = rows.rows();
    const index_t m = rows.cols();
    constexpr index_t lanes = 64 / static_cast<index_t>(sizeof(T));
    const index_t mp = (m + lanes - 1) / lanes * lanes;
    host_buffer<T> kernel(n * mp, uninitialized);
    parallel_blocks(threads, (n + 255) / 256, [&](int, index_t blk) {
      const index_t last = std::min(n, (blk + 1) * 256);
      for (index_t i = blk * 256; i < last; ++i) {
        const auto src = rows.get(i, 1, nullptr);
        T* o = kernel.data() + i * mp;
        CELLKIT_CLUSTER_SIMD
        for (index_t j = 0; j < m; ++j) o[j] = exp_flush(src.data[j] * coef);
        for (index_t j = m; j < mp; ++j) o[j] = T(0);
      }
    });
    stored_rows<T> krows{matrix_view<const T>(kernel.data(), n, m, mp), mp};
    if (row_tiles<T>::worthwhile(m)) {
      const row_tiles<T> tiled(kernel.data(), n, m, mp, a.data());
      return sinkhorn_kernel_solve<T>(threads, krows, rows, sign, a, b, p, out, &tiled);
    }
    return sinkhorn_kernel_solve<T>(threads, krows, rows, sign, a, b, p, out);
  } else {
    kernel_rows<T, Rows> krows{rows, coef};
    return sinkhorn_kernel_solve<T>(threads, krows, rows, sign, a, b, p, out);
  }
}

}  // namespace detail

/// Entropic OT between the rows and columns of a stored N x M cost (or score, `params.kind`) matrix
/// with marginals a (N) and b (M); see the file comment for the iterations, stopping rule, modes,
/// cost and errors. Returns potentials, iterations, error, converged, reason; fills the requested
/// outputs (plan, assignment). Host only, synchronous, bit-identical for every thread count.
template <class Policy, class TC, class TA, class TB, class SC, class SA, class SB>
requires is_execution_policy_v<Policy> sinkhorn_result<std::remove_const_t<TC>> sinkhorn(
    const Policy& policy, matrix_view<TC, SC> cost, vector_view<TA, SA> a, vector_view<TB, SB> b,
    const sinkhorn_outputs<std::remove_const_t<TC>>& outputs = {},
    const sinkhorn_params<std::remove_const_t<TC>>& params = {}) {
  using T = std::remove_const_t<TC>;
  static_assert(
      detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TA>, T> && std::is_same_v<std::remove_const_t<TB>, T>,
      "sinkhorn: cost, a and b must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SC, SA, SB>();
  if constexpr (CELLKIT_DEBUG_CHECKS) detail::expect_all_finite<T>(cost, "sinkhorn", "cost");
  const T sign = params.kind == matrix_kind::cost ? T(1) : T(-1);
  detail::stored_rows<T> rows{matrix_view<const T>(cost)};
  return detail::sinkhorn_dispatch<T>(detail::host_threads(policy), rows, sign, vector_view<const T>(a),
                                      vector_view<const T>(b), params, outputs, "sinkhorn");
}

/// Entropic OT with costs computed on the fly from embeddings and centres (`pairwise_cost`): the
/// N x M cost matrix is never stored. `params.kind` is ignored (these are costs).
template <class Policy, class T, class TA, class TB, class SA, class SB>
requires is_execution_policy_v<Policy> sinkhorn_result<T> sinkhorn(const Policy& policy, const pairwise_cost<T>& cost,
                                                                   vector_view<TA, SA> a, vector_view<TB, SB> b,
                                                                   const sinkhorn_outputs<T>& outputs = {},
                                                                   const sinkhorn_params<T>& params = {}) {
  static_assert(
      detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TA>, T> && std::is_same_v<std::remove_const_t<TB>, T>,
      "sinkhorn: embeddings, a and b must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SA, SB>();
  constexpr const char* fn = "sinkhorn";
  expect_shapes(cost.x.cols() == cost.centres.cols(), fn, "cost.x", cost.x.shape(), "cost.centres",
                cost.centres.shape(), "embeddings and centres must have the same number of columns");
  CELLKIT_EXPECTS(cost.kind != pairwise_cost_kind::student_t || (std::isfinite(cost.alpha) && cost.alpha > T(0)), fn,
                  "cost.alpha", "must be finite and > 0, got " + detail::value_text(cost.alpha));
  if constexpr (CELLKIT_DEBUG_CHECKS) {
    detail::expect_all_finite<T>(cost.x, fn, "cost.x");
    detail::expect_all_finite<T>(cost.centres, fn, "cost.centres");
  }
  const auto kind = cost.kind == pairwise_cost_kind::squared_euclidean ? detail::pairwise_kind::squared_euclidean
                    : cost.kind == pairwise_cost_kind::cosine          ? detail::pairwise_kind::cosine
                                                                       : detail::pairwise_kind::student_t;
  detail::pairwise_rows<T> rows(cost.x, cost.centres, kind, cost.alpha);
  return detail::sinkhorn_dispatch<T>(detail::host_threads(policy), rows, T(1), vector_view<const T>(a),
                                      vector_view<const T>(b), params, outputs, fn);
}

/// `sinkhorn` with `default_host_policy()`.
template <class TC, class TA, class TB>
sinkhorn_result<std::remove_const_t<TC>> sinkhorn(matrix_view<TC> cost, vector_view<TA> a, vector_view<TB> b,
                                                  const sinkhorn_outputs<std::remove_const_t<TC>>& outputs = {},
                                                  const sinkhorn_params<std::remove_const_t<TC>>& params = {}) {
  return sinkhorn(default_host_policy(), cost, a, b, outputs, params);
}

template <class T, class TA, class TB>
sinkhorn_result<T> sinkhorn(const pairwise_cost<T>& cost, vector_view<TA> a, vector_view<TB> b,
                            const sinkhorn_outputs<T>& outputs = {}, const sinkhorn_params<T>& params = {}) {
  return sinkhorn(default_host_policy(), cost, a, b, outputs, params);
}

/// SwAV's balanced pseudo-labels: q (N x K) from scores (N x K) by `params.iterations` fixed
/// Sinkhorn-Knopp normalisations of exp(scores / epsilon) (columns to 1/K, then rows to 1/N, each
/// iteration), rows finally scaled to sum 1, as `distributed_sinkhorn` in the SwAV code (one
/// process). Computed in the log domain: identical in exact arithmetic, but exp(scores / eps)
/// never overflows. Cost: (iterations + 1) passes over the scores, one exp per entry each (the
/// first column pass: two). Host only, synchronous, thread-count independent.
/// Throws `dimension_mismatch` (q not the shape of scores), `invalid_argument` (epsilon <= 0,
/// iterations < 1, N or K = 0, non-finite scores with debug checks).
template <class Policy, class TS, class T, class SS, class SQ>
requires is_execution_policy_v<Policy>
void balanced_pseudo_labels(const Policy& policy, matrix_view<TS, SS> scores, matrix_view<T, SQ> q,
                            const pseudo_label_params<std::type_identity_t<T>>& params = {}) {
  static_assert(detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TS>, T>,
                "balanced_pseudo_labels: scores and q must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SS, SQ>();
  constexpr const char* fn = "balanced_pseudo_labels";
  expect_shapes(q.rows() == scores.rows() && q.cols() == scores.cols(), fn, "q", q.shape(), "scores", scores.shape(),
                "q has the shape of scores");
  CELLKIT_EXPECTS(std::isfinite(params.epsilon) && params.epsilon > T(0), fn, "params.epsilon",
                  "must be finite and > 0, got " + detail::value_text(params.epsilon));
  CELLKIT_EXPECTS(params.iterations >= 1, fn, "params.iterations",
                  "must be >= 1, got " + std::to_string(params.iterations));
  CELLKIT_EXPECTS(scores.rows() >= 1 && scores.cols() >= 1, fn, "scores", "must have at least one row and column");
  if constexpr (CELLKIT_DEBUG_CHECKS) detail::expect_all_finite<T>(scores, fn, "scores");
  const index_t n = scores.rows();
  const index_t k = scores.cols();
  const int threads =
      detail::effective_threads(detail::host_threads(policy), static_cast<double>(n) * static_cast<double>(k));
  detail::stored_rows<T> rows{matrix_view<const T>(scores)};
  detail::sweep_workspace<T> ws(rows, threads);
  const double eps = static_cast<double>(params.epsilon);
  const T coef = static_cast<T>(1.0 / eps);
  const std::vector<double> log_a(static_cast<std::size_t>(n), -std::log(static_cast<double>(n)));
  const double log_b = -std::log(static_cast<double>(k));
  std::vector<double> f(static_cast<std::size_t>(n), 0.0);
  std::vector<double> g(static_cast<std::size_t>(k), 0.0);
  std::vector<double> col(static_cast<std::size_t>(k));
  std::vector<double> lse(static_cast<std::size_t>(k));
  // First column normalisation (f = 0): exact column log-sum-exp.
  std::vector<index_t> all(static_cast<std::size_t>(k));
  for (index_t j = 0; j < k; ++j) all[static_cast<std::size_t>(j)] = j;
  detail::exact_column_lse(threads, rows, ws, coef, eps, f.data(), all, lse.data());
  for (index_t j = 0; j < k; ++j) g[static_cast<std::size_t>(j)] = eps * (log_b - lse[static_cast<std::size_t>(j)]);
  // (row, column) pairs.
  std::vector<T> row_max(static_cast<std::size_t>(n)), row_sum(static_cast<std::size_t>(n));
  const std::vector<T> a(static_cast<std::size_t>(n), static_cast<T>(1.0 / static_cast<double>(n)));
  for (int it = 1; it < params.iterations; ++it) {
    detail::log_row_sweep(threads, rows, ws, coef, eps, log_a.data(), a.data(), 1.0, g.data(),
                          static_cast<const T*>(nullptr), row_max.data(), row_sum.data(), static_cast<double*>(nullptr),
                          col.data());
    auto row_f = [&]() -> const double* {
      detail::row_potentials(n, log_a.data(), row_max.data(), row_sum.data(), eps, f.data());
      return f.data();
    };
    detail::column_log_sums(threads, rows, ws, coef, eps, row_f, g.data(), col.data(), 1.0, lse.data());
    for (index_t j = 0; j < k; ++j) g[static_cast<std::size_t>(j)] = eps * (log_b - lse[static_cast<std::size_t>(j)]);
  }
  // Final row normalisation with rows scaled to 1: q_ij = softmax_j(S_ij / eps + g_j / eps).
  detail::row_softmax(threads, rows, ws, coef, eps, g.data(), q.data(), q.stride());
}

template <class TS, class T>
void balanced_pseudo_labels(matrix_view<TS> scores, matrix_view<T> q,
                            const pseudo_label_params<std::type_identity_t<T>>& params = {}) {
  balanced_pseudo_labels(default_host_policy(), scores, q, params);
}

}  // namespace cellkit::cluster
