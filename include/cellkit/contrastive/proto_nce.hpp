#pragma once
/// @file
/// ProtoNCE, the prototypical contrastive loss of PCL (Li et al., "Prototypical Contrastive
/// Learning of Unsupervised Representations", ICLR 2021), used by scGPCL with k-means prototypes at
/// several granularities, with gradients for the embeddings and the prototypes, and PCL's
/// per-cluster concentration estimate (namespace `cellkit::contrastive`).
///
/// ## Definition
///
/// For T clusterings t = 1..T, each with assignments c_t(i) in [0, K_t) of the N embeddings,
/// prototypes (centroids) z^t_j (K_t x d) and a concentration phi^t_j > 0 per prototype (or one
/// temperature for all):
///
///     logit_tij = s(h_i, z^t_j) / phi^t_j      (s: cosine similarity, both sides L2-normalised
///                                               inside the loss with F.normalize's eps)
///     loss = -(1/N) sum_i (1/T) sum_t [ logit_t,i,c_t(i) - log sum_{j in D_t(i)} e^{logit_tij} ]
///
/// (COMPONENTS.md). D_t(i) is the positive prototype c_t(i) plus either every other prototype
/// (`negatives < 0`, the default) or r = `negatives` of them drawn uniformly without replacement
/// for this anchor and clustering (PCL's "r negative prototypes"; r >= K_t - 1 means all of them).
/// The draws of anchor i in clustering t come only from
/// `philox_engine(seed, /*stream*/ t, /*element*/ i)` (Floyd's algorithm with Lemire's unbiased
/// bounded integers; detail/proto_nce_impl.hpp), so they are the same for every policy and thread
/// count and reproducible from (seed, t, i).
///
/// Departures from PCL's code, on purpose: PCL samples one set of r negatives per mini-batch from
/// the prototypes that are no batch member's positive and lets every anchor also contrast against
/// the other anchors' positive prototypes (with duplicates); here every anchor draws its own r
/// negatives (the paper's formula). PCL's logits use dot products of already-normalised vectors;
/// normalising inside the loss is the same for normalised inputs and gives the gradient through the
/// normalisation otherwise. The instance-wise InfoNCE term of PCL is `info_nce` (info_nce.hpp).
///
/// **Prototypes without members.** A prototype that no anchor of this call is assigned to (common
/// in mini-batches: the prototypes come from clustering the whole data set) stays in every
/// denominator as a negative, as in PCL, and receives a gradient. It is not an error.
/// (`prototype_concentration`, which needs every cluster's members, rejects empty clusters.)
///
/// ## Arguments
///
/// `proto_nce(policy, embeddings, clusterings, grad_embeddings, grad_centroids, params)`:
/// - `embeddings`: N x d `matrix_view` of float or double (strides allowed).
/// - `clusterings`: a contiguous sequence (std::vector, std::span, std::array) of
///   `prototype_set<T, L>`: `assignments` (N integers of type L in [0, K_t)), `centroids`
///   (K_t x d) and optional `concentration` (K_t positive values, e.g. from
///   `prototype_concentration`; std::nullopt uses `params.temperature` for every prototype).
/// - `grad_embeddings`: std::optional N x d output; `grad_centroids`: std::optional span of T
///   outputs, the t-th of shape K_t x d. Gradients are overwritten; outputs must not overlap.
/// - `params`: temperature > 0 (default 0.1), eps > 0 (default 1e-12), negatives (default -1 = all),
///   seed (default 0).
/// Errors: no clustering, assignments of the wrong length, centroids of the wrong width, a
/// concentration of the wrong length or a gradient of the wrong shape (`dimension_mismatch`);
/// an assignment outside [0, K_t), K_t = 0, a non-positive or non-finite concentration or
/// temperature, non-finite inputs (`invalid_argument`, naming `clusterings[t].field`).
///
/// ## Cost, memory, determinism
///
/// Per clustering: one GEMM of N x K_t x d for the logits, one more for the embeddings' gradient and
/// one for the prototypes' gradient (2 N K_t d flops each) and O(N K_t) exponentials (with sampling
/// the logits are still computed for all prototypes: the cost does not shrink with r). Memory:
/// normalised copies (N d + sum K_t d), O(256 K_t) per thread, and with prototype gradients one
/// N x K_max matrix of dL/dlogits. Rows are processed in fixed blocks of 256 with serial GEMMs and
/// all sums follow fixed orders: bit-identical for every thread count.
///
/// `cuda{stream}` with device views (embeddings, and each set as `prototype_set<T, L,
/// device_space>`) runs the portable evaluation of detail/portable_proto_nce.hpp: per clustering
/// the N x K logits by one cuBLAS GEMM, one thread per anchor for its denominator (the same Philox
/// draws as the host, so the same negatives), log-sum-exp and row of dL/dlogits, and two GEMMs for
/// the gradients. Memory: the N x K logits per clustering (plus N x K mask bytes when sampling).
/// No atomics: repeated runs give the same bits; results agree with the host to rounding (the
/// tests check 1e-12 in double). The checks read device memory; the call synchronises.
/// `prototype_concentration` under cuda computes the N distances on the device and the O(N + K log K)
/// per-cluster bookkeeping on the host (assignments and distances are copied back).
///
/// ## Concentration (PCL's run_kmeans)
///
/// `prototype_concentration(policy, embeddings, assignments, centroids, phi, params)` writes, for
/// each cluster c with members V_c (the embeddings as clustered, not normalised here):
///
///     phi_c = (sum_{v in V_c} ||v - z_c||_2) / (|V_c| log(|V_c| + alpha))     (|V_c| >= 2)
///     phi_c = max over the clusters with >= 2 members                         (|V_c| = 1)
///     phi   = clip(phi, percentile(phi, 10), percentile(phi, 90))             (numpy's linear percentiles)
///     phi   = temperature * phi / mean(phi)
///
/// exactly as PCL's main_pcl.py (alpha = 10, temperature = 0.2 there; parameters here). PCL gives an
/// empty cluster the maximum too; here a cluster with no member is an `invalid_argument`
/// (k-means on the whole data set should not produce one; it usually means the assignments are of
/// a subset). Also rejected: no cluster with two or more members, or all distances 0 (no scale).
/// Cost O(N d + K log K).
///
/// ## Example
///
/// ```cpp
/// using namespace cellkit::contrastive;
/// std::vector<float> phi(k);
/// prototype_concentration(cellkit::openmp{2}, h, labels_view, centroids, cellkit::make_vector_view(phi.data(), k),
///                         {.temperature = 0.2f});
/// std::vector<prototype_set<float, int>> sets = {{labels_view, centroids, phi_view}};
/// float loss = proto_nce(cellkit::openmp{2}, h, sets, grad_h, std::nullopt, {.negatives = 16, .seed = epoch});
/// ```

