#pragma once
/// @file
/// Gaussian mixtures by EM (namespace `cellkit::cluster`): fit with full, tied, diag or spherical
/// covariances, and the queries of a fitted model (log-likelihood per cell, labels, memberships,
/// membership entropy, sampling, BIC / AIC / ICL). Model selection over K and covariance types is
/// in gmm_select.hpp; the types in gmm_model.hpp. Full description: docs/gmm.md.
///
/// ## What it computes (scikit-learn 1.2 `GaussianMixture`, step for step)
///
/// log p(x_i, k) = log w_k - d/2 log(2 pi) + log det U_k - |(x_i - m_k)^T U_k|^2 / 2 with P_k = U_k U_k^T
/// (precision). E-step: r_ik = exp(log p(x_i, k) - log sum_j p(x_i, j)) (log-sum-exp per row); the
/// lower bound of an iteration is the mean over i of log sum_k p(x_i, k) under the parameters
/// before its M-step. M-step with n_k = sum_i r_ik + 10 eps: w_k = n_k / sum n, m_k = sum_i r_ik
/// x_i / n_k, covariances (reg = reg_covar, or reg_covar * var(x[:, a]) with
/// `gmm_regularization::relative`):
///   full      C_k = sum_i r_ik (x_i - m_k)(x_i - m_k)^T / n_k + reg I
///   tied      C   = (X^T X - sum_k n_k m_k m_k^T) / sum_k n_k + reg I
///   diag      c_ka = sum_i r_ik x_ia^2 / n_k - 2 m_ka sum_i r_ik x_ia / n_k + m_ka^2 + reg_a
///   spherical the mean over a of the diag variances
/// U_k = L_k^-T for the Cholesky factor C_k = L_k L_k^T (1/sqrt(c) for diag and spherical). Stop
/// after an iteration whose |lower bound - previous| < tol, or after max_iter. With n_init > 1 the
/// run with the highest lower bound is kept (the first on ties). Initial responsibilities: one-hot
/// k-means labels (`cellkit::cluster::kmeans`, k-means++ seeding, seed from `params.seed` and the
/// restart), one-hot k-means++ points, random rows normalised, or k random distinct points; then
/// weights_init / means_init / precisions_init replace their parts. Random numbers come from
/// `philox_engine(seed, stream, restart * N + i)` (streams in gmm_model.hpp): results depend on
/// (seed, data, params) only, never on the policy or thread count.
///
/// ## Speed
///
/// Both EM steps are GEMMs over quadratic features (docs/gmm.md). For full covariances, pairs
/// (cell, component) that a bound proves to lie more than 50 nats below the cell's best component
/// are skipped (responsibility 0 instead of < 2e-22; `gmm_params::prune`, on by default); the fit
/// falls back to evaluating every pair while more than 35 % of them would be evaluated. Queries on
/// a fitted model evaluate every pair.
///
/// ## Robustness (nothing singular throws)
///
/// - A covariance that is not positive definite (duplicate points, d above the points of a
///   component, reg_covar = 0, data of huge scale) has its eigenvalues floored at
///   max(floor_relative * mean feature variance, smallest regularisation): diagnostic
///   `covariance_repaired` with the smallest eigenvalue before the repair.
/// - A component whose n_k falls below `min_component_weight` (in points) is re-seeded at the
///   worst-explained point with the data's variances: diagnostic `component_reseeded`.
/// - A component with fewer than d + 1 points' worth of weight (2 for diag / spherical) is noted
///   once per fit: `rank_deficient` (its covariance is held up by the regularisation).
/// Differences from scikit-learn: `converged` belongs to the returned run (scikit-learn reports
/// whether any run converged); the diag / spherical statistics are taken on centred data (more
/// accurate far from the origin; identical otherwise).
///
/// ## Cost (per EM iteration; p = d(d+3)/2 for full, 2d diag, d+1 spherical, d tied)
///
/// E-step: one GEMM of 2 N K p flops (+ 2 N d^2 for tied); M-step: one GEMM of 2 N K p flops;
/// N K exp. Parameters: O(K d^3) (Cholesky, inverse). Memory: a centred copy of X, per thread a
/// 128 x p feature block, (N / 2048) K p doubles of partial statistics. Synchronous.
///
/// ## Errors
///
/// `invalid_argument`: N = 0, d = 0, NaN / Inf in x, k < 1, k > N, n_init < 1, max_iter < 0,
/// negative or non-finite tol / reg_covar / min_component_weight / floor_relative, weights_init
/// outside [0, 1] or not summing to 1, precisions not positive definite, a warm-start model of
/// another shape. `dimension_mismatch`: means_init not k x d, precisions_init or weights_init of
/// the wrong length, outputs of the wrong shape.
///
/// ## Example
///
/// ```cpp
/// namespace ck = cellkit::cluster;
/// auto model = ck::gmm_fit(cellkit::openmp{2}, x, {.k = 8, .covariance_type = ck::gmm_covariance::full, .seed = 1});
/// auto a = ck::gmm_assign(cellkit::openmp{2}, x, model);  // a.labels, a.entropy, a.log_likelihood
/// double bic = ck::gmm_bic(cellkit::openmp{2}, x, model);
/// ```

