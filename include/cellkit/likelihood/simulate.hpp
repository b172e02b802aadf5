#pragma once
/// @file
/// A simulator of clustered single-cell count matrices in the spirit of Splatter (Zappia et al. 2017)
/// and of the simulations of scGPCL: groups of cells with log-normal differential-expression factors,
/// log-normal library sizes, NB counts, and dropout by a logistic function of the log-mean whose
/// midpoint is solved so that the expected fraction of dropped entries equals a target rate.
/// It is the library's default dataset for examples, tests and benchmarks (namespace
/// `cellkit::likelihood`).
///
/// ## Model (all draws from cellkit's counter-based generator, seeded by params.seed)
///
/// 1. Groups: K = groups, proportions p_k proportional to r^(k / (K - 1)), r = min_retention in (0, 1]
///    (r = 1 balanced; the smallest group has r times the cells of the largest). Sizes by largest
///    remainder (they sum to cells), then the labels are shuffled (Fisher-Yates).
/// 2. Gene base means m_j ~ Gamma(mean_shape, 1 / mean_rate); with probability outlier_prob
///    m_j *= exp(N(outlier_loc, outlier_scale)) (expression outliers).
/// 3. Differential expression: for each group k and gene j, with probability de_prob a factor
///    f_kj = exp(N(de_loc, de_scale)) (down-regulated, 1 / f, with probability de_down_prob), else 1.
///    With one group there is no DE. w_kj = m_j f_kj / sum_j m_j f_kj.
/// 4. Library sizes L_i ~ LogNormal(lib_loc, lib_scale); true means mu_ij = L_i w_{g(i) j}.
/// 5. Counts x_ij ~ NB(mu_ij, theta) (theta = +inf: Poisson).
/// 6. Dropout (dropout_rate > 0): x_ij is set to 0 with probability
///    p_ij = 1 / (1 + exp(-k (log mu_ij - x0))), k = dropout_shape (< 0: low means drop more). x0 is found
///    by bisection (80 steps) so that the mean of p_ij equals dropout_rate, the mean taken over every
///    entry of an evenly spaced subset of at most 512 cells (all cells when fewer); the expected rate
///    over all entries at that x0 is reported (`expected_dropout_rate`).
///
/// Element (i, j)'s count and dropout use philox_engine(seed, 4, i * genes + j) (NB draw, then one
/// uniform); genes use stream 1, DE factors stream 2 (element k * genes + j), library sizes stream 3,
/// the shuffle stream 5. The result is a pure function of the parameters: bit-identical for serial
/// and any openmp{n}.
///
/// ## Parameters and defaults (`simulate_params`)
///
/// | parameter | default | meaning |
/// |---|---|---|
/// | cells, genes, groups | 2000, 1000, 4 | shape and number of groups |
/// | min_retention | 1.0 | group imbalance r (smallest / largest group size), in (0, 1] |
/// | mean_shape, mean_rate | 0.6, 0.3 | Gamma prior of gene base means (Splatter's defaults) |
/// | outlier_prob, outlier_loc, outlier_scale | 0.05, 4.0, 0.5 | expression outliers |
/// | de_prob, de_down_prob, de_loc, de_scale | 0.1, 0.5, 0.1, 0.4 | DE probability, down-regulation probability,
/// log-normal factor (Splatter's defaults) | | lib_loc, lib_scale | 7.6, 0.3 | log-normal library sizes (about 2000
/// counts per cell) | | theta | 5.0 | NB inverse dispersion (+inf: Poisson) | | dropout_rate, dropout_shape | 0.2, -1.0
/// | target fraction of dropped entries (0: none), logistic slope | | seed | 0 | generator key | | store_means | false
/// | also return the dense cells x genes true means (memory: cells x genes values) |
///
/// With the defaults 69% of the entries are zero (2000 x 1000, 621143 nonzeros at seed 0).
///
/// ## Result (`simulation<T, Index>`)
///
/// counts (owning CSR, `csr_matrix<T, Index>`, explicit zeros never stored), labels (cells, 0..K-1),
/// group_sizes, gene_means (m_j), de_factors (K x genes, row-major), library_sizes (L_i), dropout_mid
/// (x0), expected_dropout_rate, dropout_events (entries zeroed by dropout, counting those whose NB
/// draw was already 0), means (cells x genes when store_means, else empty).
///
/// Cost: O(cells x genes) NB draws (the dominant term; parallel over cells), plus
/// 80 x min(cells, 512) x genes logistic evaluations for the midpoint; memory: the CSR result plus one
/// temporary vector of nonzeros per cell. Host policies only (serial, openmp).
/// Errors: `invalid_argument` naming the parameter (cells, genes or groups < 1, min_retention outside
/// (0, 1], negative or non-finite scales, probabilities outside [0, 1], theta <= 0, dropout_rate
/// outside [0, 1), dropout_shape >= 0 while dropout_rate > 0, more than the Index type can hold).
///
/// ## Example
///
/// ```cpp
/// auto sim = cellkit::likelihood::simulate_counts<float>(cellkit::openmp{}, {.cells = 5000, .groups = 6, .seed = 1});
/// auto counts = sim.counts.view();   // csr_view<const float, int32_t>
/// ```

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>
#include <cellkit/likelihood/sample.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cellkit::likelihood {

