#pragma once
// Helpers shared by the tests/graph suites: fixture graphs, random graphs, dense references and
// central differences.

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/graph/csr_graph.hpp>

#include "support/test_support.hpp"

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace graph_test {

using cellkit::index_t;

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

/// The graph stored as 'indptr', 'indices', 'values' (with an optional name prefix) in a fixture case.
template <class T, class Index = std::int32_t>
cellkit::graph::csr_graph<T, Index> fixture_graph(const cellkit::test::fixture_case& c, index_t n,
                                                  const std::string& prefix = "") {
  const auto& ip = c.matrix(prefix + "indptr");
  const auto& ix = c.matrix(prefix + "indices");
  const auto& vs = c.matrix(prefix + "values");
  cellkit::host_buffer<Index> indptr(static_cast<index_t>(ip.size()));
  cellkit::host_buffer<Index> indices(static_cast<index_t>(ix.size()));
  cellkit::host_buffer<T> values(static_cast<index_t>(vs.size()));
  for (std::size_t i = 0; i < ip.size(); ++i) indptr[static_cast<index_t>(i)] = static_cast<Index>(ip[i]);
  for (std::size_t i = 0; i < ix.size(); ++i) indices[static_cast<index_t>(i)] = static_cast<Index>(ix[i]);
  for (std::size_t i = 0; i < vs.size(); ++i) values[static_cast<index_t>(i)] = static_cast<T>(vs[i]);
  return cellkit::graph::csr_graph<T, Index>(n, std::move(indptr), std::move(indices), std::move(values));
}

/// A random weighted graph: each row gets up to `max_degree` distinct random columns (self-loops
/// excluded unless `self_loops`), weights uniform in [0.1, 1]. `symmetric` makes it undirected (max).
template <class T, class Index = std::int32_t>
cellkit::graph::csr_graph<T, Index> random_graph(index_t n, int max_degree, std::uint64_t seed, bool symmetric,
                                                 bool self_loops = false) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<index_t> column(0, n - 1);
  std::uniform_int_distribution<int> degree(0, max_degree);
  std::uniform_real_distribution<double> weight(0.1, 1.0);
  std::vector<Index> rows, cols;
  std::vector<T> values;
  for (index_t i = 0; i < n; ++i) {
    for (int d = degree(rng); d > 0; --d) {
      const index_t j = column(rng);
      if (j == i && !self_loops) continue;
      rows.push_back(static_cast<Index>(i));
      cols.push_back(static_cast<Index>(j));
      values.push_back(static_cast<T>(weight(rng)));
    }
  }
  auto g = cellkit::graph::csr_graph<T, Index>::from_edges(n, rows, cols, values);
  if (!symmetric) return g;
  return cellkit::graph::symmetrize(cellkit::serial{}, g.view(), cellkit::graph::symmetrize_mode::max);
}

/// A CSR matrix (double values) copied into the memory space of policy P.
template <class P>
struct policy_csr {
  cellkit::test::policy_array<P, std::int32_t> indptr, indices;
  cellkit::test::policy_array<P, double> values;
  index_t rows, cols, nnz;
  explicit policy_csr(cellkit::csr_view<const double, std::int32_t> a)
      : indptr(std::vector<std::int32_t>(a.indptr(), a.indptr() + a.rows() + 1)),
        indices(std::vector<std::int32_t>(a.indices(), a.indices() + a.nnz())),
        values(std::vector<double>(a.values(), a.values() + a.nnz())),
        rows(a.rows()),
        cols(a.cols()),
        nnz(a.nnz()) {}
  auto view() const {
    return cellkit::csr_view<const double, std::int32_t, typename cellkit::test::policy_array<P, double>::space>(
        rows, cols, nnz, indptr.data(), indices.data(), values.data());
  }
};

template <class T>
std::vector<T> random_vector(std::size_t size, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<T> v(size);
  for (auto& x : v) x = static_cast<T>(normal(rng));
  return v;
}

/// Dense row-major copy of a CSR view.
template <class T, class Index>
std::vector<double> dense(const cellkit::csr_view<T, Index>& a) {
  std::vector<double> d(static_cast<std::size_t>(a.rows() * a.cols()), 0.0);
  for (index_t i = 0; i < a.rows(); ++i)
    for (index_t p = a.row_begin(i); p < a.row_end(i); ++p)
      d[static_cast<std::size_t>(i * a.cols() + static_cast<index_t>(a.indices()[p]))] =
          static_cast<double>(a.values()[p]);
  return d;
}

/// Checks got[i] against expected[i] with |got - expected| <= atol + rtol |expected|.
template <class T>
void check_close(const std::vector<T>& got, const std::vector<double>& expected, double rtol, double atol,
                 const char* what) {
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(what << "[" << i << "]: got " << static_cast<double>(got[i]) << ", expected " << expected[i]);
    CHECK(cellkit::test::close(static_cast<double>(got[i]), expected[i], rtol, atol));
  }
}

/// Central differences of a scalar function of a parameter vector, at every coordinate.
inline std::vector<double> numeric_gradient(std::vector<double>& params, const std::function<double()>& loss,
                                            double h = 1e-6) {
  std::vector<double> g(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    const double saved = params[i];
    params[i] = saved + h;
    const double up = loss();
    params[i] = saved - h;
    const double down = loss();
    params[i] = saved;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

/// Runs f, which must throw E, and checks that the message contains every fragment.
template <class E, class F>
void check_throws_with(F&& f, std::initializer_list<const char*> fragments) {
  bool thrown = false;
  try {
    f();
  } catch (const E& e) {
    thrown = true;
    const std::string message = e.what();
    for (const char* fragment : fragments) {
      INFO("message: " << message);
      CHECK(message.find(fragment) != std::string::npos);
    }
  }
  CHECK(thrown);
}

}  // namespace graph_test
