// Consumer check: includes public headers, runs a small SpMM and GEMM, exits 0 when the numbers agree.
#include <cellkit/core/random.hpp>
#include <cellkit/execution/gemm.hpp>
#include <cellkit/execution/spmm.hpp>
#include <cellkit/version.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  // A = [[2 0] [0 3]] as CSR; X = [[1 2] [3 4]]; A X = [[2 4] [9 12]]; (A X)^T (A X) via gemm.
  std::vector<int> indptr = {0, 1, 2}, indices = {0, 1};
  std::vector<double> values = {2, 3}, x = {1, 2, 3, 4}, y(4), g(4);
  cellkit::csr_view<const double, int> a(2, 2, 2, indptr.data(), indices.data(), values.data());
  cellkit::spmm(cellkit::serial{}, a, cellkit::matrix_view<const double>(x.data(), 2, 2),
                cellkit::matrix_view<double>(y.data(), 2, 2));
  cellkit::gemm(cellkit::default_host_policy(), cellkit::matrix_view<const double>(y.data(), 2, 2),
                cellkit::matrix_view<const double>(y.data(), 2, 2), cellkit::matrix_view<double>(g.data(), 2, 2),
                {.transpose_a = true});
  cellkit::philox_engine engine(1, 0, 0);
  const double u = cellkit::uniform<double>(engine);
  const bool ok =
      y == std::vector<double>{2, 4, 9, 12} && g == std::vector<double>{85, 116, 116, 160} && u > 0 && u <= 1;
  std::printf("cellkit %s consumer: %s\n", cellkit::version_string, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
