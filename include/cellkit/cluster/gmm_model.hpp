#pragma once
/// @file
/// The types of the Gaussian mixture (namespace `cellkit::cluster`): covariance types, fit
/// parameters, the fitted model with scikit-learn's attributes, diagnostics, and a plain-text
/// parameter file (`gmm_save` / `gmm_load`). The algorithms are in gmm.hpp (fit and queries) and
/// gmm_select.hpp (model selection); the full description is docs/gmm.md.

#include <cellkit/cluster/common.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <istream>
#include <limits>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace cellkit::cluster {

/// Philox stream ids of the GMM's random draws (docs/random.md).
inline constexpr std::uint32_t gmm_random_resp_stream = 0x676d7272u;    // "gmrr"
inline constexpr std::uint32_t gmm_random_points_stream = 0x676d7270u;  // "gmrp"
inline constexpr std::uint32_t gmm_sample_stream = 0x676d736du;         // "gmsm"

/// Covariance structure (scikit-learn's covariance_type).
enum class gmm_covariance {
  full,      ///< one d x d covariance per component
  tied,      ///< one d x d covariance shared by all components
  diag,      ///< one diagonal (d variances) per component
  spherical  ///< one variance per component
};

/// How the initial responsibilities are made (scikit-learn's init_params).
enum class gmm_init {
  kmeans,                   ///< one-hot labels of cellkit::cluster::kmeans (n_init = 1, k-means++)
  k_means_plus_plus,        ///< one point per component, chosen by greedy k-means++
  random_responsibilities,  ///< uniform random responsibilities, normalised per row ("random")
  random_points             ///< k distinct random points, one per component ("random_from_data")
};

/// How `reg_covar` is applied to the covariance diagonal.
enum class gmm_regularization {
  absolute,  ///< + reg_covar on every diagonal entry (scikit-learn)
  relative   ///< + reg_covar * var(x[:, a]) on entry a: invariant to the scale of each feature
};

/// Model-selection criteria (all "lower is better").
enum class gmm_criterion { bic, aic, icl };

/// What a diagnostic reports. Nothing here throws: the fit repairs and continues.
enum class gmm_issue {
  covariance_repaired,  ///< a covariance was not positive definite; eigenvalues floored (value: smallest eigenvalue
                        ///< before)
  component_reseeded,   ///< a component's total responsibility fell below min_component_weight (value: that weight);
                        ///< re-seeded at the worst-explained point with the data covariance
  rank_deficient        ///< a component holds fewer than d + 1 points' worth of weight (value: n_k): its covariance
                        ///< is held up by reg_covar only (reported once per component and fit)
};

constexpr const char* to_string(gmm_covariance type) {
  switch (type) {
    case gmm_covariance::full:
      return "full";
    case gmm_covariance::tied:
      return "tied";
    case gmm_covariance::diag:
      return "diag";
    case gmm_covariance::spherical:
      return "spherical";
  }
  return "unknown";
}

constexpr const char* to_string(gmm_issue issue) {
  switch (issue) {
    case gmm_issue::covariance_repaired:
      return "covariance_repaired";
    case gmm_issue::component_reseeded:
      return "component_reseeded";
    case gmm_issue::rank_deficient:
      return "rank_deficient";
  }
  return "unknown";
}

/// "full", "tied", "diag" or "spherical"; anything else throws `invalid_argument` naming `argument`.
inline gmm_covariance parse_gmm_covariance(const std::string& name, const char* argument = "covariance_type") {
  for (auto type : {gmm_covariance::full, gmm_covariance::tied, gmm_covariance::diag, gmm_covariance::spherical})
    if (name == to_string(type)) return type;
  CELLKIT_EXPECTS(false, "parse_gmm_covariance", argument,
                  "unknown covariance type '" + name + "' (expected full, tied, diag or spherical)");
  return gmm_covariance::full;
}

/// One repaired or notable event of a fit.
struct gmm_diagnostic {
  int restart = 0;        ///< 0-based initialisation
  int iteration = 0;      ///< 1-based EM iteration (0: the initialisation)
  index_t component = 0;  ///< component index (0 for the tied covariance)
  gmm_issue issue = gmm_issue::covariance_repaired;
  double value = 0;  ///< see gmm_issue
};

