#pragma once
/// @file
/// Highly variable genes of a log-normalised cells x genes CSR matrix (namespace
/// `cellkit::preprocess`), exactly as scanpy 1.9's `sc.pp.highly_variable_genes` with
/// `flavor='seurat'` or `'cell_ranger'` (one batch). Full description: docs/preprocess.md.
///
/// ## Per-gene statistics (scanpy's sparse mean/variance, ddof = 1)
/// - seurat: y = expm1(x) (x times log(base) first when the log1p had a base); mean m and variance
///   v of y per gene; m == 0 -> 1e-12; dispersion = v / m, 0 -> NaN, then log; mean -> log1p(m).
/// - cell_ranger: m, v of x itself; m == 0 -> 1e-12; dispersion = v / m.
///
/// ## Normalised dispersion
/// - seurat: genes are put in `n_bins` equal-width bins of the (log1p) mean, pandas' `pd.cut`:
///   edges linspace(min, max, n_bins + 1), the lowest edge lowered by 0.1% of the range, bins
///   (a, b]. Per bin: mean and sample standard deviation (ddof = 1) of the non-NaN dispersions;
///   a bin with a single gene gets mean 0 and sd = its dispersion (normalised value 1).
///   norm = (dispersion - bin mean) / bin sd.
/// - cell_ranger: bins at the 10th, 15th, ..., 100th percentiles of the means (NumPy's linear
///   interpolation) plus -inf / +inf; per bin the median of the dispersions and their MAD
///   (statsmodels' robust.mad: median |d - median| / 0.6744897501960817; NaN when any dispersion in
///   the bin is NaN). norm = (dispersion - median) / MAD. Duplicate percentile edges are an error
///   (pandas raises "Bin edges must be unique"), named in the message.
///
/// ## Selection
/// - with `n_top_genes`: the cut-off is the n-th largest non-NaN normalised dispersion, and every gene
///   with nan_to_num(norm) >= cut-off is selected (ties can select more than n; scanpy does the same).
/// - otherwise: min_mean < mean < max_mean and min_disp < norm < max_disp (NaN norm -> 0).
///
/// Returns per-gene means, dispersions, normalised dispersions, the mask and the selected indices
/// (ascending, ready for `take_columns`). Cost O(nnz + genes log genes); deterministic for every
/// policy and thread count; host only; synchronous. Errors: `invalid_argument` for fewer than 2
/// cells, n_bins < 1, n_top_genes < 1.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/preprocess/detail/common.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace cellkit::preprocess {

enum class hvg_flavor { seurat, cell_ranger };

struct hvg_params {
  hvg_flavor flavor = hvg_flavor::seurat;
  std::optional<index_t> n_top_genes = std::nullopt;  ///< select the top n (else the cut-offs below)
  int n_bins = 20;                                    ///< seurat: number of mean bins
  double min_mean = 0.0125;
  double max_mean = 3;
  double min_disp = 0.5;
  double max_disp = std::numeric_limits<double>::infinity();
  std::optional<double> log_base = std::nullopt;  ///< seurat: the base log1p used, when not e
};

struct hvg_result {
  std::vector<double> means;             ///< per gene (seurat: log1p of the mean of expm1(x))
  std::vector<double> dispersions;       ///< per gene (seurat: log of var/mean; may be NaN)
  std::vector<double> dispersions_norm;  ///< per gene, may be NaN
  std::vector<char> highly_variable;     ///< per gene, 0 / 1
  std::vector<index_t> genes;            ///< indices of the selected genes, ascending
};

namespace detail {

/// NumPy's linear-interpolation percentile of sorted data (`np.percentile(a, q)`).
inline double numpy_percentile(const std::vector<double>& sorted, double q) {
  const auto n = static_cast<double>(sorted.size());
  const double virtual_index = (n - 1.0) * (q / 100.0);
  const double previous = std::floor(virtual_index);
  const double gamma = virtual_index - previous;
  const auto lo = static_cast<std::size_t>(std::clamp(previous, 0.0, n - 1.0));
  const auto hi = static_cast<std::size_t>(std::clamp(previous + 1.0, 0.0, n - 1.0));
  const double a = sorted[lo];
  const double b = sorted[hi];
  const double diff = b - a;
  // numpy's _lerp: a + diff * t, or b - diff * (1 - t) for t >= 0.5.
  return gamma >= 0.5 ? b - diff * (1.0 - gamma) : a + diff * gamma;
}

inline double median_sorted(const std::vector<double>& s) {
  const std::size_t m = s.size() / 2;
  return s.size() % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2.0;
}

}  // namespace detail

