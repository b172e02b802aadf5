// EXPECT-ERROR: cellkit::cuda policy given a host view
// NEEDS-NVCC
// Host memory handed to the cuda policy must not compile, even in a CUDA translation unit.
#include <cellkit/execution/gemm.hpp>

int main() {
  double* a = nullptr;
  double* c = nullptr;
#if defined(CELLKIT_COMPILE_FAIL_CONTROL)
  using space = cellkit::device_space;
#else
  using space = cellkit::host_space;
#endif
  cellkit::matrix_view<const double, space> av(a, 0, 0);
  cellkit::matrix_view<double, space> cv(c, 0, 0);
  cellkit::gemm(cellkit::cuda{}, av, av, cv);
  return 0;
}