#include <cellkit/cluster/common.hpp>
#include <cellkit/cluster/detail/gmm_impl.hpp>
#include <cellkit/cluster/detail/gmm_linalg.hpp>
#include <cellkit/cluster/detail/gmm_pruned.hpp>
#include <cellkit/cluster/detail/parallel.hpp>
#include <cellkit/cluster/gmm_model.hpp>
#include <cellkit/cluster/kmeans.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::cluster {

/// Optional per-cell outputs of `gmm_evaluate`; present ones are overwritten.
struct gmm_outputs {
  std::optional<vector_view<double>> log_likelihood = std::nullopt;  ///< N: log sum_k w_k N(x_i | k) (score_samples)
  std::optional<vector_view<index_t>> labels = std::nullopt;         ///< N: argmax_k of the memberships (predict)
  std::optional<matrix_view<double>> memberships = std::nullopt;     ///< N x K responsibilities (predict_proba)
  std::optional<vector_view<double>> entropy = std::nullopt;         ///< N: -sum_k r_ik log r_ik in nats
};

/// Sums over the cells, returned by `gmm_evaluate`.
struct gmm_totals {
  double log_likelihood = 0;  ///< sum_i log p(x_i)
  double entropy = 0;         ///< sum_i of the membership entropies
  index_t n = 0;
};

/// All per-cell results at once (the usual clustering call).
struct gmm_assignment {
  std::vector<index_t> labels;         ///< N hard labels (highest membership)
  std::vector<double> entropy;         ///< N membership entropies (nats; 0 = certain, log K = uniform)
  std::vector<double> log_likelihood;  ///< N per-cell log-likelihoods
  std::vector<double> memberships;     ///< N x K, row-major (only with want_memberships)
};

/// A sample drawn from a model.
struct gmm_samples {
  std::vector<double> x;        ///< n x d, row-major
  std::vector<index_t> labels;  ///< n components
};