/// Parameters of `simulate_counts` (see the file comment for the model and the defaults).
struct simulate_params {
  index_t cells = 2000;
  index_t genes = 1000;
  int groups = 4;
  double min_retention = 1.0;
  double mean_shape = 0.6;
  double mean_rate = 0.3;
  double outlier_prob = 0.05;
  double outlier_loc = 4.0;
  double outlier_scale = 0.5;
  double de_prob = 0.1;
  double de_down_prob = 0.5;
  double de_loc = 0.1;
  double de_scale = 0.4;
  double lib_loc = 7.6;
  double lib_scale = 0.3;
  double theta = 5.0;
  double dropout_rate = 0.2;
  double dropout_shape = -1.0;
  std::uint64_t seed = 0;
  bool store_means = false;
};

/// The output of `simulate_counts`.
template <class T = float, class Index = std::int32_t>
struct simulation {
  csr_matrix<T, Index> counts;        ///< cells x genes counts
  std::vector<std::int32_t> labels;   ///< true group of each cell, 0..groups-1
  std::vector<index_t> group_sizes;   ///< cells per group
  std::vector<double> gene_means;     ///< base means m_j (after outliers)
  std::vector<double> de_factors;     ///< groups x genes DE factors f_kj (row-major)
  std::vector<double> library_sizes;  ///< L_i
  double dropout_mid = 0;             ///< solved logistic midpoint x0 (log-mean scale)
  double expected_dropout_rate = 0;   ///< mean dropout probability over all entries
  index_t dropout_events = 0;         ///< entries zeroed by dropout
  host_buffer<T> means;               ///< cells x genes true means (store_means), else empty
};

namespace detail {

/// Group sizes by largest remainder from proportions r^(k/(K-1)).
inline std::vector<index_t> group_sizes_for(index_t cells, int groups, double min_retention) {
  std::vector<double> p(static_cast<std::size_t>(groups));
  double total = 0;
  for (int k = 0; k < groups; ++k) {
    p[static_cast<std::size_t>(k)] = groups == 1 ? 1.0 : std::pow(min_retention, static_cast<double>(k) / (groups - 1));
    total += p[static_cast<std::size_t>(k)];
  }
  std::vector<index_t> sizes(static_cast<std::size_t>(groups));
  std::vector<std::pair<double, int>> rest;
  index_t assigned = 0;
  for (int k = 0; k < groups; ++k) {
    const double exact = static_cast<double>(cells) * p[static_cast<std::size_t>(k)] / total;
    sizes[static_cast<std::size_t>(k)] = static_cast<index_t>(std::floor(exact));
    assigned += sizes[static_cast<std::size_t>(k)];
    rest.emplace_back(exact - std::floor(exact), k);
  }
  std::stable_sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t q = 0; assigned < cells; ++q, ++assigned)
    ++sizes[static_cast<std::size_t>(rest[q % rest.size()].second)];
  return sizes;
}

