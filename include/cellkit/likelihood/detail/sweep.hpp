#pragma once
/// @file
/// The fused value-and-gradient sweep behind nb_nll / zinb_nll / poisson_nll and the *_log_prob
/// arrays (not a public interface). One pass over the cells x genes elements computes every
/// requested output; written once over for_each_index / transform_reduce, so every backend runs the
/// same code.
///
/// Work items are blocks of consecutive rows (cells). Within a row the elements are visited in
/// column order and the row's loss is summed in a fixed order (in double: 8 interleaved lanes on the
/// host, sequential on the device), so:
/// - the dense and the CSR paths give bit-identical results (the CSR path computes the x = 0 kernel
///   for the columns between two stored entries, the x > 0 kernel at the entries);
/// - the total is transform_reduce over the row sums, and the per-gene sums (per_gene, d_theta of a
///   per-gene theta) add one partial per (row block, gene), then the blocks in order. The blocking
///   depends on the number of rows only, so every result is bit-identical for serial and any
///   OpenMP thread count.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/functors.hpp>
#include <cellkit/core/detail/scratch.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/for_each.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/execution/reduce.hpp>
#include <cellkit/likelihood/detail/common.hpp>
#include <cellkit/likelihood/detail/nb_kernels.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>

namespace cellkit::likelihood::detail {

template <class T, model_kind Kind>
struct model {
  static constexpr bool has_theta = has_theta_v<Kind>;
  static constexpr bool has_pi = has_pi_v<Kind>;
  static constexpr bool logits = Kind == model_kind::zinb_logits;
};

using cellkit::detail::make_scratch;

using cellkit::detail::fill_fn;

template <class T>
struct prepare_theta_fn {
  const T* theta;
  nb_theta<T>* out;
  T* inv_theta;  // the same 1/theta as a plain array (vector loads in the host x = 0 pass)
  CELLKIT_HD void operator()(index_t j) const {
    out[j] = nb_theta<T>::make(theta[j]);
    inv_theta[j] = out[j].inv_theta;
  }
};

// ---------------------------------------------------------------------------------------------------
// the sweep

/// The host gathers a row's x > 0 elements in chunks of this many for the vectorised positive_kernel,
/// in positive_arrays arrays of T (inputs x, mu, theta, 1/theta, stirlerr(theta), phi(theta), pi;
/// outputs log p, d mu, d theta, d pi, pi, fallback).
inline constexpr index_t positive_chunk = 256;
inline constexpr index_t positive_arrays = 13;

/// Everything a work item reads and writes (plain pointers: trivially copyable to the device).
template <class T, class C, class Index, class Mask>
struct sweep_data {
  index_t rows = 0;
  index_t cols = 0;
  // counts: dense (x) or CSR (indptr != nullptr)
  const C* x = nullptr;
  index_t x_stride = 0;
  const Index* indptr = nullptr;
  const Index* indices = nullptr;
  const C* values = nullptr;
  // parameters
  const T* mu = nullptr;
  index_t mu_stride = 0;
  const T* theta = nullptr;  // row stride 0 when per gene
  index_t theta_stride = 0;
  const nb_theta<T>* theta_pre = nullptr;  // per-gene precomputed terms, or null
  const T* inv_theta = nullptr;            // per-gene 1/theta (with theta_pre)
  const T* pi = nullptr;
  index_t pi_stride = 0;
  const T* size_factors = nullptr;
  const Mask* mask = nullptr;
  index_t mask_stride = 0;
  // outputs (null = not requested)
  T* d_mu = nullptr;
  index_t d_mu_stride = 0;
  T* d_theta = nullptr;  // per element
  index_t d_theta_stride = 0;
  T* d_pi = nullptr;
  index_t d_pi_stride = 0;
  T* log_prob = nullptr;
  index_t log_prob_stride = 0;
  T* per_cell = nullptr;
  double* row_loss = nullptr;      // rows
  double* gene_loss = nullptr;     // blocks x cols partial sums, or null
  double* gene_d_theta = nullptr;  // blocks x cols partial sums of -dlogp/dtheta, or null
  index_t rows_per_block = 1;
  T* row_scratch = nullptr;          // host: 3 x cols values of T per block (loss, d_theta, sink)
  T* positive_scratch = nullptr;     // host: positive_arrays x positive_chunk values of T per block
  index_t* positive_cols = nullptr;  // host: positive_chunk columns per block
  T grad_scale = T(1);
  T ridge = T(0);
  bool want_theta = false;
};

template <class T, model_kind Kind, bool Csr, bool Grad, class C, class Index, class Mask>
struct sweep_fn {
  using M = model<T, Kind>;
  sweep_data<T, C, Index, Mask> d;

  /// The theta terms of element (i, j) with count x: precomputed per gene, or for this element only
  /// what its kernel reads (the x = 0 kernels no special function, x > 0 see theta_for_positive).
  CELLKIT_HD nb_theta<T> theta_at(index_t i, index_t j, T x) const {
    if constexpr (M::has_theta) {
      if (d.theta_pre != nullptr) return d.theta_pre[j];
      const T theta = d.theta[i * d.theta_stride + j];
      return x == T(0) ? nb_theta<T>::make_light(theta) : theta_for_positive(theta, x, d.want_theta);
    } else {
      (void)i;
      (void)j;
      (void)x;
      return nb_theta<T>{};
    }
  }

  CELLKIT_HD T pi_at(index_t i, index_t j) const {
    if constexpr (M::has_pi) {
      return d.pi[i * d.pi_stride + j];
    } else {
      (void)i;
      (void)j;
      return T(0);
    }
  }

  CELLKIT_HD bool included(index_t i, index_t j) const {
    return d.mask == nullptr || d.mask[i * d.mask_stride + j] != Mask(0);
  }

