#pragma once
// Shared helpers for cellkit's doctest suites: the policy lists tests are templated over, fixture
// loading, and CUDA skipping.

#include <cellkit/core/config.hpp>
#include <cellkit/execution/policy.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#if CELLKIT_CUDA_COMPILER
#include <cellkit/core/detail/cuda_check.cuh>
#endif

#ifndef CELLKIT_FIXTURE_DIR
#error "CELLKIT_FIXTURE_DIR must point at tests/reference/data (set by tests/CMakeLists.txt)"
#endif

namespace cellkit::test {

/// Host policies every templated test runs under. `openmp` with 1 and 2 threads are distinct types
/// so that doctest reports them separately.
struct openmp1 : openmp {
  openmp1() : openmp{1} {}
};
struct openmp2 : openmp {
  openmp2() : openmp{2} {}
};

/// The policy object a test should pass to the library for the test-list type `P`.
template <class P>
auto policy_of() {
  if constexpr (std::is_base_of_v<openmp, P>) {
    return static_cast<openmp>(P{});
  } else {
    return P{};
  }
}

/// True when the test-list type `P` computes on the device (its arrays are device memory).
template <class P>
constexpr bool on_device = is_device_policy_v<decltype(policy_of<P>())>;

/// max |got - expected| / max |expected| (a scale-aware error for a gradient array).
template <class T>
double scaled_error(const std::vector<T>& got, const std::vector<T>& expected) {
  REQUIRE(got.size() == expected.size());
  double scale = 1e-300, err = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(expected[i])));
    err = std::max(err, std::fabs(static_cast<double>(got[i]) - static_cast<double>(expected[i])));
  }
  return err / scale;
}

/// True when tests for policy `P` can run here (CUDA needs a device).
template <class P>
bool policy_runnable() {
  if constexpr (is_device_policy_v<P>) {
#if CELLKIT_CUDA_COMPILER
    return detail::cuda_device_available();
#else
    return false;
#endif
  } else {
    return true;
  }
}

/// A whitespace-separated numeric table written by a script in tests/reference/.
/// Lines starting with '#' are comments; the first non-comment line is the header of column names.
struct fixture_table {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;

  std::size_t column(const std::string& name) const {
    for (std::size_t c = 0; c < columns.size(); ++c)
      if (columns[c] == name) return c;
    throw std::runtime_error("fixture has no column " + name);
  }
};

inline std::string fixture_path(const std::string& name) { return std::string(CELLKIT_FIXTURE_DIR) + "/" + name; }

inline fixture_table read_fixture_table(const std::string& name) {
  std::ifstream in(fixture_path(name));
  if (!in) throw std::runtime_error("cannot open fixture " + fixture_path(name) + " (run tests/reference/*.py)");
  fixture_table table;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    if (table.columns.empty()) {
      for (std::string w; fields >> w;) table.columns.push_back(w);
      continue;
    }
    std::vector<double> row;
    for (std::string w; fields >> w;) row.push_back(std::strtod(w.c_str(), nullptr));  // parses inf/nan/hex too
    table.rows.push_back(std::move(row));
  }
  return table;
}

/// |a - b| <= abs_tol + rel_tol * |b|, with NaN == NaN and equal infinities accepted.
inline bool close(double a, double b, double rel_tol, double abs_tol = 0.0) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::fabs(a - b) <= abs_tol + rel_tol * std::fabs(b);
}

/// Directory of the shared real datasets, or "" when absent (tests that need them skip).
inline std::string shared_data_dir() {
#ifdef CELLKIT_SHARED_DATA_DIR
  std::ifstream probe(std::string(CELLKIT_SHARED_DATA_DIR) + "/10x_pbmc_top2000/manifest.json");
  if (probe) return CELLKIT_SHARED_DATA_DIR;
#endif
  return {};
}

}  // namespace cellkit::test

/// Policy lists for TEST_CASE_TEMPLATE. In a unit compiled by nvcc the CUDA policy is added; its
/// instantiations return early (and are reported as skipped) when no GPU is present.
#if CELLKIT_CUDA_COMPILER
#define CELLKIT_TEST_POLICIES ::cellkit::serial, ::cellkit::test::openmp1, ::cellkit::test::openmp2, ::cellkit::cuda
#else
#define CELLKIT_TEST_POLICIES ::cellkit::serial, ::cellkit::test::openmp1, ::cellkit::test::openmp2
#endif
#define CELLKIT_HOST_TEST_POLICIES ::cellkit::serial, ::cellkit::test::openmp1, ::cellkit::test::openmp2

