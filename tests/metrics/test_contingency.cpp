#include <cellkit/metrics/contingency.hpp>

#include "metrics/clustering_cases.hpp"
#include "support/test_support.hpp"

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

using namespace cellkit;
using cellkit::metrics::contingency_storage;
using cellkit::test::policy_array;
using cellkit::test::policy_of;

namespace {

/// The reference: a std::map count, rows and columns in ascending label order.
template <class T, class U>
void check_against_map(const metrics::contingency<T, U>& table, const std::vector<T>& t, const std::vector<U>& p) {
  std::map<std::pair<T, U>, std::int64_t> cells;
  std::map<T, std::int64_t> rows;
  std::map<U, std::int64_t> cols;
  for (std::size_t k = 0; k < t.size(); ++k) {
    ++cells[{t[k], p[k]}];
    ++rows[t[k]];
    ++cols[p[k]];
  }
  REQUIRE(table.rows() == static_cast<index_t>(rows.size()));
  REQUIRE(table.cols() == static_cast<index_t>(cols.size()));
  CHECK(table.total() == static_cast<std::int64_t>(t.size()));
  CHECK(table.nonzeros() == static_cast<index_t>(cells.size()));
  index_t i = 0;
  for (const auto& [label, sum] : rows) {
    CHECK(table.row_labels()[static_cast<std::size_t>(i)] == label);
    CHECK(table.row_sums()[static_cast<std::size_t>(i)] == sum);
    ++i;
  }
  index_t j = 0;
  for (const auto& [label, sum] : cols) {
    CHECK(table.col_labels()[static_cast<std::size_t>(j)] == label);
    CHECK(table.col_sums()[static_cast<std::size_t>(j)] == sum);
    ++j;
  }
  // every nonzero cell once, row-major, with its count; count(i, j) agrees
  auto it = cells.begin();
  bool in_order = true;
  table.for_each_nonzero([&](index_t r, index_t c, std::int64_t count) {
    if (it == cells.end()) {
      in_order = false;
      return;
    }
    in_order = in_order && table.row_labels()[static_cast<std::size_t>(r)] == it->first.first &&
               table.col_labels()[static_cast<std::size_t>(c)] == it->first.second && count == it->second &&
               table.count(r, c) == count;
    ++it;
  });
  CHECK(in_order);
  CHECK(it == cells.end());
}

/// Sum of label_true x label_pred over cells via count(), to check zero cells too (small tables only).
template <class T, class U>
std::int64_t cells_checksum(const metrics::contingency<T, U>& table) {
  std::int64_t sum = 0;
  for (index_t i = 0; i < table.rows(); ++i)
    for (index_t j = 0; j < table.cols(); ++j) sum += table.count(i, j) * (1 + i * 31 + j * 7);
  return sum;
}

}  // namespace