  /// The loss of an element and the derivative of the ridge term with respect to the pi parameter.
  CELLKIT_HD T ridge_of(T prob) const {
    if constexpr (M::has_pi) return d.ridge * prob * prob;
    (void)prob;
    return T(0);
  }
  CELLKIT_HD T ridge_grad_of(T prob) const {
    if constexpr (M::has_pi) return T(2) * d.ridge * prob * (M::logits ? prob * (T(1) - prob) : T(1));
    (void)prob;
    return T(0);
  }

  /// One element, all outputs (device path, and the host's x > 0 and fallback fix-ups write through
  /// `store`). `dtheta_out` receives -d log p / d theta (unscaled) for the per-gene partials.
  CELLKIT_HD void store(index_t i, index_t j, T sf, const zinb_value_grad<T>& r, T prob, T& loss_out,
                        T& dtheta_out) const {
    if (d.log_prob != nullptr) d.log_prob[i * d.log_prob_stride + j] = r.log_prob;
    const bool in = included(i, j);
    loss_out = in ? -r.log_prob + ridge_of(prob) : T(0);
    dtheta_out = in ? -r.d_theta : T(0);
    if constexpr (Grad) {
      const T g = in ? d.grad_scale : T(0);
      if (d.d_mu != nullptr) d.d_mu[i * d.d_mu_stride + j] = in ? -r.d_mu * sf * g : T(0);
      if (d.d_theta != nullptr) d.d_theta[i * d.d_theta_stride + j] = in ? -r.d_theta * g : T(0);
      if (d.d_pi != nullptr) d.d_pi[i * d.d_pi_stride + j] = in ? (ridge_grad_of(prob) - r.d_pi) * g : T(0);
    }
  }

  /// Element (i, j) with count x through the scalar kernels.
  CELLKIT_HD void element(index_t i, index_t j, T x, T sf, T& loss_out, T& dtheta_out) const {
    const T mu = sf * d.mu[i * d.mu_stride + j];
    const T p = pi_at(i, j);
    const nb_theta<T> th = theta_at(i, j, x);
    T prob = T(0);
    zinb_value_grad<T> r;
    if (x == T(0)) {
      const zero_result<T> z = zero_element<T, Kind, Grad>(mu, th, p, d.want_theta);
      r = z.r;
      prob = z.pi;
    } else {
      r = positive_element<T, Kind, Grad>(x, mu, th, p, d.want_theta);
      if constexpr (M::has_pi) prob = M::logits ? math::sigmoid(p) : p;
    }
    store(i, j, sf, r, prob, loss_out, dtheta_out);
  }

  CELLKIT_HD void operator()(index_t block) const {
    const index_t first = block * d.rows_per_block;
    const index_t last = first + d.rows_per_block < d.rows ? first + d.rows_per_block : d.rows;
#if CELLKIT_DEVICE_CODE
    for (index_t i = first; i < last; ++i) device_row(i, block);
#else
    for (index_t i = first; i < last; ++i) host_row(i, block);
#endif
  }

  /// Device: element by element in column order (one thread per row block).
  CELLKIT_HD void device_row(index_t i, index_t block) const {
    const T sf = d.size_factors != nullptr ? d.size_factors[i] : T(1);
    double acc = 0.0;
    auto one = [&](index_t j, T x) {
      T loss;
      T dth;
      element(i, j, x, sf, loss, dth);
      acc += static_cast<double>(loss);
      if (d.gene_loss != nullptr) d.gene_loss[block * d.cols + j] += static_cast<double>(loss);
      if (d.gene_d_theta != nullptr) d.gene_d_theta[block * d.cols + j] += static_cast<double>(dth);
    };
    if constexpr (Csr) {
      const index_t end = static_cast<index_t>(d.indptr[i + 1]);
      index_t j = 0;
      for (index_t q = static_cast<index_t>(d.indptr[i]); q <= end; ++q) {
        const index_t next = q < end ? static_cast<index_t>(d.indices[q]) : d.cols;
        for (; j < next; ++j) one(j, T(0));
        if (q < end) {
          one(next, static_cast<T>(d.values[q]));
          j = next + 1;
        }
      }
    } else {
      for (index_t j = 0; j < d.cols; ++j) one(j, static_cast<T>(d.x[i * d.x_stride + j]));
    }
    d.row_loss[i] = acc;
    if (d.per_cell != nullptr) d.per_cell[i] = static_cast<T>(acc);
  }

  /// The row pointers of the host x = 0 pass (passed by value: a loop reading them through a lambda's
  /// captured references reloads them every iteration and does not vectorise).
  struct zero_rows {
    const T* mu;
    const T* theta;
    const T* inv_theta;
    const T* pi;
    const Mask* mask;
    T* log_prob;
    T* loss;
    T* dth;
    T* d_mu;
    T* d_pi;
    T* d_theta;
  };

