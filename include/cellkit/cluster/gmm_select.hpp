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
/// for the criteria. With one thread, or with a per-iteration callback (`fit.progress`), fits run
/// one after another, each on all threads of the policy. Otherwise whole fits run concurrently, one
/// per thread, largest K first (a fit gives the same bits on any number of threads, so the results
/// do not change); `progress` then sees the fits in the order they finish, always on the calling
/// thread, and `configure` is called for every fit, in sweep order, before the first one starts.
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

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
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
  /// Called after every fit (in the order fits finish; on the calling thread); return false to stop
  /// the sweep: no fit starts after that, and the table holds the fits reported so far.
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

  // The fits in sweep order, each with its parameters (configure runs here, on the calling thread).
  struct planned_fit {
    gmm_covariance type;
    index_t k;
    gmm_params<T> params;
  };
  std::vector<planned_fit> plan;
  for (const auto type : params.covariance_types) {
    for (index_t k = params.k_min; k <= params.k_max; ++k) {
      gmm_params<T> fit_params = params.fit;
      fit_params.k = k;
      fit_params.covariance_type = type;
      if (params.configure) params.configure(k, type, fit_params);
      plan.push_back({type, k, std::move(fit_params)});
    }
  }
  const std::size_t total = plan.size();

  struct fit_outcome {
    gmm_select_row row;
    gmm_model model;
  };
  auto run_fit = [&](detail::gmm_data<T>& on, const planned_fit& f) {
    const auto start = std::chrono::steady_clock::now();
    auto fitted = detail::gmm_fit_prepared(on, f.params, fn);
    const auto totals = detail::evaluate_prepared(on, fitted.state, gmm_outputs{}, true, fitted.last_pass_pruned);
    fit_outcome out;
    gmm_select_row& row = out.row;
    row.k = f.k;
    row.covariance_type = f.type;
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
    out.model = std::move(fitted.model);
    return out;
  };

  gmm_selection<T> result;
  // Appends the fits in sweep order and picks the best (ties keep the earlier row).
  auto assemble = [&](std::vector<std::optional<fit_outcome>>& outcomes) {
    double best_value = std::numeric_limits<double>::infinity();
    bool have_best = false;
    for (auto& o : outcomes) {
      if (!o) continue;
      const gmm_select_row& row = o->row;
      const double value = params.criterion == gmm_criterion::bic   ? row.bic
                           : params.criterion == gmm_criterion::aic ? row.aic
                                                                    : row.icl;
      result.table.push_back(row);
      if (!have_best || value < best_value) {
        have_best = true;
        best_value = value;
        result.best_row = result.table.size() - 1;
        result.best = o->model;
      }
      if (params.keep_models) result.models.push_back(std::move(o->model));
    }
  };
  std::vector<std::optional<fit_outcome>> outcomes(total);

  // Whole fits run concurrently, one per thread, when there are several threads and several fits and
  // no per-iteration callback (params.fit.progress) must run on the calling thread. A fit gives
  // the same bits on one thread as on all of them, and on a few thousand cells whole fits share the
  // cores far better than the passes of one fit do (no barrier per pass, no idle thread at the end
  // of each pass). Largest K first, so that the last fit to start is a small one.
#if CELLKIT_HAS_OPENMP
  const int workers = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(data.threads), total));
  if (workers > 1 && !params.fit.progress) {
    for (const auto& f : plan)
      if (f.type == gmm_covariance::tied) detail::ensure_gram(data);  // shared, computed once, before the workers
    auto single = data.shared_view(1);                                // one thread per fit
    std::vector<std::size_t> order(total);
    for (std::size_t i = 0; i < total; ++i) order[i] = i;
    auto cost = [&](std::size_t i) {
      const double per =
          plan[i].type == gmm_covariance::full ? static_cast<double>(data.d * data.d) : static_cast<double>(data.d);
      return per * static_cast<double>(plan[i].k);
    };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cost(a) > cost(b); });
    std::vector<std::exception_ptr> failures(total);
    std::vector<char> shown(total, 0);    // reported to params.progress (the fits the table keeps)
    std::vector<std::size_t> unreported;  // finished, not yet reported (guarded by finished_mutex)
    std::mutex finished_mutex;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stop{false};
    bool progress_stopped = false;
    std::exception_ptr progress_failure;  // what params.progress threw (it must not leave the region)
    std::size_t reported = 0;
    // params.progress runs on the calling thread (OpenMP's thread 0), in the order the fits finish;
    // once it returns false (or throws) no further fit starts, and fits finishing later are dropped.
    auto report = [&] {
      std::vector<std::size_t> ready;
      {
        std::lock_guard<std::mutex> lock(finished_mutex);
        ready.swap(unreported);
      }
      for (std::size_t i : ready) {
        if (progress_stopped || !outcomes[i]) continue;
        shown[i] = 1;
        ++reported;
        if (!params.progress) continue;
        bool go_on = false;
        try {
          go_on = params.progress(gmm_select_progress{reported, total, &outcomes[i]->row});
        } catch (...) {
          progress_failure = std::current_exception();
        }
        if (!go_on) {
          progress_stopped = true;
          stop.store(true);
        }
      }
    };
#pragma omp parallel num_threads(workers)
    {
      const bool caller = omp_get_thread_num() == 0;
      for (;;) {
        const std::size_t slot = next.fetch_add(1);
        if (slot >= total || stop.load()) break;
        const std::size_t i = order[slot];
        try {
          outcomes[i] = run_fit(single, plan[i]);
        } catch (...) {
          failures[i] = std::current_exception();
          stop.store(true);
        }
        {
          std::lock_guard<std::mutex> lock(finished_mutex);
          unreported.push_back(i);
        }
        if (caller) report();
      }
    }
    for (auto& f : failures)
      if (f) std::rethrow_exception(f);  // the first failing fit in sweep order
    report();
    if (progress_failure) std::rethrow_exception(progress_failure);
    for (std::size_t i = 0; i < total; ++i)
      if (!shown[i]) outcomes[i].reset();
    assemble(outcomes);
    return result;
  }
#endif
  for (std::size_t i = 0; i < total; ++i) {
    outcomes[i] = run_fit(data, plan[i]);
    if (params.progress && !params.progress(gmm_select_progress{i + 1, total, &outcomes[i]->row})) break;
  }
  assemble(outcomes);
  return result;
}

}  // namespace cellkit::cluster