struct dropout_mean_fn {
  const double* log_lib;      // per sampled cell
  const std::int32_t* group;  // per sampled cell
  const double* log_w;        // groups x genes
  index_t genes;
  double k;
  double x0;
  CELLKIT_HD double operator()(index_t c) const {
    double s = 0;
    const double* lw = log_w + static_cast<index_t>(group[c]) * genes;
    for (index_t j = 0; j < genes; ++j) s += 1.0 / (1.0 + ::cellkit::math::exp(-k * (log_lib[c] + lw[j] - x0)));
    return s;
  }
};

}  // namespace detail

/// Simulates a clustered count matrix (see the file comment). `T`: count type of the CSR values
/// (float by default), `Index`: its index type.
template <class T = float, class Index = std::int32_t, class Policy>
requires is_execution_policy_v<Policy> simulation<T, Index> simulate_counts(const Policy& policy,
                                                                            const simulate_params& params) {
  static_assert(is_host_policy_v<Policy>, "cellkit::likelihood::simulate_counts runs on the host (serial or openmp)");
  static_assert(std::is_arithmetic_v<T>, "simulate_counts: T must be a number type");
  constexpr const char* fn = "simulate_counts";
  const simulate_params& p = params;
  auto finite_nonneg = [](double v) { return v >= 0 && v < std::numeric_limits<double>::infinity(); };
  auto probability = [](double v) { return v >= 0 && v <= 1; };
  CELLKIT_EXPECTS(p.cells >= 1, fn, "cells", "must be >= 1, got " + std::to_string(p.cells));
  CELLKIT_EXPECTS(p.genes >= 1, fn, "genes", "must be >= 1, got " + std::to_string(p.genes));
  CELLKIT_EXPECTS(p.groups >= 1 && p.groups <= p.cells, fn, "groups",
                  "must be in [1, cells], got " + std::to_string(p.groups));
  CELLKIT_EXPECTS(p.min_retention > 0 && p.min_retention <= 1, fn, "min_retention",
                  "must be in (0, 1], got " + std::to_string(p.min_retention));
  CELLKIT_EXPECTS(p.mean_shape > 0 && finite_nonneg(p.mean_shape), fn, "mean_shape", "must be finite and > 0");
  CELLKIT_EXPECTS(p.mean_rate > 0 && finite_nonneg(p.mean_rate), fn, "mean_rate", "must be finite and > 0");
  CELLKIT_EXPECTS(probability(p.outlier_prob), fn, "outlier_prob", "must be in [0, 1]");
  CELLKIT_EXPECTS(std::isfinite(p.outlier_loc) && finite_nonneg(p.outlier_scale), fn, "outlier_loc/outlier_scale",
                  "must be finite (scale >= 0)");
  CELLKIT_EXPECTS(probability(p.de_prob), fn, "de_prob", "must be in [0, 1]");
  CELLKIT_EXPECTS(probability(p.de_down_prob), fn, "de_down_prob", "must be in [0, 1]");
  CELLKIT_EXPECTS(std::isfinite(p.de_loc) && finite_nonneg(p.de_scale), fn, "de_loc/de_scale",
                  "must be finite (scale >= 0)");
  CELLKIT_EXPECTS(std::isfinite(p.lib_loc) && finite_nonneg(p.lib_scale), fn, "lib_loc/lib_scale",
                  "must be finite (scale >= 0)");
  CELLKIT_EXPECTS(p.theta > 0, fn, "theta", "must be > 0 (+inf for Poisson counts)");
  CELLKIT_EXPECTS(p.dropout_rate >= 0 && p.dropout_rate < 1, fn, "dropout_rate", "must be in [0, 1)");
  CELLKIT_EXPECTS(p.dropout_rate == 0 || (p.dropout_shape < 0 && std::isfinite(p.dropout_shape)), fn, "dropout_shape",
                  "must be finite and < 0 when dropout_rate > 0");
  CELLKIT_EXPECTS(p.genes <= static_cast<index_t>(std::numeric_limits<Index>::max()), fn, "genes",
                  "does not fit the Index type");

  const index_t cells = p.cells;
  const index_t genes = p.genes;
  const int groups = p.groups;
  simulation<T, Index> sim;

  // 1. groups and shuffled labels
  sim.group_sizes = detail::group_sizes_for(cells, groups, p.min_retention);
  sim.labels.resize(static_cast<std::size_t>(cells));
  {
    std::size_t pos = 0;
    for (int k = 0; k < groups; ++k) {
      for (index_t c = 0; c < sim.group_sizes[static_cast<std::size_t>(k)]; ++c) sim.labels[pos++] = k;
    }
    philox_engine eng(p.seed, 5, 0);
    for (index_t i = cells - 1; i > 0; --i) {  // Fisher-Yates with a uniform index in [0, i]
      const auto r = static_cast<index_t>(uniform<double>(eng) * static_cast<double>(i + 1));
      const index_t swap_with = r > i ? i : r;  // uniform is in (0, 1]: r = i + 1 only at u = 1
      std::swap(sim.labels[static_cast<std::size_t>(i)], sim.labels[static_cast<std::size_t>(swap_with)]);
    }
  }

  // 2. gene base means with outliers
  sim.gene_means.resize(static_cast<std::size_t>(genes));
  for (index_t j = 0; j < genes; ++j) {
    philox_engine eng(p.seed, 1, static_cast<std::uint64_t>(j));
    double m = gamma(eng, p.mean_shape, 1.0 / p.mean_rate);
    if (bernoulli(eng, p.outlier_prob)) m *= std::exp(normal(eng, p.outlier_loc, p.outlier_scale));
    sim.gene_means[static_cast<std::size_t>(j)] = m;
  }

  // 3. DE factors and normalised group profiles (log w)
  sim.de_factors.assign(static_cast<std::size_t>(groups * genes), 1.0);
  std::vector<double> log_w(static_cast<std::size_t>(groups * genes));
  for (int k = 0; k < groups; ++k) {
    double total = 0;
    for (index_t j = 0; j < genes; ++j) {
      double f = 1.0;
      if (groups > 1) {
        philox_engine eng(p.seed, 2, static_cast<std::uint64_t>(k * genes + j));
        if (bernoulli(eng, p.de_prob)) {
          f = std::exp(normal(eng, p.de_loc, p.de_scale));
          if (bernoulli(eng, p.de_down_prob)) f = 1.0 / f;
        }
      }
      sim.de_factors[static_cast<std::size_t>(k * genes + j)] = f;
      total += sim.gene_means[static_cast<std::size_t>(j)] * f;
    }
    for (index_t j = 0; j < genes; ++j) {
      const double w =
          sim.gene_means[static_cast<std::size_t>(j)] * sim.de_factors[static_cast<std::size_t>(k * genes + j)] / total;
      log_w[static_cast<std::size_t>(k * genes + j)] = std::log(w);
    }
  }

  // 4. library sizes
  sim.library_sizes.resize(static_cast<std::size_t>(cells));
  std::vector<double> log_lib(static_cast<std::size_t>(cells));
  for (index_t i = 0; i < cells; ++i) {
    philox_engine eng(p.seed, 3, static_cast<std::uint64_t>(i));
    log_lib[static_cast<std::size_t>(i)] = normal(eng, p.lib_loc, p.lib_scale);
    sim.library_sizes[static_cast<std::size_t>(i)] = std::exp(log_lib[static_cast<std::size_t>(i)]);
  }

  // 6a. dropout midpoint: bisection on the mean dropout probability over a subset of cells
  const double k_shape = p.dropout_shape;
  if (p.dropout_rate > 0) {
    const index_t sub = std::min<index_t>(cells, 512);
    std::vector<double> sub_lib(static_cast<std::size_t>(sub));
    std::vector<std::int32_t> sub_group(static_cast<std::size_t>(sub));
    for (index_t c = 0; c < sub; ++c) {
      const index_t i = c * cells / sub;
      sub_lib[static_cast<std::size_t>(c)] = log_lib[static_cast<std::size_t>(i)];
      sub_group[static_cast<std::size_t>(c)] = sim.labels[static_cast<std::size_t>(i)];
    }
    const auto [lo_w, hi_w] = std::minmax_element(log_w.begin(), log_w.end());
    const auto [lo_l, hi_l] = std::minmax_element(log_lib.begin(), log_lib.end());
    const double span = 60.0 / -k_shape;  // the logistic is saturated 60/|k| away from the data
    double lo = *lo_w + *lo_l - span, hi = *hi_w + *hi_l + span;
    const double n_sub = static_cast<double>(sub) * static_cast<double>(genes);
    for (int it = 0; it < 80; ++it) {
      const double mid = 0.5 * (lo + hi);
      const double rate = transform_reduce(policy, sub, 0.0, plus_op{},
                                           detail::dropout_mean_fn{sub_lib.data(), sub_group.data(), log_w.data(),
                                                                   genes, k_shape, mid}) /
                          n_sub;
      (rate < p.dropout_rate ? lo : hi) = mid;  // the rate grows with the midpoint (k < 0)
    }
    sim.dropout_mid = 0.5 * (lo + hi);
    sim.expected_dropout_rate =
        transform_reduce(
            policy, cells, 0.0, plus_op{},
            detail::dropout_mean_fn{log_lib.data(), sim.labels.data(), log_w.data(), genes, k_shape, sim.dropout_mid}) /
        (static_cast<double>(cells) * static_cast<double>(genes));
  }

  // 5 + 6b. counts, row by row (parallel), into per-row nonzero lists
  if (p.store_means) sim.means = host_buffer<T>(cells * genes, uninitialized);
  std::vector<std::vector<std::pair<Index, T>>> rows(static_cast<std::size_t>(cells));
  std::vector<index_t> drops(static_cast<std::size_t>(cells), 0);
  const double theta = p.theta;
  const bool dropout = p.dropout_rate > 0;
  const double x0 = sim.dropout_mid;
  T* means_out = p.store_means ? sim.means.data() : nullptr;
  for_each_index(policy, cells, [&](index_t i) {
    const auto g = static_cast<index_t>(sim.labels[static_cast<std::size_t>(i)]);
    const double ll = log_lib[static_cast<std::size_t>(i)];
    auto& row = rows[static_cast<std::size_t>(i)];
    index_t dropped = 0;
    for (index_t j = 0; j < genes; ++j) {
      const double log_mu = ll + log_w[static_cast<std::size_t>(g * genes + j)];
      const double mu = std::exp(log_mu);
      if (means_out != nullptr) means_out[i * genes + j] = static_cast<T>(mu);
      philox_engine eng(p.seed, 4, static_cast<std::uint64_t>(i * genes + j));
      double x = draw_nb(eng, mu, theta);
      if (dropout) {
        const double pd = 1.0 / (1.0 + std::exp(-k_shape * (log_mu - x0)));
        if (uniform<double>(eng) <= pd) {
          x = 0;
          ++dropped;
        }
      }
      if (x != 0) row.emplace_back(static_cast<Index>(j), static_cast<T>(x));
    }
    drops[static_cast<std::size_t>(i)] = dropped;
  });

  index_t nnz = 0;
  for (const auto& row : rows) nnz += static_cast<index_t>(row.size());
  CELLKIT_EXPECTS(nnz <= static_cast<index_t>(std::numeric_limits<Index>::max()), fn, "cells/genes",
                  std::to_string(nnz) + " nonzeros do not fit the Index type; use a wider Index");
  host_buffer<Index> indptr(cells + 1, uninitialized), indices(nnz, uninitialized);
  host_buffer<T> values(nnz, uninitialized);
  index_t q = 0;
  indptr[0] = Index(0);
  for (index_t i = 0; i < cells; ++i) {
    for (const auto& [j, v] : rows[static_cast<std::size_t>(i)]) {
      indices[q] = j;
      values[q] = v;
      ++q;
    }
    indptr[i + 1] = static_cast<Index>(q);
    sim.dropout_events += drops[static_cast<std::size_t>(i)];
  }
  sim.counts = csr_matrix<T, Index>(cells, genes, std::move(indptr), std::move(indices), std::move(values));
  return sim;
}

/// `simulate_counts` with `default_host_policy()`.
template <class T = float, class Index = std::int32_t>
simulation<T, Index> simulate_counts(const simulate_params& params) {
  return simulate_counts<T, Index>(default_host_policy(), params);
}

}  // namespace cellkit::likelihood