  /// The host x = 0 pass over one row: zero_kernel for every column, outputs stored with selects.
  /// Returns nonzero when some element needs the careful form (zero_result::fallback).
  template <bool Masked, bool PerGene, bool Want>
  static int zero_pass(const zero_rows rw, const index_t cols, const T sf, const T scale, const T ridge) {
    const T* CELLKIT_RESTRICT mu_row = rw.mu;
    const T* CELLKIT_RESTRICT theta_row = rw.theta;
    const T* CELLKIT_RESTRICT inv_row = rw.inv_theta;
    const T* CELLKIT_RESTRICT pi_row = rw.pi;
    const Mask* CELLKIT_RESTRICT mask_row = rw.mask;
    T* CELLKIT_RESTRICT lp_row = rw.log_prob;
    T* CELLKIT_RESTRICT loss_row = rw.loss;
    T* CELLKIT_RESTRICT dth_row = rw.dth;
    T* dmu_row = rw.d_mu;  // (these three may share the sink row when not requested)
    T* dpi_row = rw.d_pi;
    T* dthe_row = rw.d_theta;
    int fallback = 0;
#if CELLKIT_HAS_OPENMP
#pragma omp simd reduction(| : fallback)
#endif
    for (index_t j = 0; j < cols; ++j) {
      const T theta = theta_row[j];
      T inv_theta;
      if constexpr (PerGene) {
        inv_theta = inv_row[j];
      } else {
        inv_theta = T(1) / theta;
      }
      const zero_result<T> z = zero_kernel<T, Kind, Grad>(sf * mu_row[j], theta, inv_theta, pi_row[j], Want);
      fallback |= z.fallback ? 1 : 0;
      bool in = true;
      if constexpr (Masked) in = mask_row[j] != Mask(0);
      // (all operations unconditional, results selected: see zero_kernel)
      lp_row[j] = z.r.log_prob;
      T loss = -z.r.log_prob;
      if constexpr (M::has_pi) loss += ridge * z.pi * z.pi;
      const T minus_dth = -z.r.d_theta;
      loss_row[j] = sel(in, loss, T(0));
      dth_row[j] = sel(in, minus_dth, T(0));
      if constexpr (Grad) {
        const T g_mu = -z.r.d_mu * sf * scale;
        T dp = -z.r.d_pi;
        if constexpr (M::has_pi) dp += T(2) * ridge * z.pi * (M::logits ? z.pi * (T(1) - z.pi) : T(1));
        const T g_pi = dp * scale;
        const T g_th = minus_dth * scale;
        dmu_row[j] = sel(in, g_mu, T(0));
        dpi_row[j] = sel(in, g_pi, T(0));
        dthe_row[j] = sel(in, g_th, T(0));
      }
    }
    return fallback;
  }

  /// One chunk of gathered x > 0 elements (host): the inputs, gathered, and positive_kernel's outputs.
  struct positive_buffers {
    T* x;
    T* mu;
    T* theta;
    T* inv_theta;
    T* stirlerr_theta;
    T* phi_theta;
    T* pi;
    T* log_prob;
    T* d_mu;
    T* d_theta;
    T* d_pi;
    T* prob;
    T* fallback;
  };

  positive_buffers positive_chunk_of(index_t block) const {
    T* base = d.positive_scratch + block * positive_arrays * positive_chunk;
    auto at = [&](int a) { return base + a * positive_chunk; };
    return {at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7), at(8), at(9), at(10), at(11), at(12)};
  }

  /// positive_kernel over the gathered elements [first, last): a loop without control flow,
  /// instantiated per (per-gene theta, d_theta wanted, small integer counts) so that it vectorises.
  /// (Restrict-qualified parameters: GCC 12 does not vectorise the loop when the same pointers are
  /// restrict-qualified locals copied from a struct.)
  template <bool PerGene, bool Want, bool SmallInt>
  static void positive_pass(const T* CELLKIT_RESTRICT x, const T* CELLKIT_RESTRICT mu, const T* CELLKIT_RESTRICT theta,
                            const T* CELLKIT_RESTRICT inv_theta, const T* CELLKIT_RESTRICT stirlerr_theta,
                            const T* CELLKIT_RESTRICT phi_theta, const T* CELLKIT_RESTRICT pi,
                            T* CELLKIT_RESTRICT log_prob, T* CELLKIT_RESTRICT d_mu, T* CELLKIT_RESTRICT d_theta,
                            T* CELLKIT_RESTRICT d_pi, T* CELLKIT_RESTRICT prob, T* CELLKIT_RESTRICT fallback,
                            const index_t first, const index_t last) {
    for (index_t q = first; q < last; ++q) {
      const T th = theta[q];
      T inv;
      T st;
      T ph = T(0);
      if constexpr (PerGene) {
        inv = inv_theta[q];
        st = stirlerr_theta[q];
        if constexpr (Want && !SmallInt) ph = phi_theta[q];
      } else {
        // (an invalid theta falls back to the scalar form; keep the special functions' arguments tame)
        const T th_ok = sel((th > T(0)) & (th < inf_v<T>()), th, T(1));
        inv = T(1) / th;
        st = stirlerr_select(th_ok);
        if constexpr (Want && !SmallInt) ph = phi_select(th_ok);
      }
      const positive_result<T> r = positive_kernel<T, Kind, Grad, Want, SmallInt>(x[q], mu[q], th, inv, st, ph, pi[q]);
      log_prob[q] = r.r.log_prob;
      d_mu[q] = r.r.d_mu;
      d_theta[q] = r.r.d_theta;
      d_pi[q] = r.r.d_pi;
      prob[q] = r.pi;
      fallback[q] = sel(r.fallback, T(1), T(0));
    }
  }

