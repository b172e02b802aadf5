#pragma once
/// @file
/// The inner-product decoder's losses written once for every policy (internal): `cellkit::gemm`
/// for the dense products and `CELLKIT_HD` functors for the rest. The sampled loss's pair functor
/// (sampling, scores and coefficients per row) is also what the host function runs, so both draw
/// the same negatives. Every output is one functor call summing in a fixed order: no atomics.
///
/// Memory: the dense loss holds one block of rows of S (rows x n, rows chosen so that a block has
/// about 2^22 elements, at least 256 rows) in T and its loss terms in double; the sampled loss holds
/// nnz (1 + negatives) pairs. The sampled gradient groups the pairs by their second endpoint with a
/// counting sort on the host: on the device the partners are copied back and the grouping copied
/// over (O(nnz (1 + negatives)), synchronises).

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/functors.hpp>
#include <cellkit/core/detail/scratch.hpp>
#include <cellkit/core/detail/transfer.hpp>
#include <cellkit/core/math.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/graph/detail/structure_on.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

namespace cellkit::graph {

enum class reconstruction_loss { bce, squared };

namespace detail {

using cellkit::detail::element_at;

/// l(s, a) and dl/ds, in T.
template <class T>
struct reconstruction_term {
  reconstruction_loss loss;
  T pos_weight;
  CELLKIT_HD void operator()(T s, T a, T& value, T& derivative) const {
    const T sig = math::sigmoid(s);
    if (loss == reconstruction_loss::bce) {
      value = -(pos_weight * a * math::log_sigmoid(s) + (T(1) - a) * math::log_sigmoid(-s));
      derivative = sig * (pos_weight * a + T(1) - a) - pos_weight * a;
    } else {
      const T r = sig - a;
      value = r * r;
      derivative = T(2) * r * sig * (T(1) - sig);
    }
  }
};

inline constexpr index_t decoder_block_rows = 256;

/// Position of `key` in the sorted range [first, last), or -1.
template <class Index>
CELLKIT_HD index_t find_sorted(const Index* first, const Index* last, Index key) {
  const Index* lo = first;
  const Index* hi = last;
  while (lo < hi) {
    const Index* mid = lo + (hi - lo) / 2;
    if (*mid < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < last && *lo == key ? static_cast<index_t>(lo - first) : index_t(-1);
}

/// m(i, j) = sigma(m(i, j)).
template <class T, class Space>
struct sigmoid_fn {
  matrix_view<T, Space> m;
  CELLKIT_HD void operator()(index_t e) const {
    const auto [i, j] = element_at(e, m.cols());
    m(i, j) = math::sigmoid(m(i, j));
  }
};

/// For S = Z_block Z^T (rows first .. first + S.rows of the pairs): terms(r, j) = l(s_ij, a_ij), and
/// with `gradient` S(r, j) = (dl/ds(s_ij, a_ij) + dl/ds(s_ij, a_ji)) scale, a_ij looked up in A's
/// sorted row i and a_ji in row j.
template <class T, class Index, class Space>
struct dense_terms_fn {
  csr_view<const T, Index, Space> a;
  matrix_view<T, Space> s;
  double* terms;
  index_t first;
  reconstruction_term<T> term;
  T scale;
  bool gradient;
  CELLKIT_HD T target(index_t i, index_t j) const {
    const Index* row = a.indices() + a.row_begin(i);
    const index_t p = find_sorted(row, a.indices() + a.row_end(i), static_cast<Index>(j));
    return p < 0 ? T(0) : a.values()[a.row_begin(i) + p];
  }
  CELLKIT_HD void operator()(index_t e) const {
    const auto [r, j] = element_at(e, s.cols());
    const index_t i = first + r;
    T value, g;
    term(s(r, j), target(i, j), value, g);
    terms[e] = static_cast<double>(value);
    if (gradient) {
      T value_t, g_t;
      term(s(r, j), target(j, i), value_t, g_t);
      s(r, j) = (g + g_t) * scale;
    }
  }
};

/// out[first + r] = sum_j terms(r, j), columns in order.
struct row_term_sums_fn {
  const double* terms;
  index_t cols;
  index_t first;
  double* out;
  CELLKIT_HD void operator()(index_t r) const {
    double sum = 0;
    for (index_t j = 0; j < cols; ++j) sum += terms[r * cols + j];
    out[first + r] = sum;
  }
};

/// inner_product_loss_dense's evaluation (arguments checked by the caller).
template <class Policy, class T, class Index, class Space>
T portable_inner_product_loss_dense(const Policy& policy, matrix_view<const T, Space> z,
                                    csr_view<const T, Index, Space> a, std::optional<matrix_view<T, Space>> dz,
                                    reconstruction_term<T> term) {
  const index_t n = z.rows();
  if (n == 0) return T(0);
  const index_t b = std::min(n, std::max(decoder_block_rows, (index_t(1) << 22) / n));
  auto s = cellkit::detail::make_scratch<T, Space>(b * n);
  auto terms = cellkit::detail::make_scratch<double, Space>(b * n);
  auto row_loss = cellkit::detail::make_scratch<double, Space>(n);
  const T scale = T(1) / (static_cast<T>(n) * static_cast<T>(n));
  for (index_t first = 0; first < n; first += b) {
    const index_t rows = std::min(b, n - first);
    const matrix_view<T, Space> sv(s.data(), rows, n);
    gemm(policy, z.row_block(first, rows), z, sv, gemm_params<T>{.transpose_b = true});
    for_each_index(policy, rows * n,
                   dense_terms_fn<T, Index, Space>{a, sv, terms.data(), first, term, scale, dz.has_value()});
    for_each_index(policy, rows, row_term_sums_fn{terms.data(), n, first, row_loss.data()});
    if (dz) gemm(policy, matrix_view<const T, Space>(sv), z, dz->row_block(first, rows));
  }
  const double total = cellkit::detail::portable_sum(policy, row_loss.data(), n);
  return static_cast<T>(total / (static_cast<double>(n) * static_cast<double>(n)));
}

/// The pairs of row i's entries (see decoders.hpp): slot e (1 + m) is entry e (target 1), slots
/// e (1 + m) + 1 + r its negatives (partner -1 when none was found). Writes owner, partner and
/// dl/ds per slot, and the row's summed loss terms and negative count.
template <class T, class Index, class Space>
struct sampled_pairs_row_fn {
  csr_view<const T, Index, Space> a;
  matrix_view<const T, Space> z;
  reconstruction_term<T> term;
  index_t negatives;
  std::uint64_t seed;
  std::uint32_t stream;
  std::int64_t* owner;
  std::int64_t* partner;
  T* coefficient;
  double* row_pos;
  double* row_neg;
  index_t* row_neg_count;
  CELLKIT_HD T dot(index_t i, index_t j) const {
    T s = T(0);
    for (index_t c = 0; c < z.cols(); ++c) s += z(i, c) * z(j, c);
    return s;
  }
  CELLKIT_HD void operator()(index_t i) const {
    const index_t n = z.rows();
    const index_t per = 1 + negatives;
    const Index* first = a.indices() + a.row_begin(i);
    const Index* last = a.indices() + a.row_end(i);
    const index_t degree = last - first;
    double pos = 0, neg = 0;
    index_t neg_count = 0;
    for (index_t e = a.row_begin(i); e < a.row_end(i); ++e) {
      const auto j = static_cast<index_t>(a.indices()[e]);
      T value, g;
      term(dot(i, j), T(1), value, g);
      pos += static_cast<double>(value);
      owner[e * per] = i;
      partner[e * per] = j;
      coefficient[e * per] = g;
      for (index_t r = 0; r < negatives; ++r) {
        const index_t slot = e * per + 1 + r;
        owner[slot] = i;
        partner[slot] = -1;
        coefficient[slot] = T(0);
        if (degree + 1 >= n) continue;  // no non-neighbour exists
        philox_engine eng(seed, stream, static_cast<std::uint64_t>(e * negatives + r));
        for (int attempt = 0; attempt < 32; ++attempt) {
          const double x = static_cast<double>(n) * (1.0 - uniform<double>(eng));
          const double top = static_cast<double>(n - 1);
          const auto jn = static_cast<index_t>(x < top ? x : top);
          if (jn == i || find_sorted(first, last, static_cast<Index>(jn)) >= 0) continue;
          partner[slot] = jn;
          T nv, ng;
          term(dot(i, jn), T(0), nv, ng);
          neg += static_cast<double>(nv);
          ++neg_count;
          coefficient[slot] = ng;
          break;
        }
      }
    }
    row_pos[i] = pos;
    row_neg[i] = neg;
    row_neg_count[i] = neg_count;
  }
};

/// dz(i, c) = sum over the pairs with first endpoint i (row i's slots, in order) of k z(partner, c),
/// then over those with second endpoint i (by_partner order) of k z(owner, c); k = dl/ds scaled by
/// 1 / #positives or 1 / #negatives.
template <class T, class Index, class Space>
struct sampled_gradient_fn {
  const Index* indptr;
  index_t per;
  const std::int64_t* owner;
  const std::int64_t* partner;
  const T* coefficient;
  const index_t* by_partner_ptr;
  const index_t* by_partner;
  T pos_scale, neg_scale;
  matrix_view<const T, Space> z;
  matrix_view<T, Space> dz;
  CELLKIT_HD T coef(index_t s) const { return coefficient[s] * (s % per == 0 ? pos_scale : neg_scale); }
  CELLKIT_HD void operator()(index_t e) const {
    const auto [i, c] = element_at(e, dz.cols());
    T sum = T(0);
    for (index_t s = static_cast<index_t>(indptr[i]) * per; s < static_cast<index_t>(indptr[i + 1]) * per; ++s) {
      if (partner[s] < 0) continue;
      sum += coef(s) * z(static_cast<index_t>(partner[s]), c);
    }
    for (index_t q = by_partner_ptr[i]; q < by_partner_ptr[i + 1]; ++q) {
      const index_t s = by_partner[q];
      sum += coef(s) * z(static_cast<index_t>(owner[s]), c);
    }
    dz(i, c) = sum;
  }
};

/// The slots grouped by their partner (stable counting sort of the host copy of `partner`):
/// ptr (n + 1) and the slot list.
inline void group_by_partner(const std::vector<std::int64_t>& partner, index_t n, std::vector<index_t>& ptr,
                             std::vector<index_t>& slots) {
  ptr.assign(static_cast<std::size_t>(n + 1), 0);
  for (const auto p : partner)
    if (p >= 0) ++ptr[static_cast<std::size_t>(p + 1)];
  for (index_t i = 0; i < n; ++i) ptr[static_cast<std::size_t>(i + 1)] += ptr[static_cast<std::size_t>(i)];
  slots.assign(static_cast<std::size_t>(ptr[static_cast<std::size_t>(n)]), 0);
  std::vector<index_t> next(ptr.begin(), ptr.end() - 1);
  for (std::size_t s = 0; s < partner.size(); ++s)
    if (partner[s] >= 0)
      slots[static_cast<std::size_t>(next[static_cast<std::size_t>(partner[s])]++)] = static_cast<index_t>(s);
}

/// inner_product_loss_sampled's evaluation (arguments checked by the caller).
template <class Policy, class T, class Index, class Space>
T portable_inner_product_loss_sampled(const Policy& policy, matrix_view<const T, Space> z,
                                      csr_view<const T, Index, Space> a, std::optional<matrix_view<T, Space>> dz,
                                      reconstruction_term<T> term, index_t negatives, std::uint64_t seed,
                                      std::uint32_t stream) {
  using cellkit::detail::make_scratch;
  const index_t n = z.rows();
  const index_t nnz = a.nnz();
  const index_t per = 1 + negatives;
  const index_t pairs = nnz * per;
  auto owner = make_scratch<std::int64_t, Space>(pairs);
  auto partner = make_scratch<std::int64_t, Space>(pairs);
  auto coefficient = make_scratch<T, Space>(pairs);
  auto row_pos = make_scratch<double, Space>(n);
  auto row_neg = make_scratch<double, Space>(n);
  auto row_neg_count = make_scratch<index_t, Space>(n);
  for_each_index(
      policy, n,
      sampled_pairs_row_fn<T, Index, Space>{a, z, term, negatives, seed, stream, owner.data(), partner.data(),
                                            coefficient.data(), row_pos.data(), row_neg.data(), row_neg_count.data()});
  const double pos = cellkit::detail::portable_sum(policy, row_pos.data(), n);
  const double neg = cellkit::detail::portable_sum(policy, row_neg.data(), n);
  const auto neg_count = static_cast<index_t>(cellkit::detail::portable_sum(policy, row_neg_count.data(), n));
  const double loss =
      (nnz > 0 ? pos / static_cast<double>(nnz) : 0.0) + (neg_count > 0 ? neg / static_cast<double>(neg_count) : 0.0);
  if (!dz) return static_cast<T>(loss);
  std::vector<index_t> ptr_host, slots_host;
  group_by_partner(cellkit::detail::download(policy, vector_view<const std::int64_t, Space>(partner.data(), pairs)), n,
                   ptr_host, slots_host);
  const auto by_partner_ptr = cellkit::detail::upload<Space>(policy, ptr_host);
  const auto by_partner = cellkit::detail::upload<Space>(policy, slots_host);
  const T pos_scale = nnz > 0 ? T(1) / static_cast<T>(nnz) : T(0);
  const T neg_scale = neg_count > 0 ? T(1) / static_cast<T>(neg_count) : T(0);
  for_each_index(
      policy, dz->rows() * dz->cols(),
      sampled_gradient_fn<T, Index, Space>{a.indptr(), per, owner.data(), partner.data(), coefficient.data(),
                                           by_partner_ptr.data(), by_partner.data(), pos_scale, neg_scale, z, *dz});
  return static_cast<T>(loss);
}

}  // namespace detail
}  // namespace cellkit::graph
