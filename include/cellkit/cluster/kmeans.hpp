#pragma once
/// @file
/// k-means (Lloyd's algorithm) with k-means++, random or given initialisation, sample weights,
/// restarts and scikit-learn's semantics (namespace `cellkit::cluster`). Full description:
/// docs/cluster.md.
///
/// ## What it computes (scikit-learn 1.2 `KMeans(algorithm="lloyd")`, step for step)
///
/// 1. The data are centred on their column means (the centres are shifted back at the end); this
///    only improves the accuracy of the GEMM distances.
/// 2. Initialisation (`params.init`):
///    - `k_means_plus_plus`: greedy k-means++ with n_local_trials = 2 + floor(log k) candidates per
///      centre, sampled with probability proportional to w_i D(x_i)^2; the candidate with the lowest
///      resulting potential is kept (scikit-learn's `_kmeans_plusplus`; sample weights enter the
///      sampling as in scikit-learn >= 1.3).
///    - `random`: k distinct rows drawn without replacement with probability proportional to w_i.
///    - `given`: `params.initial_centres` (k x d); then a single run whatever n_init says (as
///      scikit-learn, which warns and sets n_init = 1).
///    Random numbers come from the counter-based `philox_engine` (docs/random.md): restart r, centre
///    c of k-means++ draws from `philox_engine(seed, kmeans_plus_plus_stream, r * k + c)` (one
///    uniform<double> for c = 0, n_local_trials for c >= 1); random init gives row i of restart r
///    the key log(u) / w_i with u from `philox_engine(seed, kmeans_random_init_stream, r * N + i)`.
///    Results depend only on (seed, data, params), never on the policy or thread count.
/// 3. Lloyd iterations, i = 1 .. max_iter: E-step labels_i = argmin_j ||c_j||^2 - 2 x_i.c_j (GEMM
///    form; ||x_i||^2 is common to all j; the lowest j wins ties); M-step c_j = weighted mean of its
///    points; an empty cluster (zero total weight) is re-seeded with the point farthest from its
///    current centre (several empty clusters take the farthest points in decreasing distance, the
///    lower index on equal distances; scikit-learn's argpartition leaves that order unspecified);
///    the point is moved in the sums but keeps its label until the next E-step. Stop when the
///    labels did not change (strict convergence) or when sum_j ||c_j^new - c_j^old||^2 <=
///    tol * mean_a var(X[:, a]) (scikit-learn's tol, scaled by the mean column variance, unweighted).
///    Without strict convergence a final E-step makes the labels match the returned centres.
/// 4. inertia = sum_i w_i ||x_i - c_{label_i}||^2 (from coordinate differences, in double). With
///    n_init > 1 the run with the lowest inertia is kept; a later run replaces the best one only if
///    its inertia is strictly lower and its clustering differs (scikit-learn's rule).
///
/// ## Determinism (thread-count independent)
///
/// GEMM results depend on the BLAS thread count, so the E-step does not use the library GEMM: rows
/// are cut into fixed chunks of 2048 (each computed by one thread) and blocks of 64 rows, whose
/// distances come from a dedicated kernel (`detail::nearest_centres_tile`: vectorised across rows,
/// each distance one fixed-order FMA chain); per-chunk partial sums are merged in chunk order.
/// Labels, centres, inertia and iteration counts are bit-identical for serial{} and openmp{n},
/// every n.
///
/// Double x: the distances are computed in float on a copy of x scaled by a power of two, and a
/// row's label is accepted only when its two best float distances are farther apart than a
/// rigorous bound on the float and double rounding errors; the other rows (near ties, a few per
/// 100 000) are re-done in double. The labels are exactly those of the all-double computation.
///
/// M-step: the per-chunk cluster sums are kept from one step to the next (compensated sums) and
/// only rows whose label changed move between them; a chunk where more than half the labels
/// changed is re-summed. Centres agree with freshly summed ones to rounding (tested to 1e-14).
///
/// ## Cost
///
/// Per Lloyd iteration: 2 N k d flops (in float for both types, plus 2 k d per re-checked row) +
/// N k compares + 14 d flops per changed label (7 d per row of a re-summed chunk). k-means++: (2 +
/// log k) k N d flops. Memory: a centred copy of X (N d values of T) and a float tiled copy (N d
/// floats), N labels, 2 k d centres, (N / 1024) k d doubles of partial sums. Synchronous.
///
/// ## Errors
///
/// `invalid_argument`: k < 1, k > N, N = 0, d = 0, non-finite values in X (always checked: a NaN
/// would silently corrupt every label), n_init < 1, max_iter < 1, tol < 0, negative or non-finite
/// sample weights or a zero total weight, random init with fewer than k positive weights,
/// `init == given` without `initial_centres`, non-finite initial centres.
/// `dimension_mismatch`: sample_weight not of length N, initial_centres not k x d.
///
/// ## Example
///
/// ```cpp
/// namespace ck = cellkit::cluster;
/// auto r = ck::kmeans(cellkit::openmp{}, x, {.k = 10, .n_init = 4, .seed = 42});
/// // r.labels (N), r.centres (k x d row-major, r.centres_view()), r.inertia, r.iterations, r.converged
/// ```

