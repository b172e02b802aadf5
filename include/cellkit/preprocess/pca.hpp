#pragma once
/// @file
/// Principal component analysis of cells x genes data (namespace `cellkit::preprocess`), equal up
/// to rounding to scikit-learn 1.2's `PCA(n_components=k, svd_solver='full')` (exact solver) and
/// close to its `svd_solver='randomized'` (randomised solver). Full description: docs/preprocess.md.
///
///     mean_j = (1/n) sum_i x_ij;   Xc = X - 1 mean^T = U S V^T  (thin SVD, s_1 >= s_2 >= ...)
///     scores = U_k S_k (n x k),  components = V_k^T (k x d)
///     explained_variance_a = s_a^2 / (n - 1),  ratio_a = explained_variance_a / sum_j var_j (ddof 1)
/// Signs follow scikit-learn's `svd_flip`: in each column of the scores, the entry of largest
/// magnitude is positive (so results are comparable, not only "up to sign").
///
/// ## Solvers (`pca_params::solver`)
/// - `exact`: the dense centred matrix, then Eigen's BDCSVD in double. O(n d min(n, d)); memory
///   n d doubles. For small inputs (and the reference for the others).
/// - `randomized`: Halko-Martinsson-Tropp range finder with l = k + oversamples Gaussian probes
///   (Philox stream `pca_stream`, seed `params.seed`), `power_iterations` rounds of
///   Q <- orth(Xc orth(Xc^T Q)) (Cholesky QR applied twice, in double), then the exact SVD of the l x d matrix
///   Q^T Xc. Every product with Xc is blocked GEMM (`cellkit::gemm`, serial per fixed block of 256
///   rows; partial sums of Xc^T Q merged in block order), so the cost is
///   2 (2 q + 2) n d l flops plus O((n + d) l^2). Dense input is centred once (a copy);
///   **CSR input is never densified**: Xc Q = X Q - 1 (mean^T Q) and Xc^T Y = X^T Y - mean (1^T Y),
///   with the sparse products over the nonzeros (O(nnz l) each).
/// - `automatic` (default): exact when max(n, d) <= 500 or k >= 0.8 min(n, d) (scikit-learn's rule),
///   else randomized.
/// Power iterations: default (-1) as scikit-learn, 7 when k < 0.1 min(n, d), else 4.
///
/// Accuracy: the exact solver agrees with LAPACK's SVD to ~1e-12 relative (tested against
/// scikit-learn at 1e-8). The randomised solver's error falls with the gap between s_k and s_(l+1)
/// and with the power iterations; on low-rank-plus-noise data it matches the exact solver to
/// 1e-8 (tested); on real data the leading components are accurate and the last few of k may
/// differ in their least significant digits (docs/preprocess.md has the measured error).
///
/// Determinism: identical results for `serial` and every `openmp{threads}` (fixed blocks, serial
/// GEMM per block, Eigen decompositions on one thread). Host only; synchronous.
/// Errors: `invalid_argument` for k < 1 or k > min(n, d), fewer than 2 rows, oversamples < 0,
/// non-finite input (with CELLKIT_DEBUG_CHECKS).

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/random.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/policy.hpp>
#include <cellkit/preprocess/detail/common.hpp>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::preprocess {

/// Philox stream id of the randomised solver's probes.
inline constexpr std::uint32_t pca_stream = 0x70636131u;  // "pca1"

enum class pca_solver { automatic, exact, randomized };

struct pca_params {
  index_t n_components = 50;
  pca_solver solver = pca_solver::automatic;
  int power_iterations = -1;  ///< randomized: -1 = scikit-learn's choice (7 or 4)
  index_t oversamples = 10;   ///< randomized: extra probes beyond k
  std::uint64_t seed = 0;     ///< randomized: Philox key of the probes
};

template <class T>
struct pca_result {
  std::vector<T> scores;                         ///< n x k, row-major (the embedding)
  std::vector<T> components;                     ///< k x d, row-major (principal axes)
  std::vector<double> mean;                      ///< d column means that were subtracted
  std::vector<double> singular_values;           ///< k
  std::vector<double> explained_variance;        ///< k, s^2 / (n - 1)
  std::vector<double> explained_variance_ratio;  ///< k
  double total_variance = 0;                     ///< sum of the column variances (ddof 1)
  index_t n = 0;
  index_t d = 0;
  index_t k = 0;
  pca_solver solver = pca_solver::exact;  ///< the solver that ran
  int power_iterations = 0;               ///< randomized: the rounds that ran

