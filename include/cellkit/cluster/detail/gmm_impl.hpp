#pragma once
/// @file
/// Implementation of cellkit/cluster/gmm.hpp and gmm_select.hpp.
///
/// The E-step and the M-step are both one GEMM per block of rows, over the same "feature" rows:
///
///     f(x) = [ quadratic features | x ]      quadratic: x_a x_b (a <= b) for full, x_a^2 for diag,
///                                            |x|^2 for spherical, none for tied
///
/// E-step: log N(x | m_k, P_k^-1) + log w_k = f(x) . c_k + const_k, because
/// -(x - m)^T P (x - m) / 2 = -x^T P x / 2 + x^T P m - m^T P m / 2 is linear in f(x); the
/// coefficients c (p x K) and constants are built from the parameters once per iteration, so the
/// N x K log-densities are one GEMM F (B x p) C (p x K) per block (2 N K p flops; p = d(d+3)/2 for
/// full, half of the 2 N K d^2 of evaluating (x - m) U per component). Tied covariances add the
/// shared -|x U|^2 / 2 per row (one B x d x d GEMM per block).
/// M-step: the sufficient statistics sum_i r_ik f(x_i) are F^T R (p x K), again one GEMM per
/// block, plus n_k = sum_i r_ik. They are additive across blocks (and across data shards: a
/// distributed version all-reduces them). Means and covariances follow in O(K p) work.
/// Full covariances compute the same two products without building F (gmm_kernels.hpp): at K ~ 20
/// building and packing F costs as much as multiplying it.
///
/// The data are centred on their column means once (`gmm_data`, shared by every fit of a sweep),
/// which keeps the cancellation in x^T P x - 2 x^T P m + m^T P m and in S2/n - m m^T small.
///
/// Determinism: rows are cut into fixed chunks of `gmm_chunk_rows` (one thread each) and blocks of
/// `gmm_block_rows` (one serial GEMM or kernel call each); chunk partial sums are merged in chunk order, so every
/// result is bit-identical for serial and any openmp thread count.

#include <cellkit/cluster/common.hpp>
#include <cellkit/cluster/detail/gmm_kernels.hpp>
#include <cellkit/cluster/detail/gmm_linalg.hpp>
#include <cellkit/cluster/detail/kmeans_impl.hpp>
#include <cellkit/cluster/detail/parallel.hpp>
#include <cellkit/cluster/detail/vector_math.hpp>
#include <cellkit/cluster/gmm_model.hpp>
#include <cellkit/cluster/kmeans.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

namespace cellkit::cluster::detail {

inline constexpr index_t gmm_block_rows = 64;
inline constexpr index_t gmm_chunk_rows = 2048;  // a multiple of gmm_block_rows
inline constexpr double gmm_log_2pi = 1.8378770664093454836;

inline index_t gmm_quadratic_features(gmm_covariance type, index_t d) {
  switch (type) {
    case gmm_covariance::full:
      return d * (d + 1) / 2;
    case gmm_covariance::diag:
      return d;
    case gmm_covariance::spherical:
      return 1;
    case gmm_covariance::tied:
      return 0;
  }
  return 0;
}

/// The centred data and what every fit on them shares.
template <class T>
struct gmm_data {
  host_buffer<T> centred;
  matrix_view<const T> x;        // N x d, centred, contiguous
  std::vector<double> centre;    // d column means
  std::vector<double> variance;  // d column variances (1/N)
  double mean_variance = 0;
  std::vector<double> gram;  // X^T X of the centred data (d x d), for tied covariances (see ensure_gram)
  index_t n = 0;
  index_t d = 0;
  int threads = 1;

  index_t chunks() const { return (n + gmm_chunk_rows - 1) / gmm_chunk_rows; }