/// What the per-iteration progress callback sees.
struct gmm_progress {
  index_t k = 0;
  gmm_covariance covariance_type = gmm_covariance::full;
  int restart = 0;         ///< 0-based
  int iteration = 0;       ///< 1-based
  double lower_bound = 0;  ///< mean log-likelihood of the E-step of this iteration
  double change = 0;       ///< lower_bound minus the previous one (inf in the first iteration)
};

/// Number of entries of the covariance / precision arrays for a type (row-major, scikit-learn's shapes).
inline index_t gmm_covariance_size(gmm_covariance type, index_t k, index_t d) {
  switch (type) {
    case gmm_covariance::full:
      return k * d * d;
    case gmm_covariance::tied:
      return d * d;
    case gmm_covariance::diag:
      return k * d;
    case gmm_covariance::spherical:
      return k;
  }
  return 0;
}

/// A fitted Gaussian mixture, with scikit-learn's attribute conventions (all in double).
struct gmm_model {
  gmm_covariance covariance_type = gmm_covariance::full;
  index_t k = 0;                    ///< components
  index_t d = 0;                    ///< features
  std::vector<double> weights;      ///< k mixing weights, sum 1
  std::vector<double> means;        ///< k x d
  std::vector<double> covariances;  ///< full k x d x d, tied d x d, diag k x d, spherical k
  /// Factors U with precision = U U^T (scikit-learn's precisions_cholesky_): full/tied the
  /// transposed inverse Cholesky factor of the covariance (upper triangular; lower triangular when
  /// given as precisions_init, as scikit-learn), diag/spherical 1/sqrt(variance). Shapes as covariances.
  std::vector<double> precisions_cholesky;
  bool converged = false;  ///< the returned run met |change of lower bound| < tol
  stop_reason reason = stop_reason::max_iterations;
  int n_iter = 0;                                                 ///< EM iterations of the returned run
  double lower_bound = -std::numeric_limits<double>::infinity();  ///< mean log-likelihood of its last E-step
  int best_restart = 0;
  std::vector<gmm_diagnostic> diagnostics;  ///< repairs and notes of every restart, in order

  /// scikit-learn's _n_parameters: covariance parameters + k d means + k - 1 weights.
  double n_parameters() const {
    const double kd = static_cast<double>(k);
    const double dd = static_cast<double>(d);
    double cov = 0;
    switch (covariance_type) {
      case gmm_covariance::full:
        cov = kd * dd * (dd + 1) / 2;
        break;
      case gmm_covariance::tied:
        cov = dd * (dd + 1) / 2;
        break;
      case gmm_covariance::diag:
        cov = kd * dd;
        break;
      case gmm_covariance::spherical:
        cov = kd;
        break;
    }
    return std::floor(cov + dd * kd + kd - 1);
  }
  matrix_view<const double> means_view() const { return matrix_view<const double>(means.data(), k, d); }
};

/// Parameters of `gmm_fit`. Initial values follow scikit-learn: the responsibilities of `init`
/// give weights, means and covariances, and each of weights_init / means_init / precisions_init
/// that is present replaces its part (with all three present `init` is not run).
template <class T>
struct gmm_params {
  index_t k = 1;                                          ///< components, 1 <= k <= N
  gmm_covariance covariance_type = gmm_covariance::full;  ///< covariance structure
  double tol = 1e-3;                                      ///< stop when |change of the mean log-likelihood| < tol
  double reg_covar = 1e-6;                                ///< >= 0, added to the covariance diagonal
  gmm_regularization regularization = gmm_regularization::absolute;  ///< reg_covar absolute or x per-feature variance
  int max_iter = 100;                                                ///< EM iterations per initialisation, >= 0
  int n_init = 1;                                                    ///< initialisations; the highest lower bound wins
  gmm_init init = gmm_init::kmeans;                                  ///< initial responsibilities
  std::uint64_t seed = 0;                                            ///< Philox key of every random draw
  std::optional<vector_view<const double>> weights_init = std::nullopt;  ///< k weights in [0, 1], sum 1
  std::optional<matrix_view<const double>> means_init = std::nullopt;    ///< k x d
  /// Precisions (inverse covariances), scikit-learn's shapes flattened row-major: full k*d*d,
  /// tied d*d, diag k*d, spherical k.
  std::optional<vector_view<const double>> precisions_init = std::nullopt;
  const gmm_model* warm_start =
      nullptr;  ///< continue from this model (one run, n_init ignored; its lower bound is the start)
  /// A component whose total responsibility n_k falls below this (in points) is re-seeded; 0 disables.
  double min_component_weight = 1e-3;
  /// Covariance eigenvalues are floored at max(floor_relative * mean feature variance, smallest
  /// regularisation) when a covariance is not positive definite.
  double floor_relative = 1e-10;
  /// Full covariances: skip the (cell, component) pairs whose responsibility is provably below e^-50
  /// (a bound from |x - m|^2 and the smallest precision eigenvalue; see docs/gmm.md). Changes no
  /// result beyond rounding; off evaluates every pair as scikit-learn does.
  bool prune = true;
  /// Called after every EM iteration; return false to stop (reason stopped_by_callback; no further restarts).
  std::function<bool(const gmm_progress&)> progress = {};
};

