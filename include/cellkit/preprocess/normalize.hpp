#pragma once
/// @file
/// Library-size normalisation and log transform of a cells x genes CSR matrix, in place
/// (namespace `cellkit::preprocess`), as scanpy's `sc.pp.normalize_total` and `sc.pp.log1p`.
/// Full description: docs/preprocess.md.
///
/// ## normalize_total
///     total_i  = sum_j x_ij                               (in double)
///     target   = params.target_sum, or the median of the non-zero totals (scanpy's default)
///     factor_i = (total_i == 0 ? 1 : total_i) / target    ("size factor")
///     x_ij    <- x_ij * (1 / factor_i)                    (scanpy's inplace_row_scale)
/// Returns the totals, the size factors and the target. Errors: `invalid_argument` for a
/// non-finite or non-positive target_sum, for non-finite values (with CELLKIT_DEBUG_CHECKS), and
/// when every cell has total 0 and no target is given.
///
/// ## log1p
///     x_ij <- log(1 + x_ij)            or, with params.base = b,  log(1 + x_ij) / log(b)
/// Stored entries only (log1p(0) = 0 keeps the sparsity). Values < -1 give NaN as in NumPy; the
/// data after normalize_total are >= 0.
///
/// Cost O(nnz + rows), row-parallel; results identical for every policy and thread count; host only,
/// synchronous.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/preprocess/detail/common.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace cellkit::preprocess {

struct normalize_total_params {
  std::optional<double> target_sum = std::nullopt;  ///< counts per cell after; default the median total
};

struct normalize_total_result {
  std::vector<double> totals;        ///< per-cell totals before normalisation
  std::vector<double> size_factors;  ///< what each row was divided by: max(total, [total == 0]) / target
  double target_sum = 0;             ///< the target used
};

struct log1p_params {
  std::optional<double> base = std::nullopt;  ///< logarithm base; default e
};

/// Per-row sums in double (the library sizes).
template <class Policy, class T, class Index, class Space>
std::vector<double> row_totals(const Policy& policy, csr_view<T, Index, Space> x) {
  detail::check_host_policy<Policy, Space>();
  std::vector<double> totals(static_cast<std::size_t>(x.rows()), 0.0);
  const int threads = detail::effective_threads(detail::host_threads(policy), static_cast<double>(x.nnz()));
  detail::parallel_blocks(threads, detail::block_count(x.rows()), [&](int, index_t b) {
    const index_t last = std::min(x.rows(), (b + 1) * detail::block_rows);
    for (index_t i = b * detail::block_rows; i < last; ++i) {
      double s = 0.0;
      for (index_t k = x.row_begin(i); k < x.row_end(i); ++k) s += static_cast<double>(x.values()[k]);
      totals[static_cast<std::size_t>(i)] = s;
    }
  });
  return totals;
}

/// The median of the positive entries (NumPy's median: mean of the two middle values for an even
/// count); NaN when there is none.
inline double median_of_positive(const std::vector<double>& values) {
  std::vector<double> positive;
  for (const double v : values)
    if (v > 0) positive.push_back(v);
  if (positive.empty()) return std::nan("");
  std::sort(positive.begin(), positive.end());
  const std::size_t m = positive.size() / 2;
  return positive.size() % 2 == 1 ? positive[m] : (positive[m - 1] + positive[m]) / 2.0;
}

/// Scales each row of x (in place) to `target_sum` (see the file comment).
template <class Policy, class T, class Index, class Space>
normalize_total_result normalize_total(const Policy& policy, csr_view<T, Index, Space> x,
                                       const normalize_total_params& params = {}) {
  detail::check_host_policy<Policy, Space>();
  static_assert(!std::is_const_v<T> && detail::is_real_v<T>,
                "normalize_total: x must be a mutable float/double CSR view");
  constexpr const char* fn = "normalize_total";
  if (params.target_sum) {
    CELLKIT_EXPECTS(std::isfinite(*params.target_sum) && *params.target_sum > 0, fn, "params.target_sum",
                    "must be finite and > 0, got " + detail::value_text(*params.target_sum));
  }
#if CELLKIT_DEBUG_CHECKS
  detail::expect_finite_values(csr_view<const T, Index>(x), fn, "x");
#endif
  normalize_total_result result;
  result.totals = row_totals(policy, x);
  result.target_sum = params.target_sum ? *params.target_sum : median_of_positive(result.totals);
  CELLKIT_EXPECTS(!std::isnan(result.target_sum), fn, "x",
                  "every cell has total count 0 (" + std::to_string(x.rows()) +
                      " cells): there is no median library size to normalise to");
  result.size_factors.resize(result.totals.size());
  for (std::size_t i = 0; i < result.totals.size(); ++i) {
    const double total = result.totals[i] == 0.0 ? 1.0 : result.totals[i];
    result.size_factors[i] = total / result.target_sum;
  }
  const int threads = detail::effective_threads(detail::host_threads(policy), static_cast<double>(x.nnz()));
  detail::parallel_blocks(threads, detail::block_count(x.rows()), [&](int, index_t b) {
    const index_t last = std::min(x.rows(), (b + 1) * detail::block_rows);
    for (index_t i = b * detail::block_rows; i < last; ++i) {
      const double scale = 1.0 / result.size_factors[static_cast<std::size_t>(i)];
      for (index_t k = x.row_begin(i); k < x.row_end(i); ++k)
        x.values()[k] = static_cast<T>(static_cast<double>(x.values()[k]) * scale);
    }
  });
  return result;
}

/// x <- log1p(x) on the stored values, in place (see the file comment).
template <class Policy, class T, class Index, class Space>
void log1p(const Policy& policy, csr_view<T, Index, Space> x, const log1p_params& params = {}) {
  detail::check_host_policy<Policy, Space>();
  static_assert(!std::is_const_v<T> && detail::is_real_v<T>, "log1p: x must be a mutable float/double CSR view");
  if (params.base) {
    CELLKIT_EXPECTS(std::isfinite(*params.base) && *params.base > 0 && *params.base != 1, "log1p", "params.base",
                    "must be finite, > 0 and != 1, got " + detail::value_text(*params.base));
  }
  const double divisor = params.base ? std::log(*params.base) : 1.0;
  const int threads = detail::effective_threads(detail::host_threads(policy), static_cast<double>(x.nnz()) * 20);
  detail::parallel_blocks(threads, detail::block_count(x.rows()), [&](int, index_t b) {
    const index_t last = std::min(x.rows(), (b + 1) * detail::block_rows);
    const index_t begin = x.row_begin(b * detail::block_rows);
    const index_t end = x.row_end(last - 1);
    T* v = x.values();
    if (params.base) {
      for (index_t k = begin; k < end; ++k) v[k] = static_cast<T>(std::log1p(static_cast<double>(v[k])) / divisor);
    } else {
      for (index_t k = begin; k < end; ++k) v[k] = std::log1p(v[k]);
    }
  });
}

}  // namespace cellkit::preprocess
