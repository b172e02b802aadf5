#pragma once
/// @file
/// Inner-product graph decoder (GAE, Kipf and Welling 2016; scDEFER): A_rec = sigma(Z Z^T), its
/// reconstruction loss against a target graph A and the gradient with respect to the embedding Z.
///
/// With s_ij = z_i . z_j and target a_ij (the stored value of A's entry (i, j), 0 when absent;
/// expected in [0, 1]):
/// - `bce`: l(s, a) = -[w a log sigma(s) + (1 - a) log(1 - sigma(s))], w = `pos_weight`
///   (GAE's pos_weight); dl/ds = sigma(s) (w a + 1 - a) - w a. Evaluated with log_sigmoid (no
///   overflow, no log(0)).
/// - `squared` (scDEFER): l(s, a) = (sigma(s) - a)^2; dl/ds = 2 (sigma(s) - a) sigma(s) (1 - sigma(s)).
///
/// Dense (`inner_product_loss_dense`, small n): L = (1/n^2) sum_{i,j} l(s_ij, a_ij) over all n^2
/// pairs; dZ = (G + G^T) Z with G_ij = dl/ds_ij / n^2. Computed in row blocks of 256: per block one
/// serial GEMM for S (256 x n) and one for dZ, so memory is O(256 n), never n x n; the sum over
/// blocks is in block order. Cost 4 n^2 d flops (+ n^2 sigmoid/log). n = 0: L = 0 (no pairs).
///
/// Sampled (`inner_product_loss_sampled`, large n; GAE's training with negative sampling): the
/// positives are A's stored entries (i, j) (target 1, the stored values are not used), and each
/// positive (i, j) draws `negatives` pairs (i, j') with j' uniform over the nodes that are neither
/// i nor a neighbour of i (Philox element = entry position * negatives + r, stream `stream`; up to
/// 32 redraws, then the pair is skipped). L = mean over positives of l(s, 1) + mean over negatives of
/// l(s, 0). dZ accumulates per pair c z_j into row i and c z_i into row j, grouped per row in a fixed
/// order (no atomics). Cost O(nnz (1 + negatives) d).
///
/// Z and A have the same element type T. Both return L and, when `dz` is given, **overwrite** dZ = dL/dZ. Deterministic
/// for every thread count. Every policy: `serial`, `openmp` and, with device views, `cuda` (the portable evaluation in
/// detail/portable_decoders.hpp, which draws the same negatives; the dense loss there takes blocks of about 2^22
/// elements). Calls return when done: on the device A's structure is copied back for its check, and the sampled
/// gradient copies the pairs' partners back to group them (O(n + nnz (1 + negatives)), synchronises). Errors: shape
/// mismatches (`dimension_mismatch`), a malformed A, pos_weight <= 0, negatives < 0 (`invalid_argument`).

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/detail/args.hpp>
#include <cellkit/graph/detail/common.hpp>
#include <cellkit/graph/detail/portable_decoders.hpp>
#include <cellkit/graph/detail/transpose.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::graph {

template <class T>
struct decoder_params {
  reconstruction_loss loss = reconstruction_loss::bce;
  T pos_weight = T(1);       ///< bce only
  index_t negatives = 1;     ///< sampled only: negatives per positive
  std::uint64_t seed = 0;    ///< sampled only
  std::uint32_t stream = 0;  ///< sampled only
};

/// sigma(Z Z^T) as a dense n x n matrix (small n). Cost 2 n^2 d flops.
template <class Policy, class T, class Space>
void inner_product_decode(const Policy& policy, const_matrix_arg<T, Space> z, matrix_view<T, Space> out) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  const index_t n = z.rows();
  expect_shapes(out.rows() == n && out.cols() == n, "inner_product_decode", "out", out.shape(), "Z Z^T", {n, n},
                "out is n x n");
  if constexpr (is_device_policy_v<Policy>) {
    gemm(policy, z, z, out, gemm_params<T>{.transpose_b = true});
    for_each_index(policy, n * n, detail::sigmoid_fn<T, Space>{out});
  } else {
    detail::require_host_policy<Policy>();
    const index_t b = detail::decoder_block_rows;
    detail::parallel_for(policy, (n + b - 1) / b, [&](index_t blk) {
      const index_t first = blk * b, rows = std::min(b, n - first);
      gemm(serial{}, z.row_block(first, rows), z, out.row_block(first, rows), gemm_params<T>{.transpose_b = true});
      for (index_t i = first; i < first + rows; ++i)
        for (index_t j = 0; j < n; ++j) out(i, j) = math::sigmoid(out(i, j));
    });
  }
}