  matrix_view<const T> scores_view() const { return matrix_view<const T>(scores.data(), n, k); }
  matrix_view<const T> components_view() const { return matrix_view<const T>(components.data(), k, d); }
};

namespace detail {

using dmatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline constexpr index_t sparse_block_rows = 256;

/// Row blocks of the GEMM passes: a multiple of 4 blocks of at most 512 rows, so 2 and 4 threads
/// get equal shares. The partition depends only on n (never on the thread count): each block's
/// serial GEMM, and the block-ordered merge of X^T Y, are then the same for every policy.
struct row_blocks {
  index_t count = 0;
  index_t rows = 0;
  explicit row_blocks(index_t n) {
    count = 4 * ((n + 4 * 512 - 1) / (4 * 512));
    rows = (n + count - 1) / count;
    count = (n + rows - 1) / rows;
  }
  index_t first(index_t b) const { return b * rows; }
  index_t size(index_t b, index_t n) const { return std::min(rows, n - b * rows); }
};

/// Xc as an operator: apply (Y = Xc W, W d x l) and apply_t (Z = Xc^T Y, Y n x l), both
/// deterministic for every thread count.
template <class T>
struct dense_centred_operator {
  matrix_view<const T> xc;  // already centred
  int threads = 1;

  index_t rows() const { return xc.rows(); }
  index_t cols() const { return xc.cols(); }

  void apply(matrix_view<const T> w, matrix_view<T> y) const {
    const index_t n = xc.rows();
    const row_blocks part(n);
    parallel_blocks(threads, part.count, [&](int, index_t b) {
      gemm(serial{}, xc.row_block(part.first(b), part.size(b, n)), w, y.row_block(part.first(b), part.size(b, n)));
    });
  }

  void apply_t(matrix_view<const T> y, matrix_view<T> z, std::vector<T>& partial) const {
    const index_t n = xc.rows();
    const index_t d = xc.cols();
    const index_t l = y.cols();
    const row_blocks part(n);
    partial.resize(static_cast<std::size_t>(part.count * d * l));
    parallel_blocks(threads, part.count, [&](int, index_t b) {
      gemm(serial{}, xc.row_block(part.first(b), part.size(b, n)), y.row_block(part.first(b), part.size(b, n)),
           matrix_view<T>(partial.data() + b * d * l, d, l), {.transpose_a = true});
    });
    merge_partials(partial, part.count, d * l, z);
  }

  static void merge_partials(const std::vector<T>& partial, index_t blocks, index_t size, matrix_view<T> z) {
    T* out = z.data();
    for (index_t e = 0; e < size; ++e) out[e] = partial[static_cast<std::size_t>(e)];
    for (index_t b = 1; b < blocks; ++b) {
      const T* p = partial.data() + b * size;
      for (index_t e = 0; e < size; ++e) out[e] += p[e];
    }
  }
};

/// Xc = X - 1 mean^T for CSR X, never formed.
template <class T, class Index>
struct sparse_centred_operator {
  csr_view<const T, Index> x;
  std::vector<double> mean;
  int threads = 1;

  index_t rows() const { return x.rows(); }
  index_t cols() const { return x.cols(); }

  void apply(matrix_view<const T> w, matrix_view<T> y) const {
    const index_t n = x.rows();
    const index_t l = w.cols();
    // mean^T W (1 x l) in double.
    std::vector<double> shift(static_cast<std::size_t>(l), 0.0);
    for (index_t j = 0; j < x.cols(); ++j)
      for (index_t c = 0; c < l; ++c)
        shift[static_cast<std::size_t>(c)] += mean[static_cast<std::size_t>(j)] * static_cast<double>(w(j, c));
    const index_t blocks = (n + sparse_block_rows - 1) / sparse_block_rows;
    parallel_blocks(threads, blocks, [&](int, index_t b) {
      const index_t last = std::min(n, (b + 1) * sparse_block_rows);
      for (index_t i = b * sparse_block_rows; i < last; ++i) {
        T* out = y.row_data(i);
        for (index_t c = 0; c < l; ++c) out[c] = static_cast<T>(-shift[static_cast<std::size_t>(c)]);
        for (index_t k = x.row_begin(i); k < x.row_end(i); ++k) {
          const T v = x.values()[k];
          const T* wr = w.row_data(static_cast<index_t>(x.indices()[k]));
          for (index_t c = 0; c < l; ++c) out[c] += v * wr[c];
        }
      }
    });
  }