  /// One gathered chunk of row i: slots [0, small_end) hold small integer counts (or all counts when
  /// d_theta is not wanted), slots [general_begin, positive_chunk) the others; columns in `cols`,
  /// counts in b.x. Gathers their parameters, runs positive_pass on both parts, and stores each
  /// element's outputs (the scalar element() for those positive_kernel leaves to it).
  void positive_flush(index_t i, const index_t* cols, const positive_buffers b, index_t small_end,
                      index_t general_begin, T sf, T* loss_row, T* dth_row) const {
    const T* mu_row = d.mu + i * d.mu_stride;
    const bool per_gene = d.theta_pre != nullptr;
    const T* theta_row = per_gene ? d.theta : d.theta + i * d.theta_stride;
    auto gather = [&](index_t q) {
      const index_t j = cols[q];
      b.mu[q] = sf * mu_row[j];
      b.theta[q] = theta_row[j];
      if (per_gene) {
        b.inv_theta[q] = d.inv_theta[j];
        b.stirlerr_theta[q] = d.theta_pre[j].stirlerr_theta;
        b.phi_theta[q] = d.theta_pre[j].phi_theta;
      }
      b.pi[q] = M::has_pi ? d.pi[i * d.pi_stride + j] : T(0);
    };
    for (index_t q = 0; q < small_end; ++q) gather(q);
    for (index_t q = general_begin; q < positive_chunk; ++q) gather(q);
    auto run = [&](auto gene_theta, auto want, auto small_int, index_t first, index_t last) {
      if (first < last) {
        positive_pass<decltype(gene_theta)::value, decltype(want)::value, decltype(small_int)::value>(
            b.x, b.mu, b.theta, b.inv_theta, b.stirlerr_theta, b.phi_theta, b.pi, b.log_prob, b.d_mu, b.d_theta, b.d_pi,
            b.prob, b.fallback, first, last);
      }
    };
    auto with_gene = [&](auto gene_theta) {
      if (d.want_theta) {
        run(gene_theta, std::true_type{}, std::true_type{}, 0, small_end);
        run(gene_theta, std::true_type{}, std::false_type{}, general_begin, positive_chunk);
      } else {
        run(gene_theta, std::false_type{}, std::true_type{}, 0, small_end);
      }
    };
    if (per_gene) {
      with_gene(std::true_type{});
    } else {
      with_gene(std::false_type{});
    }
    auto put = [&](index_t q) {
      const index_t j = cols[q];
      if (b.fallback[q] != T(0)) {
        element(i, j, b.x[q], sf, loss_row[j], dth_row[j]);
      } else if constexpr (M::logits) {
        const T p = b.pi[q];
        const zinb_value_grad<T> r = zinb_positive<T, Grad, true>({b.log_prob[q], b.d_mu[q], b.d_theta[q]}, p);
        store(i, j, sf, r, math::sigmoid(p), loss_row[j], dth_row[j]);
      } else {
        store(i, j, sf, {b.log_prob[q], b.d_mu[q], b.d_theta[q], b.d_pi[q]}, b.prob[q], loss_row[j], dth_row[j]);
      }
    };
    for (index_t q = 0; q < small_end; ++q) put(q);
    for (index_t q = general_begin; q < positive_chunk; ++q) put(q);
  }

