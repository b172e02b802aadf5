#pragma once
/// @file
/// Per-gene z-scoring with clipping (namespace `cellkit::preprocess`), as scanpy's `sc.pp.scale`.
/// Full description: docs/preprocess.md.
///
///     mean_j = (1/n) sum_i x_ij,   sd_j = sqrt( sum_i (x_ij - mean_j)^2 / (n - 1) ),  sd_j == 0 -> 1
///     out_ij = (x_ij - mean_j) / sd_j          (zero_center = true)
///     out_ij = x_ij / sd_j                     (zero_center = false)
///     then, with max_value = c: out_ij <- min(out_ij, c), and also max(out_ij, -c) when
///     zero_center and clip_negative (scanpy >= 1.10 and Seurat clip both sides; scanpy 1.9 clipped
///     only above: set clip_negative = false for it).
///
/// Input: a CSR matrix (the usual output of the HVG subset) or a dense matrix; output a dense
/// n x d matrix (any row stride). For dense input, `out` may be `x` itself (in place).
/// Returns the means and standard deviations used. Statistics in double over fixed row blocks
/// merged in order: identical for every policy and thread count. Cost O(n d) (two passes for the
/// statistics of dense input, one over the nonzeros for CSR, one write pass). Host only,
/// synchronous. Errors: `dimension_mismatch` when out is not n x d; `invalid_argument` for fewer
/// than 2 cells, a max_value that is NaN or <= 0, non-finite input values (with CELLKIT_DEBUG_CHECKS).

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/preprocess/detail/common.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::preprocess {

struct scale_params {
  bool zero_center = true;
  std::optional<double> max_value = std::nullopt;  ///< clip at this value (e.g. 10)
  bool clip_negative = true;                       ///< with zero_center, also clip below -max_value
};

struct scale_result {
  std::vector<double> mean;  ///< per gene
  std::vector<double> sd;    ///< per gene, zeros replaced by 1
};

namespace detail {

inline void check_scale_params(const scale_params& params, index_t rows) {
  constexpr const char* fn = "scale";
  CELLKIT_EXPECTS(rows >= 2, fn, "x", "needs at least 2 cells for a standard deviation, got " + std::to_string(rows));
  if (params.max_value) {
    CELLKIT_EXPECTS(!std::isnan(*params.max_value) && *params.max_value > 0, fn, "params.max_value",
                    "must be > 0, got " + value_text(*params.max_value));
  }
}

template <class T>
void scale_rows(int threads, index_t n, index_t d, const scale_result& stats, const scale_params& params,
                matrix_view<T> out) {
  const double hi = params.max_value.value_or(std::numeric_limits<double>::infinity());
  const double lo = params.zero_center && params.clip_negative ? -hi : -std::numeric_limits<double>::infinity();
  std::vector<double> inverse(static_cast<std::size_t>(d));
  for (index_t j = 0; j < d; ++j) inverse[static_cast<std::size_t>(j)] = stats.sd[static_cast<std::size_t>(j)];
  parallel_blocks(effective_threads(threads, static_cast<double>(n) * static_cast<double>(d)), block_count(n),
                  [&](int, index_t b) {
                    const index_t last = std::min(n, (b + 1) * block_rows);
                    for (index_t i = b * block_rows; i < last; ++i) {
                      T* row = out.row_data(i);
                      for (index_t j = 0; j < d; ++j) {
                        double v = static_cast<double>(row[j]);
                        if (params.zero_center) v -= stats.mean[static_cast<std::size_t>(j)];
                        v /= inverse[static_cast<std::size_t>(j)];
                        row[j] = static_cast<T>(std::clamp(v, lo, hi));
                      }
                    }
                  });
}

inline void finish_sd(scale_result& s, double n) {
  for (double& v : s.sd) {
    v = std::sqrt(v / (n - 1.0));
    if (v == 0.0) v = 1.0;
  }
}

}  // namespace detail

/// Dense x (n x d) -> out (n x d, may be x). See the file comment.
template <class Policy, class TX, class TO, class SX, class SO>
scale_result scale(const Policy& policy, matrix_view<TX, SX> x, matrix_view<TO, SO> out,
                   const scale_params& params = {}) {
  detail::check_host_policy<Policy, SX, SO>();
  using T = std::remove_const_t<TX>;
  static_assert(std::is_same_v<T, TO> && detail::is_real_v<T>,
                "scale: x and out must hold the same type, float or double");
  expect_shapes(out.rows() == x.rows() && out.cols() == x.cols(), "scale", "out", out.shape(), "x", x.shape(),
                "out must have the shape of x");
  detail::check_scale_params(params, x.rows());
  const index_t n = x.rows();
  const index_t d = x.cols();
#if CELLKIT_DEBUG_CHECKS
  cellkit::cluster::detail::expect_all_finite<T>(matrix_view<const T>(x), "scale", "x");
#endif
  const int threads = detail::host_threads(policy);
  const index_t blocks = detail::block_count(n);
  const int work_threads = detail::effective_threads(threads, static_cast<double>(n) * static_cast<double>(d));
  scale_result s;
  std::vector<double> partial(static_cast<std::size_t>(blocks * d), 0.0);
  auto block_sums = [&](auto term) {
    std::fill(partial.begin(), partial.end(), 0.0);
    detail::parallel_blocks(work_threads, blocks, [&](int, index_t b) {
      double* p = partial.data() + b * d;
      const index_t last = std::min(n, (b + 1) * detail::block_rows);
      for (index_t i = b * detail::block_rows; i < last; ++i) {
        const T* row = x.row_data(i);
        for (index_t j = 0; j < d; ++j) p[j] += term(static_cast<double>(row[j]), j);
      }
    });
    std::vector<double> total(static_cast<std::size_t>(d), 0.0);
    for (index_t b = 0; b < blocks; ++b)
      for (index_t j = 0; j < d; ++j)
        total[static_cast<std::size_t>(j)] += partial[static_cast<std::size_t>(b * d + j)];
    return total;
  };
  s.mean = block_sums([](double v, index_t) { return v; });
  for (double& m : s.mean) m /= static_cast<double>(n);
  s.sd = block_sums([&](double v, index_t j) {
    const double diff = v - s.mean[static_cast<std::size_t>(j)];
    return diff * diff;
  });
  detail::finish_sd(s, static_cast<double>(n));
  if (static_cast<const void*>(out.data()) != static_cast<const void*>(x.data())) {
    for (index_t i = 0; i < n; ++i) std::copy(x.row_data(i), x.row_data(i) + d, out.row_data(i));
  }
  detail::scale_rows<T>(threads, n, d, s, params, out);
  return s;
}

/// CSR x (n x d) -> dense out (n x d). See the file comment.
template <class Policy, class TX, class Index, class TO, class SX, class SO>
scale_result scale(const Policy& policy, csr_view<TX, Index, SX> x, matrix_view<TO, SO> out,
                   const scale_params& params = {}) {
  detail::check_host_policy<Policy, SX, SO>();
  using T = std::remove_const_t<TX>;
  static_assert(std::is_same_v<T, TO> && detail::is_real_v<T>,
                "scale: x and out must hold the same type, float or double");
  expect_shapes(out.rows() == x.rows() && out.cols() == x.cols(), "scale", "out", out.shape(), "x", x.shape(),
                "out must have the shape of x");
  detail::check_scale_params(params, x.rows());
  const csr_view<const T, Index> xc = x;
#if CELLKIT_DEBUG_CHECKS
  detail::expect_finite_values(xc, "scale", "x");
#endif
  const index_t n = x.rows();
  const index_t d = x.cols();
  const int threads = detail::host_threads(policy);
  scale_result s;
  detail::column_mean_var(
      threads, xc, [](double v) { return v; }, s.mean, s.sd);
  // column_mean_var returns the ddof = 1 variance; undo the n/(n-1) so finish_sd applies it once.
  for (double& v : s.sd) v *= static_cast<double>(n - 1);
  detail::finish_sd(s, static_cast<double>(n));
  detail::parallel_blocks(detail::effective_threads(threads, static_cast<double>(n) * static_cast<double>(d)),
                          detail::block_count(n), [&](int, index_t b) {
                            const index_t last = std::min(n, (b + 1) * detail::block_rows);
                            for (index_t i = b * detail::block_rows; i < last; ++i) {
                              T* row = out.row_data(i);
                              std::fill(row, row + d, T(0));
                              for (index_t k = xc.row_begin(i); k < xc.row_end(i); ++k)
                                row[static_cast<index_t>(xc.indices()[k])] = xc.values()[k];
                            }
                          });
  detail::scale_rows<T>(threads, n, d, s, params, out);
  return s;
}

}  // namespace cellkit::preprocess