#include <cellkit/contrastive/detail/common.hpp>
#include <cellkit/contrastive/detail/portable_proto_nce.hpp>
#include <cellkit/contrastive/detail/proto_nce_impl.hpp>
#include <cellkit/core/buffer.hpp>
#include <cellkit/core/config.hpp>
#include <cellkit/core/error.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/execution/policy.hpp>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace cellkit::contrastive {

/// One clustering of the N embeddings (see the file comment). Space: where the three arrays are
/// (device_space with the cuda policy).
template <class T, class L = std::int32_t, class Space = host_space>
struct prototype_set {
  vector_view<const L, Space> assignments;                   ///< N cluster indices in [0, K)
  matrix_view<const T, Space> centroids;                     ///< K x d prototypes
  std::optional<vector_view<const T, Space>> concentration;  ///< K values phi_j > 0, or std::nullopt
};

/// Parameters of `proto_nce`.
template <class T>
struct proto_nce_params {
  T temperature = T(0.1);  ///< phi for clusterings without a concentration
  T eps = T(1e-12);        ///< normalisation floor (F.normalize's eps)
  index_t negatives = -1;  ///< r negative prototypes per anchor and clustering; < 0: all
  std::uint64_t seed = 0;  ///< Philox seed of the sampling (unused when all prototypes are used)
};