/// Writes the model as a plain-text parameter file (shortest round-trip decimals).
inline void gmm_save(const gmm_model& model, std::ostream& out) {
  out << "cellkit_gmm 1\n";
  out << "covariance_type " << to_string(model.covariance_type) << "\n";
  out << "k " << model.k << "\nd " << model.d << "\n";
  auto write = [&](const char* name, const std::vector<double>& v) {
    out << name << " " << v.size();
    for (double x : v) out << " " << std::setprecision(17) << x;
    out << "\n";
  };
  write("weights", model.weights);
  write("means", model.means);
  write("covariances", model.covariances);
  write("precisions_cholesky", model.precisions_cholesky);
  out << "converged " << (model.converged ? 1 : 0) << "\nn_iter " << model.n_iter << "\n";
  out << "lower_bound " << std::setprecision(17) << model.lower_bound << "\n";
}

/// Reads a file written by `gmm_save`. Throws `invalid_argument` naming the field (an unknown
/// covariance type, a missing or malformed field, arrays of the wrong size, non-finite values).
inline gmm_model gmm_load(std::istream& in) {
  constexpr const char* fn = "gmm_load";
  gmm_model model;
  std::string key;
  CELLKIT_EXPECTS(static_cast<bool>(in >> key) && key == "cellkit_gmm", fn, "file",
                  "does not start with 'cellkit_gmm' (not a cellkit GMM parameter file)");
  int version = 0;
  in >> version;
  auto expect_key = [&](const char* name) {
    std::string got;
    in >> got;
    CELLKIT_EXPECTS(got == name, fn, name, std::string("expected field '") + name + "', found '" + got + "'");
  };
  expect_key("covariance_type");
  std::string type;
  in >> type;
  model.covariance_type = parse_gmm_covariance(type, "covariance_type");
  expect_key("k");
  in >> model.k;
  expect_key("d");
  in >> model.d;
  CELLKIT_EXPECTS(static_cast<bool>(in) && model.k >= 1 && model.d >= 1, fn, "k", "k and d must be >= 1");
  auto read = [&](const char* name, std::vector<double>& v, index_t expected) {
    expect_key(name);
    index_t size = -1;
    in >> size;
    CELLKIT_EXPECTS(size == expected, fn, name,
                    "has " + std::to_string(size) + " values, expected " + std::to_string(expected));
    v.resize(static_cast<std::size_t>(size));
    for (auto& x : v) {
      std::string word;
      in >> word;
      x = std::strtod(word.c_str(), nullptr);
      CELLKIT_EXPECTS(static_cast<bool>(in) && std::isfinite(x), fn, name, "has a missing or non-finite value");
    }
  };
  const index_t cov = gmm_covariance_size(model.covariance_type, model.k, model.d);
  read("weights", model.weights, model.k);
  read("means", model.means, model.k * model.d);
  read("covariances", model.covariances, cov);
  read("precisions_cholesky", model.precisions_cholesky, cov);
  expect_key("converged");
  int converged = 0;
  in >> converged;
  model.converged = converged != 0;
  expect_key("n_iter");
  in >> model.n_iter;
  expect_key("lower_bound");
  std::string lb;
  in >> lb;
  model.lower_bound = std::strtod(lb.c_str(), nullptr);
  CELLKIT_EXPECTS(static_cast<bool>(in), fn, "lower_bound", "is missing");
  return model;
}

}  // namespace cellkit::cluster