#include <cellkit/cluster/common.hpp>
#include <cellkit/cluster/detail/kmeans_impl.hpp>
#include <cellkit/cluster/detail/parallel.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::cluster {

/// Philox stream ids used by `kmeans` (docs/random.md: use other ids for other draws with the same seed).
inline constexpr std::uint32_t kmeans_plus_plus_stream = 0x6b6d2b2bu;    // "km++"
inline constexpr std::uint32_t kmeans_random_init_stream = 0x6b6d726eu;  // "kmrn"

enum class kmeans_init {
  k_means_plus_plus,  ///< greedy k-means++ (default)
  random,             ///< k distinct rows, weighted
  given               ///< params.initial_centres
};

/// What the progress callback sees after every Lloyd iteration.
struct kmeans_progress {
  int restart = 0;             ///< 0-based restart index
  int iteration = 0;           ///< 1-based iteration within the restart
  index_t labels_changed = 0;  ///< labels that changed in this iteration's E-step (N in the first)
  double centre_shift = 0;     ///< sum_j ||c_j^new - c_j^old||^2 of this iteration's M-step
  double inertia = 0;  ///< inertia of this E-step's labels against the old centres (from the cluster sums; approximate)
};

template <class T>
struct kmeans_params {
  index_t k = 8;                                      ///< number of clusters, 1 <= k <= N
  int n_init = 1;                                     ///< restarts (ignored with init == given)
  int max_iter = 300;                                 ///< Lloyd iterations per restart, >= 1
  double tol = 1e-4;                                  ///< relative tolerance on the centre shift (scikit-learn's)
  kmeans_init init = kmeans_init::k_means_plus_plus;  ///< initialisation
  std::uint64_t seed = 0;                             ///< Philox key of the initialisation
  std::optional<vector_view<const T>> sample_weight = std::nullopt;    ///< N weights >= 0 (default: 1)
  std::optional<matrix_view<const T>> initial_centres = std::nullopt;  ///< k x d, for init == given
  /// Called after every iteration; return false to stop (reason stopped_by_callback: the current run
  /// is finished with a final E-step and competes with the earlier restarts; no further restarts).
  std::function<bool(const kmeans_progress&)> progress = {};
};

template <class T>
struct kmeans_result {
  std::vector<T> centres;       ///< k x d, row-major, in the coordinates of X
  std::vector<index_t> labels;  ///< N labels in [0, k)
  double inertia = 0;           ///< sum_i w_i ||x_i - centre_{label_i}||^2
  int iterations = 0;           ///< Lloyd iterations of the returned run (scikit-learn's n_iter_)
  bool converged = false;       ///< the returned run met the stopping rule before max_iter
  stop_reason reason = stop_reason::max_iterations;
  double centre_shift = 0;  ///< the last sum_j ||c_j^new - c_j^old||^2 of the returned run
  double tol_scaled = 0;    ///< tol * mean column variance: the threshold centre_shift was compared with
  int best_restart = 0;     ///< which restart was returned
  index_t k = 0;
  index_t d = 0;

  /// The centres as a k x d view into `centres`.
  matrix_view<const T> centres_view() const { return matrix_view<const T>(centres.data(), k, d); }
};