/// Parameters of `prototype_concentration`.
template <class T>
struct concentration_params {
  T alpha = T(10);             ///< smoothing inside log(|V_c| + alpha)
  T temperature = T(0.2);      ///< the mean of the returned phi (PCL's --temperature)
  T lower_percentile = T(10);  ///< clip below this percentile of phi
  T upper_percentile = T(90);  ///< clip above this percentile of phi
};

namespace detail {

template <class S>
struct is_prototype_set : std::false_type {};
template <class T, class L, class Space>
struct is_prototype_set<prototype_set<T, L, Space>> : std::true_type {};

template <class R>
concept prototype_sequence = requires(const R& r) {
  {r.data()};
  { r.size() } -> std::convertible_to<std::size_t>;
}
&&is_prototype_set<std::remove_cv_t<std::remove_pointer_t<decltype(std::declval<const R&>().data())>>>::value;

inline std::string clustering_field(index_t t, const char* field) {
  return "clusterings[" + std::to_string(t) + "]." + field;
}

/// Every assignment in [0, k), else invalid_argument naming the first bad one (device: one
/// reduction, and the bad value copied back).
template <class Policy, class L, class Space>
void check_assignments(const Policy& policy, const char* fn, const std::string& name,
                       vector_view<const L, Space> assignments, index_t k) {
  index_t bad = no_element;
  if constexpr (std::is_same_v<Space, host_space>) {
    for (index_t i = 0; i < assignments.size() && bad == no_element; ++i)
      if (!(assignments[i] >= 0 && static_cast<index_t>(assignments[i]) < k)) bad = i;
  } else {
    bad = transform_reduce(policy, assignments.size(), no_element, min_op{},
                           first_bad_assignment_fn<L>{assignments.data(), k});
  }
  if (bad == no_element) return;
  const L value = download(policy, vector_view<const L, Space>(assignments.data() + bad, 1))[0];
  ::cellkit::detail::throw_invalid_argument(fn, name.c_str(),
                                            "assignments[" + std::to_string(bad) + "] = " + std::to_string(value) +
                                                " is outside [0, " + std::to_string(k) + ")");
}

/// Every concentration positive and finite, else invalid_argument naming the first bad one.
template <class Policy, class T, class Space>
void check_concentration(const Policy& policy, const char* fn, const std::string& name,
                         vector_view<const T, Space> phi) {
  index_t bad = no_element;
  if constexpr (std::is_same_v<Space, host_space>) {
    for (index_t j = 0; j < phi.size() && bad == no_element; ++j)
      if (!(phi[j] > T(0) && phi[j] <= std::numeric_limits<T>::max())) bad = j;
  } else {
    bad = transform_reduce(policy, phi.size(), no_element, min_op{}, first_bad_concentration_fn<T>{phi.data()});
  }
  if (bad == no_element) return;
  const T value = download(policy, vector_view<const T, Space>(phi.data() + bad, 1))[0];
  ::cellkit::detail::throw_invalid_argument(fn, name.c_str(),
                                            "concentration[" + std::to_string(bad) +
                                                "] = " + number_text(static_cast<double>(value)) +
                                                " must be positive and finite");
}

/// The evaluation the cuda policy runs (checked arguments; any policy: the tests run it on the host).
template <class Policy, class T, class Space, class Set>
double portable_proto_nce(const Policy& policy, matrix_view<const T, Space> h, std::span<const Set> sets,
                          std::optional<matrix_view<T, Space>> grad_embeddings,
                          std::optional<std::span<const matrix_view<T, Space>>> grad_centroids,
                          const proto_nce_params<T>& params, T scale) {
  const index_t n = h.rows();
  const index_t d = h.cols();
  const auto t_count = static_cast<index_t>(sets.size());
  portable_normalized_rows<T, Space> u(n, d);
  portable_normalize_into(policy, h, params.eps, u, 0);
  auto du = make_scratch<T, Space>(grad_embeddings ? n * d : 0);
  std::optional<matrix_view<T, Space>> du_view;
  if (grad_embeddings) {
    du_view = matrix_view<T, Space>(du.data(), n, d);
    for_each_index(policy, n * d, fill_fn<T>{du.data(), T(0)});
  }
  double loss = 0;
  for (index_t t = 0; t < t_count; ++t) {
    const auto& set = sets[static_cast<std::size_t>(t)];
    std::optional<matrix_view<T, Space>> dc;
    if (grad_centroids) dc = (*grad_centroids)[static_cast<std::size_t>(t)];
    portable_proto_nce_clustering(policy, u, set.assignments, set.centroids,
                                  set.concentration ? set.concentration->data() : nullptr, params.temperature,
                                  params.eps, params.negatives, params.seed, static_cast<std::uint32_t>(t), scale, loss,
                                  du_view, dc);
  }
  if (grad_embeddings) {
    ::cellkit::copy(policy, matrix_view<const T, Space>(*du_view), *grad_embeddings);
    portable_normalize_backward(policy, u, 0, *grad_embeddings, T(1));
    synchronize(policy);
  }
  return loss * static_cast<double>(scale);
}

}  // namespace detail