  /// Host: (1) the branch-free x = 0 kernel over the whole row in a vectorisable loop, into the
  /// block's scratch row (loss, -dlogp/dtheta) and the outputs; (2) fix-ups: the careful x = 0 form
  /// where (1) asked for it, and the x > 0 kernel at the nonzero counts (CSR entries, or a scan of the
  /// dense row); (3) the row sum in column order and the per-gene partials. Dense and CSR run the same
  /// three passes, so they agree bit for bit.
  void host_row(index_t i, index_t block) const {
    const index_t cols = d.cols;
    T* CELLKIT_RESTRICT loss_row = d.row_scratch + block * 3 * cols;
    T* CELLKIT_RESTRICT dth_row = loss_row + cols;
    T* CELLKIT_RESTRICT sink = dth_row + cols;
    const T sf = d.size_factors != nullptr ? d.size_factors[i] : T(1);
    const T* CELLKIT_RESTRICT mu_row = d.mu + i * d.mu_stride;
    const T* CELLKIT_RESTRICT pi_row = M::has_pi ? d.pi + i * d.pi_stride : mu_row;
    const bool theta_gene = d.theta_pre != nullptr;
    const T* CELLKIT_RESTRICT theta_row = M::has_theta ? (theta_gene ? d.theta : d.theta + i * d.theta_stride) : mu_row;
    const T* CELLKIT_RESTRICT inv_row = theta_gene ? d.inv_theta : theta_row;
    const Mask* CELLKIT_RESTRICT mask_row = d.mask != nullptr ? d.mask + i * d.mask_stride : nullptr;
    T* CELLKIT_RESTRICT lp_row = d.log_prob != nullptr ? d.log_prob + i * d.log_prob_stride : sink;
    T* CELLKIT_RESTRICT dmu_row = (Grad && d.d_mu != nullptr) ? d.d_mu + i * d.d_mu_stride : sink;
    T* CELLKIT_RESTRICT dpi_row = (Grad && d.d_pi != nullptr) ? d.d_pi + i * d.d_pi_stride : sink;
    T* CELLKIT_RESTRICT dthe_row = (Grad && d.d_theta != nullptr) ? d.d_theta + i * d.d_theta_stride : sink;
    const T scale = d.grad_scale;
    const bool want_theta = d.want_theta;
    const T ridge = d.ridge;

    // (1) x = 0 everywhere: a loop without control flow, instantiated per (mask, per-gene theta,
    // d_theta wanted) so that it vectorises.
    const zero_rows rw{mu_row,   theta_row, inv_row, pi_row,  mask_row, lp_row,
                       loss_row, dth_row,   dmu_row, dpi_row, dthe_row};
    int fallback = 0;
    auto with_theta = [&](auto has_mask, auto gene_theta) {
      if (want_theta) {
        fallback = zero_pass<decltype(has_mask)::value, decltype(gene_theta)::value, true>(rw, cols, sf, scale, ridge);
      } else {
        fallback = zero_pass<decltype(has_mask)::value, decltype(gene_theta)::value, false>(rw, cols, sf, scale, ridge);
      }
    };
    auto with_gene = [&](auto has_mask) {
      if (theta_gene) {
        with_theta(has_mask, std::true_type{});
      } else {
        with_theta(has_mask, std::false_type{});
      }
    };
    if (mask_row != nullptr) {
      with_gene(std::true_type{});
    } else {
      with_gene(std::false_type{});
    }

    // (2a) the careful x = 0 form where the branch-free kernel asked for it (rare)
    if (fallback != 0) {
      for (index_t j = 0; j < cols; ++j) {
        const T theta = theta_row[j];
        const T inv_theta = theta_gene ? inv_row[j] : T(1) / theta;
        if (zero_kernel<T, Kind, Grad>(sf * mu_row[j], theta, inv_theta, pi_row[j], want_theta).fallback) {
          element(i, j, T(0), sf, loss_row[j], dth_row[j]);
        }
      }
    }
    // (2b) the nonzero counts: NB and ZINB gather them in chunks for the vectorised positive_kernel;
    // Poisson element by element
    if constexpr (M::has_theta) {
      const positive_buffers b = positive_chunk_of(block);
      index_t* CELLKIT_RESTRICT chunk_cols = d.positive_cols + block * positive_chunk;
      // small integer counts fill the chunk from the front, the others from the back (d_theta takes
      // a different form for each)
      index_t small_end = 0;
      index_t general_begin = positive_chunk;
      const bool sort = d.want_theta;
      auto add = [&](index_t j, T x) {
        const index_t q = (!sort || small_integer_count(x)) ? small_end++ : --general_begin;
        chunk_cols[q] = j;
        b.x[q] = x;
        if (small_end == general_begin) {
          positive_flush(i, chunk_cols, b, small_end, general_begin, sf, loss_row, dth_row);
          small_end = 0;
          general_begin = positive_chunk;
        }
      };
      if constexpr (Csr) {
        const index_t end = static_cast<index_t>(d.indptr[i + 1]);
        for (index_t q = static_cast<index_t>(d.indptr[i]); q < end; ++q) {
          const auto x = static_cast<T>(d.values[q]);
          if (x != T(0)) add(static_cast<index_t>(d.indices[q]), x);
        }
      } else {
        // the nonzero columns of each segment, found without a data-dependent branch (at ~10%
        // nonzeros a branch per column mispredicts often enough to cost more than the compaction)
        const C* CELLKIT_RESTRICT x_row = d.x + i * d.x_stride;
        index_t found[positive_chunk];
        for (index_t j0 = 0; j0 < cols; j0 += positive_chunk) {
          const index_t len = cols - j0 < positive_chunk ? cols - j0 : positive_chunk;
          index_t count = 0;
          for (index_t l = 0; l < len; ++l) {
            found[count] = j0 + l;
            count += static_cast<T>(x_row[j0 + l]) != T(0) ? 1 : 0;
          }
          for (index_t t = 0; t < count; ++t) add(found[t], static_cast<T>(x_row[found[t]]));
        }
      }
      if (small_end > 0 || general_begin < positive_chunk)
        positive_flush(i, chunk_cols, b, small_end, general_begin, sf, loss_row, dth_row);
    } else if constexpr (Csr) {
      const index_t end = static_cast<index_t>(d.indptr[i + 1]);
      for (index_t q = static_cast<index_t>(d.indptr[i]); q < end; ++q) {
        const auto j = static_cast<index_t>(d.indices[q]);
        const auto x = static_cast<T>(d.values[q]);
        if (x != T(0)) element(i, j, x, sf, loss_row[j], dth_row[j]);
      }
    } else {
      const C* CELLKIT_RESTRICT x_row = d.x + i * d.x_stride;
      for (index_t j = 0; j < cols; ++j) {
        const auto x = static_cast<T>(x_row[j]);
        if (x != T(0)) element(i, j, x, sf, loss_row[j], dth_row[j]);
      }
    }

    // (3) the row sum (8 interleaved lanes: column j goes to lane j % 8, lanes combined pairwise; a
    // fixed order, the same for dense and CSR); per-gene partials
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    index_t j0 = 0;
    for (; j0 + 8 <= cols; j0 += 8) {
      for (int l = 0; l < 8; ++l) lane[l] += static_cast<double>(loss_row[j0 + l]);
    }
    for (index_t j = j0; j < cols; ++j) lane[j - j0] += static_cast<double>(loss_row[j]);
    const double acc = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    d.row_loss[i] = acc;
    if (d.per_cell != nullptr) d.per_cell[i] = static_cast<T>(acc);
    if (d.gene_loss != nullptr) {
      double* CELLKIT_RESTRICT g = d.gene_loss + block * cols;
      for (index_t j = 0; j < cols; ++j) g[j] += static_cast<double>(loss_row[j]);
    }
    if (d.gene_d_theta != nullptr) {
      double* CELLKIT_RESTRICT g = d.gene_d_theta + block * cols;
      for (index_t j = 0; j < cols; ++j) g[j] += static_cast<double>(dth_row[j]);
    }
  }
};

/// Sums the per-block partials of gene j: out[j] = scale * sum_b partial[b * cols + j] (blocks in order).
template <class T>
struct gene_sum_fn {
  const double* partial;
  index_t blocks;
  index_t cols;
  double scale;
  T* out;
  CELLKIT_HD void operator()(index_t j) const {
    double s = 0.0;
    for (index_t b = 0; b < blocks; ++b) s += partial[b * cols + j];
    out[j] = static_cast<T>(s * scale);
  }
};

struct read_double_fn {
  const double* data;
  CELLKIT_HD double operator()(index_t i) const { return data[i]; }
};

template <class Mask>
struct mask_count_fn {
  const Mask* mask;
  index_t stride;
  index_t cols;
  CELLKIT_HD double operator()(index_t i) const {
    double n = 0.0;
    for (index_t j = 0; j < cols; ++j) n += mask[i * stride + j] != Mask(0) ? 1.0 : 0.0;
    return n;
  }
};

// ---------------------------------------------------------------------------------------------------
// per-element input checks: the index of the first offending element (or max when none)

inline constexpr index_t no_index = std::numeric_limits<index_t>::max();

enum class check_rule { count, mean, theta, probability, logit, size_factor, mask01 };

