#include <cellkit/core/buffer.hpp>
#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/preprocess/filter.hpp>
#include <cellkit/preprocess/highly_variable.hpp>
#include <cellkit/preprocess/normalize.hpp>
#include <cellkit/preprocess/scale.hpp>

#include "support/dense_csr.hpp"
#include "support/test_support.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

// highly_variable_genes (Seurat and Cell Ranger flavours) and scale against scanpy 1.9's
// definitions written with NumPy (tests/reference/gen_preprocess_fixtures.py): selected gene sets
// equal, per-gene statistics to 1e-12, scaled values to 1e-12; identical for every thread count.

using namespace cellkit;
namespace pp = cellkit::preprocess;
using cellkit::test::as_indices;
using cellkit::test::dense_to_csr;
using cellkit::test::policy_of;

namespace {

/// counts -> filter -> normalize_total -> log1p, as the fixture script does.
template <class Policy>
csr_matrix<double> log_normalised(const Policy& policy, const test::fixture_case& c) {
  auto counts = dense_to_csr(c.matrix("counts"), static_cast<index_t>(c.params[1]), static_cast<index_t>(c.params[2]));
  auto x = pp::filter_cells(policy, counts.view(), {.min_genes = 3});
  x = pp::filter_genes(policy, x.view(), {.min_cells = 2});
  if (c.params[3] == 0) {
    pp::normalize_total(policy, x.view());
  } else {
    pp::normalize_total(policy, x.view(), {.target_sum = c.params[3]});
  }
  pp::log1p(policy, x.view());
  return x;
}

void check_vector(const std::vector<double>& got, const std::vector<double>& want, double rel) {
  REQUIRE(got.size() == want.size());
  for (std::size_t j = 0; j < want.size(); ++j) {
    CAPTURE(j);
    CHECK(test::close(got[j], want[j], rel, 1e-13));
  }
}

}  // namespace

TEST_CASE_TEMPLATE("highly variable genes: Seurat and Cell Ranger flavours equal scanpy's", P,
                   CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  for (const auto& c : test::read_fixture_cases("preprocess_chain_cases.txt")) {
    CAPTURE(c.params[0]);
    auto x = log_normalised(policy, c);
    const auto n_top = static_cast<index_t>(c.params[4]);
    const auto seurat = pp::highly_variable_genes(policy, x.view(), {.n_top_genes = n_top});
    check_vector(seurat.means, c.matrix("seurat_means"), 1e-12);
    check_vector(seurat.dispersions, c.matrix("seurat_dispersions"), 1e-12);
    check_vector(seurat.dispersions_norm, c.matrix("seurat_norm"), 1e-10);
    CHECK(seurat.genes == as_indices(c.matrix("seurat_top")));
    const auto cutoff = pp::highly_variable_genes(policy, x.view());
    CHECK(cutoff.genes == as_indices(c.matrix("seurat_cutoff")));
    const auto ranger =
        pp::highly_variable_genes(policy, x.view(), {.flavor = pp::hvg_flavor::cell_ranger, .n_top_genes = n_top});
    check_vector(ranger.means, c.matrix("ranger_means"), 1e-12);
    check_vector(ranger.dispersions, c.matrix("ranger_dispersions"), 1e-12);
    check_vector(ranger.dispersions_norm, c.matrix("ranger_norm"), 1e-10);
    CHECK(ranger.genes == as_indices(c.matrix("ranger_top")));
  }
}

TEST_CASE_TEMPLATE("scale with clipping equals scanpy's, from CSR and from dense", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  for (const auto& c : test::read_fixture_cases("preprocess_chain_cases.txt")) {
    auto x = log_normalised(policy, c);
    const auto hvg = pp::highly_variable_genes(policy, x.view(), {.n_top_genes = static_cast<index_t>(c.params[4])});
    const auto sub = pp::take_columns(policy, x.view(), hvg.genes);
    const index_t n = sub.rows();
    const index_t h = sub.cols();
    host_buffer<double> out(n * h);
    const auto stats = pp::scale(policy, sub.view(), out.as_matrix(n, h), {.max_value = c.params[5]});
    check_vector(stats.mean, c.matrix("scale_mean"), 1e-13);
    check_vector(stats.sd, c.matrix("scale_sd"), 1e-13);
    const auto& head = c.matrix("scaled_head");
    for (std::size_t e = 0; e < head.size(); ++e)
      CHECK(test::close(out[static_cast<index_t>(e)], head[e], 1e-12, 1e-13));
    index_t at_bound = 0;
    for (index_t e = 0; e < n * h; ++e) {
      CHECK(std::fabs(out[e]) <= c.params[5]);
      at_bound += std::fabs(out[e]) == c.params[5] ? 1 : 0;
    }
    CHECK(at_bound == static_cast<index_t>(c.matrix("clipped")[0]));
    // Dense input, in place: the same values.
    host_buffer<double> dense(n * h);
    for (index_t i = 0; i < n; ++i)
      for (index_t k = sub.view().row_begin(i); k < sub.view().row_end(i); ++k)
        dense[i * h + sub.view().indices()[k]] = sub.view().values()[k];
    const auto dense_stats =
        pp::scale(policy, dense.as_matrix(n, h), dense.as_matrix(n, h), {.max_value = c.params[5]});
    check_vector(dense_stats.sd, stats.sd, 1e-14);
    for (index_t e = 0; e < n * h; ++e) CHECK(test::close(dense[e], out[e], 1e-13, 1e-14));
  }
}

