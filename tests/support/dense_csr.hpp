#pragma once
// Small conversions shared by the preprocessing tests: a dense row-major table (as fixtures store
// matrices) to an owning CSR matrix, and a column of a fixture to indices.

#include <cellkit/core/csr_matrix.hpp>

#include <cstdint>
#include <vector>

namespace cellkit::test {

/// The nonzeros of a rows x cols row-major table as a CSR matrix (int32 indices).
inline csr_matrix<double> dense_to_csr(const std::vector<double>& dense, index_t rows, index_t cols) {
  std::vector<std::int32_t> r, c;
  std::vector<double> v;
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j)
      if (dense[static_cast<std::size_t>(i * cols + j)] != 0) {
        r.push_back(static_cast<std::int32_t>(i));
        c.push_back(static_cast<std::int32_t>(j));
        v.push_back(dense[static_cast<std::size_t>(i * cols + j)]);
      }
  return csr_matrix<double>::from_triplets(rows, cols, r, c, v);
}

/// Fixture values (doubles holding integers) as indices.
inline std::vector<index_t> as_indices(const std::vector<double>& v) { return {v.begin(), v.end()}; }

}  // namespace cellkit::test
