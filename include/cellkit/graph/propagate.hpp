#pragma once
/// @file
/// Message passing with a (normalised) adjacency: `Y = alpha A X + beta Y` and its transpose
/// `Y = alpha A^T X + beta Y`.
///
/// `propagate(policy, A, X, Y, {alpha, beta})` is `cellkit::spmm` with graph-named checks: A is
/// m x k (square for a graph, rectangular for a bipartite graph), X k x f, Y m x f.
///
/// `propagator<T, Index>` is the cacheable operator for repeated forward and backward passes: it
/// holds A (borrowed from a view, or owned when built from a `csr_graph&&`) and A^T, built **once**
/// by a stable counting sort (O(n + nnz)). The transpose product is then an ordinary row-parallel
/// CSR product, deterministic (no atomics): `propagate_transpose` gives the same bits for serial and
/// any thread count. When A is symmetric (checked exactly at construction, O(nnz log d), or asserted
/// by the caller) no transpose is built and A^T = A is shared.
///
/// Cost: 2 nnz f flops per product; memory traffic A once, one row of X per nonzero, Y once.
/// `propagate` on views runs under every policy (cuda: device views, asynchronous); the
/// `propagator` owns host memory and its calls take host policies and return when done. On the
/// device, keep A and A^T as device CSR views and call `propagate` with each.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/spmm.hpp>
#include <cellkit/graph/csr_graph.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/graph/detail/portable.hpp>

#include <optional>
#include <type_traits>
#include <utility>

namespace cellkit::graph {

/// What `propagator` may assume about A's symmetry.
enum class operator_symmetry {
  detect,     ///< test exactly (a_ij == a_ji bit for bit); build A^T only if A is not symmetric
  symmetric,  ///< the caller guarantees A = A^T (checked when CELLKIT_DEBUG_CHECKS is 1)
  general,    ///< always build A^T
};

/// Y = alpha A X + beta Y (see the file comment). Every policy: under `cuda` (device views) one
/// thread per element of Y sums its row of A in index order (no atomics: the same bits on every
/// run; unlike `cellkit::spmm`, which calls cuSPARSE); asynchronous on the policy's stream.
/// Errors: `dimension_mismatch` naming A, X and Y; with CELLKIT_DEBUG_CHECKS, `invalid_argument`
/// for a malformed host A.
template <class Policy, class TA, class Index, class TX, class T, class Space>
void propagate(const Policy& policy, csr_view<TA, Index, Space> a, matrix_view<TX, Space> x, matrix_view<T, Space> y,
               spmm_params<T> params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  static_assert(std::is_same_v<std::remove_const_t<TA>, T> && std::is_same_v<std::remove_const_t<TX>, T>,
                "propagate: A, X and Y must have the same element type");
  expect_shapes(a.cols() == x.rows(), "propagate", "A", a.shape(), "X", x.shape(), "A.cols must equal X.rows");
  expect_shapes(y.rows() == a.rows() && y.cols() == x.cols(), "propagate", "Y", y.shape(), "A X", {a.rows(), x.cols()},
                "Y must have the shape of A X");
  if constexpr (is_device_policy_v<Policy>) {
    detail::portable_propagate(policy, csr_view<const T, Index, Space>(a), matrix_view<const T, Space>(x), y, params);
  } else {
    detail::require_host_policy<Policy>();
    detail::debug_check_csr("propagate", "A", a);
    spmm(policy, a, x, y, params);
  }
}

/// `propagate` with the best host policy.
template <class TA, class Index, class TX, class T>
void propagate(csr_view<TA, Index> a, matrix_view<TX> x, matrix_view<T> y, spmm_params<T> params = {}) {
  propagate(default_host_policy(), a, x, y, params);
}

/// A and its transpose, for repeated `propagate` / `propagate_transpose` (see the file comment).
/// Move-only. A borrowed A must outlive the propagator.
template <class T, class Index = std::int32_t>
class propagator {
  static_assert(std::is_floating_point_v<T>, "propagator: T must be float or double");

