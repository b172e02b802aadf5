// The InfoNCE variants' policy-generic evaluation (contrastive/detail/portable_info_nce.hpp), which
// the cuda policy runs: on host policies it is called directly (so its arithmetic is checked
// without a GPU); under nvcc the cuda instantiation calls the public functions with device views
// (skipped without a GPU). Both are compared with the host engines, which test_info_nce.cpp checks
// against PyTorch and central differences.

#include <cellkit/contrastive/info_nce.hpp>
#include <cellkit/core/csr_matrix.hpp>

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
  std::uniform_real_distribution<double> scale(0.3, 3.0);
  std::vector<T> x(static_cast<std::size_t>(n * d));
  for (index_t i = 0; i < n; ++i) {
    const double s = i == zero_row ? 0.0 : scale(rng);
    for (index_t k = 0; k < d; ++k) x[static_cast<std::size_t>(i * d + k)] = static_cast<T>(s * normal(rng));
  }
  return x;
}

template <class T>
matrix_view<T> host_matrix(std::vector<T>& v, index_t rows, index_t cols) {
  return {v.data(), rows, cols};
}

/// A directed weighted graph on n nodes without self-loops, with some empty rows.
struct test_graph {
  std::vector<std::int32_t> indptr, indices;
  std::vector<double> values;
  index_t n;
  explicit test_graph(index_t n_) : n(n_) {
    std::mt19937_64 rng(77);
    std::uniform_real_distribution<double> weight(0.0, 2.0);
    indptr.push_back(0);
    for (index_t i = 0; i < n; ++i) {
      if (i % 5 != 3) {
        for (index_t j = 0; j < n; ++j) {
          if (j != i && (i * 7 + j * 3) % 9 == 0) {
            indices.push_back(static_cast<std::int32_t>(j));
            values.push_back(weight(rng));
          }
        }
      }
      indptr.push_back(static_cast<std::int32_t>(indices.size()));
    }
  }
  csr_view<const double, std::int32_t> view() const {
    return {n, n, static_cast<index_t>(indices.size()), indptr.data(), indices.data(), values.data()};
  }
};

/// Runs the variants under P: the public functions on the device, the portable evaluation directly
/// on the host. Inputs and outputs are host vectors; the runner copies them where P computes.
template <class P, class T>
struct runner {
  decltype(policy_of<P>()) policy = policy_of<P>();
  using space = typename policy_array<P, T>::space;
  using cmat = matrix_view<const T, space>;
  using out = std::optional<matrix_view<T, space>>;

  static out device_out(std::optional<policy_array<P, T>>& g, index_t rows, index_t cols) {
    if (!g) return std::nullopt;
    return g->matrix(rows, cols);
  }

  /// Returns the loss and fills the requested gradients (empty vectors are not requested).
  T two_view(const std::vector<T>& a, const std::vector<T>& b, const std::vector<int>* labels, index_t n, index_t d,
             std::vector<T>& ga, std::vector<T>& gb, const ck::info_nce_params<T>& params) {
    policy_array<P, T> ad(a), bd(b);
    std::optional<policy_array<P, T>> gad, gbd;
    if (!ga.empty()) gad.emplace(ga);
    if (!gb.empty()) gbd.emplace(gb);
    T loss;
    if constexpr (on_device<P>) {
      if (labels != nullptr) {
        policy_array<P, int> ld(*labels);
        loss = ck::supervised_info_nce(policy, ad.matrix(n, d), bd.matrix(n, d), ld.view(), device_out(gad, n, d),
                                       device_out(gbd, n, d), params);
      } else {
        loss = ck::info_nce(policy, ad.matrix(n, d), bd.matrix(n, d), device_out(gad, n, d), device_out(gbd, n, d),
                            params);
      }
    } else {
      const auto opt = ck::detail::check_info_nce_params("test", params);
      std::optional<ck::detail::class_layout> classes;
      if (labels != nullptr) {
        const auto remapped = ck::detail::remap_labels(std::span<const int>(*labels));
        classes.emplace(ck::detail::class_layout{remapped.id, std::vector<index_t>(remapped.count, 0)});
        for (index_t c : classes->id) ++classes->count[static_cast<std::size_t>(c)];
      }
      loss = static_cast<T>(ck::detail::portable_two_view_info_nce(policy, cmat(ad.matrix(n, d)), cmat(bd.matrix(n, d)),
                                                                   classes ? &*classes : nullptr, device_out(gad, n, d),
                                                                   device_out(gbd, n, d), opt));
    }
    if (gad) ga = gad->to_host();
    if (gbd) gb = gbd->to_host();
    return loss;
  }

