// Tests of <cellkit/likelihood/simulate.hpp>: group sizes follow the imbalance parameter, the
// realised dropout rate matches the target, the true means are consistent with the library sizes,
// counts follow the NB model, results are identical under serial and openmp{2}, and invalid
// parameters are reported by name.

#include <cellkit/likelihood/simulate.hpp>

#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {
namespace lk = cellkit::likelihood;
using cellkit::index_t;
}  // namespace

TEST_CASE("simulate: defaults, shapes, labels and the zero fraction") {
  const auto sim = lk::simulate_counts<float>(cellkit::openmp{2}, {});
  CHECK(sim.counts.rows() == 2000);
  CHECK(sim.counts.cols() == 1000);
  REQUIRE(sim.labels.size() == 2000);
  CHECK(sim.group_sizes == std::vector<index_t>{500, 500, 500, 500});
  std::vector<index_t> seen(4, 0);
  for (auto l : sim.labels) ++seen[static_cast<std::size_t>(l)];
  CHECK(seen == sim.group_sizes);
  const double zero_fraction = 1.0 - static_cast<double>(sim.counts.nnz()) / (2000.0 * 1000.0);
  MESSAGE("default simulation: " << sim.counts.nnz() << " nonzeros, zero fraction " << zero_fraction
                                 << ", dropout midpoint " << sim.dropout_mid << ", expected dropout rate "
                                 << sim.expected_dropout_rate);
  CHECK(zero_fraction > 0.6);
  CHECK(zero_fraction < 0.95);
  const auto values = sim.counts.values();
  CHECK_MESSAGE(std::all_of(values.begin(), values.end(), [](float v) { return v > 0; }),
                "explicit zeros are not stored");
  // the labels are shuffled, not sorted by group
  CHECK_FALSE(std::is_sorted(sim.labels.begin(), sim.labels.end()));
}

TEST_CASE("simulate: group sizes follow the minimum retention rate") {
  for (const double r : {1.0, 0.5, 0.1}) {
    for (const int k : {2, 3, 7}) {
      const auto sim = lk::simulate_counts<float>(
          cellkit::serial{}, {.cells = 1001, .genes = 20, .groups = k, .min_retention = r, .dropout_rate = 0});
      index_t total = 0;
      for (auto s : sim.group_sizes) total += s;
      CHECK(total == 1001);
      const auto [mn, mx] = std::minmax_element(sim.group_sizes.begin(), sim.group_sizes.end());
      CAPTURE(r);
      CAPTURE(k);
      // proportions r^(k/(K-1)): group 0 largest, the last r times as large (up to rounding)
      CHECK(*mx == sim.group_sizes.front());
      CHECK(*mn == sim.group_sizes.back());
      CHECK(std::fabs(static_cast<double>(*mn) - r * static_cast<double>(*mx)) <= 1.0 + r);
      std::vector<index_t> seen(static_cast<std::size_t>(k), 0);
      for (auto l : sim.labels) ++seen[static_cast<std::size_t>(l)];
      CHECK(seen == sim.group_sizes);
    }
  }
}

TEST_CASE("simulate: the dropout rate matches its target") {
  for (const double target : {0.1, 0.3, 0.6}) {
    const auto sim = lk::simulate_counts<float>(cellkit::openmp{2},
                                                {.cells = 1500, .genes = 800, .dropout_rate = target, .seed = 11});
    const double n = 1500.0 * 800.0;
    const double realised = static_cast<double>(sim.dropout_events) / n;
    MESSAGE("dropout target " << target << ": expected over all entries " << sim.expected_dropout_rate << ", realised "
                              << realised);
    // the midpoint is solved on a subset of 512 cells: the expectation over all cells is within 0.01
    CHECK(std::fabs(sim.expected_dropout_rate - target) <= 0.01);
    // events are independent Bernoulli draws: standard error <= 0.5 / sqrt(n)
    CHECK(std::fabs(realised - sim.expected_dropout_rate) <= 5 * 0.5 / std::sqrt(n));
  }
  const auto none = lk::simulate_counts<float>(cellkit::serial{}, {.cells = 50, .genes = 40, .dropout_rate = 0});
  CHECK(none.dropout_events == 0);
}

