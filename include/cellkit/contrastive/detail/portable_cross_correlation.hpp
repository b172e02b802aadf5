#pragma once
/// @file
/// `cross_correlation_loss`'s evaluation for every policy (internal): the batch standardisation and
/// its backward pass as `CELLKIT_HD` functors over `for_each_index` (one column or one element per
/// call), the products with `cellkit::gemm` (cuBLAS on the device) and the loss with
/// `transform_reduce`. The `cuda` policy runs this; the host policies run their own kernels
/// (cross_correlation_impl.hpp, row-blocked GEMMs) and run this only in the tests (docs/design.md,
/// item 12).
///
/// Column statistics and the backward's column sums run over the rows in order, in double, exactly
/// as the host's; every output element is written by one functor call (no atomics), so a device run
/// gives the same bits every time. It agrees with the host kernels to rounding (the GEMMs and the
/// loss's summation tree differ).

#include <cellkit/contrastive/detail/portable_common.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/copy.hpp>
#include <cellkit/core/detail/math_impl.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>

#include <optional>

namespace cellkit::contrastive::detail {

/// Column k of z: mean[k] = (1/N) sum_n z_nk and inv_std[k] = 1 / sqrt(v_k + eps), v_k the sum of
/// squared deviations over `divisor` (N, or N - 1 when unbiased); rows in order, in double.
template <class T, class Space>
struct column_statistics_fn {
  matrix_view<const T, Space> z;
  double divisor;
  double eps;
  double* mean;
  double* inv_std;
  CELLKIT_HD void operator()(index_t k) const {
    const index_t n = z.rows();
    double sum = 0;
    for (index_t i = 0; i < n; ++i) sum += static_cast<double>(z(i, k));
    const double mu = sum / static_cast<double>(n);
    double var = 0;
    for (index_t i = 0; i < n; ++i) {
      const double c = static_cast<double>(z(i, k)) - mu;
      var += c * c;
    }
    mean[k] = mu;
    inv_std[k] = 1.0 / ::cellkit::math::detail::sqrt_(var / divisor + eps);
  }
};

/// zhat(i, k) = (z(i, k) - mean[k]) * inv_std[k] (zhat contiguous, N x d).
template <class T, class Space>
struct standardize_fn {
  matrix_view<const T, Space> z;
  const double* mean;
  const double* inv_std;
  T* zhat;
  CELLKIT_HD void operator()(index_t e) const {
    const auto [i, k] = element_at(e, z.cols());
    zhat[e] = static_cast<T>((static_cast<double>(z(i, k)) - mean[k]) * inv_std[k]);
  }
};

/// The loss's term of C(i, j): (1 - C_ii)^2 on the diagonal, lambda C_ij^2 off it.
template <class T>
struct cross_correlation_term_fn {
  const T* c;
  index_t d;
  double lambda;
  CELLKIT_HD double operator()(index_t e) const {
    const auto [i, j] = element_at(e, d);
    const double v = static_cast<double>(c[e]);
    return i == j ? (1.0 - v) * (1.0 - v) : lambda * (v * v);
  }
};

/// C(i, j) becomes dC(i, j) / N: -2 (1 - C_ii) on the diagonal, 2 lambda C_ij off it.
template <class T>
struct cross_correlation_dc_fn {
  T* c;
  index_t d;
  double lambda;
  double inv_n;
  CELLKIT_HD void operator()(index_t e) const {
    const auto [i, j] = element_at(e, d);
    const double v = static_cast<double>(c[e]);
    const double g = i == j ? -2.0 * (1.0 - v) : 2.0 * lambda * v;
    c[e] = static_cast<T>(g * inv_n);
  }
};

/// Column k of the backward's sums: sum_g[k] = sum_n g_nk, sum_gx[k] = sum_n g_nk zhat_nk (rows in
/// order, in double).
template <class T, class Space>
struct standardize_backward_sums_fn {
  matrix_view<const T, Space> g;
  const T* zhat;
  double* sum_g;
  double* sum_gx;
  CELLKIT_HD void operator()(index_t k) const {
    const index_t n = g.rows();
    const index_t d = g.cols();
    double s = 0, sx = 0;
    for (index_t i = 0; i < n; ++i) {
      const double gi = static_cast<double>(g(i, k));
      s += gi;
      sx += gi * static_cast<double>(zhat[i * d + k]);
    }
    sum_g[k] = s;
    sum_gx[k] = sx;
  }
};

/// g(i, k) = (g(i, k) - sum_g[k] / N - zhat(i, k) sum_gx[k] / M) * inv_std[k]: dL/dzhat becomes dL/dz.
template <class T, class Space>
struct standardize_backward_fn {
  matrix_view<T, Space> g;
  const T* zhat;
  const double* sum_g;
  const double* sum_gx;
  const double* inv_std;
  double n;
  double m;
  CELLKIT_HD void operator()(index_t e) const {
    const auto [i, k] = element_at(e, g.cols());
    g(i, k) = static_cast<T>(
        (static_cast<double>(g(i, k)) - sum_g[k] / n - static_cast<double>(zhat[e]) * sum_gx[k] / m) * inv_std[k]);
  }
};

/// The standardised copy of one view and its column statistics, in Space.
template <class T, class Space>
struct portable_standardized {
  decltype(make_scratch<T, Space>(0)) zhat;
  decltype(make_scratch<double, Space>(0)) mean;
  decltype(make_scratch<double, Space>(0)) inv_std;
  index_t rows, cols;