  /// The same data for fits run on `fit_threads` threads: everything but `centred` is copied, and x
  /// still views this object's centred copy (which must outlive the result).
  gmm_data shared_view(int fit_threads) const {
    gmm_data out;
    out.x = x;
    out.centre = centre;
    out.variance = variance;
    out.mean_variance = mean_variance;
    out.gram = gram;
    out.n = n;
    out.d = d;
    out.threads = fit_threads;
    return out;
  }
};

/// Centres x (checks: N, d >= 1, every value finite) on `threads` threads.
template <class T>
gmm_data<T> gmm_prepare(int threads, matrix_view<const T> x, const char* fn) {
  const index_t n = x.rows();
  const index_t d = x.cols();
  CELLKIT_EXPECTS(n >= 1, fn, "x", "has no rows (a mixture needs at least one sample)");
  CELLKIT_EXPECTS(d >= 1, fn, "x", "has no columns (features)");
  expect_all_finite(x, fn, "x");
  gmm_data<T> data;
  data.n = n;
  data.d = d;
  data.threads = effective_threads(threads, static_cast<double>(n) * static_cast<double>(d) * 64.0);
  const index_t chunks = data.chunks();
  std::vector<double> partial(static_cast<std::size_t>(chunks * d), 0.0);
  parallel_blocks(data.threads, chunks, [&](int, index_t c) {
    const index_t last = std::min(n, (c + 1) * gmm_chunk_rows);
    double* p = partial.data() + c * d;
    for (index_t i = c * gmm_chunk_rows; i < last; ++i) {
      const T* row = x.row_data(i);
      for (index_t a = 0; a < d; ++a) p[a] += static_cast<double>(row[a]);
    }
  });
  data.centre.assign(static_cast<std::size_t>(d), 0.0);
  for (index_t c = 0; c < chunks; ++c)
    for (index_t a = 0; a < d; ++a)
      data.centre[static_cast<std::size_t>(a)] += partial[static_cast<std::size_t>(c * d + a)];
  for (double& m : data.centre) m /= static_cast<double>(n);
  data.centred = host_buffer<T>(n * d, uninitialized);
  std::fill(partial.begin(), partial.end(), 0.0);
  parallel_blocks(data.threads, chunks, [&](int, index_t c) {
    const index_t last = std::min(n, (c + 1) * gmm_chunk_rows);
    double* p = partial.data() + c * d;
    for (index_t i = c * gmm_chunk_rows; i < last; ++i) {
      const T* row = x.row_data(i);
      T* out = data.centred.data() + i * d;
      for (index_t a = 0; a < d; ++a) {
        const double v = static_cast<double>(row[a]) - data.centre[static_cast<std::size_t>(a)];
        out[a] = static_cast<T>(v);
        p[a] += v * v;
      }
    }
  });
  data.variance.assign(static_cast<std::size_t>(d), 0.0);
  for (index_t c = 0; c < chunks; ++c)
    for (index_t a = 0; a < d; ++a)
      data.variance[static_cast<std::size_t>(a)] += partial[static_cast<std::size_t>(c * d + a)];
  data.mean_variance = 0.0;
  for (double& v : data.variance) {
    v /= static_cast<double>(n);
    data.mean_variance += v / static_cast<double>(d);
  }
  data.x = matrix_view<const T>(data.centred.data(), n, d);
  return data;
}

/// X^T X of the centred data (tied covariances), once per data set; chunked, merged in order.
template <class T>
void ensure_gram(gmm_data<T>& data) {
  if (!data.gram.empty()) return;
  const index_t d = data.d;
  const index_t chunks = data.chunks();
  std::vector<double> partial(static_cast<std::size_t>(chunks * d * d), 0.0);
  std::vector<host_buffer<T>> scratch;
  for (int t = 0; t < data.threads; ++t) scratch.emplace_back(d * d, uninitialized);
  parallel_blocks(data.threads, chunks, [&](int thread, index_t c) {
    const index_t first = c * gmm_chunk_rows;
    const index_t count = std::min(data.n, first + gmm_chunk_rows) - first;
    matrix_view<T> g(scratch[static_cast<std::size_t>(thread)].data(), d, d);
    const auto block = data.x.row_block(first, count);
    gemm(serial{}, block, block, g, gemm_params<T>{.transpose_a = true});
    double* p = partial.data() + c * d * d;
    for (index_t e = 0; e < d * d; ++e) p[e] = static_cast<double>(g.data()[e]);
  });
  data.gram.assign(static_cast<std::size_t>(d * d), 0.0);
  for (index_t c = 0; c < chunks; ++c)
    for (index_t e = 0; e < d * d; ++e)
      data.gram[static_cast<std::size_t>(e)] += partial[static_cast<std::size_t>(c * d * d + e)];
}

/// Parameters in the centred coordinates, with the derived precisions.
struct gmm_state {
  gmm_covariance type = gmm_covariance::full;
  index_t k = 0;
  index_t d = 0;
  std::vector<double> weights;
  std::vector<double> means;        // k x d, centred coordinates
  std::vector<double> covariances;  // scikit-learn's shapes
  std::vector<double> prec_chol;    // scikit-learn's precisions_cholesky_
  std::vector<double> precisions;   // P = U U^T (full k d d, tied d d, diag k d, spherical k)
  std::vector<double> log_det;      // k: sum log diag(U) = -log det(covariance) / 2
};

/// Fills precisions and log_det from prec_chol.
inline void derive_precisions(gmm_state& s) {
  const index_t d = s.d;
  const index_t k = s.k;
  s.log_det.assign(static_cast<std::size_t>(k), 0.0);
  s.precisions.assign(s.prec_chol.size(), 0.0);
  switch (s.type) {
    case gmm_covariance::full:
    case gmm_covariance::tied: {
      const index_t mats = s.type == gmm_covariance::full ? k : 1;
      for (index_t j = 0; j < mats; ++j) {
        const double* u = s.prec_chol.data() + j * d * d;
        multiply_by_transpose(u, d, s.precisions.data() + j * d * d);
        double ld = 0.0;
        for (index_t a = 0; a < d; ++a) ld += std::log(u[a * d + a]);
        if (s.type == gmm_covariance::full) {
          s.log_det[static_cast<std::size_t>(j)] = ld;
        } else {
          std::fill(s.log_det.begin(), s.log_det.end(), ld);
        }
      }
      break;
    }
    case gmm_covariance::diag:
      for (index_t j = 0; j < k; ++j) {
        double ld = 0.0;
        for (index_t a = 0; a < d; ++a) {
          const double u = s.prec_chol[static_cast<std::size_t>(j * d + a)];
          s.precisions[static_cast<std::size_t>(j * d + a)] = u * u;
          ld += std::log(u);
        }
        s.log_det[static_cast<std::size_t>(j)] = ld;
      }
      break;
    case gmm_covariance::spherical:
      for (index_t j = 0; j < k; ++j) {
        const double u = s.prec_chol[static_cast<std::size_t>(j)];
        s.precisions[static_cast<std::size_t>(j)] = u * u;
        s.log_det[static_cast<std::size_t>(j)] = static_cast<double>(d) * std::log(u);
      }
      break;
  }
}

/// The E-step's GEMM operands for the current parameters.
template <class T>
struct gmm_coefficients {
  index_t q = 0;                 // quadratic features
  index_t p = 0;                 // q + d
  std::vector<T> coef;           // p x k
  std::vector<double> constant;  // k: log w + log det - d log(2 pi) / 2 - m^T P m / 2
  std::vector<T> tied_factor;    // d x d: U of the tied precision (row term -|x U|^2 / 2)
  std::vector<T> quadratic;      // full: the coefficients in gmm_quadratic_block's order
};

template <class T>
gmm_coefficients<T> make_coefficients(const gmm_state& s) {
  const index_t d = s.d;
  const index_t k = s.k;
  gmm_coefficients<T> c;
  c.q = gmm_quadratic_features(s.type, d);
  c.p = c.q + d;
  c.coef.assign(static_cast<std::size_t>(c.p * k), T(0));
  c.constant.assign(static_cast<std::size_t>(k), 0.0);
  auto put = [&](index_t feature, index_t j, double v) {
    c.coef[static_cast<std::size_t>(feature * k + j)] = static_cast<T>(v);
  };
  std::vector<double> pm(static_cast<std::size_t>(d));
  for (index_t j = 0; j < k; ++j) {
    const double* m = s.means.data() + j * d;
    double mpm = 0.0;
    switch (s.type) {
      case gmm_covariance::full:
      case gmm_covariance::tied: {
        const double* prec = s.precisions.data() + (s.type == gmm_covariance::full ? j * d * d : 0);
        for (index_t a = 0; a < d; ++a) {
          double v = 0.0;
          for (index_t b = 0; b < d; ++b) v += prec[a * d + b] * m[b];
          pm[static_cast<std::size_t>(a)] = v;
          mpm += v * m[a];
        }
        if (s.type == gmm_covariance::full) {
          index_t f = 0;
          for (index_t a = 0; a < d; ++a)
            for (index_t b = a; b < d; ++b, ++f) put(f, j, a == b ? -0.5 * prec[a * d + a] : -prec[a * d + b]);
        }
        for (index_t a = 0; a < d; ++a) put(c.q + a, j, pm[static_cast<std::size_t>(a)]);
        break;
      }
      case gmm_covariance::diag:
        for (index_t a = 0; a < d; ++a) {
          const double pa = s.precisions[static_cast<std::size_t>(j * d + a)];
          put(a, j, -0.5 * pa);
          put(c.q + a, j, pa * m[a]);
          mpm += pa * m[a] * m[a];
        }
        break;
      case gmm_covariance::spherical: {
        const double pj = s.precisions[static_cast<std::size_t>(j)];
        put(0, j, -0.5 * pj);
        for (index_t a = 0; a < d; ++a) {
          put(c.q + a, j, pj * m[a]);
          mpm += pj * m[a] * m[a];
        }
        break;
      }
    }
    c.constant[static_cast<std::size_t>(j)] = std::log(s.weights[static_cast<std::size_t>(j)]) +
                                              s.log_det[static_cast<std::size_t>(j)] -
                                              0.5 * static_cast<double>(d) * gmm_log_2pi - 0.5 * mpm;
  }
  if (s.type == gmm_covariance::full) c.quadratic = gmm_quadratic_stream(c.coef.data(), k, d);
  if (s.type == gmm_covariance::tied) {
    c.tied_factor.resize(static_cast<std::size_t>(d * d));
    for (index_t e = 0; e < d * d; ++e)
      c.tied_factor[static_cast<std::size_t>(e)] = static_cast<T>(s.prec_chol[static_cast<std::size_t>(e)]);
  }
  return c;
}

/// The features of `count` centred rows for the diag, spherical and tied passes, feature-major: ft
/// is p x count, row f holding feature f of every row (quadratic features first, then the
/// coordinates). Feature-major keeps every loop long and unit-stride, and makes the block the long
/// side of both GEMMs of a pass. (Full covariances have their own kernels, gmm_kernels.hpp.)
template <class T>
void build_features(gmm_covariance type, const T* x, index_t count, index_t d, index_t q, T* ft) {
  T* CELLKIT_RESTRICT xt = ft + q * count;  // d x count: the coordinates, transposed
  for (index_t r = 0; r < count; ++r) {
    const T* CELLKIT_RESTRICT xr = x + r * d;
    for (index_t a = 0; a < d; ++a) xt[a * count + r] = xr[a];
  }
  switch (type) {
    case gmm_covariance::diag:
      for (index_t a = 0; a < d; ++a) {
        const T* CELLKIT_RESTRICT xa = xt + a * count;
        T* CELLKIT_RESTRICT out = ft + a * count;
        CELLKIT_CLUSTER_SIMD
        for (index_t r = 0; r < count; ++r) out[r] = xa[r] * xa[r];
      }
      break;
    case gmm_covariance::spherical: {
      T* CELLKIT_RESTRICT out = ft;
      std::fill(out, out + count, T(0));
      for (index_t a = 0; a < d; ++a) {
        const T* CELLKIT_RESTRICT xa = xt + a * count;
        CELLKIT_CLUSTER_SIMD
        for (index_t r = 0; r < count; ++r) out[r] += xa[r] * xa[r];
      }
      break;
    }
    case gmm_covariance::full:  // gmm_quadratic_block and gmm_second_moment_block read x itself
    case gmm_covariance::tied:
      break;
  }
}

/// Per-thread buffers of a pass.
template <class T>
struct gmm_scratch {
  host_buffer<T> features;       // p x block (feature-major; not for full)
  host_buffer<T> xt;             // full: d x block, the block transposed
  host_buffer<T> xr;             // full: block x gmm_padded_row(d), the block padded
  host_buffer<T> pad;            // full: block
  std::vector<double> moments;   // full: k x gmm_moment_rows(d) x gmm_padded_row(d), one chunk's sums
  host_buffer<T> dot;            // k x block
  host_buffer<T> resp;           // block x k
  host_buffer<T> stats;          // k x p
  host_buffer<T> tied;           // block x d
  std::vector<double> wlp;       // block x k
  std::vector<double> log_norm;  // block
};

/// Merged results of a pass.
struct gmm_pass_result {
  double log_likelihood = 0;        // sum_i log sum_k w_k N(x_i | k)
  std::vector<double> stats;        // p x k: sum_i r_ik f(x_i)
  std::vector<double> nk;           // k: sum_i r_ik
  std::vector<index_t> worst;       // per chunk, the row with the lowest log-likelihood
  std::vector<double> worst_value;  // its log-likelihood
};

/// One pass over the data. With `given_resp` (fills a count x k block of responsibilities for rows
/// [first, first + count)) the responsibilities are taken from it, otherwise they come from the
/// E-step with `coef`; with `want_stats` the sufficient statistics are accumulated. `on_block(first,
/// count, wlp, log_norm, resp)` sees each E-step block (wlp: count x k weighted log-densities in
/// double, log_norm: count log-likelihoods); it runs on worker threads and may only write rows
/// [first, first + count) of its outputs.
template <class T, class GivenResp, class OnBlock>
gmm_pass_result gmm_pass(const gmm_data<T>& data, gmm_covariance type, index_t k, const gmm_coefficients<T>* coef,
                         bool want_stats, GivenResp&& given_resp, OnBlock&& on_block) {
  constexpr bool has_given = !std::is_same_v<std::decay_t<GivenResp>, std::nullptr_t>;
  const index_t d = data.d;
  const index_t q = gmm_quadratic_features(type, d);
  const index_t p = q + d;
  const index_t chunks = data.chunks();
  const int threads = effective_threads(data.threads, static_cast<double>(data.n) * static_cast<double>(p * k));
  const bool full = type == gmm_covariance::full;
  const index_t padded_row = gmm_padded_row<T>(d);
  const index_t moment_rows = gmm_moment_rows(d);
  std::vector<gmm_scratch<T>> scratch(static_cast<std::size_t>(threads));
  for (auto& s : scratch) {
    if (full) {
      s.xt = host_buffer<T>(gmm_block_rows * d, uninitialized);
      s.xr = host_buffer<T>(gmm_block_rows * padded_row, uninitialized);
      s.pad = host_buffer<T>(gmm_block_rows, uninitialized);
      if (want_stats) {
        s.moments.resize(static_cast<std::size_t>(k * moment_rows * padded_row));
      }
    } else {
      s.features = host_buffer<T>(gmm_block_rows * p, uninitialized);
    }
    s.dot = host_buffer<T>(gmm_block_rows * k, uninitialized);
    s.resp = host_buffer<T>(gmm_block_rows * k, uninitialized);
    if (want_stats && !full) s.stats = host_buffer<T>(p * k, uninitialized);
    if (type == gmm_covariance::tied) s.tied = host_buffer<T>(gmm_block_rows * d, uninitialized);
    s.wlp.resize(static_cast<std::size_t>(gmm_block_rows * k));
    s.log_norm.resize(static_cast<std::size_t>(gmm_block_rows));
  }
  std::vector<double> stats_partial(want_stats ? static_cast<std::size_t>(chunks * p * k) : 0, 0.0);
  std::vector<double> nk_partial(static_cast<std::size_t>(chunks * k), 0.0);
  std::vector<double> ll_partial(static_cast<std::size_t>(chunks), 0.0);
  gmm_pass_result result;
  result.worst.assign(static_cast<std::size_t>(chunks), 0);
  result.worst_value.assign(static_cast<std::size_t>(chunks), std::numeric_limits<double>::infinity());

  parallel_blocks(threads, chunks, [&](int thread, index_t c) {
    gmm_scratch<T>& s = scratch[static_cast<std::size_t>(thread)];
    const index_t chunk_first = c * gmm_chunk_rows;
    const index_t chunk_last = std::min(data.n, chunk_first + gmm_chunk_rows);
    double ll = 0.0;
    double* nk = nk_partial.data() + c * k;
    if (full && want_stats) std::fill(s.moments.begin(), s.moments.end(), 0.0);
    for (index_t first = chunk_first; first < chunk_last; first += gmm_block_rows) {
      const index_t count = std::min(gmm_block_rows, chunk_last - first);
      const T* xb = data.x.row_data(first);
      if (full)
        gmm_kernel_layouts(xb, count, d, gmm_block_rows, s.xt.data(), s.xr.data());
      else
        build_features(type, xb, count, d, q, s.features.data());
      matrix_view<const T> features(s.features.data(), full ? 0 : p, count);
      matrix_view<T> resp(s.resp.data(), count, k);
      const index_t dot_stride = full ? gmm_block_rows : count;
      if constexpr (has_given) {
        given_resp(first, count, resp);
      } else {
        if (full) {
          gmm_quadratic_block(coef->quadratic.data(), k, d, s.xt.data(), gmm_block_rows, count, s.dot.data(),
                              s.pad.data());
        } else {
          // dot^T = coef^T features^T, k x count: with the block as the long side the GEMM kernel's
          // register tiles are full (k is often below its tile height).
          gemm(serial{}, matrix_view<const T>(coef->coef.data(), p, k), features,
               matrix_view<T>(s.dot.data(), k, count), gemm_params<T>{.transpose_a = true});
        }
        if (type == gmm_covariance::tied) {
          matrix_view<T> y(s.tied.data(), count, d);
          gemm(serial{}, data.x.row_block(first, count), matrix_view<const T>(coef->tied_factor.data(), d, d), y,
               gemm_params<T>{});
        }
        for (index_t r = 0; r < count; ++r) {
          double row_term = 0.0;
          if (type == gmm_covariance::tied) {
            const T* yr = s.tied.data() + r * d;
            for (index_t a = 0; a < d; ++a) row_term += static_cast<double>(yr[a]) * static_cast<double>(yr[a]);
            row_term *= -0.5;
          }
          const T* CELLKIT_RESTRICT g = s.dot.data() + r;
          double* CELLKIT_RESTRICT w = s.wlp.data() + r * k;
          const double* CELLKIT_RESTRICT cst = coef->constant.data();
          double top = -std::numeric_limits<double>::infinity();
          for (index_t j = 0; j < k; ++j) {
            w[j] = static_cast<double>(g[j * dot_stride]) + cst[j] + row_term;
            top = w[j] > top ? w[j] : top;
          }
          double sum = 0.0;
          CELLKIT_CLUSTER_SIMD_SUM(sum)
          for (index_t j = 0; j < k; ++j) sum += exp_flush(w[j] - top);
          const double log_norm = top + std::log(sum);
          s.log_norm[static_cast<std::size_t>(r)] = log_norm;
          T* CELLKIT_RESTRICT rr = resp.row_data(r);
          CELLKIT_CLUSTER_SIMD
          for (index_t j = 0; j < k; ++j) rr[j] = static_cast<T>(exp_flush(w[j] - log_norm));
          ll += log_norm;
          if (log_norm < result.worst_value[static_cast<std::size_t>(c)]) {
            result.worst_value[static_cast<std::size_t>(c)] = log_norm;
            result.worst[static_cast<std::size_t>(c)] = first + r;
          }
        }
        on_block(first, count, s.wlp.data(), s.log_norm.data(), static_cast<const T*>(s.resp.data()));
      }
      if (want_stats) {
        if (full) {
          gmm_second_moment_block(s.xr.data(), d, static_cast<const T*>(s.resp.data()), k, count, s.moments.data());
        } else {
          // stats^T = resp^T features^T, k x p (the long side p again leads).
          matrix_view<T> st(s.stats.data(), k, p);
          gemm(serial{}, matrix_view<const T>(resp), features, st,
               gemm_params<T>{.transpose_a = true, .transpose_b = true});
          double* acc = stats_partial.data() + c * p * k;
          const T* sv = s.stats.data();
          CELLKIT_CLUSTER_SIMD
          for (index_t e = 0; e < p * k; ++e) acc[e] += static_cast<double>(sv[e]);
        }
        for (index_t r = 0; r < count; ++r) {
          const T* rr = resp.row_data(r);
          for (index_t j = 0; j < k; ++j) nk[j] += static_cast<double>(rr[j]);
        }
      }
    }
    if (full && want_stats) {  // the chunk's moments into the feature order of the statistics
      double* acc = stats_partial.data() + c * p * k;
      for (index_t j = 0; j < k; ++j) {
        const double* m = s.moments.data() + j * moment_rows * padded_row;
        index_t f = 0;
        for (index_t a = 0; a < d; ++a) {
          for (index_t b = a; b < d; ++b, ++f) acc[j * p + f] = m[a * padded_row + b];
          acc[j * p + q + a] = m[a * padded_row + d];
        }
      }
    }
    ll_partial[static_cast<std::size_t>(c)] = ll;
  });

  for (index_t c = 0; c < chunks; ++c) result.log_likelihood += ll_partial[static_cast<std::size_t>(c)];
  if (want_stats) {
    result.stats.assign(static_cast<std::size_t>(p * k), 0.0);
    result.nk.assign(static_cast<std::size_t>(k), 0.0);
    for (index_t c = 0; c < chunks; ++c) {
      const double* sp = stats_partial.data() + c * p * k;
      for (index_t j = 0; j < k; ++j)
        for (index_t f = 0; f < p; ++f) result.stats[static_cast<std::size_t>(f * k + j)] += sp[j * p + f];
      for (index_t j = 0; j < k; ++j)
        result.nk[static_cast<std::size_t>(j)] += nk_partial[static_cast<std::size_t>(c * k + j)];
    }
  }
  return result;
}

/// Settings of the M-step shared by every iteration of a fit.
struct gmm_mstep_settings {
  std::vector<double> reg;  // d: the value added to each diagonal entry
  double floor = 0;         // eigenvalue / variance floor of the repairs
  double min_component_weight = 0;
  int restart = 0;
};

/// Fills prec_chol (and repairs covariances that are not positive definite) from `s.covariances`.
inline void covariances_to_precisions(gmm_state& s, const gmm_mstep_settings& settings, int iteration,
                                      std::vector<gmm_diagnostic>& diagnostics) {
  const index_t d = s.d;
  s.prec_chol.assign(s.covariances.size(), 0.0);
  if (s.type == gmm_covariance::full || s.type == gmm_covariance::tied) {
    const index_t mats = s.type == gmm_covariance::full ? s.k : 1;
    std::vector<double> l(static_cast<std::size_t>(d * d));
    std::vector<double> inv(static_cast<std::size_t>(d * d));
    for (index_t j = 0; j < mats; ++j) {
      double* cov = s.covariances.data() + j * d * d;
      std::copy(cov, cov + d * d, l.begin());
      if (!cholesky_lower(l.data(), d)) {
        double largest = 0.0;
        for (index_t a = 0; a < d; ++a) largest = std::max(largest, std::fabs(cov[a * d + a]));
        const double floor = std::max(settings.floor, 1e-13 * (std::isfinite(largest) ? largest : 0.0));
        const double smallest = floor_eigenvalues(cov, d, floor);
        diagnostics.push_back({settings.restart, iteration, j, gmm_issue::covariance_repaired, smallest});
        std::copy(cov, cov + d * d, l.begin());
        for (double bump = floor; !cholesky_lower(l.data(), d); bump *= 10.0) {  // rounding after the floor
          for (index_t a = 0; a < d; ++a) cov[a * d + a] += bump;
          std::copy(cov, cov + d * d, l.begin());
        }
      }
      invert_lower(l.data(), d, inv.data());
      double* u = s.prec_chol.data() + j * d * d;
      for (index_t a = 0; a < d; ++a)
        for (index_t b = 0; b < d; ++b) u[a * d + b] = inv[static_cast<std::size_t>(b * d + a)];
    }
  } else {
    const index_t per = s.type == gmm_covariance::diag ? d : 1;
    for (index_t j = 0; j < s.k; ++j) {
      double smallest = std::numeric_limits<double>::infinity();
      bool repaired = false;
      for (index_t a = 0; a < per; ++a) {
        double& v = s.covariances[static_cast<std::size_t>(j * per + a)];
        if (!(v > 0.0) || !std::isfinite(v)) {
          smallest = std::min(smallest, std::isfinite(v) ? v : 0.0);
          v = settings.floor;
          repaired = true;
        }
        s.prec_chol[static_cast<std::size_t>(j * per + a)] = 1.0 / std::sqrt(v);
      }
      if (repaired) diagnostics.push_back({settings.restart, iteration, j, gmm_issue::covariance_repaired, smallest});
    }
  }
  derive_precisions(s);
}

/// M-step: parameters from the merged statistics (scikit-learn's _estimate_gaussian_parameters
/// with its n_k + 10 eps, expressed through the sufficient statistics).
template <class T>
void gmm_mstep(const gmm_data<T>& data, const gmm_pass_result& pass, const gmm_mstep_settings& settings, int iteration,
               std::vector<char>& rank_reported, gmm_state& s, std::vector<gmm_diagnostic>& diagnostics) {
  const index_t d = s.d;
  const index_t k = s.k;
  const index_t q = gmm_quadratic_features(s.type, d);
  const double eps10 = 10.0 * std::numeric_limits<double>::epsilon();
  const auto stat = [&](index_t feature, index_t j) { return pass.stats[static_cast<std::size_t>(feature * k + j)]; };
  std::vector<double> nk(static_cast<std::size_t>(k));
  std::vector<char> reseed(static_cast<std::size_t>(k), 0);
  for (index_t j = 0; j < k; ++j) {
    const double n_true = pass.nk[static_cast<std::size_t>(j)];
    nk[static_cast<std::size_t>(j)] = n_true + eps10;
    if (iteration > 0 && settings.min_component_weight > 0 && n_true < settings.min_component_weight)
      reseed[static_cast<std::size_t>(j)] = 1;
  }
  s.means.assign(static_cast<std::size_t>(k * d), 0.0);
  for (index_t j = 0; j < k; ++j)
    for (index_t a = 0; a < d; ++a)
      s.means[static_cast<std::size_t>(j * d + a)] = stat(q + a, j) / nk[static_cast<std::size_t>(j)];
  s.covariances.assign(static_cast<std::size_t>(gmm_covariance_size(s.type, k, d)), 0.0);
  switch (s.type) {
    case gmm_covariance::full:
      for (index_t j = 0; j < k; ++j) {
        const double n_true = pass.nk[static_cast<std::size_t>(j)];
        const double nj = nk[static_cast<std::size_t>(j)];
        const double* m = s.means.data() + j * d;
        double* cov = s.covariances.data() + j * d * d;
        index_t f = 0;
        for (index_t a = 0; a < d; ++a)
          for (index_t b = a; b < d; ++b, ++f) {
            const double v = (stat(f, j) - stat(q + a, j) * m[b] - m[a] * stat(q + b, j) + n_true * m[a] * m[b]) / nj;
            cov[a * d + b] = v;
            cov[b * d + a] = v;
          }
        for (index_t a = 0; a < d; ++a) cov[a * d + a] += settings.reg[static_cast<std::size_t>(a)];
      }
      break;
    case gmm_covariance::tied: {
      double total = 0.0;
      for (double v : nk) total += v;
      for (index_t a = 0; a < d; ++a)
        for (index_t b = 0; b < d; ++b) {
          double v = data.gram[static_cast<std::size_t>(a * d + b)];
          for (index_t j = 0; j < k; ++j)
            v -= nk[static_cast<std::size_t>(j)] * s.means[static_cast<std::size_t>(j * d + a)] *
                 s.means[static_cast<std::size_t>(j * d + b)];
          s.covariances[static_cast<std::size_t>(a * d + b)] = v / total;
        }
      for (index_t a = 0; a < d; ++a)
        s.covariances[static_cast<std::size_t>(a * d + a)] += settings.reg[static_cast<std::size_t>(a)];
      break;
    }
    case gmm_covariance::diag:
      for (index_t j = 0; j < k; ++j) {
        const double nj = nk[static_cast<std::size_t>(j)];
        for (index_t a = 0; a < d; ++a) {
          const double m = s.means[static_cast<std::size_t>(j * d + a)];
          s.covariances[static_cast<std::size_t>(j * d + a)] =
              stat(a, j) / nj - 2.0 * (m * stat(q + a, j) / nj) + m * m + settings.reg[static_cast<std::size_t>(a)];
        }
      }
      break;
    case gmm_covariance::spherical:
      for (index_t j = 0; j < k; ++j) {
        const double nj = nk[static_cast<std::size_t>(j)];
        double v = stat(0, j) / nj;
        for (index_t a = 0; a < d; ++a) {
          const double m = s.means[static_cast<std::size_t>(j * d + a)];
          v += -2.0 * (m * stat(q + a, j) / nj) + m * m + settings.reg[static_cast<std::size_t>(a)];
        }
        s.covariances[static_cast<std::size_t>(j)] = v / static_cast<double>(d);
      }
      break;
  }
  // Re-seed collapsed components at the worst-explained points (one per chunk minimum, lowest
  // log-likelihood first), each with an equal share N / k of the weight and the n_k-weighted mean
  // covariance of the healthy components (the data's variances when none is healthy): a typical
  // cluster's shape, wide enough to attract points on the next E-step.
  const index_t cov_size = s.type == gmm_covariance::full ? d * d : (s.type == gmm_covariance::diag ? d : 1);
  std::vector<double> typical(static_cast<std::size_t>(cov_size), 0.0);
  if (s.type != gmm_covariance::tied) {
    double healthy = 0.0;
    for (index_t j = 0; j < k; ++j) {
      if (reseed[static_cast<std::size_t>(j)]) continue;
      const double w = nk[static_cast<std::size_t>(j)];
      healthy += w;
      for (index_t e = 0; e < cov_size; ++e)
        typical[static_cast<std::size_t>(e)] += w * s.covariances[static_cast<std::size_t>(j * cov_size + e)];
    }
    for (index_t e = 0; e < cov_size; ++e) {
      if (healthy > 0.0) {
        typical[static_cast<std::size_t>(e)] /= healthy;
      } else {
        const index_t a = s.type == gmm_covariance::full ? e / d : e;
        const bool on_diagonal = s.type != gmm_covariance::full || e % d == a;
        double v = 0.0;
        if (s.type == gmm_covariance::spherical) {
          for (index_t b = 0; b < d; ++b)
            v += (data.variance[static_cast<std::size_t>(b)] + settings.reg[static_cast<std::size_t>(b)]) /
                 static_cast<double>(d);
        } else if (on_diagonal) {
          v = data.variance[static_cast<std::size_t>(a)] + settings.reg[static_cast<std::size_t>(a)];
        }
        typical[static_cast<std::size_t>(e)] = v;
      }
    }
  }
  std::vector<index_t> order(pass.worst.size());
  std::iota(order.begin(), order.end(), index_t(0));
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return pass.worst_value[static_cast<std::size_t>(a)] < pass.worst_value[static_cast<std::size_t>(b)];
  });
  std::size_t next = 0;
  for (index_t j = 0; j < k; ++j) {
    if (!reseed[static_cast<std::size_t>(j)]) continue;
    diagnostics.push_back(
        {settings.restart, iteration, j, gmm_issue::component_reseeded, pass.nk[static_cast<std::size_t>(j)]});
    const index_t point = order.empty() ? 0 : pass.worst[static_cast<std::size_t>(order[next % order.size()])];
    ++next;
    for (index_t a = 0; a < d; ++a)
      s.means[static_cast<std::size_t>(j * d + a)] = static_cast<double>(data.x(point, a));
    nk[static_cast<std::size_t>(j)] = static_cast<double>(data.n) / static_cast<double>(k);
    if (s.type != gmm_covariance::tied) std::copy(typical.begin(), typical.end(), s.covariances.begin() + j * cov_size);
  }
  double total = 0.0;
  for (double v : nk) total += v;
  s.weights.resize(static_cast<std::size_t>(k));
  for (index_t j = 0; j < k; ++j) s.weights[static_cast<std::size_t>(j)] = nk[static_cast<std::size_t>(j)] / total;
  // Rank deficiency is a note, not a repair: reg_covar keeps the covariance invertible.
  const double needed =
      s.type == gmm_covariance::full ? static_cast<double>(d + 1) : (s.type == gmm_covariance::tied ? 0.0 : 2.0);
  for (index_t j = 0; j < k; ++j) {
    if (pass.nk[static_cast<std::size_t>(j)] < needed && !rank_reported[static_cast<std::size_t>(j)] &&
        !reseed[static_cast<std::size_t>(j)]) {
      rank_reported[static_cast<std::size_t>(j)] = 1;
      diagnostics.push_back(
          {settings.restart, iteration, j, gmm_issue::rank_deficient, pass.nk[static_cast<std::size_t>(j)]});
    }
  }
  covariances_to_precisions(s, settings, iteration, diagnostics);
}

