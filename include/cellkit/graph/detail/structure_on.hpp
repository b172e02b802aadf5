#pragma once
/// @file
/// A CSR matrix's structure read from any memory space (internal): for the checks and the
/// host-built index maps of the functions that run on the device.

#include <cellkit/core/config.hpp>
#include <cellkit/core/detail/transfer.hpp>
#include <cellkit/core/views.hpp>
#include <cellkit/graph/detail/common.hpp>

#include <type_traits>
#include <vector>

namespace cellkit::graph::detail {

/// indptr and indices of a CSR matrix, copied to the host (device: synchronises), and checked
/// with check_csr (messages name `fn` and `name`).
template <class Index>
struct host_structure {
  std::vector<Index> indptr, indices;
};

template <class Policy, class T, class Index, class Space>
host_structure<Index> checked_structure(const Policy& policy, const char* fn, const char* name,
                                        csr_view<const T, Index, Space> a) {
  host_structure<Index> s;
  if constexpr (std::is_same_v<Space, host_space>) {
    s.indptr.assign(a.indptr(), a.indptr() + a.rows() + 1);
    s.indices.assign(a.indices(), a.indices() + a.nnz());
  } else {
    s.indptr = cellkit::detail::download(policy, vector_view<const Index, Space>(a.indptr(), a.rows() + 1));
    s.indices = cellkit::detail::download(policy, vector_view<const Index, Space>(a.indices(), a.nnz()));
  }
  check_csr(
      fn, name,
      csr_view<const Index, Index>(a.rows(), a.cols(), a.nnz(), s.indptr.data(), s.indices.data(), s.indices.data()));
  return s;
}

/// The structural check of a CSR matrix in any space (device: O(n + nnz) copied back; synchronises).
template <class Policy, class T, class Index, class Space>
void check_structure_on(const Policy& policy, const char* fn, const char* name, csr_view<const T, Index, Space> a) {
  if constexpr (std::is_same_v<Space, host_space>) {
    check_csr(fn, name, a);
  } else {
    (void)checked_structure(policy, fn, name, a);
  }
}

}  // namespace cellkit::graph::detail