template <class V>
struct first_bad_fn {
  const V* data;
  index_t stride;
  index_t cols;
  check_rule rule;
  CELLKIT_HD index_t operator()(index_t k) const {
    const index_t i = k / cols;
    const index_t j = k - i * cols;
    const V v = data[i * stride + j];
    bool ok = true;
    if constexpr (std::is_floating_point_v<V>) {
      switch (rule) {
        case check_rule::count:
        case check_rule::mean:
        case check_rule::size_factor:
          ok = v >= V(0) && v - v == V(0);
          break;
        case check_rule::theta:
          ok = v > V(0);
          break;  // +inf allowed (Poisson limit), NaN fails
        case check_rule::probability:
          ok = v >= V(0) && v <= V(1);
          break;
        case check_rule::logit:
          ok = v == v;
          break;
        case check_rule::mask01:
          ok = v == V(0) || v == V(1);
          break;
      }
    } else if constexpr (std::is_signed_v<V> && !std::is_same_v<V, bool>) {
      ok = rule == check_rule::mask01 ? (v == V(0) || v == V(1)) : v >= V(0);
    }
    return ok ? no_index : k;
  }
};

inline const char* rule_text(check_rule rule) {
  switch (rule) {
    case check_rule::count:
      return "counts must be finite and >= 0";
    case check_rule::mean:
      return "means must be finite and >= 0";
    case check_rule::theta:
      return "theta must be > 0 (+inf is the Poisson limit)";
    case check_rule::probability:
      return "pi must be in [0, 1]";
    case check_rule::logit:
      return "pi logits must not be NaN";
    case check_rule::size_factor:
      return "size factors must be finite and >= 0";
    case check_rule::mask01:
      return "mask values must be 0 or 1";
  }
  return "";
}

/// Throws invalid_argument naming `argument` and the first offending element of a rows x cols array.
template <class Policy, class V, class Space>
void check_elements(const Policy& policy, const char* function, const char* argument, const V* data, index_t rows,
                    index_t cols, index_t stride, check_rule rule, bool is_vector = false) {
  if (rows == 0 || cols == 0) return;
  const index_t bad =
      transform_reduce(policy, rows * cols, no_index, min_op{}, first_bad_fn<V>{data, stride, cols, rule});
  if (bad == no_index) return;
  const index_t i = bad / cols;
  const index_t j = bad - i * cols;
  std::ostringstream msg;
  if (is_vector) {
    msg << "element " << j;
  } else {
    msg << "element (" << i << ", " << j << ")";
  }
  if constexpr (std::is_same_v<Space, host_space>) {
    if constexpr (std::is_same_v<V, bool>) {
      msg << " = " << (data[i * stride + j] ? "true" : "false");
    } else if constexpr (sizeof(V) == 1) {
      msg << " = " << static_cast<int>(data[i * stride + j]);
    } else {
      msg << " = " << data[i * stride + j];
    }
  }
  msg << " is invalid: " << rule_text(rule);
  cellkit::detail::throw_invalid_argument(function, argument, msg.str());
}

// ---------------------------------------------------------------------------------------------------
// driver

template <class T, class Space, class C, class Index, class Mask>
struct sweep_request {
  // counts: exactly one of dense / csr set
  const C* x = nullptr;
  index_t x_stride = 0;
  const Index* indptr = nullptr;
  const Index* indices = nullptr;
  const C* values = nullptr;
  index_t nnz = 0;
  index_t rows = 0;
  index_t cols = 0;
  matrix_view<const T, Space> mu{};
  gene_param_view<const T, Space> theta{};
  matrix_view<const T, Space> pi{};
};

template <class A, class B>
inline bool same_shape(A a, B b) {
  return a.rows == b.rows && a.cols == b.cols;
}