/// Dense reconstruction loss and gradient (see the file comment).
template <class Policy, class TA, class Index, class Space, class T = std::remove_const_t<TA>>
T inner_product_loss_dense(const Policy& policy, const_matrix_arg<T, Space> z, csr_view<TA, Index, Space> a,
                           optional_matrix_out<T, Space> dz, decoder_params<T> params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "inner_product_loss_dense";
  const index_t n = z.rows();
  const index_t d = z.cols();
  expect_shapes(a.rows() == n && a.cols() == n, fn, "A", a.shape(), "Z", z.shape(), "A must be n x n for n rows of Z");
  if (dz) expect_shapes(dz->rows() == n && dz->cols() == d, fn, "dZ", dz->shape(), "Z", z.shape(), "dZ has Z's shape");
  CELLKIT_EXPECTS(params.pos_weight > T(0), fn, "params.pos_weight", "must be > 0");
  const detail::reconstruction_term<T> term{params.loss, params.pos_weight};
  if constexpr (is_device_policy_v<Policy>) {
    detail::check_structure_on(policy, fn, "A", csr_view<const T, Index, Space>(a));
    return detail::portable_inner_product_loss_dense(policy, z, csr_view<const T, Index, Space>(a), dz, term);
  } else {
    detail::require_host_policy<Policy>();
    csr_view<const T, Index> av(a);
    detail::check_csr(fn, "A", av);
    if (n == 0) return T(0);  // no pairs (the mean over n^2 = 0 pairs is taken as 0, as on the device)
    const auto t = detail::build_transpose_map(av);
    const index_t b = detail::decoder_block_rows;
    const index_t blocks = (n + b - 1) / b;
    std::vector<double> partial(static_cast<std::size_t>(blocks), 0.0);
    const T scale = T(1) / (static_cast<T>(n) * static_cast<T>(n));
    detail::parallel_for(
        policy, blocks,
        [&](index_t blk) {
          const index_t first = blk * b, rows = std::min(b, n - first);
          host_buffer<T> s(rows * n, uninitialized), target(n), target_t(n);
          auto sv = s.as_matrix(rows, n);
          gemm(serial{}, z.row_block(first, rows), z, sv, gemm_params<T>{.transpose_b = true});
          double loss = 0;
          for (index_t r = 0; r < rows; ++r) {
            const index_t i = first + r;
            // Dense targets of row i of A and of A^T (= column i of A).
            for (index_t p = av.row_begin(i); p < av.row_end(i); ++p)
              target[static_cast<index_t>(av.indices()[p])] = av.values()[p];
            for (index_t q = static_cast<index_t>(t.indptr[i]); q < static_cast<index_t>(t.indptr[i + 1]); ++q)
              target_t[static_cast<index_t>(t.indices[q])] = av.values()[static_cast<index_t>(t.source[q])];
            T* row = sv.row_data(r);
            double row_loss = 0;
            for (index_t j = 0; j < n; ++j) {
              T value, g, value_t, g_t;
              term(row[j], target[j], value, g);
              row_loss += static_cast<double>(value);
              if (dz) {
                term(row[j], target_t[j], value_t, g_t);
                row[j] = (g + g_t) * scale;  // (G + G^T)_ij
              }
            }
            loss += row_loss;
            for (index_t p = av.row_begin(i); p < av.row_end(i); ++p)
              target[static_cast<index_t>(av.indices()[p])] = T(0);
            for (index_t q = static_cast<index_t>(t.indptr[i]); q < static_cast<index_t>(t.indptr[i + 1]); ++q)
              target_t[static_cast<index_t>(t.indices[q])] = T(0);
          }
          partial[static_cast<std::size_t>(blk)] = loss;
          if (dz) gemm(serial{}, matrix_view<const T>(sv), z, dz->row_block(first, rows));
        },
        true);
    double total = 0;
    for (double p : partial) total += p;
    return static_cast<T>(total / (static_cast<double>(n) * static_cast<double>(n)));
  }
}