TEST_CASE("simulate: means, library sizes and NB counts are consistent") {
  const auto sim = lk::simulate_counts<double>(
      cellkit::openmp{2},
      {.cells = 400, .genes = 300, .groups = 3, .theta = 4.0, .dropout_rate = 0, .seed = 5, .store_means = true});
  REQUIRE(sim.means.size() == 400 * 300);
  const auto counts = sim.counts.view();
  double z_sum = 0;
  for (index_t i = 0; i < 400; ++i) {
    double row_mean = 0, row_count = 0, row_var = 0;
    for (index_t j = 0; j < 300; ++j) {
      const double mu = sim.means[i * 300 + j];
      row_mean += mu;
      row_var += mu + mu * mu / 4.0;
    }
    for (index_t q = counts.row_begin(i); q < counts.row_end(i); ++q) row_count += counts.values()[q];
    CHECK(cellkit::test::close(row_mean, sim.library_sizes[static_cast<std::size_t>(i)], 1e-6));
    z_sum += (row_count - row_mean) / std::sqrt(row_var);
  }
  // the standardised row-sum deviations average to 0 (400 cells: se 0.05)
  CHECK(std::fabs(z_sum / 400.0) <= 5 * 0.05);
  // differential expression: the groups' mean profiles differ
  int de_genes = 0;
  for (index_t j = 0; j < 300; ++j) de_genes += sim.de_factors[static_cast<std::size_t>(j)] != 1.0 ? 1 : 0;
  CHECK(de_genes > 10);
  CHECK(de_genes < 60);
}

TEST_CASE("simulate: identical results under serial and openmp{2}; seeds matter") {
  const lk::simulate_params params{.cells = 300, .genes = 200, .groups = 5, .min_retention = 0.3, .seed = 8};
  const auto a = lk::simulate_counts<float>(cellkit::serial{}, params);
  const auto b = lk::simulate_counts<float>(cellkit::openmp{2}, params);
  CHECK(a.labels == b.labels);
  CHECK(a.counts.nnz() == b.counts.nnz());
  CHECK(std::equal(a.counts.indptr().begin(), a.counts.indptr().end(), b.counts.indptr().begin()));
  CHECK(std::equal(a.counts.indices().begin(), a.counts.indices().end(), b.counts.indices().begin()));
  CHECK(std::equal(a.counts.values().begin(), a.counts.values().end(), b.counts.values().begin()));
  CHECK(a.dropout_mid == b.dropout_mid);
  lk::simulate_params other = params;
  other.seed = 9;
  const auto c = lk::simulate_counts<float>(other);
  CHECK(c.counts.nnz() != a.counts.nnz());
}

TEST_CASE("simulate: invalid parameters are reported by name") {
  auto message = [](const lk::simulate_params& p) -> std::string {
    try {
      lk::simulate_counts<float>(cellkit::serial{}, p);
    } catch (const cellkit::invalid_argument& e) {
      return e.what();
    }
    return "no exception";
  };
  CHECK(message({.cells = 0}).find("'cells'") != std::string::npos);
  CHECK(message({.groups = 0}).find("'groups'") != std::string::npos);
  CHECK(message({.min_retention = 0}).find("'min_retention'") != std::string::npos);
  CHECK(message({.de_prob = 1.5}).find("'de_prob'") != std::string::npos);
  CHECK(message({.theta = 0}).find("'theta'") != std::string::npos);
  CHECK(message({.dropout_rate = 1.0}).find("'dropout_rate'") != std::string::npos);
  CHECK(message({.dropout_shape = 0.5}).find("'dropout_shape'") != std::string::npos);
}