/// Runs the checks and the sweep; returns the reduced loss. `Kind` selects the model.
template <model_kind Kind, class Policy, class T, class Space, class C, class Index, class Mask>
T run_nll(const Policy& policy, const char* fn, const sweep_request<T, Space, C, Index, Mask>& rq,
          const nll_outputs<T, Space>& out, const nll_options<T, Space, Mask>& opt) {
  using M = model<T, Kind>;
  const bool csr = rq.indptr != nullptr;
  const index_t rows = rq.rows;
  const index_t cols = rq.cols;
  const shape2 counts_shape{rows, cols};

  // ---- cheap checks (always) ----
  expect_shapes(rq.mu.rows() == rows && rq.mu.cols() == cols, fn, "mu", rq.mu.shape(), "counts", counts_shape,
                "mu must have the shape of counts (cells x genes)");
  if constexpr (M::has_theta) {
    expect_shapes(rq.theta.cols() == cols && (rq.theta.rows() == 1 || rq.theta.rows() == rows), fn, "theta",
                  rq.theta.shape(), "counts", counts_shape,
                  "theta is a vector of genes entries (per gene) or has the shape of counts (per element)");
    CELLKIT_EXPECTS(rq.theta.data() != nullptr || cols == 0, fn, "theta", "null data");
  }
  if constexpr (M::has_pi) {
    expect_shapes(rq.pi.rows() == rows && rq.pi.cols() == cols, fn, "pi", rq.pi.shape(), "counts", counts_shape,
                  "pi must have the shape of counts (cells x genes)");
  }
  if (opt.size_factors) {
    expect_shapes(opt.size_factors->size() == rows, fn, "size_factors", opt.size_factors->shape(), "counts",
                  counts_shape, "one size factor per cell (row of counts)");
  }
  if (opt.mask) {
    expect_shapes(opt.mask->rows() == rows && opt.mask->cols() == cols, fn, "mask", opt.mask->shape(), "counts",
                  counts_shape, "mask must have the shape of counts (cells x genes)");
  }
  if constexpr (!M::has_pi) {
    CELLKIT_EXPECTS(opt.ridge_lambda == T(0), fn, "ridge_lambda", "the ridge penalty applies to ZINB only");
    CELLKIT_EXPECTS(opt.pi == pi_parameter::probability, fn, "pi", "pi_parameter::logits applies to ZINB only");
    CELLKIT_EXPECTS(!out.d_pi, fn, "d_pi", "this model has no pi");
  } else {
    CELLKIT_EXPECTS(opt.ridge_lambda >= T(0) && opt.ridge_lambda < inf_v<T>(), fn, "ridge_lambda",
                    "must be finite and >= 0, got " + std::to_string(opt.ridge_lambda));
  }
  if constexpr (!M::has_theta) CELLKIT_EXPECTS(!out.d_theta, fn, "d_theta", "the Poisson model has no theta");
  if (out.d_mu) {
    expect_shapes(out.d_mu->rows() == rows && out.d_mu->cols() == cols, fn, "d_mu", out.d_mu->shape(), "counts",
                  counts_shape, "d_mu has the shape of mu");
  }
  if (out.d_theta) {
    expect_shapes(out.d_theta->rows() == rq.theta.rows() && out.d_theta->cols() == cols, fn, "d_theta",
                  out.d_theta->shape(), "theta", rq.theta.shape(), "d_theta has the shape of theta");
  }
  if (out.d_pi) {
    expect_shapes(out.d_pi->rows() == rows && out.d_pi->cols() == cols, fn, "d_pi", out.d_pi->shape(), "counts",
                  counts_shape, "d_pi has the shape of pi");
  }
  if (out.log_prob) {
    expect_shapes(out.log_prob->rows() == rows && out.log_prob->cols() == cols, fn, "log_prob", out.log_prob->shape(),
                  "counts", counts_shape, "log_prob has the shape of counts");
  }
  if (out.per_cell) {
    expect_shapes(out.per_cell->size() == rows, fn, "per_cell", out.per_cell->shape(), "counts", counts_shape,
                  "one entry per cell (row of counts)");
  }
  if (out.per_gene) {
    expect_shapes(out.per_gene->size() == cols, fn, "per_gene", out.per_gene->shape(), "counts", counts_shape,
                  "one entry per gene (column of counts)");
  }

  // ---- per-element checks ----
  if (CELLKIT_DEBUG_CHECKS || opt.check_inputs) {
    if (csr) {
      if constexpr (std::is_same_v<Space, host_space>) {
        validate(csr_view<const C, Index>(rows, cols, rq.nnz, rq.indptr, rq.indices, rq.values));
      }
      check_elements<Policy, C, Space>(policy, fn, "counts", rq.values, 1, rq.nnz, rq.nnz, check_rule::count, true);
    } else {
      check_elements<Policy, C, Space>(policy, fn, "counts", rq.x, rows, cols, rq.x_stride, check_rule::count);
    }
    check_elements<Policy, T, Space>(policy, fn, "mu", rq.mu.data(), rows, cols, rq.mu.stride(), check_rule::mean);
    if constexpr (M::has_theta) {
      check_elements<Policy, T, Space>(policy, fn, "theta", rq.theta.data(), rq.theta.rows(), cols, rq.theta.stride(),
                                       check_rule::theta, rq.theta.per_gene());
    }
    if constexpr (M::has_pi) {
      check_elements<Policy, T, Space>(policy, fn, "pi", rq.pi.data(), rows, cols, rq.pi.stride(),
                                       M::logits ? check_rule::logit : check_rule::probability);
    }
    if (opt.size_factors) {
      check_elements<Policy, T, Space>(policy, fn, "size_factors", opt.size_factors->data(), 1, rows, rows,
                                       check_rule::size_factor, true);
    }
    if (opt.mask) {
      check_elements<Policy, Mask, Space>(policy, fn, "mask", opt.mask->data(), rows, cols, opt.mask->stride(),
                                          check_rule::mask01);
    }
  }

  if (rows == 0) {
    if (out.per_gene) for_each_index(policy, cols, fill_fn<T>{out.per_gene->data(), T(0)});
    if (out.d_theta) for_each_index(policy, cols, fill_fn<T>{out.d_theta->data(), T(0)});
    return T(0);
  }

  // ---- scale of the gradients ----
  double count = static_cast<double>(rows) * static_cast<double>(cols);
  if (opt.mask && opt.reduce == reduction::mean) {
    count =
        transform_reduce(policy, rows, 0.0, plus_op{}, mask_count_fn<Mask>{opt.mask->data(), opt.mask->stride(), cols});
  }
  const double scale = opt.reduce == reduction::mean ? (count > 0.0 ? 1.0 / count : 0.0) : 1.0;

  // ---- scratch ----
  const bool theta_per_gene = M::has_theta && rq.theta.per_gene();
  const bool want_gene_theta = out.d_theta.has_value() && theta_per_gene;
  const bool gene_partials = want_gene_theta || out.per_gene.has_value();
  // Blocks of rows (the work items) depend on the shape only, never on the thread count. Host: at
  // most 64 blocks, each with a 3 x cols scratch row; device: one row per item unless per-gene partials
  // are needed (then at most 64 blocks).
  constexpr bool host = is_host_policy_v<Policy>;
  const index_t max_blocks = 64;
  const index_t rows_per_block = (host || gene_partials) ? (rows + max_blocks - 1) / max_blocks : 1;
  const index_t blocks = (rows + rows_per_block - 1) / rows_per_block;
  auto row_scratch = make_scratch<T, Space>(host ? blocks * 3 * cols : 0);
  const bool gather_positive = host && M::has_theta;
  auto positive_scratch = make_scratch<T, Space>(gather_positive ? blocks * positive_arrays * positive_chunk : 0);
  auto positive_cols = make_scratch<index_t, Space>(gather_positive ? blocks * positive_chunk : 0);
  auto inv_theta = make_scratch<T, Space>(theta_per_gene ? cols : 0);

  auto row_loss = make_scratch<double, Space>(rows);
  auto gene_loss = make_scratch<double, Space>(out.per_gene ? blocks * cols : 0);
  auto gene_d_theta = make_scratch<double, Space>(want_gene_theta ? blocks * cols : 0);
  if (out.per_gene) for_each_index(policy, blocks * cols, fill_fn<double>{gene_loss.data(), 0.0});
  if (want_gene_theta) for_each_index(policy, blocks * cols, fill_fn<double>{gene_d_theta.data(), 0.0});
  auto theta_pre = make_scratch<nb_theta<T>, Space>(theta_per_gene ? cols : 0);
  if (theta_per_gene) {
    for_each_index(policy, cols, prepare_theta_fn<T>{rq.theta.data(), theta_pre.data(), inv_theta.data()});
  }

  sweep_data<T, C, Index, Mask> d;
  d.rows = rows;
  d.cols = cols;
  d.x = rq.x;
  d.x_stride = rq.x_stride;
  d.indptr = rq.indptr;
  d.indices = rq.indices;
  d.values = rq.values;
  d.mu = rq.mu.data();
  d.mu_stride = rq.mu.stride();
  if constexpr (M::has_theta) {
    d.theta = rq.theta.data();
    d.theta_stride = rq.theta.row_stride();
    d.theta_pre = theta_per_gene ? theta_pre.data() : nullptr;
    d.inv_theta = theta_per_gene ? inv_theta.data() : nullptr;
  }
  if constexpr (M::has_pi) {
    d.pi = rq.pi.data();
    d.pi_stride = rq.pi.stride();
  }
  if (opt.size_factors) d.size_factors = opt.size_factors->data();
  if (opt.mask) {
    d.mask = opt.mask->data();
    d.mask_stride = opt.mask->stride();
  }
  if (out.d_mu) {
    d.d_mu = out.d_mu->data();
    d.d_mu_stride = out.d_mu->stride();
  }
  if (out.d_theta && !theta_per_gene) {
    d.d_theta = out.d_theta->data();
    d.d_theta_stride = out.d_theta->stride();
  }
  if (out.d_pi) {
    d.d_pi = out.d_pi->data();
    d.d_pi_stride = out.d_pi->stride();
  }
  if (out.log_prob) {
    d.log_prob = out.log_prob->data();
    d.log_prob_stride = out.log_prob->stride();
  }
  if (out.per_cell) d.per_cell = out.per_cell->data();
  d.row_loss = row_loss.data();
  d.gene_loss = out.per_gene ? gene_loss.data() : nullptr;
  d.gene_d_theta = want_gene_theta ? gene_d_theta.data() : nullptr;
  d.rows_per_block = rows_per_block;
  d.row_scratch = host ? row_scratch.data() : nullptr;
  d.positive_scratch = gather_positive ? positive_scratch.data() : nullptr;
  d.positive_cols = gather_positive ? positive_cols.data() : nullptr;
  d.grad_scale = static_cast<T>(scale);
  d.ridge = opt.ridge_lambda;
  d.want_theta = out.d_theta.has_value();

  const bool grad = out.d_mu || out.d_theta || out.d_pi;
  if (csr) {
    if (grad) {
      for_each_index(policy, blocks, sweep_fn<T, Kind, true, true, C, Index, Mask>{d});
    } else {
      for_each_index(policy, blocks, sweep_fn<T, Kind, true, false, C, Index, Mask>{d});
    }
  } else {
    if (grad) {
      for_each_index(policy, blocks, sweep_fn<T, Kind, false, true, C, Index, Mask>{d});
    } else {
      for_each_index(policy, blocks, sweep_fn<T, Kind, false, false, C, Index, Mask>{d});
    }
  }
  if (out.per_gene)
    for_each_index(policy, cols, gene_sum_fn<T>{gene_loss.data(), blocks, cols, 1.0, out.per_gene->data()});
  if (want_gene_theta) {
    for_each_index(policy, cols, gene_sum_fn<T>{gene_d_theta.data(), blocks, cols, scale, out.d_theta->data()});
  }
  const double total = transform_reduce(policy, rows, 0.0, plus_op{}, read_double_fn{row_loss.data()});
  return static_cast<T>(total * scale);
}