/// Highly variable genes of x (cells x genes, log-normalised) per `params` (see the file comment).
template <class Policy, class T, class Index, class Space>
hvg_result highly_variable_genes(const Policy& policy, csr_view<T, Index, Space> x, const hvg_params& params = {}) {
  detail::check_host_policy<Policy, Space>();
  using V = std::remove_const_t<T>;
  constexpr const char* fn = "highly_variable_genes";
  CELLKIT_EXPECTS(x.rows() >= 2, fn, "x", "needs at least 2 cells for a variance, got " + std::to_string(x.rows()));
  CELLKIT_EXPECTS(x.cols() >= 1, fn, "x", "has no genes");
  CELLKIT_EXPECTS(params.n_bins >= 1, fn, "params.n_bins", "must be >= 1, got " + std::to_string(params.n_bins));
  CELLKIT_EXPECTS(!params.n_top_genes || *params.n_top_genes >= 1, fn, "params.n_top_genes",
                  "must be >= 1, got " + std::to_string(params.n_top_genes.value_or(0)));
  const csr_view<const V, Index> xc = x;
#if CELLKIT_DEBUG_CHECKS
  detail::expect_finite_values(xc, fn, "x");
#endif
  const index_t d = x.cols();
  const bool seurat = params.flavor == hvg_flavor::seurat;
  const double log_base = params.log_base ? std::log(*params.log_base) : 1.0;
  hvg_result r;
  std::vector<double> var;
  if (seurat) {
    // scanpy applies expm1 to the matrix in its own dtype: float data are expm1'd in float.
    detail::column_mean_var(
        detail::host_threads(policy), xc,
        [&](double v) {
          const V scaled =
              params.log_base ? static_cast<V>(static_cast<double>(static_cast<V>(v)) * log_base) : static_cast<V>(v);
          return static_cast<double>(std::expm1(scaled));
        },
        r.means, var);
  } else {
    detail::column_mean_var(
        detail::host_threads(policy), xc, [](double v) { return v; }, r.means, var);
  }
  r.dispersions.resize(static_cast<std::size_t>(d));
  for (std::size_t j = 0; j < r.means.size(); ++j) {
    double& m = r.means[j];
    if (m == 0.0) m = 1e-12;
    double disp = var[j] / m;
    if (seurat) {
      if (disp == 0.0) disp = std::nan("");
      disp = std::log(disp);
      m = std::log1p(m);
    }
    r.dispersions[j] = disp;
  }

  // Bin assignment: bin[j] in [0, bins).
  std::vector<index_t> bin(static_cast<std::size_t>(d), 0);
  index_t bins = 0;
  if (seurat) {
    double lo = *std::min_element(r.means.begin(), r.means.end());
    double hi = *std::max_element(r.means.begin(), r.means.end());
    std::vector<double> edges(static_cast<std::size_t>(params.n_bins) + 1);
    auto linspace = [&](double a, double b) {
      const double step = (b - a) / params.n_bins;
      for (int e = 0; e <= params.n_bins; ++e) edges[static_cast<std::size_t>(e)] = e * step + a;
      edges.back() = b;
    };
    if (lo == hi) {
      lo -= lo != 0 ? 0.001 * std::fabs(lo) : 0.001;
      hi += hi != 0 ? 0.001 * std::fabs(hi) : 0.001;
      linspace(lo, hi);
    } else {
      linspace(lo, hi);
      edges.front() -= (hi - lo) * 0.001;
    }
    bins = params.n_bins;
    for (index_t j = 0; j < d; ++j) {
      // searchsorted(edges, m, side='left') - 1: the bin (a, b] holding m.
      const auto it = std::lower_bound(edges.begin(), edges.end(), r.means[static_cast<std::size_t>(j)]);
      bin[static_cast<std::size_t>(j)] = static_cast<index_t>(it - edges.begin()) - 1;
    }
  } else {
    std::vector<double> sorted(r.means);
    std::sort(sorted.begin(), sorted.end());
    std::vector<double> edges{-std::numeric_limits<double>::infinity()};
    for (int q = 10; q <= 100; q += 5) edges.push_back(detail::numpy_percentile(sorted, q));
    edges.push_back(std::numeric_limits<double>::infinity());
    for (std::size_t e = 1; e < edges.size(); ++e) {
      CELLKIT_EXPECTS(edges[e - 1] < edges[e], fn, "x",
                      "the percentile bin edges of the gene means are not unique (edge " + std::to_string(e) + " = " +
                          detail::value_text(edges[e]) +
                          " repeats; pandas' cut raises 'Bin edges must be unique' here): too many genes share "
                          "one mean (e.g. unexpressed genes); filter them first");
    }
    bins = static_cast<index_t>(edges.size()) - 1;
    for (index_t j = 0; j < d; ++j) {
      const auto it = std::lower_bound(edges.begin(), edges.end(), r.means[static_cast<std::size_t>(j)]);
      bin[static_cast<std::size_t>(j)] = static_cast<index_t>(it - edges.begin()) - 1;
    }
  }

  // Per-bin centre and scale.
  std::vector<std::vector<double>> members(static_cast<std::size_t>(bins));
  std::vector<char> has_nan(static_cast<std::size_t>(bins), 0);
  for (index_t j = 0; j < d; ++j) {
    const double disp = r.dispersions[static_cast<std::size_t>(j)];
    const auto b = static_cast<std::size_t>(bin[static_cast<std::size_t>(j)]);
    if (std::isnan(disp)) {
      has_nan[b] = 1;
    } else {
      members[b].push_back(disp);
    }
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> centre(static_cast<std::size_t>(bins), nan);
  std::vector<double> scale(static_cast<std::size_t>(bins), nan);
  for (std::size_t b = 0; b < members.size(); ++b) {
    auto& v = members[b];
    if (seurat) {
      // pandas' groupby mean / std(ddof=1) skip NaN; a bin with < 2 values has std NaN and then
      // gets centre 0 and scale = its mean.
      double sum = 0.0;
      for (const double e : v) sum += e;
      const double mean = v.empty() ? nan : sum / static_cast<double>(v.size());
      double sd = nan;
      if (v.size() >= 2) {
        double ss = 0.0;
        for (const double e : v) ss += (e - mean) * (e - mean);
        sd = std::sqrt(ss / static_cast<double>(v.size() - 1));
      }
      if (std::isnan(sd)) {
        centre[b] = 0.0;
        scale[b] = mean;
      } else {
        centre[b] = mean;
        scale[b] = sd;
      }
    } else {
      if (v.empty()) continue;
      std::sort(v.begin(), v.end());
      const double median = detail::median_sorted(v);
      centre[b] = median;
      if (has_nan[b] != 0) continue;  // statsmodels' mad of a group with NaN is NaN
      std::vector<double> deviation(v.size());
      for (std::size_t e = 0; e < v.size(); ++e) deviation[e] = std::fabs(v[e] - median) / 0.6744897501960817;
      std::sort(deviation.begin(), deviation.end());
      scale[b] = detail::median_sorted(deviation);
    }
  }
  r.dispersions_norm.resize(static_cast<std::size_t>(d));
  for (index_t j = 0; j < d; ++j) {
    const auto b = static_cast<std::size_t>(bin[static_cast<std::size_t>(j)]);
    r.dispersions_norm[static_cast<std::size_t>(j)] =
        (r.dispersions[static_cast<std::size_t>(j)] - centre[b]) / scale[b];
  }

  r.highly_variable.assign(static_cast<std::size_t>(d), 0);
  if (params.n_top_genes) {
    std::vector<double> finite;
    for (const double v : r.dispersions_norm)
      if (!std::isnan(v)) finite.push_back(v);
    CELLKIT_EXPECTS(!finite.empty(), fn, "x", "every normalised dispersion is NaN (constant genes?)");
    const auto n =
        static_cast<std::size_t>(std::min<index_t>(*params.n_top_genes, static_cast<index_t>(finite.size())));
    std::nth_element(finite.begin(), finite.begin() + static_cast<std::ptrdiff_t>(n - 1), finite.end(),
                     std::greater<double>());
    const double cut = finite[n - 1];
    for (std::size_t j = 0; j < r.dispersions_norm.size(); ++j) {
      double v = r.dispersions_norm[j];
      if (std::isnan(v)) v = 0.0;
      // nan_to_num also maps +-inf to the largest finite values; comparisons are unchanged.
      r.highly_variable[j] = v >= cut;
    }
  } else {
    for (std::size_t j = 0; j < r.dispersions_norm.size(); ++j) {
      double v = r.dispersions_norm[j];
      if (std::isnan(v)) v = 0.0;
      const double m = r.means[j];
      r.highly_variable[j] = m > params.min_mean && m < params.max_mean && v > params.min_disp && v < params.max_disp;
    }
  }
  for (index_t j = 0; j < d; ++j)
    if (r.highly_variable[static_cast<std::size_t>(j)] != 0) r.genes.push_back(j);
  return r;
}

}  // namespace cellkit::preprocess
