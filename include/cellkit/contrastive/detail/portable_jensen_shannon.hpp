#pragma once
/// @file
/// `jensen_shannon`'s evaluation for every policy (internal): one `CELLKIT_HD` functor per row over
/// `for_each_index`, calling the same row function as the host loop (jensen_shannon_row, which
/// recomputes log m in its gradient loop instead of keeping it in scratch), then the per-row
/// divergences summed by `portable_sum`. The `cuda` policy runs this; the host policies run their
/// own blocked loop and run this only in the tests (docs/design.md, item 12).
///
/// Each row is one functor call summing in index order (no atomics): a device run gives the same
/// bits every time, and agrees with the host loop to rounding (the final sum's tree differs).

#include <cellkit/contrastive/detail/jensen_shannon_impl.hpp>
#include <cellkit/contrastive/detail/portable_common.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/copy.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>

#include <optional>
#include <string>
#include <type_traits>

namespace cellkit::contrastive::detail {

/// Row i: its divergence into js[i], its gradients (times scale) into row i of gp / gq when given.
template <class T, class Space>
struct jensen_shannon_row_fn {
  matrix_view<const T, Space> x;
  matrix_view<const T, Space> y;
  matrix_view<T, Space> gp;  // empty when not requested
  matrix_view<T, Space> gq;
  double scale;
  double* js;
  CELLKIT_HD void operator()(index_t i) const {
    js[i] = jensen_shannon_row<T>(x.row_data(i), y.row_data(i), x.cols(), gp.empty() ? nullptr : gp.row_data(i),
                                  gq.empty() ? nullptr : gq.row_data(i), scale);
  }
};

/// Mean over rows of JS(softmax(x_i) || softmax(y_i)) and the gradients (arguments checked by the
/// caller: same shapes, N, K >= 1, finite). A row's gradient elements are written after the same
/// elements of the row were read, so the gradients may alias the inputs (same layout), as on the
/// host. Synchronises (the sum comes back to the host).
template <class Policy, class T, class Space>
double portable_jensen_shannon(const Policy& policy, matrix_view<const T, Space> logits_p,
                               matrix_view<const T, Space> logits_q, std::optional<matrix_view<T, Space>> grad_p,
                               std::optional<matrix_view<T, Space>> grad_q) {
  const index_t n = logits_p.rows();
  const double scale = 1.0 / static_cast<double>(n);
  auto row_js = make_scratch<double, Space>(n);
  for_each_index(policy, n,
                 jensen_shannon_row_fn<T, Space>{logits_p, logits_q, grad_p ? *grad_p : matrix_view<T, Space>(),
                                                 grad_q ? *grad_q : matrix_view<T, Space>(), scale, row_js.data()});
  const double total = portable_sum(policy, row_js.data(), n);  // synchronises
  return total * scale;
}

}  // namespace cellkit::contrastive::detail