namespace detail {

template <class T>
struct gmm_fit_output {
  gmm_model model;
  gmm_state state;                // the returned parameters in the centred coordinates of the data
  bool last_pass_pruned = false;  // its last E-step ran the pruned pass (so scoring it should too)
};

template <class T>
void validate_gmm_params(const gmm_data<T>& data, const gmm_params<T>& params, const char* fn) {
  const index_t n = data.n;
  const index_t d = data.d;
  const index_t k = params.k;
  CELLKIT_EXPECTS(k >= 1, fn, "params.k", "must be >= 1, got " + std::to_string(k));
  CELLKIT_EXPECTS(k <= n, fn, "params.k",
                  "k = " + std::to_string(k) + " exceeds the number of samples N = " + std::to_string(n));
  CELLKIT_EXPECTS(params.n_init >= 1, fn, "params.n_init", "must be >= 1, got " + std::to_string(params.n_init));
  CELLKIT_EXPECTS(params.max_iter >= 0, fn, "params.max_iter", "must be >= 0, got " + std::to_string(params.max_iter));
  CELLKIT_EXPECTS(std::isfinite(params.tol) && params.tol >= 0, fn, "params.tol",
                  "must be finite and >= 0, got " + value_text(params.tol));
  CELLKIT_EXPECTS(std::isfinite(params.reg_covar) && params.reg_covar >= 0, fn, "params.reg_covar",
                  "must be finite and >= 0, got " + value_text(params.reg_covar));
  CELLKIT_EXPECTS(std::isfinite(params.min_component_weight) && params.min_component_weight >= 0, fn,
                  "params.min_component_weight",
                  "must be finite and >= 0, got " + value_text(params.min_component_weight));
  CELLKIT_EXPECTS(std::isfinite(params.floor_relative) && params.floor_relative >= 0, fn, "params.floor_relative",
                  "must be finite and >= 0, got " + value_text(params.floor_relative));
  if (params.weights_init) {
    const auto w = *params.weights_init;
    expect_shapes(w.size() == k, fn, "params.weights_init", w.shape(), "k", {k, 1}, "one weight per component");
    double total = 0;
    for (index_t j = 0; j < k; ++j) {
      CELLKIT_EXPECTS(std::isfinite(w[j]) && w[j] >= 0 && w[j] <= 1, fn, "params.weights_init",
                      "weights_init[" + std::to_string(j) + "] = " + value_text(w[j]) + " is not in [0, 1]");
      total += w[j];
    }
    CELLKIT_EXPECTS(std::fabs(total - 1.0) <= 1e-8, fn, "params.weights_init",
                    "must sum to 1, sums to " + value_text(total));
  }
  if (params.means_init) {
    const auto m = *params.means_init;
    expect_shapes(m.rows() == k && m.cols() == d, fn, "params.means_init", m.shape(), "k x d", {k, d},
                  "one mean of x's dimension per component");
    expect_all_finite(m, fn, "params.means_init");
  }
  if (params.precisions_init) {
    const auto pr = *params.precisions_init;
    const index_t want = gmm_covariance_size(params.covariance_type, k, d);
    expect_shapes(pr.size() == want, fn, "params.precisions_init", pr.shape(), "covariance_type's shape", {want, 1},
                  "full: k*d*d, tied: d*d, diag: k*d, spherical: k values");
    for (index_t e = 0; e < want; ++e)
      CELLKIT_EXPECTS(std::isfinite(pr[e]), fn, "params.precisions_init",
                      "has a non-finite value at " + std::to_string(e));
  }
  if (params.warm_start) {
    const gmm_model& m = *params.warm_start;
    CELLKIT_EXPECTS(m.k == k && m.d == d && m.covariance_type == params.covariance_type, fn, "params.warm_start",
                    "model has k = " + std::to_string(m.k) + ", d = " + std::to_string(m.d) + ", covariance_type " +
                        to_string(m.covariance_type) + "; the fit asks for k = " + std::to_string(k) +
                        ", d = " + std::to_string(d) + ", " + to_string(params.covariance_type));
    expect_valid_model(m, d, fn, "params.warm_start");
  }
}

/// Parameters from the given precisions (scikit-learn: lower Cholesky factor of each precision).
template <class T>
void apply_precisions_init(const gmm_params<T>& params, gmm_state& s, const char* fn) {
  const auto pr = *params.precisions_init;
  const index_t d = s.d;
  s.prec_chol.assign(static_cast<std::size_t>(pr.size()), 0.0);
  s.covariances.assign(static_cast<std::size_t>(pr.size()), 0.0);
  if (s.type == gmm_covariance::full || s.type == gmm_covariance::tied) {
    const index_t mats = s.type == gmm_covariance::full ? s.k : 1;
    std::vector<double> inv(static_cast<std::size_t>(d * d));
    for (index_t j = 0; j < mats; ++j) {
      double* l = s.prec_chol.data() + j * d * d;
      for (index_t e = 0; e < d * d; ++e) l[e] = pr[j * d * d + e];
      for (index_t a = 0; a < d; ++a)
        for (index_t b = 0; b < a; ++b)
          CELLKIT_EXPECTS(std::fabs(l[a * d + b] - l[b * d + a]) <=
                              1e-8 * (std::fabs(l[a * d + b]) + std::fabs(l[b * d + a])) + 1e-300,
                          fn, "params.precisions_init", "precision " + std::to_string(j) + " is not symmetric");
      CELLKIT_EXPECTS(cholesky_lower(l, d), fn, "params.precisions_init",
                      "precision " + std::to_string(j) + " is not positive definite");
      // covariance = P^-1 = L^-T L^-1
      invert_lower(l, d, inv.data());
      double* cov = s.covariances.data() + j * d * d;
      for (index_t a = 0; a < d; ++a)
        for (index_t b = 0; b < d; ++b) {
          double v = 0;
          for (index_t t = std::max(a, b); t < d; ++t)
            v += inv[static_cast<std::size_t>(t * d + a)] * inv[static_cast<std::size_t>(t * d + b)];
          cov[a * d + b] = v;
        }
    }
  } else {
    for (index_t e = 0; e < pr.size(); ++e) {
      CELLKIT_EXPECTS(pr[e] > 0, fn, "params.precisions_init", "precision " + std::to_string(e) + " is not positive");
      s.prec_chol[static_cast<std::size_t>(e)] = std::sqrt(pr[e]);
      s.covariances[static_cast<std::size_t>(e)] = 1.0 / pr[e];
    }
  }
  derive_precisions(s);
}

/// The initial labels (one-hot responsibilities; -1 = a zero row) of the label-based inits.
template <class T>
std::vector<index_t> initial_labels(int threads, const gmm_data<T>& data, const gmm_params<T>& params, int restart) {
  const index_t n = data.n;
  const index_t k = params.k;
  std::vector<index_t> labels(static_cast<std::size_t>(n), -1);
  const std::uint64_t seed = params.seed + 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(restart);
  switch (params.init) {
    case gmm_init::kmeans: {
      labels = kmeans_host<T>(threads, data.x, kmeans_params<T>{.k = k, .n_init = 1, .seed = seed}).labels;
      break;
    }
    case gmm_init::k_means_plus_plus: {
      kmeans_data<T> kd;
      kd.x = data.x;
      kd.n = n;
      kd.d = data.d;
      kd.threads = data.threads;
      std::vector<T> centres(static_cast<std::size_t>(k * data.d));
      kmeans_plus_plus(kd, k, params.seed, kmeans_plus_plus_stream, restart, matrix_view<T>(centres.data(), k, data.d));
      std::vector<char> used(static_cast<std::size_t>(n), 0);
      for (index_t j = 0; j < k; ++j) {
        const T* c = centres.data() + j * data.d;
        for (index_t i = 0; i < n; ++i) {
          if (used[static_cast<std::size_t>(i)]) continue;
          if (std::equal(c, c + data.d, data.x.row_data(i))) {
            used[static_cast<std::size_t>(i)] = 1;
            labels[static_cast<std::size_t>(i)] = j;
            break;
          }
        }
      }
      break;
    }
    case gmm_init::random_points: {
      std::vector<double> key(static_cast<std::size_t>(n));
      for (index_t i = 0; i < n; ++i) {
        philox_engine eng(
            params.seed, gmm_random_points_stream,
            static_cast<std::uint64_t>(restart) * static_cast<std::uint64_t>(n) + static_cast<std::uint64_t>(i));
        key[static_cast<std::size_t>(i)] = uniform<double>(eng);
      }
      std::vector<index_t> order(static_cast<std::size_t>(n));
      std::iota(order.begin(), order.end(), index_t(0));
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](index_t a, index_t b) {
        return key[static_cast<std::size_t>(a)] > key[static_cast<std::size_t>(b)] ||
               (key[static_cast<std::size_t>(a)] == key[static_cast<std::size_t>(b)] && a < b);
      });
      for (index_t j = 0; j < k; ++j) labels[static_cast<std::size_t>(order[static_cast<std::size_t>(j)])] = j;
      break;
    }
    case gmm_init::random_responsibilities:
      break;
  }
  return labels;
}

