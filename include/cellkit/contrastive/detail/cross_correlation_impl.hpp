#pragma once
/// @file
/// Internals of cellkit/contrastive/cross_correlation.hpp: the batch standardisation of a view's
/// columns (BatchNorm1d without affine parameters, training mode) and its exact backward pass.

#include <cellkit/contrastive/detail/common.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace cellkit::contrastive::detail {

/// Column statistics and the standardised copy of one view.
template <class T>
struct standardized {
  host_buffer<T> zhat;          ///< N x d, contiguous
  std::vector<double> inv_std;  ///< 1 / sqrt(v_k + eps)
};

template <class T>
standardized<T> standardize(int threads, matrix_view<const T> z, T eps, bool unbiased) {
  const index_t n = z.rows();
  const index_t d = z.cols();
  standardized<T> out{host_buffer<T>(n * d, uninitialized), std::vector<double>(static_cast<std::size_t>(d))};
  std::vector<double> mean(static_cast<std::size_t>(d), 0.0), var(static_cast<std::size_t>(d), 0.0);
  for (index_t i = 0; i < n; ++i) {
    const T* row = z.row_data(i);
    for (index_t k = 0; k < d; ++k) mean[static_cast<std::size_t>(k)] += static_cast<double>(row[k]);
  }
  for (double& m : mean) m /= static_cast<double>(n);
  for (index_t i = 0; i < n; ++i) {
    const T* row = z.row_data(i);
    for (index_t k = 0; k < d; ++k) {
      const double c = static_cast<double>(row[k]) - mean[static_cast<std::size_t>(k)];
      var[static_cast<std::size_t>(k)] += c * c;
    }
  }
  const double divisor = static_cast<double>(unbiased ? n - 1 : n);
  for (index_t k = 0; k < d; ++k) {
    out.inv_std[static_cast<std::size_t>(k)] =
        1.0 / std::sqrt(var[static_cast<std::size_t>(k)] / divisor + static_cast<double>(eps));
  }
  parallel_blocks(threads, (n + 511) / 512, [&](index_t block) {
    const index_t last = std::min(n, (block + 1) * 512);
    for (index_t i = block * 512; i < last; ++i) {
      const T* row = z.row_data(i);
      T* dst = out.zhat.data() + i * d;
      for (index_t k = 0; k < d; ++k) {
        dst[k] = static_cast<T>((static_cast<double>(row[k]) - mean[static_cast<std::size_t>(k)]) *
                                out.inv_std[static_cast<std::size_t>(k)]);
      }
    }
  });
  return out;
}

/// g holds dL/dzhat on entry and dL/dz on return (BatchNorm's backward, exact with eps).
template <class T>
void standardize_backward(const standardized<T>& s, matrix_view<T> g, bool unbiased) {
  const index_t n = g.rows();
  const index_t d = g.cols();
  std::vector<double> sum_g(static_cast<std::size_t>(d), 0.0), sum_gx(static_cast<std::size_t>(d), 0.0);
  for (index_t i = 0; i < n; ++i) {
    const T* gi = g.row_data(i);
    const T* xi = s.zhat.data() + i * d;
    for (index_t k = 0; k < d; ++k) {
      sum_g[static_cast<std::size_t>(k)] += static_cast<double>(gi[k]);
      sum_gx[static_cast<std::size_t>(k)] += static_cast<double>(gi[k]) * static_cast<double>(xi[k]);
    }
  }
  const double m = static_cast<double>(unbiased ? n - 1 : n);
  for (index_t i = 0; i < n; ++i) {
    T* gi = g.row_data(i);
    const T* xi = s.zhat.data() + i * d;
    for (index_t k = 0; k < d; ++k) {
      const auto kk = static_cast<std::size_t>(k);
      gi[k] = static_cast<T>((static_cast<double>(gi[k]) - sum_g[kk] / static_cast<double>(n) -
                              static_cast<double>(xi[k]) * sum_gx[kk] / m) *
                             s.inv_std[kk]);
    }
  }
}

}  // namespace cellkit::contrastive::detail