  T graph(const std::vector<T>& x, const test_graph& g, index_t d, std::vector<T>& grad,
          const ck::info_nce_params<T>& params) {
    const index_t n = g.n;
    policy_array<P, T> xd(x);
    std::optional<policy_array<P, T>> gd;
    if (!grad.empty()) gd.emplace(grad);
    T loss;
    if constexpr (on_device<P>) {
      policy_array<P, std::int32_t> ptr(g.indptr), idx(g.indices);
      policy_array<P, double> val(g.values);
      const csr_view<const double, std::int32_t, space> a(n, n, static_cast<index_t>(g.indices.size()), ptr.data(),
                                                          idx.data(), val.data());
      loss = ck::graph_info_nce(policy, xd.matrix(n, d), a, device_out(gd, n, d), params);
    } else {
      const auto opt = ck::detail::check_info_nce_params("test", params);
      loss = static_cast<T>(ck::detail::portable_graph_info_nce(policy, cmat(xd.matrix(n, d)),
                                                                ck::detail::graph_edges<T>("graph_info_nce", g.view()),
                                                                device_out(gd, n, d), opt));
    }
    if (gd) grad = gd->to_host();
    return loss;
  }

  T bank(const std::vector<T>& q, const std::vector<T>& k, const std::vector<T>& b, index_t n, index_t nb, index_t d,
         std::vector<T>& gq, std::vector<T>& gk, std::vector<T>& gb, const ck::info_nce_params<T>& params) {
    policy_array<P, T> qd(q), kd(k), bd(b.empty() ? std::vector<T>(1) : b);
    std::optional<policy_array<P, T>> gqd, gkd, gbd;
    if (!gq.empty()) gqd.emplace(gq);
    if (!gk.empty()) gkd.emplace(gk);
    if (!gb.empty()) gbd.emplace(gb);
    T loss;
    if constexpr (on_device<P>) {
      loss = ck::info_nce_with_bank(policy, qd.matrix(n, d), kd.matrix(n, d), bd.matrix(nb, d), device_out(gqd, n, d),
                                    device_out(gkd, n, d), device_out(gbd, nb, d), params);
    } else {
      const auto opt = ck::detail::check_info_nce_params("test", params);
      loss = static_cast<T>(ck::detail::portable_bank_info_nce(policy, cmat(qd.matrix(n, d)), cmat(kd.matrix(n, d)),
                                                               cmat(bd.matrix(nb, d)), device_out(gqd, n, d),
                                                               device_out(gkd, n, d), device_out(gbd, nb, d), opt));
    }
    if (gqd) gq = gqd->to_host();
    if (gkd) gk = gkd->to_host();
    if (gbd) gb = gbd->to_host();
    return loss;
  }
};

template <class T>
void check_loss(T got, T expected, double tolerance, const char* what) {
  INFO(what);
  CHECK(std::fabs(static_cast<double>(got) - static_cast<double>(expected)) <=
        tolerance * std::max(1.0, std::fabs(static_cast<double>(expected))));
}

template <class T>
void check_gradient(const std::vector<T>& got, const std::vector<T>& expected, double tolerance, const char* what) {
  INFO(what);
  CHECK(scaled_error(got, expected) <= tolerance);
}