namespace detail {

template <class T>
kmeans_result<T> kmeans_host(int threads, matrix_view<const T> x, const kmeans_params<T>& params) {
  constexpr const char* fn = "kmeans";
  const index_t n = x.rows();
  const index_t d = x.cols();
  const index_t k = params.k;
  CELLKIT_EXPECTS(n >= 1, fn, "x", "has no rows (k-means needs at least one sample)");
  CELLKIT_EXPECTS(d >= 1, fn, "x", "has no columns (features)");
  CELLKIT_EXPECTS(k >= 1, fn, "params.k", "must be >= 1, got " + std::to_string(k));
  CELLKIT_EXPECTS(k <= n, fn, "params.k",
                  "k = " + std::to_string(k) + " exceeds the number of samples N = " + std::to_string(n));
  CELLKIT_EXPECTS(params.n_init >= 1, fn, "params.n_init", "must be >= 1, got " + std::to_string(params.n_init));
  CELLKIT_EXPECTS(params.max_iter >= 1, fn, "params.max_iter", "must be >= 1, got " + std::to_string(params.max_iter));
  CELLKIT_EXPECTS(std::isfinite(params.tol) && params.tol >= 0.0, fn, "params.tol",
                  "must be finite and >= 0, got " + detail::value_text(params.tol));
  expect_all_finite(x, fn, "x");
  const T* weight = nullptr;
  if (params.sample_weight) {
    const auto w = *params.sample_weight;
    expect_shapes(w.size() == n, fn, "params.sample_weight", w.shape(), "x", x.shape(), "one weight per row of x");
    expect_finite_non_negative(w, fn, "params.sample_weight");
    double total = 0.0;
    index_t positive = 0;
    for (index_t i = 0; i < n; ++i) {
      total += static_cast<double>(w[i]);
      positive += w[i] > T(0) ? 1 : 0;
    }
    CELLKIT_EXPECTS(total > 0.0, fn, "params.sample_weight", "sums to 0; at least one weight must be positive");
    CELLKIT_EXPECTS(params.init != kmeans_init::random || positive >= k, fn, "params.sample_weight",
                    "random initialisation needs k = " + std::to_string(k) + " rows with positive weight, found " +
                        std::to_string(positive));
    weight = w.data();
  }
  if (params.init == kmeans_init::given) {
    CELLKIT_EXPECTS(params.initial_centres.has_value(), fn, "params.initial_centres",
                    "is required when params.init is kmeans_init::given");
    const auto c = *params.initial_centres;
    expect_shapes(c.rows() == k && c.cols() == d, fn, "params.initial_centres", c.shape(), "k x d", {k, d},
                  "one centre of x's dimension per cluster");
    expect_all_finite(c, fn, "params.initial_centres");
  }

  // Centre the data (column means in double, chunked in fixed order).
  kmeans_data<T> data;
  data.n = n;
  data.d = d;
  threads = effective_threads(threads, static_cast<double>(n) * static_cast<double>(d) * static_cast<double>(k));
  data.threads = threads;
  data.weight = weight;
  const index_t chunks = data.chunks();
  std::vector<double> mean(static_cast<std::size_t>(d), 0.0);
  {
    std::vector<double> partial(static_cast<std::size_t>(chunks * d), 0.0);
    parallel_blocks(threads, chunks, [&](int, index_t c) {
      const index_t last = std::min(n, (c + 1) * kmeans_chunk_rows);
      double* p = partial.data() + c * d;
      for (index_t i = c * kmeans_chunk_rows; i < last; ++i) {
        const T* row = x.row_data(i);
        for (index_t a = 0; a < d; ++a) p[a] += static_cast<double>(row[a]);
      }
    });
    for (index_t c = 0; c < chunks; ++c)
      for (index_t a = 0; a < d; ++a) mean[static_cast<std::size_t>(a)] += partial[static_cast<std::size_t>(c * d + a)];
    for (double& m : mean) m /= static_cast<double>(n);
  }
  host_buffer<T> centred(n * d, uninitialized);
  data.row_norms.assign(static_cast<std::size_t>(n), 0.0);
  std::vector<double> var_partial(static_cast<std::size_t>(chunks * d), 0.0);
  parallel_blocks(threads, chunks, [&](int, index_t c) {
    const index_t last = std::min(n, (c + 1) * kmeans_chunk_rows);
    double* vp = var_partial.data() + c * d;
    for (index_t i = c * kmeans_chunk_rows; i < last; ++i) {
      const T* row = x.row_data(i);
      T* out = centred.data() + i * d;
      double norm = 0.0;
      for (index_t a = 0; a < d; ++a) {
        const double v = static_cast<double>(row[a]) - mean[static_cast<std::size_t>(a)];
        out[a] = static_cast<T>(v);
        vp[a] += v * v;
        norm += static_cast<double>(out[a]) * static_cast<double>(out[a]);
      }
      data.row_norms[static_cast<std::size_t>(i)] = norm;
    }
  });
  double mean_variance = 0.0;
  for (index_t a = 0; a < d; ++a) {
    double v = 0.0;
    for (index_t c = 0; c < chunks; ++c) v += var_partial[static_cast<std::size_t>(c * d + a)];
    mean_variance += v / static_cast<double>(n);
  }
  mean_variance /= static_cast<double>(d);
  const double tol_scaled = params.tol == 0.0 ? 0.0 : params.tol * mean_variance;
  data.x = matrix_view<const T>(centred.data(), n, d);
  prepare_e_step(data);

  const int restarts = params.init == kmeans_init::given ? 1 : params.n_init;
  std::vector<host_buffer<T>> scratch;
  for (int t = 0; t < (threads > 0 ? threads : 1); ++t) scratch.emplace_back(lloyd_scratch_size<T>(d), uninitialized);
  lloyd_partials partials;

  kmeans_result<T> best;
  bool have_best = false;
  bool stop_all = false;
  std::vector<T> centres_a(static_cast<std::size_t>(k * d));
  std::vector<T> centres_b(static_cast<std::size_t>(k * d));
  std::vector<index_t> labels(static_cast<std::size_t>(n));
  for (int restart = 0; restart < restarts && !stop_all; ++restart) {
    matrix_view<T> current(centres_a.data(), k, d);
    matrix_view<T> next(centres_b.data(), k, d);
    switch (params.init) {
      case kmeans_init::given: {
        const auto c = *params.initial_centres;
        for (index_t j = 0; j < k; ++j)
          for (index_t a = 0; a < d; ++a)
            current(j, a) = static_cast<T>(static_cast<double>(c(j, a)) - mean[static_cast<std::size_t>(a)]);
        break;
      }
      case kmeans_init::k_means_plus_plus:
        kmeans_plus_plus(data, k, params.seed, kmeans_plus_plus_stream, restart, current);
        break;
      case kmeans_init::random:
        kmeans_random_init(data, k, params.seed, kmeans_random_init_stream, restart, current);
        break;
    }
    std::fill(labels.begin(), labels.end(), index_t(-1));
    partials.reset(chunks, k, d);
    bool strict = false;
    stop_reason reason = stop_reason::max_iterations;
    double shift = 0.0;
    int iteration = 0;
    for (iteration = 1; iteration <= params.max_iter; ++iteration) {
      const auto step = lloyd_assign(data, matrix_view<const T>(current), labels.data(), true, partials, scratch);
      const auto updated = lloyd_update(data, matrix_view<const T>(current), labels.data(), partials, next);
      shift = updated.shift;
      std::swap(current, next);
      if (step.changed == 0) {
        strict = true;
        reason = stop_reason::converged;
        break;
      }
      if (shift <= tol_scaled) {
        reason = stop_reason::converged;
        break;
      }
      if (params.progress) {
        const kmeans_progress info{restart, iteration, step.changed, shift, updated.inertia_estimate};
        if (!params.progress(info)) {
          reason = stop_reason::stopped_by_callback;
          stop_all = true;
          break;
        }
      }
    }
    if (iteration > params.max_iter) iteration = params.max_iter;
    if (!strict) lloyd_assign(data, matrix_view<const T>(current), labels.data(), false, partials, scratch);
    const double inertia = exact_inertia(data, matrix_view<const T>(current), labels.data());
    if (!have_best || (inertia < best.inertia && !same_clustering(labels, best.labels, k))) {
      have_best = true;
      best.labels = labels;
      best.centres.assign(current.data(), current.data() + k * d);
      best.inertia = inertia;
      best.iterations = iteration;
      best.converged = reason == stop_reason::converged;
      best.reason = reason;
      best.centre_shift = shift;
      best.best_restart = restart;
    }
  }
  best.k = k;
  best.d = d;
  best.tol_scaled = tol_scaled;
  for (index_t j = 0; j < k; ++j)
    for (index_t a = 0; a < d; ++a) {
      T& c = best.centres[static_cast<std::size_t>(j * d + a)];
      c = static_cast<T>(static_cast<double>(c) + mean[static_cast<std::size_t>(a)]);
    }
  return best;
}

}  // namespace detail