template <class T>
gmm_fit_output<T> gmm_fit_prepared(gmm_data<T>& data, const gmm_params<T>& params, const char* fn) {
  validate_gmm_params(data, params, fn);
  const index_t n = data.n;
  const index_t d = data.d;
  const index_t k = params.k;
  const auto type = params.covariance_type;
  if (type == gmm_covariance::tied) ensure_gram(data);

  gmm_mstep_settings settings;
  settings.reg.resize(static_cast<std::size_t>(d));
  const double scale = data.mean_variance > 0 ? data.mean_variance : 1.0;
  double smallest_reg = std::numeric_limits<double>::infinity();
  for (index_t a = 0; a < d; ++a) {
    const double var = data.variance[static_cast<std::size_t>(a)];
    const double r = params.regularization == gmm_regularization::absolute ? params.reg_covar
                                                                           : params.reg_covar * (var > 0 ? var : scale);
    settings.reg[static_cast<std::size_t>(a)] = r;
    smallest_reg = std::min(smallest_reg, r);
  }
  settings.floor = std::max({params.floor_relative * scale, smallest_reg, 1e-300});
  settings.min_component_weight = params.min_component_weight;

  gmm_fit_output<T> best;
  double best_lb = -std::numeric_limits<double>::infinity();
  bool have_best = false;
  bool stop_all = false;
  std::vector<gmm_diagnostic> diagnostics;
  const int restarts = params.warm_start ? 1 : params.n_init;
  const bool need_resp = !(params.weights_init && params.means_init && params.precisions_init);
  for (int restart = 0; restart < restarts && !stop_all; ++restart) {
    settings.restart = restart;
    std::vector<char> rank_reported(static_cast<std::size_t>(k), 0);
    gmm_state s;
    s.type = type;
    s.k = k;
    s.d = d;
    double lb = -std::numeric_limits<double>::infinity();
    if (params.warm_start) {
      s = state_from_model(*params.warm_start, data.centre);
      lb = params.warm_start->lower_bound;
    } else {
      if (need_resp) {
        gmm_pass_result init;
        if (params.init == gmm_init::random_responsibilities) {
          init = gmm_pass(
              data, type, k, static_cast<const gmm_coefficients<T>*>(nullptr), true,
              [&](index_t first, index_t count, matrix_view<T> resp) {
                for (index_t r = 0; r < count; ++r) {
                  const index_t i = first + r;
                  philox_engine eng(params.seed, gmm_random_resp_stream,
                                    static_cast<std::uint64_t>(restart) * static_cast<std::uint64_t>(n) +
                                        static_cast<std::uint64_t>(i));
                  double total = 0;
                  std::vector<double> u(static_cast<std::size_t>(k));
                  for (auto& v : u) total += (v = uniform<double>(eng));
                  for (index_t j = 0; j < k; ++j) resp(r, j) = static_cast<T>(u[static_cast<std::size_t>(j)] / total);
                }
              },
              [](index_t, index_t, const double*, const double*, const T*) {});
        } else {
          const auto labels = initial_labels(data.threads, data, params, restart);
          init = gmm_pass(
              data, type, k, static_cast<const gmm_coefficients<T>*>(nullptr), true,
              [&](index_t first, index_t count, matrix_view<T> resp) {
                for (index_t r = 0; r < count; ++r) {
                  T* row = resp.row_data(r);
                  std::fill(row, row + k, T(0));
                  const index_t label = labels[static_cast<std::size_t>(first + r)];
                  if (label >= 0) row[label] = T(1);
                }
              },
              [](index_t, index_t, const double*, const double*, const T*) {});
        }
        gmm_mstep(data, init, settings, 0, rank_reported, s, diagnostics);
        // scikit-learn's _initialize divides n_k by N (the M-step divides by sum n_k).
        double total = 0;
        for (double v : init.nk) total += v + 10.0 * std::numeric_limits<double>::epsilon();
        for (index_t j = 0; j < k; ++j) s.weights[static_cast<std::size_t>(j)] *= total / static_cast<double>(n);
      }
      if (params.weights_init) {
        s.weights.resize(static_cast<std::size_t>(k));
        for (index_t j = 0; j < k; ++j) s.weights[static_cast<std::size_t>(j)] = (*params.weights_init)[j];
      }
      if (params.means_init) {
        s.means.resize(static_cast<std::size_t>(k * d));
        for (index_t j = 0; j < k; ++j)
          for (index_t a = 0; a < d; ++a)
            s.means[static_cast<std::size_t>(j * d + a)] =
                (*params.means_init)(j, a) - data.centre[static_cast<std::size_t>(a)];
      }
      if (params.precisions_init) apply_precisions_init(params, s, fn);
    }

    stop_reason reason = stop_reason::max_iterations;
    int iteration = 0;
    // After a pruned pass declines (too many pairs pass the bound) the dense pass runs for `backoff`
    // iterations, doubling after every further decline: on data where pruning cannot pay, the
    // declined attempts cost a few per cent.
    int dense_until = 0;
    int backoff = 4;
    bool last_pruned = false;
    for (iteration = 1; iteration <= params.max_iter; ++iteration) {
      const double previous = lb;
      gmm_pass_result pass;
      std::optional<gmm_pass_result> pruned;
      if (type == gmm_covariance::full && params.prune && k >= gmm_prune_min_k && iteration >= dense_until) {
        pruned = gmm_pruned_pass(data, s, true, [](index_t, index_t, const double*, const double*, const T*) {});
        if (!pruned) {
          dense_until = iteration + 1 + backoff;
          backoff *= 2;
        }
      }
      last_pruned = pruned.has_value();
      if (pruned) {
        pass = std::move(*pruned);
      } else {
        const auto coef = make_coefficients<T>(s);
        pass = gmm_pass(data, type, k, &coef, true, nullptr,
                        [](index_t, index_t, const double*, const double*, const T*) {});
      }
      lb = pass.log_likelihood / static_cast<double>(n);
      if (!std::isfinite(lb)) {
        reason = stop_reason::numerical_error;
        break;
      }
      gmm_mstep(data, pass, settings, iteration, rank_reported, s, diagnostics);
      const double change = lb - previous;
      if (std::fabs(change) < params.tol) {
        reason = stop_reason::converged;
        if (params.progress) params.progress(gmm_progress{k, type, restart, iteration, lb, change});
        break;
      }
      if (params.progress && !params.progress(gmm_progress{k, type, restart, iteration, lb, change})) {
        reason = stop_reason::stopped_by_callback;
        stop_all = true;
        break;
      }
    }
    if (iteration > params.max_iter) iteration = params.max_iter;
    if (!have_best || lb > best_lb || best_lb == -std::numeric_limits<double>::infinity()) {
      have_best = true;
      best_lb = lb;
      best.state = s;
      best.model.converged = reason == stop_reason::converged;
      best.model.reason = reason;
      best.model.n_iter = iteration;
      best.model.best_restart = restart;
      best.last_pass_pruned = last_pruned;
    }
  }
  state_to_model(best.state, data.centre, best.model);
  best.model.lower_bound = best_lb;
  best.model.diagnostics = std::move(diagnostics);
  return best;
}