TEST_CASE("a small table: sorted original labels, sums, counts, dense storage") {
  const std::vector<int> t = {3, 3, -1, 7, 7, 7};
  const std::vector<int> p = {0, 1, 1, 0, 0, 5};
  const auto table = metrics::contingency_table(serial{}, t, p);
  CHECK(table.rows() == 3);
  CHECK(table.cols() == 3);
  CHECK(table.total() == 6);
  CHECK(table.nonzeros() == 5);
  CHECK(table.storage() == contingency_storage::dense);
  CHECK(std::vector<int>(table.row_labels().begin(), table.row_labels().end()) == std::vector<int>{-1, 3, 7});
  CHECK(std::vector<int>(table.col_labels().begin(), table.col_labels().end()) == std::vector<int>{0, 1, 5});
  CHECK(std::vector<std::int64_t>(table.row_sums().begin(), table.row_sums().end()) ==
        std::vector<std::int64_t>{1, 2, 3});
  CHECK(std::vector<std::int64_t>(table.col_sums().begin(), table.col_sums().end()) ==
        std::vector<std::int64_t>{3, 2, 1});
  CHECK(table.to_dense() == std::vector<std::int64_t>{0, 1, 0, 1, 1, 0, 2, 0, 1});
  CHECK(table.count(2, 0) == 2);
  CHECK(table.count(0, 0) == 0);
  check_against_map(table, t, p);
  // the same from triplets and from a count matrix
  const auto from_triplets =
      metrics::contingency_from_triplets(std::vector<int>{7, -1, 3, 3, 7, 7, 3}, std::vector<int>{0, 1, 0, 1, 5, 0, 5},
                                         std::vector<int>{1, 1, 1, 1, 1, 1, 0});
  CHECK(from_triplets == table);
  // a count matrix with an empty row and empty columns: they are dropped, the others keep their indices
  const std::vector<std::int64_t> counts = {0, 0, 0, 0,  //
                                            2, 0, 1, 0,  //
                                            0, 0, 3, 0};
  const auto from_counts = metrics::contingency_from_counts(matrix_view<const std::int64_t>(counts.data(), 3, 4));
  CHECK(from_counts.total() == 6);
  CHECK(from_counts.nonzeros() == 3);
  CHECK(std::vector<index_t>(from_counts.row_labels().begin(), from_counts.row_labels().end()) ==
        std::vector<index_t>{1, 2});
  CHECK(std::vector<index_t>(from_counts.col_labels().begin(), from_counts.col_labels().end()) ==
        std::vector<index_t>{0, 2});
  CHECK(from_counts.to_dense() == std::vector<std::int64_t>{2, 1, 0, 3});
}

TEST_CASE_TEMPLATE("every fixture case: the counted table equals the fixture's triplets", P, CELLKIT_TEST_POLICIES) {
  CELLKIT_SKIP_UNLESS_RUNNABLE(P);
  const auto policy = policy_of<P>();
  for (const auto& c : test::clustering_cases()) {
    CAPTURE(c.id);
    const auto expected = metrics::contingency_from_triplets(c.cell_true, c.cell_pred, c.cell_count);
    policy_array<P, std::int64_t> t(c.labels_true), p(c.labels_pred);
    const auto table = metrics::contingency_table(policy, t.view(), p.view());
    CHECK(table == expected);
    CHECK(table.total() == c.n);
    if (c.fits_int32) {
      policy_array<P, std::int32_t> t32(test::converted<std::int32_t>(c.labels_true));
      const auto table32 = metrics::contingency_table(policy, t32.view(), p.view());
      CHECK(table32.to_dense() == expected.to_dense());
      CHECK(table32.storage() == expected.storage());
    }
    if (c.fits_uint32) {
      policy_array<P, std::uint32_t> t32(test::converted<std::uint32_t>(c.labels_true));
      policy_array<P, std::uint32_t> p32(test::converted<std::uint32_t>(c.labels_pred));
      const auto table32 = metrics::contingency_table(policy, t32.view(), p32.view());
      CHECK(table32.nonzero_counts().size() == expected.nonzero_counts().size());
      CHECK(table32.to_dense() == expected.to_dense());
    }
  }
}