/// k-means of the rows of x (N x d, float or double; any row stride) with `params` (see the file
/// comment for the exact semantics, cost and errors). Returns labels, centres, inertia, iterations,
/// convergence flag and reason. Host only; synchronous; identical results for every policy and
/// thread count.
template <class Policy, class TX, class SX>
requires is_execution_policy_v<Policy> kmeans_result<std::remove_const_t<TX>> kmeans(
    const Policy& policy, matrix_view<TX, SX> x, const kmeans_params<std::remove_const_t<TX>>& params) {
  using T = std::remove_const_t<TX>;
  static_assert(detail::is_real_v<T>, "kmeans: x must hold float or double");
  detail::check_host_policy_and_spaces<Policy, SX>();
  return detail::kmeans_host<T>(detail::host_threads(policy), x, params);
}

/// `kmeans` with `default_host_policy()`.
template <class TX>
kmeans_result<std::remove_const_t<TX>> kmeans(matrix_view<TX> x, const kmeans_params<std::remove_const_t<TX>>& params) {
  return kmeans(default_host_policy(), x, params);
}

/// Labels of new points against fitted centres (k-means' predict): labels[i] = argmin_j
/// ||x_i - c_j||^2 by the same blocked GEMM form (lowest j on ties), thread-count independent.
/// Cost 2 N k d flops. Throws `dimension_mismatch` on shape errors, `invalid_argument` on
/// non-finite x or centres.
template <class Policy, class TX, class TC, class SX, class SC>
requires is_execution_policy_v<Policy>
void kmeans_predict(const Policy& policy, matrix_view<TX, SX> x, matrix_view<TC, SC> centres,
                    vector_view<index_t, host_space> labels) {
  using T = std::remove_const_t<TX>;
  static_assert(detail::is_real_v<T> && std::is_same_v<std::remove_const_t<TC>, T>,
                "kmeans_predict: x and centres must have the same element type, float or double");
  detail::check_host_policy_and_spaces<Policy, SX, SC>();
  constexpr const char* fn = "kmeans_predict";
  expect_shapes(x.cols() == centres.cols(), fn, "x", x.shape(), "centres", centres.shape(),
                "x and centres must have the same number of columns");
  expect_shapes(labels.size() == x.rows(), fn, "labels", labels.shape(), "x", x.shape(), "one label per row of x");
  CELLKIT_EXPECTS(centres.rows() >= 1, fn, "centres", "must have at least one row");
  detail::expect_all_finite<T>(x, fn, "x");
  detail::expect_all_finite<T>(centres, fn, "centres");
  if (x.rows() == 0) return;
  // x is used in place (any row stride): the argmin needs no centring and no row norms.
  detail::kmeans_data<T> data;
  data.x = x;
  data.n = x.rows();
  data.d = x.cols();
  data.threads = detail::effective_threads(
      detail::host_threads(policy),
      static_cast<double>(data.n) * static_cast<double>(data.d) * static_cast<double>(centres.rows()));
  data.row_norms.assign(static_cast<std::size_t>(data.n), 0.0);
  const int threads = data.threads > 0 ? data.threads : 1;
  std::vector<host_buffer<T>> scratch;
  for (int t = 0; t < threads; ++t) scratch.emplace_back(detail::lloyd_scratch_size<T>(data.d), uninitialized);
  detail::lloyd_partials partials;
  for (index_t i = 0; i < x.rows(); ++i) labels[i] = -1;
  detail::lloyd_assign(data, matrix_view<const T>(centres), labels.data(), false, partials, scratch);
}

template <class TX, class TC>
void kmeans_predict(matrix_view<TX> x, matrix_view<TC> centres, vector_view<index_t> labels) {
  kmeans_predict(default_host_policy(), x, centres, labels);
}

}  // namespace cellkit::cluster
