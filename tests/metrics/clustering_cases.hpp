#pragma once
// Fixtures of the clustering-metric tests (tests/reference/gen_metrics_fixtures.py): the random and
// limit-case labelings with scikit-learn / mpmath values, and the huge exact-count tables.

#include <cellkit/metrics/contingency.hpp>
#include <cellkit/metrics/detail/exact_integer.hpp>

#include "support/test_support.hpp"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace cellkit::test {

struct clustering_case {
  int id = 0;
  index_t n = 0;
  bool fits_int32 = false;
  bool fits_uint32 = false;
  bool sklearn_ami_is_noise = false;
  std::map<std::string, double> sklearn;
  std::map<std::string, double> exact;
  std::vector<std::int64_t> cell_true, cell_pred, cell_count;  // the contingency triplets
  std::vector<std::int64_t> labels_true, labels_pred;          // expanded and shuffled
};

/// Deterministic shuffle (splitmix64 + Fisher-Yates): the C++ side never depends on numpy's RNG.
inline void shuffle_together(std::vector<std::int64_t>& a, std::vector<std::int64_t>& b, std::uint64_t seed) {
  std::uint64_t state = seed * 0x9e3779b97f4a7c15ULL + 1;
  auto next = [&] {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  for (std::size_t i = a.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(next() % i);
    std::swap(a[i - 1], a[j]);
    std::swap(b[i - 1], b[j]);
  }
}

inline const std::vector<clustering_case>& clustering_cases() {
  static const std::vector<clustering_case> cases = [] {
    static const char* sklearn_columns[] = {"ari",
                                            "ri",
                                            "mi",
                                            "nmi_arithmetic",
                                            "nmi_geometric",
                                            "nmi_min",
                                            "nmi_max",
                                            "ami_arithmetic",
                                            "ami_geometric",
                                            "ami_min",
                                            "ami_max",
                                            "homogeneity",
                                            "completeness",
                                            "v_measure",
                                            "v_measure_beta_0.5",
                                            "fowlkes_mallows",
                                            "accuracy"};
    static const char* exact_columns[] = {
        "mi", "h_true", "h_pred", "emi", "nmi_arithmetic", "ami_arithmetic", "homogeneity", "completeness"};
    std::vector<clustering_case> out;
    for (const fixture_case& fc : read_fixture_cases("metrics_clustering_cases.txt")) {
      clustering_case c;
      c.id = static_cast<int>(fc.params.at(0));
      c.n = static_cast<index_t>(fc.params.at(1));
      c.fits_int32 = fc.params.at(2) != 0;
      c.fits_uint32 = fc.params.at(3) != 0;
      c.sklearn_ami_is_noise = fc.params.at(4) != 0;
      const auto& sk = fc.matrix("sklearn");
      for (std::size_t k = 0; k < std::size(sklearn_columns); ++k) c.sklearn[sklearn_columns[k]] = sk.at(k);
      const auto& ex = fc.matrix("exact");
      for (std::size_t k = 0; k < std::size(exact_columns); ++k) c.exact[exact_columns[k]] = ex.at(k);
      const auto& trip = fc.matrix("triplets");
      for (std::size_t k = 0; k + 2 < trip.size(); k += 3) {
        c.cell_true.push_back(static_cast<std::int64_t>(trip[k]));
        c.cell_pred.push_back(static_cast<std::int64_t>(trip[k + 1]));
        c.cell_count.push_back(static_cast<std::int64_t>(trip[k + 2]));
        for (std::int64_t r = 0; r < c.cell_count.back(); ++r) {
          c.labels_true.push_back(c.cell_true.back());
          c.labels_pred.push_back(c.cell_pred.back());
        }
      }
      shuffle_together(c.labels_true, c.labels_pred, static_cast<std::uint64_t>(c.id) + 1);
      if (static_cast<index_t>(c.labels_true.size()) != c.n)
        throw std::runtime_error("fixture: counts do not sum to n");
      out.push_back(std::move(c));
    }
    return out;
  }();
  return cases;
}

template <class T>
std::vector<T> converted(const std::vector<std::int64_t>& v) {
  return std::vector<T>(v.begin(), v.end());
}

/// Relative difference |ours - ref| / |ref| (absolute when ref == 0); 0 when both are NaN.
inline double relative_difference(double ours, double ref) {
  if (std::isnan(ours) && std::isnan(ref)) return 0.0;
  if (ref == 0.0) return std::fabs(ours);
  return std::fabs(ours - ref) / std::fabs(ref);
}

// ---- the exact-count tables ------------------------------------------------------------------------

struct exact_table {
  std::string name;
  std::vector<std::int64_t> rows, cols, counts;
  metrics::uint128_t x = 0, a = 0, b = 0, pairs = 0;
  std::map<std::string, double> values;
};

inline metrics::uint128_t parse_uint128(const std::string& text) {
  metrics::uint128_t v = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') throw std::runtime_error("fixture: bad integer " + text);
    v = v * 10 + static_cast<unsigned>(ch - '0');
  }
  return v;
}

inline std::vector<exact_table> exact_tables() {
  std::ifstream in(fixture_path("metrics_clustering_exact.txt"));
  if (!in) throw std::runtime_error("cannot open fixture metrics_clustering_exact.txt (run tests/reference/*.py)");
  std::vector<exact_table> tables;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string kind;
    words >> kind;
    if (kind == "table") {
      tables.emplace_back();
      words >> tables.back().name;
    } else if (kind == "cell") {
      long long r = 0, c = 0, k = 0;
      words >> r >> c >> k;
      tables.back().rows.push_back(r);
      tables.back().cols.push_back(c);
      tables.back().counts.push_back(k);
    } else if (kind == "pairs") {
      std::string x, a, b, n;
      words >> x >> a >> b >> n;
      tables.back().x = parse_uint128(x);
      tables.back().a = parse_uint128(a);
      tables.back().b = parse_uint128(b);
      tables.back().pairs = parse_uint128(n);
    } else if (kind == "value") {
      std::string metric, value;
      words >> metric >> value;
      tables.back().values[metric] = std::strtod(value.c_str(), nullptr);
    }
  }
  return tables;
}

}  // namespace cellkit::test