/// Per-cell outputs from the E-step on prepared data with a state in its coordinates.
template <class T>
gmm_totals evaluate_prepared(const gmm_data<T>& data, const gmm_state& s, const gmm_outputs& out, bool want_entropy_sum,
                             bool prune = false) {
  const index_t k = s.k;
  const bool need_entropy = want_entropy_sum || out.entropy.has_value();
  std::vector<double> entropy_partial(static_cast<std::size_t>(data.n), 0.0);
  const auto on_block = [&](index_t first, index_t count, const double* wlp, const double* log_norm, const T*) {
    for (index_t r = 0; r < count; ++r) {
      const index_t i = first + r;
      const double* w = wlp + r * k;
      const double ln = log_norm[r];
      if (out.log_likelihood) (*out.log_likelihood)[i] = ln;
      if (out.labels) {
        index_t best = 0;
        for (index_t j = 1; j < k; ++j)
          if (w[j] > w[best]) best = j;
        (*out.labels)[i] = best;
      }
      if (out.memberships)
        for (index_t j = 0; j < k; ++j) (*out.memberships)(i, j) = exp_flush(w[j] - ln);
      if (need_entropy) {
        double h = 0;
        for (index_t j = 0; j < k; ++j) {
          const double lr = w[j] - ln;
          const double rj = exp_flush(lr);
          if (rj > 0) h -= rj * lr;
        }
        if (out.entropy) (*out.entropy)[i] = h;
        entropy_partial[static_cast<std::size_t>(i)] = h;
      }
    }
  };
  std::optional<gmm_pass_result> pruned;
  if (prune && s.type == gmm_covariance::full && k >= gmm_prune_min_k)
    pruned = gmm_pruned_pass(data, s, false, on_block);
  gmm_pass_result pass;
  if (pruned) {
    pass = std::move(*pruned);
  } else {
    const auto coef = make_coefficients<T>(s);
    pass = gmm_pass(data, s.type, k, &coef, false, nullptr, on_block);
  }
  gmm_totals totals;
  totals.n = data.n;
  totals.log_likelihood = pass.log_likelihood;
  // Summed in index order (not per chunk) so that the total does not depend on the chunking either.
  for (double h : entropy_partial) totals.entropy += h;
  return totals;
}

