#pragma once
/// @file
/// Public parameter and output types shared by the array functions of <cellkit/likelihood/nb.hpp>,
/// <cellkit/likelihood/zinb.hpp> and <cellkit/likelihood/poisson.hpp> (documented there and in
/// docs/likelihood.md). Include one of those headers, not this one.

#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/memory_space.hpp>
#include <cellkit/core/views.hpp>

#include <cstdint>
#include <optional>
#include <type_traits>

namespace cellkit::likelihood {

/// How `*_nll` reduces the per-element losses to the returned scalar (and scales the gradients).
enum class reduction {
  sum,  ///< sum over the included elements
  mean  ///< sum / number of included elements (cells x genes without a mask); 0 when none is included
};

/// The zero-inflation parameter of ZINB: a probability (DCA, scDeepCluster, scTAG) or its logit
/// (scvi-tools). Gradients d_pi are with respect to the parameter as given.
enum class pi_parameter {
  probability,  ///< pi in [0, 1]
  logits        ///< pi = sigmoid(logit), logit in [-inf, +inf]
};

/// A per-gene or per-element parameter (theta) or its gradient: either a vector of `genes` entries
/// (broadcast over cells; stored as one row: rows() == 1) or a cells x genes matrix. Converts
/// implicitly from `vector_view` and `matrix_view`. Element (i, j) is `data[i * row_stride + j]`
/// with row_stride = 0 for a vector.
template <class T, class Space = host_space>
class gene_param_view {
 public:
  using value_type = std::remove_cv_t<T>;
  using space = Space;

  gene_param_view() = default;
  /// One value per gene (length = genes), shared by all cells.
  template <class U, std::enable_if_t<std::is_same_v<U, T> || std::is_same_v<const U, T>, int> = 0>
  gene_param_view(vector_view<U, Space> v) : data_(v.data()), rows_(1), cols_(v.size()), stride_(v.size()) {}
  /// One value per element (rows = cells), or a 1 x genes matrix (per gene).
  template <class U, std::enable_if_t<std::is_same_v<U, T> || std::is_same_v<const U, T>, int> = 0>
  gene_param_view(matrix_view<U, Space> m) : data_(m.data()), rows_(m.rows()), cols_(m.cols()), stride_(m.stride()) {}

  T* data() const { return data_; }
  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }
  index_t stride() const { return stride_; }
  /// True for one value per gene (rows() == 1; a 1 x genes problem counts as per gene too).
  bool per_gene() const { return rows_ == 1; }
  /// The row stride used to address element (i, j): 0 per gene, stride() per element.
  index_t row_stride() const { return rows_ == 1 ? 0 : stride_; }
  shape2 shape() const { return {rows_, cols_}; }

 private:
  T* data_ = nullptr;
  index_t rows_ = 0;
  index_t cols_ = 0;
  index_t stride_ = 0;
};

/// Options of the array functions (`nb_nll`, `zinb_nll`, `poisson_nll` and the `*_log_prob` arrays).
///
/// - `reduce`: sum (default) or mean of the per-element losses; the gradients are those of the
///   returned scalar.
/// - `size_factors`: per-cell factors s_i (length cells, finite, >= 0). When given, the mean used in
///   the likelihood is s_i * mu_ij and d_mu is the gradient with respect to the given mu_ij (it
///   includes the factor s_i). Leave it empty when mu is already scaled (scDeepCluster passes
///   mean = size_factor * decoder output: either form works).
/// - `mask`: cells x genes, element (i, j) is included iff mask(i, j) != 0 (`Mask` = std::uint8_t,
///   bool, float or double; floating masks must hold 0 or 1). Excluded elements add nothing to the
///   loss, per_cell and per_gene, and get zero gradients; `log_prob` is written for every element.
/// - `pi`, `ridge_lambda` (ZINB only; NB and Poisson reject a non-default value): the pi
///   parametrisation and DCA's ridge penalty lambda * pi^2 added to each included element's loss
///   (pi the probability, also in the logits parametrisation). lambda must be finite and >= 0.
/// - `check_inputs`: run the per-element checks (counts finite and >= 0, mu finite and >= 0,
///   theta > 0 or +inf, pi in [0, 1] or a non-NaN logit, size factors finite and >= 0, mask 0/1)
///   also when `CELLKIT_DEBUG_CHECKS` is 0. They always run when it is 1.
template <class T, class Space = host_space, class Mask = std::uint8_t>
struct nll_options {
  reduction reduce = reduction::sum;
  std::optional<vector_view<const T, Space>> size_factors{};
  std::optional<matrix_view<const Mask, Space>> mask{};
  pi_parameter pi = pi_parameter::probability;
  T ridge_lambda = T(0);
  bool check_inputs = false;
};

/// Outputs of `*_nll` beyond the returned loss; every member is optional and skipped when empty.
/// Gradients are of the returned loss (the negative log-likelihood, summed or averaged) and are
/// overwritten, not accumulated.
///
/// - `d_mu`: cells x genes, d loss / d mu_ij (with size factors: with respect to the given mu).
/// - `d_theta`: theta's shape: a vector of genes (per-gene theta; the gradient summed over cells) or
///   cells x genes (per-element theta). Not for Poisson.
/// - `d_pi`: cells x genes, d loss / d pi_ij or d loss / d logit_ij (ZINB only).
/// - `per_cell`: length cells, the loss of each cell (sum over its included genes; not divided by
///   anything, also with reduction::mean).
/// - `per_gene`: length genes, the loss of each gene (sum over included cells).
/// - `log_prob`: cells x genes, log p(x_ij) of every element (mask ignored; the ridge term not included).
template <class T, class Space = host_space>
struct nll_outputs {
  std::optional<matrix_view<T, Space>> d_mu{};
  std::optional<gene_param_view<T, Space>> d_theta{};
  std::optional<matrix_view<T, Space>> d_pi{};
  std::optional<vector_view<T, Space>> per_cell{};
  std::optional<vector_view<T, Space>> per_gene{};
  std::optional<matrix_view<T, Space>> log_prob{};
};

}  // namespace cellkit::likelihood