  void apply_t(matrix_view<const T> y, matrix_view<T> z, std::vector<T>& partial) const {
    const index_t n = x.rows();
    const index_t d = x.cols();
    const index_t l = y.cols();
    const index_t blocks = (n + sparse_block_rows - 1) / sparse_block_rows;
    partial.assign(static_cast<std::size_t>(blocks * d * l), T(0));
    std::vector<double> column_sums(static_cast<std::size_t>(blocks * l), 0.0);
    parallel_blocks(threads, blocks, [&](int, index_t b) {
      T* p = partial.data() + b * d * l;
      double* s = column_sums.data() + b * l;
      const index_t last = std::min(n, (b + 1) * sparse_block_rows);
      for (index_t i = b * sparse_block_rows; i < last; ++i) {
        const T* yr = y.row_data(i);
        for (index_t c = 0; c < l; ++c) s[c] += static_cast<double>(yr[c]);
        for (index_t k = x.row_begin(i); k < x.row_end(i); ++k) {
          const T v = x.values()[k];
          T* zr = p + static_cast<index_t>(x.indices()[k]) * l;
          for (index_t c = 0; c < l; ++c) zr[c] += v * yr[c];
        }
      }
    });
    dense_centred_operator<T>::merge_partials(partial, blocks, d * l, z);
    std::vector<double> ones_y(static_cast<std::size_t>(l), 0.0);
    for (index_t b = 0; b < blocks; ++b)
      for (index_t c = 0; c < l; ++c)
        ones_y[static_cast<std::size_t>(c)] += column_sums[static_cast<std::size_t>(b * l + c)];
    for (index_t j = 0; j < d; ++j)
      for (index_t c = 0; c < l; ++c)
        z(j, c) = static_cast<T>(static_cast<double>(z(j, c)) -
                                 mean[static_cast<std::size_t>(j)] * ones_y[static_cast<std::size_t>(c)]);
  }
};

/// Orthonormal basis of the columns of `m` (rows x l, rows >= l), in place, in double: Cholesky QR
/// applied twice (G = A^T A = R^T R, A <- A R^-1; the second pass restores orthogonality to
/// rounding). Both steps are level-3 products, cheaper than Householder QR on these
/// tall, thin matrices. If G is not numerically positive definite (rank-deficient A), Householder
/// QR takes over. Eigen runs on one thread, so the bits never depend on the policy.
template <class T>
void orthonormalise(matrix_view<T> m) {
  const cellkit::detail::scoped_omp_threads one_thread(1);
  dmatrix a(m.rows(), m.cols());
  for (index_t i = 0; i < m.rows(); ++i)
    for (index_t c = 0; c < m.cols(); ++c) a(i, c) = static_cast<double>(m(i, c));
  bool cholesky_ok = true;
  for (int pass = 0; pass < 2 && cholesky_ok; ++pass) {
    const Eigen::MatrixXd gram = a.transpose() * a;
    const Eigen::LLT<Eigen::MatrixXd> llt(gram);
    cholesky_ok = llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > 0.0;
    if (cholesky_ok) llt.matrixU().template solveInPlace<Eigen::OnTheRight>(a);
  }
  if (!cholesky_ok) {
    for (index_t i = 0; i < m.rows(); ++i)
      for (index_t c = 0; c < m.cols(); ++c) a(i, c) = static_cast<double>(m(i, c));
    Eigen::HouseholderQR<dmatrix> qr(a);
    a = qr.householderQ() * dmatrix::Identity(m.rows(), m.cols());
  }
  for (index_t i = 0; i < m.rows(); ++i)
    for (index_t c = 0; c < m.cols(); ++c) m(i, c) = static_cast<T>(a(i, c));
}

/// scikit-learn's svd_flip (u-based): the largest-magnitude entry of each score column positive.
template <class T>
void flip_signs(pca_result<T>& r) {
  for (index_t a = 0; a < r.k; ++a) {
    index_t best = 0;
    double best_abs = -1.0;
    for (index_t i = 0; i < r.n; ++i) {
      const double v = std::fabs(static_cast<double>(r.scores[static_cast<std::size_t>(i * r.k + a)]));
      if (v > best_abs) {
        best_abs = v;
        best = i;
      }
    }
    if (r.scores[static_cast<std::size_t>(best * r.k + a)] < T(0)) {
      for (index_t i = 0; i < r.n; ++i) r.scores[static_cast<std::size_t>(i * r.k + a)] *= T(-1);
      for (index_t j = 0; j < r.d; ++j) r.components[static_cast<std::size_t>(a * r.d + j)] *= T(-1);
    }
  }
}

inline void check_pca_params(index_t n, index_t d, const pca_params& params) {
  constexpr const char* fn = "pca";
  CELLKIT_EXPECTS(n >= 2, fn, "x", "needs at least 2 rows, got " + std::to_string(n));
  CELLKIT_EXPECTS(params.n_components >= 1 && params.n_components <= std::min(n, d), fn, "params.n_components",
                  "must be in [1, min(n, d)] = [1, " + std::to_string(std::min(n, d)) + "], got " +
                      std::to_string(params.n_components));
  CELLKIT_EXPECTS(params.oversamples >= 0, fn, "params.oversamples", "must be >= 0");
  CELLKIT_EXPECTS(params.power_iterations >= -1, fn, "params.power_iterations", "must be >= 0 (or -1 for automatic)");
}

inline pca_solver choose_solver(index_t n, index_t d, const pca_params& params) {
  if (params.solver != pca_solver::automatic) return params.solver;
  const index_t small = std::min(n, d);
  if (std::max(n, d) <= 500 || static_cast<double>(params.n_components) >= 0.8 * static_cast<double>(small))
    return pca_solver::exact;
  return pca_solver::randomized;
}

/// Exact PCA of the centred dense matrix `xc` (n x d, double).
template <class T>
void exact_svd(const dmatrix& xc, pca_result<T>& r) {
  const cellkit::detail::scoped_omp_threads one_thread(1);
  Eigen::BDCSVD<dmatrix> svd(xc, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const auto& u = svd.matrixU();
  const auto& v = svd.matrixV();
  const auto& s = svd.singularValues();
  r.scores.resize(static_cast<std::size_t>(r.n * r.k));
  r.components.resize(static_cast<std::size_t>(r.k * r.d));
  r.singular_values.resize(static_cast<std::size_t>(r.k));
  for (index_t a = 0; a < r.k; ++a) {
    r.singular_values[static_cast<std::size_t>(a)] = s(a);
    for (index_t i = 0; i < r.n; ++i) r.scores[static_cast<std::size_t>(i * r.k + a)] = static_cast<T>(u(i, a) * s(a));
    for (index_t j = 0; j < r.d; ++j) r.components[static_cast<std::size_t>(a * r.d + j)] = static_cast<T>(v(j, a));
  }
}

/// Randomised PCA through `op` (rows x cols): fills scores, components and singular values.
template <class T, class Op>
void randomized_svd(const Op& op, const pca_params& params, pca_result<T>& r) {
  const index_t n = op.rows();
  const index_t d = op.cols();
  const index_t l = std::min(r.k + params.oversamples, std::min(n, d));
  int q = params.power_iterations;
  if (q < 0) q = static_cast<double>(r.k) < 0.1 * static_cast<double>(std::min(n, d)) ? 7 : 4;
  r.power_iterations = q;
  host_buffer<T> omega(d * l, uninitialized);
  for (index_t j = 0; j < d; ++j) {
    philox_engine eng(params.seed, pca_stream, static_cast<std::uint64_t>(j));
    for (index_t c = 0; c < l; ++c) omega[j * l + c] = static_cast<T>(normal<double>(eng));
  }
  host_buffer<T> y(n * l, uninitialized);
  std::vector<T> partial;
  auto w = omega.as_matrix(d, l);
  auto yv = y.as_matrix(n, l);
  op.apply(matrix_view<const T>(w), yv);
  for (int it = 0; it < q; ++it) {
    orthonormalise(yv);
    op.apply_t(matrix_view<const T>(yv), w, partial);
    orthonormalise(w);
    op.apply(matrix_view<const T>(w), yv);
  }
  orthonormalise(yv);
  // B^T = Xc^T Q (d x l); B = Ub S Vt  <=>  B^T = V S Ub^T.
  op.apply_t(matrix_view<const T>(yv), w, partial);
  dmatrix bt(d, l);
  for (index_t j = 0; j < d; ++j)
    for (index_t c = 0; c < l; ++c) bt(j, c) = static_cast<double>(w(j, c));
  const cellkit::detail::scoped_omp_threads one_thread(1);
  Eigen::BDCSVD<dmatrix> svd(bt, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const dmatrix& v = svd.matrixU();   // d x l: right singular vectors of B
  const dmatrix& ub = svd.matrixV();  // l x l: left singular vectors of B
  const auto& s = svd.singularValues();
  r.singular_values.resize(static_cast<std::size_t>(r.k));
  r.components.resize(static_cast<std::size_t>(r.k * d));
  for (index_t a = 0; a < r.k; ++a) {
    r.singular_values[static_cast<std::size_t>(a)] = s(a);
    for (index_t j = 0; j < d; ++j) r.components[static_cast<std::size_t>(a * d + j)] = static_cast<T>(v(j, a));
  }
  // scores = Q Ub_k S_k: an n x l by l x k product.
  host_buffer<T> coefficients(l * r.k, uninitialized);
  for (index_t c = 0; c < l; ++c)
    for (index_t a = 0; a < r.k; ++a) coefficients[c * r.k + a] = static_cast<T>(ub(c, a) * s(a));
  r.scores.resize(static_cast<std::size_t>(n * r.k));
  const auto cm = std::as_const(coefficients).as_matrix(l, r.k);
  const matrix_view<T> scores(r.scores.data(), n, r.k);
  const row_blocks part(n);
  parallel_blocks(op.threads, part.count, [&](int, index_t b) {
    gemm(serial{}, matrix_view<const T>(yv).row_block(part.first(b), part.size(b, n)), cm,
         scores.row_block(part.first(b), part.size(b, n)));
  });
}

template <class T>
void finish(pca_result<T>& r, const std::vector<double>& column_variance) {
  r.total_variance = 0.0;
  for (const double v : column_variance) r.total_variance += v;
  r.explained_variance.resize(static_cast<std::size_t>(r.k));
  r.explained_variance_ratio.resize(static_cast<std::size_t>(r.k));
  for (index_t a = 0; a < r.k; ++a) {
    const double s = r.singular_values[static_cast<std::size_t>(a)];
    r.explained_variance[static_cast<std::size_t>(a)] = s * s / static_cast<double>(r.n - 1);
    r.explained_variance_ratio[static_cast<std::size_t>(a)] =
        r.total_variance > 0 ? r.explained_variance[static_cast<std::size_t>(a)] / r.total_variance : 0.0;
  }
  flip_signs(r);
}

}  // namespace detail

/// PCA of dense x (n x d, float or double, any row stride). See the file comment.
template <class Policy, class TX, class SX>
pca_result<std::remove_const_t<TX>> pca(const Policy& policy, matrix_view<TX, SX> x, const pca_params& params = {}) {
  detail::check_host_policy<Policy, SX>();
  using T = std::remove_const_t<TX>;
  static_assert(detail::is_real_v<T>, "pca: x must hold float or double");
  const index_t n = x.rows();
  const index_t d = x.cols();
  detail::check_pca_params(n, d, params);
#if CELLKIT_DEBUG_CHECKS
  cellkit::cluster::detail::expect_all_finite<T>(matrix_view<const T>(x), "pca", "x");
#endif
  const int threads = detail::host_threads(policy);
  pca_result<T> r;
  r.n = n;
  r.d = d;
  r.k = params.n_components;
  r.solver = detail::choose_solver(n, d, params);
  // Column means and variances in double over fixed blocks.
  const index_t blocks = detail::block_count(n);
  const int work_threads = detail::effective_threads(threads, static_cast<double>(n) * static_cast<double>(d));
  std::vector<double> partial(static_cast<std::size_t>(blocks * d), 0.0);
  detail::parallel_blocks(work_threads, blocks, [&](int, index_t b) {
    double* p = partial.data() + b * d;
    const index_t last = std::min(n, (b + 1) * detail::block_rows);
    for (index_t i = b * detail::block_rows; i < last; ++i)
      for (index_t j = 0; j < d; ++j) p[j] += static_cast<double>(x(i, j));
  });
  r.mean.assign(static_cast<std::size_t>(d), 0.0);
  for (index_t b = 0; b < blocks; ++b)
    for (index_t j = 0; j < d; ++j) r.mean[static_cast<std::size_t>(j)] += partial[static_cast<std::size_t>(b * d + j)];
  for (double& m : r.mean) m /= static_cast<double>(n);
  std::fill(partial.begin(), partial.end(), 0.0);
  detail::parallel_blocks(work_threads, blocks, [&](int, index_t b) {
    double* p = partial.data() + b * d;
    const index_t last = std::min(n, (b + 1) * detail::block_rows);
    for (index_t i = b * detail::block_rows; i < last; ++i)
      for (index_t j = 0; j < d; ++j) {
        const double c = static_cast<double>(x(i, j)) - r.mean[static_cast<std::size_t>(j)];
        p[j] += c * c;
      }
  });
  std::vector<double> variance(static_cast<std::size_t>(d), 0.0);
  for (index_t b = 0; b < blocks; ++b)
    for (index_t j = 0; j < d; ++j)
      variance[static_cast<std::size_t>(j)] += partial[static_cast<std::size_t>(b * d + j)];
  for (double& v : variance) v /= static_cast<double>(n - 1);

  if (r.solver == pca_solver::exact) {
    detail::dmatrix xc(n, d);
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < d; ++j) xc(i, j) = static_cast<double>(x(i, j)) - r.mean[static_cast<std::size_t>(j)];
    detail::exact_svd(xc, r);
  } else {
    host_buffer<T> centred(n * d, uninitialized);
    detail::parallel_blocks(work_threads, blocks, [&](int, index_t b) {
      const index_t last = std::min(n, (b + 1) * detail::block_rows);
      for (index_t i = b * detail::block_rows; i < last; ++i)
        for (index_t j = 0; j < d; ++j)
          centred[i * d + j] = static_cast<T>(static_cast<double>(x(i, j)) - r.mean[static_cast<std::size_t>(j)]);
    });
    const detail::dense_centred_operator<T> op{std::as_const(centred).as_matrix(n, d), threads};
    detail::randomized_svd(op, params, r);
  }
  detail::finish(r, variance);
  return r;
}

/// PCA of CSR x (n x d): the randomised solver never densifies (implicit centring); the exact
/// solver forms the dense centred matrix (small inputs only). See the file comment.
template <class Policy, class TX, class Index, class SX>
pca_result<std::remove_const_t<TX>> pca(const Policy& policy, csr_view<TX, Index, SX> x,
                                        const pca_params& params = {}) {
  detail::check_host_policy<Policy, SX>();
  using T = std::remove_const_t<TX>;
  static_assert(detail::is_real_v<T>, "pca: x must hold float or double");
  const index_t n = x.rows();
  const index_t d = x.cols();
  detail::check_pca_params(n, d, params);
  const csr_view<const T, Index> xc = x;
#if CELLKIT_DEBUG_CHECKS
  detail::expect_finite_values(xc, "pca", "x");
#endif
  const int threads = detail::host_threads(policy);
  pca_result<T> r;
  r.n = n;
  r.d = d;
  r.k = params.n_components;
  r.solver = detail::choose_solver(n, d, params);
  std::vector<double> variance;
  detail::column_mean_var(
      threads, xc, [](double v) { return v; }, r.mean, variance);
  if (r.solver == pca_solver::exact) {
    detail::dmatrix dense(n, d);
    for (index_t i = 0; i < n; ++i) {
      for (index_t j = 0; j < d; ++j) dense(i, j) = -r.mean[static_cast<std::size_t>(j)];
      for (index_t k = xc.row_begin(i); k < xc.row_end(i); ++k)
        dense(i, static_cast<index_t>(xc.indices()[k])) += static_cast<double>(xc.values()[k]);
    }
    detail::exact_svd(dense, r);
  } else {
    const detail::sparse_centred_operator<T, Index> op{xc, r.mean, threads};
    detail::randomized_svd(op, params, r);
  }
  detail::finish(r, variance);
  return r;
}

}  // namespace cellkit::preprocess