// ---------------------------------------------------------------------------------------------------
// argument plumbing shared by the public headers

template <class V>
struct counts_traits {
  static constexpr bool valid = false;
};
template <class C, class Space>
struct counts_traits<matrix_view<C, Space>> {
  static constexpr bool valid = true;
  static constexpr bool csr = false;
  using value_type = std::remove_const_t<C>;
  using index_type = std::int32_t;
  using space = Space;
};
template <class C, class Index, class Space>
struct counts_traits<csr_view<C, Index, Space>> {
  static constexpr bool valid = true;
  static constexpr bool csr = true;
  using value_type = std::remove_const_t<C>;
  using index_type = std::remove_const_t<Index>;
  using space = Space;
};

/// Builds the request from counts (dense or CSR), mu, theta and pi.
template <class T, class Space, class Mask, class Counts>
auto make_request(const Counts& counts, matrix_view<const T, Space> mu, gene_param_view<const T, Space> theta,
                  matrix_view<const T, Space> pi) {
  using traits = counts_traits<Counts>;
  static_assert(traits::valid,
                "cellkit::likelihood: counts must be a cellkit::matrix_view (dense) or a cellkit::csr_view (CSR)");
  static_assert(std::is_arithmetic_v<typename traits::value_type>, "cellkit::likelihood: counts must be numbers");
  using C = typename traits::value_type;
  using Index = typename traits::index_type;
  sweep_request<T, Space, C, Index, Mask> rq;
  rq.rows = counts.rows();
  rq.cols = counts.cols();
  if constexpr (traits::csr) {
    rq.indptr = counts.indptr();
    rq.indices = counts.indices();
    rq.values = counts.values();
    rq.nnz = counts.nnz();
  } else {
    rq.x = counts.data();
    rq.x_stride = counts.stride();
  }
  rq.mu = mu;
  rq.theta = theta;
  rq.pi = pi;
  return rq;
}

}  // namespace cellkit::likelihood::detail