/// Put first in a templated test body: skips the case when its policy cannot run on this machine.
#define CELLKIT_SKIP_UNLESS_RUNNABLE(P)                                      \
  do {                                                                       \
    if (!::cellkit::test::policy_runnable<P>()) {                            \
      MESSAGE("skipped: this case needs a CUDA device and none is present"); \
      return;                                                                \
    }                                                                        \
  } while (0)

namespace cellkit::test {

/// A fixture of cases, each a 'case p1 p2 ...' line followed by named matrices, each introduced by
/// a '# name rows cols' line and given as `rows` lines of `cols` numbers (see gen_execution_fixtures.py).
struct fixture_case {
  std::vector<double> params;
  std::map<std::string, std::vector<double>> matrices;
  std::map<std::string, std::pair<index_t, index_t>> shapes;

  const std::vector<double>& matrix(const std::string& name) const { return matrices.at(name); }
  std::pair<index_t, index_t> shape(const std::string& name) const { return shapes.at(name); }
};

inline std::vector<fixture_case> read_fixture_cases(const std::string& name) {
  std::ifstream in(fixture_path(name));
  if (!in) throw std::runtime_error("cannot open fixture " + fixture_path(name) + " (run tests/reference/*.py)");
  std::vector<fixture_case> cases;
  std::string line;
  std::string current;
  index_t remaining_rows = 0;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string first;
    words >> first;
    if (first == "case") {
      cases.emplace_back();
      for (double v; words >> v;) cases.back().params.push_back(v);
      continue;
    }
    if (first == "#") {
      std::string matrix_name;
      long long rows = -1;
      long long cols = -1;
      if ((words >> matrix_name >> rows >> cols) && !cases.empty()) {
        current = matrix_name;
        remaining_rows = rows;
        cases.back().shapes[current] = {rows, cols};
        cases.back().matrices[current].reserve(static_cast<std::size_t>(rows * cols));
      }
      continue;
    }
    if (remaining_rows > 0 && !cases.empty()) {
      std::istringstream values(line);
      for (std::string w; values >> w;) cases.back().matrices[current].push_back(std::strtod(w.c_str(), nullptr));
      --remaining_rows;
    }
  }
  return cases;
}

}  // namespace cellkit::test

#include <cellkit/core/buffer.hpp>
#include <cellkit/core/copy.hpp>
#if CELLKIT_CUDA_COMPILER
#include <cellkit/core/device_buffer.cuh>
#endif

namespace cellkit::test {

/// An array that lives where policy `P` computes (host buffer, or device buffer for cuda), filled
/// from and read back to host vectors. Lets one test body run under every policy.
template <class P, class T>
class policy_array {
 public:
  using space = typename decltype(policy_of<P>())::memory_space;

  explicit policy_array(const std::vector<T>& host) : size_(static_cast<index_t>(host.size())), storage_(size_) {
    auto policy = policy_of<P>();
    copy(policy, vector_view<const T>(host.data(), size_), storage_.view());
    synchronize(policy);
  }
  explicit policy_array(index_t size) : policy_array(std::vector<T>(static_cast<std::size_t>(size))) {}

  std::vector<T> to_host() const {
    std::vector<T> host(static_cast<std::size_t>(size_));
    auto policy = policy_of<P>();
    copy(policy, storage_.view(), vector_view<T>(host.data(), size_));
    synchronize(policy);
    return host;
  }
  T* data() { return storage_.data(); }
  const T* data() const { return storage_.data(); }
  index_t size() const { return size_; }
  vector_view<T, space> view() { return {storage_.data(), size_}; }
  matrix_view<T, space> matrix(index_t rows, index_t cols) { return {storage_.data(), rows, cols}; }
  matrix_view<const T, space> matrix(index_t rows, index_t cols) const { return {storage_.data(), rows, cols}; }

 private:
#if CELLKIT_CUDA_COMPILER
  using storage_type = std::conditional_t<std::is_same_v<space, device_space>, device_buffer<T>, host_buffer<T>>;
#else
  using storage_type = host_buffer<T>;
#endif
  index_t size_;
  storage_type storage_;
};

}  // namespace cellkit::test
