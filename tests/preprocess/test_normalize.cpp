#include <cellkit/core/csr_matrix.hpp>
#include <cellkit/preprocess/filter.hpp>
#include <cellkit/preprocess/normalize.hpp>

#include "support/dense_csr.hpp"
#include "support/test_support.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

// filter_cells / filter_genes, normalize_total and log1p against scanpy 1.9's definitions written
// with NumPy (tests/reference/gen_preprocess_fixtures.py): kept indices equal, values to 1e-14
// relative; results bit-identical for serial, openmp{1}, openmp{2}; every bad input throws.

using namespace cellkit;
namespace pp = cellkit::preprocess;
using cellkit::test::as_indices;
using cellkit::test::dense_to_csr;
using cellkit::test::policy_of;

TEST_CASE_TEMPLATE("filter, normalize_total and log1p match scanpy's definitions", P, CELLKIT_HOST_TEST_POLICIES) {
  const auto policy = policy_of<P>();
  const auto cases = test::read_fixture_cases("preprocess_chain_cases.txt");
  REQUIRE(cases.size() == 2);
  for (const auto& c : cases) {
    const auto n = static_cast<index_t>(c.params[1]);
    const auto g = static_cast<index_t>(c.params[2]);
    const double target = c.params[3];
    auto counts = dense_to_csr(c.matrix("counts"), n, g);
    const auto cells = pp::select_cells(policy, counts.view(), {.min_genes = 3});
    CHECK(cells == as_indices(c.matrix("cells_kept")));
    auto x = pp::take_rows(policy, counts.view(), cells);
    const auto genes = pp::select_genes(policy, x.view(), {.min_cells = 2});
    CHECK(genes == as_indices(c.matrix("genes_kept")));
    x = pp::take_columns(policy, x.view(), genes);
    const auto norm = target == 0 ? pp::normalize_total(policy, x.view())
                                  : pp::normalize_total(policy, x.view(), {.target_sum = target});
    const auto& want_totals = c.matrix("totals");
    REQUIRE(norm.totals.size() == want_totals.size());
    for (std::size_t i = 0; i < want_totals.size(); ++i) CHECK(norm.totals[i] == want_totals[i]);
    CHECK(norm.target_sum == c.matrix("target")[0]);
    pp::log1p(policy, x.view());
    const auto& row0 = c.matrix("norm_log_row0");
    std::vector<double> got(row0.size(), 0.0);
    for (index_t k = x.view().row_begin(0); k < x.view().row_end(0); ++k)
      got[static_cast<std::size_t>(x.view().indices()[k])] = x.view().values()[k];
    for (std::size_t j = 0; j < row0.size(); ++j) CHECK(test::close(got[j], row0[j], 1e-14, 1e-300));
  }
}

TEST_CASE("row-parallel passes are identical for every thread count") {
  std::vector<std::int32_t> r, c;
  std::vector<double> v;
  for (std::int32_t i = 0; i < 3000; ++i)
    for (std::int32_t j = i % 7; j < 50; j += 3) {
      r.push_back(i);
      c.push_back(j);
      v.push_back(1 + (i * 31 + j * 17) % 23);
    }
  auto a = csr_matrix<double>::from_triplets(3000, 50, r, c, v);
  auto b = csr_matrix<double>::from_triplets(3000, 50, r, c, v);
  const auto na = pp::normalize_total(serial{}, a.view());
  const auto nb = pp::normalize_total(openmp{2}, b.view());
  CHECK(na.target_sum == nb.target_sum);
  pp::log1p(serial{}, a.view());
  pp::log1p(openmp{2}, b.view());
  for (index_t k = 0; k < a.nnz(); ++k) REQUIRE(a.values()[k] == b.values()[k]);
  CHECK(pp::select_genes(serial{}, a.view(), {.min_counts = 100}) ==
        pp::select_genes(openmp{2}, a.view(), {.min_counts = 100}));
}

TEST_CASE("log1p with a base, zero-count cells, explicit zeros") {
  auto m = csr_matrix<double>(3, 3, std::vector<std::int32_t>{0, 2, 2, 3}, std::vector<std::int32_t>{0, 2, 1},
                              std::vector<double>{3, 0, 1});
  // Row 1 is empty: factor 1 (scanpy's counts += counts == 0), nothing to scale.
  const auto r = pp::normalize_total(serial{}, m.view(), {.target_sum = 10.0});
  CHECK(r.totals == std::vector<double>{3, 0, 1});
  CHECK(r.size_factors == std::vector<double>{0.3, 0.1, 0.1});
  CHECK(m.values()[0] == doctest::Approx(10.0));
  CHECK(m.values()[2] == doctest::Approx(10.0));
  pp::log1p(serial{}, m.view(), {.base = 2.0});
  CHECK(m.values()[0] == doctest::Approx(std::log2(11.0)));
  CHECK(m.values()[1] == 0.0);
  // The explicit zero of row 0 does not count as an expressed gene.
  CHECK(pp::select_cells(serial{}, m.view(), {.min_genes = 2}).empty());
  CHECK(pp::select_genes(serial{}, m.view(), {.min_cells = 1}) == std::vector<index_t>{0, 1});
}

TEST_CASE("bad input: no cell or gene left, bad parameters, all-zero matrix, NaN") {
  auto m = csr_matrix<double>(2, 2, std::vector<std::int32_t>{0, 1, 2}, std::vector<std::int32_t>{0, 1},
                              std::vector<double>{1, 2});
  CHECK_THROWS_WITH_AS(pp::filter_cells(serial{}, m.view(), {.min_genes = 5}),
                       doctest::Contains("no cell passes the filter"), invalid_argument);
  CHECK_THROWS_WITH_AS(pp::filter_genes(serial{}, m.view(), {.min_cells = 5}),
                       doctest::Contains("no gene passes the filter"), invalid_argument);
  CHECK_THROWS_AS(pp::select_cells(serial{}, m.view(), {.min_counts = -1}), invalid_argument);
  CHECK_THROWS_AS(pp::take_rows(serial{}, m.view(), {0, 2}), invalid_argument);
  CHECK_THROWS_WITH_AS(pp::take_columns(serial{}, m.view(), {1, 0}), doctest::Contains("strictly ascending"),
                       invalid_argument);
  CHECK_THROWS_WITH_AS(pp::normalize_total(serial{}, m.view(), {.target_sum = 0.0}),
                       doctest::Contains("params.target_sum"), invalid_argument);
  CHECK_THROWS_AS(pp::log1p(serial{}, m.view(), {.base = 1.0}), invalid_argument);
  auto zero = csr_matrix<double>(3, 2);
  CHECK_THROWS_WITH_AS(pp::normalize_total(serial{}, zero.view()), doctest::Contains("every cell has total count 0"),
                       invalid_argument);
  auto nan = csr_matrix<double>(1, 1, std::vector<std::int32_t>{0, 1}, std::vector<std::int32_t>{0},
                                std::vector<double>{std::numeric_limits<double>::quiet_NaN()});
  CHECK_THROWS_WITH_AS(pp::normalize_total(serial{}, nan.view()), doctest::Contains("must be finite"),
                       invalid_argument);
  // A filtered-to-nothing subset is still a valid (0-row) matrix for take_rows.
  CHECK(pp::take_rows(serial{}, m.view(), {}).rows() == 0);
}