  template <class Policy>
  portable_standardized(const Policy& policy, matrix_view<const T, Space> z, T eps, bool unbiased)
      : zhat(make_scratch<T, Space>(z.rows() * z.cols())),
        mean(make_scratch<double, Space>(z.cols())),
        inv_std(make_scratch<double, Space>(z.cols())),
        rows(z.rows()),
        cols(z.cols()) {
    const double divisor = static_cast<double>(unbiased ? rows - 1 : rows);
    for_each_index(policy, cols,
                   column_statistics_fn<T, Space>{z, divisor, static_cast<double>(eps), mean.data(), inv_std.data()});
    for_each_index(policy, rows * cols, standardize_fn<T, Space>{z, mean.data(), inv_std.data(), zhat.data()});
  }

  matrix_view<const T, Space> view() const { return {zhat.data(), rows, cols}; }

  /// g holds dL/dzhat on entry and dL/dz on return (BatchNorm's backward, exact with eps).
  template <class Policy>
  void backward(const Policy& policy, matrix_view<T, Space> g, bool unbiased) const {
    auto sum_g = make_scratch<double, Space>(cols);
    auto sum_gx = make_scratch<double, Space>(cols);
    for_each_index(policy, cols, standardize_backward_sums_fn<T, Space>{g, zhat.data(), sum_g.data(), sum_gx.data()});
    for_each_index(
        policy, rows * cols,
        standardize_backward_fn<T, Space>{g, zhat.data(), sum_g.data(), sum_gx.data(), inv_std.data(),
                                          static_cast<double>(rows), static_cast<double>(unbiased ? rows - 1 : rows)});
    synchronize(policy);  // the sums' scratch is released on return
  }
};

/// Barlow Twins' loss of a and b (N x d each, arguments checked by the caller) and its gradients.
/// The inputs are read only while standardising, so the gradients may alias them. Synchronises.
template <class Policy, class T, class Space>
double portable_cross_correlation_loss(const Policy& policy, matrix_view<const T, Space> a,
                                       matrix_view<const T, Space> b, std::optional<matrix_view<T, Space>> grad_a,
                                       std::optional<matrix_view<T, Space>> grad_b, T lambda, T eps, bool unbiased) {
  const index_t n = a.rows();
  const index_t d = a.cols();
  const portable_standardized<T, Space> sa(policy, a, eps, unbiased);
  const portable_standardized<T, Space> sb(policy, b, eps, unbiased);
  auto c = make_scratch<T, Space>(d * d);
  const matrix_view<T, Space> cm(c.data(), d, d);
  // C = Zhat_a^T Zhat_b / N
  gemm(policy, sa.view(), sb.view(), cm,
       gemm_params<T>{static_cast<T>(1.0 / static_cast<double>(n)), T(0), true, false});
  const double lambda_d = static_cast<double>(lambda);
  const double loss =
      transform_reduce(policy, d * d, 0.0, plus_op{}, cross_correlation_term_fn<T>{c.data(), d, lambda_d});
  if (!grad_a && !grad_b) return loss;

  // dC / N, overwriting C
  for_each_index(policy, d * d, cross_correlation_dc_fn<T>{c.data(), d, lambda_d, 1.0 / static_cast<double>(n)});
  const matrix_view<const T, Space> dc(cm);
  if (grad_a) {  // dZhat_a = Zhat_b dC^T / N
    gemm(policy, sb.view(), dc, *grad_a, gemm_params<T>{T(1), T(0), false, true});
    sa.backward(policy, *grad_a, unbiased);
  }
  if (grad_b) {  // dZhat_b = Zhat_a dC / N
    gemm(policy, sa.view(), dc, *grad_b, gemm_params<T>{T(1), T(0), false, false});
    sb.backward(policy, *grad_b, unbiased);
  }
  synchronize(policy);
  return loss;
}

}  // namespace cellkit::contrastive::detail