/// The state of a model in the coordinates of data centred on `centre`.
inline gmm_state state_from_model(const gmm_model& model, const std::vector<double>& centre) {
  gmm_state s;
  s.type = model.covariance_type;
  s.k = model.k;
  s.d = model.d;
  s.weights = model.weights;
  s.means = model.means;
  for (index_t j = 0; j < s.k; ++j)
    for (index_t a = 0; a < s.d; ++a)
      s.means[static_cast<std::size_t>(j * s.d + a)] -= centre[static_cast<std::size_t>(a)];
  s.covariances = model.covariances;
  s.prec_chol = model.precisions_cholesky;
  derive_precisions(s);
  return s;
}

inline void state_to_model(const gmm_state& s, const std::vector<double>& centre, gmm_model& model) {
  model.covariance_type = s.type;
  model.k = s.k;
  model.d = s.d;
  model.weights = s.weights;
  model.means = s.means;
  for (index_t j = 0; j < s.k; ++j)
    for (index_t a = 0; a < s.d; ++a)
      model.means[static_cast<std::size_t>(j * s.d + a)] += centre[static_cast<std::size_t>(a)];
  model.covariances = s.covariances;
  model.precisions_cholesky = s.prec_chol;
}

/// Checks a model before it is used on data with d columns.
inline void expect_valid_model(const gmm_model& model, index_t d, const char* fn, const char* argument) {
  CELLKIT_EXPECTS(model.k >= 1 && model.d >= 1, fn, argument, "is not fitted (k and d must be >= 1)");
  CELLKIT_EXPECTS(model.d == d, fn, argument,
                  "has d = " + std::to_string(model.d) + " features but x has " + std::to_string(d) + " columns");
  const auto cov = static_cast<std::size_t>(gmm_covariance_size(model.covariance_type, model.k, model.d));
  CELLKIT_EXPECTS(model.weights.size() == static_cast<std::size_t>(model.k) &&
                      model.means.size() == static_cast<std::size_t>(model.k * model.d) &&
                      model.precisions_cholesky.size() == cov && model.covariances.size() == cov,
                  fn, argument, "has arrays whose sizes do not match k, d and the covariance type");
}

}  // namespace cellkit::cluster::detail