/// Sampled reconstruction loss and gradient (see the file comment).
template <class Policy, class TA, class Index, class Space, class T = std::remove_const_t<TA>>
T inner_product_loss_sampled(const Policy& policy, const_matrix_arg<T, Space> z, csr_view<TA, Index, Space> a,
                             optional_matrix_out<T, Space> dz, decoder_params<T> params = {}) {
  cellkit::detail::check_policy_and_spaces<Policy, Space>();
  constexpr const char* fn = "inner_product_loss_sampled";
  const index_t n = z.rows();
  const index_t d = z.cols();
  expect_shapes(a.rows() == n && a.cols() == n, fn, "A", a.shape(), "Z", z.shape(), "A must be n x n for n rows of Z");
  if (dz) expect_shapes(dz->rows() == n && dz->cols() == d, fn, "dZ", dz->shape(), "Z", z.shape(), "dZ has Z's shape");
  CELLKIT_EXPECTS(params.pos_weight > T(0), fn, "params.pos_weight", "must be > 0");
  CELLKIT_EXPECTS(params.negatives >= 0, fn, "params.negatives", "must be >= 0");
  const detail::reconstruction_term<T> term{params.loss, params.pos_weight};
  const csr_view<const T, Index, Space> av(a);
  if constexpr (is_device_policy_v<Policy>) {
    detail::check_structure_on(policy, fn, "A", av);
    return detail::portable_inner_product_loss_sampled(policy, z, av, dz, term, params.negatives, params.seed,
                                                       params.stream);
  } else {
    detail::require_host_policy<Policy>();
    detail::check_csr(fn, "A", av);
    const index_t nnz = av.nnz();
    const index_t m = params.negatives;
    const index_t per = 1 + m;
    // Pairs: slot e * per is positive entry e, slots e * per + 1 + r its negatives (-1: none found).
    std::vector<std::int64_t> partner(static_cast<std::size_t>(nnz * per));
    host_buffer<std::int64_t> owner(nnz * per, uninitialized);
    host_buffer<T> coefficient(nnz * per);
    std::vector<double> row_pos(static_cast<std::size_t>(n)), row_neg(static_cast<std::size_t>(n));
    std::vector<index_t> row_neg_count(static_cast<std::size_t>(n));
    const detail::sampled_pairs_row_fn<T, Index, host_space> pairs_of_row{av,
                                                                          z,
                                                                          term,
                                                                          m,
                                                                          params.seed,
                                                                          params.stream,
                                                                          owner.data(),
                                                                          partner.data(),
                                                                          coefficient.data(),
                                                                          row_pos.data(),
                                                                          row_neg.data(),
                                                                          row_neg_count.data()};
    detail::parallel_for(policy, n, [&](index_t i) { pairs_of_row(i); });
    double pos = 0, neg = 0;
    index_t neg_count = 0;
    for (index_t i = 0; i < n; ++i) {
      pos += row_pos[static_cast<std::size_t>(i)];
      neg += row_neg[static_cast<std::size_t>(i)];
      neg_count += row_neg_count[static_cast<std::size_t>(i)];
    }
    const double loss =
        (nnz > 0 ? pos / static_cast<double>(nnz) : 0.0) + (neg_count > 0 ? neg / static_cast<double>(neg_count) : 0.0);
    if (!dz) return static_cast<T>(loss);
    const T pos_scale = nnz > 0 ? T(1) / static_cast<T>(nnz) : T(0);
    const T neg_scale = neg_count > 0 ? T(1) / static_cast<T>(neg_count) : T(0);
    std::vector<index_t> by_partner_ptr, by_partner;
    detail::group_by_partner(partner, n, by_partner_ptr, by_partner);
    auto coef = [&](index_t s) { return coefficient[s] * (s % per == 0 ? pos_scale : neg_scale); };
    detail::parallel_for(policy, n, [&](index_t i) {
      T* out = dz->row_data(i);
      for (index_t c = 0; c < d; ++c) out[c] = T(0);
      // As first endpoint: the pairs of row i's entries, in entry order.
      for (index_t s = av.row_begin(i) * per; s < av.row_end(i) * per; ++s) {
        if (partner[static_cast<std::size_t>(s)] < 0) continue;
        const T k = coef(s);
        const T* zj = z.row_data(partner[static_cast<std::size_t>(s)]);
        for (index_t c = 0; c < d; ++c) out[c] += k * zj[c];
      }
      // As second endpoint.
      for (index_t q = by_partner_ptr[static_cast<std::size_t>(i)]; q < by_partner_ptr[static_cast<std::size_t>(i + 1)];
           ++q) {
        const index_t s = by_partner[static_cast<std::size_t>(q)];
        const T k = coef(s);
        const T* zo = z.row_data(owner[s]);
        for (index_t c = 0; c < d; ++c) out[c] += k * zo[c];
      }
    });
    return static_cast<T>(loss);
  }
}

}  // namespace cellkit::graph