template <class T>
double criterion_from(gmm_criterion criterion, const gmm_model& model, const gmm_totals& t) {
  const double n = static_cast<double>(t.n);
  const double bic = -2.0 * t.log_likelihood + model.n_parameters() * std::log(n);
  switch (criterion) {
    case gmm_criterion::bic:
      return bic;
    case gmm_criterion::aic:
      return -2.0 * t.log_likelihood + 2.0 * model.n_parameters();
    case gmm_criterion::icl:
      return bic + 2.0 * t.entropy;
  }
  return bic;
}

}  // namespace detail

/// Fits a Gaussian mixture to the rows of x (N x d, float or double; any row stride) by EM (see the
/// file comment for the exact semantics, cost and errors). Host only; synchronous; identical results
/// for every host policy and thread count.
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy> gmm_model gmm_fit(const Policy& policy, matrix_view<TX, SX> x,
                                                         const gmm_params<std::remove_const_t<TX>>& params) {
  using T = std::remove_const_t<TX>;
  static_assert(detail::is_real_v<T>, "gmm_fit: x must hold float or double");
  detail::check_host_policy_and_spaces<Policy, SX>();
  auto data = detail::gmm_prepare<T>(detail::host_threads(policy), matrix_view<const T>(x), "gmm_fit");
  return detail::gmm_fit_prepared(data, params, "gmm_fit").model;
}