TEST_CASE("tables are identical for serial, openmp{1} and openmp{2} on every counting path") {
  std::mt19937_64 rng(7);
  struct path_case {
    const char* name;
    index_t n;
    std::int64_t classes_true;
    std::int64_t classes_pred;
    std::int64_t spread;  // label = class * spread + offset
  };
  const path_case cases[] = {
      {"direct offsets, 50 x 50", 150000, 50, 50, 1},
      {"direct offsets, spread labels", 150000, 40, 30, 9},
      {"offset maps, dense, two blocks", 150000, 300, 200, 3},
      {"offset maps, dense, one block", 100000, 700, 900, 3},
      {"hash maps, dense", 150000, 100, 200, std::int64_t(1) << 40},
      {"offset maps, sparse", 150000, 3000, 2000, 1},
      {"hash maps, sparse", 150000, 5000, 3000, std::int64_t(1) << 41},
  };
  for (const auto& pc : cases) {
    CAPTURE(pc.name);
    std::vector<std::int64_t> t(static_cast<std::size_t>(pc.n)), p(static_cast<std::size_t>(pc.n));
    for (index_t k = 0; k < pc.n; ++k) {
      const auto ct = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(pc.classes_true));
      // correlated predictions: runs of equal labels exercise the interleaved counters
      const auto cp = (rng() % 4 == 0) ? static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(pc.classes_pred))
                                       : ct % pc.classes_pred;
      t[static_cast<std::size_t>(k)] = ct * pc.spread - 12345;
      p[static_cast<std::size_t>(k)] = -cp * pc.spread;
    }
    const auto a = metrics::contingency_table(serial{}, t, p);
    const auto b = metrics::contingency_table(openmp{1}, t, p);
    const auto c = metrics::contingency_table(openmp{2}, t, p);
    const auto d = metrics::contingency_table(t, p);
    CHECK(a == b);
    CHECK(a == c);
    CHECK(a == d);
    check_against_map(c, t, p);
    // sorted input (long runs of equal cells) gives the same table
    std::vector<std::pair<std::int64_t, std::int64_t>> pairs(t.size());
    for (std::size_t k = 0; k < t.size(); ++k) pairs[k] = {t[k], p[k]};
    std::sort(pairs.begin(), pairs.end());
    for (std::size_t k = 0; k < t.size(); ++k) std::tie(t[k], p[k]) = pairs[k];
    CHECK(metrics::contingency_table(openmp{2}, t, p) == a);
  }
}