 public:
  /// Borrows A (rows x cols; rectangular allowed). Checks A's structure (O(nnz)) and builds A^T
  /// unless A is symmetric per `symmetry`.
  explicit propagator(csr_view<const T, Index> a, operator_symmetry symmetry = operator_symmetry::detect) : a_(a) {
    detail::check_csr("propagator", "A", a);
    init(symmetry);
  }
  /// Takes ownership of a graph's adjacency.
  explicit propagator(csr_graph<T, Index>&& g, operator_symmetry symmetry = operator_symmetry::detect)
      : owned_(std::move(g).release()) {
    a_ = std::as_const(*owned_).view();
    init(symmetry);
  }
  /// Takes ownership of a CSR matrix (rectangular allowed).
  explicit propagator(csr_matrix<T, Index>&& m, operator_symmetry symmetry = operator_symmetry::detect)
      : owned_(std::move(m)) {
    a_ = std::as_const(*owned_).view();
    init(symmetry);
  }

  propagator(propagator&&) noexcept = default;
  propagator& operator=(propagator&&) noexcept = default;
  propagator(const propagator&) = delete;
  propagator& operator=(const propagator&) = delete;

  /// A.
  csr_view<const T, Index> matrix() const { return a_; }
  /// A^T (A itself when symmetric).
  csr_view<const T, Index> transpose() const { return symmetric_ ? a_ : std::as_const(*transposed_).view(); }
  bool is_symmetric() const { return symmetric_; }
  index_t rows() const { return a_.rows(); }
  index_t cols() const { return a_.cols(); }

 private:
  void init(operator_symmetry symmetry) {
    if (symmetry == operator_symmetry::symmetric) {
      expect_shapes(a_.rows() == a_.cols(), "propagator", "A", a_.shape(), "A", a_.shape(),
                    "a matrix declared symmetric must be square");
#if CELLKIT_DEBUG_CHECKS
      CELLKIT_EXPECTS(graph::is_symmetric(a_), "propagator", "A",
                      "declared operator_symmetry::symmetric but A is not symmetric");
#endif
      symmetric_ = true;
    } else if (symmetry == operator_symmetry::detect && graph::is_symmetric(a_)) {
      symmetric_ = true;
    } else {
      transposed_.emplace(graph::transpose(serial{}, a_));
    }
  }

  std::optional<csr_matrix<T, Index>> owned_;
  csr_view<const T, Index> a_;
  std::optional<csr_matrix<T, Index>> transposed_;
  bool symmetric_ = false;
};

/// Y = alpha A X + beta Y with the propagator's A.
template <class Policy, class T, class Index, class TX>
void propagate(const Policy& policy, const propagator<T, Index>& op, matrix_view<TX> x, matrix_view<T> y,
               spmm_params<T> params = {}) {
  propagate(policy, op.matrix(), x, y, params);
}

/// Y = alpha A^T X + beta Y with the propagator's cached transpose. Deterministic, no atomics.
template <class Policy, class T, class Index, class TX>
void propagate_transpose(const Policy& policy, const propagator<T, Index>& op, matrix_view<TX> x, matrix_view<T> y,
                         spmm_params<T> params = {}) {
  detail::require_host_policy<Policy>();
  static_assert(std::is_same_v<std::remove_const_t<TX>, T>, "propagate_transpose: X and Y must have the same type");
  const auto at = op.transpose();
  expect_shapes(at.cols() == x.rows(), "propagate_transpose", "A^T", at.shape(), "X", x.shape(),
                "A.rows must equal X.rows");
  expect_shapes(y.rows() == at.rows() && y.cols() == x.cols(), "propagate_transpose", "Y", y.shape(), "A^T X",
                {at.rows(), x.cols()}, "Y must have the shape of A^T X");
  spmm(policy, at, x, y, params);
}

/// `propagate_transpose` with the best host policy.
template <class T, class Index, class TX>
void propagate_transpose(const propagator<T, Index>& op, matrix_view<TX> x, matrix_view<T> y,
                         spmm_params<T> params = {}) {
  propagate_transpose(default_host_policy(), op, x, y, params);
}

}  // namespace cellkit::graph
