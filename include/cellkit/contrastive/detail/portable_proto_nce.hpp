#pragma once
/// @file
/// ProtoNCE and the concentration estimate written once for every policy (internal): what the
/// `cuda` policy runs; host policies run proto_nce_impl.hpp's blocked engine and these only in the
/// tests. Per clustering: the logits S = U (C / phi)^T (N x K) by one `cellkit::gemm`, one functor
/// call per anchor for its denominator mask (the same Philox draws as the host), log-sum-exp and
/// row of dL/dS, then dU += G Cs and dCs = G^T U as two GEMMs. No atomics: repeated device runs
/// give the same bits; results agree with the host engine to rounding.

#include <cellkit/contrastive/detail/portable_common.hpp>
#include <cellkit/contrastive/detail/proto_nce_impl.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/math_impl.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/gemm.hpp>

#include <cstdint>
#include <limits>
#include <optional>

namespace cellkit::contrastive::detail {

/// inv_phi[j] = 1 / phi[j] (phi null: 1 / temperature).
template <class T>
struct inverse_concentration_fn {
  const T* phi;
  T temperature;
  T* inv_phi;
  CELLKIT_HD void operator()(index_t j) const { inv_phi[j] = T(1) / (phi != nullptr ? phi[j] : temperature); }
};

/// dst(j, m) = src(j, m) factor[j] (dst may be src: scaling in place).
template <class T, class Space>
struct scale_rows_fn {
  matrix_view<const T, Space> src;
  matrix_view<T, Space> dst;
  const T* factor;
  CELLKIT_HD void operator()(index_t e) const {
    const auto [j, m] = element_at(e, dst.cols());
    dst(j, m) = src(j, m) * factor[j];
  }
};

/// One anchor of one clustering: its denominator, row_loss[i] = lse_i - S_i,pos and, with
/// gradients, row i of S overwritten by scale (P_ij - [j = pos]) over the denominator.
template <class T, class L>
struct proto_row_fn {
  T* s;  ///< N x K, contiguous
  index_t k;
  const L* assignment;
  unsigned char* mask;  ///< N x K, or null when every prototype is in every denominator
  index_t negatives;
  std::uint64_t seed;
  std::uint32_t stream;
  bool gradients;
  T scale;
  double* row_loss;
  CELLKIT_HD void operator()(index_t i) const {
    T* row = s + i * k;
    const auto pos = static_cast<index_t>(assignment[i]);
    unsigned char* in = mask != nullptr ? mask + i * k : nullptr;
    if (in != nullptr) mark_denominator(in, k, pos, negatives, seed, stream, i);
    double mx = -std::numeric_limits<double>::infinity();
    for (index_t j = 0; j < k; ++j)
      if ((in == nullptr || in[j]) && static_cast<double>(row[j]) > mx) mx = static_cast<double>(row[j]);
    double sum = 0;
    for (index_t j = 0; j < k; ++j)
      if (in == nullptr || in[j]) sum += ::cellkit::math::detail::exp_(static_cast<double>(row[j]) - mx);
    const double lse = mx + ::cellkit::math::detail::log_(sum);
    row_loss[i] = lse - static_cast<double>(row[pos]);
    if (!gradients) return;
    for (index_t j = 0; j < k; ++j) {
      const double p =
          (in == nullptr || in[j]) ? ::cellkit::math::detail::exp_(static_cast<double>(row[j]) - lse) : 0.0;
      row[j] = static_cast<T>((p - (j == pos ? 1.0 : 0.0)) * static_cast<double>(scale));
    }
  }
};

/// One clustering (checked): adds its sum_i (lse_i - S_i,pos) to `loss`; with du (N x d, in
/// Space, accumulated) adds scale G Cs; with dc (K x d) writes dL/dc (through the concentration
/// and the normalisation).
template <class Policy, class T, class L, class Space>
void portable_proto_nce_clustering(const Policy& policy, const portable_normalized_rows<T, Space>& u,
                                   vector_view<const L, Space> assignments, matrix_view<const T, Space> centroids,
                                   const T* concentration, T temperature, T eps, index_t negatives, std::uint64_t seed,
                                   std::uint32_t stream, T scale, double& loss, std::optional<matrix_view<T, Space>> du,
                                   std::optional<matrix_view<T, Space>> dc) {
  const index_t n = u.rows;
  const index_t d = u.cols;
  const index_t k = centroids.rows();
  portable_normalized_rows<T, Space> c(k, d);
  portable_normalize_into(policy, centroids, eps, c, 0);
  auto inv_phi = make_scratch<T, Space>(k);
  for_each_index(policy, k, inverse_concentration_fn<T>{concentration, temperature, inv_phi.data()});
  auto cs = make_scratch<T, Space>(k * d);  // c_j / phi_j
  const matrix_view<T, Space> cs_view(cs.data(), k, d);
  for_each_index(policy, k * d, scale_rows_fn<T, Space>{c.view(), cs_view, inv_phi.data()});
  auto s = make_scratch<T, Space>(n * k);
  const matrix_view<T, Space> s_view(s.data(), n, k);
  gemm(policy, u.view(), matrix_view<const T, Space>(cs_view), s_view, gemm_params<T>{T(1), T(0), false, true});
  const bool sampled = negatives >= 0 && negatives < k - 1;
  auto mask = make_scratch<unsigned char, Space>(sampled ? n * k : 0);
  auto row_loss = make_scratch<double, Space>(n);
  for_each_index(policy, n,
                 proto_row_fn<T, L>{s.data(), k, assignments.data(), sampled ? mask.data() : nullptr, negatives, seed,
                                    stream, du.has_value() || dc.has_value(), scale, row_loss.data()});
  loss += portable_sum(policy, row_loss.data(), n);
  const matrix_view<const T, Space> g(s_view);
  if (du) gemm(policy, g, matrix_view<const T, Space>(cs_view), *du, gemm_params<T>{T(1), T(1), false, false});
  if (dc) {
    gemm(policy, g, u.view(), *dc, gemm_params<T>{T(1), T(0), true, false});
    for_each_index(policy, k * d, scale_rows_fn<T, Space>{matrix_view<const T, Space>(*dc), *dc, inv_phi.data()});
    portable_normalize_backward(policy, c, 0, *dc, T(1));
  }
  synchronize(policy);  // the scratch is freed on return
}

/// dist[i] = ||h_i - c_{a_i}||_2 (the squares summed in double, as the host's concentration).
template <class T, class L, class Space>
struct member_distance_fn {
  matrix_view<const T, Space> h;
  const L* assignment;
  matrix_view<const T, Space> c;
  double* dist;
  CELLKIT_HD void operator()(index_t i) const {
    const auto j = static_cast<index_t>(assignment[i]);
    double sq = 0;
    for (index_t m = 0; m < h.cols(); ++m) {
      const double diff = static_cast<double>(h(i, m)) - static_cast<double>(c(j, m));
      sq += diff * diff;
    }
    dist[i] = ::cellkit::math::detail::sqrt_(sq);
  }
};

/// first index i with assignment[i] outside [0, k), else no_element.
template <class L>
struct first_bad_assignment_fn {
  const L* assignment;
  index_t k;
  CELLKIT_HD index_t operator()(index_t i) const {
    const L a = assignment[i];
    return (a >= 0 && static_cast<index_t>(a) < k) ? no_element : i;
  }
};

/// first index j with phi[j] not positive and finite, else no_element.
template <class T>
struct first_bad_concentration_fn {
  const T* phi;
  CELLKIT_HD index_t operator()(index_t j) const {
    const T v = phi[j];
    return (v > T(0) && v <= std::numeric_limits<T>::max()) ? no_element : j;
  }
};

}  // namespace cellkit::contrastive::detail