/// ProtoNCE over the clusterings; see the file comment.
template <class Policy, class TE, class SpaceE, detail::prototype_sequence Clusterings>
std::remove_const_t<TE> proto_nce(
    const Policy& policy, matrix_view<TE, SpaceE> embeddings, const Clusterings& clusterings,
    std::type_identity_t<std::optional<matrix_view<std::remove_const_t<TE>, SpaceE>>> grad_embeddings,
    std::type_identity_t<std::optional<std::span<const matrix_view<std::remove_const_t<TE>, SpaceE>>>> grad_centroids,
    const std::type_identity_t<proto_nce_params<std::remove_const_t<TE>>>& params = {}) {
  using T = std::remove_const_t<TE>;
  using set_type = std::remove_cv_t<std::remove_pointer_t<decltype(clusterings.data())>>;
  detail::check_policy<Policy, SpaceE>();
  static_assert(detail::is_real_v<T>, "cellkit::contrastive::proto_nce: embeddings must be float or double");
  static_assert(std::is_same_v<decltype(set_type{}.centroids), matrix_view<const T, SpaceE>>,
                "cellkit::contrastive::proto_nce: the prototype sets must have the embeddings' element type and "
                "memory space");
  constexpr const char* fn = "proto_nce";
  const matrix_view<const T, SpaceE> h(embeddings);
  const index_t n = h.rows();
  const index_t d = h.cols();
  const auto sets = std::span<const set_type>(clusterings.data(), static_cast<std::size_t>(clusterings.size()));
  const auto t_count = static_cast<index_t>(sets.size());
  detail::check_positive_finite(fn, "temperature", params.temperature);
  detail::check_positive_finite(fn, "eps", params.eps);
  CELLKIT_EXPECTS(t_count >= 1, fn, "clusterings", "is empty: ProtoNCE needs at least one clustering");
  CELLKIT_EXPECTS(n >= 1, fn, "embeddings", "has no rows (cells)");
  CELLKIT_EXPECTS(d >= 1, fn, "embeddings", "has no columns (embedding dimensions)");
  detail::check_finite_on(policy, fn, "embeddings", h);
  detail::check_output_shape(fn, "grad_embeddings", grad_embeddings, "embeddings", h.shape());
  if (grad_centroids) {
    expect_shapes(static_cast<index_t>(grad_centroids->size()) == t_count, fn, "grad_centroids",
                  {static_cast<index_t>(grad_centroids->size()), 1}, "clusterings", {t_count, 1},
                  "one centroid gradient per clustering");
  }
  for (index_t t = 0; t < t_count; ++t) {
    const auto& set = sets[static_cast<std::size_t>(t)];
    const std::string a_name = detail::clustering_field(t, "assignments");
    const std::string c_name = detail::clustering_field(t, "centroids");
    const index_t k = set.centroids.rows();
    expect_shapes(set.assignments.size() == n, fn, a_name.c_str(), set.assignments.shape(), "embeddings", h.shape(),
                  "one assignment per row of embeddings");
    expect_shapes(set.centroids.cols() == d, fn, c_name.c_str(), set.centroids.shape(), "embeddings", h.shape(),
                  "centroids have the embedding dimension");
    CELLKIT_EXPECTS(k >= 1, fn, c_name.c_str(), "has no rows (prototypes)");
    detail::check_finite_on(policy, fn, c_name.c_str(), set.centroids);
    detail::check_assignments(policy, fn, a_name, set.assignments, k);
    if (set.concentration) {
      const std::string p_name = detail::clustering_field(t, "concentration");
      expect_shapes(set.concentration->size() == k, fn, p_name.c_str(), set.concentration->shape(), c_name.c_str(),
                    set.centroids.shape(), "one concentration per prototype");
      detail::check_concentration(policy, fn, p_name, *set.concentration);
    }
    if (grad_centroids) {
      const auto& g = (*grad_centroids)[static_cast<std::size_t>(t)];
      const std::string g_name = "grad_centroids[" + std::to_string(t) + "]";
      expect_shapes(g.rows() == k && g.cols() == d, fn, g_name.c_str(), g.shape(), c_name.c_str(),
                    set.centroids.shape(), "a gradient has the shape of its input");
      if (grad_embeddings)
        detail::check_no_overlap(fn, g_name.c_str(), std::optional(g), "grad_embeddings", grad_embeddings);
    }
  }

  const T scale = static_cast<T>(1.0 / (static_cast<double>(n) * static_cast<double>(t_count)));
  if constexpr (is_device_policy_v<Policy>) {
    return static_cast<T>(detail::portable_proto_nce(policy, h, sets, grad_embeddings, grad_centroids, params, scale));
  } else {
    const int threads = ::cellkit::detail::host_threads(policy);
    auto u = detail::make_normalized_rows<T>(n, d);
    detail::normalize_into(threads, h, params.eps, u, 0);
    host_buffer<T> du_buffer(grad_embeddings ? n * d : 0);  // zero: accumulated over clusterings
    matrix_view<T> du_view = grad_embeddings ? du_buffer.as_matrix(n, d) : matrix_view<T>();
    double loss = 0;
    std::vector<index_t> assignment(static_cast<std::size_t>(n));
    for (index_t t = 0; t < t_count; ++t) {
      const auto& set = sets[static_cast<std::size_t>(t)];
      const index_t k = set.centroids.rows();
      for (index_t i = 0; i < n; ++i)
        assignment[static_cast<std::size_t>(i)] = static_cast<index_t>(set.assignments[i]);
      auto c = detail::make_normalized_rows<T>(k, d);
      detail::normalize_into(threads, set.centroids, params.eps, c, 0);
      // cs_j = c_j / phi_j
      std::vector<T> inv_phi(static_cast<std::size_t>(k));
      for (index_t j = 0; j < k; ++j) {
        inv_phi[static_cast<std::size_t>(j)] =
            T(1) / (set.concentration ? (*set.concentration)[j] : params.temperature);
      }
      host_buffer<T> cs(k * d, uninitialized);
      for (index_t j = 0; j < k; ++j) {
        for (index_t m = 0; m < d; ++m) cs[j * d + m] = c.u[j * d + m] * inv_phi[static_cast<std::size_t>(j)];
      }
      std::optional<matrix_view<T>> dc;
      if (grad_centroids) dc = (*grad_centroids)[static_cast<std::size_t>(t)];
      matrix_view<T>* du_ptr = grad_embeddings ? &du_view : nullptr;
      detail::proto_nce_clustering<T>(threads, u.view(), std::as_const(cs).as_matrix(k, d), assignment.data(),
                                      params.negatives, params.seed, static_cast<std::uint32_t>(t), scale, loss, du_ptr,
                                      dc ? &*dc : nullptr);
      if (dc) {
        // dL/dc_j = dL/dcs_j / phi_j, then through the normalisation
        for (index_t j = 0; j < k; ++j) {
          T* row = dc->row_data(j);
          for (index_t m = 0; m < d; ++m) row[m] *= inv_phi[static_cast<std::size_t>(j)];
        }
        detail::normalize_backward(threads, c, 0, *dc, T(1));
      }
    }
    if (grad_embeddings) {
      for (index_t i = 0; i < n; ++i) std::copy_n(du_buffer.data() + i * d, d, grad_embeddings->row_data(i));
      detail::normalize_backward(threads, u, 0, *grad_embeddings, T(1));
    }
    return static_cast<T>(loss * static_cast<double>(scale));
  }
}

