#include <cellkit/nn/batches.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "support/test_support.hpp"

using namespace cellkit;

TEST_CASE("minibatches: each epoch is a permutation cut into batches, reproducible per (seed, epoch)") {
  nn::minibatches batches(1000, {.batch_size = 256, .seed = 42});
  const auto e0 = batches.epoch(0);
  CHECK(e0.size() == 4);
  CHECK(e0[3].size() == 1000 - 3 * 256);
  std::vector<index_t> seen;
  for (auto rows : e0) seen.insert(seen.end(), rows.begin(), rows.end());
  std::vector<index_t> sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  for (index_t i = 0; i < 1000; ++i) REQUIRE(sorted[i] == i);
  CHECK(seen != sorted);
  CHECK(batches.epoch(0).order() == e0.order());
  CHECK(batches.epoch(1).order() != e0.order());
  CHECK(nn::minibatches(1000, {.batch_size = 256, .seed = 43}).epoch(0).order() != e0.order());
  CHECK(nn::minibatches(1000, {.batch_size = 256, .drop_last = true}).epoch(0).size() == 3);
  CHECK(nn::minibatches(10, {.batch_size = 4, .shuffle = false}).epoch(7)[1][0] == 4);
  CHECK(nn::minibatches(0, {}).epoch(0).size() == 0);
  CHECK_THROWS_AS(nn::minibatches(10, {.batch_size = 0}), invalid_argument);
  CHECK_THROWS_AS(nn::minibatches(-1, {}), invalid_argument);
}

TEST_CASE("minibatches: the shuffle is uniform (each row equally likely in each position)") {
  const index_t n = 5;
  const int epochs = 20000;
  std::vector<double> counts(n * n, 0.0);
  nn::minibatches batches(n, {.batch_size = n, .seed = 1});
  for (int e = 0; e < epochs; ++e) {
    const auto order = batches.epoch(static_cast<std::uint64_t>(e)).order();
    for (index_t pos = 0; pos < n; ++pos) counts[pos * n + order[pos]] += 1;
  }
  // chi-square over 25 cells, 16 degrees of freedom: 99.99th percentile is about 46.6
  double chi2 = 0;
  const double expect = static_cast<double>(epochs) / n;
  for (double c : counts) chi2 += (c - expect) * (c - expect) / expect;
  CHECK(chi2 < 46.6);
}

TEST_CASE("gather_rows copies the batch rows and checks indices") {
  std::vector<double> x(12);
  for (int i = 0; i < 12; ++i) x[i] = i;
  std::vector<double> out(6);
  std::vector<index_t> rows{3, 0};
  nn::gather_rows(serial{}, matrix_view<const double>(x.data(), 4, 3), rows, matrix_view<double>(out.data(), 2, 3));
  CHECK(out == std::vector<double>{9, 10, 11, 0, 1, 2});
  std::vector<index_t> bad{4};
  CHECK_THROWS_AS(
      nn::gather_rows(serial{}, matrix_view<const double>(x.data(), 4, 3), bad, matrix_view<double>(out.data(), 1, 3)),
      invalid_argument);
  CHECK_THROWS_AS(
      nn::gather_rows(serial{}, matrix_view<const double>(x.data(), 4, 3), rows, matrix_view<double>(out.data(), 3, 2)),
      dimension_mismatch);
}