/// Every variant under P against the host engines (serial), for one tile shape.
template <class P, class T>
void compare_variants(const ck::info_nce_params<T>& params, double tolerance) {
  runner<P, T> run;
  const index_t n = 37, d = 5;
  const auto a = random_rows<T>(n, d, 1, 4);  // row 4 is zero: the clamped normalisation
  const auto b = random_rows<T>(n, d, 2);
  const std::vector<T> zeros(static_cast<std::size_t>(n * d));

  // Two views and SupCon (labels with classes of 1 to 9 samples), with both, one or no gradients.
  std::vector<int> labels(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = static_cast<int>((i * i) % 11) - 3;
  const std::vector<int>* label_cases[] = {nullptr, &labels};
  for (const std::vector<int>* lab : label_cases) {
    std::vector<T> ga_ref(zeros), gb_ref(zeros);
    const T ref =
        lab == nullptr
            ? ck::info_nce(serial{}, matrix_view<const T>(a.data(), n, d), matrix_view<const T>(b.data(), n, d),
                           host_matrix(ga_ref, n, d), host_matrix(gb_ref, n, d), params)
            : ck::supervised_info_nce(serial{}, matrix_view<const T>(a.data(), n, d),
                                      matrix_view<const T>(b.data(), n, d), *lab, host_matrix(ga_ref, n, d),
                                      host_matrix(gb_ref, n, d), params);
    const char* name = lab == nullptr ? "info_nce" : "supervised_info_nce";
    std::vector<T> ga(zeros), gb(zeros);
    check_loss(run.two_view(a, b, lab, n, d, ga, gb, params), ref, tolerance, name);
    check_gradient(ga, ga_ref, tolerance, name);
    check_gradient(gb, gb_ref, tolerance, name);
    std::vector<T> none, gb_only(zeros);
    check_loss(run.two_view(a, b, lab, n, d, none, gb_only, params), ref, tolerance, name);
    check_gradient(gb_only, gb_ref, tolerance, name);
    check_loss(run.two_view(a, b, lab, n, d, none, none, params), ref, tolerance, name);
  }

  // Graph positives (weighted, directed, rows without edges).
  {
    const test_graph g(n);
    std::vector<T> grad_ref(zeros), grad(zeros);
    const T ref = ck::graph_info_nce(serial{}, matrix_view<const T>(a.data(), n, d), g.view(),
                                     host_matrix(grad_ref, n, d), params);
    check_loss(run.graph(a, g, d, grad, params), ref, tolerance, "graph_info_nce");
    check_gradient(grad, grad_ref, tolerance, "graph_info_nce");
  }

  // Bank of negatives, with and without bank rows.
  for (const index_t nb : {index_t(53), index_t(0)}) {
    CAPTURE(nb);
    const auto bank = random_rows<T>(nb, d, 3);
    const std::vector<T> bank_zeros(static_cast<std::size_t>(nb * d));
    std::vector<T> gq_ref(zeros), gk_ref(zeros), gb_ref(bank_zeros);
    const T ref =
        ck::info_nce_with_bank(serial{}, matrix_view<const T>(a.data(), n, d), matrix_view<const T>(b.data(), n, d),
                               matrix_view<const T>(bank.data(), nb, d), host_matrix(gq_ref, n, d),
                               host_matrix(gk_ref, n, d), host_matrix(gb_ref, nb, d), params);
    std::vector<T> gq(zeros), gk(zeros), gb(bank_zeros);
    check_loss(run.bank(a, b, bank, n, nb, d, gq, gk, gb, params), ref, tolerance, "info_nce_with_bank");
    check_gradient(gq, gq_ref, tolerance, "info_nce_with_bank queries");
    check_gradient(gk, gk_ref, tolerance, "info_nce_with_bank keys");
    if (nb > 0) check_gradient(gb, gb_ref, tolerance, "info_nce_with_bank bank");
  }
}

}  // namespace

TEST_CASE_TEMPLATE("portable InfoNCE (the cuda evaluation) equals the host engines", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  // Tiles smaller than the problem (several row blocks and column tiles, a self column inside
  // a tile off the diagonal), and one tile holding everything (two log-sum-exp chunks per row).
  SUBCASE("double, small tiles") {
    compare_variants<P, double>({.temperature = 0.2, .row_block = 16, .column_tile = 24}, 1e-12);
  }
  SUBCASE("double, one tile") { compare_variants<P, double>({.temperature = 0.07}, 1e-12); }
  SUBCASE("float, small tiles") {
    compare_variants<P, float>({.temperature = 0.1f, .row_block = 8, .column_tile = 40}, 2e-5);
  }
}

TEST_CASE_TEMPLATE("portable InfoNCE checks name the bad element in any memory space", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  auto x = random_rows<double>(6, 3, 9);
  x[7] = std::nan("");
  policy_array<P, double> xd(x);
  const matrix_view<const double, typename policy_array<P, double>::space> view(xd.data(), 6, 3);
  bool thrown = false;
  try {
    ck::detail::check_finite_on(policy_of<P>(), "info_nce", "view_a", view);
  } catch (const invalid_argument& e) {
    thrown = true;
    CHECK(std::string(e.what()).find("view_a(2, 1) is NaN") != std::string::npos);
  }
  CHECK(thrown);
}
