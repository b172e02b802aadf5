// ProtoNCE's policy-generic evaluation (contrastive/detail/portable_proto_nce.hpp), which the cuda
// policy runs: on host policies it is called directly (so its arithmetic and sampling are checked
// without a GPU); under nvcc the cuda instantiation calls the public functions with device views
// (skipped without a GPU). Both are compared with the host engine, which test_proto_nce.cpp checks
// against PyTorch and central differences.

#include <cellkit/contrastive/proto_nce.hpp>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

using namespace cellkit;
using cellkit::test::on_device;
using cellkit::test::policy_array;
using cellkit::test::policy_of;
using cellkit::test::scaled_error;
namespace ck = cellkit::contrastive;

namespace {

template <class T>
std::vector<T> random_rows(index_t n, index_t d, std::uint64_t seed, index_t zero_row = -1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<T> x(static_cast<std::size_t>(n * d));
  for (index_t i = 0; i < n; ++i)
    for (index_t k = 0; k < d; ++k)
      x[static_cast<std::size_t>(i * d + k)] = i == zero_row ? T(0) : static_cast<T>(normal(rng));
  return x;
}

/// One clustering in host vectors.
template <class T>
struct clustering {
  std::vector<int> assignments;
  std::vector<T> centroids;
  std::vector<T> concentration;  // empty: the temperature
  index_t k;
};

template <class T>
std::vector<clustering<T>> make_clusterings(index_t n, index_t d) {
  std::vector<clustering<T>> out;
  for (const index_t k : {index_t(4), index_t(9)}) {
    clustering<T> c;
    c.k = k;
    for (index_t i = 0; i < n; ++i) c.assignments.push_back(static_cast<int>((i * 5 + k) % k));
    c.centroids = random_rows<T>(k, d, 10 + static_cast<std::uint64_t>(k));
    if (k == 4)
      for (index_t j = 0; j < k; ++j) c.concentration.push_back(static_cast<T>(0.05 + 0.1 * static_cast<double>(j)));
    out.push_back(std::move(c));
  }
  return out;
}

/// The loss and gradients under P (portable evaluation on the host, the public function on the
/// device); empty output vectors are not requested.
template <class P, class T>
T run_proto_nce(const std::vector<T>& h, const std::vector<clustering<T>>& cs, index_t n, index_t d,
                std::vector<T>& grad_h, std::vector<std::vector<T>>& grad_c, const ck::proto_nce_params<T>& params) {
  const auto policy = policy_of<P>();
  using space = typename policy_array<P, T>::space;
  policy_array<P, T> hd(h);
  std::vector<policy_array<P, int>> assignments;
  std::vector<policy_array<P, T>> centroids, concentrations, grads;
  for (const auto& c : cs) {
    assignments.emplace_back(c.assignments);
    centroids.emplace_back(c.centroids);
    concentrations.emplace_back(c.concentration.empty() ? std::vector<T>(1) : c.concentration);
  }
  std::vector<ck::prototype_set<T, int, space>> sets;
  std::vector<matrix_view<T, space>> grad_views;
  for (std::size_t t = 0; t < cs.size(); ++t) {
    const index_t k = cs[t].k;
    std::optional<vector_view<const T, space>> phi;
    if (!cs[t].concentration.empty()) phi = vector_view<const T, space>(concentrations[t].data(), k);
    sets.push_back({vector_view<const int, space>(assignments[t].data(), n), centroids[t].matrix(k, d), phi});
    if (!grad_c.empty()) {
      grads.emplace_back(grad_c[t]);
      grad_views.push_back(grads.back().matrix(k, d));
    }
  }
  // grad_views must not move after this point (the span below refers to it).
  std::optional<policy_array<P, T>> ghd;
  if (!grad_h.empty()) ghd.emplace(grad_h);
  std::optional<matrix_view<T, space>> gh;
  if (ghd) gh = ghd->matrix(n, d);
  std::optional<std::span<const matrix_view<T, space>>> gc;
  if (!grad_c.empty()) gc = std::span<const matrix_view<T, space>>(grad_views);
  T loss;
  if constexpr (on_device<P>) {
    loss = ck::proto_nce(policy, hd.matrix(n, d), sets, gh, gc, params);
  } else {
    const T scale = static_cast<T>(1.0 / (static_cast<double>(n) * static_cast<double>(sets.size())));
    loss = static_cast<T>(ck::detail::portable_proto_nce(policy, matrix_view<const T, space>(hd.matrix(n, d)),
                                                         std::span<const ck::prototype_set<T, int, space>>(sets), gh,
                                                         gc, params, scale));
  }
  if (ghd) grad_h = ghd->to_host();
  for (std::size_t t = 0; t < grads.size(); ++t) grad_c[t] = grads[t].to_host();
  return loss;
}

template <class P, class T>
void compare_proto_nce(double tolerance) {
  const index_t n = 41, d = 6;
  const auto h = random_rows<T>(n, d, 1, 7);  // row 7 is zero: the clamped normalisation
  const auto cs = make_clusterings<T>(n, d);
  std::vector<ck::prototype_set<T, int>> host_sets;
  for (const auto& c : cs) {
    std::optional<vector_view<const T>> phi;
    if (!c.concentration.empty()) phi = vector_view<const T>(c.concentration.data(), c.k);
    host_sets.push_back(
        {vector_view<const int>(c.assignments.data(), n), matrix_view<const T>(c.centroids.data(), c.k, d), phi});
  }
  // All prototypes, 3 sampled negatives (the draws must match the host's), r >= K - 1 (all).
  for (const index_t negatives : {index_t(-1), index_t(3), index_t(20)}) {
    CAPTURE(negatives);
    const ck::proto_nce_params<T> params{.temperature = T(0.2), .negatives = negatives, .seed = 5};
    std::vector<T> gh_ref(static_cast<std::size_t>(n * d));
    std::vector<std::vector<T>> gc_ref;
    std::vector<matrix_view<T>> gc_views;
    for (const auto& c : cs) gc_ref.emplace_back(static_cast<std::size_t>(c.k * d));
    for (std::size_t t = 0; t < cs.size(); ++t) gc_views.emplace_back(gc_ref[t].data(), cs[t].k, d);
    const T ref =
        ck::proto_nce(serial{}, matrix_view<const T>(h.data(), n, d), host_sets, matrix_view<T>(gh_ref.data(), n, d),
                      std::span<const matrix_view<T>>(gc_views.data(), gc_views.size()), params);
    std::vector<T> gh(gh_ref.size());
    std::vector<std::vector<T>> gc;
    for (const auto& c : cs) gc.emplace_back(static_cast<std::size_t>(c.k * d));
    const T got = run_proto_nce<P>(h, cs, n, d, gh, gc, params);
    CHECK(std::fabs(static_cast<double>(got - ref)) <= tolerance * std::fabs(static_cast<double>(ref)));
    CHECK(scaled_error(gh, gh_ref) <= tolerance);
    for (std::size_t t = 0; t < cs.size(); ++t) CHECK(scaled_error(gc[t], gc_ref[t]) <= tolerance);
    // Value only, and the embeddings' gradient alone.
    std::vector<T> none;
    std::vector<std::vector<T>> no_centroids;
    CHECK(std::fabs(static_cast<double>(run_proto_nce<P>(h, cs, n, d, none, no_centroids, params) - ref)) <=
          tolerance * std::fabs(static_cast<double>(ref)));
    std::vector<T> gh_only(gh_ref.size());
    run_proto_nce<P>(h, cs, n, d, gh_only, no_centroids, params);
    CHECK(scaled_error(gh_only, gh_ref) <= tolerance);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("portable ProtoNCE (the cuda evaluation) equals the host engine", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  SUBCASE("double") { compare_proto_nce<P, double>(1e-12); }
  SUBCASE("float") { compare_proto_nce<P, float>(2e-5); }
}

TEST_CASE_TEMPLATE("prototype_concentration and the ProtoNCE checks run in the policy's memory", P,
                   CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto policy = policy_of<P>();
  using space = typename policy_array<P, double>::space;
  const index_t n = 30, d = 4, k = 5;
  const auto h = random_rows<double>(n, d, 3);
  const auto c = random_rows<double>(k, d, 4);
  std::vector<int> labels(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = static_cast<int>((i * 7) % k);
  std::vector<double> phi_ref(static_cast<std::size_t>(k));
  ck::prototype_concentration(serial{}, matrix_view<const double>(h.data(), n, d),
                              vector_view<const int>(labels.data(), n), matrix_view<const double>(c.data(), k, d),
                              vector_view<double>(phi_ref.data(), k), {.temperature = 0.3});
  policy_array<P, double> hd(h), cd(c), phid(static_cast<index_t>(k));
  policy_array<P, int> ld(labels);
  ck::prototype_concentration(policy, hd.matrix(n, d), vector_view<const int, space>(ld.data(), n), cd.matrix(k, d),
                              phid.view(), {.temperature = 0.3});
  CHECK(scaled_error(phid.to_host(), phi_ref) <= 1e-15);

  // A bad assignment and a bad concentration are named with their index and value.
  labels[11] = k;
  policy_array<P, int> bad_labels(labels);
  bool thrown = false;
  try {
    ck::detail::check_assignments(policy, "proto_nce", "clusterings[0].assignments",
                                  vector_view<const int, space>(bad_labels.data(), n), k);
  } catch (const invalid_argument& e) {
    thrown = true;
    CHECK(std::string(e.what()).find("assignments[11] = 5 is outside [0, 5)") != std::string::npos);
  }
  CHECK(thrown);
  policy_array<P, double> bad_phi(std::vector<double>{0.1, 0.2, -1.0, 0.3});
  thrown = false;
  try {
    ck::detail::check_concentration(policy, "proto_nce", "clusterings[0].concentration",
                                    vector_view<const double, space>(bad_phi.data(), 4));
  } catch (const invalid_argument& e) {
    thrown = true;
    CHECK(std::string(e.what()).find("concentration[2] = -1 must be positive") != std::string::npos);
  }
  CHECK(thrown);
}