/// `proto_nce` with `default_host_policy()`.
template <class TE, detail::prototype_sequence Clusterings>
std::remove_const_t<TE> proto_nce(
    matrix_view<TE> embeddings, const Clusterings& clusterings,
    std::type_identity_t<std::optional<matrix_view<std::remove_const_t<TE>>>> grad_embeddings,
    std::type_identity_t<std::optional<std::span<const matrix_view<std::remove_const_t<TE>>>>> grad_centroids,
    const std::type_identity_t<proto_nce_params<std::remove_const_t<TE>>>& params = {}) {
  return proto_nce(default_host_policy(), embeddings, clusterings, grad_embeddings, grad_centroids, params);
}

/// PCL's per-cluster concentration phi (K values) of a clustering; see the file comment.
template <class Policy, class TE, class SpaceE, class L, class SpaceL, class TC, class SpaceC, class TP, class SpaceP>
void prototype_concentration(const Policy& policy, matrix_view<TE, SpaceE> embeddings,
                             vector_view<L, SpaceL> assignments, matrix_view<TC, SpaceC> centroids,
                             vector_view<TP, SpaceP> phi,
                             const std::type_identity_t<concentration_params<std::remove_const_t<TE>>>& params = {}) {
  using T = std::remove_const_t<TE>;
  detail::check_policy<Policy, SpaceE, SpaceL, SpaceC, SpaceP>();
  static_assert(detail::is_real_v<T>,
                "cellkit::contrastive::prototype_concentration: embeddings must be float or double");
  static_assert(std::is_same_v<std::remove_const_t<TC>, T> && std::is_same_v<TP, T>,
                "cellkit::contrastive::prototype_concentration: centroids and phi (mutable) need the embeddings' type");
  static_assert(std::is_integral_v<std::remove_const_t<L>>,
                "cellkit::contrastive::prototype_concentration: assignments must be integers");
  constexpr const char* fn = "prototype_concentration";
  const matrix_view<const T, SpaceE> h(embeddings), c(centroids);
  const index_t n = h.rows();
  const index_t d = h.cols();
  const index_t k = c.rows();
  expect_shapes(assignments.size() == n, fn, "assignments", assignments.shape(), "embeddings", h.shape(),
                "one assignment per row of embeddings");
  expect_shapes(c.cols() == d, fn, "centroids", c.shape(), "embeddings", h.shape(),
                "centroids have the embedding dimension");
  expect_shapes(phi.size() == k, fn, "phi", phi.shape(), "centroids", c.shape(), "one concentration per centroid");
  CELLKIT_EXPECTS(k >= 1, fn, "centroids", "has no rows (prototypes)");
  detail::check_finite_on(policy, fn, "embeddings", h);
  detail::check_finite_on(policy, fn, "centroids", c);
  CELLKIT_EXPECTS(params.alpha >= T(0) && std::isfinite(params.alpha), fn, "alpha",
                  "must be non-negative and finite, got " + detail::number_text(static_cast<double>(params.alpha)));
  detail::check_positive_finite(fn, "temperature", params.temperature);
  CELLKIT_EXPECTS(params.lower_percentile >= T(0) && params.lower_percentile <= params.upper_percentile &&
                      params.upper_percentile <= T(100),
                  fn, "lower_percentile/upper_percentile", "need 0 <= lower <= upper <= 100");
  using LV = std::remove_const_t<L>;
  const vector_view<const LV, SpaceL> labels(assignments);
  detail::check_assignments(policy, fn, "assignments", labels, k);
  // ||h_i - c_{a_i}|| per point (on the device with cuda), then the per-cluster sums in index order.
  std::vector<double> distance(static_cast<std::size_t>(n));
  std::vector<LV> host_labels;
  if constexpr (is_device_policy_v<Policy>) {
    auto dist = detail::make_scratch<double, SpaceE>(n);
    for_each_index(policy, n, detail::member_distance_fn<T, LV, SpaceE>{h, labels.data(), c, dist.data()});
    distance = detail::download(policy, vector_view<const double, SpaceE>(dist.data(), n));
    host_labels = detail::download(policy, labels);
  } else {
    detail::member_distance_fn<T, LV, SpaceE> point{h, labels.data(), c, distance.data()};
    for (index_t i = 0; i < n; ++i) point(i);
    host_labels.assign(labels.data(), labels.data() + n);
  }
  std::vector<double> total(static_cast<std::size_t>(k), 0.0);
  std::vector<index_t> count(static_cast<std::size_t>(k), 0);
  for (index_t i = 0; i < n; ++i) {
    const auto j = static_cast<std::size_t>(host_labels[static_cast<std::size_t>(i)]);
    total[j] += distance[static_cast<std::size_t>(i)];
    ++count[j];
  }
  std::vector<double> density(static_cast<std::size_t>(k), 0.0);
  double dmax = 0;
  bool any_large = false;
  for (index_t j = 0; j < k; ++j) {
    const auto jj = static_cast<std::size_t>(j);
    CELLKIT_EXPECTS(count[jj] > 0, fn, "assignments",
                    "cluster " + std::to_string(j) +
                        " has no members: the concentration needs every cluster's points "
                        "(pass the assignments of the whole clustered data set)");
    if (count[jj] > 1) {
      density[jj] = total[jj] / static_cast<double>(count[jj]) /
                    std::log(static_cast<double>(count[jj]) + static_cast<double>(params.alpha));
      dmax = std::max(dmax, density[jj]);
      any_large = true;
    }
  }
  CELLKIT_EXPECTS(any_large, fn, "assignments",
                  "every cluster has a single member: no cluster to estimate a concentration from");
  for (index_t j = 0; j < k; ++j) {
    if (count[static_cast<std::size_t>(j)] <= 1) density[static_cast<std::size_t>(j)] = dmax;
  }
  std::vector<double> sorted = density;
  const double lo = detail::percentile_linear(sorted, static_cast<double>(params.lower_percentile));
  const double hi = detail::percentile_linear(sorted, static_cast<double>(params.upper_percentile));
  double mean = 0;
  for (double& v : density) {
    v = std::min(std::max(v, lo), hi);
    mean += v;
  }
  mean /= static_cast<double>(k);
  CELLKIT_EXPECTS(mean > 0, fn, "embeddings", "every point coincides with its centroid: the concentration is 0");
  std::vector<T> result(static_cast<std::size_t>(k));
  for (index_t j = 0; j < k; ++j) {
    result[static_cast<std::size_t>(j)] =
        static_cast<T>(static_cast<double>(params.temperature) * density[static_cast<std::size_t>(j)] / mean);
  }
  copy(policy, vector_view<const T>(result.data(), k), phi);
  synchronize(policy);
}

/// `prototype_concentration` with `default_host_policy()`.
template <class TE, class L, class TC, class TP>
void prototype_concentration(matrix_view<TE> embeddings, vector_view<L> assignments, matrix_view<TC> centroids,
                             vector_view<TP> phi,
                             const std::type_identity_t<concentration_params<std::remove_const_t<TE>>>& params = {}) {
  prototype_concentration(default_host_policy(), embeddings, assignments, centroids, phi, params);
}

}  // namespace cellkit::contrastive