TEST_CASE("scale variants: no centring, one-sided clip, constant gene") {
  std::vector<double> v = {1, 5, 0, 5, 2, 5, 100, 5};  // 4 x 2: column 1 is constant
  auto m = host_buffer<double>(8);
  std::copy(v.begin(), v.end(), m.begin());
  const auto s = pp::scale(serial{}, m.as_matrix(4, 2), m.as_matrix(4, 2), {.max_value = 1.0, .clip_negative = false});
  CHECK(s.sd[1] == 1.0);  // zero sd replaced by 1
  CHECK(m[1] == 0.0);     // constant gene centred to 0
  CHECK(m[0] < -0.4);     // not clipped below
  CHECK(m[6] == 1.0);     // clipped above
  std::copy(v.begin(), v.end(), m.begin());
  pp::scale(serial{}, m.as_matrix(4, 2), m.as_matrix(4, 2), {.zero_center = false});
  CHECK(m[1] == 5.0);
}

TEST_CASE("HVG and scale are identical for every thread count on a larger matrix") {
  std::vector<std::int32_t> r, c;
  std::vector<double> v;
  for (std::int32_t i = 0; i < 2500; ++i)
    for (std::int32_t j = i % 5; j < 400; j += 1 + (i + j) % 4) {
      r.push_back(i);
      c.push_back(j);
      v.push_back(std::log1p(1.0 + (i * 37 + j * 11) % (3 + j % 17)));
    }
  const auto x = csr_matrix<double>::from_triplets(2500, 400, r, c, v);
  const auto a = pp::highly_variable_genes(serial{}, x.view(), {.n_top_genes = 100});
  const auto b = pp::highly_variable_genes(openmp{2}, x.view(), {.n_top_genes = 100});
  CHECK(a.genes == b.genes);
  for (std::size_t j = 0; j < a.means.size(); ++j)
    REQUIRE(std::memcmp(&a.dispersions_norm[j], &b.dispersions_norm[j], 8) == 0);
  host_buffer<double> oa(2500 * 400), ob(2500 * 400);
  pp::scale(serial{}, x.view(), oa.as_matrix(2500, 400), {.max_value = 10.0});
  pp::scale(openmp{2}, x.view(), ob.as_matrix(2500, 400), {.max_value = 10.0});
  CHECK(std::memcmp(oa.data(), ob.data(), sizeof(double) * 2500 * 400) == 0);
}

TEST_CASE("bad input to HVG and scale") {
  auto one = csr_matrix<double>(1, 3);
  CHECK_THROWS_WITH_AS(pp::highly_variable_genes(serial{}, one.view()), doctest::Contains("at least 2 cells"),
                       invalid_argument);
  auto m = csr_matrix<double>(3, 3);
  CHECK_THROWS_AS(pp::highly_variable_genes(serial{}, m.view(), {.n_top_genes = 0}), invalid_argument);
  CHECK_THROWS_AS(pp::highly_variable_genes(serial{}, m.view(), {.n_bins = 0}), invalid_argument);
  // All genes unexpressed: every Seurat dispersion is NaN, so no top genes exist.
  CHECK_THROWS_WITH_AS(pp::highly_variable_genes(serial{}, m.view(), {.n_top_genes = 2}),
                       doctest::Contains("every normalised dispersion is NaN"), invalid_argument);
  // Cell Ranger's percentile edges repeat when most genes share one mean (pandas raises too).
  CHECK_THROWS_WITH_AS(pp::highly_variable_genes(serial{}, m.view(), {.flavor = pp::hvg_flavor::cell_ranger}),
                       doctest::Contains("not unique"), invalid_argument);
  host_buffer<double> out(9);
  CHECK_THROWS_AS(pp::scale(serial{}, m.view(), out.as_matrix(3, 3), {.max_value = -1.0}), invalid_argument);
  CHECK_THROWS_AS(pp::scale(serial{}, m.view(), out.as_matrix(1, 9), {}), dimension_mismatch);
  CHECK_THROWS_AS(pp::scale(serial{}, one.view(), out.as_matrix(1, 3).row_block(0, 1), {}), invalid_argument);
  out[4] = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(pp::scale(serial{}, out.as_matrix(3, 3), out.as_matrix(3, 3), {}),
                       doctest::Contains("(1, 1) is inf"), invalid_argument);
}
