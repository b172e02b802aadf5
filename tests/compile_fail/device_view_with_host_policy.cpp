// EXPECT-ERROR: host policy \(cellkit::serial / cellkit::openmp\) given a device view
// Device memory handed to a host policy must not compile.
#include <cellkit/execution/gemm.hpp>

int main() {
  double a[4] = {1, 2, 3, 4};
  double c[4] = {};
#if defined(CELLKIT_COMPILE_FAIL_CONTROL)
  using space = cellkit::host_space;
#else
  using space = cellkit::device_space;
#endif
  cellkit::matrix_view<const double, space> av(a, 2, 2);
  cellkit::matrix_view<double, space> cv(c, 2, 2);
  cellkit::gemm(cellkit::serial{}, av, av, cv);
  return 0;
}