TEST_CASE("large tables: partitioned dense counting and sorted keys for R C >= 2^32") {
  // Reference: sort the label pairs and run-length encode them into triplets (another code path).
  auto reference = [](const std::vector<std::int64_t>& t, const std::vector<std::int64_t>& p) {
    std::vector<std::pair<std::int64_t, std::int64_t>> pairs(t.size());
    for (std::size_t k = 0; k < t.size(); ++k) pairs[k] = {t[k], p[k]};
    std::sort(pairs.begin(), pairs.end());
    std::vector<std::int64_t> rows, cols, counts;
    for (std::size_t k = 0; k < pairs.size(); ++k) {
      if (k > 0 && pairs[k] == pairs[k - 1]) {
        ++counts.back();
      } else {
        rows.push_back(pairs[k].first);
        cols.push_back(pairs[k].second);
        counts.push_back(1);
      }
    }
    return metrics::contingency_from_triplets(rows, cols, counts);
  };
  std::mt19937_64 rng(17);
  SUBCASE("dense, 1100 x 1000 cells (> 2^20), n > cells") {
    const index_t n = 1'200'000;
    std::vector<std::int64_t> t(static_cast<std::size_t>(n)), p(static_cast<std::size_t>(n));
    for (index_t k = 0; k < n; ++k) {
      t[static_cast<std::size_t>(k)] = 3 * static_cast<std::int64_t>(rng() % 1100) - 7;
      p[static_cast<std::size_t>(k)] = static_cast<std::int64_t>(rng() % 1000);
    }
    const auto a = metrics::contingency_table(serial{}, t, p);
    CHECK(a.storage() == contingency_storage::dense);
    CHECK(a == metrics::contingency_table(openmp{2}, t, p));
    CHECK(a == reference(t, p));
  }
  SUBCASE("sparse, ~95000 x 95000 distinct 64-bit labels: keys sorted per thread") {
    const index_t n = 150'000;
    std::vector<std::int64_t> t(static_cast<std::size_t>(n)), p(static_cast<std::size_t>(n));
    for (index_t k = 0; k < n; ++k) {
      t[static_cast<std::size_t>(k)] = static_cast<std::int64_t>(rng() % 150'000) << 30;
      p[static_cast<std::size_t>(k)] = -static_cast<std::int64_t>(rng() % 150'000);
    }
    const auto a = metrics::contingency_table(serial{}, t, p);
    REQUIRE(static_cast<double>(a.rows()) * static_cast<double>(a.cols()) >= 4294967296.0);
    CHECK(a.storage() == contingency_storage::sparse);
    CHECK(a == metrics::contingency_table(openmp{2}, t, p));
    CHECK(a == reference(t, p));
  }
}

TEST_CASE("single-pass direct counting: growing boxes, type limits, late fallbacks") {
  const index_t n = 200000;
  auto check_all_policies = [](const auto& t, const auto& p) {
    const auto a = metrics::contingency_table(serial{}, t, p);
    CHECK(a == metrics::contingency_table(openmp{2}, t, p));
    CHECK(a == metrics::contingency_table(openmp{1}, t, p));
    check_against_map(a, t, p);
  };
  SUBCASE("sorted labels grow the box upwards and downwards") {
    std::vector<int> t(static_cast<std::size_t>(n)), p(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      t[static_cast<std::size_t>(i)] = static_cast<int>(i / 1000);
      p[static_cast<std::size_t>(i)] = -static_cast<int>(i / 2000) + static_cast<int>(i % 3);
    }
    check_all_policies(t, p);
  }
  SUBCASE("int8 labels run into both ends of the type") {
    std::vector<std::int8_t> t(static_cast<std::size_t>(n)), p(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      t[static_cast<std::size_t>(i)] = static_cast<std::int8_t>(-128 + (i * 256) / n);
      p[static_cast<std::size_t>(i)] = static_cast<std::int8_t>(127 - (i * 200) / n);
    }
    check_all_policies(t, p);
  }
  SUBCASE("uint64 labels at the top of the type") {
    std::vector<std::uint64_t> t(static_cast<std::size_t>(n)), p(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      t[static_cast<std::size_t>(i)] = std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(i % 37);
      p[static_cast<std::size_t>(i)] = static_cast<std::uint64_t>(i / 5000);
    }
    check_all_policies(t, p);
  }
  SUBCASE("a far label at the very end makes the pass fall back to the mapped paths") {
    std::vector<std::int64_t> t(static_cast<std::size_t>(n)), p(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      t[static_cast<std::size_t>(i)] = i % 10;
      p[static_cast<std::size_t>(i)] = (i * 7) % 13;
    }
    t.back() = 1'000'000'000'000;
    check_all_policies(t, p);
  }
  SUBCASE("boxes that outgrow 2^18 cells only together fall back too") {
    std::vector<int> t(static_cast<std::size_t>(n)), p(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      t[static_cast<std::size_t>(i)] = static_cast<int>((i * 600) / n);
      p[static_cast<std::size_t>(i)] = static_cast<int>((i * 600) / n) ^ 1;
    }
    check_all_policies(t, p);
  }
}

TEST_CASE("storage rule: dense up to 2^16 cells, or 2^22 cells within one per label; sparse beyond") {
  // 256 x 256 = 2^16 cells with only 300 labels: dense
  std::vector<int> t, p;
  for (int k = 0; k < 300; ++k) {
    t.push_back(k % 256);
    p.push_back((k * 7) % 256);
  }
  auto table = metrics::contingency_table(t, p);
  REQUIRE(table.rows() == 256);
  REQUIRE(table.cols() == 256);
  CHECK(table.storage() == contingency_storage::dense);
  CHECK(table.dense_counts().size() == 65536);
  CHECK(table.row_offsets().empty());
  // 257 x 256 cells with 300 labels: sparse
  t.push_back(256);
  p.push_back(0);
  table = metrics::contingency_table(t, p);
  CHECK(table.storage() == contingency_storage::sparse);
  CHECK(table.dense_counts().empty());
  CHECK(table.row_offsets().size() == 258);
  CHECK(table.nonzero_cols().size() == static_cast<std::size_t>(table.nonzeros()));
  check_against_map(table, t, p);
  const auto dense = table.to_dense();
  std::int64_t sum = 0;
  for (auto v : dense) sum += v;
  CHECK(sum == 301);
  CHECK(cells_checksum(table) ==
        cells_checksum(metrics::contingency_from_triplets(t, p, std::vector<int>(t.size(), 1))));
}

TEST_CASE("extreme label values: int64 and uint64 limits, int8, int16, full-range spans") {
  const std::int64_t lo = std::numeric_limits<std::int64_t>::min();
  const std::int64_t hi = std::numeric_limits<std::int64_t>::max();
  const std::vector<std::int64_t> t = {lo, hi, lo, 0, hi, -1};
  const std::vector<std::uint64_t> p = {0, std::numeric_limits<std::uint64_t>::max(), 0, 5,
                                        5, std::numeric_limits<std::uint64_t>::max()};
  for (int threads : {1, 2}) {
    const auto table = metrics::contingency_table(openmp{threads}, t, p);
    check_against_map(table, t, p);
  }
  const std::vector<std::int8_t> t8 = {-128, 127, 0, -128, 127};
  const std::vector<std::int16_t> p16 = {-32768, 32767, 32767, 0, -32768};
  check_against_map(metrics::contingency_table(serial{}, t8, p16), t8, p16);
  const std::vector<std::uint8_t> u8 = {255, 0, 255, 1, 1};
  check_against_map(metrics::contingency_table(serial{}, u8, t8), u8, t8);
}

TEST_CASE("input forms: raw pointers, spans, arrays, vector_view; empty input") {
  const long t[] = {4, 4, 2, 9};
  const short p[] = {1, 0, 0, 1};
  const auto expected = metrics::contingency_table(std::vector<long>(t, t + 4), std::vector<short>(p, p + 4));
  CHECK(metrics::contingency_table(metrics::labels(t, 4), metrics::labels(p, 4)) == expected);
  CHECK(metrics::contingency_table(serial{}, std::span<const long>(t, 4), std::array<short, 4>{1, 0, 0, 1}) ==
        expected);
  CHECK(metrics::contingency_table(openmp{2}, vector_view<const long>(t, 4), metrics::labels(p, 4)) == expected);
  const std::vector<int> empty;
  const auto none = metrics::contingency_table(empty, empty);
  CHECK(none.rows() == 0);
  CHECK(none.cols() == 0);
  CHECK(none.total() == 0);
  CHECK(none.nonzeros() == 0);
  const auto none_from_counts = metrics::contingency_from_triplets(empty, empty, empty);
  CHECK(none_from_counts.total() == 0);
}

TEST_CASE("bad input: lengths, negative or overflowing counts") {
  const std::vector<int> three = {1, 2, 3}, two = {1, 2};
  CHECK_THROWS_AS(metrics::contingency_table(three, two), dimension_mismatch);
  CHECK_THROWS_AS(metrics::contingency_table(openmp{2}, two, three), dimension_mismatch);
  try {
    metrics::contingency_table(serial{}, three, two);
    FAIL("expected dimension_mismatch");
  } catch (const dimension_mismatch& e) {
    CHECK(std::string(e.what()) ==
          "contingency_table: dimension mismatch: labels_true is 3 x 1 but labels_pred is 2 x 1 (the inputs must have "
          "the same length)");
  }
  CHECK_THROWS_AS(metrics::contingency_from_triplets(three, two, three), dimension_mismatch);
  CHECK_THROWS_AS(metrics::contingency_from_triplets(three, three, two), dimension_mismatch);
  CHECK_THROWS_AS(metrics::contingency_from_triplets(three, three, std::vector<int>{1, -2, 3}), invalid_argument);
  const std::int64_t big = std::numeric_limits<std::int64_t>::max() / 2 + 1;
  CHECK_THROWS_AS(metrics::contingency_from_triplets(two, two, std::vector<std::int64_t>{big, big}), invalid_argument);
  CHECK_THROWS_AS(metrics::contingency_from_triplets(two, two, std::vector<std::uint64_t>{1, std::uint64_t(1) << 63}),
                  invalid_argument);
  const std::vector<int> negative = {1, -1, 0, 2};
  CHECK_THROWS_AS(metrics::contingency_from_counts(matrix_view<const int>(negative.data(), 2, 2)), invalid_argument);
  // totals up to 2^63 - 1 are fine
  const auto huge = metrics::contingency_from_triplets(two, two, std::vector<std::int64_t>{big, big - 1});
  CHECK(huge.total() == std::numeric_limits<std::int64_t>::max());
}