/// Per-cell log-likelihoods, labels, memberships and entropies of x under `model` (only the present
/// outputs are computed). Returns the sums of the log-likelihoods and entropies. Cost: one E-step
/// (2 N K p flops). Throws on NaN / Inf in x, a model of another d, outputs of the wrong shape.
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy> gmm_totals gmm_evaluate(const Policy& policy, matrix_view<TX, SX> x,
                                                               const gmm_model& model, const gmm_outputs& outputs) {
  using T = std::remove_const_t<TX>;
  static_assert(detail::is_real_v<T>, "gmm_evaluate: x must hold float or double");
  detail::check_host_policy_and_spaces<Policy, SX>();
  constexpr const char* fn = "gmm_evaluate";
  detail::expect_valid_model(model, x.cols(), fn, "model");
  const index_t n = x.rows();
  if (outputs.log_likelihood)
    expect_shapes(outputs.log_likelihood->size() == n, fn, "outputs.log_likelihood", outputs.log_likelihood->shape(),
                  "x", x.shape(), "one value per row of x");
  if (outputs.labels)
    expect_shapes(outputs.labels->size() == n, fn, "outputs.labels", outputs.labels->shape(), "x", x.shape(),
                  "one label per row of x");
  if (outputs.entropy)
    expect_shapes(outputs.entropy->size() == n, fn, "outputs.entropy", outputs.entropy->shape(), "x", x.shape(),
                  "one value per row of x");
  if (outputs.memberships)
    expect_shapes(outputs.memberships->rows() == n && outputs.memberships->cols() == model.k, fn, "outputs.memberships",
                  outputs.memberships->shape(), "x rows x model.k", {n, model.k}, "N x K memberships");
  auto data = detail::gmm_prepare<T>(detail::host_threads(policy), matrix_view<const T>(x), fn);
  const auto state = detail::state_from_model(model, data.centre);
  return detail::evaluate_prepared(data, state, outputs, true);
}

/// Labels, entropies and log-likelihoods (and with `want_memberships` the N x K memberships) of x.
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy> gmm_assignment gmm_assign(const Policy& policy, matrix_view<TX, SX> x,
                                                                 const gmm_model& model,
                                                                 bool want_memberships = false) {
  const index_t n = x.rows();
  gmm_assignment a;
  a.labels.resize(static_cast<std::size_t>(n));
  a.entropy.resize(static_cast<std::size_t>(n));
  a.log_likelihood.resize(static_cast<std::size_t>(n));
  gmm_outputs out{.log_likelihood = vector_view<double>(a.log_likelihood.data(), n),
                  .labels = vector_view<index_t>(a.labels.data(), n),
                  .entropy = vector_view<double>(a.entropy.data(), n)};
  if (want_memberships) {
    a.memberships.resize(static_cast<std::size_t>(n * model.k));
    out.memberships = matrix_view<double>(a.memberships.data(), n, model.k);
  }
  gmm_evaluate(policy, x, model, out);
  return a;
}

/// scikit-learn's score_samples: log p(x_i) per row into `log_likelihood` (N).
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy>
void gmm_score_samples(const Policy& policy, matrix_view<TX, SX> x, const gmm_model& model,
                       vector_view<double> log_likelihood) {
  gmm_evaluate(policy, x, model, gmm_outputs{.log_likelihood = log_likelihood});
}

/// scikit-learn's predict: the component of highest membership per row (lowest index on ties).
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy>
void gmm_predict(const Policy& policy, matrix_view<TX, SX> x, const gmm_model& model, vector_view<index_t> labels) {
  gmm_evaluate(policy, x, model, gmm_outputs{.labels = labels});
}

/// scikit-learn's predict_proba: the N x K responsibilities.
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy>
void gmm_predict_proba(const Policy& policy, matrix_view<TX, SX> x, const gmm_model& model,
                       matrix_view<double> memberships) {
  gmm_evaluate(policy, x, model, gmm_outputs{.memberships = memberships});
}

/// Per-cell entropy of the memberships, -sum_k r_ik log r_ik (nats).
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy>
void gmm_entropy(const Policy& policy, matrix_view<TX, SX> x, const gmm_model& model, vector_view<double> entropy) {
  gmm_evaluate(policy, x, model, gmm_outputs{.entropy = entropy});
}

