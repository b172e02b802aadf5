#pragma once
/// @file
/// Model selection for Gaussian mixtures (namespace `cellkit::cluster`): fit every K in
/// [k_min, k_max] for every covariance type listed, score each fit by BIC, AIC and ICL on the
/// training data, return the table and the best model by the chosen criterion. Full description:
/// docs/gmm.md.
///
/// Criteria (lower is better; L = sum_i log p(x_i) under the fitted model, p = n_parameters as
/// scikit-learn's _n_parameters, H_i = -sum_k r_ik log r_ik):
///   bic = -2 L + p log N,   aic = -2 L + 2 p,   icl = bic + 2 sum_i H_i.
/// bic and aic equal scikit-learn's `bic(X)` / `aic(X)`. Ties keep the earlier row (smaller K,
/// then the earlier covariance type in the list).
///
/// Shared work: the data are validated, centred and their variances (and X^T X for tied) computed
/// once for the whole sweep; each fit then costs what `gmm_fit` costs after that, plus one E-step
/// for the criteria. Fits run one after another, each on all threads of the policy.
///
/// Errors: as `gmm_fit` (naming `params.fit.*`), plus `invalid_argument` for k_min < 1, k_max <
/// k_min, k_max > N, an empty covariance_types list.
///
/// ```cpp
/// namespace ck = cellkit::cluster;
/// auto sweep = ck::gmm_select(cellkit::openmp{2}, x,
///     {.k_min = 2, .k_max = 20, .covariance_types = {ck::gmm_covariance::full},
///      .criterion = ck::gmm_criterion::bic, .fit = {.n_init = 1, .seed = 7},
///      .progress = [](const ck::gmm_select_progress& p) { std::printf("%zu/%zu\n", p.done, p.total); return true; }});
/// const ck::gmm_model& best = sweep.best;   // sweep.table[i].k, .bic, .aic, .icl, .converged, ...
/// ```

#include <cellkit/cluster/detail/gmm_impl.hpp>
#include <cellkit/cluster/detail/parallel.hpp>
#include <cellkit/cluster/gmm.hpp>
#include <cellkit/cluster/gmm_model.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::cluster {

/// One fit of a sweep.
struct gmm_select_row {
  index_t k = 0;
  gmm_covariance covariance_type = gmm_covariance::full;
  double bic = 0;
  double aic = 0;
  double icl = 0;
  double log_likelihood = 0;  ///< sum_i log p(x_i) under the returned parameters
  double lower_bound = 0;     ///< the fit's lower bound (mean log-likelihood of its last E-step)
  double n_parameters = 0;
  bool converged = false;
  int n_iter = 0;
  double seconds = 0;           ///< wall time of the fit and its scoring
  std::size_t diagnostics = 0;  ///< entries in the fit's diagnostics list
};

/// What the sweep's progress callback sees after each fit.
struct gmm_select_progress {
  std::size_t done = 0;                 ///< fits finished
  std::size_t total = 0;                ///< fits in the sweep
  const gmm_select_row* row = nullptr;  ///< the fit just finished
};

template <class T>
struct gmm_select_params {
  index_t k_min = 1;
  index_t k_max = 10;
  std::vector<gmm_covariance> covariance_types = {gmm_covariance::full};
  gmm_criterion criterion = gmm_criterion::bic;
  gmm_params<T> fit = {};    ///< settings of every fit (k and covariance_type are set per fit)
  bool keep_models = false;  ///< also return every fitted model (gmm_selection::models)
  /// Adjusts the parameters of one fit before it runs (e.g. per-K initial means); optional.
  std::function<void(index_t k, gmm_covariance type, gmm_params<T>& params)> configure = {};
  /// Called after every fit; return false to stop the sweep (the table holds the fits so far).
  std::function<bool(const gmm_select_progress&)> progress = {};
};

template <class T>
struct gmm_selection {
  std::vector<gmm_select_row> table;  ///< in order: covariance types outer, K inner
  std::size_t best_row = 0;           ///< index into table of the best fit
  gmm_model best;                     ///< the best model (by params.criterion)
  std::vector<gmm_model> models;      ///< every model, with keep_models
};

/// The sweep (see the file comment). Host only; synchronous; results identical for every host
/// policy and thread count.
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy> gmm_selection<std::remove_const_t<TX>> gmm_select(
    const Policy& policy, matrix_view<TX, SX> x, const gmm_select_params<std::remove_const_t<TX>>& params) {
  using T = std::remove_const_t<TX>;
  static_assert(detail::is_real_v<T>, "gmm_select: x must hold float or double");
  detail::check_host_policy_and_spaces<Policy, SX>();
  constexpr const char* fn = "gmm_select";
  CELLKIT_EXPECTS(params.k_min >= 1, fn, "params.k_min", "must be >= 1, got " + std::to_string(params.k_min));
  CELLKIT_EXPECTS(params.k_max >= params.k_min, fn, "params.k_max",
                  "k_max = " + std::to_string(params.k_max) + " is below k_min = " + std::to_string(params.k_min));
  CELLKIT_EXPECTS(
      params.k_max <= x.rows(), fn, "params.k_max",
      "k_max = " + std::to_string(params.k_max) + " exceeds the number of samples N = " + std::to_string(x.rows()));
  CELLKIT_EXPECTS(!params.covariance_types.empty(), fn, "params.covariance_types", "is empty");
  auto data = detail::gmm_prepare<T>(detail::host_threads(policy), matrix_view<const T>(x), fn);

  gmm_selection<T> result;
  const std::size_t total = params.covariance_types.size() * static_cast<std::size_t>(params.k_max - params.k_min + 1);
  double best_value = std::numeric_limits<double>::infinity();
  bool have_best = false;
  for (const auto type : params.covariance_types) {
    for (index_t k = params.k_min; k <= params.k_max; ++k) {
      const auto start = std::chrono::steady_clock::now();
      gmm_params<T> fit_params = params.fit;
      fit_params.k = k;
      fit_params.covariance_type = type;
      if (params.configure) params.configure(k, type, fit_params);
      auto fitted = detail::gmm_fit_prepared(data, fit_params, fn);
      const auto totals = detail::evaluate_prepared(data, fitted.state, gmm_outputs{}, true, fitted.last_pass_pruned);
      gmm_select_row row;
      row.k = k;
      row.covariance_type = type;
      row.bic = detail::criterion_from<T>(gmm_criterion::bic, fitted.model, totals);
      row.aic = detail::criterion_from<T>(gmm_criterion::aic, fitted.model, totals);
      row.icl = detail::criterion_from<T>(gmm_criterion::icl, fitted.model, totals);
      row.log_likelihood = totals.log_likelihood;
      row.lower_bound = fitted.model.lower_bound;
      row.n_parameters = fitted.model.n_parameters();
      row.converged = fitted.model.converged;
      row.n_iter = fitted.model.n_iter;
      row.diagnostics = fitted.model.diagnostics.size();
      row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double value = params.criterion == gmm_criterion::bic   ? row.bic
                           : params.criterion == gmm_criterion::aic ? row.aic
                                                                    : row.icl;
      result.table.push_back(row);
      if (!have_best || value < best_value) {
        have_best = true;
        best_value = value;
        result.best_row = result.table.size() - 1;
        result.best = fitted.model;
      }
      if (params.keep_models) result.models.push_back(std::move(fitted.model));
      if (params.progress && !params.progress(gmm_select_progress{result.table.size(), total, &result.table.back()}))
        return result;
    }
  }
  return result;
}

}  // namespace cellkit::cluster