/// BIC = -2 sum_i log p(x_i) + n_parameters log N (scikit-learn's bic; lower is better).
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy>
double gmm_bic(const Policy& policy, matrix_view<TX, SX> x, const gmm_model& model) {
  return detail::criterion_from<double>(gmm_criterion::bic, model, gmm_evaluate(policy, x, model, gmm_outputs{}));
}

/// AIC = -2 sum_i log p(x_i) + 2 n_parameters (scikit-learn's aic).
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy>
double gmm_aic(const Policy& policy, matrix_view<TX, SX> x, const gmm_model& model) {
  return detail::criterion_from<double>(gmm_criterion::aic, model, gmm_evaluate(policy, x, model, gmm_outputs{}));
}

/// ICL = BIC + 2 sum_i H_i with H_i the membership entropy of cell i (Biernacki et al. 2000, in
/// the entropy form of McLachlan & Peel; mclust's icl() uses the hard MAP labels instead).
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy>
double gmm_icl(const Policy& policy, matrix_view<TX, SX> x, const gmm_model& model) {
  return detail::criterion_from<double>(gmm_criterion::icl, model, gmm_evaluate(policy, x, model, gmm_outputs{}));
}

/// n samples from the model: sample i draws from philox_engine(seed, gmm_sample_stream, i) one
/// uniform<double> (the component, by the cumulative weights) and d normal<double> values z; x_i
/// = m_k + L_k z with C_k = L_k L_k^T (sqrt(variance) z for diag / spherical). Independent of
/// any thread count. Throws `invalid_argument` for n < 0 or an invalid model.
inline gmm_samples gmm_sample(const gmm_model& model, index_t n, std::uint64_t seed) {
  constexpr const char* fn = "gmm_sample";
  CELLKIT_EXPECTS(n >= 0, fn, "n", "must be >= 0, got " + std::to_string(n));
  detail::expect_valid_model(model, model.d, fn, "model");
  const index_t d = model.d;
  const index_t k = model.k;
  std::vector<double> factors;
  if (model.covariance_type == gmm_covariance::full || model.covariance_type == gmm_covariance::tied) {
    factors = model.covariances;
    const index_t mats = model.covariance_type == gmm_covariance::full ? k : 1;
    for (index_t j = 0; j < mats; ++j) {
      double* l = factors.data() + j * d * d;
      if (!detail::cholesky_lower(l, d)) {
        std::copy(model.covariances.begin() + j * d * d, model.covariances.begin() + (j + 1) * d * d, l);
        detail::floor_eigenvalues(l, d, 1e-300);
        CELLKIT_EXPECTS(detail::cholesky_lower(l, d), fn, "model",
                        "covariance " + std::to_string(j) + " is not positive definite");
      }
    }
  }
  std::vector<double> cumulative(static_cast<std::size_t>(k));
  double total = 0;
  for (index_t j = 0; j < k; ++j)
    cumulative[static_cast<std::size_t>(j)] = (total += model.weights[static_cast<std::size_t>(j)]);
  gmm_samples out;
  out.x.resize(static_cast<std::size_t>(n * d));
  out.labels.resize(static_cast<std::size_t>(n));
  std::vector<double> z(static_cast<std::size_t>(d));
  for (index_t i = 0; i < n; ++i) {
    philox_engine eng(seed, gmm_sample_stream, static_cast<std::uint64_t>(i));
    const double u = uniform<double>(eng) * total;
    index_t j = 0;
    while (j + 1 < k && cumulative[static_cast<std::size_t>(j)] < u) ++j;
    out.labels[static_cast<std::size_t>(i)] = j;
    for (auto& v : z) v = normal<double>(eng);
    double* xi = out.x.data() + i * d;
    const double* m = model.means.data() + j * d;
    for (index_t a = 0; a < d; ++a) {
      double v = m[a];
      switch (model.covariance_type) {
        case gmm_covariance::full:
        case gmm_covariance::tied: {
          const double* l = factors.data() + (model.covariance_type == gmm_covariance::full ? j * d * d : 0);
          for (index_t b = 0; b <= a; ++b) v += l[a * d + b] * z[static_cast<std::size_t>(b)];
          break;
        }
        case gmm_covariance::diag:
          v += std::sqrt(model.covariances[static_cast<std::size_t>(j * d + a)]) * z[static_cast<std::size_t>(a)];
          break;
        case gmm_covariance::spherical:
          v += std::sqrt(model.covariances[static_cast<std::size_t>(j)]) * z[static_cast<std::size_t>(a)];
          break;
      }
      xi[a] = v;
    }
  }
  return out;
}

}  // namespace cellkit::cluster
